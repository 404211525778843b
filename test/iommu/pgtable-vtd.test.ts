/**
 * The VT-d second-stage format: PTE bits checked against the VT-d spec (§9.8) and the kernel's
 * vtdss.h, level counts per address width, and the generic page table's map/unmap rules
 * (drivers/iommu/generic_pt/iommu_pt.h) that the intel driver runs for second-stage domains.
 * (The shared IoPgtableOps behaviour is in pgtable-conformance.test.ts.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { EINVAL, ENOMEM, EOPNOTSUPP, ERANGE } from '../../src/core/errno.ts';
import { KernelBug, KernelError } from '../../src/core/errors.ts';
import { GFP_KERNEL } from '../../src/mm/gfp.ts';
import { IommuIotlbGather } from '../../src/iommu/gather.ts';
import type { IoPgtableFlushOps } from '../../src/iommu/pgtable-ops.ts';
import { SimpleTablePageAllocator } from '../../src/iommu/pgtable-alloc.ts';
import { IOMMU_CACHE, IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_PRIV, IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/pgtable-prot.ts';
import { EADDRINUSE } from '../../src/core/errno.ts';
import { VtdPageTable, vtdLevelsForWidth, type VtdPageTableConfig } from '../../src/iommu/pgtable-vtd.ts';

const K4 = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const RW = IOMMU_READ | IOMMU_WRITE;
/** First pfn SimpleTablePageAllocator hands out: the top table; the next ones follow in order. */
const BASE_PFN = 0x100000;

// The spec's bits, written out here (not imported) so a wrong constant in the source cannot hide.
const R = 1n << 0n;
const W = 1n << 1n;
const PS = 1n << 7n;
const SNP = 1n << 11n;

function setup(cfg: VtdPageTableConfig = { addressWidth: 48 }, limit?: number) {
  const ctx = createContext('pgtable-vtd-test');
  const alloc = new SimpleTablePageAllocator(limit === undefined ? {} : { limit });
  const walks: Array<[number, number]> = [];
  const pages: Array<[number, number]> = [];
  const tlb: IoPgtableFlushOps = {
    tlb_flush_walk: (iova, size) => walks.push([iova, size]),
    tlb_add_page: (_g, iova, size) => pages.push([iova, size]),
  };
  const pt = new VtdPageTable(cfg, alloc, { klog: ctx.klog, faults: ctx.faults, tlb });
  return { ctx, alloc, pt, walks, pages };
}

/** The address of table page `n` (0 = top) in allocation order. */
const tableAddr = (n: number): bigint => BigInt(BASE_PFN + n) * 4096n;

describe('VT-d second-stage PTE layout', () => {
  it('a 4 KiB leaf: address bits 12..51, R (bit 0) and W (bit 1) from the prot, nothing else', () => {
    const { pt } = setup();
    const phys = 0x8_1234_5000; // above 4 GiB: the address spans both 32-bit halves
    expect(pt.map_pages(0x1000, phys, K4, 1, RW, GFP_KERNEL)).toBe(K4);
    expect(pt.map_pages(0x2000, 0x7000, K4, 1, IOMMU_READ, GFP_KERNEL)).toBe(K4);
    expect(pt.map_pages(0x3000, 0x9000, K4, 1, IOMMU_WRITE, GFP_KERNEL)).toBe(K4);
    expect(pt.pteAt(0x1000, 1)).toBe(BigInt(phys) | W | R);
    expect(pt.pteAt(0x2000, 1)).toBe(0x7000n | R);
    expect(pt.pteAt(0x3000, 1)).toBe(0x9000n | W);
    expect(pt.pteAt(0x4000, 1)).toBe(0n);
    expect(pt.iova_to_phys(0x1abc)).toBe(phys + 0xabc);
    const top = 2 ** 52 - K4; // address bit 51, the highest the format holds
    expect(pt.map_pages(0x5000, top, K4, 1, RW, GFP_KERNEL)).toBe(K4);
    expect(pt.pteAt(0x5000, 1)).toBe(0xf_ffff_ffff_f000n | W | R);
    expect(pt.iova_to_phys(0x5008)).toBe(top + 8);
    expect(pt.map_pages(0x6000, 2 ** 52, K4, 1, RW, GFP_KERNEL)).toBe(-ERANGE);
  });

  it('a 2 MiB superpage is a level-2 entry with PS (bit 7); 1 GiB a level-3 one; the walk ends there', () => {
    const { pt } = setup();
    expect(pt.map_pages(5 * M2, 0x1_4000_0000, M2, 1, RW, GFP_KERNEL)).toBe(M2);
    expect(pt.pteAt(5 * M2, 2)).toBe(0x1_4000_0000n | PS | W | R);
    expect(pt.pteAt(5 * M2, 1)).toBeNull();
    expect(pt.lookup(5 * M2 + 0x1234)).toBe(true);
    expect([pt.walkIova, pt.walkPhys, pt.walkShift]).toEqual([5 * M2, 0x1_4000_0000, 21]);
    expect(pt.map_pages(3 * G1, 7 * G1, G1, 1, IOMMU_READ, GFP_KERNEL)).toBe(G1);
    expect(pt.pteAt(3 * G1, 3)).toBe(BigInt(7 * G1) | PS | R);
    expect(pt.pteAt(3 * G1, 2)).toBeNull();
    expect(pt.iova_to_phys(3 * G1 + 0x12_3456)).toBe(7 * G1 + 0x12_3456);
  });

  it('table pointers carry R|W and the next table page, whatever the leaf prot; the top is SSPTPTR', () => {
    const { pt } = setup();
    expect(pt.ssptptr).toBe(BASE_PFN * 4096);
    pt.map_pages(0x1000, 0x5000, K4, 1, IOMMU_READ, GFP_KERNEL); // allocates tables 1 (L3), 2 (L2), 3 (L1)
    expect(pt.pteAt(0x1000, 4)).toBe(tableAddr(1) | W | R);
    expect(pt.pteAt(0x1000, 3)).toBe(tableAddr(2) | W | R);
    expect(pt.pteAt(0x1000, 2)).toBe(tableAddr(3) | W | R);
    expect(pt.pteAt(0x1000, 1)).toBe(0x5000n | R);
    expect(pt.tablePfns()).toEqual([BASE_PFN, BASE_PFN + 1, BASE_PFN + 2, BASE_PFN + 3]);
  });

  it('SNP (bit 11) on every leaf when the domain forces snooping, and only then; never on pointers', () => {
    const snoop = setup({ forceSnoop: true }).pt;
    snoop.map_pages(0x1000, 0x5000, K4, 1, IOMMU_READ, GFP_KERNEL);
    snoop.map_pages(M2, 0x40_0000, M2, 1, RW | IOMMU_CACHE, GFP_KERNEL);
    expect(snoop.pteAt(0x1000, 1)).toBe(0x5000n | SNP | R);
    expect(snoop.pteAt(M2, 2)).toBe(0x40_0000n | SNP | PS | W | R);
    expect(snoop.pteAt(0x1000, 2)).toBe(tableAddr(3) | W | R);
    const plain = setup().pt;
    plain.map_pages(0x1000, 0x5000, K4, 1, RW | IOMMU_CACHE, GFP_KERNEL);
    expect(plain.pteAt(0x1000, 1)).toBe(0x5000n | W | R);
  });

  it('walkProt: R/W from the PTE, the other IOMMU_* bits as mapped (the PTE has no room for them)', () => {
    const { pt } = setup();
    const prot = IOMMU_READ | IOMMU_CACHE | IOMMU_NOEXEC | IOMMU_MMIO | IOMMU_PRIV;
    pt.map_pages(0x1000, 0x5000, K4, 1, prot, GFP_KERNEL);
    expect(pt.pteAt(0x1000, 1)).toBe(0x5000n | R);
    expect(pt.lookup(0x1000)).toBe(true);
    expect(pt.walkProt).toBe(prot);
    const seen: number[] = [];
    pt.forEachLeaf((_i, _s, _p, p) => seen.push(p));
    expect(seen).toEqual([prot]);
  });

  it('property: every leaf of a random table reads back as address | PS above level 1 | R/W, audit clean', () => {
    const op = fc.record({ slot: fc.integer({ min: 0, max: 63 }), big: fc.boolean(), phys: fc.integer({ min: 0, max: 2 ** 20 }), prot: fc.integer({ min: 1, max: 3 }) });
    fc.assert(fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const { pt } = setup();
      for (const o of ops) {
        const size = o.big ? M2 : K4;
        pt.map_pages(o.slot * M2 + (o.big ? 0 : 0x3000), o.phys * size, size, 1, o.prot, GFP_KERNEL);
      }
      pt.forEachLeaf((iova, size, phys, prot) => {
        const level = size === M2 ? 2 : 1;
        expect(pt.pteAt(iova, level)).toBe(BigInt(phys) | (level > 1 ? PS : 0n) | BigInt(prot & RW));
      });
      expect(pt.audit()).toEqual([]);
    }), { numRuns: 50 });
  });
});

describe('levels from the address width (AGAW)', () => {
  it('39 bits → 3 levels (AW 1), 48 → 4 (AW 2), 57 → 5 (AW 3); widths in between round up', () => {
    expect([39, 48, 57, 40, 49, 31].map(vtdLevelsForWidth)).toEqual([3, 4, 5, 4, 5, 3]);
    for (const [width, levels] of [[39, 3], [48, 4], [57, 5]] as const) {
      const { pt, alloc } = setup({ addressWidth: width });
      expect([pt.levels, pt.aw]).toEqual([levels, levels - 2]);
      expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
      expect(alloc.inUse).toBe(levels); // one table per level
      expect(pt.pteAt(0x1000, levels)).toBe(tableAddr(1) | W | R);
      expect(pt.pteAt(0x1000, levels + 1)).toBeNull();
    }
  });

  it('the top level indexes the highest bits: 5 levels put 2^50 in PML5 slot 4; 3 levels refuse 2^39', () => {
    const five = setup({ addressWidth: 57 }).pt;
    expect(five.map_pages(2 ** 50, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
    expect(five.iova_to_phys(2 ** 50 + 0x10)).toBe(0x5010);
    expect(five.iova_to_phys(0x10)).toBe(0);
    const three = setup({ addressWidth: 39 }).pt;
    expect(three.map_pages(2 ** 39 - K4, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(K4);
    expect(three.map_pages(2 ** 39, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-ERANGE);
    expect(three.map_pages(2 ** 39 - K4, 0x5000, K4, 2, RW, GFP_KERNEL)).toBe(-ERANGE);
  });

  it('widths the format cannot build throw EOPNOTSUPP', () => {
    for (const width of [30, 58, 47.5]) {
      expect(() => setup({ addressWidth: width })).toThrow(expect.objectContaining({ errno: EOPNOTSUPP }) as KernelError);
    }
  });

  it('superpages follow SSLPS: bit 0 gives 2 MiB, bit 1 gives 1 GiB; a size the table lacks is refused', () => {
    expect(setup({ sslps: 0 }).pt.pgsize_bitmap).toBe(K4);
    expect(setup({ sslps: 1 }).pt.pgsize_bitmap).toBe(K4 + M2);
    expect(setup({ sslps: 2 }).pt.pgsize_bitmap).toBe(K4 + G1);
    expect(setup().pt.pgsize_bitmap).toBe(K4 + M2 + G1);
    const { pt } = setup({ sslps: 1 });
    expect(pt.map_pages(0, 0, G1, 1, RW, GFP_KERNEL)).toBe(-EINVAL);
    expect(pt.map_pages(0, 0, M2, 1, RW, GFP_KERNEL)).toBe(M2);
  });
});

describe('map_pages over something present (generic pt: -EADDRINUSE)', () => {
  it('a present 4 KiB leaf: -EADDRINUSE, no message, the old PTE kept', () => {
    const { pt, ctx } = setup();
    pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL);
    expect(pt.map_pages(0x1000, 0x9000, K4, 1, IOMMU_READ, GFP_KERNEL)).toBe(-EADDRINUSE);
    expect(EADDRINUSE).toBe(98);
    expect(pt.pteAt(0x1000, 1)).toBe(0x5000n | W | R);
    expect(ctx.klog.messages).toEqual([]);
  });

  it('all or nothing within the call: a conflict in the last slot writes none of the others', () => {
    const { pt } = setup();
    pt.map_pages(0x4000, 0x5000, K4, 1, RW, GFP_KERNEL);
    expect(pt.map_pages(0x1000, 0x10000, K4, 4, RW, GFP_KERNEL)).toBe(-EADDRINUSE);
    expect(pt.pteAt(0x1000, 1)).toBe(0n);
    expect(pt.mappedBytes).toBe(K4);
  });

  it('a superpage on the way down: -EADDRINUSE for a 4 KiB page inside it', () => {
    const { pt } = setup();
    pt.map_pages(0, 0x40_0000, M2, 1, RW, GFP_KERNEL);
    expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-EADDRINUSE);
    expect(pt.iova_to_phys(0x1000)).toBe(0x40_1000);
  });

  it('a superpage over a table: -EADDRINUSE while it maps anything; once empty, the table is freed (walk flushed)', () => {
    const { pt, alloc, walks } = setup();
    pt.map_pages(M2 + 0x3000, 0x5000, K4, 1, RW, GFP_KERNEL);
    expect(pt.map_pages(M2, 0x40_0000, M2, 1, RW, GFP_KERNEL)).toBe(-EADDRINUSE);
    expect(pt.unmap_pages(M2 + 0x3000, K4, 1, null)).toBe(K4);
    const before = alloc.inUse;
    expect(pt.emptyTables()).toBe(1);
    expect(pt.map_pages(M2, 0x40_0000, M2, 1, RW, GFP_KERNEL)).toBe(M2);
    expect(alloc.inUse).toBe(before - 1);
    expect(walks).toEqual([[M2, M2]]);
    expect(pt.pteAt(M2, 2)).toBe(0x40_0000n | PS | W | R);
    expect(pt.audit()).toEqual([]);
  });

  it('no READ or WRITE: WARN and -EINVAL', () => {
    const { pt, ctx } = setup();
    expect(pt.map_pages(0x1000, 0x5000, K4, 1, IOMMU_CACHE, GFP_KERNEL)).toBe(-EINVAL);
    expect(ctx.klog.warnings('pt_iommu_vtdss_map_pages')).toHaveLength(1);
  });
});

describe('unmap_pages: table pages onto the gather freelist', () => {
  it('an unmap covering a whole leaf table clears it, unhooks it and puts its page on the freelist', () => {
    const { pt, alloc, pages, walks } = setup();
    expect(pt.map_pages(M2, 0x4000_0000, K4, 512, RW, GFP_KERNEL)).toBe(M2); // table 3 = the L1 table
    const gather = new IommuIotlbGather();
    expect(pt.unmap_pages(M2, K4, 512, gather)).toBe(M2);
    expect(gather.freelist).toEqual([BASE_PFN + 3]);
    expect(pt.pteAt(M2, 2)).toBe(0n);
    expect([pt.tablePages, pt.deferredPages, alloc.inUse]).toEqual([3, 1, 4]); // freed only after the sync
    expect(pages).toHaveLength(512);
    expect(walks).toEqual([]);
    pt.free_table_pages(gather.freelist);
    expect([pt.deferredPages, alloc.inUse, gather.freelist.length]).toEqual([0, 3, 0]);
    expect(pt.audit()).toEqual([]);
  });

  it('tables entirely inside a larger unmap go too, children before parents; without a gather, at once after a walk flush', () => {
    const { pt, alloc, walks } = setup();
    expect(pt.map_pages(G1, 0, M2, 511, RW, GFP_KERNEL)).toBe(511 * M2); // tables 1 (L3), 2 (L2)
    expect(pt.map_pages(2 * G1 - M2, 0x5000_0000, K4, 512, RW, GFP_KERNEL)).toBe(M2); // table 3 (L1)
    const gather = new IommuIotlbGather();
    expect(pt.unmap_pages(G1, G1, 1, gather)).toBe(G1);
    expect(gather.freelist).toEqual([BASE_PFN + 3, BASE_PFN + 2]);
    expect(pt.tablePages).toBe(2);
    pt.free_table_pages(gather.freelist);
    pt.map_pages(0, 0, K4, 512, RW, GFP_KERNEL);
    const tables = alloc.inUse;
    expect(pt.unmap_pages(0, M2, 1, null)).toBe(M2);
    expect(walks).toEqual([[0, M2]]);
    expect(alloc.inUse).toBe(tables - 1);
  });

  it('an unmap short of a table\'s whole range leaves the table, empty', () => {
    const { pt } = setup();
    pt.map_pages(M2, 0x4000_0000, K4, 512, RW, GFP_KERNEL);
    const gather = new IommuIotlbGather();
    expect(pt.unmap_pages(M2, K4, 511, gather)).toBe(511 * K4);
    expect(pt.unmap_pages(2 * M2 - K4, K4, 1, gather)).toBe(K4);
    expect(gather.freelist).toEqual([]);
    expect(pt.emptyTables()).toBe(1);
  });

  it('a hole stops the unmap (no WARN): the bytes cleared before it, and no table freed', () => {
    const { pt, ctx } = setup();
    pt.map_pages(0, 0x10_0000, K4, 4, RW, GFP_KERNEL);
    pt.map_pages(5 * K4, 0x20_0000, K4, 507, RW, GFP_KERNEL);
    const gather = new IommuIotlbGather();
    expect(pt.unmap_pages(0, K4, 512, gather)).toBe(4 * K4);
    expect(pt.iova_to_phys(5 * K4)).toBe(0x20_0000);
    expect(gather.freelist).toEqual([]);
    expect(ctx.klog.warnCount).toBe(0);
  });

  it('a queued gather gets the freed tables but no per-page adds (the flush queue flushes all)', () => {
    const { pt, pages } = setup();
    pt.map_pages(0, 0, K4, 512, RW, GFP_KERNEL);
    const gather = new IommuIotlbGather();
    gather.queued = true;
    expect(pt.unmap_pages(0, K4, 512, gather)).toBe(M2);
    expect(pages).toEqual([]);
    expect(gather.freelist).toHaveLength(1);
  });
});

describe('unmap_pages of part of a superpage (generic pt __unmap_range)', () => {
  it('starting at the superpage: the whole 2 MiB goes and its size is returned', () => {
    const { pt, pages } = setup();
    pt.map_pages(M2, 0x4000_0000, M2, 1, RW, GFP_KERNEL);
    const gather = new IommuIotlbGather();
    expect(pt.unmap_pages(M2, K4, 1, gather)).toBe(M2);
    expect(pt.iova_to_phys(M2 + 0x10_0000)).toBe(0);
    expect(pt.pteAt(M2, 2)).toBe(0n);
    expect(pages).toEqual([[M2, M2]]);
    expect(pt.mappedBytes).toBe(0);
  });

  it('starting inside the superpage: nothing is unmapped (0), the superpage stays', () => {
    const { pt, ctx } = setup();
    pt.map_pages(M2, 0x4000_0000, M2, 1, RW, GFP_KERNEL);
    expect(pt.unmap_pages(M2 + K4, K4, 1, new IommuIotlbGather())).toBe(0);
    expect(pt.pteAt(M2, 2)).toBe(0x4000_0000n | PS | W | R);
    expect(ctx.klog.warnCount).toBe(0);
  });

  it('a range ending inside a superpage takes the whole superpage', () => {
    const { pt } = setup();
    pt.map_pages(0, 0, K4, 512, RW, GFP_KERNEL);
    pt.map_pages(M2, 0x4000_0000, M2, 1, RW, GFP_KERNEL);
    expect(pt.unmap_pages(M2 - K4, K4, 2, null)).toBe(K4 + M2);
    expect(pt.iova_to_phys(M2 + 0x1000)).toBe(0);
  });
});

describe('allocation failures and teardown', () => {
  it('each table allocation failing in turn: -ENOMEM, and the rollback leaves only the top table', () => {
    for (let limit = 1; limit <= 3; limit++) {
      const { pt, alloc } = setup({}, limit);
      const since = pt.tableAllocs;
      expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-ENOMEM);
      expect(pt.rollbackTablesSince(since)).toBe(limit - 1);
      expect([pt.tablePages, alloc.inUse, pt.mappedBytes]).toEqual([1, 1, 0]);
      expect(pt.audit()).toEqual([]);
    }
  });

  it('fault injection on \'pgtable\' fails the map the same way', () => {
    const { pt, ctx, alloc } = setup();
    ctx.faults.inject('pgtable', { nth: 2 });
    const since = pt.tableAllocs;
    expect(pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toBe(-ENOMEM);
    pt.rollbackTablesSince(since);
    expect(alloc.inUse).toBe(1);
  });

  it('no top table: the constructor throws ENOMEM; free() returns every page and is final', () => {
    expect(() => setup({}, 0)).toThrow(expect.objectContaining({ errno: ENOMEM }) as KernelError);
    const { pt, alloc } = setup();
    pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL);
    pt.free();
    pt.free();
    expect([alloc.inUse, pt.tablePages, pt.lookup(0x1000)]).toEqual([0, 0, false]);
    expect(pt.pteAt(0x1000, 1)).toBeNull();
    expect(() => pt.map_pages(0x1000, 0x5000, K4, 1, RW, GFP_KERNEL)).toThrow(KernelBug);
  });
});
