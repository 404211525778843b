/**
 * @module dma/swiotlb/bits
 * The C integer arithmetic swiotlb needs, done on numbers without BigInt and without bitwise
 * operators on values that may exceed 32 bits: the low 32 bits of an address, a 64-bit AND with a
 * mask (ULONG_MAX included), ALIGN() with a u32 mask, and `%016llx` formatting.
 */

const TWO_32 = 2 ** 32;

/**
 * The low 32 bits of a non-negative address below 2^53 (what C keeps when it ANDs a 64-bit value
 * with an `unsigned int` mask). Done with `%`: exact for every safe integer.
 * @example low32(2 ** 32 + 0x1234) // 0x1234
 */
export function low32(x: number): number {
  return x % TWO_32;
}

/**
 * Does `mask` stand for ULONG_MAX (all 64 bits set)? Any value from Number.MAX_SAFE_INTEGER up,
 * Infinity included, does: no address below 2^53 can tell them apart.
 * @example isUlongMax(Infinity) // true
 */
export function isUlongMax(mask: number): boolean {
  return mask >= Number.MAX_SAFE_INTEGER;
}

/**
 * `a & mask` on 64-bit values held as numbers: `a` is a safe non-negative integer; `mask` is a safe
 * non-negative integer or ULONG_MAX (see {@link isUlongMax}). The halves are ANDed separately.
 * @example and64(0x1_2345_6000, 0xffff) // 0x6000
 */
export function and64(a: number, mask: number): number {
  if (isUlongMax(mask)) return a;
  const aHi = Math.floor(a / TWO_32);
  const mHi = Math.floor(mask / TWO_32);
  const lo = ((a - aHi * TWO_32) & (mask - mHi * TWO_32)) >>> 0;
  return ((aHi & mHi) >>> 0) * TWO_32 + lo;
}

/**
 * The kernel's `ALIGN(x, mask + 1)` for a size_t `x` and an `unsigned int` mask: `(x + mask) & ~mask`.
 * `mask + 1` is computed in 32 bits, so mask 0xffffffff makes it ALIGN(x, 0), which is 0.
 * @example alignUp(3000, 0xfff) // 4096
 */
export function alignUp(x: number, mask: number): number {
  if (mask === 0xffffffff) return 0;
  const y = x + mask;
  return y - ((low32(y) & mask) >>> 0);
}

/**
 * Is `n` a power of two (n ≥ 1)? Works above 2^32.
 * @example isPowerOfTwo(2 ** 53) // true
 */
export function isPowerOfTwo(n: number): boolean {
  if (!(n >= 1) || (!Number.isSafeInteger(n) && n !== 2 ** 53)) return false;
  let v = n;
  while (v > 1) {
    if (v % 2 !== 0) return false;
    v /= 2;
  }
  return true;
}

/**
 * `%016llx` of an address (no `0x`; callers add it, as the kernel's `%pa`/`%pad` do).
 * @example hex16(0x4000000) // '0000000004000000'
 */
export function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

/**
 * `%llx` of a mask. Exact below 2^53; from there up a number cannot hold DMA_BIT_MASK(n) exactly
 * (2^60 - 1 reads as 2^60), so it prints as n one-bits, n = log2 rounded (64 from 2^63 up, and for
 * Infinity).
 * @example hexMask(0xffffffff) // 'ffffffff'; hexMask(2 ** 64) // 'ffffffffffffffff'
 */
export function hexMask(n: number): string {
  if (n < 2 ** 53) return n.toString(16);
  const bits = n >= 2 ** 63 ? 64 : Math.round(Math.log2(n));
  return (['', '1', '3', '7'][bits % 4] as string) + 'f'.repeat(Math.floor(bits / 4));
}
