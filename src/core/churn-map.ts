/**
 * @module core/churn-map
 * A Map for keys that are deleted and added back again and again (an address freed and handed out
 * again: slab objects, cachelines, table pages, bounce slots).
 *
 * Why not a Map: V8's Map (an ordered hash table) leaves a deleted entry in its bucket's chain until
 * the next rehash, so setting and deleting the same key over and over lengthens that one chain by
 * an entry a round. Measured on Node 20 (same-key set + delete, `.scratch` microbenchmark, session
 * 14): 47-62 ns with 1-10 other keys live, 226 ns with 100, 1.26 us with 1,000, 13 us with 10,000;
 * with no other key live, each delete shrinks and reallocates the table (246 ns). Rotating keys do
 * not do it (50-106 ns). A delete here only marks the entry dead (its key stays, its value becomes
 * a private marker), so the same key coming back overwrites its own entry in place; dead entries
 * are dropped in one rebuild once they outnumber the live ones (amortised O(1) a delete, the memory
 * bounded by twice the live count plus a constant).
 *
 * Order: iteration sees live entries in the order their keys were first added since the last
 * rebuild (a Map's order, except that a key deleted and added back keeps its old place). Callers
 * whose order shows sort it themselves. Changing the map while iterating it is safe: an entry
 * deleted before the iteration reaches it is not seen; an entry added meanwhile may or may not be.
 *
 * @example
 * const objects = new ChurnMap<number, number>();
 * objects.set(0x1000, 64);
 * objects.delete(0x1000);
 * objects.set(0x1000, 64); // overwrites the dead entry in place
 * objects.size             // 1
 */

/** The value of a dead entry: never a caller's value (private to this module). */
const DEAD: unique symbol = Symbol('churn-map dead entry');

/** Dead entries kept before a rebuild is considered (a small map never rebuilds). */
const MIN_DEAD = 64;

export class ChurnMap<K, V> {
  // INVARIANT: _map holds every live key with its value and every dead key with DEAD; _live counts
  //   the entries whose value is not DEAD, _dead the ones whose value is DEAD;
  //   _dead <= max(MIN_DEAD, _live) after every delete.
  private _map = new Map<K, V | typeof DEAD>();
  private _live = 0;
  private _dead = 0;

  /** Live entries. */
  get size(): number {
    return this._live;
  }

  get(key: K): V | undefined {
    const v = this._map.get(key);
    return v === DEAD ? undefined : v;
  }

  has(key: K): boolean {
    const m = this._map;
    const v = m.get(key);
    return v !== DEAD && (v !== undefined || m.has(key));
  }

  set(key: K, value: V): this {
    const m = this._map;
    const v = m.get(key);
    if (v === undefined) {
      if (!m.has(key)) this._live++;
    } else if (v === DEAD) {
      this._dead--;
      this._live++;
    }
    m.set(key, value);
    return this;
  }

  /** Remove `key`; true when it was live. */
  delete(key: K): boolean {
    const m = this._map;
    const v = m.get(key);
    if (v === DEAD || (v === undefined && !m.has(key))) return false;
    m.set(key, DEAD);
    this._live--;
    this._dead++;
    if (this._dead > MIN_DEAD && this._dead > this._live) this._rebuild();
    return true;
  }

  clear(): void {
    this._map = new Map();
    this._live = 0;
    this._dead = 0;
  }

  /** Live keys, in order (see the module doc). */
  *keys(): Generator<K, void, undefined> {
    for (const [k] of this.entries()) yield k;
  }

  /** Live values, in order. */
  *values(): Generator<V, void, undefined> {
    for (const [, v] of this.entries()) yield v;
  }

  /** Live entries, in order. */
  *entries(): Generator<[K, V], void, undefined> {
    const walked = this._map;
    for (const [k, v] of walked) {
      // A rebuild since the walk began replaced the map: the walked one no longer sees deletes.
      const now = this._map === walked ? v : this._liveValue(k);
      if (now !== DEAD) yield [k, now];
    }
  }

  [Symbol.iterator](): Generator<[K, V], void, undefined> {
    return this.entries();
  }

  /** Call `fn` for each live entry, in order (no iterator objects). */
  forEach(fn: (value: V, key: K) => void): void {
    const walked = this._map;
    walked.forEach((v, k) => {
      const now = this._map === walked ? v : this._liveValue(k);
      if (now !== DEAD) fn(now, k);
    });
  }

  /** The value of `key` now, or DEAD when it is not live. */
  private _liveValue(key: K): V | typeof DEAD {
    const m = this._map;
    const v = m.get(key);
    return v === undefined && !m.has(key) ? DEAD : (v as V | typeof DEAD);
  }

  private _rebuild(): void {
    const next = new Map<K, V | typeof DEAD>();
    this._map.forEach((v, k) => { if (v !== DEAD) next.set(k, v); });
    this._map = next;
    this._dead = 0;
  }
}
