/**
 * @module block/map-sg
 * blk_rq_map_sg (block/blk-mq-dma.c, v6.16+): a request's bios as scatterlist entries. An entry
 * starts where the data is and may take, from its start address, up to the next seg_boundary
 * crossing or max_segment_size; it then absorbs whole following bvecs, across bios too, while
 * they are physically contiguous, stay in its boundary window and fit. A bvec cut short starts the
 * next entry with its rest.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { Scatterlist, sg_mark_end, sg_next, sg_set_page, sg_unmark_end } from '../scatterlist/entry.ts';
import { bvec_phys, type Bio, type Bvec } from './bio.ts';
import { get_max_segment_size, type QueueLimits } from './limits.ts';
import { blk_rq_nr_phys_segments, Request, RequestQueue } from './request.ts';

/** biovec_phys_mergeable: contiguous, and the start of the first and the end of the second in one boundary window. */
function physMergeable(lim: QueueLimits, a: number, aLen: number, b: number, bLen: number): boolean {
  if (a + aLen !== b) return false;
  const w = lim.seg_boundary_mask >= 2 ** 53 - 1 ? Infinity : lim.seg_boundary_mask + 1;
  return w === Infinity || Math.floor(a / w) === Math.floor((b + bLen - 1) / w);
}

/** The request's data as physical ranges, one per sg entry (blk_map_iter_next). */
function* physRanges(rq: Request): Generator<{ paddr: number; len: number }> {
  const lim = rq.q.limits;
  const vecs: Bvec[] = [];
  if (rq.special !== null) vecs.push(rq.special);
  else for (let b: Bio | null = rq.bio; b !== null; b = b.next) vecs.push(...b.vecs);
  let i = 0;
  let done = 0; // bytes of vecs[i] already consumed (bi_bvec_done)
  while (i < vecs.length) {
    const v = vecs[i] as Bvec;
    const paddr = bvec_phys(v) + done;
    const maxSize = get_max_segment_size(lim, paddr, 0xffffffff);
    let len = Math.min(v.len - done, maxSize);
    done += len;
    if (done === v.len) { i++; done = 0; }
    // Merge whole following bvecs only when this one was used up.
    while (done === 0 && i < vecs.length) {
      const n = vecs[i] as Bvec;
      if (len + n.len > maxSize || !physMergeable(lim, paddr, len, bvec_phys(n), n.len)) break;
      len += n.len;
      i++;
    }
    yield { paddr, len };
  }
}

/**
 * blk_rq_map_sg: fill `sglist` (an array of at least blk_rq_nr_phys_segments(rq) entries) with the
 * request's segments and END-mark the last. WARNs, as the kernel's WARN_ON, when it makes more
 * entries than the request counted.
 * @returns the number of entries.
 * @example
 * sg_alloc_table(sgt, blk_rq_nr_phys_segments(rq), GFP_ATOMIC);
 * const nents = blk_rq_map_sg(rq, sgt.sgl!);
 */
export function blk_rq_map_sg(rq: Request, sglist: Scatterlist): number;
/** The pre-6.15 form, blk_rq_map_sg(q, rq, sglist): the same mapping (the queue is the request's). */
export function blk_rq_map_sg(q: RequestQueue, rq: Request, sglist: Scatterlist): number;
export function blk_rq_map_sg(rq: Request | RequestQueue, sglist: Scatterlist | Request, sglistOfOldForm?: Scatterlist): number {
  if (rq instanceof RequestQueue) {
    if (!(sglist instanceof Request)) throw new KernelError(EINVAL, 'blk_rq_map_sg', 'expected a Request', 'rq');
    if (sglist.q !== rq) throw new KernelError(EINVAL, 'blk_rq_map_sg', 'the request belongs to another queue', 'q');
    return mapSg(sglist, sglistOfOldForm as Scatterlist);
  }
  return mapSg(rq, sglist as Scatterlist);
}

function mapSg(rq: Request, sglist: Scatterlist): number {
  if (!(rq instanceof Request)) throw new KernelError(EINVAL, 'blk_rq_map_sg', 'expected a Request', 'rq');
  if (!(sglist instanceof Scatterlist)) throw new KernelError(EINVAL, 'blk_rq_map_sg', 'expected a scatterlist', 'sglist');
  if (sglist.arena.ctx !== rq.q.ctx) throw new KernelError(EINVAL, 'blk_rq_map_sg', 'the scatterlist belongs to another machine than the request', 'sglist');
  let last: Scatterlist | null = null;
  let nsegs = 0;
  for (const { paddr, len } of physRanges(rq)) {
    if (last === null) {
      last = sglist;
    } else {
      // blk_next_sg: a stale END mark from an earlier use of the table is cleared.
      sg_unmark_end(last);
      const next = sg_next(last);
      // A table shorter than the request's segments: the kernel writes past its allocation.
      if (next === null || !next.arena.isLive(next.slot)) throw new KernelBug('__blk_rq_map_sg', `the scatterlist ends after ${nsegs} entries; the request needs more (allocate blk_rq_nr_phys_segments(rq) entries)`);
      last = next;
    }
    sg_set_page(last, Math.floor(paddr / PAGE_SIZE), len, paddr % PAGE_SIZE);
    nsegs++;
  }
  if (last !== null) sg_mark_end(last);
  if (nsegs > blk_rq_nr_phys_segments(rq)) rq.q.ctx.klog.warn('__blk_rq_map_sg', `WARN_ON(nsegs > blk_rq_nr_phys_segments(rq)): ${nsegs} > ${blk_rq_nr_phys_segments(rq)}`);
  return nsegs;
}
