/**
 * A 32-bit device on a machine with RAM above 4 GiB and no IOMMU: buffers above 4 GiB bounce
 * through swiotlb, so the device sees the data only through the kernel's copies.
 * Run: npx dmasim run examples/bounce-32bit.ts
 */
import { DMA_BIDIRECTIONAL, GFP_KERNEL, buildMachine, dma_map_page_attrs, dma_mapping_error, dma_unmap_page_attrs, preset } from '../src/index.ts';

export default function bounce32bit(): string {
  const { machine, devices } = buildMachine(preset('embedded-32bit'));
  const dev = devices['dma-engine@ff000000']!;
  machine.platform.bind(dev, { name: 'xdma', probe() {} });
  const pfn = machine.mm.alloc_pages(GFP_KERNEL, 0)!;
  machine.mm.writePhys(pfn * 4096, new Uint8Array([42]));
  const addr = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_BIDIRECTIONAL, 0);
  dma_mapping_error(dev, addr);
  const bounced = machine.swiotlb?.is_swiotlb_buffer(addr) ?? false;
  const seen = dev.dma.read(addr, 1);
  dev.dma.write(addr, new Uint8Array([7]));
  // A peek by the simulator, not by the driver: the device still owns the buffer, so a driver read
  // here would be a cpu-access-device-owned finding. kernelMemory is the unchecked view.
  const peek = new Uint8Array(1);
  machine.mm.kernelMemory.readPhysInto(pfn * 4096, peek, 0, 1);
  const before = peek[0];
  dma_unmap_page_attrs(dev, addr, 4096, DMA_BIDIRECTIONAL, 0);
  const after = machine.mm.readPhys(pfn * 4096, 1)[0];
  return [
    `buffer at 0x${(pfn * 4096).toString(16)} (above 4 GiB: ${pfn * 4096 >= 2 ** 32})`,
    `DMA address 0x${addr.toString(16)}: ${bounced ? 'a swiotlb bounce slot' : 'direct'}`,
    `device read ${seen.ok ? seen.value[0] : 'fault'} (copied in at map time)`,
    `device wrote 7: CPU sees ${before} before unmap, ${after} after (copied back at unmap)`,
  ].join('\n');
}
