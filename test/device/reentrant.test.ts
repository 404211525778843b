/**
 * Issue 19, items 6 and 7: re-entrant bind/unbind is refused (the kernel would deadlock on
 * device_lock) and the outer call still cleans up; logs that a misbehaving driver floods stay
 * bounded, counting what they dropped.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_FAULTS_MAX, DMA_TO_DEVICE, GFP_KERNEL, KLOG_MAX, KernelBug, Machine, OwnedSGTable, USE_AFTER_UNMAP_MAX, VVec,
  dma_map_page_attrs, dma_mapping_error, dma_unmap_page_attrs, type Core, type Device,
} from '../../src/index.ts';
import { dmaFindings } from '../../src/testing/index.ts';

describe('re-entrant bind and unbind', () => {
  it('remove() calling unbind(): KernelBug, and the outer unbind still unmaps the table, releases devres and reports nothing stale', () => {
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    let table: OwnedSGTable<VVec> | undefined;
    m.pci.bind(dev, {
      name: 'loopy',
      probe(d: Device<Core>) { table = OwnedSGTable.create(d, VVec.create(m.mm, 64 * 1024), DMA_TO_DEVICE, GFP_KERNEL); },
      remove() { m.pci.unbind(dev); },
    });
    expect(() => m.pci.unbind(dev)).toThrow(KernelBug);
    expect(dev.isBound).toBe(false);
    expect(table!.mapped).toBe(false);
    expect(dev.devres.size).toBe(0);
    expect(m.dmaDebug!.error_count).toBe(0);
    expect(m.audit()).toEqual([]);
    expect(dmaFindings(m, { kinds: ['leaked-mapping'] })).toEqual([]);
    table![Symbol.dispose]();
  });

  it('probe() binding its own device again: KernelBug, the probe fails cleanly', () => {
    const m = new Machine({ memory: '256M' });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    const drv = { name: 'again', probe() { m.pci.bind(dev, drv); } };
    expect(() => m.pci.bind(dev, drv)).toThrow(KernelBug);
    expect(dev.isBound).toBe(false);
    expect(m.pci.bind(dev, { name: 'fine', probe() {} })).toBe(0);
  });
});

describe('bounded logs under a misbehaving driver', () => {
  it('device faults, use-after-unmap events and kernel WARNs keep the newest and count the dropped', () => {
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' }, dmaDebug: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'bad', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0);
    dma_mapping_error(dev, addr);
    dma_unmap_page_attrs(dev, addr, 4096, DMA_TO_DEVICE, 0);
    for (let i = 0; i < 3 * DMA_FAULTS_MAX; i++) dev.dma.read(addr, 4);
    expect(dev.dma.faults.length).toBeLessThanOrEqual(DMA_FAULTS_MAX);
    expect(dev.dma.faults.length + dev.dma.faultsDropped).toBe(3 * DMA_FAULTS_MAX);
    const t = m.iommuTranslator!;
    expect(t.useAfterUnmap.length).toBeLessThanOrEqual(USE_AFTER_UNMAP_MAX);
    expect(t.useAfterUnmap.length + t.useAfterUnmapDropped).toBe(3 * DMA_FAULTS_MAX);
    for (let i = 0; i < KLOG_MAX + 100; i++) m.klog.warn('bad_driver', `WARN_ON(x) #${i}`);
    expect(m.klog.messages.length).toBeLessThanOrEqual(KLOG_MAX);
    expect(m.klog.warnCount).toBe(KLOG_MAX + 100);
    expect(m.klog.droppedWarnings).toBeGreaterThan(0);
    expect(m.klog.messages.at(-1)?.message).toBe(`WARN_ON(x) #${KLOG_MAX + 99}`);
    expect(dmaFindings(m, { kinds: ['warn'], audit: false }).at(-1)?.message).toMatch(/older WARNs were dropped/);
  });
});
