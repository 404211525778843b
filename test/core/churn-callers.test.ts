/**
 * What callers of ChurnMap show in order (a helper's review: its order is not a Map's once a key
 * is deleted and added back): vmalloc areas in address order, also while freed during the walk;
 * dma-debug's cachelines in line order; a failure point's leaked kmalloc buffers lowest first.
 */
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE, GFP_KERNEL, Machine, PAGE_SIZE, dma_map_single, dma_mapping_error, dma_unmap_single } from '../../src/index.ts';
import { forEachFailurePoint, testMachine } from '../../src/testing/index.ts';

describe('orders that show, over ChurnMaps', () => {
  it('vmAreas(): address order; freeing areas (and others further on) during the walk is safe', () => {
    // Planted: iterating the index's ChurnMap instead of the sorted starts gives insertion order;
    // a walk without skipping freed areas hands back one already freed (vfree then throws).
    const m = new Machine({ memory: '256M', swiotlb: false, dmaDebug: false });
    const areas = Array.from({ length: 300 }, () => m.mm.vmalloc(3 * PAGE_SIZE) as NonNullable<ReturnType<typeof m.mm.vmalloc>>);
    // Free every third 3-page area and allocate 1-page ones: two fit each hole (each with its
    // guard page), the second at an address never used before, below every later area.
    for (let i = 0; i < 300; i += 3) m.mm.vfree(areas[i] as (typeof areas)[number]);
    for (let i = 0; i < 200; i++) m.mm.vmalloc(PAGE_SIZE);
    const starts = [...m.mm.vmAreas()].map((a) => a.addr);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    const partnerOf = new Map(starts.map((s, i) => [s, starts[(i + 150) % starts.length] as number]));
    let visited = 0;
    for (const a of m.mm.vmAreas()) {
      visited++;
      const partner = m.mm.findVmArea(partnerOf.get(a.addr) as number);
      m.mm.vfree(a);
      if (partner !== undefined && partner !== a) m.mm.vfree(partner);
    }
    expect([...m.mm.vmAreas()]).toEqual([]);
    expect(visited).toBeLessThan(starts.length);
  });

  it('dma-debug cachelines(): line order, whatever order lines were claimed, released and claimed again', () => {
    const m = new Machine({ memory: '256M', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const bufs = [m.mm.kmalloc(64, GFP_KERNEL), m.mm.kmalloc(64, GFP_KERNEL), m.mm.kmalloc(64, GFP_KERNEL)] as number[];
    const map = (v: number): number => { const a = dma_map_single(dev, v, 64, DMA_FROM_DEVICE); expect(dma_mapping_error(dev, a)).toBe(0); return a; };
    const a2 = map(bufs[2] as number);
    map(bufs[0] as number);
    map(bufs[1] as number);
    dma_unmap_single(dev, a2, 64, DMA_FROM_DEVICE);
    map(bufs[2] as number);
    const lines = (m.dmaDebug as NonNullable<typeof m.dmaDebug>).cachelines().map((l) => l.cln);
    expect(lines).toHaveLength(3);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('a failure point\'s leaked kmalloc buffers are named lowest address first', () => {
    // The op empties a slab page (freed to the buddy allocator) after filling a second, then
    // leaks small buffers from the first page, reused: their addresses come after the second
    // page's buffer in the slab's own order, below it in memory (planted: no sort).
    {
      const runs = forEachFailurePoint('page', () => testMachine(), ({ machine }) => {
        const [a, b] = [machine.mm.kmalloc(2048), machine.mm.kmalloc(2048), machine.mm.kmalloc(2048)];
        machine.mm.kfree(a);
        machine.mm.kfree(b);
        for (let i = 0; i < 3; i++) machine.mm.kmalloc(64);
        return 0;
      });
      const leak = runs.at(-1)?.violations.find((v) => /kmalloc buffer/.test(v.message))?.message ?? '';
      const shown = [...leak.matchAll(/at 0x([0-9a-f]+)/g)].map((x) => parseInt(x[1] as string, 16));
      expect(leak).toMatch(/left allocated: 4 kmalloc buffers/);
      expect(shown).toHaveLength(4);
      expect(shown).toEqual([...shown].sort((a, b) => a - b));
    }
  });
});
