/**
 * The ledger's memory of released single mappings (what names the unmap in an access-after-unmap
 * finding): the newest released mapping covering an address, before and after its ring of 1024
 * wraps; older ones are forgotten. Checked against the order the test released them in.
 */
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE, DMA_TO_DEVICE, LEDGER_HISTORY, Machine, dma_map_page_attrs, dma_map_single, dma_mapping_error, dma_unmap_page, dma_unmap_single } from '../../src/index.ts';

describe('releasedCovering', () => {
  it('names the newest released single covering an address, across the wrap', () => {
    const m = new Machine({ memory: '1G', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const bufs = Array.from({ length: 300 }, () => m.mm.kmalloc(256) as number);
    // Released only at the start: remembered, then forgotten once 1024 newer ones came.
    const early = Array.from({ length: 50 }, () => m.mm.kmalloc(256) as number);
    const released: number[] = [];
    const times: number[] = [];
    for (let n = 0; n < 2600; n++) {
      // Buffers come round again, so several released mappings share an address: the newest wins.
      const virt = n < early.length ? early[n] as number : bufs[(n * 7) % bufs.length] as number;
      const addr = dma_map_single(dev, virt, 256, DMA_TO_DEVICE);
      expect(dma_mapping_error(dev, addr)).toBe(0);
      dma_unmap_single(dev, addr, 256, DMA_TO_DEVICE);
      released.push(addr);
      times.push(m.clock.now);
      m.clock.advance(10);
      if (n === 500 || n === LEDGER_HISTORY - 1 || n === LEDGER_HISTORY || n === 2599) {
        const remembered = released.slice(-LEDGER_HISTORY);
        const rememberedTimes = times.slice(-LEDGER_HISTORY);
        for (const virtQ of [...bufs.slice(0, 40), ...early.slice(0, 20)]) {
          const a = m.mm.virt_to_phys(virtQ);
          const hit = m.dma.ledger.releasedCovering(dev, a + 3, a + 4);
          const newest = remembered.lastIndexOf(a);
          if (newest < 0) expect(hit).toBeUndefined();
          else {
            expect(hit?.dmaStart).toBe(a);
            if (early.includes(virtQ)) expect(n).toBeLessThan(LEDGER_HISTORY + early.length);
            // The newest such release, by its time.
            expect(hit?.releasedTime).toBe(rememberedTimes[newest]);
          }
        }
      }
    }
  });

  it('keeps every field of a released single: the finding names what was mapped and who unmapped it', () => {
    const m = new Machine({ memory: '1G', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const pfn = m.mm.alloc_pages(0, 0) as number;
    m.clock.advance(12_345);
    const t0 = m.clock.now;
    const addr = dma_map_page_attrs(dev, pfn, 256, 1000, DMA_FROM_DEVICE, 0);
    m.clock.advance(777);
    dma_unmap_page(dev, addr, 1000, DMA_FROM_DEVICE);
    const hit = m.dma.ledger.releasedCovering(dev, addr + 10, addr + 11);
    expect(hit).toMatchObject({
      type: 'single', device: dev, dir: DMA_FROM_DEVICE, size: 1000, api: 'dma_map_page_attrs', time: t0,
      dmaStart: addr, dmaEnd: addr + 1000, cpuStart: pfn * 4096 + 256, cpuEnd: pfn * 4096 + 1256,
      releasedApi: 'dma_unmap_page', releasedTime: t0 + 777,
    });
    // Its id is its place in the machine's sequence: the next mapping gets the next one.
    const next = dma_map_page_attrs(dev, pfn, 0, 64, DMA_TO_DEVICE, 0);
    expect(m.dma.ledger.entries(dev).find((e) => e.dmaStart === next)?.id).toBe((hit?.id as number) + 1);
    dma_unmap_page(dev, next, 64, DMA_TO_DEVICE);
  });
});
