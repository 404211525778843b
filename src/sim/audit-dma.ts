/**
 * @module sim/audit-dma
 * dma-debug's view against the mappings that exist: every live dma-debug entry must point at a real
 * mapping (a translated IOVA in the device's DMA domain; on dma-direct its own physical address or a
 * live swiotlb bounce slot). The reverse does not hold: boundary padding maps granules no segment
 * covers.
 */
import type { Device } from '../device/device.ts';
import type { Machine } from './machine.ts';

/**
 * Violations (empty when dma-debug and the mappings agree).
 * @example machine.auditor.add({ name: 'dma-debug vs mappings', run: () => auditDmaDebugVsMappings(machine) })
 */
export function auditDmaDebugVsMappings(m: Machine): string[] {
  const dbg = m.dmaDebug;
  if (dbg === null || dbg.disabled) return [];
  const out: string[] = [];
  for (const e of dbg.entries()) {
    if (e.type === 'coherent' && e.size === 0) continue;
    const dev = e.dev as unknown as Device;
    const domain = m.iommu?.dmaDomainOf(dev);
    if (domain !== undefined && domain.isDma && domain.paging !== null) {
      if (domain.paging.pgtable.iova_to_phys(e.dev_addr) === 0) out.push(`dma-debug tracks a ${e.type} mapping of ${dev.name} at IOVA 0x${e.dev_addr.toString(16)}, but nothing is mapped there`);
      continue;
    }
    if (e.type === 'coherent') continue;
    const bounced = m.swiotlb?.findMapping(e.dev_addr) !== undefined;
    if (e.dev_addr !== e.paddr && !bounced) out.push(`dma-debug tracks a ${e.type} mapping of ${dev.name} at 0x${e.dev_addr.toString(16)} for phys 0x${e.paddr.toString(16)}, which is neither direct nor a live bounce slot`);
  }
  return out;
}
