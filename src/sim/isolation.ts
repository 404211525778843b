/**
 * @module sim/isolation
 * What the IOMMU configuration guarantees, in words: groups that share translations, identity
 * domains that isolate nothing, devices outside the IOMMU, and how long lazy mode leaves unmapped
 * memory reachable.
 */
import { Machine } from './machine.ts';
import { notInstance } from '../core/args.ts';

/**
 * One line per finding.
 * @example isolationReport(machine).forEach((l) => console.log(l))
 */
export function isolationReport(m: Machine): string[] {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'isolationReport', 'm');
  const out: string[] = [];
  const iommu = m.iommu;
  const devices = [...m.devices()];
  if (iommu === null) {
    if (devices.length > 0) out.push(`no IOMMU: ${devices.map((d) => d.name).join(', ')} can reach all of the memory its DMA mask covers`);
    return out;
  }
  for (const d of devices) if (iommu.groupOf(d) === undefined) out.push(`${d.name}: not behind the IOMMU: no isolation`);
  for (const g of iommu.groups) {
    const dom = g.domain;
    if (g.devices.length > 1) out.push(`group ${g.id}: ${g.devices.join(', ')} share one domain: each can use the others' mappings`);
    if (dom.typeName === 'identity') out.push(`group ${g.id} (${g.devices.join(', ')}): identity domain (passthrough): no isolation, DMA addresses are physical`);
    if (dom.fq !== null) out.push(`group ${g.id} (${g.devices.join(', ')}): lazy: unmapped memory stays reachable for up to ${dom.fq.timeoutNs / 1e6} ms (longest seen ${(dom.fq.longestWaitNs / 1e6).toFixed(3)} ms) or until ${dom.fq.single ? 32767 : 255} more unmaps`);
  }
  return out;
}
