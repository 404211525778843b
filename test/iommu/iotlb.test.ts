import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { KernelError } from '../../src/core/errors.ts';
import { GFP_KERNEL } from '../../src/mm/gfp.ts';
import {
  IommuIotlbGather, ULONG_MAX, iommu_flush_iotlb_all, iommu_iotlb_gather_add_page, iommu_iotlb_gather_add_range,
  iommu_iotlb_gather_init, iommu_iotlb_gather_is_disjoint, iommu_iotlb_sync, type IotlbSyncDomain,
} from '../../src/iommu/gather.ts';
import { IOTLB_DEFAULT_CAPACITY, Iotlb } from '../../src/iommu/iotlb.ts';
import { PagingDomain } from '../../src/iommu/map-domain.ts';
import { iommu_map, iommu_unmap, iommu_unmap_fast } from '../../src/iommu/map.ts';
import { IoPageTable } from '../../src/iommu/pgtable.ts';
import { SimpleTablePageAllocator } from '../../src/iommu/pgtable-alloc.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/pgtable-prot.ts';
import { TranslateResult, translate } from '../../src/iommu/translate.ts';
import { captureGraph } from '../../src/core/snapshot.ts';

const K4 = 4096;
const M2 = 2 ** 21;
const RW = IOMMU_READ | IOMMU_WRITE;

function setup(iotlb: Iotlb | null = new Iotlb(), asid = 7) {
  const ctx = createContext('iotlb-test');
  const alloc = new SimpleTablePageAllocator();
  const pt = new IoPageTable({ ias: 48 }, alloc, { klog: ctx.klog, faults: ctx.faults });
  const domain = new PagingDomain({ pgtable: pt, iotlb, asid, klog: ctx.klog });
  return { ctx, alloc, pt, domain, iotlb };
}

describe('Iotlb', () => {
  it('caches translations per address space, counting hits and misses', () => {
    const tlb = new Iotlb();
    expect(tlb.capacity).toBe(IOTLB_DEFAULT_CAPACITY);
    expect(tlb.lookup(1, 0x5000)).toBe(-1);
    tlb.insert(1, 0x5123, 0x9000, IOMMU_READ, 12, 0);
    const s = tlb.lookup(1, 0x5fff);
    expect(s).toBeGreaterThanOrEqual(0);
    expect([tlb.pagePhys[s], tlb.perm[s], tlb.slotIova(s)]).toEqual([0x9000, IOMMU_READ, 0x5000]);
    expect(tlb.lookup(2, 0x5000)).toBe(-1); // another domain
    expect(tlb.lookup(1, 0x6000)).toBe(-1);
    expect([tlb.hits, tlb.misses, tlb.inserts, tlb.count]).toEqual([1, 3, 1, 1]);
  });

  it('a lookup tries each cached page size: a 2 MiB entry answers for every address in it', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 3 * M2, 0x4000_0000, RW, 21, 0);
    tlb.insert(1, 0x1000, 0x2000, RW, 12, 0);
    const s = tlb.lookup(1, 3 * M2 + 0x1f_f000);
    expect(tlb.pagePhys[s]).toBe(0x4000_0000);
    expect(tlb.keyShift[s]).toBe(21);
  });

  it('drops every entry when an insert finds it full, as QEMU VT-d does', () => {
    const tlb = new Iotlb({ capacity: 4 });
    for (let i = 0; i < 4; i++) tlb.insert(1, i * K4, i * K4, RW, 12, 0);
    expect(tlb.count).toBe(4);
    tlb.insert(1, 0x10_0000, 0, RW, 12, 0);
    expect([tlb.count, tlb.resets]).toEqual([1, 1]);
    expect(tlb.peek(1, 0)).toBe(-1);
    tlb.insert(1, 0x10_0000, 0x5000, RW, 12, 0); // same key: updated in place, no reset
    expect([tlb.count, tlb.resets, tlb.pagePhys[tlb.peek(1, 0x10_0000)]]).toEqual([1, 1, 0x5000]);
    expect(() => new Iotlb({ capacity: 0 })).toThrow(KernelError);
    expect(() => tlb.insert(-1, 0, 0, RW, 12, 0)).toThrow(KernelError);
  });

  it('range invalidation removes every entry of that space overlapping the range, large pages included', () => {
    const tlb = new Iotlb();
    tlb.insert(1, 0, 0, RW, 21, 0); // [0, 2M)
    tlb.insert(1, M2, 0, RW, 12, 0);
    tlb.insert(1, M2 + K4, 0, RW, 12, 0);
    tlb.insert(2, 0x1000, 0, RW, 12, 0);
    expect(tlb.invalidateRange(1, 0x1000, K4)).toBe(1); // the 2M entry
    expect(tlb.invalidateRange(1, M2 + K4, 2 ** 40)).toBe(1); // big range: by scan
    expect(tlb.peek(1, M2)).toBeGreaterThanOrEqual(0);
    expect(tlb.peek(2, 0x1000)).toBeGreaterThanOrEqual(0);
    expect(tlb.invalidateAsid(2)).toBe(1);
    expect(tlb.flushAll()).toBe(1);
    expect([tlb.invalidations, tlb.domainFlushes, tlb.globalFlushes, tlb.entriesInvalidated]).toEqual([2, 1, 1, 4]);
  });

  it('property: behaves like a Map under random inserts, invalidations and lookups (deletion keeps probing sound)', () => {
    const op = fc.record({
      kind: fc.constantFrom('insert', 'insert', 'insert', 'inval', 'lookup', 'asid'),
      asid: fc.integer({ min: 0, max: 2 }),
      page: fc.integer({ min: 0, max: 15 }), // few pages: inserts collide, invalidations hit
      n: fc.integer({ min: 1, max: 40 }),
      big: fc.boolean(),
    });
    fc.assert(fc.property(fc.array(op, { minLength: 50, maxLength: 200 }), (ops) => {
      const tlb = new Iotlb({ capacity: 8 }); // 16 slots: long probe chains
      const model = new Map<string, { asid: number; iova: number; size: number; phys: number }>();
      for (const o of ops) {
        const shift = o.big ? 21 : 12;
        const size = 2 ** shift;
        const iova = o.page * K4 * 37;
        if (o.kind === 'insert') {
          const base = Math.floor(iova / size) * size;
          const key = `${o.asid}:${shift}:${base}`;
          if (!model.has(key) && model.size >= 8) model.clear();
          model.set(key, { asid: o.asid, iova: base, size, phys: o.page * K4 });
          tlb.insert(o.asid, iova, o.page * K4, RW, shift, 0);
        } else if (o.kind === 'inval') {
          const len = o.n * K4 * (o.big ? 37 : 1); // small ranges delete entry by entry, large ones rebuild
          for (const [k, e] of model) if (e.asid === o.asid && e.iova < iova + len && e.iova + e.size > iova) model.delete(k);
          tlb.invalidateRange(o.asid, iova, len);
        } else if (o.kind === 'asid') {
          for (const [k, e] of model) if (e.asid === o.asid) model.delete(k);
          tlb.invalidateAsid(o.asid);
        }
        expect(tlb.count).toBe(model.size);
        for (const e of model.values()) {
          const slot = tlb.peek(e.asid, e.iova + e.size - 1);
          expect(slot).toBeGreaterThanOrEqual(0); // every cached entry stays reachable
        }
        const probe = o.page * K4 * 37 + 5;
        const hits = [...model.values()].filter((e) => e.asid === o.asid && probe >= e.iova && probe < e.iova + e.size);
        const s = tlb.peek(o.asid, probe);
        if (hits.length === 0) expect(s).toBe(-1);
        else expect(hits.map((h) => h.phys)).toContain(tlb.pagePhys[s]);
      }
      const listed = [...tlb.entries()].map((e) => `${e.asid}:${Math.log2(e.size)}:${e.iova}`).sort();
      expect(listed).toEqual([...model.keys()].sort());
    }), { numRuns: 200 });
  });
});

describe('iotlb gather', () => {
  function recorder(): IotlbSyncDomain & { synced: Array<[number, number, number]> } {
    const synced: Array<[number, number, number]> = [];
    return { synced, iotlb_sync: (g) => synced.push([g.start, g.end, g.pgsize]) };
  }

  it('starts empty: start ULONG_MAX, end 0; add_range widens an inclusive range', () => {
    const g = new IommuIotlbGather();
    expect([g.start, g.end, g.pgsize, g.freelist, g.queued]).toEqual([ULONG_MAX, 0, 0, [], false]);
    iommu_iotlb_gather_add_range(g, 0x3000, K4);
    iommu_iotlb_gather_add_range(g, 0x1000, K4);
    expect([g.start, g.end]).toEqual([0x1000, 0x3fff]);
    iommu_iotlb_gather_init(g);
    expect([g.start, g.end]).toEqual([ULONG_MAX, 0]);
  });

  it('is_disjoint: false when empty, overlapping or adjacent; true with a gap on either side', () => {
    const g = new IommuIotlbGather();
    expect(iommu_iotlb_gather_is_disjoint(g, 0x9000, K4)).toBe(false);
    iommu_iotlb_gather_add_range(g, 0x4000, 2 * K4);
    expect(iommu_iotlb_gather_is_disjoint(g, 0x6000, K4)).toBe(false);
    expect(iommu_iotlb_gather_is_disjoint(g, 0x3000, K4)).toBe(false);
    expect(iommu_iotlb_gather_is_disjoint(g, 0x5000, K4)).toBe(false);
    expect(iommu_iotlb_gather_is_disjoint(g, 0x7000, K4)).toBe(true);
    expect(iommu_iotlb_gather_is_disjoint(g, 0x1000, K4)).toBe(true);
  });

  it('add_page syncs first when the page size changes or the page is disjoint', () => {
    const d = recorder();
    const g = new IommuIotlbGather();
    iommu_iotlb_gather_add_page(d, g, 0x1000, K4);
    iommu_iotlb_gather_add_page(d, g, 0x2000, K4); // adjacent, same size
    iommu_iotlb_gather_add_page(d, g, 0, K4); // adjacent below
    expect(d.synced).toEqual([]);
    iommu_iotlb_gather_add_page(d, g, 0x9000, K4); // gap: sync [0, 0x2fff]
    expect(d.synced).toEqual([[0, 0x2fff, K4]]);
    iommu_iotlb_gather_add_page(d, g, M2, M2); // new size: sync [0x9000, 0x9fff]
    expect(d.synced).toEqual([[0, 0x2fff, K4], [0x9000, 0x9fff, K4]]);
    expect([g.start, g.end, g.pgsize, g.earlySyncs]).toEqual([M2, 2 * M2 - 1, M2, 2]);
    iommu_iotlb_sync(d, g);
    expect(d.synced.at(-1)).toEqual([M2, 2 * M2 - 1, M2]);
    expect([g.start, g.end, g.pgsize]).toEqual([ULONG_MAX, 0, 0]);
  });

  it('property: each sync covers exactly one run of same-size, touching pages; every page is synced once', () => {
    const page = fc.record({ at: fc.integer({ min: 0, max: 40 }), big: fc.boolean() });
    fc.assert(fc.property(fc.array(page, { minLength: 1, maxLength: 60 }), (pages) => {
      const d = recorder();
      const g = new IommuIotlbGather();
      const batches: Array<Array<[number, number]>> = [[]];
      for (const p of pages) {
        const size = p.big ? M2 : K4;
        const iova = p.big ? p.at * M2 : p.at * K4;
        const before = d.synced.length;
        iommu_iotlb_gather_add_page(d, g, iova, size);
        if (d.synced.length !== before) batches.push([]);
        (batches.at(-1) as Array<[number, number]>).push([iova, size]);
      }
      iommu_iotlb_sync(d, g);
      expect(d.synced).toHaveLength(batches.length);
      batches.forEach((batch, i) => {
        const [start, end, pgsize] = d.synced[i] as [number, number, number];
        expect(batch.every(([, size]) => size === pgsize)).toBe(true);
        expect(Math.min(...batch.map(([a]) => a))).toBe(start);
        expect(Math.max(...batch.map(([a, size]) => a + size - 1))).toBe(end);
        // No gap: the pages of a batch tile [start, end] (overlaps allowed).
        let covered = start;
        for (const [a, size] of [...batch].sort((x, y) => x[0] - y[0])) {
          expect(a).toBeLessThanOrEqual(covered);
          covered = Math.max(covered, a + size);
        }
        expect(covered).toBe(end + 1);
      });
    }), { numRuns: 300 });
  });

  it('iommu_iotlb_sync applies the gathered invalidation to the IOTLB and releases freed table pages', () => {
    const s = setup();
    iommu_map(s.domain, 0, 0x10_0000, M2, RW, GFP_KERNEL);
    iommu_map(s.domain, 4 * M2, 0x40_0000, K4, RW, GFP_KERNEL);
    translate(s.domain, 0x1000, 8, 'read');
    translate(s.domain, 4 * M2, 8, 'read');
    const tlb = s.iotlb as Iotlb;
    expect(tlb.count).toBe(2);
    const g = new IommuIotlbGather();
    iommu_unmap_fast(s.domain, 0, M2, g);
    expect([g.start, g.end]).toEqual([0, M2 - 1]);
    expect(tlb.count).toBe(2);
    iommu_iotlb_sync(s.domain, g);
    expect(tlb.count).toBe(1);
    expect([s.domain.syncs, tlb.syncs]).toEqual([1, 1]);
    expect(s.pt.deferredPages).toBe(0);
    expect(s.alloc.inUse).toBe(s.pt.tablePages);
    iommu_flush_iotlb_all(s.domain);
    expect([tlb.count, s.domain.flushAlls]).toEqual([0, 1]);
  });
});

describe('translate', () => {
  it('walks on a miss, fills the IOTLB, then hits; merges physically contiguous pages', () => {
    const s = setup();
    iommu_map(s.domain, 0x10_0000, 0x50_0000, 2 * K4, RW, GFP_KERNEL);
    iommu_map(s.domain, 0x10_2000, 0x90_0000, K4, RW, GFP_KERNEL);
    const r = translate(s.domain, 0x10_0800, 2 * K4 + 0x100, 'write');
    expect(r.ok).toBe(true);
    expect(r.ranges()).toEqual([{ phys: 0x50_0800, len: 2 * K4 - 0x800 }, { phys: 0x90_0000, len: 0x900 }]);
    expect([r.hits, r.misses, r.bytes]).toEqual([0, 3, 2 * K4 + 0x100]);
    const again = translate(s.domain, 0x10_0800, 2 * K4 + 0x100, 'read', r);
    expect(again).toBe(r);
    expect([r.hits, r.misses]).toEqual([3, 0]);
  });

  it('2 MiB pages translate as one piece; no IOTLB works too', () => {
    const s = setup(null);
    iommu_map(s.domain, M2, 0x4020_0000, 2 * M2, RW, GFP_KERNEL);
    const r = translate(s.domain, M2 + 0x1000, M2, 'read');
    expect(r.ranges()).toEqual([{ phys: 0x4020_1000, len: M2 }]);
    expect(r.misses).toBe(2);
  });

  it('faults: unmapped at the first unmapped byte (ranges keep what came before); permission', () => {
    const s = setup();
    iommu_map(s.domain, 0x1000, 0x5000, K4, IOMMU_READ, GFP_KERNEL);
    const r = translate(s.domain, 0x1800, K4, 'read');
    expect(r.ok).toBe(false);
    expect(r.fault).toEqual({ iova: 0x2000, access: 'read', reason: 'unmapped' });
    expect(r.ranges()).toEqual([{ phys: 0x5800, len: 0x800 }]);
    expect(translate(s.domain, 0x1000, 4, 'write').fault).toEqual({ iova: 0x1000, access: 'write', reason: 'permission' });
    // A permission fault on a walk caches nothing; a cached read-only entry faults the same way.
    expect((s.iotlb as Iotlb).count).toBe(1);
    expect(translate(s.domain, 0x1000, 4, 'write').fault?.reason).toBe('permission');
    expect(translate(s.domain, 2 ** 48, 4, 'read').fault?.reason).toBe('unmapped');
  });

  it('a cached translation outlives its PTE until invalidated: served, and flagged stale', () => {
    const s = setup();
    iommu_map(s.domain, 0x1000, 0x5000, K4, RW, GFP_KERNEL);
    expect(translate(s.domain, 0x1000, 64, 'write').stale).toBe(false);
    // Lazy mode: unmap without sync (a flush queue would invalidate later).
    const g = new IommuIotlbGather();
    g.queued = true;
    expect(iommu_unmap_fast(s.domain, 0x1000, K4, g)).toBe(K4);
    const r = translate(s.domain, 0x1010, 64, 'write');
    expect(r.ok).toBe(true);
    expect(r.ranges()).toEqual([{ phys: 0x5010, len: 64 }]);
    expect([r.stale, r.staleIova]).toEqual([true, 0x1010]);
    // Remapped elsewhere without invalidation: the device still reaches the old page.
    iommu_map(s.domain, 0x1000, 0x7000, K4, RW, GFP_KERNEL);
    const r2 = translate(s.domain, 0x1000, 8, 'read');
    expect([r2.phys[0], r2.stale]).toEqual([0x5000, true]);
    iommu_flush_iotlb_all(s.domain);
    const r3 = translate(s.domain, 0x1000, 8, 'read');
    expect([r3.phys[0], r3.stale]).toEqual([0x7000, false]);
  });

  it('strict unmap invalidates at once: no stale access afterwards', () => {
    const s = setup();
    iommu_map(s.domain, 0x1000, 0x5000, K4, RW, GFP_KERNEL);
    translate(s.domain, 0x1000, 8, 'read');
    iommu_unmap(s.domain, 0x1000, K4);
    const r = translate(s.domain, 0x1000, 8, 'read');
    expect([r.ok, r.stale, r.fault?.reason]).toEqual([false, false, 'unmapped']);
  });

  it('an entry confirmed after unrelated unmaps is not stale', () => {
    const s = setup();
    iommu_map(s.domain, 0x1000, 0x5000, K4, RW, GFP_KERNEL);
    iommu_map(s.domain, 0x9000, 0x6000, K4, RW, GFP_KERNEL);
    translate(s.domain, 0x1000, 8, 'read');
    iommu_unmap(s.domain, 0x9000, K4); // bumps the epoch
    const r = translate(s.domain, 0x1000, 8, 'read', new TranslateResult());
    expect([r.ok, r.stale, r.hits]).toEqual([true, false, 1]);
  });

  it('many pages grow the result', () => {
    const s = setup();
    for (let i = 0; i < 16; i++) iommu_map(s.domain, i * K4, (100 + 2 * i) * K4, K4, RW, GFP_KERNEL);
    const r = translate(s.domain, 0, 16 * K4, 'read');
    expect(r.nranges).toBe(16);
    expect(r.ranges()[15]).toEqual({ phys: 130 * K4, len: K4 });
  });
});

describe('snapshots of an IOTLB (its slot arrays are captured copy on write)', () => {
  // Each case makes one write path the first write after a capture: a write it did not announce
  // would stay after the restore. 2,048 slots are two copy-on-write chunks of 1,024.
  const state = (t: Iotlb): string => JSON.stringify([[...t.entries()], Array.from(t.keyAsid), Array.from(t.epoch), Array.from(t.pagePhys), t.count]);
  const home = (t: Iotlb, gfn: number): number => (t as unknown as { _home(a: number, g: number, s: number): number })._home(1, gfn, 12);
  /** Pages of asid 1 whose home slot is `slot`, `n` of them. */
  const pagesHomedAt = (t: Iotlb, slot: number, n: number): number[] => {
    const out: number[] = [];
    for (let g = 1; out.length < n; g++) if (home(t, g) === slot) out.push(g);
    return out;
  };
  const roundTrip = (t: Iotlb, change: () => void): void => {
    const want = state(t);
    const snap = captureGraph(t);
    change();
    expect(state(t)).not.toBe(want);
    snap.restore();
    expect(state(t)).toBe(want);
  };

  it('an insert into a free slot and an update of a cached page', () => {
    const t = new Iotlb();
    t.insert(1, 0x5000, 0x9000, IOMMU_READ, 12, 0);
    roundTrip(t, () => t.insert(1, 0x7000, 0xa000, IOMMU_READ, 12, 0));
    roundTrip(t, () => t.insert(1, 0x5000, 0xb000, IOMMU_READ | IOMMU_WRITE, 12, 3));
  });

  it('a removal that moves an entry back across the chunk boundary', () => {
    const t = new Iotlb();
    // Three pages homed at slot 1,023: they sit at 1,023, 1,024 and 1,025. Removing the first
    // moves the others back, the first write to the second chunk being the move.
    const [a, b, c] = pagesHomedAt(t, 1023, 3) as [number, number, number];
    for (const g of [a, b, c]) t.insert(1, g * 4096, g * 8192, IOMMU_READ, 12, 0);
    expect([t.peek(1, a * 4096), t.peek(1, b * 4096), t.peek(1, c * 4096)]).toEqual([1023, 1024, 1025]);
    roundTrip(t, () => t.invalidateRange(1, a * 4096, 4096));
  });

  it('a reset when full, a domain flush and a global flush empty both chunks', () => {
    const t = new Iotlb({ capacity: 1024 });
    for (let g = 1; t.count < 1024; g++) t.insert(1 + (g % 2), g * 4096, g * 4096, IOMMU_READ, 12, 0);
    // The insert that finds it full drops everything, then fills one slot.
    roundTrip(t, () => t.insert(3, 0x1000, 0x1000, IOMMU_READ, 12, 0));
    roundTrip(t, () => t.invalidateAsid(2));
    roundTrip(t, () => t.flushAll());
  });

  it('an epoch confirmed after a walk', () => {
    const t = new Iotlb();
    const s = t.insert(1, 0x5000, 0x9000, IOMMU_READ, 12, 0);
    roundTrip(t, () => t.confirmEpoch(s, 7));
    expect(() => t.confirmEpoch(s + 1, 7)).toThrow(/expected a used slot/);
    expect(() => t.confirmEpoch(s, -1)).toThrow(/expected an epoch/);
  });
});
