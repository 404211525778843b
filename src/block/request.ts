/**
 * @module block/request
 * Requests from bios (block/blk-merge.c, blk-mq.c): the split rules of bio_split_rw_at (segments
 * counted per bvec, a bvec cut at seg_boundary / max_segment_size, the virt_boundary gap rule,
 * max_sectors, dma_alignment), the requests a submitted bio becomes, and their segment counts.
 */
import type { KernelContext } from '../core/context.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { checkContext, checkObject } from '../core/args.ts';
import { Bio, bvec_phys, type Bvec } from './bio.ts';
import { blk_validate_limits, get_max_segment_size, SECTOR_SIZE, type QueueLimits } from './limits.ts';

/**
 * A request queue: validated limits on one machine.
 * @example const q = blk_alloc_queue(machine, { ...blankLimits(), virt_boundary_mask: 4095 }); if (typeof q === 'number') fail
 */
export class RequestQueue {
  readonly ctx: KernelContext;
  readonly limits: Readonly<QueueLimits>;
  constructor(ctx: KernelContext, limits: QueueLimits) {
    this.ctx = ctx;
    this.limits = limits;
  }
}

/**
 * blk_mq_alloc_queue with the driver's limits (queue_limits_commit_update's validation).
 * @returns the queue, or -EINVAL when blk_validate_limits refuses the limits.
 * @example const q = blk_alloc_queue(machine, { ...blankLimits(), max_segments: 127 });
 */
export function blk_alloc_queue(ctx: KernelContext, limits: QueueLimits): RequestQueue | number {
  checkContext(ctx, 'blk_alloc_queue', 'ctx');
  const lim = { ...limits };
  const ret = blk_validate_limits(ctx, lim);
  return ret !== 0 ? ret : new RequestQueue(ctx, lim);
}

/**
 * struct request: bios chained from `bio`, with the segment count bio splitting computed.
 * INVARIANT: nr_phys_segments >= the entries blk_rq_map_sg makes (it can only merge further).
 */
export class Request {
  readonly q: RequestQueue;
  readonly bio: Bio;
  /** rq->nr_phys_segments. */
  readonly nr_phys_segments: number;
  /** Bytes of data (blk_rq_bytes). */
  readonly bytes: number;
  /** RQF_SPECIAL_PAYLOAD: one driver-provided bvec instead of the bios (discard ranges). */
  special: Bvec | null = null;
  constructor(q: RequestQueue, bio: Bio, nrPhysSegments: number) {
    if (!(q instanceof RequestQueue)) throw new KernelError(EINVAL, 'Request', 'expected a RequestQueue', 'q');
    if (!(bio instanceof Bio)) throw new KernelError(EINVAL, 'Request', 'expected a Bio', 'bio');
    if (!Number.isInteger(nrPhysSegments) || nrPhysSegments < 0 || nrPhysSegments > 0xffff) throw new KernelError(EINVAL, 'Request', `expected a segment count, got ${String(nrPhysSegments)}`, 'nrPhysSegments');
    this.q = q;
    this.bio = bio;
    this.nr_phys_segments = nrPhysSegments;
    let n = 0;
    for (let b: Bio | null = bio; b !== null; b = b.next) n += b.size;
    this.bytes = n;
  }
}

/** blk_rq_nr_phys_segments: 1 with a special payload, else nr_phys_segments. @example sg_alloc_table(sgt, blk_rq_nr_phys_segments(rq), GFP_ATOMIC) */
export function blk_rq_nr_phys_segments(rq: Request): number {
  if (!(rq instanceof Request)) throw new KernelError(EINVAL, 'blk_rq_nr_phys_segments', 'expected a Request', 'rq');
  return rq.special !== null ? 1 : rq.nr_phys_segments;
}

/** `v & mask` for a bvec offset or length (below 2^33) and a mask up to ULONG_MAX (2^64 here). */
function andMask(v: number, mask: number): number {
  if (mask >= 2 ** 32 - 1) return mask >= 2 ** 53 - 1 ? v : v % (mask + 1);
  return (v & mask) >>> 0;
}

/** __bvec_gap_to_prev: would `next` (starting at offset) leave a gap at a virt boundary after `prv`? */
function gapToPrev(lim: QueueLimits, prv: Bvec, offset: number): boolean {
  const m = lim.virt_boundary_mask;
  if (m === 0) return false;
  return andMask(offset, m) !== 0 || andMask(prv.offset + prv.len, m) !== 0;
}

/** bvec_split_segs: count segments of `bv` (cut at boundaries and max_segment_size) within the budgets; true: must split in or before it. */
function splitSegs(lim: QueueLimits, bv: Bvec, st: { nsegs: number; bytes: number }, maxSegs: number, maxBytes: number): boolean {
  const maxLen = maxBytes - st.bytes;
  let len = Math.min(bv.len, maxLen);
  let total = 0;
  while (len > 0 && st.nsegs < maxSegs) {
    const seg = get_max_segment_size(lim, bvec_phys(bv) + total, len);
    st.nsegs++;
    total += seg;
    len -= seg;
    if (lim.virt_boundary_mask !== 0 && andMask(bv.offset + total, lim.virt_boundary_mask) !== 0) break;
  }
  st.bytes += total;
  return len > 0 || bv.len > maxLen;
}

/** The result of bio_split_rw_at: where to split (0: no split) or a negative errno, and the segments counted. */
export interface SplitPoint { readonly sectors: number; readonly nsegs: number }

/**
 * bio_split_rw_at: does `bio` fit the limits in one request? Counts segments per bvec (a big
 * bvec in pieces at seg_boundary and max_segment_size), stops at max_segments, `max_bytes`, or a
 * virt_boundary gap, and rounds the split down to the logical block size.
 * @returns { sectors: 0 } when it fits; { sectors: n } to split after n sectors; { sectors: -EINVAL }
 *   for a bvec not aligned to dma_alignment or a split that would leave nothing.
 * @example bio_split_rw_at(bio, q.limits, q.limits.max_sectors << 9)
 */
export function bio_split_rw_at(bio: Bio, lim: QueueLimits, max_bytes: number): SplitPoint {
  if (!(bio instanceof Bio)) throw new KernelError(EINVAL, 'bio_split_rw_at', 'expected a Bio', 'bio');
  checkObject(lim, 'bio_split_rw_at', 'lim');
  if (typeof max_bytes !== 'number' || !Number.isSafeInteger(max_bytes) || max_bytes < 0) throw new KernelError(EINVAL, 'bio_split_rw_at', `expected a byte count, got ${String(max_bytes)}`, 'max_bytes');
  const st = { nsegs: 0, bytes: 0 };
  let prev: Bvec | null = null;
  let split = false;
  for (const bv of bio.vecs) {
    if (andMask(bv.offset, lim.dma_alignment) !== 0 || andMask(bv.len, lim.dma_alignment) !== 0) return { sectors: -EINVAL, nsegs: 0 };
    if (prev !== null && gapToPrev(lim, prev, bv.offset)) { split = true; break; }
    if (st.nsegs < lim.max_segments && st.bytes + bv.len <= max_bytes && bv.offset + bv.len <= lim.max_fast_segment_size) {
      st.nsegs++;
      st.bytes += bv.len;
    } else if (splitSegs(lim, bv, st, lim.max_segments, max_bytes)) {
      split = true;
      break;
    }
    prev = bv;
  }
  if (!split) return { sectors: 0, nsegs: st.nsegs };
  const bytes = Math.floor(st.bytes / lim.logical_block_size) * lim.logical_block_size;
  if (bytes === 0) return { sectors: -EINVAL, nsegs: st.nsegs };
  return { sectors: Math.floor(bytes / SECTOR_SIZE), nsegs: st.nsegs };
}

/** bio_may_need_split: false for a single bvec the fast path takes whole (no checks at all, as the kernel). */
function mayNeedSplit(bio: Bio, lim: QueueLimits): boolean {
  const v = bio.vecs[0];
  return bio.vecs.length !== 1 || v === undefined || v.offset + v.len > lim.max_fast_segment_size;
}

/** bio_split: the first `bytes` of `bio` as a new bio (the parent keeps the rest). */
function splitFront(bio: Bio, bytes: number): Bio {
  const front = new Bio(bio.ctx, bio.op, 256);
  front.sector = bio.sector;
  let left = bytes;
  while (left > 0) {
    const v = bio.vecs[0] as Bvec;
    if (v.len <= left) {
      front.vecs.push({ ...v });
      bio.vecs.shift();
      left -= v.len;
    } else {
      front.vecs.push({ page: v.page, offset: v.offset, len: left });
      // The remainder keeps the raw bvec's page with the offset advanced (bv_offset + bi_bvec_done),
      // so the fast path and the alignment check see it as the kernel does.
      bio.vecs[0] = { page: v.page, offset: v.offset + left, len: v.len - left };
      left = 0;
    }
  }
  front.size = bytes;
  bio.size -= bytes;
  bio.sector += Math.floor(bytes / SECTOR_SIZE);
  return front;
}

/**
 * get_max_io_size: the most sectors a request from `sector` may hold: max_sectors, ending on a
 * physical-block boundary when that leaves something, else max_sectors rounded down to the
 * logical block.
 */
function maxIoSectors(sector: number, lim: QueueLimits): number {
  const pbs = lim.physical_block_size / SECTOR_SIZE;
  const lbs = lim.logical_block_size / SECTOR_SIZE;
  const start = sector % pbs;
  const end = Math.floor((start + lim.max_sectors) / pbs) * pbs;
  return end > start ? end - start : Math.floor(lim.max_sectors / lbs) * lbs;
}

/**
 * Submit a bio to a queue (submit_bio → __bio_split_to_limits → blk_mq_bio_to_request): the
 * requests it becomes, split where the limits say, each with its nr_phys_segments. The bio given
 * is not changed (splits work on a copy); its pins stay with it for bio_release_pages.
 * @returns the requests, or -EINVAL (BLK_STS_INVAL) for a bio the limits refuse.
 * @example const rqs = blk_submit_bio(q, bio); for (const rq of rqs as Request[]) nvme_map_data(dev, rq)
 */
export function blk_submit_bio(q: RequestQueue, bio: Bio): Request[] | number {
  if (!(q instanceof RequestQueue)) throw new KernelError(EINVAL, 'submit_bio', 'expected a RequestQueue', 'q');
  if (!(bio instanceof Bio)) throw new KernelError(EINVAL, 'submit_bio', 'expected a Bio', 'bio');
  if (bio.ctx !== q.ctx) throw new KernelError(EINVAL, 'submit_bio', 'the bio belongs to another machine than the queue', 'bio');
  if (bio.size === 0) throw new KernelError(EINVAL, 'submit_bio', 'an empty bio', 'bio');
  const lim = q.limits;
  const rest = new Bio(bio.ctx, bio.op, 256);
  rest.vecs.push(...bio.vecs.map((v) => ({ ...v })));
  rest.size = bio.size;
  rest.sector = bio.sector;
  const out: Request[] = [];
  for (;;) {
    if (!mayNeedSplit(rest, lim)) {
      out.push(new Request(q, rest, 1));
      return out;
    }
    const { sectors, nsegs } = bio_split_rw_at(rest, lim, maxIoSectors(rest.sector, lim) * SECTOR_SIZE);
    if (sectors < 0) return sectors;
    if (sectors === 0) {
      out.push(new Request(q, rest, nsegs));
      return out;
    }
    const front = splitFront(rest, sectors * SECTOR_SIZE);
    out.push(new Request(q, front, nsegs));
  }
}
