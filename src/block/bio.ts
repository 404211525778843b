/**
 * @module block/bio
 * Bios and bio_vecs (include/linux/bio.h, block/bio.c): a bio is a list of (page, offset, length)
 * pieces of memory for one I/O. bio_add_page grows the last bvec while the new piece is physically
 * contiguous with it (a multi-page bvec), whatever the queue limits; the limits apply when the bio
 * is split and mapped.
 */
import { EINVAL, EFAULT } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { KernelContext } from '../core/context.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { FOLL_WRITE, pin_user_pages_fast, unpin_user_pages_dirty_lock, type UserMm } from '../mm/user.ts';

/** REQ_OP_READ: the device writes memory. */
export const REQ_OP_READ = 0;
/** REQ_OP_WRITE: the device reads memory. */
export const REQ_OP_WRITE = 1;

/** struct bio_vec: `len` bytes at byte `offset` from page frame `page` (the offset may pass PAGE_SIZE, as bv_offset may; len may span pages). */
export interface Bvec { page: number; offset: number; len: number }

/** Physical address of a bvec's first byte (bvec_phys). */
export function bvec_phys(bv: Bvec): number {
  if (typeof bv !== 'object' || bv === null || !Number.isSafeInteger(bv.page) || !Number.isSafeInteger(bv.offset)) throw new KernelError(EINVAL, 'bvec_phys', 'expected a bio_vec { page, offset, len }', 'bv');
  return bv.page * PAGE_SIZE + bv.offset;
}

/**
 * struct bio: the pieces of one I/O, its direction, its start sector.
 * INVARIANT: size === the sum of vecs[i].len; vecs.length <= maxVecs.
 * @example const bio = new Bio(machine, REQ_OP_READ, 16); bio_add_page(bio, pfn, 4096, 0);
 */
export class Bio {
  readonly ctx: KernelContext;
  readonly op: number;
  readonly maxVecs: number;
  readonly vecs: Bvec[] = [];
  /** bi_iter.bi_size. */
  size = 0;
  /** bi_iter.bi_sector. */
  sector = 0;
  /** BIO_PAGE_PINNED: the pages are user pages pinned for this bio (bio_release_pages unpins them). */
  pinnedFrom: UserMm | null = null;
  /** bi_next in a request's chain. */
  next: Bio | null = null;

  constructor(ctx: KernelContext, op: number, maxVecs = 256) {
    if (op !== REQ_OP_READ && op !== REQ_OP_WRITE) throw new KernelError(EINVAL, 'bio_alloc', `expected REQ_OP_READ or REQ_OP_WRITE, got ${String(op)}`, 'op');
    if (!Number.isInteger(maxVecs) || maxVecs < 1 || maxVecs > 256) throw new KernelError(EINVAL, 'bio_alloc', `nr_vecs must be 1..256 (BIO_MAX_VECS), got ${String(maxVecs)}`, 'maxVecs');
    this.ctx = ctx;
    this.op = op;
    this.maxVecs = maxVecs;
  }
}

/**
 * bio_add_page: add `len` bytes at `off` of page `page`. They extend the last bvec when physically
 * contiguous with its end; otherwise they take a new bvec.
 * @returns `len`, or 0 when the bio is full (bi_vcnt == bi_max_vecs) or would pass UINT_MAX bytes.
 * @example if (bio_add_page(bio, pfn, 4096, 0) !== 4096) submit and start a new bio
 */
export function bio_add_page(bio: Bio, page: number, len: number, off: number): number {
  if (!(bio instanceof Bio)) throw new KernelError(EINVAL, 'bio_add_page', 'expected a Bio', 'bio');
  for (const [v, arg] of [[page, 'page'], [len, 'len'], [off, 'off']] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new KernelError(EINVAL, 'bio_add_page', `expected a whole number, got ${String(v)}`, arg);
  }
  if (len === 0 || off + len > 2 ** 32) throw new KernelError(EINVAL, 'bio_add_page', `a piece of ${len} bytes at offset ${off}`, 'len');
  if (bio.size > 0xffffffff - len) return 0;
  // The offset is kept as given, as bv_offset is (dma_alignment and the fast path see it raw).
  const pg = page;
  const o = off;
  const last = bio.vecs[bio.vecs.length - 1];
  if (last !== undefined && bvec_phys(last) + last.len === pg * PAGE_SIZE + o) {
    last.len += len;
    bio.size += len;
    return len;
  }
  if (bio.vecs.length >= bio.maxVecs) return 0;
  bio.vecs.push({ page: pg, offset: o, len });
  bio.size += len;
  return len;
}

/**
 * bio_iov_iter_get_pages for a user buffer: pin the pages of [addr, addr + len) in `user` (with
 * FOLL_WRITE for a read: the device writes them) and add them. The bio owns the pins
 * (BIO_PAGE_PINNED) until bio_release_pages.
 * @returns 0; -EFAULT when not every page could be pinned, or -EINVAL when the bio fills up first
 *   (the bio is then as it was and nothing stays pinned: split the buffer over several bios).
 * @example bio_add_user_buffer(bio, machine.user, buf, 65536)
 */
export function bio_add_user_buffer(bio: Bio, user: UserMm, addr: number, len: number): number {
  if (!(bio instanceof Bio)) throw new KernelError(EINVAL, 'bio_add_user_buffer', 'expected a Bio', 'bio');
  if (bio.pinnedFrom !== null && bio.pinnedFrom !== user) return -EINVAL;
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0) throw new KernelError(EINVAL, 'bio_add_user_buffer', `expected a length, got ${String(len)}`, 'len');
  if (len === 0) return 0;
  const first = Math.floor(addr / PAGE_SIZE);
  const n = Math.ceil((addr + len) / PAGE_SIZE) - first;
  const pages: number[] = [];
  const got = pin_user_pages_fast(user, addr, n, bio.op === REQ_OP_READ ? FOLL_WRITE : 0, pages);
  if (got !== n) {
    if (got > 0) unpin_user_pages_dirty_lock(user, pages, got, false);
    return got < 0 ? got : -EFAULT;
  }
  // All or nothing: a bio that fills up is put back as it was, its new pins dropped.
  const before = { vecs: bio.vecs.length, lastLen: bio.vecs[bio.vecs.length - 1]?.len ?? 0, size: bio.size, pinned: bio.pinnedFrom };
  bio.pinnedFrom = user;
  let at = addr;
  for (let i = 0; i < n; i++) {
    const off = at % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - off, addr + len - at);
    const vecsBefore = bio.vecs.length;
    if (bio_add_page(bio, pages[i] as number, chunk, off) !== chunk) {
      bio.vecs.length = before.vecs;
      const last = bio.vecs[before.vecs - 1];
      if (last !== undefined) last.len = before.lastLen;
      bio.size = before.size;
      bio.pinnedFrom = before.pinned;
      unpin_user_pages_dirty_lock(user, pages, n, false);
      return -EINVAL;
    }
    // The first page, entered mid-page, merged into the bvec that already holds it: that page is
    // pinned once for the bio already (the kernel's unpin_user_folio(folio, 1) here).
    if (i === 0 && off !== 0 && bio.vecs.length === vecsBefore) unpin_user_pages_dirty_lock(user, [pages[0] as number], 1, false);
    at += chunk;
  }
  return 0;
}

/**
 * bio_release_pages: unpin a bio's user pages, dirtying them first when `mark_dirty` (after a read).
 * @example bio_release_pages(bio, bio.op === REQ_OP_READ)
 */
export function bio_release_pages(bio: Bio, mark_dirty: boolean): void {
  if (!(bio instanceof Bio)) throw new KernelError(EINVAL, 'bio_release_pages', 'expected a Bio', 'bio');
  const user = bio.pinnedFrom;
  if (user === null) return;
  const pages: number[] = [];
  for (const v of bio.vecs) {
    const first = v.page + Math.floor(v.offset / PAGE_SIZE);
    const last = v.page + Math.ceil((v.offset + v.len) / PAGE_SIZE) - 1;
    for (let p = first; p <= last; p++) pages.push(p);
  }
  unpin_user_pages_dirty_lock(user, pages, pages.length, mark_dirty);
  bio.pinnedFrom = null;
}
