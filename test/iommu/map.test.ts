import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { EEXIST, EINVAL, ENODEV, ENOMEM, ERANGE } from '../../src/core/errno.ts';
import { KernelBug, KernelError } from '../../src/core/errors.ts';
import { GFP_DMA32, GFP_KERNEL } from '../../src/mm/gfp.ts';
import { IommuIotlbGather, iommu_iotlb_sync } from '../../src/iommu/gather.ts';
import { Iotlb } from '../../src/iommu/iotlb.ts';
import { IOMMU_DOMAIN_BLOCKED, IOMMU_DOMAIN_IDENTITY, PagingDomain, type IommuDomainLike } from '../../src/iommu/map-domain.ts';
import { iommu_pgsize } from '../../src/iommu/map-pgsize.ts';
import { iommu_iova_to_phys, iommu_map, iommu_map_sg, iommu_unmap, iommu_unmap_fast } from '../../src/iommu/map.ts';
import { IoPageTable } from '../../src/iommu/pgtable.ts';
import { SimpleTablePageAllocator } from '../../src/iommu/pgtable-alloc.ts';
import { type IoPgtableConfig } from '../../src/iommu/pgtable-geometry.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/pgtable-prot.ts';
import { translate } from '../../src/iommu/translate.ts';

const K4 = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const RW = IOMMU_READ | IOMMU_WRITE;
const BITMAP = K4 + M2 + G1;

function setup(cfg: IoPgtableConfig = { ias: 39 }, limit?: number) {
  const ctx = createContext('map-test');
  const alloc = new SimpleTablePageAllocator(limit === undefined ? {} : { limit });
  const pt = new IoPageTable(cfg, alloc, { klog: ctx.klog, faults: ctx.faults });
  const iotlb = new Iotlb();
  const domain = new PagingDomain({ pgtable: pt, iotlb, asid: 3, klog: ctx.klog });
  return { ctx, alloc, pt, iotlb, domain };
}

type Leaf = [iova: number, size: number, phys: number, prot: number];

function leaves(pt: IoPageTable): Leaf[] {
  const out: Leaf[] = [];
  pt.forEachLeaf((iova, size, phys, prot) => out.push([iova, size, phys, prot]));
  return out;
}

/** Everything a failed call must leave as it was. */
function snapshot(s: ReturnType<typeof setup>) {
  return { leaves: leaves(s.pt), tables: s.pt.tablePages, pfns: [...s.pt.tablePfns()].sort(), inUse: s.alloc.inUse, deferred: s.pt.deferredPages, bytes: s.pt.mappedBytes };
}

describe('iommu_pgsize', () => {
  const d = { pgsize_bitmap: BITMAP };
  const pick = (iova: number, paddr: number, size: number): [number, number] => {
    const c = { value: -1 };
    return [iommu_pgsize(d, iova, paddr, size, c), c.value];
  };

  it('2 MiB-aligned iova and paddr with 4 MiB: two 2 MiB pages', () => {
    expect(pick(M2, 0x4020_0000, 2 * M2)).toEqual([M2, 2]);
  });

  it('misalignment falls back to 4 KiB, all in one go when no larger page can follow', () => {
    expect(pick(M2, 0x4020_1000, 2 * M2)).toEqual([K4, 1024]);
    expect(pick(M2 + K4, 0x4020_1000, 8 * K4)).toEqual([K4, 8]);
  });

  it('counts 4 KiB pages only up to the next 2 MiB boundary when a 2 MiB page fits after it', () => {
    expect(pick(M2 - 2 * K4, 0x4000_0000 - 2 * K4, 2 * K4 + M2)).toEqual([K4, 2]);
    // Not enough left for a whole 2 MiB page after the boundary: all 4 KiB.
    expect(pick(M2 - 2 * K4, 0x4000_0000 - 2 * K4, 2 * K4 + M2 - K4)).toEqual([K4, 513]);
  });

  it('1 GiB pages when everything lines up, and 2 MiB pages up to the next 1 GiB boundary', () => {
    expect(pick(G1, 2 ** 40, 3 * G1)).toEqual([G1, 3]);
    expect(pick(G1 - 2 * M2, 2 ** 40 - 2 * M2, 2 * M2 + G1)).toEqual([M2, 2]);
  });

  it('iova | paddr == 0 puts no alignment limit; no size fits: BUG', () => {
    expect(pick(0, 0, G1)).toEqual([G1, 1]);
    expect(() => pick(0, 0, 2048)).toThrow(KernelBug);
  });
});

describe('iommu_map', () => {
  it('maps a 2 MiB-aligned 4 MiB range as two 2 MiB leaves, a misaligned one as 4 KiB leaves', () => {
    const s = setup();
    expect(iommu_map(s.domain, M2, 0x4020_0000, 2 * M2, RW, GFP_KERNEL)).toBe(0);
    expect(leaves(s.pt)).toEqual([[M2, M2, 0x4020_0000, RW], [2 * M2, M2, 0x4040_0000, RW]]);
    expect(iommu_map(s.domain, 8 * M2, 0x4020_1000, M2, IOMMU_READ, GFP_KERNEL)).toBe(0);
    const small = leaves(s.pt).filter(([, size]) => size === K4);
    expect(small).toHaveLength(512);
    expect(iommu_iova_to_phys(s.domain, 8 * M2 + 0x1234)).toBe(0x4020_2234);
  });

  it('uses 1 GiB leaves, with 2 MiB and 4 KiB ones around them', () => {
    const s = setup();
    expect(iommu_map(s.domain, G1 - M2 - K4, 2 ** 38 - M2 - K4, K4 + M2 + G1 + M2, RW, GFP_KERNEL)).toBe(0);
    expect(leaves(s.pt).map(([iova, size]) => [iova, size])).toEqual([[G1 - M2 - K4, K4], [G1 - M2, M2], [G1, G1], [2 * G1, M2]]);
  });

  it('domains with different page sizes, called in turn, each keep their own minimum alignment', () => {
    // map-pgsize remembers the last pgsize_bitmap's sizes: alternating domains must not see each other's.
    const s4 = setup({ ias: 48 });
    const s16 = setup({ granule: 16384, ias: 48 });
    for (let i = 0; i < 3; i++) {
      expect(iommu_map(s4.domain, 0x1000 * (i + 1), 0x1000, 0x1000, RW, GFP_KERNEL)).toBe(0);
      expect(iommu_map(s16.domain, 0x1000 * (i + 1), 0, 16384, RW, GFP_KERNEL)).toBe(-EINVAL);
      expect(iommu_unmap(s16.domain, 0x4000 * (i + 1), 0x1000)).toBe(0);
      expect(iommu_unmap(s4.domain, 0x1000 * (i + 1), 0x1000)).toBe(0x1000);
    }
    expect(s16.ctx.klog.messages.at(-1)?.message).toBe('iommu: unaligned: iova 0xc000 size 0x1000 min_pagesz 0x4000\n');
  });

  it('16 KiB and 64 KiB granules: their block sizes, their minimum alignment', () => {
    const s16 = setup({ granule: 16384, ias: 48 });
    expect(iommu_map(s16.domain, 2 ** 25, 2 ** 35, 2 ** 25 + 16384, RW, GFP_KERNEL)).toBe(0);
    expect(leaves(s16.pt).map(([iova, size]) => [iova, size])).toEqual([[2 ** 25, 2 ** 25], [2 ** 26, 16384]]);
    expect(iommu_map(s16.domain, 0x1000, 0, 16384, RW, GFP_KERNEL)).toBe(-EINVAL);
    expect(s16.ctx.klog.messages.at(-1)?.message).toBe('iommu: unaligned: iova 0x1000 pa 0x0000000000000000 size 0x4000 min_pagesz 0x4000\n');
    const s64 = setup({ granule: 65536, ias: 52, oas: 52 });
    expect(iommu_map(s64.domain, 2 ** 51, 2 ** 50, 2 ** 29 + 65536, IOMMU_READ, GFP_KERNEL)).toBe(0);
    expect(iommu_iova_to_phys(s64.domain, 2 ** 51 + 2 ** 29 + 0x1234)).toBe(2 ** 50 + 2 ** 29 + 0x1234);
    expect(iommu_unmap(s64.domain, 2 ** 51, 2 ** 29 + 65536)).toBe(2 ** 29 + 65536);
    expect(s64.pt.audit()).toEqual([]);
  });

  it('the unaligned message, exactly', () => {
    const s = setup();
    expect(iommu_map(s.domain, 0x1001, 0x2000, 0x1000, RW, GFP_KERNEL)).toBe(-EINVAL);
    expect(iommu_map(s.domain, 0x1000, 2 ** 40 + 0x200, 0x3000, RW, GFP_KERNEL)).toBe(-EINVAL);
    const errs = s.ctx.klog.messages.filter((m) => m.level === 'err');
    expect(errs.map((m) => m.message)).toEqual([
      'iommu: unaligned: iova 0x1001 pa 0x0000000000002000 size 0x1000 min_pagesz 0x1000\n',
      'iommu: unaligned: iova 0x1000 pa 0x0000010000000200 size 0x3000 min_pagesz 0x1000\n',
    ]);
    expect(errs[0]?.fn).toBe('iommu_map_nosync');
    expect(s.pt.tablePages).toBe(1);
  });

  it('-EEXIST over an existing mapping, with the WARN; what the failed call mapped first is undone', () => {
    const s = setup();
    iommu_map(s.domain, 0x5000, 0x9000, K4, RW, GFP_KERNEL);
    const before = snapshot(s);
    expect(iommu_map(s.domain, 0x1000, 0x1000, 8 * K4, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect(s.ctx.klog.warnings('arm_lpae_init_pte')).toHaveLength(1);
    expect(snapshot(s)).toEqual(before);
    // A failure after a first piece went in: 4 KiB up to 2 MiB, then a 2 MiB page over an existing 2 MiB one.
    iommu_map(s.domain, 2 * M2, 0x4000_0000, M2, RW, GFP_KERNEL);
    const before2 = snapshot(s);
    expect(iommu_map(s.domain, M2 - K4, 0x3fe0_0000 - K4, K4 + M2, RW, GFP_KERNEL)).toBe(0); // fits
    iommu_unmap(s.domain, M2 - K4, K4 + M2);
    expect(iommu_map(s.domain, M2 - K4, 0x3fe0_0000 - K4, K4 + 2 * M2, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect(leaves(s.pt)).toEqual(before2.leaves);
    expect(s.pt.audit()).toEqual([]);
  });

  it('rejects non-paging domains, domains without a page table, and odd GFP flags', () => {
    const s = setup();
    const identity: IommuDomainLike = { type: IOMMU_DOMAIN_IDENTITY, pgsize_bitmap: BITMAP, pgtable: null, klog: s.ctx.klog };
    expect(iommu_map(identity, 0, 0, K4, RW, GFP_KERNEL)).toBe(-EINVAL);
    expect(iommu_unmap(identity, 0, K4)).toBe(0);
    expect(iommu_iova_to_phys(identity, 0x1234)).toBe(0x1234);
    expect(iommu_iova_to_phys({ ...identity, type: IOMMU_DOMAIN_BLOCKED }, 0x1234)).toBe(0);
    const none: IommuDomainLike = { type: s.domain.type, pgsize_bitmap: 0, pgtable: null, klog: s.ctx.klog };
    expect(iommu_map(none, 0, 0, K4, RW, GFP_KERNEL)).toBe(-ENODEV);
    expect(s.ctx.klog.warnings('iommu_map_nosync')).toHaveLength(1);
    expect(iommu_map(s.domain, 0, 0, K4, RW, GFP_KERNEL | GFP_DMA32)).toBe(-EINVAL);
    expect(iommu_map(s.domain, 0, 0, K4, RW, GFP_KERNEL | GFP_DMA32)).toBe(-EINVAL);
    expect(s.ctx.klog.warnings('iommu_map_nosync').map((m) => m.message)).toEqual([
      'WARN_ON(!ops->map_pages || domain->pgsize_bitmap == 0UL)',
      'WARN_ON_ONCE(gfp & (__GFP_COMP | __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM))',
    ]);
    expect(() => iommu_map(s.domain, -4096, 0, K4, RW, GFP_KERNEL)).toThrow(KernelError);
    expect(() => iommu_map(s.domain, 0, 0.5, K4, RW, GFP_KERNEL)).toThrow(KernelError);
    expect(() => iommu_unmap(s.domain, 2 ** 53 - 4096, 8192)).toThrow(KernelError);
  });

  it('failure injection at each table-page allocation: -ENOMEM, table and page count exactly as before', () => {
    const base = setup();
    // A call that needs several new tables: 4K pages crossing a 1 GiB boundary and a 2 MiB page.
    const call = (d: PagingDomain): number => iommu_map(d, G1 - 2 * K4, 0x7000_0000 - 2 * K4, 2 * K4 + M2 + K4, RW, GFP_KERNEL);
    base.pt.map_pages(0x1000, 0x1000, K4, 1, RW, GFP_KERNEL);
    const allocsBefore = base.pt.tableAllocs;
    expect(call(base.domain)).toBe(0);
    const needed = base.pt.tableAllocs - allocsBefore;
    expect(needed).toBe(3); // a level-2 table below 1 GiB; a level-1 and a level-2 table above
    for (let nth = 1; nth <= needed; nth++) {
      const s = setup();
      s.pt.map_pages(0x1000, 0x1000, K4, 1, RW, GFP_KERNEL);
      const before = snapshot(s);
      s.ctx.faults.inject('pgtable', { nth });
      expect(call(s.domain)).toBe(-ENOMEM);
      expect(snapshot(s)).toEqual(before);
      expect(s.pt.audit()).toEqual([]);
      s.ctx.faults.clear();
      expect(call(s.domain)).toBe(0);
    }
  });

  it('an exhausted allocator fails the same way', () => {
    const s = setup({ ias: 48 }, 3);
    const before = snapshot(s);
    expect(iommu_map(s.domain, G1 - K4, 0x1000, 2 * K4, RW, GFP_KERNEL)).toBe(-ENOMEM);
    expect(snapshot(s)).toEqual(before);
  });
});

describe('iommu_unmap', () => {
  it('returns bytes unmapped, across mappings made by several calls', () => {
    const s = setup();
    iommu_map(s.domain, 0, 0x10_0000, 4 * K4, RW, GFP_KERNEL);
    iommu_map(s.domain, 4 * K4, 0x90_0000, 4 * K4, RW, GFP_KERNEL);
    expect(iommu_unmap(s.domain, 0, 8 * K4)).toBe(8 * K4);
    expect(s.pt.mappedBytes).toBe(0);
  });

  it('stops at a hole and returns what it unmapped so far (the page table WARNs)', () => {
    const s = setup();
    iommu_map(s.domain, 0x10_0000, 0x10_0000, 3 * K4, RW, GFP_KERNEL);
    iommu_map(s.domain, 0x10_0000 + 4 * K4, 0x10_0000, K4, RW, GFP_KERNEL);
    expect(iommu_unmap(s.domain, 0x10_0000, 5 * K4)).toBe(3 * K4);
    // One WARN where the first call stopped, one when the core loop tries again at the hole.
    expect(s.ctx.klog.warnings('__arm_lpae_unmap')).toHaveLength(2);
    expect(iommu_iova_to_phys(s.domain, 0x10_0000 + 4 * K4)).toBe(0x10_0000);
  });

  it('refuses to split a large page: WARN, nothing of that page unmapped', () => {
    const s = setup();
    iommu_map(s.domain, M2, 0x4020_0000, M2, RW, GFP_KERNEL);
    expect(iommu_unmap(s.domain, M2, K4)).toBe(0);
    expect(iommu_unmap(s.domain, M2 + M2 / 2, K4)).toBe(0);
    expect(s.ctx.klog.warnings('__arm_lpae_unmap').map((m) => m.message)).toEqual(['Unmap of a partial large IOPTE is not allowed']);
    expect(iommu_iova_to_phys(s.domain, M2 + 0x10)).toBe(0x4020_0010);
    expect(iommu_unmap(s.domain, M2, M2)).toBe(M2);
  });

  it('unmapping a whole 2 MiB block of 4 KiB pages frees its table after the IOTLB sync', () => {
    const s = setup();
    iommu_map(s.domain, M2, 0x4020_1000, M2, RW, GFP_KERNEL);
    expect(s.pt.tablePages).toBe(3);
    expect(iommu_unmap(s.domain, M2, M2)).toBe(M2);
    expect(s.pt.tablePages).toBe(2);
    expect(s.alloc.inUse).toBe(2);
    expect(s.pt.deferredPages).toBe(0);
    expect(s.domain.syncs).toBe(1);
  });

  it('misaligned arguments: pr_err and 0', () => {
    const s = setup();
    expect(iommu_unmap(s.domain, 0x800, K4)).toBe(0);
    expect(s.ctx.klog.messages.at(-1)?.message).toBe('iommu: unaligned: iova 0x800 size 0x1000 min_pagesz 0x1000\n');
  });

  it('iommu_unmap_fast leaves the sync (and the freed table pages) to the caller', () => {
    const s = setup();
    iommu_map(s.domain, 0, 0x10_0000, M2, RW, GFP_KERNEL);
    expect(translate(s.domain, 0x1000, 8, 'read').ok).toBe(true);
    const g = new IommuIotlbGather();
    expect(iommu_unmap_fast(s.domain, 0, M2, g)).toBe(M2);
    expect(g.freelist).toHaveLength(1);
    expect(translate(s.domain, 0x1000, 8, 'read').stale).toBe(true); // still cached
    iommu_iotlb_sync(s.domain, g);
    expect(translate(s.domain, 0x1000, 8, 'read').fault?.reason).toBe('unmapped');
    expect(s.alloc.inUse).toBe(s.pt.tablePages);
  });
});

describe('iommu_map_sg', () => {
  it('maps physically contiguous entries as one run, back to back in IOVA space', () => {
    const s = setup();
    const sg = [
      { phys: 0x10_0000, length: K4 }, { phys: 0x10_1000, length: 2 * K4 }, // one run
      { phys: 0x50_0000, length: K4 },
      { phys: 0x99_0000, length: K4, busAddress: true }, // skipped
      { phys: 0x60_0000, length: K4 },
    ];
    expect(iommu_map_sg(s.domain, M2, sg, sg.length, IOMMU_READ, GFP_KERNEL)).toBe(5 * K4);
    expect(leaves(s.pt).map(([iova, , phys]) => [iova - M2, phys])).toEqual([
      [0, 0x10_0000], [K4, 0x10_1000], [2 * K4, 0x10_2000], [3 * K4, 0x50_0000], [4 * K4, 0x60_0000],
    ]);
  });

  it('takes accessors instead of objects', () => {
    const s = setup();
    const phys = [0x10_0000, 0x20_0000];
    const n = iommu_map_sg(s.domain, 0, { phys: (i) => phys[i] as number, length: () => K4 }, 2, RW, GFP_KERNEL);
    expect(n).toBe(2 * K4);
    expect(iommu_iova_to_phys(s.domain, K4)).toBe(0x20_0000);
  });

  it("keeps the kernel's loop: a zero-length last entry that continues the run leaves it unmapped", () => {
    const s = setup();
    expect(iommu_map_sg(s.domain, 0, [{ phys: 0x5000, length: K4 }, { phys: 0x6000, length: 0 }], 2, RW, GFP_KERNEL)).toBe(0);
    expect(s.pt.mappedBytes).toBe(0);
  });

  it('undoes every run on failure, tables included', () => {
    for (const nth of [1, 2, 3]) {
      const s = setup();
      const before = snapshot(s);
      s.ctx.faults.inject('pgtable', { nth });
      const sg = [{ phys: 0x10_0000, length: K4 }, { phys: 0x30_0000, length: K4 }, { phys: 0x50_0000, length: K4 }];
      // The third entry lands in the next 2 MiB block: it needs a table of its own.
      expect(iommu_map_sg(s.domain, M2 - 2 * K4, sg, 3, RW, GFP_KERNEL)).toBe(-ENOMEM);
      expect(snapshot(s)).toEqual(before);
    }
    const s = setup();
    iommu_map(s.domain, 0x2000, 0x1000, K4, RW, GFP_KERNEL);
    const before = snapshot(s);
    expect(iommu_map_sg(s.domain, 0, [{ phys: 0x10_0000, length: K4 }, { phys: 0x30_0000, length: K4 }, { phys: 0x50_0000, length: K4 }], 3, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect(snapshot(s)).toEqual(before);
  });

  it('refuses a bad entry before mapping anything (EINVAL naming sg and the entry)', () => {
    const good = { phys: 0x10_0000, length: K4 };
    const bad: Array<[unknown, RegExp]> = [
      [{ phys: Number.NaN, length: K4 }, /entry 1: expected a physical address/],
      [{ phys: -K4, length: K4 }, /entry 1: expected a physical address/],
      [{ phys: 0x20_0000, length: 1.5 }, /entry 1: expected a length/],
      [{ phys: 0x20_0000, length: 2 ** 53 }, /entry 1: expected a length/],
      [null, /entry 1: expected \{ phys, length \}/],
      [{ phys: 0x20_0000, length: Number.MAX_SAFE_INTEGER }, /exceed 2\^53 - 1/],
    ];
    for (const [entry, msg] of bad) {
      const s = setup();
      const before = snapshot(s);
      // The first entry alone would map: the refusal must come before it.
      const sg = [good, entry] as Array<{ phys: number; length: number }>;
      let err: unknown;
      try { iommu_map_sg(s.domain, 0, sg, 2, RW, GFP_KERNEL); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).errno).toBe(EINVAL);
      expect((err as KernelError).arg).toBe('sg');
      expect((err as Error).message).toMatch(msg);
      expect(snapshot(s)).toEqual(before);
      expect(s.pt.mappedBytes).toBe(0);
    }
    // Accessors are checked the same way.
    const s = setup();
    expect(() => iommu_map_sg(s.domain, 0, { phys: (i) => (i === 0 ? 0x10_0000 : -1), length: () => K4 }, 2, RW, GFP_KERNEL)).toThrow(/entry 1/);
    expect(s.pt.mappedBytes).toBe(0);
  });

  it('leaves to the kernel what the kernel decides: bus-address entries unread, a physical address past the page table -ERANGE', () => {
    const s = setup();
    // A bus-address entry is skipped whatever it holds, as in the kernel's loop.
    const sg = [{ phys: 0x10_0000, length: K4 }, { phys: Number.NaN, length: -1, busAddress: true }, { phys: 0x20_0000, length: K4 }];
    expect(iommu_map_sg(s.domain, 0, sg, 3, RW, GFP_KERNEL)).toBe(2 * K4);
    // Past the output size: the page table's -ERANGE with its WARN, as iommu_map, nothing left mapped.
    const t = setup();
    const before = snapshot(t);
    expect(iommu_map_sg(t.domain, 0, [{ phys: 0x10_0000, length: K4 }, { phys: 2 ** 60, length: K4 }], 2, RW, GFP_KERNEL)).toBe(-ERANGE);
    expect(iommu_map(t.domain, 0, 2 ** 60, K4, RW, GFP_KERNEL)).toBe(-ERANGE);
    expect(snapshot(t)).toEqual(before);
  });

  it('syncs as the kernel: one iotlb_sync_map for every run together; on failure one iotlb_sync, even for nothing mapped', () => {
    const ctx = createContext('map-sg-sync');
    const pt = new IoPageTable({ ias: 39 }, new SimpleTablePageAllocator(), { klog: ctx.klog, faults: ctx.faults });
    const domain = new PagingDomain({ pgtable: pt, iotlb: new Iotlb(), asid: 4, klog: ctx.klog, cachingMode: true });
    const sg = [{ phys: 0x10_0000, length: K4 }, { phys: 0x30_0000, length: K4 }, { phys: 0x50_0000, length: K4 }];
    expect(iommu_map_sg(domain, 0, sg, 3, RW, GFP_KERNEL)).toBe(3 * K4);
    expect([domain.syncMaps, domain.syncs]).toEqual([1, 0]);
    // The first run collides: nothing was mapped, and the unwind still syncs once.
    expect(iommu_map_sg(domain, 0, sg, 3, RW, GFP_KERNEL)).toBe(-EEXIST);
    expect([domain.syncMaps, domain.syncs]).toEqual([1, 1]);
    expect(pt.mappedBytes).toBe(3 * K4);
  });
});

describe('dma-iommu maps scatterlists through iommu_map_sg', () => {
  it('dma_map_sg of discontiguous pages: one IOVA range, the runs back to back, no per-run sync', async () => {
    const { Machine, SgTable, sg_alloc_table_from_pages_segment, dma_map_sgtable, dma_unmap_sgtable, DMA_TO_DEVICE } = await import('../../src/index.ts');
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const pfns = [100, 300, 301, 500].map((p) => p + 1000);
    for (const p of pfns) m.mm.writePhys(p * K4, new Uint8Array([p & 0xff]));
    const sgt = new SgTable(m);
    sg_alloc_table_from_pages_segment(sgt, pfns, 4, 0, 4 * K4, 65536, GFP_KERNEL);
    const paging = m.iommu!.groupOf(dev)!.domain.paging!;
    const syncs = paging.syncs;
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE, 0)).toBe(0);
    expect(sgt.nents).toBe(1); // merged into one DMA segment
    expect(paging.syncs).toBe(syncs); // mapping syncs nothing (no caching mode); unmap syncs once
    const seg = sgt.sgl!;
    for (let i = 0; i < 4; i++) {
      const r = dev.dma.read(seg.dma_address + i * K4, 1);
      expect(r.ok && r.value[0]).toBe((pfns[i] as number) & 0xff);
    }
    dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE, 0);
    expect(paging.syncs).toBe(syncs + 1);
    expect(m.audit()).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
// A reference model of the same rules, written as plainly as possible: entries in a Map keyed by
// level and base address, BigInt arithmetic, whole-range scans.

const SIZES = [G1, M2, K4]; // level 0, 1, 2 of a 39-bit table
const ENTRIES = 512;
type MEntry = { kind: 'table'; seq: number } | { kind: 'leaf'; phys: number; prot: number };

class Model {
  readonly map = new Map<string, MEntry>();
  seq = 0;
  warns = 0;
  partialWarned = false;
  failAt = -1; // fail the failAt-th table allocation from now (1-based)
  replaced = false; // a block went in where a table was (that cannot be undone)
  allocs = 0;

  key(level: number, base: number): string {
    return `${level}:${base}`;
  }

  pgsize(iova: number, paddr: number, size: number): [number, number] {
    const merge = BigInt(iova) | BigInt(paddr);
    const fits = SIZES.filter((s) => s <= size && (merge === 0n || merge % BigInt(s) === 0n));
    const pg = Math.max(...fits);
    if (!Number.isFinite(pg)) throw new Error('model: no page size');
    const next = [...SIZES].reverse().find((s) => s > pg);
    let span = size;
    if (next !== undefined && (BigInt(iova) ^ BigInt(paddr)) % BigInt(next) === 0n) {
      const offset = next - Number(merge % BigInt(next));
      if (offset + next <= size) span = offset;
    }
    return [pg, Math.floor(span / pg)];
  }

  removeSubtree(level: number, base: number): void {
    this.map.delete(this.key(level, base));
    const end = base + (SIZES[level] as number);
    for (const k of [...this.map.keys()]) {
      const [l, b] = k.split(':').map(Number) as [number, number];
      if (l > level && b >= base && b < end) this.map.delete(k);
    }
  }

  mapPages(iova: number, paddr: number, pg: number, count: number, prot: number): number {
    const target = SIZES.indexOf(pg);
    for (let l = 0; l < target; l++) {
      const s = SIZES[l] as number;
      const k = this.key(l, Math.floor(iova / s) * s);
      const e = this.map.get(k);
      if (e === undefined) {
        this.allocs++;
        if (this.allocs === this.failAt) return -ENOMEM;
        this.map.set(k, { kind: 'table', seq: ++this.seq });
      } else if (e.kind === 'leaf') {
        this.warns++;
        return -EEXIST;
      }
    }
    const idx = Math.floor(iova / pg) % ENTRIES;
    const num = Math.min(count, ENTRIES - idx);
    for (let i = 0; i < num; i++) {
      const e = this.map.get(this.key(target, iova + i * pg));
      if (e?.kind === 'leaf') {
        this.warns++;
        return -EEXIST;
      }
      if (e?.kind === 'table') {
        this.removeSubtree(target, iova + i * pg);
        this.replaced = true;
      }
    }
    for (let i = 0; i < num; i++) this.map.set(this.key(target, iova + i * pg), { kind: 'leaf', phys: paddr + i * pg, prot });
    return num * pg;
  }

  unmapPages(iova: number, pg: number, count: number): number {
    const target = SIZES.indexOf(pg);
    for (let l = 0; l < target; l++) {
      const s = SIZES[l] as number;
      const e = this.map.get(this.key(l, Math.floor(iova / s) * s));
      if (e === undefined) {
        this.warns++;
        return 0;
      }
      if (e.kind === 'leaf') {
        if (!this.partialWarned) this.warns++;
        this.partialWarned = true;
        return 0;
      }
    }
    const idx = Math.floor(iova / pg) % ENTRIES;
    const num = Math.min(count, ENTRIES - idx);
    let i = 0;
    for (; i < num; i++) {
      const k = this.key(target, iova + i * pg);
      const e = this.map.get(k);
      if (e === undefined) {
        this.warns++;
        break;
      }
      if (e.kind === 'table') this.removeSubtree(target, iova + i * pg);
      else this.map.delete(k);
    }
    return i * pg;
  }

  map_(iova: number, paddr: number, size: number, prot: number): number {
    if (iova % K4 !== 0 || paddr % K4 !== 0 || size % K4 !== 0) return -EINVAL;
    const since = this.seq;
    const placed: Array<[number, number, number]> = [];
    let left = size;
    let at = iova;
    let pa = paddr;
    let ret = 0;
    while (left > 0) {
      const [pg, count] = this.pgsize(at, pa, left);
      const r = this.mapPages(at, pa, pg, count, prot);
      if (r < 0) {
        ret = r;
        break;
      }
      placed.push([at, pg, r / pg]);
      left -= r;
      at += r;
      pa += r;
    }
    if (ret !== 0) {
      for (const [a, pg, n] of placed) for (let i = 0; i < n; i++) this.map.delete(this.key(SIZES.indexOf(pg), a + i * pg));
      // Free the tables this call allocated that are now empty, newest first.
      const fresh = [...this.map.entries()].filter(([, e]) => e.kind === 'table' && e.seq > since)
        .sort((a, b) => (b[1] as { seq: number }).seq - (a[1] as { seq: number }).seq);
      for (const [k] of fresh) {
        const [l, b] = k.split(':').map(Number) as [number, number];
        const end = b + (SIZES[l] as number);
        const nonEmpty = [...this.map.keys()].some((k2) => {
          const [l2, b2] = k2.split(':').map(Number) as [number, number];
          return l2 === l + 1 && b2 >= b && b2 < end;
        });
        if (!nonEmpty) this.map.delete(k);
      }
    }
    return ret;
  }

  unmap(iova: number, size: number): number {
    if (iova % K4 !== 0 || size % K4 !== 0) return 0;
    let done = 0;
    while (done < size) {
      const [pg, count] = this.pgsize(iova + done, iova + done, size - done);
      const n = this.unmapPages(iova + done, pg, count);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  leaves(): Leaf[] {
    const out: Leaf[] = [];
    for (const [k, e] of this.map) {
      if (e.kind !== 'leaf') continue;
      const [l, b] = k.split(':').map(Number) as [number, number];
      out.push([b, SIZES[l] as number, e.phys, e.prot]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  tables(): number {
    return 1 + [...this.map.values()].filter((e) => e.kind === 'table').length;
  }

  /** The physical address of `iova`, or 0. */
  phys(iova: number): number {
    for (let l = 0; l < 3; l++) {
      const s = SIZES[l] as number;
      const e = this.map.get(this.key(l, Math.floor(iova / s) * s));
      if (e === undefined) return 0;
      if (e.kind === 'leaf') return e.phys + (iova % s);
    }
    return 0;
  }
}

describe('property: the page table against a Map-based model of the same rules', () => {
  const iovaArb = fc.oneof(
    fc.integer({ min: 0, max: 1023 }).map((p) => p * K4),
    fc.integer({ min: 0, max: 7 }).map((b) => b * M2),
    fc.constantFrom(G1, G1 - M2, G1 - K4, 2 * G1),
  );
  const sizeArb = fc.oneof(
    fc.integer({ min: 0, max: 8 }).map((p) => p * K4),
    fc.integer({ min: 1, max: 3 }).map((b) => b * M2),
    fc.constantFrom(M2 + K4, M2 - K4, G1, G1 + M2, 0x801),
  );
  const opArb = fc.record({
    kind: fc.constantFrom('map', 'map', 'unmap'),
    iova: iovaArb,
    size: sizeArb,
    delta: fc.constantFrom(0, K4, M2, G1, 5 * G1),
    prot: fc.constantFrom(IOMMU_READ, IOMMU_WRITE, RW),
    fail: fc.option(fc.integer({ min: 1, max: 4 }), { freq: 4 }),
  });

  it('same return values, leaves (and so page sizes), table count and WARNs; failed maps change nothing', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 10, maxLength: 30 }), (ops) => {
      const s = setup();
      const m = new Model();
      for (const o of ops) {
        // Keep 4 KiB leaves few: a 1 GiB range only with 2 MiB-congruent addresses.
        const paddr = o.iova + (o.size >= G1 && o.delta === K4 ? M2 : o.delta);
        if (o.kind === 'map') {
          const before = snapshot(s);
          m.replaced = false;
          if (o.fail !== null) {
            s.ctx.faults.inject('pgtable', { nth: o.fail });
            m.failAt = o.fail;
            m.allocs = 0;
          }
          const got = iommu_map(s.domain, o.iova, paddr, o.size, o.prot, GFP_KERNEL);
          s.ctx.faults.clear();
          const want = m.map_(o.iova, paddr, o.size, o.prot);
          m.failAt = -1;
          expect(got).toBe(want);
          // A failed call leaves everything as it was, unless it had replaced a table by a block.
          if (got !== 0 && !m.replaced) expect(snapshot(s)).toEqual(before);
        } else {
          expect(iommu_unmap(s.domain, o.iova, o.size)).toBe(m.unmap(o.iova, o.size));
        }
        expect(leaves(s.pt)).toEqual(m.leaves());
        expect(s.pt.tablePages).toBe(m.tables());
      }
      expect(s.ctx.klog.warnCount).toBe(m.warns);
      for (const iova of [0, K4, 5 * K4, M2, M2 + 7 * K4, G1 - K4, G1 + 0x1234, 2 * G1 + M2]) {
        expect(iommu_iova_to_phys(s.domain, iova)).toBe(m.phys(iova));
      }
      expect(s.pt.audit()).toEqual([]);
      expect(s.alloc.inUse).toBe(s.pt.tablePages);
      expect(s.pt.deferredPages).toBe(0);
    }), { numRuns: 120 });
  });
});
