/**
 * @module sim/describe
 * Everything that defines a machine, in words: arch, RAM and its zones as the arch has them, the
 * IOMMU (mode, default domain type, input width, granule), swiotlb (size, place, force), dma-debug,
 * the access checks, each device's DMA parameters, and what isolation the IOMMU gives.
 */
import { notInstance } from '../core/args.ts';
import { formatBytes } from '../core/size.ts';
import type { Device } from '../device/device.ts';
import { formatMask } from '../device/mask.ts';
import { dma_get_max_seg_size, dma_get_seg_boundary } from '../dma/api/params.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { isolationReport } from './isolation.ts';
import { Machine } from './machine.ts';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** One device's DMA parameters on one line. */
function deviceLine(m: Machine, d: Device): string {
  const parts = [
    `dma_mask ${d.dma_mask === null ? 'none' : `0x${formatMask(d.dma_mask)}`}`,
    `coherent_dma_mask 0x${formatMask(d.coherent_dma_mask)}`,
  ];
  if (d.bus_dma_limit !== 0) parts.push(`bus_dma_limit ${hex(d.bus_dma_limit)}`);
  if (d.dma_parms === null) {
    parts.push('no dma_parms');
  } else {
    // What the DMA API uses (a stored 0 means the default, as dma_get_max_seg_size and
    // dma_get_seg_boundary read it), with the stored 0 said when there is one.
    const unset = (v: number): string => (v === 0 ? ' (unset: 0 stored)' : '');
    parts.push(`max segment ${dma_get_max_seg_size(d)}${unset(d.dma_parms.max_segment_size)}`,
      `segment boundary 0x${formatMask(dma_get_seg_boundary(d))}${unset(d.dma_parms.segment_boundary_mask)}`);
    if (d.dma_parms.min_align_mask !== 0) parts.push(`min_align_mask ${hex(d.dma_parms.min_align_mask)}`);
  }
  parts.push(d.dma_coherent ? 'coherent' : 'non-coherent');
  if (d.untrusted) parts.push('untrusted');
  const g = m.iommu?.groupOf(d);
  parts.push(g === undefined ? (m.iommu === null ? 'dma-direct' : 'outside the IOMMU: dma-direct') : `iommu group ${g.id} (${g.domain.typeName})`);
  return `  ${d.bus.name} ${d.name}: ${parts.join(', ')}`;
}

/**
 * Describe a machine: what `dmasim describe` prints.
 * @example
 * const { machine } = buildMachine(preset('confidential-vm'));
 * describeMachine(machine) // 'machine m0: x86_64, 8 GiB RAM, 2 CPUs, seed 1\n ... swiotlb: 64 MiB ... force ...'
 */
export function describeMachine(m: Machine): string {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'describeMachine', 'm');
  const lines = [`machine ${m.name}: ${m.arch}, ${formatBytes(m.mm.totalPages * PAGE_SIZE)} RAM, ${m.cpus} CPUs, seed ${m.seed}`];
  for (const r of m.mm.ram) lines.push(`  RAM [${hex(r.startPfn * PAGE_SIZE)}, ${hex(r.endPfn * PAGE_SIZE)})`);
  for (const d of m.mm.deviceMemory) lines.push(`  device memory ${d.name} [${hex(d.start)}, ${hex(d.end)})`);
  for (const z of m.mm.zones) {
    if (z.span.presentPages === 0) {
      lines.push(`  zone ${z.span.name.padEnd(7)} empty`);
      continue;
    }
    lines.push(`  zone ${z.span.name.padEnd(7)} [${hex(z.span.startPfn * PAGE_SIZE)}, ${hex(z.span.endPfn * PAGE_SIZE)})  present ${formatBytes(z.span.presentPages * PAGE_SIZE).padStart(9)}  free ${formatBytes(z.freePages * PAGE_SIZE).padStart(9)}`);
  }
  const io = m.iommu;
  lines.push(io === null
    ? 'iommu: none (every device uses dma-direct)'
    : `iommu: ${io.mode} (default domain ${io.mode === 'passthrough' ? 'identity' : io.mode === 'lazy' ? 'DMA-FQ' : 'DMA'}), ${io.format} page tables, ${io.addressWidth}-bit input and ${io.outputWidth}-bit output addresses, granule ${formatBytes(io.granule)}, IOTLB ${io.iotlb.capacity} entries${io.forcedac ? ', forcedac' : ''}${io.singleQueue ? ', single flush queue' : ''}`);
  const sw = m.swiotlb;
  lines.push(sw === null
    ? 'swiotlb: none'
    : `swiotlb: ${formatBytes(sw.end - sw.start)} at [${hex(sw.start)}, ${hex(sw.end)}), ${sw.nslabs} slots in ${sw.nareas} area${sw.nareas === 1 ? '' : 's'}, ${m.swiotlbForce ? 'force (every streaming mapping bounces)' : 'bounces only what a device cannot reach'}`);
  const dbg = m.dmaDebug;
  lines.push(dbg === null ? 'dma-debug: off' : `dma-debug: on, ${dbg.nr_total_entries} entries, ${m.arch === 'arm64' ? '128' : '64'}-byte cache lines`);
  lines.push(`access checks: ${m.accessChecks ? 'on (device accesses against live mappings, CPU accesses against DMA ownership)' : 'off'}`);
  const devices = [...m.devices()];
  lines.push('', 'devices:', ...(devices.length === 0 ? ['  none'] : devices.map((d) => deviceLine(m, d))));
  const isolation = isolationReport(m);
  if (isolation.length > 0) lines.push('', 'isolation:', ...isolation.map((l) => `  ${l}`));
  return lines.join('\n');
}
