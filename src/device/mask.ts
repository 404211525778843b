/**
 * @module device/mask
 * DMA masks as numbers: DMA_BIT_MASK(n) is the highest address a device can reach. Addresses in
 * dmasim stay below 2^53, so comparisons are exact; only printing a 64-bit mask needs care.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';

/**
 * DMA_BIT_MASK(n): 2^n - 1. For n >= 53 the value is not exact as a number but every simulated
 * address compares correctly against it; formatMask prints it exactly.
 * @example DMA_BIT_MASK(32) // 0xffffffff
 */
export function DMA_BIT_MASK(n: number): number {
  return n >= 64 ? 2 ** 64 : 2 ** n - 1;
}

/** The bit width of a DMA_BIT_MASK value (64 for anything at or above 2^63). */
export function maskBits(mask: number): number {
  if (mask >= 2 ** 63) return 64;
  return Math.round(Math.log2(mask + 1));
}

/** `%llx` of a 64-bit value, exact for DMA_BIT_MASK values and for exact numbers. */
export function formatMask(mask: number): string {
  if (typeof mask !== 'number' || !(mask >= 0) || !Number.isFinite(mask)) throw new KernelError(EINVAL, 'formatMask', `expected a mask, got ${String(mask)}`, 'mask');
  if (mask >= 2 ** 53) {
    const bits = maskBits(mask);
    return ((1n << BigInt(bits)) - 1n).toString(16);
  }
  return mask.toString(16);
}

/** min_not_zero(a, b). */
export function minNotZero(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

/** ULONG_MAX as a number: above every simulated address (the default segment boundary mask). */
export const ULONG_MAX = 2 ** 64;
