/**
 * @module iommu/pgtable-geometry
 * The shape of an IO page table in the io-pgtable-arm (LPAE) format: granule, input and output
 * address widths, the number of levels and what each level's entry covers, and which block sizes
 * may be leaves (`pgsize_bitmap`).
 *
 * Granule 4 KiB → leaves of 4K | 2M | 1G; 16 KiB → 16K | 32M; 64 KiB → 64K | 512M (and 4T when the
 * output width exceeds 48 bits), as arm_lpae_restrict_pgsizes. Levels are as many as the input
 * width needs (9, 11 or 13 bits a level); unlike io-pgtable-arm, which caps the input width at 48
 * bits for 4K and 16K granules, a 52-bit input width builds one more level.
 *
 * Sizes and bitmaps are plain numbers: a bitmap is the sum of its page sizes (2^42 fits), never
 * used with bitwise operators.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { checkObject } from '../core/args.ts';

import { POW2 } from '../core/bits.ts';

export { POW2, POW2_INV } from '../core/bits.ts';

/**
 * Page and block sizes (include/linux/sizes.h names).
 * @example pgtableGeometry({ pgsize_bitmap: SZ_4K + SZ_2M }).pgsize_bitmap // no 1 GiB leaves
 */
export const SZ_4K = 4096;
export const SZ_16K = 16384;
export const SZ_64K = 65536;
export const SZ_2M = 2 ** 21;
export const SZ_32M = 2 ** 25;
export const SZ_512M = 2 ** 29;
export const SZ_1G = 2 ** 30;
export const SZ_4T = 2 ** 42;

/**
 * Widest input (IOVA) or output (physical) address accepted: addresses stay exact doubles.
 * @example pgtableGeometry({ ias: IOPGTABLE_MAX_ADDR_BITS }).levels // 5
 */
export const IOPGTABLE_MAX_ADDR_BITS = 52;
/**
 * Narrowest address width accepted.
 * @example pgtableGeometry({ ias: IOPGTABLE_MIN_ADDR_BITS }).levelShift // [30, 21, 12]
 */
export const IOPGTABLE_MIN_ADDR_BITS = 32;

/**
 * How to build an IO page table. Every field is optional.
 * @example new IoPageTable({ granule: 4096, ias: 39, oas: 46 }, allocator)
 */
export interface IoPgtableConfig {
  /** Translation granule in bytes: 4096 (default), 16384 or 65536. */
  readonly granule?: number;
  /** Input (IOVA) address width in bits, 32..52; 39, 48 (default) and 52 are the usual ones. */
  readonly ias?: number;
  /** Output (physical) address width in bits, 32..52; default 48. */
  readonly oas?: number;
  /**
   * Page sizes the IOMMU supports, as a sum of powers of two. Intersected with the granule's natural
   * block sizes (as io-pgtable-arm does); the granule itself must remain. Default: all of them.
   */
  readonly pgsize_bitmap?: number;
}

/**
 * The computed shape of a page table. Level 0 is the top (the pgd); level `levels - 1` holds pages.
 * @example
 * const g = pgtableGeometry({}); // 4K granule, 48-bit IOVA
 * g.levels // 4; g.levelShift // [39, 30, 21, 12]; g.pgsize_bitmap === 4096 + 2**21 + 2**30
 */
export interface IoPgtableGeometry {
  readonly granule: number;
  /** log2(granule). */
  readonly pgShift: number;
  /** Index bits a level consumes: log2(granule / 8). */
  readonly bitsPerLevel: number;
  /** Entries in one table page: granule / 8. */
  readonly entriesPerTable: number;
  readonly ias: number;
  readonly oas: number;
  /** 2^ias: the first IOVA the table cannot translate. */
  readonly iovaLimit: number;
  /** 2^oas: the first physical address a leaf cannot point to. */
  readonly physLimit: number;
  readonly levels: number;
  // INVARIANT: levelShift[levels-1] === pgShift; levelShift[l] = levelShift[l+1] + bitsPerLevel;
  //   levelSize[l] === 2^levelShift[l]; levelEntries[l] === entriesPerTable except at level 0, where it is
  //   2^(ias - levelShift[0]) (≤ entriesPerTable).
  readonly levelShift: readonly number[];
  readonly levelSize: readonly number[];
  readonly levelEntries: readonly number[];
  /** levelLeaf[l]: a leaf may sit at level l (its size is in pgsize_bitmap). */
  readonly levelLeaf: readonly boolean[];
  /** The supported page sizes as a sum of powers of two (the kernel's pgsize_bitmap). */
  readonly pgsize_bitmap: number;
  /** log2 of each supported page size, ascending. */
  readonly pgsizeShifts: readonly number[];
  // INVARIANT: shiftLevel[s] is the level whose entries cover 2^s bytes when 2^s is a supported page
  //   size, else -1.
  readonly shiftLevel: Int8Array;
}

/**
 * The natural block sizes of a granule, as arm_lpae_restrict_pgsizes lists them.
 * @example naturalPageSizes(16384, 48) // [16384, 33554432]
 */
export function naturalPageSizes(granule: number, oas: number): number[] {
  if (granule === SZ_4K) return [SZ_4K, SZ_2M, SZ_1G];
  if (granule === SZ_16K) return [SZ_16K, SZ_32M];
  if (granule === SZ_64K) return oas > 48 ? [SZ_64K, SZ_512M, SZ_4T] : [SZ_64K, SZ_512M];
  return [];
}

/**
 * Does a bitmap (sum of powers of two) contain the power of two `size`?
 * @example bitmapHas(4096 + 2**21, 2**21) // true
 */
export function bitmapHas(bitmap: number, size: number): boolean {
  return size >= 1 && Math.floor(bitmap / size) % 2 === 1;
}

/**
 * log2 of every power of two in a bitmap, ascending (the bitmap's bits, read without bitwise ops).
 * @example bitmapShifts(4096 + 2**21 + 2**30) // [12, 21, 30]
 */
export function bitmapShifts(bitmap: number): number[] {
  const out: number[] = [];
  if (!(bitmap >= 1) || !Number.isSafeInteger(bitmap)) return out;
  for (let s = 0; s < 53; s++) if (Math.floor(bitmap / (POW2[s] as number)) % 2 === 1) out.push(s);
  return out;
}

function int(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KernelError(EINVAL, 'alloc_io_pgtable_ops', `expected a whole number in [${min}, ${max}], got ${String(value)}`, name);
  }
  return value;
}

/**
 * Compute (and check) a page table's shape from its configuration.
 * @throws KernelError EINVAL for an unknown granule, an address width outside 32..52, or a
 *   pgsize_bitmap that keeps no page of the granule's size.
 * @example pgtableGeometry({ granule: 65536, ias: 52 }).levels // 3
 */
export function pgtableGeometry(cfg: IoPgtableConfig = {}): IoPgtableGeometry {
  checkObject(cfg, 'pgtableGeometry', 'cfg');
  const granule = cfg.granule ?? SZ_4K;
  if (granule !== SZ_4K && granule !== SZ_16K && granule !== SZ_64K) {
    throw new KernelError(EINVAL, 'alloc_io_pgtable_ops', `granule must be 4096, 16384 or 65536, got ${String(granule)}`, 'granule');
  }
  const ias = int(cfg.ias ?? 48, 'ias', IOPGTABLE_MIN_ADDR_BITS, IOPGTABLE_MAX_ADDR_BITS);
  const oas = int(cfg.oas ?? 48, 'oas', IOPGTABLE_MIN_ADDR_BITS, IOPGTABLE_MAX_ADDR_BITS);
  const pgShift = Math.log2(granule);
  const bitsPerLevel = pgShift - 3;
  const vaBits = ias - pgShift;
  const levels = Math.ceil(vaBits / bitsPerLevel);
  const natural = naturalPageSizes(granule, oas);
  let bitmap = 0;
  const requested = cfg.pgsize_bitmap;
  if (requested !== undefined && !(typeof requested === 'number' && Number.isSafeInteger(requested) && requested > 0)) {
    throw new KernelError(EINVAL, 'alloc_io_pgtable_ops', `expected a positive sum of page sizes, got ${String(requested)}`, 'pgsize_bitmap');
  }
  for (const size of natural) {
    // A leaf must be the size of some level's entries, and smaller than the whole IOVA space.
    if (size >= 2 ** ias || (Math.log2(size) - pgShift) % bitsPerLevel !== 0) continue;
    if (requested === undefined || bitmapHas(requested, size)) bitmap += size;
  }
  if (!bitmapHas(bitmap, granule)) {
    throw new KernelError(EINVAL, 'alloc_io_pgtable_ops', `pgsize_bitmap 0x${String((requested ?? 0).toString(16))} keeps no ${granule}-byte page`, 'pgsize_bitmap');
  }
  const levelShift: number[] = [];
  const levelSize: number[] = [];
  const levelEntries: number[] = [];
  const levelLeaf: boolean[] = [];
  const shiftLevel = new Int8Array(64).fill(-1);
  for (let l = 0; l < levels; l++) {
    const shift = pgShift + bitsPerLevel * (levels - 1 - l);
    levelShift.push(shift);
    levelSize.push(2 ** shift);
    levelEntries.push(l === 0 ? 2 ** (ias - shift) : 2 ** bitsPerLevel);
    const leaf = bitmapHas(bitmap, 2 ** shift);
    levelLeaf.push(leaf);
    if (leaf) shiftLevel[shift] = l;
  }
  return {
    granule, pgShift, bitsPerLevel, entriesPerTable: 2 ** bitsPerLevel, ias, oas,
    iovaLimit: 2 ** ias, physLimit: 2 ** oas, levels, levelShift, levelSize, levelEntries, levelLeaf,
    pgsize_bitmap: bitmap, pgsizeShifts: bitmapShifts(bitmap), shiftLevel,
  };
}
