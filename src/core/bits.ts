/**
 * @module core/bits
 * Bit helpers that stay exact above 2^32, and little-endian encodings of 16/32/64-bit values.
 *
 * JavaScript's bitwise operators (`&`, `|`, `^`, `<<`, `>>`, `>>>`) cut their operands to 32 bits
 * without a word: `(addr & ~0xfff)` on a 47-bit DMA address silently drops the top 15 bits. DMA
 * addresses, physical addresses and IOVAs in dmasim are exact numbers below 2^53; use these helpers
 * (or arithmetic: `Math.floor(a / 4096) * 4096`) on them, never the operators.
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';
import { checkLeValue } from './le-value.ts';

const TWO32 = 2 ** 32;

/**
 * 2^i for i in [0, 64), exact. A table look-up: `2 ** i` with a variable i compiles to a
 * floating-point pow (~28 ns here against ~2 for the look-up).
 * @example POW2[21] // 2097152
 */
export const POW2: Float64Array = Float64Array.from({ length: 64 }, (_, i) => 2 ** i);
/**
 * 2^-i for i in [0, 64), exact: `x * POW2_INV[s]` is x / 2^s without a division.
 * @example Math.floor(iova * POW2_INV[12]) // the 4 KiB page number of iova
 */
export const POW2_INV: Float64Array = Float64Array.from({ length: 64 }, (_, i) => 2 ** -i);

function checkU64(v: unknown, fn: string, arg: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new KernelError(EINVAL, fn, `expected a whole number in [0, 2^53), got ${String(v)}`, arg);
  }
  return v;
}

function checkBuf(buf: unknown, off: unknown, bytes: unknown, fn: string): void {
  if (!(buf instanceof Uint8Array)) throw new KernelError(EINVAL, fn, 'expected a Uint8Array', 'buf');
  if (bytes !== 2 && bytes !== 4 && bytes !== 8) throw new KernelError(EINVAL, fn, `expected 2, 4 or 8 bytes, got ${String(bytes)}`, 'bytes');
  if (typeof off !== 'number' || !Number.isSafeInteger(off) || off < 0 || off + bytes > buf.length) {
    throw new KernelError(EINVAL, fn, `offset ${String(off)} leaves no room for ${bytes} bytes in a buffer of ${buf.length}`, 'off');
  }
}

function checkBit(v: unknown, fn: string, arg: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new KernelError(EINVAL, fn, `expected a bit number in [0, ${max}], got ${String(v)}`, arg);
  }
  return v;
}

/**
 * upper_32_bits: bits 32..63 of `n` (a 64-bit value as an exact number).
 * @example upper_32_bits(0x1_2345_6789) // 1
 */
export function upper_32_bits(n: number): number {
  return Math.floor(checkU64(n, 'upper_32_bits', 'n') / TWO32);
}

/**
 * lower_32_bits: bits 0..31 of `n`.
 * @example lower_32_bits(0x1_2345_6789) // 0x23456789
 */
export function lower_32_bits(n: number): number {
  return checkU64(n, 'lower_32_bits', 'n') % TWO32;
}

/**
 * BIT_ULL(nr): 2^nr, exact for nr up to 52.
 * @example BIT_ULL(40) // 1099511627776
 */
export function BIT_ULL(nr: number): number {
  return 2 ** checkBit(nr, 'BIT_ULL', 'nr', 52);
}

/**
 * GENMASK_ULL(h, l): bits l..h set, exact for h up to 52 (the widest mask a JS number holds).
 * @example GENMASK_ULL(47, 12) // 0xfffffffff000
 */
export function GENMASK_ULL(h: number, l: number): number {
  checkBit(h, 'GENMASK_ULL', 'h', 52);
  checkBit(l, 'GENMASK_ULL', 'l', 52);
  if (l > h) throw new KernelError(EINVAL, 'GENMASK_ULL', `low bit ${l} above high bit ${h}`, 'l');
  return 2 ** (h + 1) - 2 ** l;
}

/**
 * `v & mask` for 64-bit values held as exact numbers (both below 2^53), without the 32-bit cut of `&`.
 * @example and64(0x7fff_ffff_f123, GENMASK_ULL(47, 12)) // 0x7ffffffff000
 */
export function and64(v: number, mask: number): number {
  checkU64(v, 'and64', 'v');
  checkU64(mask, 'and64', 'mask');
  return ((Math.floor(v / TWO32) & Math.floor(mask / TWO32)) >>> 0) * TWO32 + (((v % TWO32) & (mask % TWO32)) >>> 0);
}

/** `v | w` for 64-bit values held as exact numbers. @example or64(2 ** 40, 1) // 1099511627777 */
export function or64(v: number, w: number): number {
  checkU64(v, 'or64', 'v');
  checkU64(w, 'or64', 'w');
  return ((Math.floor(v / TWO32) | Math.floor(w / TWO32)) >>> 0) * TWO32 + (((v % TWO32) | (w % TWO32)) >>> 0);
}

/** Write `v` (`bytes` = 2, 4 or 8) little-endian into `buf` at `off` (cpu_to_le*). @example putLe(buf, 0, 0x1234, 2) // buf[0] = 0x34, buf[1] = 0x12 */
export function putLe(buf: Uint8Array, off: number, v: number, bytes: 2 | 4 | 8): void {
  checkBuf(buf, off, bytes, 'putLe');
  checkU64(v, 'putLe', 'v');
  if (bytes !== 8 && v >= 2 ** (8 * bytes)) throw new KernelError(EINVAL, 'putLe', `0x${v.toString(16)} does not fit in ${8 * bytes} bits`, 'v');
  let x = v;
  for (let i = 0; i < bytes; i++) {
    buf[off + i] = x % 256;
    x = Math.floor(x / 256);
  }
}

/**
 * Read a little-endian value of `bytes` (2, 4 or 8) from `buf` at `off` (le*_to_cpu).
 * @throws KernelError EINVAL when a 64-bit value is 2^53 or more (not exact as a number).
 * @example getLe(new Uint8Array([0x34, 0x12]), 0, 2) // 0x1234
 */
export function getLe(buf: Uint8Array, off: number, bytes: 2 | 4 | 8): number {
  checkBuf(buf, off, bytes, 'getLe');
  let v = 0;
  for (let i = bytes - 1; i >= 0; i--) v = v * 256 + (buf[off + i] as number);
  if (!Number.isSafeInteger(v)) throw new KernelError(EINVAL, 'getLe', `the 64-bit value at offset ${off} is 2^53 or more, past an exact JavaScript number: read it as two 32-bit halves`, 'bytes');
  return v;
}

/**
 * The little-endian bytes of a register-style write of `v` (`bytes` = 2, 4 or 8): the CPU's and
 * the device's writeLe* share it. EINVAL naming `fn` and `v` when it does not fit (64-bit: below 2^53).
 * @example leBytes(0x1234, 2, 'writeLe16') // Uint8Array [0x34, 0x12]
 */
export function leBytes(v: number, bytes: 2 | 4 | 8, fn: string): Uint8Array {
  const value = checkLeValue(v, bytes, fn);
  const buf = new Uint8Array(bytes);
  putLe(buf, 0, value, bytes);
  return buf;
}

/**
 * The value of a register-style read of `buf` (2, 4 or 8 little-endian bytes): a 64-bit value of
 * 2^53 or more is EINVAL naming `fn` and `arg`, `where` saying which address.
 * @example leValue(bytes, 8, 'readLe64', 'virt', '0x1000')
 */
export function leValue(buf: Uint8Array, bytes: 2 | 4 | 8, fn: string, arg: string, where: string): number {
  if (bytes === 8 && (buf[7] as number) >= 0x20) {
    throw new KernelError(EINVAL, fn, `the 64-bit value at ${where} is 2^53 or more, past an exact JavaScript number: read it with two readLe32 calls`, arg);
  }
  return getLe(buf, 0, bytes);
}
