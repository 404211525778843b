/**
 * One conformance suite for every IO page-table format behind IoPgtableOps (hono's pattern: one
 * suite, N implementations). A new format joins by adding a line to FORMATS; everything here is
 * what the IOMMU core, dma-iommu and the translator rely on, whatever the PTE layout.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { EADDRINUSE, EEXIST } from '../../src/core/errno.ts';
import { GFP_KERNEL } from '../../src/mm/gfp.ts';
import { IommuIotlbGather } from '../../src/iommu/gather.ts';
import { IoPageTable } from '../../src/iommu/pgtable.ts';
import { VtdPageTable } from '../../src/iommu/pgtable-vtd.ts';
import type { IoPgtableFlushOps, IoPgtableOps } from '../../src/iommu/pgtable-ops.ts';
import { SimpleTablePageAllocator, type TablePageAllocator } from '../../src/iommu/pgtable-alloc.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/pgtable-prot.ts';
import type { KernelLog } from '../../src/core/kernel-log.ts';
import type { FaultInjector } from '../../src/core/fault.ts';

const K4 = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const RW = IOMMU_READ | IOMMU_WRITE;

/** A format under test: builds a 48-bit, 4 KiB-granule table. */
interface Format {
  readonly name: string;
  /** What map_pages returns over a live leaf: io-pgtable-arm -EEXIST (with a WARN), generic_pt -EADDRINUSE. */
  readonly busy: number;
  make(alloc: TablePageAllocator, opts: { klog: KernelLog; faults: FaultInjector; tlb: IoPgtableFlushOps }): IoPgtableOps;
}

const FORMATS: readonly Format[] = [
  { name: 'arm-lpae', busy: -EEXIST, make: (alloc, opts) => new IoPageTable({ ias: 48 }, alloc, opts) },
  { name: 'vtd', busy: -EADDRINUSE, make: (alloc, opts) => new VtdPageTable({ addressWidth: 48 }, alloc, opts) },
];

for (const format of FORMATS) {
  describe(`IoPgtableOps conformance: ${format.name}`, () => {
    const setup = () => {
      const ctx = createContext(`conformance-${format.name}`);
      const alloc = new SimpleTablePageAllocator();
      const walks: Array<[number, number]> = [];
      const pages: Array<[number, number]> = [];
      const tlb: IoPgtableFlushOps = {
        tlb_flush_walk: (iova, size) => walks.push([iova, size]),
        tlb_add_page: (_g, iova, size) => pages.push([iova, size]),
      };
      const pt = format.make(alloc, { klog: ctx.klog, faults: ctx.faults, tlb });
      return { ctx, alloc, pt, walks, pages };
    };

    it('names itself; 4 KiB granule with 2 MiB and 1 GiB leaves in pgsize_bitmap; one top-level table', () => {
      const { pt, alloc } = setup();
      expect(pt.format).toBe(format.name);
      expect(pt.granule).toBe(K4);
      expect(pt.pgsize_bitmap & (K4 | M2 | G1)).toBe(K4 | M2 | G1);
      expect(pt.tablePages).toBe(1);
      expect(alloc.inUse).toBe(1);
    });

    it('maps, looks up (walk out-parameters) and translates leaves of each size', () => {
      const { pt } = setup();
      expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
      expect(pt.map_pages(4 * M2, 8 * M2, M2, 2, IOMMU_READ, GFP_KERNEL)).toBe(2 * M2);
      expect(pt.map_pages(3 * G1, 5 * G1, G1, 1, IOMMU_WRITE, GFP_KERNEL)).toBe(G1);
      expect(pt.lookup(0x1234)).toBe(true);
      expect([pt.walkIova, pt.walkPhys, pt.walkShift, pt.walkProt & RW]).toEqual([0x1000, 0x5000, 12, RW]);
      expect(pt.lookup(5 * M2 + 7)).toBe(true);
      expect([pt.walkIova, pt.walkPhys, pt.walkShift, pt.walkProt & RW]).toEqual([5 * M2, 9 * M2, 21, IOMMU_READ]);
      expect(pt.iova_to_phys(3 * G1 + 0x12345)).toBe(5 * G1 + 0x12345);
      expect(pt.lookup(0x2000)).toBe(false);
      expect(pt.iova_to_phys(0x2000)).toBe(0);
      expect(pt.mappedBytes).toBe(K4 + 2 * M2 + G1);
      const seen: Array<[number, number, number]> = [];
      pt.forEachLeaf((iova, size, phys) => seen.push([iova, size, phys]));
      expect(seen).toEqual([[0x1000, K4, 0x5000], [4 * M2, M2, 8 * M2], [5 * M2, M2, 9 * M2], [3 * G1, G1, 5 * G1]]);
      expect(pt.audit()).toEqual([]);
    });

    it('refuses to map over a live leaf (the format\'s errno) and leaves the old translation', () => {
      const { pt } = setup();
      pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL);
      expect(pt.map_pages(0x1000, 0x9000, K4, 1, RW, GFP_KERNEL)).toBe(format.busy);
      expect(pt.iova_to_phys(0x1000)).toBe(0x5000);
    });

    it('unmaps: returns the bytes, gathers each cleared page, bumps the epoch, stops translating', () => {
      const { pt, pages } = setup();
      pt.map_pages(0x10000, 0x40000, K4, 4, RW, GFP_KERNEL);
      const epoch = pt.epoch;
      const gather = new IommuIotlbGather();
      expect(pt.unmap_pages(0x10000, K4, 4, gather)).toBe(4 * K4);
      expect(pages.map(([iova]) => iova)).toEqual([0x10000, 0x11000, 0x12000, 0x13000]);
      expect(pt.epoch).toBeGreaterThan(epoch);
      expect(pt.iova_to_phys(0x11000)).toBe(0);
      expect(pt.mappedBytes).toBe(0);
      expect(pt.audit()).toEqual([]);
    });

    it('a failed map rolls back: the tables it allocated are freed, the allocator balanced', () => {
      const { pt, alloc } = setup();
      const since = pt.tableAllocs;
      expect(pt.map_pages(7 * G1 + 0x3000, 0x7000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
      expect(pt.tablePages).toBeGreaterThan(1);
      expect(pt.unmap_pages(7 * G1 + 0x3000, K4, 1, null)).toBe(K4);
      const extra = pt.tablePages - 1;
      expect(pt.rollbackTablesSince(since)).toBe(extra);
      expect(pt.tablePages).toBe(1);
      expect(alloc.inUse).toBe(1);
    });

    it('free() gives every table page back, once; the table then translates nothing', () => {
      const { pt, alloc } = setup();
      pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL);
      pt.map_pages(9 * G1, 0x200000, M2, 1, RW, GFP_KERNEL);
      expect(pt.tablePfns().length).toBe(pt.tablePages);
      pt.free();
      pt.free();
      expect(pt.freed).toBe(true);
      expect(alloc.inUse).toBe(0);
      expect(pt.lookup(0x1000)).toBe(false);
    });

    it('property: random maps and unmaps translate like a 4 KiB page map', () => {
      const op = fc.record({ slot: fc.integer({ min: 0, max: 15 }), level: fc.constantFrom(K4, M2), count: fc.integer({ min: 1, max: 4 }), physPage: fc.integer({ min: 0, max: 1 << 18 }), unmap: fc.boolean() });
      fc.assert(fc.property(fc.array(op, { minLength: 10, maxLength: 40 }), (ops) => {
        const { pt, alloc } = setup();
        const live = new Map<number, { iova: number; size: number; count: number }>();
        const model = new Map<number, number>();
        for (const o of ops) {
          const iova = o.slot * 8 * M2 + (o.level === K4 ? 0x10_0000 : 0);
          const m = live.get(o.slot);
          if (o.unmap) {
            if (m === undefined) continue;
            expect(pt.unmap_pages(m.iova, m.size, m.count, null)).toBe(m.size * m.count);
            for (let p = 0; p < (m.size * m.count) / K4; p++) model.delete(m.iova / K4 + p);
            live.delete(o.slot);
          } else if (m === undefined) {
            const phys = o.physPage * o.level;
            expect(pt.map_pages(iova, phys, o.level, o.count, RW, GFP_KERNEL)).toBe(o.level * o.count);
            live.set(o.slot, { iova, size: o.level, count: o.count });
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
      }), { numRuns: 60 });
    });
  });
}
