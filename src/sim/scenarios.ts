/**
 * @module scenarios
 * Built-in scenarios; `default` is what `npm start` runs: an NVMe-like device behind a lazy IOMMU
 * on a fragmented 16 GiB machine, a driver that DMA-maps a 64 MiB vmalloc buffer through the safe
 * SGTable, the device writing it, the CPU checking it after sync, and the driver unbinding.
 */
import { formatBytes } from '../core/size.ts';
import type { Core } from '../device/context.ts';
import type { Device } from '../device/device.ts';
import { DMA_FROM_DEVICE } from '../dma/api/direction.ts';
import { formatRunHistogram, runHistogram } from '../mm/fragment.ts';
import { GFP_KERNEL } from '../mm/gfp.ts';
import { VVec } from '../safe/vvec.ts';
import { SGTable, type OwnedSGTable } from '../safe/sgtable.ts';
import { Machine } from './machine.ts';
import { memoryReport } from './report.ts';
import { iovaRangesNow, markReportSnapshot } from './html-report.ts';
import { ACCESS_KINDS, LEAK_KINDS, dmaFindings, formatFindings } from './findings.ts';

/** Numbers the default scenario measured (also printed). */
export interface DefaultScenarioResult {
  readonly report: string;
  readonly cpuEntries: number;
  readonly dmaSegments: number;
  readonly bytesVerified: boolean;
  readonly faults: number;
  readonly dmaDebugErrors: number;
  /** Ledger leaks and audit violations after unbind. */
  readonly leaks: number;
  /** Device or CPU accesses that broke the DMA rules. */
  readonly accessViolations: number;
  /** The machine, for pictures and traces. */
  readonly machine: Machine;
  readonly entryLengths: readonly number[];
  readonly segmentLengths: readonly number[];
  readonly iovaRanges: ReadonlyArray<readonly [number, number, number]>;
}

/**
 * Run the default scenario.
 * @example const { report } = defaultScenario(); console.log(report);
 */
export function defaultScenario(seed = 1): DefaultScenarioResult {
  const m = new Machine({ memory: '16G', seed, fragment: { level: 0.7 }, iommu: { mode: 'lazy' }, trace: true });
  const nvme = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64, maxSegmentSize: 65536 });
  const size = 64 * 2 ** 20;
  let table: OwnedSGTable<VVec> | undefined;
  let buf: VVec | undefined;
  m.pci.bind(nvme, {
    name: 'nvme',
    probe(dev: Device<Core>) {
      buf = VVec.create(m.mm, size);
      table = SGTable.create(dev, buf, DMA_FROM_DEVICE, GFP_KERNEL);
    },
    remove() {},
  });
  if (table === undefined || buf === undefined) throw new Error('probe did not build the table');
  const runs = runHistogram(buf.area.pages);
  // The device fills the buffer through its DMA segments.
  const segments = [...table.iter()].map((s) => ({ addr: s.dmaAddress(), length: s.dmaLen() }));
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) payload[i] = (i / 4096) & 0xff;
  const wrote = nvme.dma.writeSegments(segments, payload);
  table.syncForCpu();
  let verified = wrote.ok;
  for (let i = 0; verified && i < size; i += 2 ** 20) verified = buf.read(i, 1)[0] === payload[i];
  const cpuEntries = table.origNents;
  const entryLengths = [...table.entries()].map((e) => e.length());
  const dmaSegments = table.nents;
  const segLens = segments.map((s) => s.length);
  const iovaRanges = iovaRangesNow(m); // while the table is mapped, for the picture
  // The report's pictures of memory, IOVA space and swiotlb show this moment: the buffer is
  // allocated, mapped and written; after unbind only the fragmenter's pages would be left.
  markReportSnapshot(m, { label: `${formatBytes(size)} vmalloc buffer DMA-mapped for ${nvme.name}, written by the device and synced` });
  m.pci.unbind(nvme); // revokes the mapping (Devres), then the leak check runs
  table[Symbol.dispose]();
  m.clock.advance(20e6); // let the lazy flush queue drain
  const iommu = m.iommu;
  const tlb = iommu?.iotlb;
  const leaks = dmaFindings(m, { kinds: LEAK_KINDS });
  const access = dmaFindings(m, { kinds: ACCESS_KINDS, audit: false });
  const dbg = m.dmaDebug;
  const lines = [
    memoryReport(m),
    '',
    `vmalloc(${formatBytes(size)}): ${buf.area.nrPages} pages in physically contiguous runs of`,
    formatRunHistogram(runs),
    '',
    `SGTable for ${nvme.name} (max segment ${formatBytes(65536)}, IOMMU lazy):`,
    `  CPU entries (sg_alloc_table_from_pages_segment): ${cpuEntries}`,
    `  DMA segments after IOMMU merging:               ${dmaSegments}  (${(cpuEntries / Math.max(1, dmaSegments)).toFixed(2)} entries per segment; longest ${formatBytes(Math.max(...segLens))})`,
    `  device wrote ${formatBytes(size)}: ${wrote.ok ? 'ok' : `fault ${JSON.stringify(wrote.fault)}`}; CPU sees the bytes after sync: ${verified ? 'yes' : 'NO'}`,
    '',
    'IOMMU:',
    `  IOVA use: ${segments.length > 0 ? `0x${Math.min(...segments.map((s) => s.addr)).toString(16)} .. 0x${Math.max(...segments.map((s) => s.addr + s.length)).toString(16)}` : 'none'}`,
    `  IOTLB: ${tlb?.hits ?? 0} hits, ${tlb?.misses ?? 0} misses (hit rate ${tlb === undefined || tlb.hits + tlb.misses === 0 ? '-' : `${((100 * tlb.hits) / (tlb.hits + tlb.misses)).toFixed(1)}%`}), ${tlb?.inserts ?? 0} fills, ${tlb?.resets ?? 0} full resets`,
    `  faults: ${iommu?.faults.length ?? 0}${iommu?.faultOverflow ? ' (log overflowed)' : ''}; stale-IOTLB / use-after-unmap events: ${m.iommuTranslator?.useAfterUnmap.length ?? 0}`,
    `  page-table pages held: ${iommu?.tablePagesInUse ?? 0}`,
    `  memory exposed by segment-boundary padding: ${formatBytes(m.dmaStats.paddingBytes)} in ${m.dmaStats.paddedMaps.length} mapping(s)`,
    '',
    `dma-debug: ${dbg === null ? 'off' : `${dbg.error_count} error(s)`}${dbg !== null && dbg.errors.length > 0 ? `\n${dbg.errors.map((r) => `  ${r.text.trimEnd()}`).join('\n')}` : ''}`,
    `leak check after unbind: ${leaks.length === 0 ? 'clean (no mapping or coherent buffer left in the DMA ledger; pages, IOVAs, page tables, swiotlb, dma-debug and devres audited)' : `\n${formatFindings(leaks)}`}`,
    `device and CPU access checks: ${access.length === 0 ? 'clean (every device access inside a live mapping of its direction; no CPU access to device-owned bytes)' : `\n${formatFindings(access)}`}`,
  ];
  return {
    report: lines.join('\n'),
    cpuEntries,
    dmaSegments,
    bytesVerified: verified,
    faults: iommu?.faults.length ?? 0,
    dmaDebugErrors: dbg?.error_count ?? 0,
    leaks: leaks.length,
    accessViolations: access.length,
    machine: m,
    entryLengths,
    segmentLengths: segLens,
    iovaRanges,
  };
}
