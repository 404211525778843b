import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, GFP_KERNEL, Machine, PAGE_SIZE, chromeTrace, dma_map_page_attrs, dma_mapping_error, dma_unmap_page_attrs, traceJsonLines } from '../../src/index.ts';

describe('the event trace', () => {
  it('records maps, unmaps, flushes, faults, WARNs and injected failures; exports JSON lines and Chrome trace events', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'lazy' }, trace: true });
    const dev = m.pci.addDevice({ name: 'nvme0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'nvme', probe() {} });
    const addr = dma_map_page_attrs(dev, 0x1234, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(dev, addr);
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    m.clock.advance(10e6); // the flush queue's timer: a full flush
    dev.dma.read(addr, 4); // now unmapped: a fault
    m.faults.inject('page', { nth: 1 });
    m.mm.alloc_pages(GFP_KERNEL, 0);
    dma_unmap_page_attrs(dev, 0x5000_0000, 4096, DMA_BIDIRECTIONAL, 0); // WARN: no translation
    const kinds = new Set(m.trace.events.map((e) => e.kind));
    for (const k of ['map', 'unmap', 'flush', 'fault', 'inject', 'warn']) expect(kinds.has(k), k).toBe(true);
    const lines = traceJsonLines(m.trace).split('\n').map((l) => JSON.parse(l) as { kind: string; time: number });
    expect(lines.length).toBe(m.trace.events.length);
    const ct = chromeTrace(m.trace);
    expect(ct.traceEvents.some((e) => (e as { ph: string }).ph === 'M')).toBe(true);
    expect(ct.traceEvents.filter((e) => (e as { ph: string }).ph === 'i').length).toBe(m.trace.events.length);
  });

  it('costs nothing when off: no events', () => {
    const m = new Machine({ memory: '64M' });
    expect(m.trace.enabled).toBe(false);
    m.mm.alloc_pages(GFP_KERNEL, 0);
    expect(m.trace.events).toHaveLength(0);
  });
});
