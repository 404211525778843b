/**
 * @module dma/iommu/iommu-sg
 * How dma-iommu maps a scatterlist (drivers/iommu/dma-iommu.c): every entry is padded to whole
 * IOVA granules (the unaligned parts stashed in the still-unused DMA fields), the previous entry is
 * padded so no entry straddles the device's segment boundary, the whole list gets one size-aligned
 * IOVA range, iommu_map_sg maps the physical runs, and __finalise_sg merges entries into as few DMA
 * segments as the four conditions allow. The integer widths are the kernel's: u32 lengths and the
 * u32 max-segment check that wraps, u64 IOVA sizes.
 */
import { KernelError } from '../../core/errors.ts';
import { EINVAL, ENOMEM, EREMOTEIO } from '../../core/errno.ts';
import { DMA_MAPPING_ERROR, Scatterlist, sg_next, sg_phys } from '../../scatterlist/entry.ts';
import { visitSg } from '../../scatterlist/iter.ts';
import { checkInt, notInstance } from '../../core/args.ts';
import type { IommuSgAccessor } from '../../iommu/map.ts';

const TWO64 = 2n ** 64n;
const U64 = TWO64 - 1n;

/** What dma-iommu needs from its domain while mapping a list. */
export interface IommuSgDomain {
  /** IOVA granule (smallest IOMMU page size), a power of two. */
  readonly granule: number;
  /** iommu_dma_alloc_iova: a size-aligned range of `size` bytes below `limit`, or 0. */
  allocIova(size: number): number;
  /** iommu_dma_free_iova. */
  freeIova(iova: number, size: number): void;
  /**
   * iommu_map_sg of the laid-out entries from `iova` (the IOMMU core's, with its one sync and its
   * unwind): bytes mapped, or a negative errno with nothing of it left mapped.
   */
  mapSg(iova: number, sg: IommuSgAccessor, nents: number): number;
}

/** Device limits the layout and merge follow. */
export interface IommuSgLimits {
  /** dma_get_seg_boundary(dev); ≥ 2^53 means ULONG_MAX. */
  readonly boundaryMask: number;
  /** dma_get_max_seg_size(dev) (u32). */
  readonly maxSegSize: number;
}

/** Extra physical memory the boundary padding exposed to the device, per mapped list. */
export interface IommuSgReport {
  /** Bytes of IOVA (= bytes of physical memory beyond the buffer) added by boundary padding. */
  readonly paddingBytes: number;
  /** Bytes added by aligning entries to granules (head and tail slack). */
  readonly slackBytes: number;
  readonly iova: number;
  readonly iovaLen: number;
}

/** x & mask for a 64-bit mask given as a number (ULONG_MAX ≥ 2^53; 2^k - 1 exact; else exact bigint). */
function and64(x: number, mask: number): number {
  if (mask >= 2 ** 53) return x;
  if (Number.isInteger(Math.log2(mask + 1))) return x % (mask + 1);
  return Number(BigInt(x) & BigInt(mask));
}

/**
 * The layout pass of iommu_dma_map_sg: align each entry to granules, stash offset and length in
 * dma_address / dma_length, pad the previous entry up to a segment boundary where the next entry
 * would straddle it. Returns the IOVA length (u64 arithmetic, as a number; 0 when it wrapped to 0),
 * the padding added and the entries' total length (the CPU bytes).
 */
export function layoutSg(sgl: Scatterlist, nents: number, granule: number, mask: number): { iovaLen: number; padding: number; cpuBytes: number } {
  checkInt(granule, 'layoutSg', 'granule', 1);
  // A segment boundary mask is an unsigned long: up to ULONG_MAX (2^64 as a number).
  if (typeof mask !== 'number' || !Number.isInteger(mask) || mask < 0 || mask > 2 ** 64) throw new KernelError(EINVAL, 'layoutSg', `expected a boundary mask, got ${String(mask)}`, 'mask');
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'layoutSg', 'sgl');
  const exact = mask < 2 ** 53 && !Number.isInteger(Math.log2(mask + 1));
  let iovaLen = 0;
  let padding = 0;
  let cpuBytes = 0;
  let prev: Scatterlist | null = null;
  let big: bigint | null = exact ? 0n : null; // exact u64 iova_len once the fast form cannot hold it
  visitSg(sgl, nents, (s) => {
    const off = s.offset % granule;
    const length = s.length;
    const span = Math.ceil((length + off) / granule) * granule; // size_t: up to 2^32 + granule
    s.dma_address = off;
    s.dma_length = length;
    cpuBytes += length;
    s.offset = s.offset - off;
    s.length = span; // u32 store: a span of 4 GiB or more wraps here
    if (big === null && span === 0 && iovaLen !== 0) big = BigInt(iovaLen); // span - 1 underflows below
    if (big !== null) {
      const b = BigInt(mask === 2 ** 64 || mask >= 2 ** 53 ? U64 : mask);
      const pad = (b - big + 1n) & b;
      const spanMinus1 = (BigInt(span) - 1n + TWO64) % TWO64;
      if (pad !== 0n && pad < spanMinus1 && prev !== null) {
        prev.length = Number((BigInt(prev.length) + pad) % 2n ** 32n);
        big = (big + pad) % TWO64;
        padding += Number(pad);
      }
      big = (big + BigInt(span)) % TWO64;
      iovaLen = Number(big);
    } else {
      const pad = iovaLen === 0 ? 0 : mask >= 2 ** 53 ? Infinity : (mask + 1 - (iovaLen % (mask + 1))) % (mask + 1);
      if (pad !== 0 && pad < span - 1 && prev !== null) {
        prev.length = (prev.length + pad) >>> 0;
        iovaLen += pad;
        padding += pad;
      }
      iovaLen += span;
    }
    prev = s;
  });
  return { iovaLen, padding, cpuBytes };
}

/**
 * The entries of a scatterlist by index, for iommu_map_sg (which walks them in order, revisiting
 * the last): a cursor makes each step O(1) on the linked, possibly chained, list.
 * @example iommu_map_sg(domain, iova, scatterlistAccessor(sgt.sgl), sgt.nents, prot, GFP_KERNEL)
 */
export function scatterlistAccessor(sgl: Scatterlist): IommuSgAccessor {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'scatterlistAccessor', 'sgl');
  let at = 0;
  let cur = sgl;
  const seek = (i: number): Scatterlist => {
    if (i < at) {
      at = 0;
      cur = sgl;
    }
    while (at < i) {
      const next = sg_next(cur);
      if (next === null) throw new KernelError(EINVAL, 'scatterlistAccessor', `the list ends after ${at + 1} entries, asked for entry ${i}`, 'i');
      cur = next;
      at++;
    }
    return cur;
  };
  return { phys: (i) => sg_phys(seek(i)), length: (i) => seek(i).length };
}

/**
 * __finalise_sg: restore each entry's CPU fields and write the merged DMA segments into entries
 * 0..count-1 (the rest get DMA_MAPPING_ERROR and length 0). An entry joins the open segment when it
 * starts on a granule, its IOVA is not on a segment boundary, and the u32 check
 * (max_len - cur_len >= length) passes; tail slack or padding closes the segment.
 */
export function finaliseSg(sgl: Scatterlist, nents: number, dmaAddrIn: number, limits: IommuSgLimits): number {
  let cur = sgl;
  let curLen = 0;
  let count = 0;
  let dmaAddr = dmaAddrIn;
  const maxLen = limits.maxSegSize >>> 0;
  visitSg(sgl, nents, (s, i) => {
    const iovaOff = s.dma_address >>> 0;
    const length = s.dma_length;
    const iovaLen = s.length;
    s.dma_address = DMA_MAPPING_ERROR;
    s.dma_length = 0;
    s.offset = (s.offset + iovaOff) >>> 0;
    s.length = length;
    if (curLen !== 0 && iovaOff === 0 && and64(dmaAddr, limits.boundaryMask) !== 0 && ((maxLen - curLen) >>> 0) >= length) {
      curLen = (curLen + length) >>> 0;
    } else {
      if (i > 0) cur = sg_next(cur) as Scatterlist;
      curLen = length;
      count++;
      cur.dma_address = dmaAddr + iovaOff;
    }
    cur.dma_length = curLen;
    dmaAddr += iovaLen;
    if (((length + iovaOff) >>> 0) < iovaLen) curLen = 0;
  });
  return count;
}

/** __invalidate_sg: put every entry back as it was and clear the DMA fields. */
export function invalidateSg(sgl: Scatterlist, nents: number): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'invalidateSg', 'sgl');
  visitSg(sgl, nents, (s) => {
    if (s.dma_address !== DMA_MAPPING_ERROR) s.offset = (s.offset + s.dma_address) >>> 0;
    if (s.dma_length !== 0) s.length = s.dma_length;
    s.dma_address = DMA_MAPPING_ERROR;
    s.dma_length = 0;
  });
}

/**
 * iommu_dma_map_sg without the swiotlb and P2P paths: layout, one IOVA range, map, merge. Returns
 * the DMA segment count or -ENOMEM / -EREMOTEIO / -EINVAL (every entry restored on failure).
 */
export function iommuDmaMapSg(dom: IommuSgDomain, limits: IommuSgLimits, sgl: Scatterlist, nents: number, report?: (r: IommuSgReport) => void): number {
  const { iovaLen, padding, cpuBytes } = layoutSg(sgl, nents, dom.granule, limits.boundaryMask);
  if (iovaLen === 0) return finaliseSg(sgl, nents, 0, limits);
  const iova = dom.allocIova(iovaLen);
  let ret: number;
  if (iova === 0) {
    ret = -ENOMEM;
  } else {
    ret = dom.mapSg(iova, scatterlistAccessor(sgl), nents);
    if (ret >= 0 && ret >= iovaLen) {
      report?.({ paddingBytes: padding, slackBytes: iovaLen - padding - cpuBytes, iova, iovaLen });
      return finaliseSg(sgl, nents, iova, limits);
    }
    dom.freeIova(iova, iovaLen);
  }
  invalidateSg(sgl, nents);
  return ret === -ENOMEM || ret === -EREMOTEIO ? ret : -EINVAL;
}

/**
 * The IOVA range iommu_dma_unmap_sg releases: from the first segment's address to the end of the
 * last segment before the first zero-length one; null when there is none (a leading empty segment
 * releases nothing, as in the kernel).
 */
export function unmapSgRange(sgl: Scatterlist, nents: number): { start: number; size: number } | null {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'unmapSgRange', 'sgl');
  let s: Scatterlist | null = sgl;
  if (s.dma_length === 0) return null;
  const start = s.dma_address;
  let end = 0;
  for (let i = 0; i < nents && s !== null; i++) {
    if (s.dma_length === 0) break;
    end = s.dma_address + s.dma_length;
    s = i + 1 < nents ? sg_next(s) : null;
  }
  return end === 0 ? null : { start, size: end - start };
}
