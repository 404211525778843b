/**
 * @module iommu/map-pgsize
 * iommu_pgsize (drivers/iommu/iommu.c): the page size for the next piece of a map or unmap, and how
 * many pages of it to do at once.
 * - Candidates: supported sizes no larger than the remaining size and (unless iova | paddr is 0) no
 *   larger than the alignment of iova | paddr. The largest wins; none left is a BUG.
 * - Count: all pages of that size that fit, except when the next larger supported size could take
 *   over: if iova and paddr sit at the same offset within that larger size and at least one whole
 *   larger page fits after the next boundary, stop at that boundary.
 * Addresses are numbers below 2^53; alignment is found without bitwise operations on them.
 */
import { KernelBug, KernelError } from '../core/errors.ts';
import { POW2, bitmapShifts } from './pgtable-geometry.ts';
import { checkObject } from '../core/args.ts';
import { EINVAL } from '../core/errno.ts';

// Local copies of imported bindings used on hot paths: when a script loads dmasim as CommonJS (tsx
// does so for a .ts file outside an ESM package), every read of an imported binding is a getter call.
const P2 = POW2;

const TWO32 = 4294967296;

/**
 * Count of trailing zero bits of a whole number below 2^53 (64 for 0, like __ffs on 0 is undefined).
 * @example ctz(0x200000) // 21
 */
export function ctz(x: number): number {
  if (x === 0) return 64;
  if (x < TWO32) return 31 - Math.clz32(x & -x);
  const hi = Math.floor(x / TWO32);
  const lo = x - hi * TWO32;
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  return 63 - Math.clz32(hi & -hi);
}

/**
 * Where {@link pgsizeFromShifts} leaves its page count (a holder, so hot loops allocate nothing).
 * @example pgsizeFromShifts(shifts, iova, paddr, size); pgsizeOut.count
 */
export const pgsizeOut = { count: 0 };

/**
 * iommu_pgsize over the supported page sizes given as ascending log2 values. Returns the page size;
 * the count goes to `pgsizeOut.count`.
 * @throws KernelBug when no supported size fits (BUG_ON(!pgsizes)).
 * @example pgsizeFromShifts([12, 21, 30], 0x200000, 0x40200000, 0x400000) // 0x200000; pgsizeOut.count === 2
 */
export function pgsizeFromShifts(shifts: ArrayLike<number>, iova: number, paddr: number, size: number): number {
  const n = shifts.length;
  // ctz(iova | paddr) is the smaller of the two (iova | paddr === 0 only when both are 0).
  let align = 64;
  if (iova !== 0 || paddr !== 0) {
    const a = ctz(iova);
    const b = ctz(paddr);
    align = a < b ? a : b;
  }
  let k = n - 1;
  for (; k >= 0; k--) {
    const s = shifts[k] as number;
    if ((P2[s] as number) <= size && s <= align) break;
  }
  if (k < 0) throw new KernelBug('iommu_pgsize', 'BUG_ON(!pgsizes)');
  const pgsize = P2[shifts[k] as number] as number;
  let span = size;
  if (k + 1 < n) {
    const next = P2[shifts[k + 1] as number] as number;
    const off = iova - Math.floor(iova / next) * next;
    if (off === paddr - Math.floor(paddr / next) * next) {
      const toBoundary = next - off;
      if (toBoundary + next <= size) span = toBoundary;
    }
  }
  pgsizeOut.count = Math.floor(span / pgsize);
  return pgsize;
}

/**
 * The page sizes of a pgsize_bitmap, worked out once. @example pgsizesOf(4096 + 2 ** 21).second // 2 ** 21
 * INVARIANT: min = 2^shifts[0], minInv = 1 / min; second = 2^shifts[1], or Infinity with one size.
 */
export interface Pgsizes {
  /** Ascending log2 page sizes. */
  readonly shifts: Uint8Array;
  readonly min: number;
  readonly minInv: number;
  readonly second: number;
}

let cachedBitmap = -1;
let cached: Pgsizes = { shifts: new Uint8Array(0), min: 0, minInv: 0, second: Number.POSITIVE_INFINITY };

/**
 * The page sizes of a pgsize_bitmap (the last one is cached: a hot loop maps into one domain, so a
 * compare replaces five table loads a call; per-page iommu_map 49.0 -> 47.8 ns, bench/iommu).
 * @example pgsizesOf(4096 + 2 ** 21).shifts // Uint8Array [12, 21]
 */
export function pgsizesOf(bitmap: number): Pgsizes {
  if (bitmap !== cachedBitmap) {
    const shifts = Uint8Array.from(bitmapShifts(bitmap));
    const min = P2[shifts[0] as number] as number;
    cached = { shifts, min, minInv: 1 / min, second: shifts.length > 1 ? (P2[shifts[1] as number] as number) : Number.POSITIVE_INFINITY };
    cachedBitmap = bitmap;
  }
  return cached;
}

/**
 * The ascending log2 page sizes of a pgsize_bitmap.
 * @example pgsizeShiftsOf(4096 + 2 ** 21) // Uint8Array [12, 21]
 */
export function pgsizeShiftsOf(bitmap: number): Uint8Array {
  return pgsizesOf(bitmap).shifts;
}

/**
 * iommu_pgsize(domain, iova, paddr, size, &count): the page size to use next; `count.value` gets
 * the number of pages of that size to map in one map_pages call.
 * @throws KernelBug when no supported size fits.
 * @example
 * const c = { value: 0 };
 * iommu_pgsize({ pgsize_bitmap: 4096 + 2 ** 21 + 2 ** 30 }, 0x200000, 0x40200000, 0x400000, c) // 0x200000; c.value === 2
 */
export function iommu_pgsize(domain: { readonly pgsize_bitmap: number }, iova: number, paddr: number, size: number, count?: { value: number }): number {
  checkObject(domain, 'iommu_pgsize', 'domain');
  if (count !== undefined && (typeof count !== 'object' || count === null)) throw new KernelError(EINVAL, 'iommu_pgsize', 'expected undefined or a { value } to receive the count', 'count');
  const pgsize = pgsizeFromShifts(pgsizeShiftsOf(domain.pgsize_bitmap), iova, paddr, size);
  if (count !== undefined) count.value = pgsizeOut.count;
  return pgsize;
}
