import { describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, GFP_KERNEL, Machine, PAGE_SIZE, SgTable, dma_map_page_attrs, dma_map_sgtable, dma_mapping_error,
  dma_unmap_page_attrs, sg_alloc_table_from_pages_segment,
} from '../../../src/index.ts';

function machineWithDriver() {
  const m = new Machine({ memory: '1G' });
  const dev = m.pci.addDevice({ name: '0000:02:00.0', dmaMask: 64 });
  return { m, dev };
}

const hex = (v: number): string => `0x${v.toString(16).padStart(16, '0')}`;

describe('dma-debug through the DMA API', () => {
  it('is on by default and reports an unchecked mapping at unmap, in the kernel words', () => {
    const { m, dev } = machineWithDriver();
    m.pci.bind(dev, { name: 'nvme', probe() {} });
    const addr = dma_map_page_attrs(dev, 0x1000, 0, PAGE_SIZE, DMA_TO_DEVICE, 0);
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_TO_DEVICE, 0);
    expect(m.dmaDebug?.error_count).toBe(1);
    expect(m.dmaDebug?.reports.at(-1)?.text).toBe(`DMA-API: nvme 0000:02:00.0: device driver failed to check map error[device address=${hex(addr)}] [size=4096 bytes] [mapped as phy]`);
  });

  it('a checked mapping is silent', () => {
    const { m, dev } = machineWithDriver();
    m.pci.bind(dev, { name: 'nvme', probe() {} });
    const addr = dma_map_page_attrs(dev, 0x1000, 0, PAGE_SIZE, DMA_TO_DEVICE, 0);
    expect(dma_mapping_error(dev, addr)).toBe(0);
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_TO_DEVICE, 0);
    expect(m.dmaDebug?.error_count).toBe(0);
    expect(m.audit()).toEqual([]);
  });

  it('a mapping leaked at unbind is reported naming the bus, and the audit sees the live entry', () => {
    const { m, dev } = machineWithDriver();
    const area = m.mm.vmalloc(3 * PAGE_SIZE)!;
    const sgt = new SgTable(m);
    m.pci.bind(dev, {
      name: 'leaky',
      probe(d) {
        sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
        expect(dma_map_sgtable(d, sgt, DMA_TO_DEVICE, 0)).toBe(0);
      },
    });
    m.pci.unbind(dev);
    const leak = m.dmaDebug?.reports.find((r) => r.text.includes('leaked'))?.text;
    expect(leak).toMatch(/^DMA-API: pci 0000:02:00\.0: device driver has pending DMA allocations while released from device \[count=\d+\]/);
    expect(m.audit().some((v) => v.check === 'dma-debug')).toBe(false); // live entries are not corruption
    expect(m.dmaDebug?.entryCount(dev)).toBeGreaterThan(0);
  });

  it('can be turned off per machine', () => {
    const m = new Machine({ memory: '64M', dmaDebug: false });
    expect(m.dmaDebug).toBeNull();
  });
});

describe('the machine architecture', () => {
  it('arm64: devices are non-coherent by default and dma-debug checks cache-line overlap; x86_64 stays silent', () => {
    for (const arch of ['x86_64', 'arm64'] as const) {
      const m = new Machine({ memory: '1G', arch });
      const dev = m.pci.addDevice({ name: 'a', dmaMask: 64 });
      expect(dev.dma_coherent).toBe(arch === 'x86_64');
      m.pci.bind(dev, { name: 'ov', probe() {} });
      const base = m.mm.kmalloc(256)!;
      const a = dma_map_page_attrs(dev, Math.floor((base - 2 ** 52) / PAGE_SIZE), (base - 2 ** 52) % PAGE_SIZE, 32, 2, 0);
      dma_mapping_error(dev, a);
      // dma-debug numbers cache lines by L1_CACHE_SHIFT (64 bytes): 32 bytes further is the same line.
      const b = dma_map_page_attrs(dev, Math.floor((base - 2 ** 52) / PAGE_SIZE), ((base - 2 ** 52) % PAGE_SIZE) + 32, 32, 2, 0);
      dma_mapping_error(dev, b);
      const overlap = m.dmaDebug!.reports.some((r) => r.text.includes('cacheline tracking EEXIST'));
      expect(overlap, arch).toBe(arch === 'arm64');
    }
  });
});
