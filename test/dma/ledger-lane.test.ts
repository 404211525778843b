/**
 * The ledger's fast lane of single mappings: mapped in order, unmapped in any order (a ring refilled
 * oldest first moves the lane's head; others shift), drained into entries by any lookup. Held to a
 * model list of live mappings: after every step the ledger's live entries, in mapping order, and
 * the newest released mapping of an address agree with it, across head moves and compactions.
 */
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE, Machine, Rng, dma_map_single, dma_mapping_error, dma_unmap_single } from '../../src/index.ts';

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
});
