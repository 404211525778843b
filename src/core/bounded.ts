/**
 * @module core/bounded
 * Logs that cannot grow without bound, as the kernel's printk ring cannot: past `cap` entries the
 * oldest half is dropped at once (amortised O(1) a push) and the caller counts what went.
 */

/**
 * Push `item`, dropping the oldest `cap / 2` entries first when the list is full.
 * @returns how many entries were dropped (0 almost always).
 * @example dropped += pushBounded(this.faults, fault, 1024);
 */
export function pushBounded<T>(list: T[], item: T, cap: number): number {
  let dropped = 0;
  if (list.length >= cap) {
    dropped = list.length - Math.floor(cap / 2);
    list.splice(0, dropped);
  }
  list.push(item);
  return dropped;
}
