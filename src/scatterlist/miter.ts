/**
 * @module scatterlist/miter
 * sg_mapping_iter and the copy helpers (sg_copy_from_buffer, sg_copy_to_buffer, sg_pcopy_*,
 * sg_zero_buffer), moving real bytes through the machine's memory.
 */
import type { KernelContext } from '../core/context.ts';
import { PAGE_OFFSET, PAGE_SIZE } from '../mm/constants.ts';
import { Scatterlist } from './entry.ts';
import { __sg_page_iter_next, __sg_page_iter_start, SgPageIter, sg_page_iter_page } from './iter.ts';
import { notInstance } from '../core/args.ts';
import { KernelError } from '../core/errors.ts';
import { EFAULT } from '../core/errno.ts';
import { modPow2 } from '../core/mod-pow2.ts';
import { SpanJoin } from '../core/span-join.ts';

export const SG_MITER_ATOMIC = 1 << 0;
export const SG_MITER_TO_SG = 1 << 1;
export const SG_MITER_FROM_SG = 1 << 2;
export const SG_MITER_LOCAL = 1 << 3;

/**
 * struct sg_mapping_iter. `addr` is the direct-map virtual address of the mapped bytes and `phys`
 * their physical address; `length` bytes are mapped, never crossing a page.
 */
export class SgMappingIter {
  page = 0;
  /** 0 when nothing is mapped. */
  addr = 0;
  phys = 0;
  length = 0;
  consumed = 0;
  readonly piter = new SgPageIter();
  __offset = 0;
  __remaining = 0;
  __flags = 0;
  ctx: KernelContext | undefined;
}

/** sg_miter_start: begin iterating `nents` entries; warns when neither TO_SG nor FROM_SG is set. */
export function sg_miter_start(miter: SgMappingIter, sgl: Scatterlist | null, nents: number, flags: number): void {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_miter_start', 'sgl', true);
  if (!(miter instanceof SgMappingIter)) throw notInstance(miter, SgMappingIter, 'sg_miter_start', 'miter');
  miter.page = miter.addr = miter.phys = miter.length = miter.consumed = 0;
  miter.__offset = miter.__remaining = 0;
  __sg_page_iter_start(miter.piter, sgl, nents, 0);
  miter.ctx = sgl?.arena.ctx;
  if (!(flags & (SG_MITER_TO_SG | SG_MITER_FROM_SG))) miter.ctx?.klog.warn('sg_miter_start', 'WARN_ON(!(flags & (SG_MITER_TO_SG | SG_MITER_FROM_SG)))');
  miter.__flags = flags;
}

function getNextPage(miter: SgMappingIter): boolean {
  if (miter.__remaining === 0) {
    if (!__sg_page_iter_next(miter.piter)) return false;
    const sg = miter.piter.sg as Scatterlist;
    let off = miter.piter.sg_pgoffset !== 0 ? 0 : sg.offset;
    miter.piter.sg_pgoffset += Math.floor(off / PAGE_SIZE);
    off %= PAGE_SIZE;
    miter.__offset = off;
    const rem = (sg.offset + sg.length - miter.piter.sg_pgoffset * PAGE_SIZE - off) >>> 0;
    miter.__remaining = Math.min(rem, PAGE_SIZE - off);
  }
  return true;
}

/** sg_miter_skip: skip `offset` bytes; false when the list ends first. */
export function sg_miter_skip(miter: SgMappingIter, offset: number): boolean {
  if (!(miter instanceof SgMappingIter)) throw notInstance(miter, SgMappingIter, 'sg_miter_skip', 'miter');
  sg_miter_stop(miter);
  let left = offset;
  while (left > 0) {
    if (!getNextPage(miter)) return false;
    const n = Math.min(left, miter.__remaining);
    miter.__offset += n;
    miter.__remaining -= n;
    left -= n;
  }
  return true;
}

/** sg_miter_next: map the next piece (at most to the end of its page); false at the end. */
export function sg_miter_next(miter: SgMappingIter): boolean {
  if (!(miter instanceof SgMappingIter)) throw notInstance(miter, SgMappingIter, 'sg_miter_next', 'miter');
  sg_miter_stop(miter);
  if (!getNextPage(miter)) return false;
  miter.page = sg_page_iter_page(miter.piter);
  miter.consumed = miter.length = miter.__remaining;
  miter.phys = miter.page * PAGE_SIZE + miter.__offset;
  miter.addr = PAGE_OFFSET + miter.phys;
  return true;
}

/** sg_miter_stop: account what was consumed and unmap. */
export function sg_miter_stop(miter: SgMappingIter): void {
  if (!(miter instanceof SgMappingIter)) throw notInstance(miter, SgMappingIter, 'sg_miter_stop', 'miter');
  if (miter.consumed > miter.length) miter.ctx?.klog.warn('sg_miter_stop', 'WARN_ON(miter->consumed > miter->length)');
  if (miter.addr !== 0) {
    miter.__offset += miter.consumed;
    miter.__remaining -= miter.consumed;
    miter.page = miter.addr = miter.phys = miter.length = miter.consumed = 0;
  }
}

/**
 * sg_copy_buffer: copy between a buffer and the bytes the list describes, after skipping `skip`.
 * @returns bytes copied: min(buflen, list bytes - skip), or 0 when skip reaches past the end.
 */
export function sg_copy_buffer(sgl: Scatterlist | null, nents: number, buf: Uint8Array, buflen: number, skip: number, to_buffer: boolean): number {
  if (!(buf instanceof Uint8Array)) throw notInstance(buf, Uint8Array, 'sg_copy_buffer', 'buf');
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_copy_buffer', 'sgl', true);
  const miter = new SgMappingIter();
  sg_miter_start(miter, sgl, nents, SG_MITER_LOCAL | (to_buffer ? SG_MITER_FROM_SG : SG_MITER_TO_SG));
  if (!sg_miter_skip(miter, skip)) return 0;
  const limit = Math.min(buflen, buf.length);
  let offset = 0;
  // The miter maps a page at a time, as the kernel's does; pieces that follow each other in
  // physical memory are copied as one span (one copy and one access check: 64 MiB from a buffer
  // 4.9 -> see bench/RESULTS.md, session 14).
  const copy = (phys: number, at: number, n: number): void => {
    const mem = (miter.ctx as KernelContext).memory;
    if (to_buffer) mem.readPhysInto(phys, buf, at, n);
    else mem.writePhys(phys, buf, at, n);
  };
  const join = new SpanJoin((phys, at, n) => {
    try {
      copy(phys, at, n);
    } catch (e) {
      // A span may join memory that answers page by page but not whole (RAM then a BAR, two BARs,
      // RAM then a hole): the range check refused before a byte moved, so copy it a page at a time
      // as the miter mapped it, which copies what answers and fails where the miter would.
      if (!(e instanceof KernelError) || e.errno !== EFAULT) throw e;
      for (let done = 0; done < n;) {
        const k = Math.min(n - done, PAGE_SIZE - modPow2(phys + done, PAGE_SIZE));
        copy(phys + done, at + done, k);
        done += k;
      }
    }
  });
  try {
    while (offset < limit && sg_miter_next(miter)) {
      const len = Math.min(miter.length, limit - offset);
      join.add(miter.phys, offset, len);
      offset += len;
    }
  } catch (e) {
    // The pieces before a failing step (a walk off the list) were copied before it, as they were
    // page by page.
    join.flush();
    throw e;
  }
  join.flush();
  sg_miter_stop(miter);
  return offset;
}

/** sg_copy_from_buffer: buffer → list. */
export function sg_copy_from_buffer(sgl: Scatterlist | null, nents: number, buf: Uint8Array, buflen: number): number {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_copy_from_buffer', 'sgl', true);
  return sg_copy_buffer(sgl, nents, buf, buflen, 0, false);
}

/** sg_copy_to_buffer: list → buffer. */
export function sg_copy_to_buffer(sgl: Scatterlist | null, nents: number, buf: Uint8Array, buflen: number): number {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_copy_to_buffer', 'sgl', true);
  return sg_copy_buffer(sgl, nents, buf, buflen, 0, true);
}

/** sg_pcopy_from_buffer: buffer → list, starting `skip` bytes into the list. */
export function sg_pcopy_from_buffer(sgl: Scatterlist | null, nents: number, buf: Uint8Array, buflen: number, skip: number): number {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_pcopy_from_buffer', 'sgl', true);
  return sg_copy_buffer(sgl, nents, buf, buflen, skip, false);
}

/** sg_pcopy_to_buffer: list → buffer, starting `skip` bytes into the list. */
export function sg_pcopy_to_buffer(sgl: Scatterlist | null, nents: number, buf: Uint8Array, buflen: number, skip: number): number {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_pcopy_to_buffer', 'sgl', true);
  return sg_copy_buffer(sgl, nents, buf, buflen, skip, true);
}

/** sg_zero_buffer: zero `buflen` bytes of the list after `skip`; returns bytes zeroed (0 if skip fails). */
export function sg_zero_buffer(sgl: Scatterlist | null, nents: number, buflen: number, skip: number): number {
  if (!(sgl instanceof Scatterlist) && sgl !== null) throw notInstance(sgl, Scatterlist, 'sg_zero_buffer', 'sgl', true);
  const miter = new SgMappingIter();
  sg_miter_start(miter, sgl, nents, SG_MITER_LOCAL | SG_MITER_TO_SG);
  if (!sg_miter_skip(miter, skip)) return 0;
  let offset = 0;
  while (offset < buflen && sg_miter_next(miter)) {
    const len = Math.min(miter.length, buflen - offset);
    (miter.ctx as KernelContext).memory.fillPhys(miter.phys, len, 0);
    offset += len;
  }
  sg_miter_stop(miter);
  return offset;
}
