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
