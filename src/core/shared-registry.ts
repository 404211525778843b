/**
 * @module core/shared-registry
 * Sets shared by every copy of dmasim loaded in one process (a scenario may import a second copy:
 * its machines must still reach the CLI's checks). Kept on globalThis under registered symbols.
 * Not part of the public API.
 */

/**
 * The process-wide Set registered under `key` (made on first use).
 * @example const observers = sharedSet<(m: object) => void>('dmasim.machineCreated');
 */
export function sharedSet<T>(key: string): Set<T> {
  const g = globalThis as { [k: symbol]: unknown };
  const sym = Symbol.for(key);
  if (!(g[sym] instanceof Set)) g[sym] = new Set<T>();
  return g[sym] as Set<T>;
}
