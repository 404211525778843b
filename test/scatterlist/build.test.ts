import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createContext, EINVAL, ENOMEM, GFP_KERNEL, KernelBug, KernelError, SG_MAX_SINGLE_ALLOC, SgAppendTable, SgTable,
  arenaOf, sg_alloc_append_table_from_pages, sg_alloc_table, sg_alloc_table_from_pages,
  sg_alloc_table_from_pages_segment, sg_free_append_table, sg_free_table, sg_last, sg_nents, sg_next,
} from '../../src/index.ts';
import { modelAppend, modelEntries, newModel } from './model.ts';
import { P, UINT_MAX, walk } from './walk.ts';

const fresh = () => createContext('t');

function build(pages: number[], size: number, maxSeg: number, offset = 0) {
  const ctx = fresh();
  const sgt = new SgTable(ctx);
  const ret = sg_alloc_table_from_pages_segment(sgt, pages, pages.length, offset, size, maxSeg, GFP_KERNEL);
  return { ctx, sgt, ret, ...walk(sgt) };
}

describe('sg_alloc_table_from_pages_segment: the kernel test table rules', () => {
  it('merges only strictly ascending consecutive pfns', () => {
    expect(build([0, 1], 2 * P, UINT_MAX).entries).toEqual([[0, 0, 2 * P]]);
    expect(build([1, 0], 2 * P, UINT_MAX).entries).toHaveLength(2);
    expect(build([0, 2, 1], 3 * P, UINT_MAX).entries).toHaveLength(3);
    expect(build([0, 0], 2 * P, UINT_MAX).entries).toHaveLength(2);
    expect(build([0, 1, 3, 4, 6], 5 * P, UINT_MAX).entries).toHaveLength(3);
  });

  it('splits runs every max_segment / PAGE_SIZE pages', () => {
    expect(build([0, 1, 2, 3, 4], 5 * P, 2 * P).entries).toEqual([[0, 0, 2 * P], [2, 0, 2 * P], [4, 0, P]]);
    expect(build([0, 2, 3, 4, 5, 6], 6 * P, 2 * P).entries).toEqual([[0, 0, P], [2, 0, 2 * P], [4, 0, 2 * P], [6, 0, P]]);
  });

  it('max_segment is aligned down; below PAGE_SIZE is a WARN and -EINVAL with nothing allocated', () => {
    expect(build([0, 1], 2 * P, P + 1).entries).toEqual([[0, 0, P], [1, 0, P]]);
    for (const bad of [0, 1, P - 1]) {
      const r = build([0], P, bad);
      expect(r.ret).toBe(-EINVAL);
      expect(r.sgt.sgl).toBeNull();
      expect(r.ctx.klog.warnings('sg_alloc_append_table_from_pages')).toHaveLength(1);
      expect(r.ctx.klog.warnings()[0]?.message).toBe('WARN_ON(max_segment < PAGE_SIZE)');
      expect(arenaOf(r.ctx).liveChunks).toBe(0);
    }
  });

  it('size = 1 gives one entry of one byte; the offset applies to the first entry only', () => {
    expect(build([0], 1, UINT_MAX).entries).toEqual([[0, 0, 1]]);
    expect(build([0, 1, 5], 3 * P - 100, UINT_MAX, 100).entries).toEqual([[0, 100, 2 * P - 100], [5, 0, P]]);
  });

  it('size wraps: entries after the short one get their full length (size_short_underflow)', () => {
    expect(build([0, 1, 3], 5000, UINT_MAX, 100).entries).toEqual([[0, 100, 5000], [3, 0, P]]);
    expect(build([0, 2, 4, 6], P + 10, UINT_MAX).entries).toEqual([[0, 0, P], [2, 0, 10], [4, 0, P], [6, 0, P]]);
    expect(build([0, 2, 4], 0, UINT_MAX).entries).toEqual([[0, 0, 0], [2, 0, P], [4, 0, P]]);
  });

  it('takes size as a bigint unsigned long, and refuses what C could not pass', () => {
    expect(build([0, 1], 2 * P, UINT_MAX).ret).toBe(0);
    const sgt = new SgTable(fresh());
    expect(sg_alloc_table_from_pages_segment(sgt, [7, 8], 2, 0, 2n ** 64n - 1n, UINT_MAX, GFP_KERNEL)).toBe(0);
    expect(walk(sgt).entries).toEqual([[7, 0, 2 * P]]);
    expect(() => sg_alloc_table_from_pages_segment(sgt, [1], 1, 0, -1, UINT_MAX, GFP_KERNEL)).toThrow(KernelError);
    expect(() => sg_alloc_table_from_pages_segment(sgt, [1], 1, -1, P, UINT_MAX, GFP_KERNEL)).toThrow(/offset/);
    expect(() => sg_alloc_table_from_pages_segment(sgt, [1], 2, 0, P, UINT_MAX, GFP_KERNEL)).toThrow(/n_pages/);
    expect(() => sg_alloc_table_from_pages_segment(sgt, [1, Number.NaN], 2, 0, P, UINT_MAX, GFP_KERNEL)).toThrow(/pages/);
    expect(() => sg_alloc_table_from_pages_segment(sgt, [1.5], 1, 0, P, UINT_MAX, GFP_KERNEL)).toThrow(/pages/);
  });

  it('an empty page array is -EINVAL (the C code would dereference NULL)', () => {
    const sgt = new SgTable(fresh());
    expect(sg_alloc_table_from_pages_segment(sgt, [], 0, 0, 0, UINT_MAX, GFP_KERNEL)).toBe(-EINVAL);
    expect(sgt.sgl).toBeNull();
  });

  it('4 GiB of contiguous pages make 2 entries (an entry holds at most 0xFFFFF000 bytes)', () => {
    const n = 1 << 20;
    const pages = Uint32Array.from({ length: n }, (_, i) => 0x100000 + i);
    const sgt = new SgTable(fresh());
    expect(sg_alloc_table_from_pages(sgt, pages, n, 0, n * P, GFP_KERNEL)).toBe(0);
    expect(walk(sgt).entries).toEqual([[0x100000, 0, 0xfffff000], [0x100000 + 1048575, 0, P]]);
  });

  it('accepts number[], Uint32Array and Float64Array pages alike', () => {
    const pfns = [5, 6, 7, 20, 21];
    const outs = [pfns, Uint32Array.from(pfns), Float64Array.from(pfns)].map((p) => {
      const sgt = new SgTable(fresh());
      sg_alloc_table_from_pages_segment(sgt, p, 5, 0, 5 * P, UINT_MAX, GFP_KERNEL);
      return walk(sgt);
    });
    expect(outs[1]).toEqual(outs[0]);
    expect(outs[2]).toEqual(outs[0]);
  });
});

describe('chunk layout (SG_MAX_SINGLE_ALLOC = 128: 127 data slots + a link per full chunk)', () => {
  const layoutOf = (n: number): string => `${'d'.repeat(n - 1)}E`;
  it.each([1, 127, 128, 129, 255, 256, 300])('sg_alloc_table(%i)', (n) => {
    const ctx = fresh();
    const sgt = new SgTable(ctx);
    expect(sg_alloc_table(sgt, n, GFP_KERNEL)).toBe(0);
    expect(sgt.orig_nents).toBe(n);
    expect(sgt.nents).toBe(n);
    const { layout } = walk(sgt);
    const links = n <= 128 ? 0 : Math.ceil((n - 1) / 127) - 1;
    expect(layout.replace(/L/g, '')).toBe(layoutOf(n));
    expect(layout.split('L')).toHaveLength(links + 1);
    for (const part of layout.split('L').slice(0, -1)) expect(part).toHaveLength(127);
    expect(arenaOf(ctx).liveChunks).toBe(links + 1);
    expect(sg_nents(sgt.sgl)).toBe(n);
    expect(sg_last(sgt.sgl, n)).toEqual(layout.length > 0 ? sg_last(sgt.sgl, n) : null);
    sg_free_table(sgt);
    expect(arenaOf(ctx).liveChunks).toBe(0);
    expect(sgt.orig_nents).toBe(n); // left as it was, as in the kernel
    sg_free_table(sgt); // harmless
  });

  it.each([127, 128, 129, 255, 256, 300])('sg_alloc_table_from_pages_segment with %i entries lays out the same', (n) => {
    const pages = Array.from({ length: n }, (_, i) => 2 * i);
    const r = build(pages, n * P, UINT_MAX);
    const ctx = fresh();
    const ref = new SgTable(ctx);
    sg_alloc_table(ref, n, GFP_KERNEL);
    expect(r.layout).toBe(walk(ref).layout);
    sg_free_table(r.sgt);
    expect(arenaOf(r.ctx).liveChunks).toBe(0);
  });

  it('freeing a table of hundreds of chunks releases every one (the free walk grows its record)', () => {
    const ctx = fresh();
    const arena = arenaOf(ctx);
    for (const n of [127 * 64, 127 * 64 + 1, 127 * 300 + 5]) {
      const pages = Uint32Array.from({ length: n }, (_, i) => 2 * i);
      const sgt = new SgTable(ctx);
      expect(sg_alloc_table_from_pages_segment(sgt, pages, n, 0, n * P, UINT_MAX, GFP_KERNEL)).toBe(0);
      expect(arena.liveChunks).toBe(Math.ceil((n - 1) / 127));
      sg_free_table(sgt);
      expect([arena.liveChunks, arena.liveSlots]).toEqual([0, 0]);
    }
    // A freed table's chunks are reused: building again needs no fresh arena memory.
    const segsBefore = arena.segs.length;
    const sgt = new SgTable(ctx);
    sg_alloc_table(sgt, 127 * 300 + 5, GFP_KERNEL);
    expect(arena.segs.length).toBe(segsBefore);
    sg_free_table(sgt);
    expect(arena.liveChunks).toBe(0);
  });

  it('sg_alloc_table(0) is -EINVAL', () => {
    const sgt = new SgTable(fresh());
    expect(sg_alloc_table(sgt, 0, GFP_KERNEL)).toBe(-EINVAL);
    expect(sgt.sgl).toBeNull();
  });

  it('sg_last BUGs when nents does not reach the END entry', () => {
    const sgt = new SgTable(fresh());
    sg_alloc_table(sgt, 5, GFP_KERNEL);
    expect(() => sg_last(sgt.sgl, 4)).toThrow(KernelBug);
    expect(() => sg_last(sgt.sgl, 0)).toThrow(KernelBug);
    expect(sg_last(sgt.sgl, 5)).toEqual(sgt.sgl?.at(4));
  });
});

describe('append', () => {
  function appendCalls(calls: Array<[number[], number]>, maxSeg = UINT_MAX) {
    const ctx = fresh();
    const app = new SgAppendTable(ctx);
    const rets = calls.map(([pages, left]) => sg_alloc_append_table_from_pages(app, pages, pages.length, 0, pages.length * P, maxSeg, left, GFP_KERNEL));
    return { ctx, app, rets, ...walk(app.sgt) };
  }

  it('merges a contiguous continuation into prv: [0,1,2] + [3,4,5] is one entry', () => {
    const r = appendCalls([[[0, 1, 2], 3], [[3, 4, 5], 0]]);
    expect(r.rets).toEqual([0, 0]);
    expect(r.entries).toEqual([[0, 0, 6 * P]]);
    expect(r.app.total_nents).toBe(4);
    expect(r.app.sgt.nents).toBe(1);
    expect(r.layout).toBe('E');
  });

  it('[0,1,2] + [4,5,6] uses slot 1 of the pre-allocated 4', () => {
    const r = appendCalls([[[0, 1, 2], 3], [[4, 5, 6], 0]]);
    expect(r.entries).toEqual([[0, 0, 3 * P], [4, 0, 3 * P]]);
    expect(r.app.total_nents).toBe(4);
    sg_free_append_table(r.app);
    expect(arenaOf(r.ctx).liveChunks).toBe(0);
  });

  it('merges up to max_segment: [0,1,3,4,5,6] + [7..12] with 12 pages max', () => {
    const r = appendCalls([[[0, 1, 3, 4, 5, 6], 6], [[7, 8, 9, 10, 11, 12], 0]], 12 * P);
    expect(r.entries).toEqual([[0, 0, 2 * P], [3, 0, 10 * P]]);
  });

  it('a continuation merges only the whole pages that keep prv within this call\'s max_segment', () => {
    // prv is [0,1] at offset 100: 2P - 100 bytes. With max_segment 2P, 2P - 100 + P > 2P: no merge.
    // With 3P, one page fits (3P - 100), the next would not.
    for (const [maxSeg, want] of [
      [2 * P, [[0, 100, 2 * P - 100], [2, 0, 2 * P]]],
      [3 * P, [[0, 100, 3 * P - 100], [3, 0, P]]],
    ] as const) {
      const ctx = fresh();
      const app = new SgAppendTable(ctx);
      expect(sg_alloc_append_table_from_pages(app, [0, 1], 2, 100, 2 * P - 100, 2 * P, 2, GFP_KERNEL)).toBe(0);
      expect(sg_alloc_append_table_from_pages(app, [2, 3], 2, 0, 2 * P, maxSeg, 0, GFP_KERNEL)).toBe(0);
      expect(walk(app.sgt).entries).toEqual(want);
      sg_free_append_table(app);
    }
  });

  it('a continuation merges exactly the consecutive prefix, wherever it breaks (0..9 pages, each array type)', () => {
    for (let k = 0; k <= 9; k++) {
      const next = Array.from({ length: 12 }, (_, i) => (i < k ? 3 + i : 3 + i + 1));
      for (const pages of [next, Uint32Array.from(next), Float64Array.from(next)]) {
        const ctx = fresh();
        const app = new SgAppendTable(ctx);
        expect(sg_alloc_append_table_from_pages(app, [0, 1, 2], 3, 0, 3 * P, UINT_MAX, 12, GFP_KERNEL)).toBe(0);
        expect(sg_alloc_append_table_from_pages(app, pages, 12, 0, 12 * P, UINT_MAX, 0, GFP_KERNEL)).toBe(0);
        const want = k === 12 ? [[0, 0, 15 * P]] : [[0, 0, (3 + k) * P], [3 + k + 1, 0, (12 - k) * P]];
        expect(walk(app.sgt).entries).toEqual(want);
      }
    }
  });

  it('pfns past 2^32 merge like any other: 0xFFFFFFFF, 2^32, 2^32 + 1 is one entry, and sg_page gives the whole pfn back', () => {
    const top = 0xffffffff;
    expect(build([top, top + 1, top + 2], 3 * P, UINT_MAX).entries).toEqual([[top, 0, 3 * P]]);
    expect(build([5, 2 ** 36, 2 ** 36 + 1, 2 ** 40 - 1], 4 * P, UINT_MAX).entries).toEqual([[5, 0, P], [2 ** 36, 0, 2 * P], [2 ** 40 - 1, 0, P]]);
    // A continuation merges across 2^32 too; a chain link in a wide table still points at a slot.
    const r = appendCalls([[[top - 1], 3], [[top, top + 1, top + 2], 0]]);
    expect(r.entries).toEqual([[top - 1, 0, 4 * P]]);
    const many = Array.from({ length: 300 }, (_, i) => 2 ** 38 + 2 * i);
    const big = build(many, 300 * P, UINT_MAX);
    expect(big.entries.map((e) => e[0])).toEqual(many);
    expect(big.layout).toContain('L');
  });

  it('nothing follows pfn 0xFFFFFFFF: pfn 0 after it starts a new entry (pfns are not 32-bit wrapping)', () => {
    const top = 0xffffffff;
    const r = appendCalls([[[top - 1], 3], [[top, 0, 1], 0]]);
    expect(r.entries).toEqual([[top - 1, 0, 2 * P], [0, 0, 2 * P]]);
    const one = build([top, 0], 2 * P, UINT_MAX);
    expect(one.entries).toEqual([[top, 0, P], [0, 0, P]]);
    // The same past the first entry, for a single page and at the end of a run.
    expect(build([7, top, 0, 1], 4 * P, UINT_MAX).entries).toEqual([[7, 0, P], [top, 0, P], [0, 0, 2 * P]]);
    expect(build([3, top - 2, top - 1, top, 0, 1], 6 * P, UINT_MAX).entries).toEqual([[3, 0, P], [top - 2, 0, 3 * P], [0, 0, 2 * P]]);
    expect(build([3, 2 ** 31 - 1, 2 ** 31, 5], 4 * P, UINT_MAX).entries).toEqual([[3, 0, P], [2 ** 31 - 1, 0, 2 * P], [5, 0, P]]);
  });

  it('pages that are not pfns in [0, 2^40) are -EINVAL naming pages, before any merge; the table is unchanged', () => {
    for (const bad of [2 ** 40 + 3, 2 ** 40, 2.5, -1, Number.NaN, 2 ** 52, '2' as unknown as number]) {
      const ctx = fresh();
      const app = new SgAppendTable(ctx);
      sg_alloc_append_table_from_pages(app, [0, 1], 2, 0, 2 * P, UINT_MAX, 3, GFP_KERNEL);
      const before = { ...walk(app.sgt), nents: app.sgt.nents, total: app.total_nents, live: arenaOf(ctx).liveSlots };
      // The first page would merge into prv; the second is 3 + 2^40 (the low 40 bits of the pfn that would follow) or no pfn at all.
      let err: unknown;
      try {
        sg_alloc_append_table_from_pages(app, [2, bad, 3], 3, 0, 3 * P, UINT_MAX, 0, GFP_KERNEL);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect(err).toMatchObject({ errno: EINVAL, arg: 'pages' });
      expect({ ...walk(app.sgt), nents: app.sgt.nents, total: app.total_nents, live: arenaOf(ctx).liveSlots }).toEqual(before);
      expect(() => sg_alloc_table_from_pages_segment(new SgTable(ctx), [bad], 1, 0, P, UINT_MAX, GFP_KERNEL)).toThrow(KernelError);
    }
  });

  it('a non-zero offset on a continuation is a WARN and -EINVAL, table unchanged', () => {
    const ctx = fresh();
    const app = new SgAppendTable(ctx);
    sg_alloc_append_table_from_pages(app, [0, 1], 2, 0, 2 * P, UINT_MAX, 2, GFP_KERNEL);
    const before = walk(app.sgt);
    expect(sg_alloc_append_table_from_pages(app, [2, 3], 2, 8, 2 * P, UINT_MAX, 0, GFP_KERNEL)).toBe(-EINVAL);
    expect(ctx.klog.warnings()[0]?.message).toBe('WARN_ON(offset)');
    expect(walk(app.sgt)).toEqual(before);
  });

  it('appending new entries after a left_pages = 0 call is a NULL dereference (KernelBug), prv restored', () => {
    const ctx = fresh();
    const app = new SgAppendTable(ctx);
    sg_alloc_append_table_from_pages(app, [0, 1], 2, 0, 2 * P, 4 * P, 0, GFP_KERNEL);
    expect(() => sg_alloc_append_table_from_pages(app, [2, 3, 9], 3, 0, 3 * P, 4 * P, 0, GFP_KERNEL)).toThrow(KernelBug);
    expect(walk(app.sgt).entries).toEqual([[0, 0, 2 * P]]);
    // but pages that all merge are fine
    expect(sg_alloc_append_table_from_pages(app, [2, 3], 2, 0, 2 * P, 4 * P, 0, GFP_KERNEL)).toBe(0);
    expect(walk(app.sgt).entries).toEqual([[0, 0, 4 * P]]);
  });

  it('over-estimated left_pages leaves unused slots counted in total_nents, freed by sg_free_append_table', () => {
    const r = appendCalls([[[0, 2, 4], 5], [[6], 0]]);
    expect(r.app.sgt.nents).toBe(4);
    expect(r.app.total_nents).toBe(8);
    sg_free_append_table(r.app);
    expect(arenaOf(r.ctx).liveChunks).toBe(0);
  });

  it('append across chunk boundaries in 512-page calls equals the oneshot build', () => {
    const pages = Array.from({ length: 4096 }, (_, i) => 3 * i + (i % 3 === 0 ? 0 : 1));
    const ctx = fresh();
    const app = new SgAppendTable(ctx);
    for (let k = 0; k < pages.length; k += 512) {
      const part = pages.slice(k, k + 512);
      expect(sg_alloc_append_table_from_pages(app, part, part.length, 0, part.length * P, 65536, pages.length - k - part.length, GFP_KERNEL)).toBe(0);
    }
    const one = build(pages, pages.length * P, 65536);
    expect(walk(app.sgt)).toEqual({ entries: one.entries, layout: one.layout });
  });
});

describe('-ENOMEM part-way (fault injection on sg chunks)', () => {
  it('sg_alloc_table frees what it allocated and returns -ENOMEM', () => {
    for (let k = 1; k <= 3; k++) {
      const ctx = fresh();
      ctx.faults.inject('sg-chunk', { nth: k });
      const sgt = new SgTable(ctx);
      expect(sg_alloc_table(sgt, 300, GFP_KERNEL)).toBe(-ENOMEM);
      expect(arenaOf(ctx).liveChunks).toBe(0);
    }
  });

  it('sg_alloc_table_from_pages_segment leaves sgt untouched and nothing allocated', () => {
    const pages = Array.from({ length: 400 }, (_, i) => 2 * i);
    for (let k = 1; k <= 4; k++) {
      const ctx = fresh();
      ctx.faults.inject('sg-chunk', { nth: k });
      const sgt = new SgTable(ctx);
      expect(sg_alloc_table_from_pages_segment(sgt, pages, 400, 0, 400 * P, UINT_MAX, GFP_KERNEL)).toBe(-ENOMEM);
      expect(sgt.sgl).toBeNull();
      expect(sgt.orig_nents).toBe(0);
      expect(arenaOf(ctx).liveChunks).toBe(0);
    }
  });

  it('append: prv length restored, entries not counted, sg_free_append_table cleans up completely', () => {
    const ctx = fresh();
    const app = new SgAppendTable(ctx);
    expect(sg_alloc_append_table_from_pages(app, [0, 1], 2, 0, 2 * P, UINT_MAX, 300, GFP_KERNEL)).toBe(0);
    ctx.faults.inject('sg-chunk', { nth: 2 });
    const pages = [2, 3, ...Array.from({ length: 300 }, (_, i) => 10 + 2 * i)];
    expect(sg_alloc_append_table_from_pages(app, pages, pages.length, 0, pages.length * P, UINT_MAX, 0, GFP_KERNEL)).toBe(-ENOMEM);
    expect(app.sgt.nents).toBe(1);
    expect(app.prv?.length).toBe(2 * P);
    sg_free_append_table(app);
    expect(arenaOf(ctx).liveChunks).toBe(0);
  });
});

// Pfns near 0, across 2^32 (where the 32-bit scan hands over to the wide one, and 0xFFFFFFFF is
// followed by 0x100000000), near 2^36, and just below 2^40, the top of the physical space.
describe.each([
  ['low pfns', 0],
  ['pfns across 2^32', 2 ** 32 - 2000],
  ['pfns near 2^36', 2 ** 36 - 1000],
  ['pfns just below 2^40', 2 ** 40 - 40_000],
])('property: the fast builder equals the reference model (%s)', (_name, base) => {
  const pagesArb = fc.array(fc.oneof(fc.constant(1), fc.constant(2), fc.integer({ min: 3, max: 40 })), { minLength: 1, maxLength: 700 })
    .map((steps) => { let p = 100; return steps.map((d) => (p += d === 1 ? 1 : d === 2 ? -1 : d)); })
    .map((ps) => ps.map((p) => base + Math.abs(p)));
  const maxSegArb = fc.oneof(fc.constant(UINT_MAX), fc.integer({ min: 0, max: 40 * P }));

  it('oneshot builds: entries, counts, layout', () => {
    fc.assert(fc.property(pagesArb, maxSegArb, fc.integer({ min: 0, max: P - 1 }), fc.integer({ min: -3 * P, max: 2 * P }), (pages, maxSeg, offset, slack) => {
      const size = Math.max(0, pages.length * P - offset + slack);
      const r = build(pages, size, maxSeg, offset);
      const m = newModel();
      const mret = modelAppend(m, pages, offset, BigInt(size), maxSeg, 0);
      expect(r.ret).toBe(mret);
      if (r.ret !== 0) return;
      const me = modelEntries(m);
      expect(r.entries).toEqual(me.entries);
      expect(r.layout).toBe(me.layout);
      expect(r.sgt.orig_nents).toBe(m.origNents);
      sg_free_table(r.sgt);
      expect(arenaOf(r.ctx).liveChunks).toBe(0);
    }), { numRuns: 300 });
  });

  it('append sequences with honest left_pages: entries, nents, total_nents, layout', () => {
    // Each call has its own max_segment, and the first an offset: prv's length need not be a page
    // multiple and may already exceed a later call's max_segment.
    fc.assert(fc.property(pagesArb, fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 6 }), fc.array(maxSegArb, { minLength: 1, maxLength: 6 }), fc.nat(40), fc.integer({ min: 0, max: P - 1 }), (pages, cuts, maxSegs, extra, offset) => {
      const ctx = fresh();
      const app = new SgAppendTable(ctx);
      const m = newModel();
      let k = 0;
      let ci = 0;
      while (k < pages.length) {
        const part = pages.slice(k, k + (cuts[ci % cuts.length] as number));
        const maxSeg = maxSegs[ci % maxSegs.length] as number;
        const off = k === 0 ? offset : 0;
        ci++;
        k += part.length;
        const left = pages.length - k === 0 ? 0 : pages.length - k + extra;
        let ret: number | string;
        try {
          ret = sg_alloc_append_table_from_pages(app, part, part.length, off, part.length * P - off, maxSeg, left, GFP_KERNEL);
        } catch (e) {
          ret = e instanceof KernelBug ? 'bug' : String(e);
        }
        const mret = modelAppend(m, part, off, BigInt(part.length * P - off), maxSeg, left);
        expect(ret).toBe(mret);
        if (ret !== 0) return;
        expect(app.sgt.nents).toBe(m.nents);
        expect(app.total_nents).toBe(m.totalNents);
      }
      const me = modelEntries(m);
      const w = walk(app.sgt);
      expect(w.entries).toEqual(me.entries);
      expect(w.layout).toBe(me.layout);
      sg_free_append_table(app);
      expect(arenaOf(ctx).liveChunks).toBe(0);
    }), { numRuns: 300 });
  });

  it('an append call that fails part-way and is retried ends as the model does (entries written past prv are rewritten)', () => {
    fc.assert(fc.property(pagesArb, fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 5 }), maxSegArb, fc.nat(5), fc.nat(3), (pages, cuts, maxSeg, failCall, failAt) => {
      const ctx = fresh();
      const app = new SgAppendTable(ctx);
      const m = newModel();
      let k = 0;
      for (let ci = 0; k < pages.length; ci++) {
        const part = pages.slice(k, k + (cuts[ci % cuts.length] as number));
        k += part.length;
        const left = pages.length - k;
        const call = () => sg_alloc_append_table_from_pages(app, part, part.length, 0, part.length * P, maxSeg, left, GFP_KERNEL);
        if (ci === failCall) {
          ctx.faults.inject('sg-chunk', { nth: failAt + 1 });
          const ret = call();
          ctx.faults.clear();
          expect(ret).toBe(modelAppend(m, part, 0, BigInt(part.length * P), maxSeg, left, failAt));
          if (ret !== 0 && ret !== -ENOMEM) return;
          if (ret === -ENOMEM) expect(call()).toBe(modelAppend(m, part, 0, BigInt(part.length * P), maxSeg, left));
        } else {
          expect(call()).toBe(modelAppend(m, part, 0, BigInt(part.length * P), maxSeg, left));
        }
        expect([app.sgt.nents, app.total_nents]).toEqual([m.nents, m.totalNents]);
      }
      const me = modelEntries(m);
      expect(walk(app.sgt)).toEqual({ entries: me.entries, layout: me.layout });
      sg_free_append_table(app);
      expect(arenaOf(ctx).liveChunks).toBe(0);
    }), { numRuns: 300 });
  });

  it('injected failures: same return as the model failing the same allocation, and nothing leaks', () => {
    fc.assert(fc.property(pagesArb, maxSegArb, fc.nat(6), (pages, maxSeg, failAt) => {
      const ctx = fresh();
      ctx.faults.inject('sg-chunk', { nth: failAt + 1 });
      const sgt = new SgTable(ctx);
      const ret = sg_alloc_table_from_pages_segment(sgt, pages, pages.length, 0, pages.length * P, maxSeg, GFP_KERNEL);
      const mret = modelAppend(newModel(), pages, 0, BigInt(pages.length * P), maxSeg, 0, failAt);
      expect(ret).toBe(mret);
      if (ret === 0) sg_free_table(sgt);
      expect(arenaOf(ctx).liveChunks).toBe(0);
    }), { numRuns: 200 });
  });
});

it('SG_MAX_SINGLE_ALLOC is 128 and sg_next follows chain links', () => {
  expect(SG_MAX_SINGLE_ALLOC).toBe(128);
  const sgt = new SgTable(fresh());
  sg_alloc_table(sgt, 200, GFP_KERNEL);
  let n = 0;
  for (let sg = sgt.sgl; sg !== null; sg = sg_next(sg)) n++;
  expect(n).toBe(200);
});
