/**
 * @module scatterlist/iter
 * Walking tables: for_each_sg and friends, counting (sg_nents, sg_nents_for_len, sg_last), and the
 * page iterators (for_each_sg_page, for_each_sgtable_page, for_each_sgtable_dma_page).
 */
import { EINVAL } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { checkU32, checkFunction, notInstance } from '../core/args.ts';
import { oops, Scatterlist, sg_is_last, sg_next } from './entry.ts';

/**
 * A walk by sg_next visits each live slot at most once; past that many steps it has left the table
 * (an END mark erased, a handle past its chunk: unallocated slots read as zeros with no END) and
 * would never stop. The kernel would run into unmapped memory; here it is a KernelBug.
 */
function walkedOff(sg: Scatterlist, steps: number, fn: string): void {
  if (steps > sg.arena.liveSlots) throw new KernelBug(fn, `walked ${steps} entries without an END mark: the list runs past its table`);
}
import { SgTable } from './table.ts';

/**
 * for_each_sg: exactly `nents` entries from `sgl`, following chain links. Like the macro it does not
 * stop at the END mark: a list shorter than `nents` is a NULL dereference (KernelBug).
 * @example for (const sg of for_each_sg(sgt.sgl, sgt.orig_nents)) bytes += sg.length;
 */
export function* for_each_sg(sgl: Scatterlist | null, nents: number): Generator<Scatterlist, void, undefined> {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'for_each_sg', 'sgl', true);
  let sg = sgl;
  for (let i = 0; i < nents; i++) {
    if (sg === null) oops('for_each_sg', `entry ${i} of ${nents}: the list ended`);
    walkedOff(sg, i + 1, 'for_each_sg');
    yield sg;
    if (i + 1 < nents) sg = sg_next(sg);
  }
}

/**
 * Call `visit(sg, i)` for up to `nents` entries from `sgl` without generator overhead, stopping
 * early (no BUG) where the list ends or when `visit` returns false. Never steps past the last entry
 * it visits. Returns the index of the entry that returned false, else `nents`.
 * @example const done = visitSg(sgl, nents, (sg) => map(sg) >= 0); // entries mapped before a failure
 */
export function visitSg(sgl: Scatterlist, nents: number, visit: (sg: Scatterlist, i: number) => boolean | void): number {
  checkFunction(visit, 'visitSg', 'visit');
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'visitSg', 'sgl');
  let sg: Scatterlist | null = sgl;
  for (let i = 0; i < nents && sg !== null; i++) {
    if (visit(sg, i) === false) return i;
    if (i + 1 < nents) sg = sg_next(sg);
  }
  return nents;
}

/** for_each_sgtable_sg: the CPU entries (orig_nents). */
export function for_each_sgtable_sg(sgt: SgTable): Generator<Scatterlist, void, undefined> {
  if (!(sgt instanceof SgTable)) throw notInstance(sgt, SgTable, 'for_each_sgtable_sg', 'sgt');
  return for_each_sg(sgt.sgl, sgt.orig_nents);
}

/** for_each_sgtable_dma_sg: the DMA segments (nents); read sg_dma_address / sg_dma_len. */
export function for_each_sgtable_dma_sg(sgt: SgTable): Generator<Scatterlist, void, undefined> {
  if (!(sgt instanceof SgTable)) throw notInstance(sgt, SgTable, 'for_each_sgtable_dma_sg', 'sgt');
  return for_each_sg(sgt.sgl, sgt.nents);
}

/** sg_nents: data entries up to the END mark (0 for null). */
export function sg_nents(sg: Scatterlist | null): number {
  if (!(sg instanceof Scatterlist) && sg !== null) throw notInstance(sg, Scatterlist, 'sg_nents', 'sg', true);
  let n = 0;
  for (let s = sg; s !== null; s = sg_next(s)) walkedOff(s, ++n, 'sg_nents');
  return n;
}

/**
 * sg_nents_for_len: entries needed to cover `len` bytes; 0 for len 0; -EINVAL when the list is
 * shorter.
 */
export function sg_nents_for_len(sg: Scatterlist | null, len: number): number {
  if (!(sg instanceof Scatterlist) && sg !== null) throw notInstance(sg, Scatterlist, 'sg_nents_for_len', 'sg', true);
  if (len === 0) return 0;
  let n = 0;
  let total = 0;
  for (let s = sg; s !== null; s = sg_next(s)) {
    walkedOff(s, ++n, 'sg_nents_for_len');
    total += s.length;
    if (total >= len) return n;
  }
  return -EINVAL;
}

/**
 * sg_last: the entry reached after `nents` steps; BUG when it is not the END-marked one.
 * @throws KernelBug as the kernel's BUG_ON(!sg_is_last(ret)).
 */
export function sg_last(sgl: Scatterlist | null, nents: number): Scatterlist {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_last', 'sgl', true);
  let ret: Scatterlist | null = null;
  let sg = sgl;
  for (let i = 0; i < nents; i++) {
    if (sg === null && i > 0) oops('sg_last', 'walked past the end of the list');
    ret = sg;
    if (sg !== null) sg = sg_next(sg);
  }
  if (ret === null) oops('sg_last', 'nents 0 or an empty list');
  if (!sg_is_last(ret)) throw new KernelBug('sg_last', 'BUG_ON(!sg_is_last(ret)): the entry reached is not the end of the list');
  return ret;
}

/** Pages an entry touches from the start of its first page: PAGE_ALIGN(offset + length) / PAGE_SIZE. */
export function sg_page_count(sg: Scatterlist): number {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_page_count', 'sg');
  return Math.ceil(((sg.offset + sg.length) >>> 0) / PAGE_SIZE);
}

/** Pages the DMA segment spans, mixing the CPU offset with the DMA length as the kernel does. */
export function sg_dma_page_count(sg: Scatterlist): number {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_page_count', 'sg');
  return Math.ceil(((sg.offset + sg.dma_length) >>> 0) / PAGE_SIZE);
}

/**
 * struct sg_page_iter.
 * @example
 * const it = new SgPageIter(); __sg_page_iter_start(it, sgt.sgl, sgt.orig_nents, 0);
 * while (__sg_page_iter_next(it)) pfns.push(sg_page_iter_page(it));
 */
export class SgPageIter {
  sg: Scatterlist | null = null;
  sg_pgoffset = 0;
  __nents = 0;
  __pg_advance = 0;
  /** @internal entries walked, to catch a walk off the table. */
  __steps = 0;
}

export function __sg_page_iter_start(piter: SgPageIter, sgl: Scatterlist | null, nents: number, pgoffset: number): void {
  if (!(piter instanceof SgPageIter)) throw notInstance(piter, SgPageIter, '__sg_page_iter_start', 'piter');
  checkU32(nents, '__sg_page_iter_start', 'nents');
  // An unsigned long in C; NaN or a fraction would never reach the end of the list.
  if (typeof pgoffset !== 'number' || !Number.isSafeInteger(pgoffset) || pgoffset < 0) {
    throw new KernelError(EINVAL, '__sg_page_iter_start', `expected a page offset, got ${String(pgoffset)}`, 'pgoffset');
  }
  piter.sg = sgl;
  piter.sg_pgoffset = pgoffset;
  piter.__nents = nents;
  piter.__pg_advance = 0;
  piter.__steps = 1;
}

function pageIterNext(piter: SgPageIter, count: (sg: Scatterlist) => number): boolean {
  if (piter.__nents === 0 || piter.sg === null) return false;
  piter.sg_pgoffset += piter.__pg_advance;
  piter.__pg_advance = 1;
  while (piter.sg_pgoffset >= count(piter.sg)) {
    piter.sg_pgoffset -= count(piter.sg);
    piter.sg = sg_next(piter.sg);
    if (--piter.__nents === 0 || piter.sg === null) return false;
    piter.__steps++;
    walkedOff(piter.sg, piter.__steps, '__sg_page_iter_next');
  }
  return true;
}

/** __sg_page_iter_next: advance to the next page; false at the end. */
export function __sg_page_iter_next(piter: SgPageIter): boolean {
  if (!(piter instanceof SgPageIter)) throw notInstance(piter, SgPageIter, '__sg_page_iter_next', 'piter');
  return pageIterNext(piter, sg_page_count);
}

/** __sg_page_iter_dma_next: the DMA variant (page count from sg_dma_len). */
export function __sg_page_iter_dma_next(piter: SgPageIter): boolean {
  if (!(piter instanceof SgPageIter)) throw notInstance(piter, SgPageIter, '__sg_page_iter_dma_next', 'piter');
  return pageIterNext(piter, sg_dma_page_count);
}

/** sg_page_iter_page: the current page frame. */
export function sg_page_iter_page(piter: SgPageIter): number {
  if (!(piter instanceof SgPageIter)) throw notInstance(piter, SgPageIter, 'sg_page_iter_page', 'piter');
  return (piter.sg as Scatterlist).page + piter.sg_pgoffset;
}

/** sg_page_iter_dma_address: the DMA address of the current page. */
export function sg_page_iter_dma_address(piter: SgPageIter): number {
  if (!(piter instanceof SgPageIter)) throw notInstance(piter, SgPageIter, 'sg_page_iter_dma_address', 'piter');
  return (piter.sg as Scatterlist).dma_address + piter.sg_pgoffset * PAGE_SIZE;
}

/**
 * for_each_sg_page: yields the (mutated) iterator at each page, as the macro does.
 * @example for (const it of for_each_sg_page(sgl, nents, 0)) pfns.push(sg_page_iter_page(it));
 */
export function* for_each_sg_page(sgl: Scatterlist | null, nents: number, pgoffset: number): Generator<SgPageIter, void, undefined> {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'for_each_sg_page', 'sgl', true);
  const it = new SgPageIter();
  __sg_page_iter_start(it, sgl, nents, pgoffset);
  while (__sg_page_iter_next(it)) yield it;
}

/** for_each_sg_dma_page: pages of the DMA segments; read sg_page_iter_dma_address. */
export function* for_each_sg_dma_page(sgl: Scatterlist | null, dma_nents: number, pgoffset: number): Generator<SgPageIter, void, undefined> {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'for_each_sg_dma_page', 'sgl', true);
  const it = new SgPageIter();
  __sg_page_iter_start(it, sgl, dma_nents, pgoffset);
  while (__sg_page_iter_dma_next(it)) yield it;
}

/** for_each_sgtable_page: CPU pages over orig_nents. */
export function for_each_sgtable_page(sgt: SgTable, pgoffset: number): Generator<SgPageIter, void, undefined> {
  if (!(sgt instanceof SgTable)) throw notInstance(sgt, SgTable, 'for_each_sgtable_page', 'sgt');
  return for_each_sg_page(sgt.sgl, sgt.orig_nents, pgoffset);
}

/** for_each_sgtable_dma_page: DMA pages over nents. */
export function for_each_sgtable_dma_page(sgt: SgTable, pgoffset: number): Generator<SgPageIter, void, undefined> {
  if (!(sgt instanceof SgTable)) throw notInstance(sgt, SgTable, 'for_each_sgtable_dma_page', 'sgt');
  return for_each_sg_dma_page(sgt.sgl, sgt.nents, pgoffset);
}
