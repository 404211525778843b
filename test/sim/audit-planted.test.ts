/**
 * Audit checks made cheaper for failure sweeps (issue 20, session 9) still fire: dma-debug's hash
 * walk now skips blocks of empty buckets with a native compare, and the IOMMU audit finds a
 * flush-queue entry's range by bisection. Each planted corruption is reported; a clean machine
 * (after real traffic) is not.
 */
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE, dma_map_single, dma_mapping_error, dma_unmap_single } from '../../src/index.ts';
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

  it('iommu: a flush-queue entry that is not an allocated IOVA', () => {
    const { machine: m } = busy();
    const domain = m.iommu?.domains.find((d) => d.fq !== null);
    if (domain?.fq == null) throw new Error('no flush queue');
    // An IOVA page far below anything the allocator hands out (it allocates top-down).
    domain.fq.queue(0x10, 1, [], 0);
    expect(m.audit().map((v) => v.message)).toContain(`domain ${domain.id}: flush-queue entry 0x${(0x10 * m.iommu!.granule).toString(16)} is not an allocated IOVA`);
  });
});
