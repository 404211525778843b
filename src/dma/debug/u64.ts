/**
 * @module dma/debug/u64
 * The 64-bit unsigned arithmetic dma-debug needs, on plain numbers: no BigInt, and bitwise operators
 * only on 32-bit halves. A value is read as a u64: a negative number is two's complement (so -1, the
 * DMA_MAPPING_ERROR sentinel, is all ones), anything from 2^64 up wraps. Numbers at or above 2^53
 * are taken at their exact double value (which is always an integer there).
 */
import { HASH_FN_SHIFT, HASH_SIZE } from './constants.ts';

const HASH_MASK = HASH_SIZE - 1;

const TWO32 = 2 ** 32;

/**
 * The high 32 bits of `x` read as a u64.
 * @example hi32(-1) // 0xffffffff
 */
export function hi32(x: number): number {
  // floor(x / 2^32) is exact, and >>> 0 keeps its low 32 bits: two's complement for a negative
  // x, the wrap at 2^64 for a large one (with remainders instead, each map through dma-debug paid
  // several of V8's runtime fmod calls: bench/RESULTS.md, session 10).
  return Math.floor(x / TWO32) >>> 0;
}

/**
 * The low 32 bits of `x` read as a u64.
 * @example lo32(2 ** 32 + 5) // 5
 */
export function lo32(x: number): number {
  // ToUint32: the integer modulo 2^32, exact for every finite number.
  return x >>> 0;
}

/**
 * `%016llx`: 16 lower-case hex digits, no `0x`.
 * @example hex16(-1) // 'ffffffffffffffff'
 */
export function hex16(x: number): string {
  if (x >= 0 && x <= Number.MAX_SAFE_INTEGER) return x.toString(16).padStart(16, '0');
  return hi32(x).toString(16).padStart(8, '0') + lo32(x).toString(16).padStart(8, '0');
}

/**
 * `0x%016llx` (and `%pa`): the `{A}` of the messages.
 * @example hexA(0x1000) // '0x0000000000001000'
 */
export function hexA(x: number): string {
  return `0x${hex16(x)}`;
}

const CHUNK = 1e6;

/**
 * `%llu`, exact for every u64 (long division on the 32-bit halves, six decimal digits at a time).
 * @example decU64(2 ** 64 - 2 ** 20) // '18446744073708503040'
 */
export function decU64(x: number): string {
  if (x >= 0 && x <= Number.MAX_SAFE_INTEGER) return String(x);
  let hi = hi32(x);
  let lo = lo32(x);
  let out = '';
  while (hi > 0 || lo >= CHUNK) {
    const qh = Math.floor(hi / CHUNK);
    // rh * 2^32 + lo < 1e6 * 2^32 < 2^53: exact.
    const t = (hi - qh * CHUNK) * TWO32 + lo;
    const ql = Math.floor(t / CHUNK);
    out = String(t - ql * CHUNK).padStart(6, '0') + out;
    hi = qh;
    lo = ql;
  }
  return String(lo) + out;
}

function safe(x: number): boolean {
  return x >= 0 && x <= Number.MAX_SAFE_INTEGER;
}

/**
 * `a <= b` for u64s.
 * @example u64LessEq(5, -1) // true (-1 is 2^64 - 1)
 */
export function u64LessEq(a: number, b: number): boolean {
  if (safe(a) && safe(b)) return a <= b;
  const ha = hi32(a);
  const hb = hi32(b);
  return ha < hb || (ha === hb && lo32(a) <= lo32(b));
}

/**
 * `(a + b) mod 2^64 >= (c + d) mod 2^64`: the end-of-range comparison of a containing lookup.
 * @example u64SumGreaterEq(0x1000, 0x1000, 0x1800, 2 ** 64 - 0x1000) // true (the right side wraps to 0x800)
 */
export function u64SumGreaterEq(a: number, b: number, c: number, d: number): boolean {
  if (safe(a) && safe(b) && safe(c) && safe(d) && a + b <= Number.MAX_SAFE_INTEGER && c + d <= Number.MAX_SAFE_INTEGER) {
    return a + b >= c + d;
  }
  let l1 = lo32(a) + lo32(b);
  let h1 = hi32(a) + hi32(b);
  if (l1 >= TWO32) { l1 -= TWO32; h1++; }
  h1 %= TWO32;
  let l2 = lo32(c) + lo32(d);
  let h2 = hi32(c) + hi32(d);
  if (l2 >= TWO32) { l2 -= TWO32; h2++; }
  h2 %= TWO32;
  return h1 > h2 || (h1 === h2 && l1 >= l2);
}

/**
 * The last byte of `[start, start + len)`, `start + len - 1` wrapping at 2^64, as `[hi, lo]`.
 * @example u64End(0, 0) // [0xffffffff, 0xffffffff]
 */
export function u64End(start: number, len: number): [number, number] {
  let lo = lo32(start) + lo32(len);
  let hi = hi32(start) + hi32(len);
  if (lo >= TWO32) { lo -= TWO32; hi++; }
  if (lo === 0) { lo = TWO32; hi--; }
  lo--;
  hi >>>= 0; // modulo 2^32, as a u64 wraps (no runtime fmod)
  return [hi, lo];
}

function hexHalves(hi: number, lo: number): string {
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/**
 * A 64-bit mask as `[hi, lo]` halves. Masks at or above 2^53 cannot be held exactly, so they are
 * read as the DMA_BIT_MASK they stand for (2^63 and up, Infinity included: all 64 bits, ULONG_MAX).
 * @example maskHalves(0xffff) // [0, 0xffff]
 */
export function maskHalves(mask: number): [number, number] {
  if (mask < 0 || mask >= 2 ** 63) return [0xffffffff, 0xffffffff];
  if (mask > Number.MAX_SAFE_INTEGER) {
    const bits = Math.min(64, Math.round(Math.log2(mask)));
    return [2 ** (bits - 32) - 1, 0xffffffff];
  }
  return [hi32(mask), lo32(mask)];
}

/**
 * Does the DMA range `[start, start + len - 1]` (64-bit, wrapping) cross a boundary of `mask`, i.e.
 * is `(start ^ end) & ~mask` non-zero? Returns null when it does not, else the three values as
 * `%016llx` strings for the report.
 * @example crossesBoundary(0xf000, 0x2000, 0xffff)?.end // '0000000000010fff'
 */
export function crossesBoundary(start: number, len: number, mask: number): { start: string; end: string; boundary: string } | null {
  const [eh, el] = u64End(start, len);
  const [mh, ml] = maskHalves(mask);
  const sh = hi32(start);
  const sl = lo32(start);
  if (((sh ^ eh) & ~mh) === 0 && ((sl ^ el) & ~ml) === 0) return null;
  return { start: hexHalves(sh, sl), end: hexHalves(eh, el), boundary: hexHalves(mh, ml) };
}

/**
 * The hash bucket of a DMA address: `(addr >> 13) & 0x3fff` (only the low word matters).
 * @example hashBucket(0x2000) // 1
 */
export function hashBucket(addr: number): number {
  return (lo32(addr) >>> HASH_FN_SHIFT) & HASH_MASK;
}

/**
 * How many buckets a containing lookup may visit: `min(16384, (addr >> 13) + 1)`.
 * @example walkLimit(0x5000) // 3
 */
export function walkLimit(addr: number): number {
  if (hi32(addr) > 0) return 16384;
  return Math.min(16384, Math.floor(lo32(addr) / 8192) + 1);
}
