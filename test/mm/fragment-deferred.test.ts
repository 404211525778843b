/**
 * Deferred held pages (issue 20, construction): fragment() lays periodic spans out by formula and
 * leaves their held pages to page metadata to write on first use. Everything observable must be
 * what laying the same spans out run by run gives: metadata bytes, buddy bitmaps and counters, the
 * pages later allocations get, audits (full and since a snapshot), snapshots and restores.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, GFP_KERNEL, Machine, fragment, unfragment } from '../../src/index.ts';
import { layOutFragments } from '../../src/mm/fragment-layout.ts';
import { HeldSpans } from '../../src/mm/held-spans.ts';
import { MAX_PAGE_ORDER } from '../../src/mm/constants.ts';
import { auditMm, auditMmSince, mmAuditBase } from '../../src/mm/audit.ts';
import { driverPages, driverPagesSince } from '../../src/mm/driver-pages.ts';
import { OWNER_ID, PG_ALLOCATED, PG_HEAD } from '../../src/mm/page-meta.ts';
import { Rng } from '../../src/core/rng.ts';
import type { Mm } from '../../src/mm/mm.ts';
import { setEveryNthBit } from '../../src/mm/buddy.ts';

interface Layout { readonly level?: number; readonly run?: readonly [number, number]; readonly gap?: readonly [number, number]; readonly seed?: number }

/** The orders fragment() derives from `o` (its documented rule), for the run-by-run way. */
function orders(o: Layout): [number, number] {
  const single = 2 ** Math.round(MAX_PAGE_ORDER * (1 - (o.level ?? 0)));
  const run = o.run ?? [single, single];
  return [Math.min(MAX_PAGE_ORDER, Math.floor(Math.log2(run[0]))), Math.min(MAX_PAGE_ORDER, Math.floor(Math.log2(run[1])))];
}

function eager(mm: Mm, o: Layout): { heldPages: number; runs: number } {
  return layOutFragments(mm, orders(o), o.gap ?? [1, 2], new Rng(o.seed ?? 1), false);
}

/** Everything the page allocator's state is: metadata (deferred pages written), bitmaps, counters. */
function digest(m: Machine): unknown {
  m.mm.meta.resolveAll();
  return {
    state: Buffer.from(m.mm.meta.state).toString('base64'),
    owner: Buffer.from(m.mm.meta.owner).toString('base64'),
    refcount: Buffer.from(m.mm.meta.refcount).toString('base64'),
    zones: m.mm.zones.map((z) => ({ bits: z.bitmaps.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')), nr: [...z.nrFree], free: z.freePages })),
    allocated: m.mm.allocatedPages,
  };
}

/** A machine with some pages allocated before fragmenting (so spans start unaligned and vary). */
function used(memory: string | object[], seed: number): Machine {
  const m = new Machine({ memory, seed } as ConstructorParameters<typeof Machine>[0]);
  const rng = new Rng(seed);
  const n = 20 + rng.int(40);
  const got: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) {
    const o = rng.int(4);
    got.push([m.mm.alloc_pages(GFP_KERNEL, o) as number, o]);
  }
  // Free some again: free spans then end at allocated pages anywhere, not only at RAM ends.
  for (const [pfn, o] of got) if (rng.int(2) === 0) m.mm.__free_pages(pfn, o);
  return m;
}

const LAYOUTS: Layout[] = [
  { level: 0.6 }, { level: 0.7, seed: 9 }, { level: 0.3 }, { level: 0.9 }, { level: 1 },
  { run: [8, 8], gap: [1, 1] }, { run: [16, 16], gap: [3, 16], seed: 4 }, { run: [16, 16], gap: [1, 17] },
  { run: [1, 64], gap: [1, 4], seed: 2 }, { run: [4096, 4096], gap: [1, 1] }, { run: [2, 2], gap: [2, 2] },
];
const MEMORIES: Array<string | object[]> = ['64M', '48M', [{ start: 0, size: 0x2345000 }, { start: '1G', size: 0x1001000 }, { start: '5G', size: 0x93f000 }]];

describe('fragment with deferred held pages', () => {
  it('equals laying every span out run by run: metadata, bitmaps, counters, result', () => {
    let deferredSeen = 0;
    for (const layout of LAYOUTS) {
      for (const memory of MEMORIES) {
        for (const seed of [1, 7]) {
          const a = used(memory, seed);
          const b = used(memory, seed);
          const ra = fragment(a.mm, layout);
          deferredSeen += a.mm.meta.deferredChunks;
          const rb = eager(b.mm, layout);
          expect(ra, JSON.stringify({ layout, memory, seed })).toEqual(rb);
          expect(b.mm.meta.deferredChunks).toBe(0);
          expect(digest(a), JSON.stringify({ layout, memory, seed })).toEqual(digest(b));
          expect(a.audit()).toEqual([]);
        }
      }
    }
    // The periodic layouts did defer (the comparison above is not between two eager runs).
    expect(deferredSeen).toBeGreaterThan(100);
  });

  it('writes nothing per page up front; reads and writes see the held pages', () => {
    const m = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    const meta = m.mm.meta;
    expect(meta.deferredChunks).toBeGreaterThan(0);
    // Find a held page: not free in the buddy allocator, in the fragmented area.
    let pfn = 4096;
    while (m.mm.zones.some((z) => z.freeBlockOf(pfn) !== null)) pfn++;
    const i = meta.index(pfn);
    expect(meta.state[i]).toBe(0); // not written yet
    const before = meta.deferredChunks;
    expect(meta.stateOf(pfn)).toBe(PG_ALLOCATED | PG_HEAD);
    expect(meta.deferredChunks).toBe(before - 1);
    expect(meta.ownerOf(pfn)).toBe(OWNER_ID.fragmenter);
    expect(meta.refcountOf(pfn)).toBe(1);
    expect(meta.state[i]).toBe(PG_ALLOCATED | PG_HEAD);
    // A writer resolves first: get_page on a still-deferred held page keeps the fragmenter's count.
    let other = pfn + 4096;
    while (m.mm.zones.some((z) => z.freeBlockOf(other) !== null)) other++;
    expect(meta.state[meta.index(other)]).toBe(0);
    m.mm.get_page(other);
    expect(meta.refcountOf(other)).toBe(2);
    // A direct writer announces with touch, which writes the chunk's held pages first: its own
    // store is not overwritten by them later.
    let third = other + 4096;
    while (m.mm.zones.some((z) => z.freeBlockOf(third) !== null)) third++;
    const k = meta.index(third);
    expect(meta.state[k]).toBe(0);
    meta.touch(k, k + 1);
    meta.owner[k] = OWNER_ID.reserved;
    expect(meta.ownerOf(third)).toBe(OWNER_ID.reserved);
    expect(meta.stateOf(third)).toBe(PG_ALLOCATED | PG_HEAD);
  });

  it('later allocations, frees and unfragment behave as on the run-by-run layout', () => {
    for (const layout of [{ level: 0.6 }, { run: [4, 4] as const, gap: [1, 3] as const }]) {
      const a = used('64M', 3);
      const b = used('64M', 3);
      fragment(a.mm, layout);
      eager(b.mm, layout);
      const rng = new Rng(11);
      const liveA: number[] = [];
      const liveB: number[] = [];
      for (let step = 0; step < 3000; step++) {
        if (liveA.length > 0 && rng.int(3) === 0) {
          const k = rng.int(liveA.length);
          a.mm.__free_pages(liveA.splice(k, 1)[0] as number, 0);
          b.mm.__free_pages(liveB.splice(k, 1)[0] as number, 0);
        } else {
          const pa = a.mm.alloc_pages(GFP_KERNEL, 0);
          const pb = b.mm.alloc_pages(GFP_KERNEL, 0);
          expect(pa).toBe(pb);
          liveA.push(pa as number);
          liveB.push(pb as number);
        }
      }
      const va = a.mm.vmalloc(3 << 20);
      const vb = b.mm.vmalloc(3 << 20);
      expect([...(va?.pages ?? [])]).toEqual([...(vb?.pages ?? [])]);
      expect(auditMm(a.mm)).toEqual([]);
      expect(unfragment(a.mm)).toBe(unfragment(b.mm));
      expect(digest(a)).toEqual(digest(b));
    }
  });

  it('snapshots and restores bring deferred chunks back; audits since a snapshot see resolved pages as unchanged', () => {
    const m = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    const deferred = m.mm.meta.deferredChunks;
    const snap = m.snapshot();
    const base = mmAuditBase(m.mm);
    expect(base).not.toBeNull();
    const pagesAtBase = driverPages(m.mm);
    // Resolve chunks by reading, by allocating and by freeing next to held pages.
    const pages: number[] = [];
    for (let k = 0; k < 200; k++) pages.push(m.mm.alloc_pages(GFP_KERNEL, 0) as number);
    for (let pfn = 8192; pfn < 12288; pfn += 97) m.mm.meta.stateOf(pfn);
    for (const p of pages.slice(0, 50)) m.mm.__free_pages(p, 0);
    expect(m.mm.meta.deferredChunks).toBeLessThan(deferred);
    expect(auditMmSince(m.mm, base!)).toEqual([]);
    expect(driverPagesSince(m.mm, base!, pagesAtBase)).toEqual(driverPages(m.mm));
    // A planted leak shows in both audits alike.
    const lost = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    m.mm.meta.touch(m.mm.meta.index(lost), m.mm.meta.index(lost) + 1);
    m.mm.meta.state[m.mm.meta.index(lost)] = 0;
    const since = auditMmSince(m.mm, base!);
    expect(since.some((l) => l.includes('lost'))).toBe(true);
    m.restore(snap);
    expect(m.mm.meta.deferredChunks).toBe(deferred);
    const fresh = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    expect(digest(m)).toEqual(digest(fresh));
    expect(m.audit()).toEqual([]);
  });

  it('writing deferred pages is not a change since a snapshot: audited snapshots keep their audit base', () => {
    // Resolving once counted as a write: every audited snapshot of a fragmented machine (the full
    // audit resolves everything) had no base, and failure sweeps fell back to full audits (11×).
    const m = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    const snap = m.snapshot({ audit: true });
    expect(snap.auditBase).not.toBeNull();
    expect(m.mm.meta.deferredChunks).toBe(0);
    const m2 = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    m2.snapshot();
    for (let pfn = 0; pfn < 16384; pfn += 61) m2.mm.meta.stateOf(pfn);
    m2.mm.meta.resolveAll();
    const base = mmAuditBase(m2.mm);
    expect(base).not.toBeNull();
    expect(m2.mm.meta.changedSince(m2.mm.meta.lastCapture!)).toEqual([]);
    expect(auditMmSince(m2.mm, base!)).toEqual([]);
    // A real change after it is still seen (planted: a page lost).
    const p = m2.mm.alloc_pages(GFP_KERNEL, 0) as number;
    m2.mm.meta.markFree(p, 0);
    expect(auditMmSince(m2.mm, base!).some((l) => l.includes('lost'))).toBe(true);
    // And a snapshot whose chunk was resolved after it restores to what it was.
    const m3 = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    const s3 = m3.snapshot();
    const before = m3.mm.meta.deferredChunks;
    m3.mm.meta.resolveAll();
    const q = m3.mm.alloc_pages(GFP_KERNEL, 2) as number;
    m3.restore(s3);
    expect(m3.mm.meta.deferredChunks).toBe(before);
    expect(m3.mm.meta.headOrder(q)).toBe(-1);
    expect(digest(m3)).toEqual(digest(new Machine({ memory: '64M', fragment: { level: 0.6 } })));
  });

  it('a chunk resolved after a restore: a later snapshot does not take its unwritten copy for its own', () => {
    // Found in review: restore(B) made a box holding B's unwritten copy current; resolving did not
    // announce, so snapshot C shared that copy with its flag clear and restore(C) lost held pages.
    const m = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    const B = m.snapshot();
    m.mm.alloc_pages(GFP_KERNEL, 0);
    m.restore(B);
    expect(m.audit()).toEqual([]);
    const C = m.snapshot({ audit: true });
    m.mm.alloc_pages(GFP_KERNEL, 0);
    expect(m.audit({ since: C })).toEqual([]);
    m.restore(C);
    expect(m.audit()).toEqual([]);
    const fresh = new Machine({ memory: '64M', fragment: { level: 0.6 } });
    expect(digest(m)).toEqual(digest(fresh));
    m.restore(B);
    expect(digest(m)).toEqual(digest(fresh));
  });

  it('a snapshot before fragment(): restore undoes the deferral; audit since it sees the change', () => {
    const m = new Machine({ memory: '64M' });
    const snap = m.snapshot();
    const base = mmAuditBase(m.mm)!;
    const r = fragment(m.mm, { level: 0.5 });
    expect(m.mm.meta.deferredChunks).toBeGreaterThan(0);
    expect(auditMmSince(m.mm, base)).toEqual([]);
    expect(m.mm.allocatedPages).toBeGreaterThanOrEqual(r.heldPages);
    m.restore(snap);
    expect(m.mm.meta.deferredChunks).toBe(0);
    expect(digest(m)).toEqual(digest(new Machine({ memory: '64M' })));
    // fragment() twice: the first layout's deferred pages are written before the second lays out.
    const twice = new Machine({ memory: '64M' });
    fragment(twice.mm, { level: 0.4 });
    fragment(twice.mm, { level: 0.7, seed: 3 });
    const eagerTwice = new Machine({ memory: '64M' });
    eager(eagerTwice.mm, { level: 0.4 });
    eager(eagerTwice.mm, { level: 0.7, seed: 3 });
    expect(digest(twice)).toEqual(digest(eagerTwice));
  });
});

describe('setEveryNthBit', () => {
  it('sets what a bit-at-a-time loop sets, for every step and phase', () => {
    const rng = new Rng(3);
    for (let t = 0; t < 2000; t++) {
      const words = new Uint32Array(40);
      for (let k = 0; k < words.length; k++) words[k] = rng.int(4) === 0 ? rng.u32() : 0;
      const want = words.slice();
      const step = [1, 2, 4, 8, 16, 32, 3, 64][rng.int(8)] as number;
      const first = rng.int(600);
      const last = first + rng.int(1280 - first) - 1;
      for (let b = first; b <= last; b += step) want[b >>> 5] = (want[b >>> 5] as number) | (1 << (b & 31));
      setEveryNthBit(words, first, last, step);
      expect([...words], `first ${first} last ${last} step ${step}`).toEqual([...want]);
    }
  });
});

describe('FreeArea.freeBlocksByAddress', () => {
  it('lists what blocks() lists, by address, on busy and fragmented zones', () => {
    for (const seed of [1, 2, 3]) {
      const m = used(MEMORIES[2] as object[], seed);
      if (seed === 2) fragment(m.mm, { run: [1, 64], gap: [1, 4], seed });
      for (const z of m.mm.zones) {
        const want = [...z.blocks()].sort((a, b) => a[0] - b[0]).flat();
        expect(z.freeBlocksByAddress()).toEqual(want);
      }
    }
  });
});

describe('HeldSpans', () => {
  it('held runs of any range agree with a page-by-page model', () => {
    const rng = new Rng(5);
    for (let t = 0; t < 200; t++) {
      const spans = new HeldSpans();
      const model: boolean[] = [];
      let at = rng.int(50);
      for (let s = 0; s < 1 + rng.int(4); s++) {
        const size = 2 ** rng.int(5);
        const start = at;
        const first = start + rng.int(2 * size);
        const room = 300;
        const count = rng.int(Math.max(1, Math.floor((room - (first - start) - size) / (2 * size)) + 1));
        const end = count > 0 ? first + (2 * count - 1) * size + rng.int(2 * size) : start + 1 + rng.int(room);
        spans.add(start, end, count > 0 ? first : start, size, count);
        for (let i = start; i < end; i++) {
          const k = i - first;
          model[i] = !(count > 0 && k >= 0 && Math.floor(k / (2 * size)) < count && k % (2 * size) < size);
        }
        at = end + rng.int(10);
      }
      const lo = rng.int(at);
      const hi = lo + rng.int(at - lo + 5);
      const got = new Array<boolean>(hi).fill(false);
      let prev = -1;
      spans.forEachHeld(lo, hi, (a, b) => {
        expect(a).toBeGreaterThanOrEqual(Math.max(lo, prev));
        expect(b).toBeGreaterThan(a);
        expect(b).toBeLessThanOrEqual(hi);
        for (let i = a; i < b; i++) got[i] = true;
        prev = b;
      });
      for (let i = lo; i < hi; i++) expect(got[i], `t=${t} i=${i}`).toBe(model[i] === true);
      expect(spans.holds(lo)).toBe(model[lo] === true);
    }
  });

  it('refuses spans out of order or blocks that do not fit', () => {
    const s = new HeldSpans();
    s.add(10, 20, 12, 2, 2);
    expect(() => s.add(5, 8, 5, 1, 0)).toThrow(expect.objectContaining({ errno: EINVAL, message: expect.stringMatching(/out of order/) as unknown }) as Error);
    expect(() => s.add(30, 40, 30, 4, 2)).toThrow(expect.objectContaining({ errno: EINVAL, message: expect.stringMatching(/do not fit/) as unknown }) as Error);
    expect(() => s.add(30, 30, 30, 1, 0)).toThrow(expect.objectContaining({ errno: EINVAL, message: expect.stringMatching(/empty/) as unknown }) as Error);
    // PageMeta.defer and writeHeld check what they are given (nothing written when they refuse).
    const m = new Machine({ memory: '16M' });
    const before = Buffer.from(m.mm.meta.state).toString('base64');
    expect(() => m.mm.meta.defer({ data: [0, 10, 0, 1, 1] } as unknown as HeldSpans)).toThrow(expect.objectContaining({ arg: 'spans' }) as Error);
    const far = new HeldSpans();
    far.add(0, m.mm.meta.state.length + 1, 0, 1, 0);
    expect(() => m.mm.meta.defer(far)).toThrow(expect.objectContaining({ arg: 'spans' }) as Error);
    expect(() => m.mm.meta.writeHeld(0, m.mm.meta.state.length + 1, OWNER_ID.fragmenter)).toThrow(expect.objectContaining({ arg: 'i1' }) as Error);
    expect(() => m.mm.meta.writeHeld(5, 4, OWNER_ID.fragmenter)).toThrow(expect.objectContaining({ arg: 'i1' }) as Error);
    expect(() => m.mm.meta.writeHeld(0, 1, 0)).toThrow(expect.objectContaining({ arg: 'owner' }) as Error);
    expect(() => m.mm.meta.writeHeld(Number.NaN, 1, 4)).toThrow(expect.objectContaining({ arg: 'i0' }) as Error);
    expect(Buffer.from(m.mm.meta.state).toString('base64')).toBe(before);
    expect(m.mm.meta.deferredChunks).toBe(0);
  });
});
