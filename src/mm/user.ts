/**
 * @module mm/user
 * A user address space (struct mm_struct) and pinned user pages (mm/gup.c): anonymous mappings
 * backed by the machine's pages on first touch (2 MiB folios for huge mappings, as THP), and
 * pin_user_pages_fast / unpin_user_page* with per-page pin counts, `pinned_vm` and
 * RLIMIT_MEMLOCK as drivers (RDMA's ib_umem_get, VFIO, io_uring) account them.
 *
 * Not modelled: file mappings, ZONE_MOVABLE and CMA (so FOLL_LONGTERM never migrates), fork/COW.
 */
import { EFAULT, EINVAL, ENOMEM, EOVERFLOW } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from './constants.ts';
import { GFP_KERNEL, __GFP_NOWARN, __GFP_ZERO } from './gfp.ts';
import type { Mm } from './mm.ts';

/** FOLL_* flags (include/linux/mm_types.h) and the internal ones callers may not pass (mm/internal.h). */
export const FOLL_WRITE = 1 << 0;
export const FOLL_GET = 1 << 1;
export const FOLL_DUMP = 1 << 2;
export const FOLL_FORCE = 1 << 3;
export const FOLL_NOWAIT = 1 << 4;
export const FOLL_NOFAULT = 1 << 5;
export const FOLL_HWPOISON = 1 << 6;
export const FOLL_ANON = 1 << 7;
export const FOLL_LONGTERM = 1 << 8;
export const FOLL_SPLIT_PMD = 1 << 9;
export const FOLL_PCI_P2PDMA = 1 << 10;
export const FOLL_INTERRUPTIBLE = 1 << 11;
export const FOLL_HONOR_NUMA_FAULT = 1 << 12;
export const FOLL_PIN = 1 << 19;
/** FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN | FOLL_FAST_ONLY | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE. */
const INTERNAL_GUP_FLAGS = (1 << 16) | (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20) | (1 << 21) | (1 << 22);
/** What gup_fast_fallback accepts (FOLL_FAST_ONLY is 1 << 20). */
const FAST_FLAGS = FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET | (1 << 20) | FOLL_NOFAULT | FOLL_PCI_P2PDMA | FOLL_HONOR_NUMA_FAULT;

/** x86-64's TASK_SIZE_MAX with 4-level paging: the end of user space. */
export const TASK_SIZE_MAX = 2 ** 47 - PAGE_SIZE;
/** The kernel's default RLIMIT_MEMLOCK (MLOCK_LIMIT, 8 MiB since v5.16). */
export const MLOCK_LIMIT = 8 * 2 ** 20;
/** A PMD-sized transparent huge page. */
const HPAGE_SIZE = 2 * 2 ** 20;
const HPAGE_ORDER = 9;

/** Protection of a mapping. */
export interface MmapOptions {
  /** PROT_WRITE (default true). */
  readonly write?: boolean;
  /** Back it with 2 MiB folios where aligned (MADV_HUGEPAGE on a THP-enabled system). Default false. */
  readonly huge?: boolean;
  /** Fault every page in now (MAP_POPULATE). Default false. */
  readonly populate?: boolean;
}

/** One anonymous mapping. */
class Vma {
  readonly start: number;
  readonly end: number;
  readonly write: boolean;
  readonly huge: boolean;
  // INVARIANT: pfn.get(i) is the pfn backing page i of the mapping once faulted in; absent: not yet.
  readonly pfn = new Map<number, number>();
  constructor(start: number, end: number, write: boolean, huge: boolean) {
    this.start = start;
    this.end = end;
    this.write = write;
    this.huge = huge;
  }
}

function checkNum(v: unknown, fn: string, arg: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new KernelError(EINVAL, fn, `expected a whole number, got ${String(v)}`, arg);
  return v;
}

/**
 * A process's address space (struct mm_struct) on one machine.
 * @example
 * const user = machine.user; const buf = user.mmap(1 << 20);
 * const pages: number[] = []; pin_user_pages_fast(user, buf, 256, FOLL_WRITE | FOLL_LONGTERM, pages);
 */
export class UserMm {
  readonly mm: Mm;
  /** Pages pinned for long and accounted by the pinner (mm->pinned_vm; RDMA adds to it). */
  pinned_vm = 0;
  /** Pages mlocked or accounted with account_locked_vm (mm->locked_vm; VFIO). */
  locked_vm = 0;
  /** RLIMIT_MEMLOCK in bytes (default MLOCK_LIMIT, 8 MiB). */
  rlimitMemlock = MLOCK_LIMIT;
  /** capable(CAP_IPC_LOCK): the limit does not apply. */
  capIpcLock = false;
  /** The mapping set had a pin taken (MMF_HAS_PINNED). */
  hasPinned = false;
  // INVARIANT: vmas are sorted by start and disjoint, all inside (0, TASK_SIZE_MAX].
  private readonly _vmas: Vma[] = [];
  /** Next top-down mmap address. */
  private _top = 0x7f00_0000_0000;

  constructor(mm: Mm) {
    if (typeof mm !== 'object' || mm === null || typeof (mm as { alloc_pages?: unknown }).alloc_pages !== 'function') {
      throw new KernelError(EINVAL, 'UserMm', 'expected the machine\'s memory (an Mm)', 'mm');
    }
    this.mm = mm;
  }

  /**
   * mmap an anonymous mapping of `length` bytes (rounded up to pages; huge mappings to 2 MiB
   * alignment). Returns its address, or -ENOMEM when the address space is full.
   * @example const addr = user.mmap(4 << 20, { huge: true });
   */
  mmap(length: number, opts: MmapOptions = {}): number {
    checkNum(length, 'mmap', 'length');
    if (length === 0) return -EINVAL;
    if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'mmap', 'expected options', 'opts');
    const huge = opts.huge === true;
    const align = huge ? HPAGE_SIZE : PAGE_SIZE;
    const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    const start = Math.floor((this._top - len) / align) * align;
    if (start <= 0) return -ENOMEM;
    this._top = start - PAGE_SIZE; // a guard gap
    const vma = new Vma(start, start + len, opts.write !== false, huge);
    this._vmas.push(vma);
    this._vmas.sort((a, b) => a.start - b.start);
    if (opts.populate === true) {
      for (let a = start; a < vma.end; a += PAGE_SIZE) if (this._fault(vma, a) < 0) break;
    }
    return start;
  }

  /**
   * munmap [addr, addr + length): whole mappings only. Pages still pinned stay allocated until
   * their last unpin (the pin holds a reference), as in the kernel.
   * @returns 0, or -EINVAL when the range is not exactly one or more whole mappings.
   */
  munmap(addr: number, length: number): number {
    checkNum(addr, 'munmap', 'addr');
    checkNum(length, 'munmap', 'length');
    const end = addr + Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    const hit = this._vmas.filter((v) => v.start >= addr && v.end <= end);
    if (hit.length === 0 || hit.some((v) => v.start < addr)) return -EINVAL;
    for (const v of hit) {
      for (const pfn of new Set(v.pfn.values())) this._dropMapping(pfn, v);
      this._vmas.splice(this._vmas.indexOf(v), 1);
    }
    return 0;
  }

  /** Write user memory (the process touching its buffer), faulting pages in. @throws KernelError EFAULT outside a writable mapping. */
  write(addr: number, bytes: Uint8Array): void {
    checkNum(addr, 'UserMm.write', 'addr');
    if (!(bytes instanceof Uint8Array)) throw new KernelError(EINVAL, 'UserMm.write', 'expected a Uint8Array', 'bytes');
    this._each(addr, bytes.length, true, 'UserMm.write', (phys, at, n) => this.mm.writePhys(phys, bytes, at, n));
  }

  /** Read user memory. @throws KernelError EFAULT outside a mapping. */
  read(addr: number, length: number): Uint8Array {
    checkNum(addr, 'UserMm.read', 'addr');
    checkNum(length, 'UserMm.read', 'length');
    const out = new Uint8Array(length);
    this._each(addr, length, false, 'UserMm.read', (phys, at, n) => this.mm.readPhysInto(phys, out, at, n));
    return out;
  }

  /** The pfn behind user address `addr` (faulting it in), or a negative errno: -EFAULT unmapped or not writable for a write, -ENOMEM. */
  faultIn(addr: number, write: boolean, force = false): number {
    const vma = this._vmas.find((v) => addr >= v.start && addr < v.end);
    if (vma === undefined) return -EFAULT;
    if (write && !vma.write && !force) return -EFAULT;
    return this._fault(vma, addr);
  }

  /** The pfn already backing `addr` (no fault), or -EFAULT: unmapped, not yet touched, or not writable for a write. */
  presentPfn(addr: number, write: boolean, force = false): number {
    const vma = this._vmas.find((v) => addr >= v.start && addr < v.end);
    if (vma === undefined || (write && !vma.write && !force)) return -EFAULT;
    return vma.pfn.get(Math.floor((addr - vma.start) / PAGE_SIZE)) ?? -EFAULT;
  }

  /** The mapping holding `addr`, as [start, end), or undefined. */
  mappingAt(addr: number): { readonly start: number; readonly end: number; readonly huge: boolean } | undefined {
    const v = this._vmas.find((x) => addr >= x.start && addr < x.end);
    return v === undefined ? undefined : { start: v.start, end: v.end, huge: v.huge };
  }

  private _each(addr: number, len: number, write: boolean, fn: string, visit: (phys: number, at: number, n: number) => void): void {
    let at = 0;
    while (at < len) {
      const a = addr + at;
      const pfn = this.faultIn(a, write);
      if (pfn < 0) throw new KernelError(-pfn, fn, `user address 0x${a.toString(16)} is not ${write ? 'writable' : 'mapped'}`, 'addr');
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - at);
      visit(pfn * PAGE_SIZE + off, at, n);
      at += n;
    }
  }

  /** Fault in the page of `vma` holding `addr`: a 2 MiB folio for a huge mapping when the aligned range fits and memory allows. */
  private _fault(vma: Vma, addr: number): number {
    const idx = Math.floor((addr - vma.start) / PAGE_SIZE);
    const have = vma.pfn.get(idx);
    if (have !== undefined) return have;
    if (vma.huge) {
      const hStart = Math.floor(addr / HPAGE_SIZE) * HPAGE_SIZE;
      if (hStart >= vma.start && hStart + HPAGE_SIZE <= vma.end) {
        const pfn = this.mm.alloc_pages(GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN, HPAGE_ORDER, 'user');
        if (pfn !== null) {
          // One folio: its pages are split so each is freed alone, but they stay consecutive.
          this.mm.split_page(pfn, HPAGE_ORDER);
          const first = (hStart - vma.start) / PAGE_SIZE;
          for (let i = 0; i < 2 ** HPAGE_ORDER; i++) vma.pfn.set(first + i, pfn + i);
          return pfn + (idx - first);
        }
      }
    }
    const pfn = this.mm.alloc_pages(GFP_KERNEL | __GFP_ZERO, 0, 'user');
    if (pfn === null) return -ENOMEM;
    vma.pfn.set(idx, pfn);
    return pfn;
  }

  /** The mapping goes away: free the page unless a pin still holds it. */
  private _dropMapping(pfn: number, _vma: Vma): void {
    if (this.mm.pinsOf(pfn) > 0) this.mm.deferFreeUntilUnpinned(pfn);
    else this.mm.__free_pages(pfn, 0);
  }
}

function checkUser(user: unknown, fn: string): UserMm {
  if (!(user instanceof UserMm)) throw new KernelError(EINVAL, fn, 'expected a user address space (machine.user)', 'mm');
  return user;
}

function checkPages(pages: unknown, fn: string): { length: number; [i: number]: number } {
  if (pages === null || typeof pages !== 'object' || typeof (pages as { length?: unknown }).length !== 'number') {
    throw new KernelError(EINVAL, fn, 'expected an array to receive page frame numbers', 'pages');
  }
  return pages as { length: number; [i: number]: number };
}

/**
 * pin_user_pages_fast: pin up to `nr_pages` pages of `user` from `start` (rounded down to a page)
 * into `pages`, faulting them in. Each pin holds its page (a page freed while pinned is a
 * KernelBug); unpin with unpin_user_page*. The count may be short: an errno only when nothing was pinned.
 * @returns pages pinned; -EINVAL (WARN_ON_ONCE) for internal flags, FOLL_GET, FOLL_LONGTERM with
 *   FOLL_PCI_P2PDMA, or flags the fast path refuses (FOLL_DUMP, FOLL_NOWAIT, ...); -EOVERFLOW;
 *   -EFAULT past TASK_SIZE_MAX, unmapped, or a write to a read-only mapping without FOLL_FORCE; -ENOMEM.
 * @example const n = pin_user_pages_fast(machine.user, addr, 512, FOLL_WRITE | FOLL_LONGTERM, pageList);
 */
export function pin_user_pages_fast(user: UserMm, start: number, nr_pages: number, gup_flags: number, pages: number[] | Float64Array | Uint32Array): number {
  const fn = 'pin_user_pages_fast';
  checkUser(user, fn);
  checkNum(start, fn, 'start');
  checkNum(nr_pages, fn, 'nr_pages');
  if (typeof gup_flags !== 'number' || !Number.isInteger(gup_flags) || gup_flags < 0 || gup_flags > 0xffffffff) throw new KernelError(EINVAL, fn, `expected FOLL_* flags, got ${String(gup_flags)}`, 'gup_flags');
  const klog = user.mm.ctx.klog;
  // is_valid_gup_args
  if (gup_flags & INTERNAL_GUP_FLAGS) { klog.warnOnce('gup:internal', 'is_valid_gup_args', 'WARN_ON_ONCE(to_set & INTERNAL_GUP_FLAGS)'); return -EINVAL; }
  const flags = gup_flags | FOLL_PIN;
  if (flags & FOLL_GET) { klog.warnOnce('gup:pinget', 'is_valid_gup_args', 'WARN_ON_ONCE((gup_flags & (FOLL_PIN | FOLL_GET)) == (FOLL_PIN | FOLL_GET))'); return -EINVAL; }
  if ((flags & FOLL_LONGTERM) && (flags & FOLL_PCI_P2PDMA)) { klog.warnOnce('gup:p2p', 'is_valid_gup_args', 'WARN_ON_ONCE((gup_flags & FOLL_LONGTERM) && (gup_flags & FOLL_PCI_P2PDMA))'); return -EINVAL; }
  // gup_fast_fallback
  if (pages === null || pages === undefined) { klog.warnOnce('gup:nopages', 'is_valid_gup_args', 'WARN_ON_ONCE((gup_flags & (FOLL_GET | FOLL_PIN)) && !pages)'); return -EINVAL; }
  if (flags & ~FAST_FLAGS) { klog.warnOnce('gup:fastflags', 'gup_fast_fallback', 'WARN_ON_ONCE(gup_flags & ~(FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET | FOLL_FAST_ONLY | FOLL_NOFAULT | FOLL_PCI_P2PDMA | FOLL_HONOR_NUMA_FAULT))'); return -EINVAL; }
  const out = checkPages(pages, fn);
  if (nr_pages === 0) return 0;
  user.hasPinned = true;
  const base = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  const end = base + nr_pages * PAGE_SIZE;
  if (!Number.isSafeInteger(end) || end >= 2 ** 64) return -EOVERFLOW;
  if (end > TASK_SIZE_MAX) return -EFAULT;
  if (!Array.isArray(out) && out.length < nr_pages) throw new KernelError(EINVAL, fn, `the array holds ${out.length} entries, nr_pages is ${nr_pages}`, 'pages');
  const write = (flags & FOLL_WRITE) !== 0;
  let got = 0;
  for (; got < nr_pages; got++) {
    // FOLL_NOFAULT: only pages already present; faulting one in is refused (-EFAULT).
    const pfn = (flags & FOLL_NOFAULT) !== 0 ? user.presentPfn(base + got * PAGE_SIZE, write, (flags & FOLL_FORCE) !== 0) : user.faultIn(base + got * PAGE_SIZE, write, (flags & FOLL_FORCE) !== 0);
    if (pfn < 0) {
      if (got === 0) return pfn;
      break;
    }
    user.mm.pin(pfn);
    out[got] = pfn;
  }
  return got;
}

/**
 * unpin_user_page: drop one pin (GUP_PIN_COUNTING_BIAS off the refcount).
 * @throws KernelBug for a page that holds no pin: the kernel's refcount would underflow and free
 *   a page still in use.
 * @example unpin_user_page(machine.user, pfn)
 */
export function unpin_user_page(user: UserMm, page: number): void {
  checkUser(user, 'unpin_user_page');
  user.mm.unpin(checkNum(page, 'unpin_user_page', 'page'), 'unpin_user_page');
}

/** unpin_user_pages: unpin `npages` entries of `pages`. @example unpin_user_pages(machine.user, pageList, n) */
export function unpin_user_pages(user: UserMm, pages: ArrayLike<number>, npages: number): void {
  unpin_user_pages_dirty_lock(user, pages, npages, false);
}

/**
 * unpin_user_pages_dirty_lock: unpin `npages` entries of `pages`, marking each folio dirty first
 * when `make_dirty` (the device wrote them). Every page is checked before any is unpinned.
 * @example unpin_user_pages_dirty_lock(machine.user, pageList, n, true)
 */
export function unpin_user_pages_dirty_lock(user: UserMm, pages: ArrayLike<number>, npages: number, make_dirty: boolean): void {
  const fn = make_dirty ? 'unpin_user_pages_dirty_lock' : 'unpin_user_pages';
  checkUser(user, fn);
  const arr = checkPages(pages, fn);
  // A driver's error path passing pin_user_pages_fast's -errno: the kernel WARNs and does nothing.
  if (typeof npages === 'number' && Number.isInteger(npages) && npages < 0) {
    user.mm.ctx.klog.warn(fn, 'WARN_ON(IS_ERR_VALUE(npages))');
    return;
  }
  checkNum(npages, fn, 'npages');
  if (npages > arr.length) throw new KernelError(EINVAL, fn, `npages ${npages} exceeds the ${arr.length} entries`, 'npages');
  const want = new Map<number, number>();
  for (let i = 0; i < npages; i++) {
    const p = arr[i] as number | null | undefined;
    if (p === null || p === undefined) continue; // NULL entries are skipped
    want.set(p, (want.get(p) ?? 0) + 1);
  }
  for (const [p, n] of want) if (user.mm.pinsOf(p) < n) throw new KernelBug(fn, `page 0x${Number(p).toString(16)} is unpinned ${n} times but holds ${user.mm.pinsOf(p)} pins (refcount underflow)`);
  for (let i = 0; i < npages; i++) {
    const p = arr[i] as number | null | undefined;
    if (p === null || p === undefined) continue;
    if (make_dirty) user.mm.markDirty(p);
    user.mm.unpin(p, fn);
  }
}

/**
 * unpin_user_page_range_dirty_lock: unpin `npages` physically consecutive pages from `page` (one
 * sg entry's pages, as RDMA's umem release does), dirtying them first when `make_dirty`.
 * @example unpin_user_page_range_dirty_lock(machine.user, sg_page(sg), sg.length / 4096, true)
 */
export function unpin_user_page_range_dirty_lock(user: UserMm, page: number, npages: number, make_dirty: boolean): void {
  const fn = 'unpin_user_page_range_dirty_lock';
  checkUser(user, fn);
  checkNum(page, fn, 'page');
  checkNum(npages, fn, 'npages');
  const list = Array.from({ length: npages }, (_, i) => page + i);
  unpin_user_pages_dirty_lock(user, list, npages, make_dirty);
}

/**
 * account_locked_vm: charge (`inc`) or release `pages` of mm->locked_vm against RLIMIT_MEMLOCK,
 * as VFIO does. @returns 0, or -ENOMEM (nothing charged) past the limit without CAP_IPC_LOCK.
 * @example if (account_locked_vm(machine.user, npages, true) !== 0) return -ENOMEM;
 */
export function account_locked_vm(user: UserMm, pages: number, inc: boolean): number {
  checkUser(user, 'account_locked_vm');
  checkNum(pages, 'account_locked_vm', 'pages');
  if (pages === 0) return 0;
  if (inc) {
    if (!user.capIpcLock && user.locked_vm + pages > Math.floor(user.rlimitMemlock / PAGE_SIZE)) return -ENOMEM;
    user.locked_vm += pages;
    return 0;
  }
  if (pages > user.locked_vm) user.mm.ctx.klog.warnOnce('account_locked_vm:dec', '__account_locked_vm', 'WARN_ON_ONCE(pages > locked_vm)');
  user.locked_vm -= pages;
  return 0;
}
