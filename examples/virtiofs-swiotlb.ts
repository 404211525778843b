/**
 * A 1 MiB single mapping on a swiotlb=force guest fails as virtio-fs did ("swiotlb buffer is full"):
 * swiotlb cannot bounce more than 256 KiB at once. The fix: clamp each mapping to
 * dma_max_mapping_size().
 * Run: npx dmasim run examples/virtiofs-swiotlb.ts
 */
import { DMA_TO_DEVICE, GFP_KERNEL, buildMachine, dma_map_page_attrs, dma_mapping_error, dma_max_mapping_size, dma_unmap_page_attrs, preset } from '../src/index.ts';

export default function virtiofsSwiotlb(): string {
  const { machine, devices } = buildMachine(preset('confidential-vm'));
  const dev = devices['virtio0']!;
  machine.pci.bind(dev, { name: 'virtiofs', probe() {} });
  const size = 1 << 20;
  const pfn = machine.mm.alloc_pages(GFP_KERNEL, 8)!; // 1 MiB, physically contiguous
  const lines: string[] = [];
  const whole = dma_map_page_attrs(dev, pfn, 0, size, DMA_TO_DEVICE, 0);
  lines.push(`map 1 MiB at once: ${dma_mapping_error(dev, whole) === 0 ? 'ok' : 'DMA_MAPPING_ERROR'}`);
  const full = machine.klog.messages.find((m) => m.message.includes('swiotlb buffer is full'));
  if (full !== undefined) lines.push(`  kernel: ${full.message.trimEnd()}`);
  const max = dma_max_mapping_size(dev);
  lines.push(`dma_max_mapping_size = ${max} bytes: map in ${size / max} pieces`);
  let ok = 0;
  for (let off = 0; off < size; off += max) {
    const a = dma_map_page_attrs(dev, pfn + off / 4096, 0, max, DMA_TO_DEVICE, 0);
    if (dma_mapping_error(dev, a) === 0) {
      ok++;
      dma_unmap_page_attrs(dev, a, max, DMA_TO_DEVICE, 0);
    }
  }
  lines.push(`  ${ok} of ${size / max} pieces mapped`);
  return lines.join('\n');
}
