/**
 * @module iommu/iova
 * The IOVA allocator of drivers/iommu/iova.c: a domain of granule-sized IOVA pfns, handed out top-down
 * by a next-fit walk that starts at a cached node (one for the 32-bit space, one for the rest), with the
 * kernel's fast-fail for exhausted 32-bit space, its one restart pass above the cached node, size
 * alignment, reservations that stretch existing ranges, and containment lookups.
 *
 * Units are IOVA pfns (address / granule). `limit_pfn` is inclusive, as in the kernel. The range caches
 * (`alloc_iova_fast` / `free_iova_fast`) live in `iova-rcache.ts`.
 */
import { checkInt, checkObject, notInstance } from '../core/args.ts';
import { modPow2 } from '../core/mod-pow2.ts';
import { defaultContext } from '../core/context.ts';
import { EINVAL, ENOMEM } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { type FaultInjector } from '../core/fault.ts';
import { type KernelLog } from '../core/kernel-log.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { Iova, IovaRbTree } from './iova-rbtree.ts';
// `import type`, not `import { type }`: the latter keeps a side-effect import, and iova-rcache.ts imports
// this module, so the cycle must vanish at run time.
import type { IovaRcaches } from './iova-rcache.ts';

export { Iova } from './iova-rbtree.ts';

/**
 * The anchor's pfn, standing for the kernel's `~0UL`. A double cannot hold 2^64 - 1, so this is 2^64:
 * above every pfn a caller can pass (pfns are safe integers), which is all the anchor is for.
 * @example iovad.anchor.pfn_lo === IOVA_ANCHOR // true
 */
export const IOVA_ANCHOR = 2 ** 64;

/**
 * Largest `limit_pfn` accepted: `limit_pfn + 1` must still be an exact JavaScript number.
 * @example alloc_iova(iovad, 1, IOVA_MAX_LIMIT_PFN, false) // fine; one more throws EINVAL
 */
export const IOVA_MAX_LIMIT_PFN = Number.MAX_SAFE_INTEGER - 1;

/**
 * Virtual time for the range caches' depot trim work (ns). A `Clock` fits: with `setTimeout` the trim
 * work runs by itself when the clock advances; without it, call `iova_depot_work_run` after moving `now`.
 * @example const time = { now: 0 }; new IovaDomain({ clock: time }); time.now += 100e6;
 */
export interface IovaTimeSource {
  readonly now: number;
  setTimeout?(delayNs: number, fire: () => void): () => void;
}

/**
 * What an IOVA domain takes from the world it lives in. All optional.
 * @example new IovaDomain({ faults: machine.faults, klog: machine.klog, clock: machine.clock, nrCpus: 4 })
 */
export interface IovaDomainOptions {
  /** Consulted with `'iova'` where the kernel allocates a `struct iova`, `'kmalloc'` for magazines. */
  readonly faults?: FaultInjector;
  /** Where WARNs go; default: `defaultContext().klog`. */
  readonly klog?: KernelLog;
  /** Time for the depot trim work; default: a private time source stuck at 0 (set `now` yourself). */
  readonly clock?: IovaTimeSource;
  /** Possible CPUs of the range caches (all online at first). Default 1. */
  readonly nrCpus?: number;
}

/**
 * The kernel's `struct iova_domain`. Build it, then `init_iova_domain()` it (and
 * `iova_domain_init_rcaches()` for the fast path), as the dma-iommu layer does.
 * @example
 * const iovad = new IovaDomain({ nrCpus: 4, clock: machine.clock, faults: machine.faults });
 * init_iova_domain(iovad, 4096, 1);
 */
export class IovaDomain {
  // INVARIANT: after init, rbroot holds the anchor [IOVA_ANCHOR, IOVA_ANCHOR] plus every allocated or
  //   reserved range, pairwise disjoint; every allocated range lies in [start_pfn, limit] of its request.
  // INVARIANT: cached_node and cached32_node are always nodes in rbroot (the anchor at first): a free
  //   that removes one first moves it to the freed node's successor.
  // INVARIANT: max32_alloc_size is dma_32bit_pfn at init, set to the size of every failed walk (whatever
  //   the limit, so it may exceed dma_32bit_pfn) and restored to dma_32bit_pfn only by removing a node
  //   whose pfn_lo < dma_32bit_pfn.
  /** Bytes per IOVA pfn (a power of two <= PAGE_SIZE); 0 until `init_iova_domain`. */
  granule = 0;
  /** log2(granule). */
  shift = 0;
  /** Lowest pfn that `alloc_iova` hands out. */
  start_pfn = 0;
  /** First pfn at or above 4 GiB: 2^(32 - shift). */
  dma_32bit_pfn = 0;
  /** 32-bit requests of this size or more fail at once. */
  max32_alloc_size = 0;
  /** The node above everything. */
  anchor: Iova = new Iova(IOVA_ANCHOR, IOVA_ANCHOR);
  /** Where the next walk for a 64-bit limit starts. */
  cached_node: Iova = this.anchor;
  /** Where the next walk for a 32-bit limit starts. */
  cached32_node: Iova = this.anchor;
  /** The ranges, by address. */
  readonly rbroot = new IovaRbTree();
  /** The range caches, once `iova_domain_init_rcaches` has run. */
  rcaches: IovaRcaches | null = null;
  readonly faults: FaultInjector | undefined;
  readonly klog: KernelLog;
  readonly clock: IovaTimeSource;
  readonly nrCpus: number;

  constructor(opts: IovaDomainOptions = {}) {
    checkObject(opts, 'IovaDomain', 'opts');
    this.faults = opts.faults;
    this.klog = opts.klog ?? defaultContext().klog;
    this.clock = opts.clock ?? { now: 0 };
    this.nrCpus = checkInt(opts.nrCpus ?? 1, 'IovaDomain', 'nrCpus', 1, 4096);
  }

  /** Allocated and reserved ranges as `[pfn_lo, pfn_hi]`, lowest first (the anchor left out). */
  ranges(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let n = this.rbroot.first(); n !== null && n !== this.anchor; n = this.rbroot.next(n)) out.push([n.pfn_lo, n.pfn_hi]);
    return out;
  }

  /** Check the INVARIANTs above (and the tree's); throws an Error naming the first one broken. For tests. */
  checkInvariants(): void {
    this.rbroot.checkInvariants();
    if (this.granule === 0) return;
    if (this.rbroot.last() !== this.anchor) throw new Error('iova_domain: the anchor is not the last node');
    if (this.cached_node._tree !== this.rbroot) throw new Error('iova_domain: cached_node is not in the tree');
    if (this.cached32_node._tree !== this.rbroot) throw new Error('iova_domain: cached32_node is not in the tree');
    if (!(this.max32_alloc_size >= 1)) throw new Error('iova_domain: max32_alloc_size below 1');
  }
}

function badArg(fn: string, arg: string, v: number, what: string): never {
  throw new KernelError(EINVAL, fn, `${what}, got ${v}`, arg);
}

function requireInit(iovad: IovaDomain, fn: string): void {
  if (iovad.granule === 0) throw new KernelBug(fn, 'iova_domain used before init_iova_domain (or after put_iova_domain)');
}

/**
 * `roundup_pow_of_two(n)` for 1 <= n <= 2^53, without 32-bit bitwise operators on large values.
 * @example roundupPowOfTwo(5) // 8
 */
export function roundupPowOfTwo(n: number): number {
  if (n <= 2 ** 31) return n <= 1 ? 1 : 2 ** (32 - Math.clz32(n - 1));
  let p = 2 ** 31;
  while (p < n) p *= 2;
  return p;
}

/**
 * `init_iova_domain(iovad, granule, start_pfn)`: an empty domain; pfns below `start_pfn` are never
 * handed out (dma-iommu passes at least 1, so IOVA 0 stays unused).
 * @throws KernelBug when `granule` is not a power of two or exceeds PAGE_SIZE (the kernel's BUG_ON).
 * @example init_iova_domain(iovad, 4096, 1); iovad.dma_32bit_pfn // 0x100000
 */
export function init_iova_domain(iovad: IovaDomain, granule: number, start_pfn: number): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'init_iova_domain', 'iovad');
  checkInt(granule, 'init_iova_domain', 'granule');
  checkInt(start_pfn, 'init_iova_domain', 'start_pfn');
  if (granule > PAGE_SIZE || granule === 0 || 2 ** Math.round(Math.log2(granule)) !== granule) {
    throw new KernelBug('init_iova_domain', `BUG_ON((granule > PAGE_SIZE) || !is_power_of_2(granule)): granule ${granule}`);
  }
  iovad.rbroot.clear();
  iovad.granule = granule;
  iovad.shift = Math.round(Math.log2(granule));
  iovad.start_pfn = start_pfn;
  iovad.dma_32bit_pfn = 2 ** (32 - iovad.shift);
  iovad.max32_alloc_size = iovad.dma_32bit_pfn;
  iovad.anchor = new Iova(IOVA_ANCHOR, IOVA_ANCHOR);
  iovad.rbroot.insert(iovad.anchor);
  iovad.cached_node = iovad.anchor;
  iovad.cached32_node = iovad.anchor;
}

/** Number of pfns in `iova`. @example iova_size(new Iova(8, 12)) // 5 */
export function iova_size(iova: Iova): number {
  if (!(iova instanceof Iova)) throw notInstance(iova, Iova, 'iova_size', 'iova');
  return iova.pfn_hi - iova.pfn_lo + 1;
}

/** log2 of the granule. @example iova_shift(iovad) // 12 */
export function iova_shift(iovad: IovaDomain): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_shift', 'iovad');
  return iovad.shift;
}

/** granule - 1. @example iova_mask(iovad) // 0xfff */
export function iova_mask(iovad: IovaDomain): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_mask', 'iovad');
  return iovad.granule - 1;
}

/** Offset of `iova` within its granule. @example iova_offset(iovad, 0x12345) // 0x345 */
export function iova_offset(iovad: IovaDomain, iova: number): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_offset', 'iovad');
  // The granule is a power of two (init_iova_domain checks): a mask, not a remainder.
  return Number.isSafeInteger(iova) && iova >= 0 ? modPow2(iova, iovad.granule) : iova % iovad.granule;
}

/** `size` rounded up to whole granules. @example iova_align(iovad, 5000) // 8192 */
export function iova_align(iovad: IovaDomain, size: number): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_align', 'iovad');
  return Math.ceil(size / iovad.granule) * iovad.granule;
}

/** `size` rounded down to whole granules. @example iova_align_down(iovad, 5000) // 4096 */
export function iova_align_down(iovad: IovaDomain, size: number): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_align_down', 'iovad');
  return Math.floor(size / iovad.granule) * iovad.granule;
}

/** Bus address of the start of `iova`. @example iova_dma_addr(iovad, iova) // iova.pfn_lo * 4096 */
export function iova_dma_addr(iovad: IovaDomain, iova: Iova): number {
  if (!(iova instanceof Iova)) throw notInstance(iova, Iova, 'iova_dma_addr', 'iova');
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_dma_addr', 'iovad');
  return iova.pfn_lo * iovad.granule;
}

/** The IOVA pfn holding bus address `iova`. @example iova_pfn(iovad, 0x12345) // 0x12 */
export function iova_pfn(iovad: IovaDomain, iova: number): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_pfn', 'iovad');
  return Math.floor(iova / iovad.granule);
}

/**
 * The walk of `__alloc_and_insert_iova_range`: find room for `size` pfns below `end` (exclusive) and
 * insert `node` there. Returns 0, or -ENOMEM after updating `max32_alloc_size` as the kernel does.
 */
function allocAndInsertRange(iovad: IovaDomain, size: number, end: number, node: Iova, sizeAligned: boolean): number {
  const dma32 = iovad.dma_32bit_pfn;
  if (end <= dma32 && size >= iovad.max32_alloc_size) return -ENOMEM;
  const tree = iovad.rbroot;
  const align = sizeAligned ? roundupPowOfTwo(size) : 1;
  let curr = end <= dma32 ? iovad.cached32_node : iovad.cached_node;
  const retryPfn = curr.pfn_hi;
  let high = end;
  let low = iovad.start_pfn;
  // The kernel restarts while low_pfn == start_pfn; after one restart low_pfn is above start_pfn
  // (retry_pfn is an allocated range's pfn_hi >= start_pfn), so one flag says the same thing.
  let restarted = false;
  for (;;) {
    let cand = -1;
    let found = false;
    let above = curr;
    for (;;) {
      if (curr.pfn_lo < high) high = curr.pfn_lo;
      above = curr;
      if (high < size) break;
      cand = align === 1 ? high - size : Math.floor((high - size) / align) * align;
      if (cand < low) break;
      const below = tree.prev(curr);
      if (below === null || cand > below.pfn_hi) {
        found = true;
        break;
      }
      curr = below;
    }
    if (found) {
      node.pfn_lo = cand;
      node.pfn_hi = cand + size - 1;
      // The new range sorts between `above` and its predecessor: insert there, as the kernel does with `prev`.
      tree.insertBefore(above, node);
      if (node.pfn_hi < dma32) iovad.cached32_node = node;
      else iovad.cached_node = node;
      return 0;
    }
    if (!restarted && retryPfn < end) {
      // Look once more, only above the cached node. The kernel starts at the first node reaching `end`
      // (iova_find_limit) or the anchor; the lowest node with pfn_hi >= end gives the same result.
      restarted = true;
      high = end;
      low = retryPfn + 1;
      curr = tree.firstEndingAtOrAbove(end) as Iova; // CHECKED: the anchor ends above every end.
      continue;
    }
    iovad.max32_alloc_size = size;
    return -ENOMEM;
  }
}

/**
 * `alloc_iova(iovad, size, limit_pfn, size_aligned)`: `size` pfns at or below `limit_pfn` (inclusive),
 * top-down next-fit; with `size_aligned`, `pfn_lo` is a multiple of roundup_pow_of_two(size).
 * @returns the new range, or null (no room, or an injected `'iova'` allocation failure).
 * @example
 * const iova = alloc_iova(iovad, 5, 0xfffff, true); // [0xffff8, 0xffffc]
 */
export function alloc_iova(iovad: IovaDomain, size: number, limit_pfn: number, size_aligned: boolean): Iova | null {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'alloc_iova', 'iovad');
  if (!(Number.isInteger(size) && size >= 1 && size <= Number.MAX_SAFE_INTEGER)) badArg('alloc_iova', 'size', size, 'expected a whole number of pfns >= 1');
  if (!(Number.isInteger(limit_pfn) && limit_pfn >= 0 && limit_pfn <= IOVA_MAX_LIMIT_PFN)) badArg('alloc_iova', 'limit_pfn', limit_pfn, `expected a pfn in [0, ${IOVA_MAX_LIMIT_PFN}]`);
  requireInit(iovad, 'alloc_iova');
  // alloc_iova_mem(): the struct iova comes first; its failure leaves the domain untouched.
  if (iovad.faults !== undefined && iovad.faults.shouldFail('iova')) return null;
  const node = new Iova(0, 0);
  return allocAndInsertRange(iovad, size, limit_pfn + 1, node, size_aligned) === 0 ? node : null;
}

/**
 * `find_iova(iovad, pfn)`: the range containing `pfn` (not only starting there), or null.
 * @example find_iova(iovad, iova.pfn_lo + 1) === iova // true
 */
export function find_iova(iovad: IovaDomain, pfn: number): Iova | null {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'find_iova', 'iovad');
  if (!(Number.isInteger(pfn) && pfn >= 0 && pfn <= Number.MAX_SAFE_INTEGER)) badArg('find_iova', 'pfn', pfn, 'expected a whole pfn');
  return iovad.rbroot.findContaining(pfn);
}

/** `remove_iova`: move the cached nodes off `iova` as the kernel does, then unlink it. */
function removeIova(iovad: IovaDomain, iova: Iova): void {
  const dma32 = iovad.dma_32bit_pfn;
  const c32 = iovad.cached32_node;
  if (iova === c32 || (iova.pfn_hi < dma32 && iova.pfn_lo >= c32.pfn_lo)) iovad.cached32_node = iovad.rbroot.next(iova) as Iova;
  if (iova.pfn_lo < dma32) iovad.max32_alloc_size = dma32;
  if (iova.pfn_lo >= iovad.cached_node.pfn_lo) iovad.cached_node = iovad.rbroot.next(iova) as Iova;
  // CHECKED: the anchor is never removed, so every removed node has a successor.
  iovad.rbroot.erase(iova);
}

/**
 * `__free_iova(iovad, iova)`: free a range returned by `alloc_iova` or `reserve_iova`.
 * @throws KernelBug when `iova` is not in this domain (a double free: memory corruption in the kernel).
 * @example __free_iova(iovad, iova);
 */
export function __free_iova(iovad: IovaDomain, iova: Iova): void {
  if (!(iova instanceof Iova)) throw notInstance(iova, Iova, '__free_iova', 'iova');
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, '__free_iova', 'iovad');
  if (iova._tree !== iovad.rbroot || iova === iovad.anchor) {
    throw new KernelBug('__free_iova', `iova [${iova.pfn_lo}, ${iova.pfn_hi}] is not allocated in this domain (double free?)`);
  }
  removeIova(iovad, iova);
}

/**
 * `free_iova(iovad, pfn)`: free the range containing `pfn`; an unknown pfn does nothing.
 * @example free_iova(iovad, iova.pfn_lo);
 */
export function free_iova(iovad: IovaDomain, pfn: number): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'free_iova', 'iovad');
  if (!(Number.isInteger(pfn) && pfn >= 0 && pfn <= Number.MAX_SAFE_INTEGER)) badArg('free_iova', 'pfn', pfn, 'expected a whole pfn');
  const iova = iovad.rbroot.findContaining(pfn);
  if (iova !== null) removeIova(iovad, iova);
}

/**
 * `reserve_iova(iovad, pfn_lo, pfn_hi)`: keep `[pfn_lo, pfn_hi]` out of allocation. Ranges it overlaps
 * are stretched down over it (in place, even live allocations) and the part above them gets a new node;
 * overlapping reservations are never merged. Returns the node covering `pfn_hi`, or null (pfns beyond
 * the address width: WARN; or an injected `'iova'` failure, which leaves the domain untouched).
 * @example reserve_iova(iovad, 100, 200); reserve_iova(iovad, 150, 300); // [100,200] and [201,300]
 */
export function reserve_iova(iovad: IovaDomain, pfn_lo: number, pfn_hi: number): Iova | null {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'reserve_iova', 'iovad');
  checkInt(pfn_lo, 'reserve_iova', 'pfn_lo');
  checkInt(pfn_hi, 'reserve_iova', 'pfn_hi');
  if (pfn_lo > pfn_hi) badArg('reserve_iova', 'pfn_hi', pfn_hi, `expected pfn_hi >= pfn_lo (${pfn_lo})`);
  requireInit(iovad, 'reserve_iova');
  const width = 2 ** (64 - iovad.shift);
  if (pfn_lo >= width || pfn_hi >= width) {
    iovad.klog.warn('reserve_iova', 'WARN_ON((pfn_hi | pfn_lo) > (ULLONG_MAX >> iova_shift(iovad)))');
    return null;
  }
  const tree = iovad.rbroot;
  // Nodes are disjoint and sorted, so the first node overlapping [pfn_lo, pfn_hi] in address order is
  // the first ending at or above pfn_lo, if it starts at or below pfn_hi; each later one overlaps while
  // it starts at or below pfn_hi. Plan first, so that a failed allocation changes nothing.
  const first = tree.firstEndingAtOrAbove(pfn_lo);
  let covered = false;
  for (let n = first; n !== null && n.pfn_lo <= pfn_hi; n = tree.next(n)) {
    if (pfn_hi <= n.pfn_hi) {
      covered = true;
      break;
    }
  }
  if (!covered && iovad.faults !== undefined && iovad.faults.shouldFail('iova')) return null;
  let lo = pfn_lo;
  for (let n = first; n !== null && n.pfn_lo <= pfn_hi; n = tree.next(n)) {
    if (lo < n.pfn_lo) n.pfn_lo = lo;
    if (pfn_hi <= n.pfn_hi) return n;
    lo = n.pfn_hi + 1;
  }
  const node = new Iova(lo, pfn_hi);
  if (!tree.insert(node)) throw new Error('INVARIANT: reserve_iova found its pfn_lo taken');
  return node;
}

/**
 * `put_iova_domain(iovad)`: destroy the domain: the range caches are dropped without returning their
 * pfns, every range is freed, and the domain must be initialised again before further use.
 * @example put_iova_domain(iovad);
 */
export function put_iova_domain(iovad: IovaDomain): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'put_iova_domain', 'iovad');
  if (iovad.rcaches !== null) {
    iovad.rcaches.destroy();
    iovad.rcaches = null;
  }
  iovad.rbroot.clear();
  iovad.granule = 0;
  iovad.anchor = new Iova(IOVA_ANCHOR, IOVA_ANCHOR);
  iovad.cached_node = iovad.anchor;
  iovad.cached32_node = iovad.anchor;
}
