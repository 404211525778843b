/**
 * @module sim/audit-dma
 * dma-debug's view against the mappings that exist: every live dma-debug entry must point at a real
 * mapping (a translated IOVA in the device's DMA domain; on dma-direct its own physical address or a
 * live swiotlb bounce slot). The reverse does not hold: boundary padding maps granules no segment
 * covers.
 */
import type { Device } from '../device/device.ts';
import type { Machine } from './machine.ts';
import { sg_dma_is_swiotlb, type Scatterlist } from '../scatterlist/entry.ts';

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

/**
 * A scatterlist mapped by a device that does not bounce, still carrying SG_DMA_SWIOTLB from an
 * earlier mapping by an untrusted device. The kernel never clears the flag on unmap either, so
 * dma_unmap_sg will take the bounce path and unmap the segments one by one with the wrong sizes:
 * named here while the mapping is live, before the damage.
 * @example machine.auditor.add({ name: 'sg swiotlb flag', run: () => auditStaleSwiotlbFlag(machine) })
 */
export function auditStaleSwiotlbFlag(m: Machine): string[] {
  const out: string[] = [];
  for (const e of m.dma.ledger.entries()) {
    if (e.type !== 'sg' || e.device.untrusted || !sg_dma_is_swiotlb(e.key as Scatterlist)) continue;
    out.push(`${e.describe()}: SG_DMA_SWIOTLB is still set from an earlier bounced mapping of this table (the kernel keeps it too); dma_unmap_sg will unmap it entry by entry as bounce buffers, with the wrong sizes. Use a fresh table per device.`);
  }
  return out;
}
