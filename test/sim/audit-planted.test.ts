/**
 * Audit checks made cheaper for failure sweeps (issue 20, sessions 9 and 10) still fire: dma-debug's
 * hash walk skips an all-empty table with one native compare per array and blocks of empty buckets
 * with one each, and the IOMMU audit finds a leaf's or a flush-queue entry's range by bisection.
 * Each planted corruption is reported; a clean machine (after real traffic) is not.
 */
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE, GFP_KERNEL, IOMMU_READ, IOMMU_WRITE, Machine, dma_map_single, dma_mapping_error, dma_unmap_single, iommu_map } from '../../src/index.ts';
import { testMachine } from '../../src/testing/index.ts';

function busy() {
  const t = testMachine({ iommu: { mode: 'lazy' } });
  t.machine.pci.bind(t.dev, { name: 'drv', probe() {} });
  const held: Array<[number, number]> = [];
  for (let i = 0; i < 24; i++) {
    const v = t.machine.mm.kmalloc(2048) as number;
    const a = dma_map_single(t.dev, v, 2048, DMA_FROM_DEVICE);
    expect(dma_mapping_error(t.dev, a)).toBe(0);
    held.push([v, a]);
  }
  // Half released (into the lazy flush queue), half still live in dma-debug.
  for (const [v, a] of held.splice(0, 12)) { dma_unmap_single(t.dev, a, 2048, DMA_FROM_DEVICE); t.machine.mm.kfree(v); }
  return t;
}

describe('planted corruption the cheaper audits still report', () => {
  it('a clean machine with live entries and a busy flush queue audits clean', () => {
    expect(busy().machine.audit()).toEqual([]);
  });

  it('dma-debug: a stray tail in a block of empty buckets, and a head pointing at a free slot', () => {
    for (const [bucket, plant] of [[300, 'tail'], [8000, 'head'], [16383, 'tail']] as const) {
      const { machine: m } = busy();
      const table = (m.dmaDebug as unknown as { _st: { table: { head: Int32Array; tail: Int32Array; liveCount: number; total: number } } })._st.table;
      expect(table.head[bucket]).toBe(-1);
      // A slot past every live one: allocated by no mapping.
      table[plant][bucket] = table.total - 1;
      const found = m.audit().filter((v) => v.check === 'dma-debug').map((v) => v.message);
      expect(found.some((msg) => msg.startsWith(`bucket ${bucket}:`) || msg.includes(`in bucket ${bucket}`)), `${plant} of bucket ${bucket}: ${JSON.stringify(found)}`).toBe(true);
    }
  });

  it('dma-debug: a stray head or tail in a table with no live entry at all (the whole-table check)', () => {
    // An idle machine's table is all -1: the audit's one compare of each array must still see a
    // single stray word in either (planted: checking the heads only misses the tail).
    for (const [bucket, plant] of [[0, 'tail'], [9000, 'tail'], [16383, 'head']] as const) {
      const m = new Machine({ memory: '256M', iommu: { mode: 'lazy' } });
      const table = (m.dmaDebug as unknown as { _st: { table: { head: Int32Array; tail: Int32Array; liveCount: number; total: number } } })._st.table;
      expect(table.liveCount).toBe(0);
      expect(m.audit()).toEqual([]);
      table[plant][bucket] = table.total - 1;
      const found = m.audit().filter((v) => v.check === 'dma-debug').map((v) => v.message);
      expect(found.some((msg) => msg.startsWith(`bucket ${bucket}:`) || msg.includes(`in bucket ${bucket}`)), `${plant} of bucket ${bucket}: ${JSON.stringify(found)}`).toBe(true);
    }
  });

  it('dma-debug: a live count out of step hides no entry from entries() and is reported', () => {
    const { machine: m } = busy();
    const dbg = m.dmaDebug;
    if (dbg === null) throw new Error('no dma-debug');
    const live = dbg.entries().length;
    expect(live).toBe(12);
    (dbg as unknown as { _st: { table: { liveCount: number } } })._st.table.liveCount -= 2;
    expect(dbg.entries().length).toBe(live);
    expect(m.audit().map((v) => v.message)).toContain(`${live} entries listed, liveCount ${live - 2}`);
  });

  it('iommu: a page-table leaf outside every allocated IOVA: just past a range, and below all of them', () => {
    for (const where of ['past', 'below'] as const) {
      const { machine: m } = busy();
      const domain = m.iommu?.domains.find((d) => d.fq !== null);
      if (domain?.paging == null || domain.iovad === null) throw new Error('no DMA domain');
      const g = m.iommu!.granule;
      const ranges = domain.iovad.ranges().filter(([lo]) => lo < 2 ** 52);
      const starts = new Set(ranges.map(([lo]) => lo));
      // The page after some range that no other range starts at: unallocated, yet the range below
      // it is the one a search by start finds (planted: checking only that some range starts
      // below the leaf misses it).
      const pfn = where === 'past' ? (ranges.find(([, hi]) => !starts.has(hi + 1)) as [number, number])[1] + 1 : 0x10;
      const phys = (m.mm.alloc_pages(GFP_KERNEL, 0) as number) * 4096;
      expect(iommu_map(domain.paging, pfn * g, phys, g, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL)).toBe(0);
      expect(m.audit().map((v) => v.message)).toContain(`domain ${domain.id}: IOVA 0x${(pfn * g).toString(16)} is mapped in the page table but not allocated (or already free)`);
    }
  });

  it('iommu: a flush-queue entry that is not an allocated IOVA', () => {
    const { machine: m } = busy();
    const domain = m.iommu?.domains.find((d) => d.fq !== null);
    if (domain?.fq == null) throw new Error('no flush queue');
    // An IOVA page far below anything the allocator hands out (it allocates top-down).
    domain.fq.queue(0x10, 1, [], 0);
    expect(m.audit().map((v) => v.message)).toContain(`domain ${domain.id}: flush-queue entry 0x${(0x10 * m.iommu!.granule).toString(16)} is not an allocated IOVA`);
  });
});
