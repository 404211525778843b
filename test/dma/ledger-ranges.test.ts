/**
 * The ledger keeps a scatterlist mapping's ranges packed as numbers (not an object per range): its
 * CPU and DMA ranges read back as the merge rule says (adjacent joined, empty dropped), through
 * dma-direct (a segment per entry) and through the IOMMU (one merged segment), and a released
 * mapping is found by an address in any of its DMA ranges, never by one in a gap between them.
 * Held to a model built from the list; planted: a later range ignored by the overlap test, or a
 * merge that joins ranges that do not touch, fails it. Also: iommuDmaMapSg lends its scatterlist
 * cursor to dom.mapSg, and a nested call from inside it does not move the outer call's cursor.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, GFP_KERNEL, Machine, Rng, SgTable, createContext, dma_map_sgtable, dma_unmap_sgtable, iommuDmaMapSg, sg_alloc_table,
  sg_alloc_table_from_pages_segment, sg_free_table, sg_set_page, type AddrRange, type IommuSgDomain, type Scatterlist,
} from '../../src/index.ts';
import { appendMerged, mergeAdjacent } from '../../src/dma/ledger/entry.ts';

const P = 4096;

/** The merge rule on range objects, written plainly. */
function model(ranges: AddrRange[]): AddrRange[] {
  const out: AddrRange[] = [];
  for (const r of ranges) {
    if (r.end <= r.start) continue;
    const last = out.at(-1);
    if (last !== undefined && last.end === r.start) out[out.length - 1] = { start: last.start, end: r.end };
    else out.push({ ...r });
  }
  return out;
}

function machine(iommu: boolean) {
  const m = new Machine({ memory: '1G', swiotlb: false, ...(iommu ? { iommu: { mode: 'strict' as const } } : {}) });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
  m.pci.bind(dev, { name: 'drv', probe() {} });
  return { m, dev };
}

describe('ledger ranges of a scatterlist mapping', () => {
  it('appendMerged and mergeAdjacent follow the merge rule on random ranges', () => {
    const rng = new Rng(12);
    for (let round = 0; round < 300; round++) {
      const ranges: AddrRange[] = [];
      let at = rng.int(1000);
      for (let k = rng.int(12); k > 0; k--) {
        const len = rng.int(3) === 0 ? 0 : 1 + rng.int(50);
        ranges.push({ start: at, end: at + len });
        at += len + (rng.int(2) === 0 ? 0 : 1 + rng.int(20));
      }
      const want = model(ranges);
      expect(mergeAdjacent(ranges)).toEqual(want);
      const packed: number[] = [];
      let n = 0;
      for (const r of ranges) n = appendMerged(packed, n, r.start, r.end);
      expect(n).toBe(want.length);
      expect(Array.from({ length: n }, (_, i) => ({ start: packed[2 * i], end: packed[2 * i + 1] }))).toEqual(want);
    }
  });

  for (const iommu of [false, true]) {
    it(`${iommu ? 'IOMMU' : 'dma-direct'}: entry ranges match the list, and releases are found by every DMA range but not by gaps`, () => {
      const { m, dev } = machine(iommu);
      const rng = new Rng(iommu ? 7 : 8);
      const base = m.mm.alloc_pages(GFP_KERNEL, 6) as number;
      let checkedLater = 0;
      for (let round = 0; round < 40; round++) {
        // Pages of the block, some adjacent (they merge on the CPU side), some apart.
        const pages: number[] = [];
        let pfn = base + rng.int(4);
        for (let k = 2 + rng.int(10); k > 0 && pfn < base + 64; k--) {
          pages.push(pfn);
          pfn += 1 + (rng.int(2) === 0 ? 0 : 1 + rng.int(3));
        }
        const sgt = new SgTable(m);
        // One page per entry (max segment 4 KiB), so dma-direct makes a segment per entry.
        expect(sg_alloc_table_from_pages_segment(sgt, pages, pages.length, 0, pages.length * P, P, GFP_KERNEL)).toBe(0);
        expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
        const e = m.dma.ledger.entries(dev).find((x) => x.type === 'sg');
        expect(e).toBeDefined();
        const cpu = model(pages.map((p) => ({ start: p * P, end: (p + 1) * P })));
        const dma: AddrRange[] = [];
        let sg: Scatterlist | null = sgt.sgl;
        for (let i = 0; i < sgt.nents; i++) { dma.push({ start: sg!.dma_address, end: sg!.dma_address + sg!.dma_length }); sg = sg!.at(1); }
        expect(e!.cpu).toEqual(cpu);
        expect(e!.dma).toEqual(model(dma));
        expect(e!.describe()).toContain(model(dma).length > 1 ? `${model(dma).length} segments` : 'by 0000:01:00.0');
        dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE);
        m.clock.advance(5);
        // Every DMA range names this release; an address in a gap between two names nothing newer.
        const ranges = model(dma);
        for (const [k, r] of ranges.entries()) {
          const hit = m.dma.ledger.releasedCovering(dev, r.end - 1, r.end);
          expect(hit?.releasedTime).toBe(m.clock.now - 5);
          if (k > 0) checkedLater++;
          const next = ranges[k + 1];
          if (next !== undefined && next.start > r.end) {
            const gap = m.dma.ledger.releasedCovering(dev, r.end, r.end + 1);
            expect(gap === undefined || gap.releasedTime < m.clock.now - 5).toBe(true);
          }
        }
        sg_free_table(sgt);
      }
      // dma-direct gives lists of several DMA ranges: the ranges after the first were looked up.
      if (!iommu) expect(checkedLater).toBeGreaterThan(20);
    });
  }

  it('a nested iommuDmaMapSg from inside dom.mapSg leaves the outer cursor where it was', () => {
    const list = (pfns: number[]) => {
      const sgt = new SgTable(createContext('t'));
      sg_alloc_table(sgt, pfns.length, GFP_KERNEL);
      let sg: Scatterlist | null = sgt.sgl;
      for (const p of pfns) { sg_set_page(sg!, p, P, 0); sg = sg!.at(1); }
      return sgt;
    };
    const outer = list([10, 20, 30]);
    const inner = list([100, 200]);
    const seen: number[] = [];
    const dom = (nest: boolean): IommuSgDomain => ({
      granule: P,
      allocIova: (size) => 2 ** 32 - size,
      freeIova() {},
      mapSg(iova, sg, nents) {
        seen.push(sg.phys(0));
        if (nest) expect(iommuDmaMapSg(dom(false), { boundaryMask: 2 ** 64, maxSegSize: 65536 }, inner.sgl!, 2)).toBeGreaterThan(0);
        for (let i = 1; i < nents; i++) seen.push(sg.phys(i));
        return nents * P;
      },
    });
    expect(iommuDmaMapSg(dom(true), { boundaryMask: 2 ** 64, maxSegSize: 65536 }, outer.sgl!, 3)).toBeGreaterThan(0);
    // Outer entry 0, the inner list's entries (from its own cursor), then outer entries 1 and 2.
    expect(seen).toEqual([10 * P, 100 * P, 200 * P, 20 * P, 30 * P]);
  });
});
