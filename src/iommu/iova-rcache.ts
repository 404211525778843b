/**
 * @module iommu/iova-rcache
 * The IOVA range caches of drivers/iommu/iova.c (Bonwick & Adams magazines): for each of the 6 orders
 * (1..32 pfns), every CPU holds a `loaded` and a `prev` magazine of up to 127 pfns, and full magazines
 * overflow into a depot that a delayed work trims by one magazine every 100 ms while it holds more
 * magazines than there are online CPUs. Cached pfns keep their tree nodes, so a hit touches neither the
 * tree nor its cached nodes. `alloc_iova_fast` / `free_iova_fast` take the CPU as an explicit argument.
 *
 * Hot path: a hit is a few typed-array reads and writes, no allocation (magazines are Float64Arrays,
 * since pfns can exceed 2^32); an alloc_iova_fast + free_iova_fast pair costs ~20-30 ns
 * (bench/iova.bench.ts).
 */
import { EINVAL, ENOMEM } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { alloc_iova, find_iova, free_iova, IOVA_MAX_LIMIT_PFN, __free_iova, IovaDomain } from './iova.ts';
import { notInstance } from '../core/args.ts';

/** log2 of the largest cached size + 1: orders 0..5 (1..32 pfns) are cached. @example 2 ** (IOVA_RANGE_CACHE_MAX_SIZE - 1) // 32 */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;
/** pfns per magazine (so that the kernel's magazine is 1024 bytes). @example iovad.rcaches?.cached(0, 0).loaded.length // <= IOVA_MAG_SIZE */
export const IOVA_MAG_SIZE = 127;
/** Delay of the depot trim work: 100 ms, in ns. @example clock.advance(IOVA_DEPOT_DELAY_NS) // an armed trim runs */
export const IOVA_DEPOT_DELAY_NS = 100_000_000;

/** Sizes below this are rounded up to a power of two by `alloc_iova_fast`; also the largest cached size. */
const ROUND_BELOW = 2 ** (IOVA_RANGE_CACHE_MAX_SIZE - 1);

/** `iova_rcache_range()`: the largest size the caches hold, in bytes. @example iova_rcache_range() // 131072 */
export function iova_rcache_range(): number {
  return PAGE_SIZE * 2 ** (IOVA_RANGE_CACHE_MAX_SIZE - 1);
}

/**
 * One magazine: a stack of pfns.
 * @example const m = new IovaMagazine(); m.pfns[m.size++] = pfn;
 */
export class IovaMagazine {
  // INVARIANT: 0 <= size <= IOVA_MAG_SIZE; pfns[0..size) are the cached pfns, oldest slot first.
  size = 0;
  readonly pfns = new Float64Array(IOVA_MAG_SIZE);
}

/**
 * The range caches of one domain (`iovad->rcaches`), created by `iova_domain_init_rcaches`.
 * Magazines of (order, cpu) sit at index `order * nrCpus + cpu` of `loaded` / `prev`.
 * @example iovad.rcaches?.depotSize(0) // full magazines waiting in the order-0 depot
 */
export class IovaRcaches {
  // INVARIANT: every CPU, online or not, always owns exactly two magazines per order (loaded, prev).
  // INVARIANT: depot[o] holds only full magazines; its last element is the head (pushed last).
  // INVARIANT: every pfn in a magazine or depot is the pfn_lo of a node still in the domain's tree
  //   (unless a caller freed a pfn it did not own into the cache, as the kernel allows).
  // INVARIANT: workDue[o] >= 0 ⇔ the trim work of order o is armed, due at that time (ns).
  readonly nrCpus: number;
  readonly loaded: IovaMagazine[] = [];
  readonly prev: IovaMagazine[] = [];
  readonly depot: IovaMagazine[][] = [];
  /** 1 where the CPU is online. Reading it also checks the `cpu` argument (anything else reads undefined). */
  readonly online: Uint8Array;
  nrOnline: number;
  readonly workDue = new Float64Array(IOVA_RANGE_CACHE_MAX_SIZE).fill(-1);
  private readonly _workSeq = new Float64Array(IOVA_RANGE_CACHE_MAX_SIZE);
  private readonly _cancel: Array<(() => void) | undefined> = new Array<(() => void) | undefined>(IOVA_RANGE_CACHE_MAX_SIZE).fill(undefined);
  private _seq = 0;
  /** Time at which the running trim work was due, or -1 outside one: re-arming counts from it. */
  private _runningAt = -1;
  private _spare: IovaMagazine[] = [];
  private readonly _iovad: IovaDomain;
  private _dead = false;

  constructor(iovad: IovaDomain) {
    if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'IovaRcaches', 'iovad');
    this._iovad = iovad;
    this.nrCpus = iovad.nrCpus;
    this.online = new Uint8Array(this.nrCpus).fill(1);
    this.nrOnline = this.nrCpus;
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE * this.nrCpus; i++) {
      this.loaded.push(new IovaMagazine());
      this.prev.push(new IovaMagazine());
    }
    for (let o = 0; o < IOVA_RANGE_CACHE_MAX_SIZE; o++) this.depot.push([]);
  }

  /** Full magazines in the depot of `order`. */
  depotSize(order: number): number {
    return (this.depot[order] as IovaMagazine[]).length;
  }

  /** The pfns cached by `cpu` for `order`, slot 0 first. */
  cached(order: number, cpu: number): { loaded: number[]; prev: number[] } {
    const i = order * this.nrCpus + cpu;
    const l = this.loaded[i] as IovaMagazine;
    const p = this.prev[i] as IovaMagazine;
    return { loaded: Array.from(l.pfns.subarray(0, l.size)), prev: Array.from(p.pfns.subarray(0, p.size)) };
  }

  /**
   * Visit every cached pfn of every order, with no array made (the IOMMU audit runs at every point
   * of a failure sweep).
   * @example let n = 0; rcaches.forEachCached(() => n++);
   */
  forEachCached(visit: (pfn: number) => void): void {
    const visitMag = (m: IovaMagazine): void => {
      for (let i = 0; i < m.size; i++) visit(m.pfns[i] as number);
    };
    for (let i = 0; i < this.loaded.length; i++) {
      visitMag(this.loaded[i] as IovaMagazine);
      visitMag(this.prev[i] as IovaMagazine);
    }
    for (const d of this.depot) for (const m of d) visitMag(m);
  }

  /** Every cached pfn of `order` (CPU magazines, then the depot from its head). */
  allCached(order: number): number[] {
    const out: number[] = [];
    for (let c = 0; c < this.nrCpus; c++) {
      const { loaded, prev } = this.cached(order, c);
      out.push(...loaded, ...prev);
    }
    const d = this.depot[order] as IovaMagazine[];
    for (let k = d.length - 1; k >= 0; k--) {
      const m = d[k] as IovaMagazine;
      out.push(...m.pfns.subarray(0, m.size));
    }
    return out;
  }

  /** @internal A magazine for the kernel's iova_magazine_alloc; empty. */
  newMagazine(): IovaMagazine {
    const m = this._spare.pop() ?? new IovaMagazine();
    m.size = 0;
    return m;
  }

  /** @internal iova_magazine_free. */
  releaseMagazine(m: IovaMagazine): void {
    this._spare.push(m);
  }

  /** @internal schedule_delayed_work(&rcache->work, IOVA_DEPOT_DELAY): nothing if already armed. */
  scheduleWork(order: number): void {
    if ((this.workDue[order] as number) >= 0) return;
    const clock = this._iovad.clock;
    const base = this._runningAt >= 0 ? this._runningAt : clock.now;
    const due = base + IOVA_DEPOT_DELAY_NS;
    this.workDue[order] = due;
    this._workSeq[order] = this._seq++;
    if (clock.setTimeout !== undefined) {
      this._cancel[order] = clock.setTimeout(due - clock.now, () => {
        this._cancel[order] = undefined;
        if ((this.workDue[order] as number) >= 0) this.runWork(order);
      });
    }
  }

  /** @internal The armed work due first at or before `now` (ties: armed first), or -1. */
  nextDue(now: number): number {
    let best = -1;
    for (let o = 0; o < IOVA_RANGE_CACHE_MAX_SIZE; o++) {
      const due = this.workDue[o] as number;
      if (due < 0 || due > now) continue;
      if (best < 0) best = o;
      else {
        const bd = this.workDue[best] as number;
        if (due < bd || (due === bd && (this._workSeq[o] as number) < (this._workSeq[best] as number))) best = o;
      }
    }
    return best;
  }

  /** @internal iova_depot_work_func for `order`; returns 1 when it trimmed a magazine. */
  runWork(order: number): number {
    const at = this.workDue[order] as number;
    this.workDue[order] = -1;
    const cancel = this._cancel[order];
    this._cancel[order] = undefined;
    cancel?.();
    if (this._dead) return 0;
    const d = this.depot[order] as IovaMagazine[];
    if (d.length <= this.nrOnline) return 0;
    const mag = d.pop() as IovaMagazine;
    magazineFreePfns(this._iovad, mag);
    this.releaseMagazine(mag);
    this._runningAt = at;
    this.scheduleWork(order);
    this._runningAt = -1;
    return 1;
  }

  /** @internal free_iova_rcaches: drop every magazine (their pfns stay in the tree) and cancel the work. */
  destroy(): void {
    this._dead = true;
    for (let o = 0; o < IOVA_RANGE_CACHE_MAX_SIZE; o++) {
      this.workDue[o] = -1;
      this._cancel[o]?.();
      this._cancel[o] = undefined;
      (this.depot[o] as IovaMagazine[]).length = 0;
    }
    for (const m of this.loaded) m.size = 0;
    for (const m of this.prev) m.size = 0;
    this._spare = [];
  }
}

/** iova_magazine_free_pfns: return every pfn of `mag` to the tree, slot 0 first. */
function magazineFreePfns(iovad: IovaDomain, mag: IovaMagazine): void {
  for (let i = 0; i < mag.size; i++) {
    const iova = find_iova(iovad, mag.pfns[i] as number);
    if (iova === null) {
      iovad.klog.warn('iova_magazine_free_pfns', 'WARN_ON(!iova)');
      continue;
    }
    __free_iova(iovad, iova);
  }
  mag.size = 0;
}

function rcachesOf(iovad: IovaDomain, fn: string): IovaRcaches {
  const rc = iovad.rcaches;
  if (rc === null) throw new KernelBug(fn, 'NULL pointer dereference: iovad->rcaches (iova_domain_init_rcaches not called)');
  return rc;
}

function badArg(fn: string, arg: string, v: number, what: string): never {
  throw new KernelError(EINVAL, fn, `${what}, got ${v}`, arg);
}

function badCpu(fn: string, rc: IovaRcaches, cpu: number): never {
  throw new KernelError(EINVAL, fn, `expected an online CPU in [0, ${rc.nrCpus}), got ${cpu}`, 'cpu');
}

/**
 * `iova_domain_init_rcaches(iovad)`: give the domain its range caches, every CPU online.
 * @returns 0, or -ENOMEM on an injected `'kmalloc'` failure (the domain is left as it was).
 * @example init_iova_domain(iovad, 4096, 1); iova_domain_init_rcaches(iovad) // 0
 */
export function iova_domain_init_rcaches(iovad: IovaDomain): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_domain_init_rcaches', 'iovad');
  if (iovad.granule === 0) throw new KernelBug('iova_domain_init_rcaches', 'iova_domain used before init_iova_domain');
  // The kernel makes 1 + 6 × (1 + 2 × CPUs) allocations here; dmasim consults fault injection once.
  if (iovad.faults !== undefined && iovad.faults.shouldFail('kmalloc')) return -ENOMEM;
  iovad.rcaches?.destroy();
  iovad.rcaches = new IovaRcaches(iovad);
  return 0;
}

/**
 * `alloc_iova_fast(iovad, size, limit_pfn, flush_rcache)` on CPU `cpu`: sizes below 32 are rounded up to a
 * power of two; orders 0..5 are served from `cpu`'s loaded magazine (or prev, or a depot magazine) when a
 * cached pfn fits under `limit_pfn`; otherwise `alloc_iova(size, limit_pfn, true)`, and if that fails and
 * `flush_rcache` is set, every cached pfn goes back to the tree and the tree is tried once more.
 * @returns the first pfn, or 0 on failure.
 * @example const pfn = alloc_iova_fast(iovad, 3, 0xfffff, true, 0); // 4 pfns, 4-aligned
 */
export function alloc_iova_fast(iovad: IovaDomain, size: number, limit_pfn: number, flush_rcache: boolean, cpu: number): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'alloc_iova_fast', 'iovad');
  if (!(Number.isInteger(size) && size >= 1 && size <= Number.MAX_SAFE_INTEGER)) badArg('alloc_iova_fast', 'size', size, 'expected a whole number of pfns >= 1');
  if (!(Number.isInteger(limit_pfn) && limit_pfn >= 0 && limit_pfn <= IOVA_MAX_LIMIT_PFN)) badArg('alloc_iova_fast', 'limit_pfn', limit_pfn, `expected a pfn in [0, ${IOVA_MAX_LIMIT_PFN}]`);
  const rc = rcachesOf(iovad, 'alloc_iova_fast');
  if (rc.online[cpu] !== 1) badCpu('alloc_iova_fast', rc, cpu);
  if (size <= ROUND_BELOW) {
    // order_base_2(size); sizes below 32 are rounded up to 2^order (roundup_pow_of_two), and 32 is 2^5.
    const order = 32 - Math.clz32(size - 1);
    const sz = 1 << order;
    // The kernel computes (limit_pfn + 1) - size unsigned: when it would go negative it wraps to a huge
    // value and every cached pfn qualifies.
    const end = limit_pfn + 1;
    const pfn = rcacheGet(rc, order, cpu, end >= sz ? end - sz : Infinity);
    if (pfn !== 0) return pfn;
    return allocFromTree(iovad, rc, sz, limit_pfn, flush_rcache);
  }
  return allocFromTree(iovad, rc, size, limit_pfn, flush_rcache);
}

/**
 * The miss path of alloc_iova_fast, kept out of line so that the hit path stays small enough to be
 * inlined into its callers (measured: the mixed-size hit benchmark went from ~50 to ~23 ns per pair).
 */
function allocFromTree(iovad: IovaDomain, rc: IovaRcaches, size: number, limit_pfn: number, flush_rcache: boolean): number {
  let iova = alloc_iova(iovad, size, limit_pfn, true);
  if (iova === null && flush_rcache) {
    for (let c = 0; c < rc.nrCpus; c++) if (rc.online[c] === 1) free_cpu_cached_iovas(c, iovad);
    free_global_cached_iovas(iovad);
    iova = alloc_iova(iovad, size, limit_pfn, true);
  }
  return iova === null ? 0 : iova.pfn_lo;
}

/** __iova_rcache_get + iova_magazine_pop: a cached pfn <= max, or 0. */
function rcacheGet(rc: IovaRcaches, order: number, cpu: number, max: number): number {
  const idx = order * rc.nrCpus + cpu;
  let mag = rc.loaded[idx] as IovaMagazine;
  if (mag.size === 0) {
    const prev = rc.prev[idx] as IovaMagazine;
    if (prev.size !== 0) {
      rc.prev[idx] = mag;
      rc.loaded[idx] = prev;
      mag = prev;
    } else {
      const depot = rc.depot[order] as IovaMagazine[];
      if (depot.length === 0) return 0;
      rc.releaseMagazine(mag);
      mag = depot.pop() as IovaMagazine;
      rc.loaded[idx] = mag;
    }
  }
  // Search from the newest slot down for the first pfn that fits; its slot is refilled with the
  // newest pfn, so the magazine is not plain LIFO after a skip.
  const pfns = mag.pfns;
  let i = mag.size - 1;
  while ((pfns[i] as number) > max) {
    if (i === 0) return 0;
    i--;
  }
  const pfn = pfns[i] as number;
  const last = --mag.size;
  pfns[i] = pfns[last] as number;
  return pfn;
}

/**
 * `free_iova_fast(iovad, pfn, size)` on CPU `cpu`: put `pfn` in `cpu`'s cache of order
 * order_base_2(size) (the unrounded size maps to the same order); sizes above 32 pfns, or a failed
 * magazine allocation, free it to the tree with `free_iova`.
 * @example free_iova_fast(iovad, pfn, 3, 0);
 */
export function free_iova_fast(iovad: IovaDomain, pfn: number, size: number, cpu: number): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'free_iova_fast', 'iovad');
  if (!(Number.isInteger(pfn) && pfn >= 0 && pfn <= Number.MAX_SAFE_INTEGER)) badArg('free_iova_fast', 'pfn', pfn, 'expected a whole pfn');
  if (!(Number.isInteger(size) && size >= 1 && size <= Number.MAX_SAFE_INTEGER)) badArg('free_iova_fast', 'size', size, 'expected a whole number of pfns >= 1');
  const rc = rcachesOf(iovad, 'free_iova_fast');
  if (rc.online[cpu] !== 1) badCpu('free_iova_fast', rc, cpu);
  if (size <= ROUND_BELOW && rcacheInsert(iovad, rc, 32 - Math.clz32(size - 1), cpu, pfn)) return;
  free_iova(iovad, pfn);
}

/** __iova_rcache_insert: false when the magazine allocation for a full pair fails. */
function rcacheInsert(iovad: IovaDomain, rc: IovaRcaches, order: number, cpu: number, pfn: number): boolean {
  const idx = order * rc.nrCpus + cpu;
  let mag = rc.loaded[idx] as IovaMagazine;
  if (mag.size === IOVA_MAG_SIZE) {
    const prev = rc.prev[idx] as IovaMagazine;
    if (prev.size !== IOVA_MAG_SIZE) {
      rc.prev[idx] = mag;
      rc.loaded[idx] = prev;
      mag = prev;
    } else {
      // iova_magazine_alloc(GFP_ATOMIC)
      if (iovad.faults !== undefined && iovad.faults.shouldFail('kmalloc')) return false;
      (rc.depot[order] as IovaMagazine[]).push(mag);
      rc.scheduleWork(order);
      mag = rc.newMagazine();
      rc.loaded[idx] = mag;
    }
  }
  mag.pfns[mag.size++] = pfn;
  return true;
}

/**
 * `free_cpu_cached_iovas(cpu, iovad)`: return `cpu`'s loaded then prev magazine of each order, order 0
 * first and slot 0 first, to the tree.
 * @example free_cpu_cached_iovas(0, iovad);
 */
export function free_cpu_cached_iovas(cpu: number, iovad: IovaDomain): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'free_cpu_cached_iovas', 'iovad');
  const rc = rcachesOf(iovad, 'free_cpu_cached_iovas');
  if (!(Number.isInteger(cpu) && cpu >= 0 && cpu < rc.nrCpus)) badArg('free_cpu_cached_iovas', 'cpu', cpu, `expected a CPU in [0, ${rc.nrCpus})`);
  for (let o = 0; o < IOVA_RANGE_CACHE_MAX_SIZE; o++) {
    const idx = o * rc.nrCpus + cpu;
    magazineFreePfns(iovad, rc.loaded[idx] as IovaMagazine);
    magazineFreePfns(iovad, rc.prev[idx] as IovaMagazine);
  }
}

/**
 * `free_global_cached_iovas(iovad)`: empty every depot into the tree, order 0 first, head first.
 * @example free_global_cached_iovas(iovad);
 */
export function free_global_cached_iovas(iovad: IovaDomain): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'free_global_cached_iovas', 'iovad');
  const rc = rcachesOf(iovad, 'free_global_cached_iovas');
  for (let o = 0; o < IOVA_RANGE_CACHE_MAX_SIZE; o++) {
    const d = rc.depot[o] as IovaMagazine[];
    while (d.length > 0) {
      const mag = d.pop() as IovaMagazine;
      magazineFreePfns(iovad, mag);
      rc.releaseMagazine(mag);
    }
  }
}

/**
 * `iova_cpuhp_dead`: CPU `cpu` went offline: its magazines go back to the tree, and it no longer counts
 * as online (for the depot trim threshold and the flush on failure) until `iova_cpu_online`.
 * @example iova_cpuhp_dead(iovad, 3);
 */
export function iova_cpuhp_dead(iovad: IovaDomain, cpu: number): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_cpuhp_dead', 'iovad');
  const rc = rcachesOf(iovad, 'iova_cpuhp_dead');
  if (rc.online[cpu] !== 1) badCpu('iova_cpuhp_dead', rc, cpu);
  free_cpu_cached_iovas(cpu, iovad);
  rc.online[cpu] = 0;
  rc.nrOnline--;
  return 0;
}

/**
 * Bring CPU `cpu` back online for this domain's caches (the kernel has no IOVA callback for this; its
 * magazines are already empty).
 * @example iova_cpu_online(iovad, 3);
 */
export function iova_cpu_online(iovad: IovaDomain, cpu: number): void {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_cpu_online', 'iovad');
  const rc = rcachesOf(iovad, 'iova_cpu_online');
  if (!(Number.isInteger(cpu) && cpu >= 0 && cpu < rc.nrCpus)) badArg('iova_cpu_online', 'cpu', cpu, `expected a CPU in [0, ${rc.nrCpus})`);
  if (rc.online[cpu] === 1) return;
  rc.online[cpu] = 1;
  rc.nrOnline++;
}

/**
 * Run the depot trim work that is due by `iovad.clock.now`, in due-time order (re-armed work included,
 * due 100 ms after it last ran). Each run frees the head magazine of its depot to the tree if the depot
 * holds more magazines than there are online CPUs, and only then re-arms. With a clock that has
 * `setTimeout` this happens by itself; with a bare `{ now }` time source, call it after moving `now`.
 * @returns the number of magazines trimmed.
 * @example time.now += 100e6; iova_depot_work_run(iovad);
 */
export function iova_depot_work_run(iovad: IovaDomain): number {
  if (!(iovad instanceof IovaDomain)) throw notInstance(iovad, IovaDomain, 'iova_depot_work_run', 'iovad');
  const rc = iovad.rcaches;
  if (rc === null) return 0;
  let trimmed = 0;
  for (;;) {
    const o = rc.nextDue(iovad.clock.now);
    if (o < 0) return trimmed;
    trimmed += rc.runWork(o);
  }
}
