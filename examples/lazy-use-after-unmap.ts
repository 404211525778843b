/**
 * A device touching memory after the driver unmapped it: in lazy mode the stale IOTLB entry still
 * lets the write through until the flush queue runs; the use-after-unmap detector catches it and
 * names the unmap.
 * Run: npx dmasim run examples/lazy-use-after-unmap.ts
 */
import { DMA_FROM_DEVICE, GFP_KERNEL, buildMachine, dma_map_page_attrs, dma_mapping_error, dma_unmap_page_attrs, preset } from '../src/index.ts';

export default function lazyUseAfterUnmap(): string {
  const { machine, devices } = buildMachine(preset('laptop-nvme-vtd'));
  const nvme = devices['0000:02:00.0']!;
  machine.pci.bind(nvme, { name: 'nvme', probe() {} });
  const pfn = machine.mm.alloc_pages(GFP_KERNEL, 0)!;
  const addr = dma_map_page_attrs(nvme, pfn, 0, 4096, DMA_FROM_DEVICE, 0);
  dma_mapping_error(nvme, addr);
  nvme.dma.write(addr, new Uint8Array([1])); // the device uses the buffer: the IOTLB caches it
  dma_unmap_page_attrs(nvme, addr, 4096, DMA_FROM_DEVICE, 0); // the driver is done with it
  const late = nvme.dma.write(addr, new Uint8Array([0xbad & 0xff])); // ...but the device writes again
  machine.clock.advance(10e6); // the flush queue's timeout
  const later = nvme.dma.write(addr, new Uint8Array([2]));
  const uaf = machine.iommuTranslator!.useAfterUnmap;
  return [
    `write 1 µs after unmap: ${late.ok ? 'went through (stale IOTLB entry)' : 'faulted'}`,
    `write after the 10 ms flush: ${later.ok ? 'went through' : `faulted (${later.ok ? '' : later.fault.reason})`}`,
    ...uaf.map((u) => `detector: ${u.kind} ${u.access} by ${u.device} at IOVA 0x${u.iova.toString(16)}; unmapped by ${u.unmap?.via ?? '?'} at t=${u.unmap?.time ?? '?'} ns${u.unmap?.lazy ? ' (lazy)' : ''}`),
  ].join('\n');
}
