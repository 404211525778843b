import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { EINVAL } from '../../src/core/errno.ts';
import { KernelBug, KernelError } from '../../src/core/errors.ts';
import { FaultInjector } from '../../src/core/fault.ts';
import {
  IOVA_ANCHOR, Iova, IovaDomain, __free_iova, alloc_iova, find_iova, free_iova, init_iova_domain, iova_align,
  iova_align_down, iova_dma_addr, iova_mask, iova_offset, iova_pfn, iova_shift, iova_size, put_iova_domain,
  reserve_iova, roundupPowOfTwo, type IovaDomainOptions,
} from '../../src/iommu/iova.ts';

const D32 = 0x100000; // dma_32bit_pfn for a 4 KiB granule
const L32 = D32 - 1; // DMA_BIT_MASK(32) >> 12
const L64 = 2 ** 52 - 1; // DMA_BIT_MASK(64) >> 12

function domain(start_pfn = 1, opts: IovaDomainOptions = {}): IovaDomain {
  const d = new IovaDomain(opts);
  init_iova_domain(d, 4096, start_pfn);
  return d;
}

function lo(iova: Iova | null): number {
  expect(iova).not.toBeNull();
  return (iova as Iova).pfn_lo;
}

/** Where a cached node points: 'anchor' or its pfn_lo. */
function at(d: IovaDomain, node: Iova): number | 'anchor' {
  return node === d.anchor ? 'anchor' : node.pfn_lo;
}

/** The externally visible state of a domain. */
function state(d: IovaDomain): unknown {
  return { ranges: d.ranges(), c32: at(d, d.cached32_node), c: at(d, d.cached_node), max32: d.max32_alloc_size };
}

// ---------------------------------------------------------------------------------------------------
// A reference model for the tests: a plain sorted array and linear scans, written from iova.md's rules
// in the shape of the kernel's loop (do-while over rb_prev, restart from the anchor).

interface MNode { lo: number; hi: number }

class TreeModel {
  readonly anchor: MNode = { lo: Infinity, hi: Infinity };
  nodes: MNode[] = [this.anchor];
  c32: MNode = this.anchor;
  c: MNode = this.anchor;
  max32 = D32;
  readonly start: number;

  constructor(start: number) {
    this.start = start;
  }

  alloc(size: number, limit: number, aligned: boolean): number | null {
    const end = limit + 1;
    if (end <= D32 && size >= this.max32) return null;
    const align = aligned ? 2 ** Math.ceil(Math.log2(size)) : 1;
    let curr = this.nodes.indexOf(end <= D32 ? this.c32 : this.c);
    const retryPfn = (this.nodes[curr] as MNode).hi;
    let high = end;
    let low = this.start;
    let cand = 0;
    let prev = curr;
    for (let passes = 0; ; passes++) {
      if (passes > 2) throw new Error('model: endless restart');
      do {
        high = Math.min(high, (this.nodes[curr] as MNode).lo);
        cand = high - size < 0 ? Infinity : Math.floor((high - size) / align) * align; // unsigned wrap
        prev = curr;
        curr--;
      } while (curr >= 0 && cand <= (this.nodes[curr] as MNode).hi && cand >= low);
      if (high < size || cand < low) {
        if (low === this.start && retryPfn < end) {
          high = end;
          low = retryPfn + 1;
          curr = this.nodes.length - 1;
          continue;
        }
        this.max32 = size;
        return null;
      }
      break;
    }
    const n = { lo: cand, hi: cand + size - 1 };
    this.nodes.splice(prev, 0, n);
    if (n.hi < D32) this.c32 = n;
    else this.c = n;
    return cand;
  }

  free(pfn: number): void {
    const i = this.nodes.findIndex((n) => n.lo <= pfn && pfn <= n.hi);
    if (i < 0) return;
    const f = this.nodes[i] as MNode;
    const succ = this.nodes[i + 1] as MNode;
    if (f === this.c32 || (f.hi < D32 && f.lo >= this.c32.lo)) this.c32 = succ;
    if (f.lo < D32) this.max32 = D32;
    if (f.lo >= this.c.lo) this.c = succ;
    this.nodes.splice(i, 1);
  }

  reserve(pfnLo: number, pfnHi: number): [number, number] | null {
    if (pfnLo >= 2 ** 52 || pfnHi >= 2 ** 52) return null;
    let lo = pfnLo;
    let overlap = false;
    for (const n of this.nodes) {
      if (lo <= n.hi && pfnHi >= n.lo) {
        if (lo < n.lo) n.lo = lo;
        if (pfnHi > n.hi) lo = n.hi + 1;
        if (lo >= n.lo && pfnHi <= n.hi) return [n.lo, n.hi];
        overlap = true;
      } else if (overlap) break;
    }
    const n = { lo, hi: pfnHi };
    const i = this.nodes.findIndex((m) => m.lo > lo);
    this.nodes.splice(i, 0, n);
    return [lo, pfnHi];
  }

  state(): unknown {
    const where = (n: MNode): number | 'anchor' => (n === this.anchor ? 'anchor' : n.lo);
    return {
      ranges: this.nodes.filter((n) => n !== this.anchor).map((n) => [n.lo, n.hi]),
      c32: where(this.c32),
      c: where(this.c),
      max32: this.max32,
    };
  }
}

// ---------------------------------------------------------------------------------------------------

describe('init_iova_domain', () => {
  it('sets up an empty domain with the anchor above everything', () => {
    const d = domain();
    expect(d.granule).toBe(4096);
    expect(iova_shift(d)).toBe(12);
    expect(d.start_pfn).toBe(1);
    expect(d.dma_32bit_pfn).toBe(D32);
    expect(d.max32_alloc_size).toBe(D32);
    expect(d.cached_node).toBe(d.anchor);
    expect(d.cached32_node).toBe(d.anchor);
    expect(d.anchor.pfn_lo).toBe(IOVA_ANCHOR);
    expect(d.ranges()).toEqual([]);
    d.checkInvariants();
    const small = new IovaDomain();
    init_iova_domain(small, 512, 1);
    expect(small.dma_32bit_pfn).toBe(2 ** 23);
  });

  it('BUGs on a granule above PAGE_SIZE or not a power of two; throws EINVAL on non-numbers', () => {
    expect(() => init_iova_domain(new IovaDomain(), 8192, 1)).toThrow(KernelBug);
    expect(() => init_iova_domain(new IovaDomain(), 3000, 1)).toThrow(KernelBug);
    expect(() => init_iova_domain(new IovaDomain(), 0, 1)).toThrow(KernelBug);
    for (const bad of [NaN, 1.5, -1]) {
      const e = (() => { try { init_iova_domain(new IovaDomain(), bad, 1); } catch (err) { return err; } return null; })();
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).errno).toBe(EINVAL);
      expect((e as KernelError).arg).toBe('granule');
    }
    expect(() => init_iova_domain(new IovaDomain(), 4096, -1)).toThrow(/start_pfn/);
  });

  it('provides the iova.h helpers', () => {
    const d = domain();
    expect(iova_mask(d)).toBe(0xfff);
    expect(iova_offset(d, 0x12345)).toBe(0x345);
    // A mask for whole addresses (past 2^32 too); anything else keeps the remainder's answer.
    expect(iova_offset(d, 2 ** 40 + 0x1fff)).toBe(0xfff);
    expect(iova_offset(d, 4096.5)).toBe(0.5);
    expect(iova_offset(d, Infinity)).toBeNaN();
    expect(iova_align(d, 5000)).toBe(8192);
    expect(iova_align_down(d, 5000)).toBe(4096);
    expect(iova_pfn(d, 2 ** 50 + 0x1fff)).toBe(2 ** 38 + 1);
    const iova = alloc_iova(d, 3, L32, false) as Iova;
    expect(iova_size(iova)).toBe(3);
    expect(iova_dma_addr(d, iova)).toBe(iova.pfn_lo * 4096);
    expect(roundupPowOfTwo(1)).toBe(1);
    expect(roundupPowOfTwo(513)).toBe(1024);
    expect(roundupPowOfTwo(2 ** 40 + 1)).toBe(2 ** 41);
  });
});

describe('alloc_iova', () => {
  it('hands out pfns top-down below the inclusive limit', () => {
    const d = domain();
    expect(lo(alloc_iova(d, 1, L32, false))).toBe(0xfffff);
    expect(lo(alloc_iova(d, 1, L32, false))).toBe(0xffffe);
    expect(lo(alloc_iova(d, 2, L32, false))).toBe(0xffffc);
    expect(lo(alloc_iova(d, 1, 0x10, false))).toBe(0x10); // limit is inclusive
    expect(lo(alloc_iova(d, 1, L64, false))).toBe(L64);
    d.checkInvariants();
  });

  it('never hands out pfns below start_pfn (IOVA 0 stays unused)', () => {
    const d = domain(1);
    expect(lo(alloc_iova(d, 2, 2, false))).toBe(1);
    expect(alloc_iova(d, 1, 2, false)).toBeNull();
    const z = domain(0);
    expect(lo(alloc_iova(z, 1, 0, false))).toBe(0); // a domain may start at 0 if its owner says so
  });

  it('rule 5: size_aligned aligns pfn_lo to roundup_pow_of_two(size) but keeps the length', () => {
    const d = domain();
    const five = alloc_iova(d, 5, L32, true) as Iova;
    expect([five.pfn_lo, five.pfn_hi]).toEqual([0xffff8, 0xffffc]); // 8-aligned, 5 long
    const big = alloc_iova(d, 513, L32, true) as Iova;
    expect(big.pfn_lo % 1024).toBe(0);
    expect(iova_size(big)).toBe(513);
    expect([big.pfn_lo, big.pfn_hi]).toEqual([0xffc00, 0xffe00]);
    // The slack above each range stays free.
    expect(find_iova(d, 0xffffd)).toBeNull();
    expect(find_iova(d, 0xffe01)).toBeNull();
    // Unaligned requests are not rounded.
    expect(lo(alloc_iova(d, 3, L32, false))).toBe(0xffc00 - 3);
  });

  it('rule 2/7: next-fit from cached32_node: slack above the cached node is not reused at once', () => {
    const d = domain();
    alloc_iova(d, 5, L32, true); // [0xffff8, 0xffffc], slack 0xffffd..0xfffff
    expect(at(d, d.cached32_node)).toBe(0xffff8);
    // First-fit from the top would give 0xffffe; next-fit continues below the cached node.
    expect(lo(alloc_iova(d, 2, L32, true))).toBe(0xffff6);
  });

  it('rule 3: when the walk below fails, one restart pass looks above the cached node (seed 900001 shape)', () => {
    const d = domain(0xffff0);
    const a = alloc_iova(d, 5, L32, true) as Iova; // [0xffff8, 0xffffc]
    const b = alloc_iova(d, 8, L32, true) as Iova; // [0xffff0, 0xffff7]
    expect([a.pfn_lo, b.pfn_lo]).toEqual([0xffff8, 0xffff0]);
    expect(d.cached32_node).toBe(b);
    // Below b there is no room (start_pfn); the restart covers [b.pfn_hi + 1, end) and finds the slack.
    const c = alloc_iova(d, 2, L32, true) as Iova;
    expect([c.pfn_lo, c.pfn_hi]).toEqual([0xffffe, 0xfffff]);
    expect(d.cached32_node).toBe(c);
    expect(d.max32_alloc_size).toBe(D32); // it succeeded: no failure recorded
    // Nothing fits now: the failure records max32_alloc_size.
    expect(alloc_iova(d, 1, L32, false)).not.toBeNull(); // 0xffffd, found by the restart again
    expect(alloc_iova(d, 1, L32, false)).toBeNull();
    expect(d.max32_alloc_size).toBe(1);
  });

  it('rule 7: freeing a node below cached32_node does not move it; the walk still passes the hole', () => {
    const d = domain(0xffff0);
    const top = alloc_iova(d, 4, L32, true) as Iova; // [0xffffc, 0xfffff]
    const mid = alloc_iova(d, 4, L32, true) as Iova; // [0xffff8, 0xffffb]
    alloc_iova(d, 8, L32, true); // [0xffff0, 0xffff7]: cached32 now at the bottom
    __free_iova(d, top); // above cached32: it moves to top's successor, the anchor
    expect(d.cached32_node).toBe(d.anchor);
    expect(lo(alloc_iova(d, 4, L32, true))).toBe(0xffffc);
    __free_iova(d, mid); // below the cached node: it stays
    expect(at(d, d.cached32_node)).toBe(0xffffc);
    expect(lo(alloc_iova(d, 4, L32, true))).toBe(0xffff8);
  });

  it('rule 1/4: a failed walk records max32_alloc_size; 32-bit requests that size or larger fail at once', () => {
    const d = domain(D32 - 16);
    expect(alloc_iova(d, 32, L32, false)).toBeNull();
    expect(d.max32_alloc_size).toBe(32);
    expect(lo(alloc_iova(d, 8, L32, false))).toBe(D32 - 8);
    expect(d.max32_alloc_size).toBe(32);
    // 64-bit requests are not fast-failed.
    expect(lo(alloc_iova(d, 32, L64, false))).toBe(L64 - 31);
  });

  it('rule 4: a failure under a tiny limit blocks later 32-bit requests that would fit (seed 900003 shape)', () => {
    const d = domain();
    expect(alloc_iova(d, 4, 2, true)).toBeNull(); // end 3 < size 4
    expect(d.max32_alloc_size).toBe(4);
    expect(alloc_iova(d, 4, L32, true)).toBeNull(); // the domain is empty, yet: fast-fail
    expect(alloc_iova(d, 40, L32, false)).toBeNull();
    const three = alloc_iova(d, 3, L32, true) as Iova; // smaller sizes still work
    expect(three.pfn_lo).toBe(0xffffc);
    expect(lo(alloc_iova(d, 4, L64, true))).toBe(L64 - 3); // not a 32-bit request
    expect(d.max32_alloc_size).toBe(4);
    // Only freeing a node below 4 GiB resets it.
    free_iova(d, L64 - 3);
    expect(d.max32_alloc_size).toBe(4);
    __free_iova(d, three);
    expect(d.max32_alloc_size).toBe(D32);
    expect(lo(alloc_iova(d, 4, L32, true))).toBe(0xffffc);
  });

  it('rule 4: a failure under a 64-bit limit also blocks 32-bit requests that would fit (seed 900004 shape)', () => {
    const setup = (): IovaDomain => {
      const d = domain(0xffff1);
      reserve_iova(d, 0xffff7, L64); // everything above 0xffff6 is taken; free: [0xffff1, 0xffff6]
      return d;
    };
    const d = setup();
    expect(alloc_iova(d, 5, L64, true)).toBeNull(); // aligned to 8: 0xffff0 < start_pfn
    expect(d.max32_alloc_size).toBe(5);
    expect(alloc_iova(d, 5, L32, false)).toBeNull(); // would fit unaligned, but fast-fails
    expect(lo(alloc_iova(setup(), 5, L32, false))).toBe(0xffff2); // as it does on a domain without the failure
  });

  it('rule 6: the cached node updated on insert depends on where the range landed, not on the limit', () => {
    const d = domain();
    reserve_iova(d, D32, L64); // nothing free above 4 GiB
    const low = alloc_iova(d, 1, L64, false) as Iova; // a 64-bit request landing below 4 GiB
    expect(low.pfn_lo).toBe(D32 - 1);
    expect(d.cached32_node).toBe(low);
    expect(d.cached_node).toBe(d.anchor);
    const e = domain();
    const high = alloc_iova(e, 1, L64, false) as Iova;
    expect(e.cached_node).toBe(high);
    expect(e.cached32_node).toBe(e.anchor);
    // A range straddling 4 GiB (pfn_hi >= dma_32bit_pfn) updates cached_node.
    const f = domain();
    const s = alloc_iova(f, 4, D32 + 1, false) as Iova;
    expect([s.pfn_lo, s.pfn_hi]).toEqual([D32 - 2, D32 + 1]);
    expect(f.cached_node).toBe(s);
    expect(f.cached32_node).toBe(f.anchor);
  });

  it('rule 7: a free at or above the cached node moves it to the successor; a free below does not', () => {
    const d = domain();
    const a = alloc_iova(d, 1, L32, false) as Iova;
    const b = alloc_iova(d, 1, L32, false) as Iova;
    const c = alloc_iova(d, 1, L32, false) as Iova;
    expect(d.cached32_node).toBe(c);
    __free_iova(d, b); // above c: cached32 moves to b's successor, a
    expect(d.cached32_node).toBe(a);
    expect(lo(alloc_iova(d, 1, L32, false))).toBe(b.pfn_lo); // b's hole is seen again
    const d2 = domain();
    const x = alloc_iova(d2, 1, L32, false) as Iova;
    const y = alloc_iova(d2, 1, L32, false) as Iova;
    __free_iova(d2, y); // is cached32: moves to its successor x
    expect(d2.cached32_node).toBe(x);
    // cached_node moves only for frees at or above it
    const e = domain();
    const h1 = alloc_iova(e, 1, L64, false) as Iova;
    const h2 = alloc_iova(e, 1, L64, false) as Iova;
    expect(e.cached_node).toBe(h2);
    __free_iova(e, h1);
    expect(e.cached_node).toBe(e.anchor);
    // cached32 moves only for nodes wholly below 4 GiB (or itself): a straddling node above it does not.
    const f = domain();
    const st = alloc_iova(f, 4, D32 + 1, false) as Iova; // [D32-2, D32+1]
    const cc = alloc_iova(f, 1, L32, false) as Iova; // D32-3
    expect(f.cached32_node).toBe(cc);
    expect(f.cached_node).toBe(st);
    expect(alloc_iova(f, 4, 2, false)).toBeNull(); // records max32 = 4
    expect(f.max32_alloc_size).toBe(4);
    __free_iova(f, st);
    expect(f.cached32_node).toBe(cc);
    expect(f.cached_node).toBe(f.anchor);
    expect(f.max32_alloc_size).toBe(D32); // st.pfn_lo < dma_32bit_pfn
  });

  it('rule 3 for 64-bit limits: the restart finds slack above cached_node, or fails within the limit', () => {
    const d = domain(D32);
    expect(lo(alloc_iova(d, 3, D32 + 7, true))).toBe(D32 + 4); // [D32+4, D32+6], slack D32+7
    expect(lo(alloc_iova(d, 4, D32 + 7, true))).toBe(D32); // cached_node at the bottom
    expect(lo(alloc_iova(d, 1, D32 + 7, false))).toBe(D32 + 7); // below: start_pfn; restart: the slack
    expect(alloc_iova(d, 1, D32 + 7, false)).toBeNull();
    expect(d.max32_alloc_size).toBe(1); // any failed walk records it
  });

  it('throws EINVAL for arguments no C caller could pass, before touching the domain', () => {
    const d = domain();
    for (const [size, limit] of [[0, L32], [NaN, L32], [1.5, L32], [-1, L32], [1, -1], [1, 0.5], [1, NaN], [1, 2 ** 53]] as const) {
      expect(() => alloc_iova(d, size, limit, false)).toThrow(KernelError);
    }
    expect(() => alloc_iova(d, 0, L32, false)).toThrow(/size/);
    expect(() => alloc_iova(d, 1, NaN, false)).toThrow(/limit_pfn/);
    expect(d.ranges()).toEqual([]);
  });
});

describe('find_iova / free_iova / __free_iova', () => {
  it('rule 8: lookups and frees are by containment; an unknown pfn does nothing', () => {
    const d = domain();
    const a = alloc_iova(d, 8, L32, true) as Iova; // [0xffff8, 0xfffff]
    expect(find_iova(d, 0xffffb)).toBe(a);
    expect(find_iova(d, 0xffff7)).toBeNull();
    const before = state(d);
    free_iova(d, 0x1234);
    expect(state(d)).toEqual(before);
    free_iova(d, 0xffffd); // not the start
    expect(d.ranges()).toEqual([]);
    expect(find_iova(d, 0xffffb)).toBeNull();
  });

  it('__free_iova of a range not in the domain is a BUG (double free)', () => {
    const d = domain();
    const a = alloc_iova(d, 1, L32, false) as Iova;
    __free_iova(d, a);
    expect(() => __free_iova(d, a)).toThrow(KernelBug);
    expect(() => __free_iova(d, d.anchor)).toThrow(KernelBug);
    const other = domain();
    const b = alloc_iova(other, 1, L32, false) as Iova;
    expect(() => __free_iova(d, b)).toThrow(KernelBug);
  });
});

describe('reserve_iova', () => {
  it('keeps overlapping reservations apart: (100,200) then (150,300) (seed 900010)', () => {
    const d = domain();
    const r1 = reserve_iova(d, 100, 200) as Iova;
    const r2 = reserve_iova(d, 150, 300) as Iova;
    expect([r1.pfn_lo, r1.pfn_hi]).toEqual([100, 200]);
    expect([r2.pfn_lo, r2.pfn_hi]).toEqual([201, 300]);
    expect(d.ranges()).toEqual([[100, 200], [201, 300]]);
  });

  it('stretches the first overlapping node down in place, even a live allocation, and returns it', () => {
    const d = domain();
    const a = alloc_iova(d, 4, L32, false) as Iova; // [0xffffc, 0xfffff]
    const c32 = d.cached32_node;
    const r = reserve_iova(d, 0xffff0, 0xffffd);
    expect(r).toBe(a);
    expect([a.pfn_lo, a.pfn_hi]).toEqual([0xffff0, 0xfffff]);
    expect(d.cached32_node).toBe(c32); // cached nodes untouched
    expect(find_iova(d, 0xffff5)).toBe(a);
    // Freeing the stretched allocation frees the reserved part too.
    __free_iova(d, a);
    expect(find_iova(d, 0xffff5)).toBeNull();
    expect(d.ranges()).toEqual([]);
  });

  it('clips past each overlapping node, stretches the next over the gap, inserts the rest', () => {
    const d = domain();
    reserve_iova(d, 10, 20);
    reserve_iova(d, 30, 40);
    reserve_iova(d, 60, 70);
    const r = reserve_iova(d, 5, 50) as Iova;
    expect([r.pfn_lo, r.pfn_hi]).toEqual([41, 50]);
    expect(d.ranges()).toEqual([[5, 20], [21, 40], [41, 50], [60, 70]]);
    // The walk ends at the first non-overlapping node after an overlap.
    const e = domain();
    reserve_iova(e, 10, 20);
    reserve_iova(e, 60, 70);
    expect(reserve_iova(e, 15, 30)?.pfn_lo).toBe(21);
    expect(e.ranges()).toEqual([[10, 20], [21, 30], [60, 70]]);
    // A range inside an existing node returns that node unchanged.
    expect(reserve_iova(e, 12, 18)?.pfn_lo).toBe(10);
    expect(e.ranges()).toEqual([[10, 20], [21, 30], [60, 70]]);
  });

  it('WARNs and returns null for pfns beyond the address width (2^52 for 4 KiB)', () => {
    const ctx = createContext('iova-test');
    const d = domain(1, { klog: ctx.klog });
    expect(reserve_iova(d, 0, 2 ** 52)).toBeNull();
    expect(reserve_iova(d, 2 ** 52, 2 ** 52)).toBeNull();
    expect(ctx.klog.warnings('reserve_iova')).toHaveLength(2);
    expect(reserve_iova(d, 2 ** 52 - 1, 2 ** 52 - 1)).not.toBeNull();
    expect(ctx.klog.warnCount).toBe(2);
    expect(() => reserve_iova(d, 5, 4)).toThrow(KernelError);
  });

  it('excludes the range from allocation', () => {
    const d = domain();
    reserve_iova(d, 0xfff00, 0xfffff);
    expect(lo(alloc_iova(d, 1, L32, false))).toBe(0xffeff);
  });
});

describe('put_iova_domain', () => {
  it('frees every range; the domain must be initialised again before use', () => {
    const d = domain();
    const a = alloc_iova(d, 1, L32, false) as Iova;
    reserve_iova(d, 5, 9);
    put_iova_domain(d);
    expect(d.ranges()).toEqual([]);
    expect(a._tree).toBeNull();
    expect(() => alloc_iova(d, 1, L32, false)).toThrow(KernelBug);
    init_iova_domain(d, 4096, 1);
    expect(lo(alloc_iova(d, 1, L32, false))).toBe(0xfffff);
  });
});

describe('fault injection', () => {
  type Op = readonly ['a', number, number, boolean] | readonly ['r', number, number] | readonly ['f', number];
  const ops: Op[] = [
    ['a', 4, L32, true], ['a', 5, L64, true], ['r', 0xff000, 0xff0ff], ['a', 3, L32, false],
    ['f', 0xffffd], ['a', 2, L32, true], ['r', 0xff080, 0xff200], ['r', 0xff010, 0xff020], ['a', 16, L32, true],
  ];

  /** Does reserve_iova(lo, hi) need a new node in `d` (is [lo, hi] not inside the nodes it overlaps)? */
  const willAllocate = (d: IovaDomain, pfnLo: number, pfnHi: number): boolean => {
    for (let n = d.rbroot.firstEndingAtOrAbove(pfnLo); n !== null && n.pfn_lo <= pfnHi; n = d.rbroot.next(n)) {
      if (pfnHi <= n.pfn_hi) return false;
    }
    return true;
  };

  /** Run `ops`; with `skip`, leave out the skip-th op that allocates a struct iova. */
  const run = (d: IovaDomain, skip = 0): Array<number | null> => {
    const out: Array<number | null> = [];
    let seen = 0;
    for (const op of ops) {
      if (op[0] === 'f') {
        free_iova(d, op[1]);
        continue;
      }
      if (op[0] === 'a' || willAllocate(d, op[1], op[2])) {
        if (++seen === skip) continue;
      }
      const r = op[0] === 'a' ? alloc_iova(d, op[1], op[2], op[3]) : reserve_iova(d, op[1], op[2]);
      out.push(r === null ? null : r.pfn_lo);
    }
    return out;
  };

  it('fails each struct iova allocation in turn: null, and the domain is as if the call never happened', () => {
    const clean = new FaultInjector(1);
    expect(run(domain(1, { faults: clean }))).not.toContain(null);
    const total = clean.counts.iova;
    expect(total).toBe(7); // the reserve inside [0xff000, 0xff0ff] allocates nothing
    for (let k = 1; k <= total; k++) {
      const faults = new FaultInjector(1);
      faults.inject('iova', { nth: k });
      const d = domain(1, { faults });
      const out = run(d);
      expect(out.filter((x) => x === null)).toHaveLength(1);
      expect(faults.injected.iova).toBe(1);
      d.checkInvariants();
      const ref = domain(1);
      run(ref, k);
      expect(state(d)).toEqual(state(ref));
    }
  });

  it('an injected failure in reserve_iova leaves overlapping nodes unstretched', () => {
    const faults = new FaultInjector(1);
    const d = domain(1, { faults });
    reserve_iova(d, 10, 20);
    faults.inject('iova', { nth: 1 });
    expect(reserve_iova(d, 5, 30)).toBeNull();
    expect(d.ranges()).toEqual([[10, 20]]);
    expect(reserve_iova(d, 12, 15)?.pfn_lo).toBe(10); // needs no allocation: does not consult faults
    expect(faults.injected.iova).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// Properties

type PropOp =
  | { k: 'alloc'; size: number; limit: number; aligned: boolean }
  | { k: 'free'; pick: number; off: number }
  | { k: 'freePfn'; pfn: number }
  | { k: '__free'; pick: number }
  | { k: 'reserve'; lo: number; len: number };

/** Small domains where failures, restarts and both cached nodes all happen. */
const WIN = 96;
const START = D32 - WIN;
const TOP = D32 + WIN; // everything at or above is reserved at setup

const limitArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(L32) },
  { weight: 3, arbitrary: fc.constant(L64) },
  { weight: 2, arbitrary: fc.integer({ min: START - 4, max: L32 }) },
  { weight: 2, arbitrary: fc.integer({ min: D32, max: TOP + 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) },
);
const sizeArb = fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 8 }) }, { weight: 2, arbitrary: fc.integer({ min: 9, max: 70 }) });
const opArb: fc.Arbitrary<PropOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('alloc' as const), size: sizeArb, limit: limitArb, aligned: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('free' as const), pick: fc.nat(), off: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('freePfn' as const), pfn: fc.integer({ min: START - 8, max: TOP + 8 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('__free' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reserve' as const), lo: fc.integer({ min: START - 8, max: TOP }), len: fc.integer({ min: 0, max: 12 }) }) },
);

function boundedDomain(): { d: IovaDomain; m: TreeModel } {
  const d = domain(START);
  const m = new TreeModel(START);
  reserve_iova(d, TOP, L64);
  m.reserve(TOP, L64);
  return { d, m };
}

describe('properties', () => {
  it('matches the reference model op by op: pfns, ranges, cached nodes, max32_alloc_size', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(opArb, { minLength: 1, maxLength: 150, size: 'max' }), (bounded, ops) => {
        const { d, m } = bounded ? boundedDomain() : { d: domain(START), m: new TreeModel(START) };
        const live: Iova[] = [];
        for (const op of ops) {
          switch (op.k) {
            case 'alloc': {
              const got = alloc_iova(d, op.size, op.limit, op.aligned);
              const want = m.alloc(op.size, op.limit, op.aligned);
              expect(got === null ? null : got.pfn_lo).toBe(want);
              if (got !== null) {
                live.push(got);
                // never below start_pfn, never above the limit, aligned when asked
                expect(got.pfn_lo).toBeGreaterThanOrEqual(START);
                expect(got.pfn_hi).toBeLessThanOrEqual(op.limit);
                expect(iova_size(got)).toBe(op.size);
                if (op.aligned) expect(got.pfn_lo % roundupPowOfTwo(op.size)).toBe(0);
              }
              break;
            }
            case 'free': {
              if (live.length === 0) break;
              const i = op.pick % live.length;
              const n = live[i] as Iova;
              live.splice(i, 1);
              if (n._tree === null) break; // already gone (freed by pfn)
              const pfn = n.pfn_lo + (op.off % iova_size(n));
              free_iova(d, pfn);
              m.free(pfn);
              break;
            }
            case 'freePfn':
              free_iova(d, op.pfn);
              m.free(op.pfn);
              break;
            case '__free': {
              if (live.length === 0) break;
              const i = op.pick % live.length;
              const n = live[i] as Iova;
              live.splice(i, 1);
              if (n._tree === null) break;
              const pfn = n.pfn_lo;
              __free_iova(d, n);
              m.free(pfn);
              break;
            }
            case 'reserve': {
              const got = reserve_iova(d, op.lo, op.lo + op.len);
              const want = m.reserve(op.lo, op.lo + op.len);
              expect(got === null ? null : [got.pfn_lo, got.pfn_hi]).toEqual(want);
              break;
            }
          }
          expect(state(d)).toEqual(m.state());
          d.checkInvariants(); // disjoint, ordered, balanced, cached nodes in the tree
        }
      }),
      { numRuns: 300 },
    );
  });

  it('frees return space exactly: after freeing everything, the same allocations give the same pfns', () => {
    const allocArb = fc.record({ size: sizeArb, limit: limitArb, aligned: fc.boolean() });
    fc.assert(
      fc.property(fc.boolean(), fc.array(allocArb, { minLength: 1, maxLength: 60, size: 'max' }), fc.array(fc.nat(), { maxLength: 60, size: 'max' }), (bounded, allocs, order) => {
        const make = (): IovaDomain => (bounded ? boundedDomain().d : domain(START));
        const fresh = make();
        const d = make();
        const first = allocs.map((a) => alloc_iova(d, a.size, a.limit, a.aligned));
        const live = first.filter((x): x is Iova => x !== null);
        const hadLow = live.some((n) => n.pfn_lo < D32);
        // free in a random order, by a pfn inside each range
        const perm = live.slice();
        for (let i = 0; i < perm.length; i++) {
          const j = i + ((order[i] ?? 0) % (perm.length - i));
          [perm[i], perm[j]] = [perm[j] as Iova, perm[i] as Iova];
        }
        for (const [i, n] of perm.entries()) free_iova(d, n.pfn_lo + ((order[i] ?? 0) % iova_size(n)));
        expect(d.ranges()).toEqual(fresh.ranges());
        if (!bounded) {
          // cached nodes back at the anchor
          expect(d.cached_node).toBe(d.anchor);
          expect(d.cached32_node).toBe(d.anchor);
        }
        // max32_alloc_size is restored only by freeing a node below 4 GiB (rule 4)
        if (d.max32_alloc_size !== D32) expect(hadLow).toBe(false);
        else {
          const again = allocs.map((a) => alloc_iova(d, a.size, a.limit, a.aligned)?.pfn_lo ?? null);
          const onFresh = allocs.map((a) => alloc_iova(fresh, a.size, a.limit, a.aligned)?.pfn_lo ?? null);
          expect(again).toEqual(onFresh);
          expect(again).toEqual(first.map((x) => x?.pfn_lo ?? null));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps a large tree balanced and consistent under random churn', () => {
    const d = domain();
    const live: Iova[] = [];
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 20000; i++) {
      if (live.length < 3000 && rnd(3) !== 0) {
        const n = alloc_iova(d, 1 + rnd(16), rnd(2) === 0 ? L32 : L64, rnd(2) === 0);
        if (n !== null) live.push(n);
      } else if (live.length > 0) {
        const j = rnd(live.length);
        __free_iova(d, live[j] as Iova);
        live[j] = live[live.length - 1] as Iova;
        live.pop();
      }
    }
    d.checkInvariants();
    expect(d.rbroot.count).toBe(live.length + 1);
    for (const n of live) expect(find_iova(d, n.pfn_hi)).toBe(n);
  });
});
