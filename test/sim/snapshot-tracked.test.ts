/**
 * Tables a snapshot captures copy on write (core/tracked-arrays: the IOMMU's unmap history, the
 * IOTLB, dma-debug's hash buckets, the ledger's lane counts) come back exactly at every restore:
 * a seeded workload of maps, unmaps, device accesses (IOTLB fills) and clock advances (lazy flushes)
 * takes snapshots along the way; each is then restored, in a shuffled order and again after more
 * work, and the tables must read as they did at its capture. A write that is not announced to the
 * tracker leaves the later value in place, which this catches (the whole-workload comparison in
 * snapshot.test.ts does not: the second run overwrites the same slots with the same values).
 */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, Machine, Rng, dma_map_single, dma_mapping_error, dma_unmap_single, type Device, type MachineOptions } from '../../src/index.ts';

interface Live { dev: number; virt: number; addr: number; size: number; dir: number }

/** The tracked tables, raw (their internal arrays) and as the public views show them. */
function tables(m: Machine): string {
  const iommu = m.iommu as unknown as Record<string, ArrayLike<number>> & NonNullable<Machine['iommu']>;
  const tlb = iommu.iotlb as unknown as Record<string, ArrayLike<number>> & NonNullable<Machine['iommu']>['iotlb'];
  const table = (m.dmaDebug as unknown as { _st: { table: { head: Int32Array; tail: Int32Array } } })._st.table;
  const ledger = m.dma.ledger as unknown as { _laneAddrCount: Int32Array };
  const raw = (a: ArrayLike<number>): number[] => Array.from(a);
  return JSON.stringify({
    unmaps: iommu.unmaps,
    ring: ['_uDevice', '_uVia', '_uDomain', '_uIova', '_uSize', '_uTime', '_uLazy'].map((k) => raw(iommu[k] as ArrayLike<number>)),
    tlbEntries: [...tlb.entries()],
    tlb: ['keyAsid', 'keyGfn', 'keyShift', 'pagePhys', 'pageIova', 'pageSize', 'perm', 'epoch'].map((k) => raw(tlb[k] as ArrayLike<number>)),
    buckets: [raw(table.head), raw(table.tail)],
    lane: raw(ledger._laneAddrCount),
  });
}

function step(m: Machine, devs: Device[], live: Live[], rng: Rng): void {
  const r = rng.int(10);
  if (r < 4 || live.length === 0) {
    const dev = rng.int(devs.length);
    const size = 1 + rng.int(3 * 4096);
    const virt = m.mm.kmalloc(size);
    if (virt === null) return;
    const dir = [DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL][rng.int(3)] as number;
    const addr = dma_map_single(devs[dev] as Device, virt, size, dir);
    if (dma_mapping_error(devs[dev] as Device, addr) !== 0) { m.mm.kfree(virt); return; }
    live.push({ dev, virt, addr, size, dir });
  } else if (r < 7) {
    const l = live.splice(rng.int(live.length), 1)[0] as Live;
    dma_unmap_single(devs[l.dev] as Device, l.addr, l.size, l.dir);
    m.mm.kfree(l.virt);
  } else if (r < 9) {
    // A device access fills the IOTLB (and confirms entries' epochs after later unmaps).
    const l = live[rng.int(live.length)] as Live;
    const d = devs[l.dev] as Device;
    if (l.dir === DMA_FROM_DEVICE) d.dma.write(l.addr, new Uint8Array(Math.min(l.size, 64)).fill(r));
    else d.dma.read(l.addr, Math.min(l.size, 64));
  } else {
    m.clock.advance(rng.int(3) === 0 ? 20_000_000 : 1000); // past a lazy flush timeout at times
  }
}

const MODES: Record<string, Partial<MachineOptions>> = {
  strict: { iommu: { mode: 'strict', iotlbSize: 64 } },
  lazy: { iommu: { mode: 'lazy', iotlbSize: 64 } },
};

describe('copy-on-write tables come back at every restore', () => {
  for (const [name, opts] of Object.entries(MODES)) {
    it(`${name}: the unmap history, IOTLB, dma-debug buckets and lane counts`, () => {
      const m = new Machine({ memory: '256M', seed: 3, ...opts });
      const devs = [0, 1].map((i) => {
        const d = m.pci.addDevice({ name: `0000:0${i + 1}:00.0`, dmaMask: 64 });
        m.pci.bind(d, { name: `drv${i}`, probe() {} });
        return d;
      });
      const rng = new Rng(11);
      const live: Live[] = [];
      const snaps: Array<{ snap: ReturnType<Machine['snapshot']>; want: string; live: Live[] }> = [];
      // A small IOTLB (64 entries) wraps and resets; 5,000 unmaps wrap the 4,096-record history.
      for (let i = 0; i < 9000; i++) {
        step(m, devs, live, rng);
        if (i % 1500 === 700) snaps.push({ snap: m.snapshot({ include: [live] }), want: tables(m), live: live.slice() });
      }
      expect(snaps.length).toBeGreaterThan(4);
      const order = snaps.map((_, k) => k).sort(() => rng.int(3) - 1);
      for (const k of order) {
        const s = snaps[k] as (typeof snaps)[number];
        m.restore(s.snap);
        expect(tables(m)).toBe(s.want);
        // More work after the restore, then the same snapshot again: the restore's own writes
        // back were tracked too.
        for (let i = 0; i < 300; i++) step(m, devs, live, rng);
        m.restore(s.snap);
        expect(tables(m)).toBe(s.want);
        expect(live).toEqual(s.live);
      }
    });
  }
});
