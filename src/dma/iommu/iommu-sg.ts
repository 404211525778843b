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
import { DMA_MAPPING_ERROR, Scatterlist } from '../../scatterlist/entry.ts';
import * as S from '../../scatterlist/slots.ts';
import { nextSlot, setSlotDmaAddress, setSlotWord, slotDmaAddress, slotPhys, slotWord } from '../../scatterlist/walk.ts';
import { checkInt, notInstance } from '../../core/args.ts';
import { modPow2 } from '../../core/mod-pow2.ts';
import type { IommuSgAccessor } from '../../iommu/map.ts';

// The slot layout bound here: V8 folds a module's own const into optimized code, not an imported
// one (scatterlist/walk.ts measures it).
const SEG_MASK = S.SEG_MASK;
const SEG_SHIFT = S.SEG_SHIFT;
const SLOT_WORDS = S.SLOT_WORDS;
const W_DMA_HI = S.W_DMA_HI;
const W_DMA_LEN = S.W_DMA_LEN;
const W_DMA_LO = S.W_DMA_LO;
const W_LENGTH = S.W_LENGTH;
const W_OFFSET = S.W_OFFSET;

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

/** Is `mask + 1` a power of two (a mask of low bits), for a mask below 2^53? */
function isLowBitsMask(mask: number): boolean {
  return Number.isInteger(Math.log2(mask + 1));
}

/** x & mask for a 64-bit mask given as a number (ULONG_MAX ≥ 2^53; 2^k - 1 exact; else exact bigint). */
function and64(x: number, mask: number, lowBits: boolean): number {
  if (mask >= 2 ** 53) return x;
  if (lowBits) return modPow2(x, mask + 1);
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
  // IOMMU granules are powers of two (masks then); any other still lays out, by remainders.
  const pow2 = isLowBitsMask(granule - 1);
  // A segment boundary mask is an unsigned long: up to ULONG_MAX (2^64 as a number).
  if (typeof mask !== 'number' || !Number.isInteger(mask) || mask < 0 || mask > 2 ** 64) throw new KernelError(EINVAL, 'layoutSg', `expected a boundary mask, got ${String(mask)}`, 'mask');
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'layoutSg', 'sgl');
  const exact = mask < 2 ** 53 && !isLowBitsMask(mask);
  let iovaLen = 0;
  let padding = 0;
  let cpuBytes = 0;
  // The previous entry's words: its segment and first word (prevSeg null before the first entry).
  let prevSeg: Uint32Array | null = null;
  let prevW = 0;
  let big: bigint | null = exact ? 0n : null; // exact u64 iova_len once the fast form cannot hold it
  let bigMask: bigint | null = null; // the mask as a u64, made only once the exact form is needed
  const segs = sgl.arena.segs;
  for (let slot = sgl.slot, i = 0; i < nents && slot >= 0; i++) {
    // One segment look-up per entry, then the words directly (through a handle's getters and
    // setters layout and finalise took ~95 ns an entry; bench/RESULTS.md, session 10).
    const seg = segs[slot >>> SEG_SHIFT] as Uint32Array;
    const w = (slot & SEG_MASK) * SLOT_WORDS;
    const offset = seg[w + W_OFFSET] as number;
    const off = pow2 ? modPow2(offset, granule) : offset % granule;
    const length = seg[w + W_LENGTH] as number;
    const spanSlack = pow2 ? modPow2(length + off, granule) : (length + off) % granule;
    const span = spanSlack === 0 ? length + off : length + off - spanSlack + granule; // size_t: up to 2^32 + granule
    if (off < 2 ** 32) {
      seg[w + W_DMA_LO] = off; // sg_dma_address = off
      seg[w + W_DMA_HI] = 0;
    } else setSlotDmaAddress(segs, slot, off);
    seg[w + W_DMA_LEN] = length;
    cpuBytes += length;
    seg[w + W_OFFSET] = offset - off;
    seg[w + W_LENGTH] = span; // u32 store: a span of 4 GiB or more wraps here
    if (big === null && span === 0 && iovaLen !== 0) big = BigInt(iovaLen); // span - 1 underflows below
    if (big !== null) {
      bigMask ??= BigInt(mask === 2 ** 64 || mask >= 2 ** 53 ? U64 : mask);
      const pad = (bigMask - big + 1n) & bigMask;
      const spanMinus1 = (BigInt(span) - 1n + TWO64) % TWO64;
      if (pad !== 0n && pad < spanMinus1 && prevSeg !== null) {
        prevSeg[prevW + W_LENGTH] = Number((BigInt(prevSeg[prevW + W_LENGTH] as number) + pad) % 2n ** 32n);
        big = (big + pad) % TWO64;
        padding += Number(pad);
      }
      big = (big + BigInt(span)) % TWO64;
      iovaLen = Number(big);
    } else {
      // pad = (mask + 1 - (iova_len & mask)) & mask, mask + 1 a power of two here.
      const r = iovaLen === 0 || mask >= 2 ** 53 ? 0 : modPow2(iovaLen, mask + 1);
      const pad = iovaLen === 0 ? 0 : mask >= 2 ** 53 ? Infinity : r === 0 ? 0 : mask + 1 - r;
      if (pad !== 0 && pad < span - 1 && prevSeg !== null) {
        prevSeg[prevW + W_LENGTH] = ((prevSeg[prevW + W_LENGTH] as number) + pad) >>> 0;
        iovaLen += pad;
        padding += pad;
      }
      iovaLen += span;
    }
    prevSeg = seg;
    prevW = w;
    if (i + 1 < nents) slot = nextSlot(segs, slot);
  }
  return { iovaLen, padding, cpuBytes };
}

/**
 * The entries of a scatterlist by index, for iommu_map_sg (which walks them in order, revisiting
 * the last): a cursor makes each step O(1) on the linked, possibly chained, list.
 * @example iommu_map_sg(domain, iova, scatterlistAccessor(sgt.sgl), sgt.nents, prot, GFP_KERNEL)
 */
export function scatterlistAccessor(sgl: Scatterlist): IommuSgAccessor {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'scatterlistAccessor', 'sgl');
  return new SlotCursor(sgl);
}

/**
 * The accessor behind {@link scatterlistAccessor}: a cursor over the list's slots (one object,
 * where an accessor of closures made five per map).
 * INVARIANT: `cur` is the slot of entry `at` of the list starting at `first`.
 */
class SlotCursor implements IommuSgAccessor {
  private readonly segs: readonly Uint32Array[];
  private readonly first: number;
  private at = 0;
  private cur: number;

  constructor(sgl: Scatterlist) {
    this.segs = sgl.arena.segs;
    this.first = this.cur = sgl.slot;
  }

  private seek(i: number): number {
    if (i < this.at) {
      this.at = 0;
      this.cur = this.first;
    }
    while (this.at < i) {
      const next = nextSlot(this.segs, this.cur);
      if (next < 0) throw new KernelError(EINVAL, 'scatterlistAccessor', `the list ends after ${this.at + 1} entries, asked for entry ${i}`, 'i');
      this.cur = next;
      this.at++;
    }
    return this.cur;
  }

  phys(i: number): number {
    return slotPhys(this.segs, this.seek(i));
  }

  length(i: number): number {
    return slotWord(this.segs, this.seek(i), W_LENGTH);
  }
}

/**
 * __finalise_sg: restore each entry's CPU fields and write the merged DMA segments into entries
 * 0..count-1 (the rest get DMA_MAPPING_ERROR and length 0). An entry joins the open segment when it
 * starts on a granule, its IOVA is not on a segment boundary, and the u32 check
 * (max_len - cur_len >= length) passes; tail slack or padding closes the segment.
 */
export function finaliseSg(sgl: Scatterlist, nents: number, dmaAddrIn: number, limits: IommuSgLimits): number {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'finaliseSg', 'sgl');
  const segs = sgl.arena.segs;
  let cur = sgl.slot; // the entry holding the open DMA segment
  let curLen = 0;
  let count = 0;
  let dmaAddr = dmaAddrIn;
  const maxLen = limits.maxSegSize >>> 0;
  const boundaryMask = limits.boundaryMask;
  const lowBits = boundaryMask < 2 ** 53 && isLowBitsMask(boundaryMask);
  let curSeg = segs[cur >>> SEG_SHIFT] as Uint32Array;
  let curW = (cur & SEG_MASK) * SLOT_WORDS;
  for (let slot = sgl.slot, i = 0; i < nents && slot >= 0; i++) {
    const seg = segs[slot >>> SEG_SHIFT] as Uint32Array;
    const w = (slot & SEG_MASK) * SLOT_WORDS;
    // The layout stashed the in-granule offset in sg_dma_address (its low half).
    const iovaOff = seg[w + W_DMA_LO] as number;
    const length = seg[w + W_DMA_LEN] as number;
    const iovaLen = seg[w + W_LENGTH] as number;
    seg[w + W_DMA_LO] = 0xffffffff; // DMA_MAPPING_ERROR
    seg[w + W_DMA_HI] = 0xffffffff;
    seg[w + W_DMA_LEN] = 0;
    seg[w + W_OFFSET] = (seg[w + W_OFFSET] as number) + iovaOff;
    seg[w + W_LENGTH] = length;
    if (curLen !== 0 && iovaOff === 0 && and64(dmaAddr, boundaryMask, lowBits) !== 0 && ((maxLen - curLen) >>> 0) >= length) {
      curLen = (curLen + length) >>> 0;
    } else {
      if (i > 0) {
        cur = nextSlot(segs, cur);
        curSeg = segs[cur >>> SEG_SHIFT] as Uint32Array;
        curW = (cur & SEG_MASK) * SLOT_WORDS;
      }
      curLen = length;
      count++;
      setSlotDmaAddress(segs, cur, dmaAddr + iovaOff);
    }
    curSeg[curW + W_DMA_LEN] = curLen;
    dmaAddr += iovaLen;
    if (((length + iovaOff) >>> 0) < iovaLen) curLen = 0;
    if (i + 1 < nents) slot = nextSlot(segs, slot);
  }
  return count;
}

/** __invalidate_sg: put every entry back as it was and clear the DMA fields. */
export function invalidateSg(sgl: Scatterlist, nents: number): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'invalidateSg', 'sgl');
  const segs = sgl.arena.segs;
  for (let slot = sgl.slot, i = 0; i < nents && slot >= 0; i++) {
    const dmaAddress = slotDmaAddress(segs, slot);
    const dmaLength = slotWord(segs, slot, W_DMA_LEN);
    if (dmaAddress !== DMA_MAPPING_ERROR) setSlotWord(segs, slot, W_OFFSET, (slotWord(segs, slot, W_OFFSET) + dmaAddress) >>> 0);
    if (dmaLength !== 0) setSlotWord(segs, slot, W_LENGTH, dmaLength);
    setSlotDmaAddress(segs, slot, DMA_MAPPING_ERROR);
    setSlotWord(segs, slot, W_DMA_LEN, 0);
    if (i + 1 < nents) slot = nextSlot(segs, slot);
  }
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
    // An accessor per call: one dom.mapSg keeps stays valid, and a nested call has its own.
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
  const segs = sgl.arena.segs;
  if (slotWord(segs, sgl.slot, W_DMA_LEN) === 0) return null;
  const start = slotDmaAddress(segs, sgl.slot);
  let end = 0;
  for (let slot = sgl.slot, i = 0; i < nents && slot >= 0; i++) {
    const dmaLength = slotWord(segs, slot, W_DMA_LEN);
    if (dmaLength === 0) break;
    end = slotDmaAddress(segs, slot) + dmaLength;
    slot = i + 1 < nents ? nextSlot(segs, slot) : -1;
  }
  return end === 0 ? null : { start, size: end - start };
}
