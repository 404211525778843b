/**
 * @module core/size
 * Byte sizes written as numbers or as strings like `'64G'`, `'256K'`, `'1.5M'`, `'4096'`.
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

/** A byte count, or a string with a K/M/G/T/P suffix (powers of 1024; an optional trailing `iB`/`B`). */
export type Size = number | string;

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/**
 * Parse a {@link Size} to a whole number of bytes.
 * @param fn and `arg` name the caller and argument in the error.
 * @throws KernelError EINVAL for anything that is not a non-negative whole number of bytes below 2^53.
 * @example parseSize('64G') // 68719476736
 */
export function parseSize(value: Size, fn = 'parseSize', arg = 'size'): number {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    // 'iB' only after a unit letter: '16iB' is not a size (it once read as 16 bytes).
    const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([KMGTP])(?:i?B)?|B)?\s*$/i.exec(value);
    if (m === null) throw new KernelError(EINVAL, fn, `cannot read size ${JSON.stringify(value)} (use e.g. '64G', '256K')`, arg);
    bytes = Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1);
  } else {
    throw new KernelError(EINVAL, fn, `expected a number or a size string, got ${typeof value}`, arg);
  }
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new KernelError(EINVAL, fn, `size must be a whole number of bytes in [0, 2^53), got ${String(value)}`, arg);
  }
  return bytes;
}

/**
 * Human-readable bytes, binary units: `formatBytes(3 * 2**30)` → `'3 GiB'`.
 * @example formatBytes(1536) // '1.5 KiB'
 */
export function formatBytes(bytes: number): string {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) throw new KernelError(EINVAL, 'formatBytes', `expected a number of bytes, got ${String(bytes)}`, 'bytes');
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}
