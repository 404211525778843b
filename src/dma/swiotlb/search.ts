/**
 * @module dma/swiotlb/search
 * The slot search inside one area (`swiotlb_search_pool_area`): the effective alignment and
 * preserved-bits constraints, the segment-boundary test, and the next-fit walk with its reset-to-0
 * wrap. Pure: it reads the free-run counts and returns where a run fits; the pool claims it.
 */
import { KernelBug } from '../../core/errors.ts';
import { PAGE_SIZE } from '../../mm/constants.ts';
import { and64, isPowerOfTwo, low32 } from './bits.ts';
import { IO_TLB_SIZE } from './constants.ts';

/**
 * The constraints the walk applies, after the kernel's adjustments.
 * @example searchConstraints(0xfff, 0, 4096) // { align: 0x7ff, keep: 0x800, step: 2 }
 */
export interface SearchConstraints {
  /** Effective alloc_align_mask: at least slot-aligned, page-aligned for legacy streaming maps. */
  readonly align: number;
  /** Effective min_align_mask: the device's, less the bits the alignment already fixes. */
  readonly keep: number;
  /** Slots to advance after an aligned candidate that does not fit. */
  readonly step: number;
}

/**
 * The alignment, preserved bits and stride for a request of rounded `size` bytes.
 * Legacy rule: no alignment asked, no min_align_mask and `size >= PAGE_SIZE` → page alignment.
 * @param keep the device's min_align_mask (u32).
 * @param align the alloc_align_mask argument (u32).
 * @example searchConstraints(0, 0, 4096) // { align: 0xfff, keep: 0, step: 2 }
 */
export function searchConstraints(keep: number, align: number, size: number): SearchConstraints {
  let a = align;
  if (a === 0 && keep === 0 && size >= PAGE_SIZE) a = PAGE_SIZE - 1;
  a = (a | (IO_TLB_SIZE - 1)) >>> 0;
  const k = (keep & ~a) >>> 0;
  return { align: a, keep: k, step: Math.floor(Math.max(a, k) / IO_TLB_SIZE) + 1 };
}

/**
 * Everything the walk over one area needs.
 * @example searchArea({ list, base: 128, areaNslabs: 128, start: 5, need: 2, c, tbl, maxSlots: 2 ** 53, maxSlotsPow2: true, orig })
 */
export interface AreaWalk {
  /** Free-run counts of the whole pool. */
  readonly list: Uint8Array;
  /** First pool slot of the area. */
  readonly base: number;
  /** Slots per area. */
  readonly areaNslabs: number;
  /** The area's saved next-fit index (area-local). */
  readonly start: number;
  /** Slots wanted. */
  readonly need: number;
  readonly c: SearchConstraints;
  /** `pool_start & boundary_mask`: the base address of the alignment and boundary tests. */
  readonly tbl: number;
  /** Boundary size in slots, `floor(boundary / 2048) + 1` (2^53 for ULONG_MAX). */
  readonly maxSlots: number;
  /** Is `maxSlots` a power of two? If not, the first boundary test BUGs, as in the kernel. */
  readonly maxSlotsPow2: boolean;
  /** The original address (the preserved-bits test is skipped when it is 0). */
  readonly orig: number;
}

/**
 * Walk one area next-fit from its saved index. Returns the area-local index of the first slot of a
 * fitting run, or -1. Misaligned candidates advance by 1, aligned ones that do not fit by `step`;
 * both count toward the `area_nslabs` budget, and an index past the area end restarts at 0.
 * @throws KernelBug when the boundary size is not a power of two and a candidate reaches that test.
 * @example searchArea({ list, base: 0, areaNslabs: 128, start: 0, need: 1, c, tbl, maxSlots: 2 ** 53, maxSlotsPow2: true, orig })
 */
export function searchArea(w: AreaWalk): number {
  const { list, base, areaNslabs, need, c, tbl, maxSlots, orig } = w;
  const { align, keep, step } = c;
  const tblLow = low32(tbl);
  const tblShift = Math.ceil(tbl / IO_TLB_SIZE);
  const origKeep = (low32(orig) & keep) >>> 0;
  const testOrig = orig !== 0;
  let index = w.start;
  for (let checked = 0; checked < areaNslabs;) {
    const slot = base + index;
    const a = low32(tblLow + slot * IO_TLB_SIZE);
    if ((a & align) !== 0 || (testOrig && ((a & keep) >>> 0) !== origKeep)) {
      index = index + 1 >= areaNslabs ? 0 : index + 1;
      checked++;
      continue;
    }
    if (!w.maxSlotsPow2) throw new KernelBug('iommu_is_span_boundary', 'BUG_ON(!is_power_of_2(boundary_size))');
    // iommu_is_span_boundary(): the run may not cross a multiple of maxSlots (counted from address 0).
    if (((tblShift + slot) % maxSlots) + need <= maxSlots && (list[slot] as number) >= need) return index;
    index = index + step >= areaNslabs ? 0 : index + step;
    checked += step;
  }
  return -1;
}

/**
 * What the search over all areas needs from the pool and the request.
 * @example findSlots({ list, areaIndex, areaUsed, areaNslabs: 128, start, boundary: 0xffff, keep: 0xfff, orig, size, need, align: 0, cpu: 1 })
 */
export interface FindSlots {
  readonly list: Uint8Array;
  /** Per-area next-fit index (area-local). */
  readonly areaIndex: Uint32Array;
  /** Per-area used slots. */
  readonly areaUsed: Float64Array;
  readonly areaNslabs: number;
  /** Pool start. */
  readonly start: number;
  /** Segment boundary mask; Infinity = ULONG_MAX. */
  readonly boundary: number;
  /** The device's min_align_mask. */
  readonly keep: number;
  readonly orig: number;
  /** Rounded size (bytes). */
  readonly size: number;
  /** Slots wanted. */
  readonly need: number;
  /** alloc_align_mask. */
  readonly align: number;
  /** Calling CPU. */
  readonly cpu: number;
}

/**
 * Search the areas from `cpu & (nareas - 1)` onward, wrapping; the first fitting run wins
 * (`swiotlb_find_slots`, non-dynamic). Returns the pool slot of the run's first slot, or -1.
 * Changes nothing: the caller claims the run.
 * @example findSlots({ list, areaIndex, areaUsed, areaNslabs: 128, start, boundary: Infinity, keep: 0, orig, size: 4096, need: 2, align: 0, cpu: 0 })
 */
export function findSlots(r: FindSlots): number {
  const nareas = r.areaIndex.length;
  const c = searchConstraints(r.keep, r.align, r.size);
  const tbl = and64(r.start, r.boundary);
  const maxSlots = r.boundary === Infinity ? 2 ** 53 : Math.floor(r.boundary / IO_TLB_SIZE) + 1;
  const maxSlotsPow2 = isPowerOfTwo(maxSlots);
  const first = r.cpu & (nareas - 1);
  let a = first;
  do {
    // Early exit when the area cannot hold `need` more slots (the walk would fail anyway).
    if (r.need <= r.areaNslabs - (r.areaUsed[a] as number)) {
      const base = a * r.areaNslabs;
      const found = searchArea({
        list: r.list, base, areaNslabs: r.areaNslabs, start: r.areaIndex[a] as number, need: r.need, c, tbl, maxSlots, maxSlotsPow2, orig: r.orig,
      });
      if (found >= 0) return base + found;
    }
    a = a + 1 >= nareas ? 0 : a + 1;
  } while (a !== first);
  return -1;
}
