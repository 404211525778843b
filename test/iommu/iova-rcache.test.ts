import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../../src/core/clock.ts';
import { createContext } from '../../src/core/context.ts';
import { EINVAL, ENOMEM } from '../../src/core/errno.ts';
import { KernelBug, KernelError } from '../../src/core/errors.ts';
import { FaultInjector } from '../../src/core/fault.ts';
import {
  Iova, IovaDomain, alloc_iova, find_iova, free_iova, init_iova_domain, iova_size, put_iova_domain, reserve_iova,
  roundupPowOfTwo, type IovaDomainOptions,
} from '../../src/iommu/iova.ts';
import {
  IOVA_DEPOT_DELAY_NS, IOVA_MAG_SIZE, IovaMagazine, IovaRcaches, alloc_iova_fast, free_cpu_cached_iovas,
  free_global_cached_iovas, free_iova_fast, iova_cpu_online, iova_cpuhp_dead, iova_depot_work_run,
  iova_domain_init_rcaches, iova_rcache_range,
} from '../../src/iommu/iova-rcache.ts';

const D32 = 0x100000;
const L32 = D32 - 1;
const L64 = 2 ** 52 - 1;
const MS = 1_000_000;

function rdomain(opts: IovaDomainOptions = {}, start_pfn = 1): IovaDomain {
  const d = new IovaDomain(opts);
  init_iova_domain(d, 4096, start_pfn);
  expect(iova_domain_init_rcaches(d)).toBe(0);
  return d;
}

function rc(d: IovaDomain): IovaRcaches {
  expect(d.rcaches).not.toBeNull();
  return d.rcaches as IovaRcaches;
}

function treeState(d: IovaDomain): unknown {
  const at = (n: Iova): number | 'anchor' => (n === d.anchor ? 'anchor' : n.pfn_lo);
  return { ranges: d.ranges(), c32: at(d.cached32_node), c: at(d.cached_node), max32: d.max32_alloc_size };
}

/** Allocate n distinct order-0 pfns from the tree (via the fast path on an empty cache). */
function take(d: IovaDomain, n: number, limit = L32): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = alloc_iova_fast(d, 1, limit, false, 0);
    expect(pfn).not.toBe(0);
    out.push(pfn);
  }
  return out;
}

describe('alloc_iova_fast sizes', () => {
  it('rounds sizes below 32 up to a power of two, size-aligned; 32 and above are not rounded', () => {
    const d = rdomain();
    const three = alloc_iova_fast(d, 3, L32, true, 0);
    expect(three).toBe(0xffffc);
    expect(iova_size(find_iova(d, three) as Iova)).toBe(4);
    const big = alloc_iova_fast(d, 33, L32, true, 0); // 33 long, aligned to 64
    const node = find_iova(d, big) as Iova;
    expect(iova_size(node)).toBe(33);
    expect(big % 64).toBe(0);
    expect(big).toBe(0xfffc0); // (0xffffc - 33) rounded down to 64
    const n32 = alloc_iova_fast(d, 32, L32, true, 0);
    expect(iova_size(find_iova(d, n32) as Iova)).toBe(32);
    expect(iova_rcache_range()).toBe(128 * 1024);
  });

  it('caches orders 0..5 only: size 32 is cached, size 33 goes back to the tree', () => {
    const d = rdomain();
    const a = alloc_iova_fast(d, 32, L32, true, 0);
    const b = alloc_iova_fast(d, 33, L32, true, 0);
    free_iova_fast(d, a, 32, 0);
    free_iova_fast(d, b, 33, 0);
    expect(rc(d).cached(5, 0).loaded).toEqual([a]);
    expect(find_iova(d, a)).not.toBeNull(); // cached pfns keep their nodes
    expect(find_iova(d, b)).toBeNull();
    expect(alloc_iova_fast(d, 17, L32, true, 0)).toBe(a); // 17 rounds to 32: order 5
  });

  it('free takes the unrounded size: it maps to the same order', () => {
    const d = rdomain();
    const p = alloc_iova_fast(d, 3, L32, true, 0);
    free_iova_fast(d, p, 3, 0);
    expect(rc(d).cached(2, 0).loaded).toEqual([p]);
    expect(alloc_iova_fast(d, 4, L32, true, 0)).toBe(p);
  });
});

describe('range cache hits', () => {
  it('a hit returns the cached pfn without touching the tree, its cached nodes or max32_alloc_size', () => {
    const d = rdomain();
    const p = alloc_iova_fast(d, 1, L32, true, 0);
    alloc_iova_fast(d, 1, L32, true, 0);
    free_iova_fast(d, p, 1, 0);
    const before = treeState(d);
    expect(alloc_iova_fast(d, 1, L32, true, 0)).toBe(p);
    expect(treeState(d)).toEqual(before);
  });

  it('the fast-fail does not apply to a hit; frees into the cache do not reset max32_alloc_size; a flush does', () => {
    const d = rdomain();
    const p = alloc_iova_fast(d, 4, L32, true, 0);
    free_iova_fast(d, p, 4, 0);
    expect(alloc_iova(d, 4, 2, true)).toBeNull();
    expect(d.max32_alloc_size).toBe(4);
    expect(alloc_iova_fast(d, 4, L32, false, 0)).toBe(p); // hit despite max32 = 4
    expect(alloc_iova_fast(d, 4, L32, false, 0)).toBe(0); // miss: the tree fast-fails
    free_iova_fast(d, p, 4, 0);
    expect(d.max32_alloc_size).toBe(4);
    const q = alloc_iova_fast(d, 1, L32, false, 0); // size 1 < 4: from the tree
    free_iova_fast(d, q, 1, 0);
    expect(d.max32_alloc_size).toBe(4);
    free_cpu_cached_iovas(0, d); // flushing frees tree nodes below 4 GiB: reset
    expect(d.max32_alloc_size).toBe(D32);
    expect(d.ranges()).toEqual([]);
  });

  it('a failed miss with flush_rcache returns everything cached to the tree and retries', () => {
    const d = rdomain({}, D32 - 8);
    const pfns = take(d, 8);
    for (const p of pfns) free_iova_fast(d, p, 1, 0);
    expect(alloc_iova_fast(d, 2, L32, false, 0)).toBe(0); // all 8 pfns sit in the cache
    expect(d.max32_alloc_size).toBe(2);
    expect(rc(d).cached(0, 0).loaded).toHaveLength(8); // flush_rcache false: untouched
    expect(alloc_iova_fast(d, 2, L32, true, 0)).toBe(D32 - 2);
    expect(rc(d).cached(0, 0).loaded).toEqual([]);
    expect(d.ranges()).toEqual([[D32 - 2, D32 - 1]]);
  });

  it('the flush reaches every online CPU and the depot', () => {
    const d = rdomain({ nrCpus: 2 }, D32 - 300);
    const pfns = take(d, 300);
    for (const [i, p] of pfns.entries()) free_iova_fast(d, p, 1, i < 280 ? 1 : 0);
    expect(rc(d).depotSize(0)).toBe(1);
    expect(alloc_iova_fast(d, 4, L32, true, 0)).not.toBe(0);
    expect(rc(d).allCached(0)).toEqual([]);
    expect(d.ranges()).toHaveLength(1);
  });
});

describe('magazines', () => {
  it('is LIFO, but a skipped slot is refilled with the newest pfn (seed 900006 shape)', () => {
    const d = rdomain();
    const [l1, l2] = take(d, 2); // 0xfffff, 0xffffe
    const [h1, h2] = take(d, 2, L64); // L64, L64 - 1
    expect([l1, l2, h1, h2]).toEqual([0xfffff, 0xffffe, L64, L64 - 1]);
    for (const p of [l1, h1, l2, h2] as number[]) free_iova_fast(d, p, 1, 0);
    expect(rc(d).cached(0, 0).loaded).toEqual([l1, h1, l2, h2]);
    expect(alloc_iova_fast(d, 1, L32, false, 0)).toBe(l2); // h2 skipped; h2 moves into l2's slot
    expect(rc(d).cached(0, 0).loaded).toEqual([l1, h1, h2]);
    expect(alloc_iova_fast(d, 1, L32, false, 0)).toBe(l1); // h2 moves into slot 0
    expect(rc(d).cached(0, 0).loaded).toEqual([h2, h1]);
    expect(alloc_iova_fast(d, 1, L32, false, 0)).toBe(0xffffd); // none fits: the tree
    expect(alloc_iova_fast(d, 1, L64, false, 0)).toBe(h1);
    expect(alloc_iova_fast(d, 1, L64, false, 0)).toBe(h2);
  });

  it('limit_pfn + 1 - size wraps when the limit is below the size: any cached pfn qualifies (seed 900007)', () => {
    const d = rdomain();
    const h = alloc_iova_fast(d, 4, L64, false, 0);
    expect(h).toBe(L64 - 3);
    free_iova_fast(d, h, 4, 0);
    expect(alloc_iova_fast(d, 4, 3, false, 0)).toBe(0); // 3 + 1 - 4 = 0: nothing qualifies, the tree fails
    expect(alloc_iova_fast(d, 4, 2, false, 0)).toBe(h); // 2 + 1 - 4 wraps: the high pfn is returned
  });

  it('searches only the loaded magazine: prev is not tried when loaded has no fitting pfn', () => {
    const d = rdomain();
    const lows = take(d, IOVA_MAG_SIZE);
    const [high] = take(d, 1, L64) as [number];
    for (const p of lows) free_iova_fast(d, p, 1, 0);
    free_iova_fast(d, high, 1, 0); // loaded was full, prev empty: swapped, then pushed
    expect(rc(d).cached(0, 0).loaded).toEqual([high]);
    expect(rc(d).cached(0, 0).prev).toHaveLength(IOVA_MAG_SIZE);
    const fromTree = alloc_iova_fast(d, 1, L32, false, 0);
    expect(lows).not.toContain(fromTree);
    expect(find_iova(d, fromTree)?.pfn_lo).toBe(fromTree);
    expect(rc(d).cached(0, 0).prev).toHaveLength(IOVA_MAG_SIZE);
    // Emptied loaded: prev is swapped in on the next get.
    expect(alloc_iova_fast(d, 1, L64, false, 0)).toBe(high);
    expect(alloc_iova_fast(d, 1, L32, false, 0)).toBe(lows[IOVA_MAG_SIZE - 1]);
    expect(rc(d).cached(0, 0).prev).toEqual([]);
  });

  it('overflows full loaded+prev into the depot and takes depot magazines when both are empty', () => {
    const d = rdomain();
    const p = take(d, 2 * IOVA_MAG_SIZE + 1);
    for (const x of p) free_iova_fast(d, x, 1, 0);
    const r = rc(d);
    expect(r.depotSize(0)).toBe(1);
    expect(r.cached(0, 0).loaded).toEqual([p[2 * IOVA_MAG_SIZE]]);
    expect(r.cached(0, 0).prev).toEqual(p.slice(0, IOVA_MAG_SIZE));
    expect(r.workDue[0]).toBe(IOVA_DEPOT_DELAY_NS); // the trim work is armed
    const got = Array.from({ length: 2 * IOVA_MAG_SIZE + 1 }, () => alloc_iova_fast(d, 1, L32, false, 0));
    expect(got).toEqual([
      p[2 * IOVA_MAG_SIZE],
      ...p.slice(0, IOVA_MAG_SIZE).reverse(),
      ...p.slice(IOVA_MAG_SIZE, 2 * IOVA_MAG_SIZE).reverse(),
    ]);
    expect(r.depotSize(0)).toBe(0);
  });

  it('keeps caches per CPU', () => {
    const d = rdomain({ nrCpus: 2 });
    const p = alloc_iova_fast(d, 1, L32, false, 0);
    free_iova_fast(d, p, 1, 0);
    const q = alloc_iova_fast(d, 1, L32, false, 1);
    expect(q).not.toBe(p);
    expect(rc(d).cached(0, 0).loaded).toEqual([p]);
    expect(alloc_iova_fast(d, 1, L32, false, 0)).toBe(p);
  });
});

describe('depot trim work', () => {
  /** Fill the order-0 depot of a 1-CPU domain with `mags` magazines, all pushed at time `time.now`. */
  function fillDepot(d: IovaDomain, mags: number): number[] {
    const n = (mags + 2) * IOVA_MAG_SIZE - IOVA_MAG_SIZE + 1; // loaded + prev full, `mags` in the depot, 1 loaded
    const p = take(d, n);
    for (const x of p) free_iova_fast(d, x, 1, 0);
    expect(rc(d).depotSize(0)).toBe(mags);
    return p;
  }

  it('frees one magazine (the head) per 100 ms run while the depot holds more than num_online_cpus()', () => {
    const time = { now: 0 };
    const d = rdomain({ clock: time });
    const p = fillDepot(d, 2);
    const head = p.slice(2 * IOVA_MAG_SIZE, 3 * IOVA_MAG_SIZE); // the magazine pushed last
    time.now = 99 * MS;
    expect(iova_depot_work_run(d)).toBe(0);
    time.now = 100 * MS;
    expect(iova_depot_work_run(d)).toBe(1);
    expect(rc(d).depotSize(0)).toBe(1);
    for (const x of head) expect(find_iova(d, x)).toBeNull();
    for (const x of p.slice(IOVA_MAG_SIZE, 2 * IOVA_MAG_SIZE)) expect(find_iova(d, x)).not.toBeNull();
    expect(rc(d).workDue[0]).toBe(200 * MS); // it trimmed, so it re-armed
    time.now = 200 * MS;
    expect(iova_depot_work_run(d)).toBe(0); // 1 magazine, 1 CPU: nothing to trim
    expect(rc(d).workDue[0]).toBe(-1); // and it did not re-arm
  });

  it('runs repeatedly when much time has passed, 100 ms apart from when each run was due', () => {
    const time = { now: 0 };
    const d = rdomain({ clock: time });
    fillDepot(d, 4);
    time.now = 1000 * MS;
    expect(iova_depot_work_run(d)).toBe(3);
    expect(rc(d).depotSize(0)).toBe(1);
    expect(rc(d).workDue[0]).toBe(-1);
  });

  it('runs by itself on a Clock', () => {
    const clock = new Clock();
    const d = rdomain({ clock });
    fillDepot(d, 2);
    clock.advance(99 * MS);
    expect(rc(d).depotSize(0)).toBe(2);
    clock.advance(1 * MS);
    expect(rc(d).depotSize(0)).toBe(1);
    expect(clock.pending).toBe(1); // re-armed
    clock.advance(100 * MS);
    expect(clock.pending).toBe(0);
    expect(rc(d).depotSize(0)).toBe(1);
  });

  it('counts online CPUs for the threshold', () => {
    const time = { now: 0 };
    const d = rdomain({ clock: time, nrCpus: 2 });
    const p = take(d, 5 * IOVA_MAG_SIZE + 1);
    for (const x of p.slice(0, 3 * IOVA_MAG_SIZE + 1)) free_iova_fast(d, x, 1, 0);
    expect(rc(d).depotSize(0)).toBe(2);
    time.now = 100 * MS;
    expect(iova_depot_work_run(d)).toBe(0); // 2 magazines, 2 CPUs
    expect(rc(d).workDue[0]).toBe(-1);
    for (const x of p.slice(3 * IOVA_MAG_SIZE + 1)) free_iova_fast(d, x, 1, 0);
    expect(rc(d).depotSize(0)).toBe(4);
    iova_cpuhp_dead(d, 1);
    time.now = 200 * MS;
    expect(iova_depot_work_run(d)).toBe(1);
    time.now = 1000 * MS;
    expect(iova_depot_work_run(d)).toBe(2);
    expect(rc(d).depotSize(0)).toBe(1);
  });
});

describe('CPUs and lifetime', () => {
  it('cpuhp_dead returns that CPU’s magazines to the tree; an offline CPU cannot allocate', () => {
    const d = rdomain({ nrCpus: 2 });
    const a = alloc_iova_fast(d, 1, L32, false, 1);
    const b = alloc_iova_fast(d, 2, L32, false, 1);
    const c = alloc_iova_fast(d, 1, L32, false, 0);
    free_iova_fast(d, a, 1, 1);
    free_iova_fast(d, b, 2, 1);
    free_iova_fast(d, c, 1, 0);
    expect(iova_cpuhp_dead(d, 1)).toBe(0);
    expect(find_iova(d, a)).toBeNull();
    expect(find_iova(d, b)).toBeNull();
    expect(find_iova(d, c)).not.toBeNull();
    expect(() => alloc_iova_fast(d, 1, L32, false, 1)).toThrow(KernelError);
    iova_cpu_online(d, 1);
    expect(alloc_iova_fast(d, 1, L32, false, 1)).not.toBe(0);
  });

  it('throws EINVAL naming the argument for CPUs and values no caller could pass', () => {
    const d = rdomain({ nrCpus: 2 });
    const err = (f: () => unknown): KernelError => {
      try {
        f();
      } catch (e) {
        return e as KernelError;
      }
      throw new Error('did not throw');
    };
    for (const cpu of [-1, 2, 0.5, NaN]) {
      const e = err(() => alloc_iova_fast(d, 1, L32, false, cpu));
      expect(e).toBeInstanceOf(KernelError);
      expect([e.errno, e.arg]).toEqual([EINVAL, 'cpu']);
      expect(err(() => free_iova_fast(d, 5, 1, cpu)).arg).toBe('cpu');
    }
    expect(err(() => alloc_iova_fast(d, 0, L32, false, 0)).arg).toBe('size');
    expect(err(() => alloc_iova_fast(d, 1, -1, false, 0)).arg).toBe('limit_pfn');
    expect(err(() => free_iova_fast(d, 1.5, 1, 0)).arg).toBe('pfn');
    expect(err(() => free_iova_fast(d, 1, NaN, 0)).arg).toBe('size');
    expect(rc(d).allCached(0)).toEqual([]);
  });

  it('before iova_domain_init_rcaches the fast path is a NULL dereference', () => {
    const d = new IovaDomain();
    expect(() => iova_domain_init_rcaches(d)).toThrow(KernelBug);
    init_iova_domain(d, 4096, 1);
    expect(() => alloc_iova_fast(d, 1, L32, false, 0)).toThrow(KernelBug);
    expect(() => free_iova_fast(d, 1, 1, 0)).toThrow(KernelBug);
  });

  it('put_iova_domain drops the caches and cancels the trim work', () => {
    const clock = new Clock();
    const d = rdomain({ clock });
    const p = take(d, 2 * IOVA_MAG_SIZE + 1);
    for (const x of p) free_iova_fast(d, x, 1, 0);
    expect(clock.pending).toBe(1);
    put_iova_domain(d);
    expect(clock.pending).toBe(0);
    expect(d.rcaches).toBeNull();
    expect(d.ranges()).toEqual([]);
  });

  it('warns when a flushed magazine holds a pfn the tree does not know', () => {
    const ctx = createContext('rcache-test');
    const d = rdomain({ klog: ctx.klog });
    free_iova_fast(d, 1234, 1, 0); // never allocated: the kernel caches it anyway
    expect(alloc_iova_fast(d, 1, L32, false, 0)).toBe(1234);
    free_iova_fast(d, 1234, 1, 0);
    free_cpu_cached_iovas(0, d);
    expect(ctx.klog.warnings('iova_magazine_free_pfns')).toHaveLength(1);
  });
});

describe('fault injection', () => {
  it('iova_domain_init_rcaches returns -ENOMEM and leaves the domain without caches', () => {
    const faults = new FaultInjector(1);
    faults.inject('kmalloc', { nth: 1 });
    const d = new IovaDomain({ faults });
    init_iova_domain(d, 4096, 1);
    expect(iova_domain_init_rcaches(d)).toBe(-ENOMEM);
    expect(d.rcaches).toBeNull();
    expect(iova_domain_init_rcaches(d)).toBe(0);
  });

  it('a failed magazine allocation frees the pfn to the tree instead', () => {
    const faults = new FaultInjector(1);
    const d = rdomain({ faults });
    const p = take(d, 2 * IOVA_MAG_SIZE + 1);
    for (const x of p.slice(0, 2 * IOVA_MAG_SIZE)) free_iova_fast(d, x, 1, 0);
    expect(faults.counts.kmalloc).toBe(1); // iova_domain_init_rcaches only: swaps need no allocation
    faults.inject('kmalloc', { nth: 1 });
    const last = p[2 * IOVA_MAG_SIZE] as number;
    free_iova_fast(d, last, 1, 0);
    expect(faults.injected.kmalloc).toBe(1);
    expect(find_iova(d, last)).toBeNull();
    expect(rc(d).depotSize(0)).toBe(0);
    expect(rc(d).allCached(0)).toHaveLength(2 * IOVA_MAG_SIZE);
    expect(rc(d).workDue[0]).toBe(-1);
  });

  it('fails each struct iova allocation in turn: 0 from alloc_iova_fast and nothing leaked', () => {
    const script = (d: IovaDomain): number[] => {
      const out: number[] = [];
      const live: Array<[number, number]> = [];
      for (let i = 0; i < 12; i++) {
        const size = 1 + (i % 5);
        const pfn = alloc_iova_fast(d, size, i % 3 === 0 ? L64 : L32, false, 0);
        out.push(pfn);
        if (pfn !== 0) live.push([pfn, size]);
        if (i % 3 === 2) {
          const [fp, fs] = live.shift() as [number, number];
          free_iova_fast(d, fp, fs, 0);
        }
      }
      // Nothing leaked: the tree holds exactly the live ranges and the cached ones.
      const cached = new Set<number>();
      for (let o = 0; o < 6; o++) for (const x of rc(d).allCached(o)) cached.add(x);
      const nodes = d.ranges().map(([lo]) => lo);
      expect(nodes.sort((a, b) => a - b)).toEqual([...live.map(([x]) => x), ...cached].sort((a, b) => a - b));
      return out;
    };
    const clean = new FaultInjector(1);
    script(rdomain({ faults: clean }));
    const total = clean.counts.iova;
    expect(total).toBeGreaterThan(5);
    for (let k = 1; k <= total; k++) {
      const faults = new FaultInjector(1);
      faults.inject('iova', { nth: k });
      const d = rdomain({ faults });
      const out = script(d);
      expect(out.filter((x) => x === 0)).toHaveLength(1);
      d.checkInvariants();
    }
  });

  it('with flush_rcache an injected failure flushes the caches and the retry allocates', () => {
    const faults = new FaultInjector(1);
    const d = rdomain({ faults });
    const p = alloc_iova_fast(d, 2, L32, false, 0);
    free_iova_fast(d, p, 2, 0);
    faults.inject('iova', { nth: 1 });
    const q = alloc_iova_fast(d, 1, L32, true, 0);
    expect(q).toBe(0xfffff); // the flush freed p's node, moving cached32 back to the anchor
    expect(rc(d).allCached(1)).toEqual([]);
    faults.inject('iova', { after: 1 });
    expect(alloc_iova_fast(d, 1, L32, true, 0)).toBe(0);
    expect(d.ranges()).toEqual([[0xfffff, 0xfffff]]);
  });
});

// ---------------------------------------------------------------------------------------------------
// A reference model of the caches for the tests, layered on a second real domain used as a plain tree
// (the tree itself is checked against its own model in iova.test.ts).

class RcacheModel {
  readonly tree: IovaDomain;
  readonly nr: number;
  loaded: number[][] = [];
  prev: number[][] = [];
  depot: number[][][] = [[], [], [], [], [], []]; // last = head
  due: number[] = [-1, -1, -1, -1, -1, -1];
  seq: number[] = [0, 0, 0, 0, 0, 0];
  nextSeq = 0;
  online: boolean[];
  readonly time: { now: number };

  constructor(nr: number, start: number, time: { now: number }) {
    this.tree = new IovaDomain();
    init_iova_domain(this.tree, 4096, start);
    this.nr = nr;
    this.time = time;
    this.online = Array.from({ length: nr }, () => true);
    for (let i = 0; i < 6 * nr; i++) {
      this.loaded.push([]);
      this.prev.push([]);
    }
  }

  static order(size: number): number {
    return size <= 1 ? 0 : Math.ceil(Math.log2(size));
  }

  alloc(size: number, limit: number, flush: boolean, cpu: number): number {
    const s = size < 32 ? roundupPowOfTwo(size) : size;
    const o = RcacheModel.order(s);
    if (o < 6) {
      const k = o * this.nr + cpu;
      const max = limit + 1 - s < 0 ? Infinity : limit + 1 - s;
      let have = true;
      if ((this.loaded[k] as number[]).length === 0) {
        if ((this.prev[k] as number[]).length > 0) [this.loaded[k], this.prev[k]] = [this.prev[k] as number[], this.loaded[k] as number[]];
        else if ((this.depot[o] as number[][]).length > 0) this.loaded[k] = (this.depot[o] as number[][]).pop() as number[];
        else have = false;
      }
      if (have) {
        const m = this.loaded[k] as number[];
        for (let i = m.length - 1; i >= 0; i--) {
          if ((m[i] as number) <= max) {
            const pfn = m[i] as number;
            m[i] = m[m.length - 1] as number;
            m.pop();
            return pfn;
          }
        }
      }
    }
    let n = alloc_iova(this.tree, s, limit, true);
    if (n === null && flush) {
      for (let c = 0; c < this.nr; c++) {
        if (!this.online[c]) continue;
        this.flushCpu(c);
      }
      for (let ord = 0; ord < 6; ord++) {
        const dep = this.depot[ord] as number[][];
        while (dep.length > 0) for (const x of dep.pop() as number[]) free_iova(this.tree, x);
      }
      n = alloc_iova(this.tree, s, limit, true);
    }
    return n === null ? 0 : n.pfn_lo;
  }

  flushCpu(c: number): void {
    for (let ord = 0; ord < 6; ord++) {
      const k = ord * this.nr + c;
      for (const x of this.loaded[k] as number[]) free_iova(this.tree, x);
      for (const x of this.prev[k] as number[]) free_iova(this.tree, x);
      this.loaded[k] = [];
      this.prev[k] = [];
    }
  }

  free(pfn: number, size: number, cpu: number): void {
    const o = RcacheModel.order(size);
    if (o >= 6) {
      free_iova(this.tree, pfn);
      return;
    }
    const k = o * this.nr + cpu;
    if ((this.loaded[k] as number[]).length === IOVA_MAG_SIZE) {
      if ((this.prev[k] as number[]).length < IOVA_MAG_SIZE) {
        [this.loaded[k], this.prev[k]] = [this.prev[k] as number[], this.loaded[k] as number[]];
      } else {
        (this.depot[o] as number[][]).push(this.loaded[k] as number[]);
        this.arm(o, this.time.now);
        this.loaded[k] = [];
      }
    }
    (this.loaded[k] as number[]).push(pfn);
  }

  arm(o: number, base: number): void {
    if ((this.due[o] as number) >= 0) return;
    this.due[o] = base + IOVA_DEPOT_DELAY_NS;
    this.seq[o] = this.nextSeq++;
  }

  runWork(): void {
    for (;;) {
      let best = -1;
      for (let o = 0; o < 6; o++) {
        const due = this.due[o] as number;
        if (due < 0 || due > this.time.now) continue;
        if (best < 0 || due < (this.due[best] as number) || (due === this.due[best] && (this.seq[o] as number) < (this.seq[best] as number))) best = o;
      }
      if (best < 0) return;
      const at = this.due[best] as number;
      this.due[best] = -1;
      const dep = this.depot[best] as number[][];
      if (dep.length > this.online.filter(Boolean).length) {
        for (const x of dep.pop() as number[]) free_iova(this.tree, x);
        this.arm(best, at);
      }
    }
  }

  dead(cpu: number): void {
    this.flushCpu(cpu);
    this.online[cpu] = false;
  }
}

type ROp =
  | { k: 'alloc'; size: number; limit: number; flush: boolean; cpu: number }
  | { k: 'free'; pick: number; sizeDelta: boolean; cpu: number }
  | { k: 'burst'; n: number; cpu: number }
  | { k: 'fill'; n: number; size: number; limit: number; cpu: number }
  | { k: 'time'; ms: number }
  | { k: 'dead'; cpu: number }
  | { k: 'online'; cpu: number };

const WIN = 1500;
const START = D32 - WIN;
const TOP = D32 + 600;

const limitArb = fc.oneof(
  { weight: 5, arbitrary: fc.constant(L32) },
  { weight: 3, arbitrary: fc.constant(L64) },
  { weight: 2, arbitrary: fc.integer({ min: START, max: TOP + 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) },
);
const sizeArb = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 8 }) }, { weight: 2, arbitrary: fc.integer({ min: 9, max: 40 }) });
const ropArb: fc.Arbitrary<ROp> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('alloc' as const), size: sizeArb, limit: limitArb, flush: fc.boolean(), cpu: fc.nat(2) }) },
  { weight: 7, arbitrary: fc.record({ k: fc.constant('free' as const), pick: fc.nat(), sizeDelta: fc.boolean(), cpu: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('burst' as const), n: fc.integer({ min: 100, max: 500 }), cpu: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('fill' as const), n: fc.integer({ min: 100, max: 450 }), size: fc.integer({ min: 1, max: 2 }), limit: fc.constantFrom(L32, L64), cpu: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('time' as const), ms: fc.integer({ min: 1, max: 350 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('dead' as const), cpu: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('online' as const), cpu: fc.nat(2) }) },
);

describe('properties', () => {
  it('matches the reference model: pfns, caches, depots, trim work and the tree', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 1, 2, 3), fc.array(ropArb, { minLength: 1, maxLength: 120, size: 'max' }), (nr, ops) => {
        const time = { now: 0 };
        const d = rdomain({ nrCpus: nr, clock: time }, START);
        reserve_iova(d, TOP, L64);
        const m = new RcacheModel(nr, START, time);
        reserve_iova(m.tree, TOP, L64);
        const live: Array<[number, number]> = [];
        const online = Array.from({ length: nr }, () => true);
        // Compared as JSON first (vitest's deep equality is slow on thousands of pfns per op), and with
        // toEqual only on a mismatch, for the diff.
        const same = (got: unknown, want: unknown): void => {
          if (JSON.stringify(got) !== JSON.stringify(want)) expect(got).toEqual(want);
        };
        const check = (): void => {
          same(treeState(d), treeState(m.tree));
          const r = rc(d);
          const caches: unknown[] = [];
          const want: unknown[] = [];
          for (let o = 0; o < 6; o++) {
            for (let c = 0; c < nr; c++) {
              const k = o * nr + c;
              caches.push(r.cached(o, c));
              want.push({ loaded: m.loaded[k], prev: m.prev[k] });
            }
            caches.push((r.depot[o] as IovaMagazine[]).map((g) => Array.from(g.pfns.subarray(0, g.size))), r.workDue[o]);
            want.push(m.depot[o], m.due[o]);
          }
          same(caches, want);
          // The tree holds exactly the live ranges plus the cached pfns: nothing leaked, nothing twice.
          const cached: number[] = [];
          for (let o = 0; o < 6; o++) cached.push(...r.allCached(o));
          const expected = [...live.map(([p]) => p), ...cached].sort((a, b) => a - b);
          same(d.ranges().filter(([lo]) => lo < TOP).map(([lo]) => lo), expected);
          d.checkInvariants(); // tree nodes are disjoint, so the live ranges are too
          const wrongSize = live.filter(([p, sz]) => iova_size(find_iova(d, p) as Iova) !== sz);
          expect(wrongSize).toEqual([]);
        };
        for (const op of ops) {
          const cpuOf = (c: number): number => {
            const want = c % nr;
            for (let i = 0; i < nr; i++) if (online[(want + i) % nr]) return (want + i) % nr;
            return -1;
          };
          switch (op.k) {
            case 'alloc':
            case 'fill': {
              const cpu = cpuOf(op.cpu);
              if (cpu < 0) break;
              const n = op.k === 'fill' ? op.n : 1;
              const flush = op.k === 'alloc' && op.flush;
              for (let j = 0; j < n; j++) {
                const got = alloc_iova_fast(d, op.size, op.limit, flush, cpu);
                expect(got).toBe(m.alloc(op.size, op.limit, flush, cpu));
                if (got === 0) continue;
                const rounded = op.size < 32 ? roundupPowOfTwo(op.size) : op.size;
                expect(got).toBeGreaterThanOrEqual(START);
                expect(got % roundupPowOfTwo(rounded)).toBe(0);
                if (op.limit + 1 >= rounded) expect(got + rounded - 1).toBeLessThanOrEqual(op.limit);
                live.push([got, rounded]); // check() below proves the live ranges disjoint
              }
              break;
            }
            case 'free':
            case 'burst': {
              const cpu = cpuOf(op.cpu);
              if (cpu < 0 || live.length === 0) break;
              const n = op.k === 'burst' ? Math.min(op.n, live.length) : 1;
              for (let j = 0; j < n; j++) {
                const i = op.k === 'burst' ? 0 : op.pick % live.length;
                const [pfn, size] = live[i] as [number, number];
                live.splice(i, 1);
                // any size of the same order frees alike
                const s = op.k === 'free' && op.sizeDelta && size > 1 && size <= 32 ? size / 2 + 1 : size;
                free_iova_fast(d, pfn, s, cpu);
                m.free(pfn, s, cpu);
              }
              break;
            }
            case 'time':
              time.now += op.ms * MS;
              iova_depot_work_run(d);
              m.runWork();
              break;
            case 'dead': {
              const cpu = op.cpu % nr;
              if (!online[cpu] || online.filter(Boolean).length === 1) break;
              iova_cpuhp_dead(d, cpu);
              m.dead(cpu);
              online[cpu] = false;
              break;
            }
            case 'online': {
              const cpu = op.cpu % nr;
              iova_cpu_online(d, cpu);
              m.online[cpu] = true;
              online[cpu] = true;
              break;
            }
          }
          check();
        }
        // Free everything, flush every cache: the tree is back to its setup state.
        for (const [pfn, size] of live) free_iova_fast(d, pfn, size, cpuOf0(online));
        for (let c = 0; c < nr; c++) free_cpu_cached_iovas(c, d);
        free_global_cached_iovas(d);
        expect(d.ranges()).toEqual([[TOP, L64]]);
      }),
      { numRuns: 100 },
    );
  });
});

function cpuOf0(online: boolean[]): number {
  return online.indexOf(true);
}
