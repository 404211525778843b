import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { EEXIST, EINVAL, ENOMEM, ERANGE } from '../../src/core/errno.ts';
import { KernelBug, KernelError } from '../../src/core/errors.ts';
import { GFP_KERNEL } from '../../src/mm/gfp.ts';
import { IommuIotlbGather } from '../../src/iommu/gather.ts';
import { IoPageTable, alloc_io_pgtable_ops, free_io_pgtable_ops, type IoPageTableOptions } from '../../src/iommu/pgtable.ts';
import type { IoPgtableFlushOps } from '../../src/iommu/pgtable-ops.ts';
import { SimpleTablePageAllocator } from '../../src/iommu/pgtable-alloc.ts';
import { bitmapShifts, pgtableGeometry, type IoPgtableConfig } from '../../src/iommu/pgtable-geometry.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/pgtable-prot.ts';

const K4 = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const RW = IOMMU_READ | IOMMU_WRITE;

function setup(cfg: IoPgtableConfig = {}, opts: Omit<IoPageTableOptions, 'klog' | 'faults'> & { limit?: number } = {}) {
  const ctx = createContext('pgtable-test');
  const alloc = new SimpleTablePageAllocator(opts.limit === undefined ? {} : { limit: opts.limit });
  const walks: Array<[number, number]> = [];
  const pages: Array<[number, number]> = [];
  const tlb: IoPgtableFlushOps = {
    tlb_flush_walk: (iova, size) => walks.push([iova, size]),
    tlb_add_page: (_g, iova, size) => pages.push([iova, size]),
  };
  const pt = new IoPageTable(cfg, alloc, { ...opts, klog: ctx.klog, faults: ctx.faults, tlb });
  return { ctx, alloc, pt, walks, pages };
}

function leaves(pt: IoPageTable): Array<[number, number, number, number]> {
  const out: Array<[number, number, number, number]> = [];
  pt.forEachLeaf((iova, size, phys, prot) => out.push([iova, size, phys, prot]));
  return out;
}

describe('page-table geometry', () => {
  it('4 KiB granule, 48-bit IOVA: four levels, leaves of 4K | 2M | 1G', () => {
    const g = pgtableGeometry();
    expect(g.levels).toBe(4);
    expect(g.levelShift).toEqual([39, 30, 21, 12]);
    expect(g.levelEntries).toEqual([512, 512, 512, 512]);
    expect(g.pgsize_bitmap).toBe(K4 + M2 + G1);
    expect(g.levelLeaf).toEqual([false, true, true, true]);
  });

  it('39 bits: three levels; 52 bits: five levels with a 16-entry top table', () => {
    expect(pgtableGeometry({ ias: 39 }).levelShift).toEqual([30, 21, 12]);
    const g52 = pgtableGeometry({ ias: 52 });
    expect(g52.levelShift).toEqual([48, 39, 30, 21, 12]);
    expect(g52.levelEntries[0]).toBe(16);
  });

  it('16 KiB and 64 KiB granules get their natural block sizes (4 TiB only with a 52-bit output)', () => {
    const g16 = pgtableGeometry({ granule: 16384 });
    expect(bitmapShifts(g16.pgsize_bitmap)).toEqual([14, 25]);
    expect(g16.levelShift).toEqual([47, 36, 25, 14]);
    expect(g16.levelEntries[0]).toBe(2);
    const g64 = pgtableGeometry({ granule: 65536 });
    expect(bitmapShifts(g64.pgsize_bitmap)).toEqual([16, 29]);
    expect(g64.levelShift).toEqual([42, 29, 16]);
    expect(bitmapShifts(pgtableGeometry({ granule: 65536, ias: 52, oas: 52 }).pgsize_bitmap)).toEqual([16, 29, 42]);
  });

  it('a requested bitmap is intersected with the natural sizes and must keep the granule', () => {
    expect(pgtableGeometry({ pgsize_bitmap: K4 + M2 + 2 ** 25 }).pgsize_bitmap).toBe(K4 + M2);
    expect(() => pgtableGeometry({ pgsize_bitmap: M2 })).toThrow(KernelError);
    expect(() => pgtableGeometry({ granule: 8192 })).toThrow(KernelError);
    expect(() => pgtableGeometry({ ias: 57 })).toThrow(KernelError);
  });
});

describe('map_pages / unmap_pages / walk', () => {
  it('maps a 4 KiB page through three new tables and translates it', () => {
    const { pt, alloc } = setup();
    expect(pt.tablePages).toBe(1);
    expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
    expect(pt.tablePages).toBe(4);
    expect(alloc.inUse).toBe(4);
    expect(pt.iova_to_phys(0x1abc)).toBe(0x5abc);
    expect(pt.iova_to_phys(0x2000)).toBe(0);
    expect(pt.lookup(0x1abc)).toBe(true);
    expect([pt.walkIova, pt.walkPhys, pt.walkProt, pt.walkShift]).toEqual([0x1000, 0x5000, RW, 12]);
    expect(pt.mappedBytes).toBe(K4);
    expect(pt.audit()).toEqual([]);
  });

  it('places 2M and 1G leaves at their levels, keeping all prot bits', () => {
    const { pt } = setup();
    expect(pt.map_pages(M2, 0x4000_0000 + M2, M2, 2, IOMMU_READ | IOMMU_CACHE, GFP_KERNEL)).toBe(2 * M2);
    expect(pt.map_pages(G1, 2 ** 40, G1, 1, IOMMU_WRITE, GFP_KERNEL)).toBe(G1);
    expect(leaves(pt)).toEqual([
      [M2, M2, 0x4000_0000 + M2, IOMMU_READ | IOMMU_CACHE],
      [2 * M2, M2, 0x4000_0000 + 2 * M2, IOMMU_READ | IOMMU_CACHE],
      [G1, G1, 2 ** 40, IOMMU_WRITE],
    ]);
    expect(pt.iova_to_phys(G1 + 0x12345678)).toBe(2 ** 40 + 0x12345678);
    expect(pt.tablePages).toBe(3); // pgd, one level-1 table, one level-2 table
  });

  it('maps at most to the end of the table page holding the first entry', () => {
    const { pt } = setup();
    expect(pt.map_pages(M2 - 2 * K4, 0x10_0000, K4, 5, RW, GFP_KERNEL)).toBe(2 * K4);
    expect(pt.unmap_pages(M2 - 2 * K4, K4, 5, null)).toBe(2 * K4);
  });

  it('-EEXIST with a WARN when a leaf is in the way (on the path or in the slot); no WARN with the quirk', () => {
    const { pt, ctx } = setup();
    pt.map_pages(0, 0x20_0000, M2, 1, RW, GFP_KERNEL);
    expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect(ctx.klog.warnings('__arm_lpae_map')).toHaveLength(1);
    pt.map_pages(M2, 0x5000, K4, 1, RW, GFP_KERNEL);
    expect(pt.map_pages(M2, 0x6000, K4, 2, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect(ctx.klog.warnings('arm_lpae_init_pte')[0]?.message).toBe('WARN_ON(!(data->iop.cfg.quirks & IO_PGTABLE_QUIRK_NO_WARN))');
    expect(pt.iova_to_phys(M2 + K4)).toBe(0); // nothing of the failed call was written
    const q = setup({}, { quirkNoWarn: true });
    q.pt.map_pages(0, 0x20_0000, M2, 1, RW, GFP_KERNEL);
    expect(q.pt.map_pages(0, 0x20_0000, M2, 1, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect(q.ctx.klog.warnCount).toBe(0);
  });

  it('a block mapped over a table replaces it: the table (and what it mapped) is freed after a walk flush', () => {
    const { pt, alloc, walks } = setup();
    pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL);
    pt.unmap_pages(0x1000, K4, 1, null);
    expect(pt.tablePages).toBe(4); // the emptied table stays (io-pgtable-arm)
    expect(pt.emptyTables()).toBe(1); // the leaf table; the ones above still point to it
    expect(pt.map_pages(0, 0x4000_0000, M2, 1, RW, GFP_KERNEL)).toBe(M2);
    expect(walks).toEqual([[0, M2]]);
    expect(pt.tablePages).toBe(3);
    expect(alloc.inUse).toBe(3);
    expect(pt.audit()).toEqual([]);
  });

  it('checks page size, address widths and permissions like arm_lpae_map_pages', () => {
    const { pt, ctx } = setup({ ias: 39, oas: 40 });
    expect(pt.map_pages(0, 0, 8192, 1, RW, GFP_KERNEL)).toBe(-EINVAL);
    expect(ctx.klog.warnings('arm_lpae_map_pages')).toHaveLength(1);
    expect(pt.map_pages(2 ** 39, 0, K4, 1, RW, GFP_KERNEL)).toBe(-ERANGE);
    expect(pt.map_pages(0, 2 ** 40, K4, 1, RW, GFP_KERNEL)).toBe(-ERANGE);
    expect(ctx.klog.warnings('arm_lpae_map_pages').map((m) => m.message)).toContain('WARN_ON(iaext || paddr >> cfg->oas)');
    expect(pt.map_pages(0, 0, K4, 1, IOMMU_CACHE, GFP_KERNEL)).toBe(-EINVAL);
    expect(pt.tablePages).toBe(1);
  });

  it('unmap stops at a hole with a WARN and returns what it cleared', () => {
    const { pt, ctx } = setup();
    pt.map_pages(0, 0x10_0000, K4, 3, RW, GFP_KERNEL);
    expect(pt.unmap_pages(0, K4, 5, null)).toBe(3 * K4);
    expect(ctx.klog.warnings('__arm_lpae_unmap')).toHaveLength(1);
    expect(pt.unmap_pages(0, K4, 1, null)).toBe(0);
    expect(pt.unmap_pages(G1 * 7, K4, 1, null)).toBe(0); // hole high in the tree
    expect(ctx.klog.warnings('__arm_lpae_unmap')).toHaveLength(3);
  });

  it('refuses to split a large leaf: WARN_ONCE and nothing unmapped', () => {
    const { pt, ctx } = setup();
    pt.map_pages(M2, 0x4020_0000, M2, 1, RW, GFP_KERNEL);
    expect(pt.unmap_pages(M2 + K4, K4, 1, null)).toBe(0);
    expect(pt.unmap_pages(M2, K4, 1, null)).toBe(0);
    const w = ctx.klog.warnings('__arm_lpae_unmap');
    expect(w).toHaveLength(1);
    expect(w[0]?.message).toBe('Unmap of a partial large IOPTE is not allowed');
    expect(pt.iova_to_phys(M2 + 5)).toBe(0x4020_0005);
  });

  it('an unmap at a table entry frees the whole subtree: onto the gather freelist, or at once', () => {
    const { pt, alloc, walks } = setup();
    pt.map_pages(0, 0x10_0000, K4, 2, RW, GFP_KERNEL);
    const g = new IommuIotlbGather();
    expect(pt.unmap_pages(0, M2, 1, g)).toBe(M2);
    expect(g.freelist).toHaveLength(1);
    expect(pt.deferredPages).toBe(1);
    expect(pt.tablePages).toBe(3);
    expect(alloc.inUse).toBe(4); // not yet given back
    pt.free_table_pages(g.freelist);
    expect(alloc.inUse).toBe(3);
    expect(g.freelist).toHaveLength(0);
    pt.map_pages(0, 0x10_0000, K4, 2, RW, GFP_KERNEL);
    expect(pt.unmap_pages(0, G1, 1, null)).toBe(G1);
    expect(walks).toEqual([[0, G1]]);
    expect(pt.tablePages).toBe(2);
    expect(pt.mappedBytes).toBe(0);
    expect(pt.audit()).toEqual([]);
  });

  it('gathers each cleared page unless the gather is queued', () => {
    const { pt, pages } = setup();
    pt.map_pages(0, 0x10_0000, K4, 3, RW, GFP_KERNEL);
    pt.unmap_pages(0, K4, 2, new IommuIotlbGather());
    expect(pages).toEqual([[0, K4], [K4, K4]]);
    const q = new IommuIotlbGather();
    q.queued = true;
    pt.unmap_pages(2 * K4, K4, 1, q);
    expect(pages).toHaveLength(2);
  });

  it('handles IOVAs near 2^52 and physical addresses near 2^44 exactly', () => {
    const { pt } = setup({ ias: 52, oas: 48 });
    const iova = 2 ** 52 - 2 * M2;
    const phys = 2 ** 44 - 4 * M2;
    expect(pt.map_pages(iova, phys, M2, 2, RW, GFP_KERNEL)).toBe(2 * M2);
    expect(pt.iova_to_phys(iova + M2 + 0x123)).toBe(phys + M2 + 0x123);
    expect(pt.map_pages(0x1000, 2 ** 44 + 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
    expect(pt.iova_to_phys(0x1fff)).toBe(2 ** 44 + 0x5fff);
    const g64 = setup({ granule: 65536, ias: 52, oas: 52 });
    expect(g64.pt.map_pages(2 ** 42, 2 ** 50, 2 ** 42, 1, RW, GFP_KERNEL)).toBe(2 ** 42);
    expect(g64.pt.iova_to_phys(2 ** 42 + 2 ** 41 + 7)).toBe(2 ** 50 + 2 ** 41 + 7);
    expect(g64.pt.map_pages(0x10000, 0x30000, 65536, 1, RW, GFP_KERNEL)).toBe(65536);
    expect(g64.pt.iova_to_phys(0x1ffff)).toBe(0x3ffff);
  });

  it('counts table pages against the allocator; free() gives every one back', () => {
    const { pt, alloc } = setup();
    for (let i = 0; i < 5; i++) pt.map_pages(i * G1 + 0x1000, 0x1000, K4, 1, RW, GFP_KERNEL);
    expect(pt.tablePages).toBe(1 + 1 + 5 * 2);
    expect(new Set(pt.tablePfns()).size).toBe(pt.tablePages);
    expect(alloc.inUse).toBe(pt.tablePages);
    expect(pt.peakTablePages).toBe(12);
    free_io_pgtable_ops(pt);
    expect(pt.tablePages).toBe(0);
    expect(alloc.inUse).toBe(0);
    expect(() => pt.map_pages(0, 0, K4, 1, RW, GFP_KERNEL)).toThrow(KernelBug);
    expect(pt.iova_to_phys(0x1000)).toBe(0);
  });

  it('-ENOMEM when a table page cannot be had, by injection or exhaustion; nothing written', () => {
    const { pt, ctx } = setup();
    ctx.faults.inject('pgtable', { nth: 2 });
    expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-ENOMEM);
    expect(pt.iova_to_phys(0x1000)).toBe(0);
    expect(pt.audit()).toEqual([]);
    const small = setup({}, { limit: 2 });
    expect(small.pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-ENOMEM);
    expect(small.pt.tablePages).toBe(2);
    expect(small.pt.rollbackTablesSince(1)).toBe(1);
    expect(small.pt.tablePages).toBe(1);
    expect(small.pt.audit()).toEqual([]);
  });

  it('alloc_io_pgtable_ops returns null when the top-level table cannot be allocated', () => {
    const ctx = createContext('pgd');
    ctx.faults.inject('pgtable', { nth: 1 });
    expect(alloc_io_pgtable_ops({}, new SimpleTablePageAllocator(), { faults: ctx.faults, klog: ctx.klog })).toBeNull();
    expect(alloc_io_pgtable_ops({}, new SimpleTablePageAllocator({ limit: 0 }))).toBeNull();
    expect(alloc_io_pgtable_ops({ ias: 39 }, new SimpleTablePageAllocator())?.cfg.levels).toBe(3);
  });

  it('rollbackTablesSince frees only empty tables allocated since, bottom-up', () => {
    const { pt, alloc } = setup();
    pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL);
    const since = pt.tableAllocs;
    pt.map_pages(G1 + 0x1000, 0x5000, K4, 1, RW, GFP_KERNEL); // two new tables (L2, L3)
    pt.map_pages(2 * G1 + 0x1000, 0x5000, K4, 1, RW, GFP_KERNEL); // two more
    pt.unmap_pages(G1 + 0x1000, K4, 1, null);
    expect(pt.rollbackTablesSince(since)).toBe(2); // the emptied pair; the pair still mapping stays
    expect(pt.tablePages).toBe(6);
    expect(alloc.inUse).toBe(6);
    expect(pt.audit()).toEqual([]);
  });

  // A Map-based model of which 4K pages are mapped where, for maps of free ranges and exact unmaps.
  it('property: random non-overlapping maps and whole-range unmaps translate like a page map', () => {
    const op = fc.record({
      slot: fc.integer({ min: 0, max: 15 }),
      level: fc.constantFrom(K4, M2),
      count: fc.integer({ min: 1, max: 4 }),
      physPage: fc.integer({ min: 0, max: 1 << 20 }),
      unmap: fc.boolean(),
    });
    fc.assert(fc.property(fc.array(op, { minLength: 10, maxLength: 40 }), (ops) => {
      const { pt, alloc } = setup({ ias: 39 });
      const live = new Map<number, { iova: number; size: number; phys: number; count: number }>();
      const model = new Map<number, number>(); // 4K page index → phys
      for (const o of ops) {
        const iova = o.slot * 8 * M2 + (o.level === K4 ? 0x10_0000 : 0);
        if (o.unmap) {
          const m = live.get(o.slot);
          if (m === undefined) continue;
          expect(pt.unmap_pages(m.iova, m.size, m.count, null)).toBe(m.size * m.count);
          for (let p = 0; p < (m.size * m.count) / K4; p++) model.delete(m.iova / K4 + p);
          live.delete(o.slot);
        } else {
          if (live.has(o.slot)) continue;
          const phys = o.physPage * o.level;
          expect(pt.map_pages(iova, phys, o.level, o.count, RW, GFP_KERNEL)).toBe(o.level * o.count);
          live.set(o.slot, { iova, size: o.level, phys, count: o.count });
          for (let p = 0; p < (o.level * o.count) / K4; p++) model.set(iova / K4 + p, phys + p * K4);
        }
      }
      for (let slot = 0; slot < 16; slot++) {
        for (const off of [0, 0x10_0000, 0x10_0000 + 3 * K4, M2 + 5 * K4, 3 * M2 + 0x800]) {
          const iova = slot * 8 * M2 + off;
          const want = model.get(Math.floor(iova / K4));
          expect(pt.iova_to_phys(iova)).toBe(want === undefined ? 0 : want + (iova % K4));
        }
      }
      expect(pt.mappedBytes).toBe(model.size * K4);
      expect(pt.audit()).toEqual([]);
      expect(alloc.inUse).toBe(pt.tablePages);
    }), { numRuns: 100 });
  });
});

describe('walks over a corrupted table pointer', () => {
  it('the audit reports it and forEachLeaf does not throw (the empty-run skip stays inside the entry array)', () => {
    const ctx = createContext('pt-bad-pointer');
    // Past the array, a negative table (-0.5 names table -0.5) and a fractional offset (-1.001).
    for (const bad of [-1e6, -0.5 - 1, -(2 ** 40), -0.5, -1.001]) {
      const pt = new IoPageTable({ ias: 39 }, new SimpleTablePageAllocator(), { klog: ctx.klog, faults: ctx.faults });
      pt.map_pages(0, 0x5000, 4096, 1, IOMMU_READ, GFP_KERNEL);
      (pt as unknown as { _pte: Float64Array })._pte[0] = bad; // a table pointer past the array, or fractional
      expect(pt.audit().some((v) => v.includes('parent link'))).toBe(true);
      expect(() => pt.forEachLeaf(() => {})).not.toThrow();
    }
  });
});
