/**
 * The ledger's fast lane of single mappings: mapped in order, unmapped in any order (a ring refilled
 * oldest first moves the lane's head; others shift), drained into entries by any lookup. Held to a
 * model list of live mappings: after every step the ledger's live entries, in mapping order, and
 * the newest released mapping of an address agree with it, across head moves and compactions.
 */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, Machine, Rng, dma_map_single, dma_mapping_error, dma_unmap_single } from '../../src/index.ts';

describe('ledger fast lane', () => {
  it('agrees with a model under FIFO, LIFO and random unmaps, with drains in between', () => {
    const m = new Machine({ memory: '1G', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const rng = new Rng(48);
    const bufs = Array.from({ length: 400 }, () => m.mm.kmalloc(512) as number);
    let free = bufs.slice();
    const live: { addr: number; virt: number }[] = [];
    const ledger = m.dma.ledger;
    for (let step = 0; step < 6000; step++) {
      const mode = Math.floor(step / 500) % 3; // FIFO, LIFO, random
      if ((live.length < 200 && rng.int(2) === 0) || live.length === 0) {
        // Fill a burst, as a ring refill does.
        for (let k = 0; k < 1 + rng.int(100) && free.length > 0; k++) {
          const virt = free.pop() as number;
          const addr = dma_map_single(dev, virt, 512, DMA_FROM_DEVICE);
          expect(dma_mapping_error(dev, addr)).toBe(0);
          live.push({ addr, virt });
        }
      } else {
        for (let k = 0; k < 1 + rng.int(90) && live.length > 0; k++) {
          const i = mode === 0 ? 0 : mode === 1 ? live.length - 1 : rng.int(live.length);
          const [l] = live.splice(i, 1) as [{ addr: number; virt: number }];
          dma_unmap_single(dev, l.addr, 512, DMA_FROM_DEVICE);
          free.push(l.virt);
          m.clock.advance(1);
        }
      }
      if (step % 37 === 0) {
        // A lookup drains the lane: the entries are the live mappings, in mapping order.
        expect(ledger.entries(dev).map((e) => e.dmaStart)).toEqual(live.map((l) => l.addr));
      }
    }
    expect(ledger.entries(dev).map((e) => e.dmaStart)).toEqual(live.map((l) => l.addr));
    for (const l of live.splice(0)) dma_unmap_single(dev, l.addr, 512, DMA_FROM_DEVICE);
    expect(ledger.entries(dev)).toEqual([]);
    expect(m.dmaDebug?.error_count).toBe(0);
    free = [];
  });

  it('an unmap releases the newest mapping of its address, also when the oldest lane slot matches', () => {
    // Under dma-direct one buffer mapped twice has one bus address: the unmap takes the newest
    // mapping (the rule the lane has always had). The oldest slot is taken without a scan only
    // when no other lane slot holds the address (planted: taking it whenever it matches releases
    // the first mapping here; not counting a drained or spilled slot leaves a stale count).
    const m = new Machine({ memory: '1G', swiotlb: false, dmaDebug: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const ledger = m.dma.ledger;
    const x = m.mm.kmalloc(512) as number;
    const a1 = dma_map_single(dev, x, 512, DMA_TO_DEVICE);
    const a2 = dma_map_single(dev, x, 256, DMA_FROM_DEVICE);
    expect(a2).toBe(a1);
    dma_unmap_single(dev, a1, 256, DMA_FROM_DEVICE);
    expect(ledger.entries(dev).map((e) => [e.size, e.dir])).toEqual([[512, DMA_TO_DEVICE]]);
    dma_unmap_single(dev, a1, 512, DMA_TO_DEVICE);
    expect(ledger.entries(dev)).toEqual([]);

    // A model over a small pool of buffers (duplicates often), oldest-first unmaps (the head's
    // case), random ones, and drains (entries() turns the lane into entries) in between.
    const rng = new Rng(7);
    const pool = Array.from({ length: 24 }, () => m.mm.kmalloc(512) as number);
    const dirs = [DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL];
    const live: { addr: number; size: number; dir: number }[] = [];
    for (let step = 0; step < 20000; step++) {
      if (live.length === 0 || (live.length < 150 && rng.int(2) === 0)) {
        const size = 64 * (1 + rng.int(8));
        const dir = dirs[rng.int(3)] as number;
        const addr = dma_map_single(dev, pool[rng.int(pool.length)] as number, size, dir);
        live.push({ addr, size, dir });
      } else {
        // The address of the oldest live mapping most of the time, else any.
        const { addr } = live[rng.int(4) === 0 ? rng.int(live.length) : 0] as { addr: number };
        let newest = -1;
        for (let i = live.length - 1; i >= 0; i--) if ((live[i] as { addr: number }).addr === addr) { newest = i; break; }
        const [gone] = live.splice(newest, 1) as [{ addr: number; size: number; dir: number }];
        dma_unmap_single(dev, addr, gone.size, gone.dir);
      }
      if (step % 101 === 0) {
        // The INVARIANT of the lane's address counts: they sum to the slots in the lane, none below 0.
        const lane = ledger as unknown as { _laneAddrCount: Int32Array; _laneHead: number; _laneLen: number };
        expect(lane._laneAddrCount.reduce((a, c) => a + c, 0)).toBe(lane._laneLen - lane._laneHead);
        expect(Math.min(...lane._laneAddrCount)).toBeGreaterThanOrEqual(0);
      }
      if (step % 997 === 0) expect(ledger.entries(dev).map((e) => [e.dmaStart, e.size, e.dir])).toEqual(live.map((l) => [l.addr, l.size, l.dir]));
    }
    expect(ledger.entries(dev).map((e) => [e.dmaStart, e.size, e.dir])).toEqual(live.map((l) => [l.addr, l.size, l.dir]));
  });
});
