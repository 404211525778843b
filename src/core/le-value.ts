/**
 * @module core/le-value
 * The value check of a register-style write (internal: leBytes, mm.writeLe*, DmaEngine.writeLe*).
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

/**
 * `v` when a register-style write of `bytes` bytes can hold it (below 2^53 for 8), else EINVAL
 * naming `fn` and `v` (`bytes` other than 2, 4 or 8: EINVAL naming leBytes and `bytes`).
 * @example putLe(buf, 0, checkLeValue(v, 4, 'writeLe32'), 4)
 */
export function checkLeValue(v: number, bytes: 2 | 4 | 8, fn: string): number {
  if (bytes !== 2 && bytes !== 4 && bytes !== 8) throw new KernelError(EINVAL, 'leBytes', `expected 2, 4 or 8 bytes, got ${String(bytes)}`, 'bytes');
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || (bytes < 8 && v >= 2 ** (8 * bytes))) {
    throw new KernelError(EINVAL, fn, bytes === 8 ? `expected a whole number below 2^53 (write larger 64-bit values as two 32-bit halves), got ${String(v)}` : `expected a whole number that fits in ${8 * bytes} bits, got ${String(v)}`, 'v');
  }
  return v;
}

/**
 * The bytes of register-style accesses (2, 4 or 8) of one owner: one kept buffer, or a new one when
 * an access is already using it (a listener reading a register inside another access). A new
 * typed array per access was most of a readLe64/writeLe64 (~400 ns; bench/RESULTS.md, session 14).
 * @example const buf = le.take(8); try { ... } finally { le.give(); }
 */
export class LeScratch {
  // INVARIANT: _busy while a take() has not been given back; _bytes is scratch, never state.
  private readonly _bytes = new Uint8Array(8);
  private _busy = false;

  /** A buffer of `len` bytes for one access; give() when done. */
  take(len: number): Uint8Array {
    if (this._busy) return new Uint8Array(len);
    this._busy = true;
    return this._bytes.subarray(0, len);
  }

  /** The access that took the kept buffer is done with it. */
  give(): void {
    this._busy = false;
  }
}
