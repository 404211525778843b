/**
 * Soak: `npm run soak [ops]` (default 2,000,000). Four devices (one untrusted) behind a lazy IOMMU
 * on a fragmented 16 GiB machine map pages and scatterlists, transfer, and unmap at random, with
 * random allocation failures injected under the seed; the machine is audited every 200,000 ops and
 * must end clean with flat memory use. A fifth, misbehaving driver keeps faulting (its device
 * writes wherever the others map, and after their unmaps) and WARNing (a max_segment below a page):
 * the fault, use-after-unmap, finding and kernel logs must stay bounded, so RSS stays flat.
 * Not part of CI.
 */
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, GFP_KERNEL, Machine, Rng, SgTable, dma_map_page_attrs,
  dma_map_sgtable, dma_mapping_error, dma_unmap_page_attrs, dma_unmap_sgtable, sg_alloc_table_from_pages_segment,
  sg_free_table, __GFP_NOWARN, type Device, type VmArea,
} from '../src/index.ts';

const total = Number(process.argv[2] ?? 2_000_000);
const m = new Machine({ memory: '16G', seed: 11, fragment: { level: 0.6 }, iommu: { mode: 'lazy' }, dmaDebug: false });
const devs: Device[] = [0, 1, 2, 3].map((i) => {
  const d = m.pci.addDevice({ name: `0000:0${i + 1}:00.0`, dmaMask: i === 3 ? 32 : 64, untrusted: i === 2, maxSegmentSize: 65536 });
  m.pci.bind(d, { name: `soak${i}`, probe() {} });
  return d;
});
// The misbehaving driver's device: behind the IOMMU, it owns no mapping of its own.
const bad = m.pci.addDevice({ name: '0000:09:00.0', dmaMask: 64 });
m.pci.bind(bad, { name: 'misbehaving', probe() {} });
let badWrites = 0;
let recent = 0;
const junk = new Uint8Array(64);

/** Write where another device maps (or mapped): faults, stale hits and findings, every time. */
function misbehave(): void {
  const l = live.length > 0 ? live[rng.int(live.length)] as Live : undefined;
  const addr = l?.addr ?? recent;
  bad.dma.write(addr, junk);
  (l?.dev ?? (devs[0] as Device)).dma.write(recent, junk); // a device writing where it unmapped lately
  badWrites++;
  if (badWrites % 500 === 0) {
    // A WARN in the kernel's words: max_segment below PAGE_SIZE.
    const t = new SgTable(m);
    sg_alloc_table_from_pages_segment(t, [1], 1, 0, 4096, 512, GFP_KERNEL);
  }
}

const rng = new Rng(99);
for (const kind of ['page', 'iova', 'pgtable', 'swiotlb', 'sg-chunk'] as const) m.faults.inject(kind, { probability: 0.0005 });

interface Live { dev: Device; kind: 'page' | 'sg'; addr: number; size: number; dir: number; pfn?: number; sgt?: SgTable; area?: VmArea }
const live: Live[] = [];
const dirs = [DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL];
let ops = 0;
let failures = 0;
let bytes = 0;
const rss: number[] = [];
const t0 = Date.now();

function release(l: Live): void {
  recent = l.addr;
  if (l.kind === 'page') {
    dma_unmap_page_attrs(l.dev, l.addr, l.size, l.dir, 0);
    m.mm.__free_pages(l.pfn as number, 0);
  } else {
    dma_unmap_sgtable(l.dev, l.sgt as SgTable, l.dir, 0);
    sg_free_table(l.sgt as SgTable);
    m.mm.vfree(l.area as VmArea);
  }
}

while (ops < total) {
  const dev = devs[rng.int(devs.length)] as Device;
  const r = rng.int(100);
  m.currentCpu = rng.int(2);
  if (r < 35 && live.length < 2000) {
    const pfn = m.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0);
    if (pfn === null) { failures++; ops++; continue; }
    const off = rng.int(4) * 512;
    const size = 512 + rng.int(3000);
    const dir = dirs[rng.int(3)] as number;
    const addr = dma_map_page_attrs(dev, pfn, off, size, dir, 0);
    if (dma_mapping_error(dev, addr) !== 0) { failures++; m.mm.__free_pages(pfn, 0); } else live.push({ dev, kind: 'page', addr, size, dir, pfn });
  } else if (r < 45 && live.length < 2000) {
    const area = m.mm.vmalloc((1 + rng.int(64)) * 4096, GFP_KERNEL | __GFP_NOWARN);
    if (area === null) { failures++; ops++; continue; }
    const sgt = new SgTable(m);
    if (sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL) !== 0) { failures++; m.mm.vfree(area); ops++; continue; }
    const dir = dirs[rng.int(3)] as number;
    if (dma_map_sgtable(dev, sgt, dir, 0) !== 0) { failures++; sg_free_table(sgt); m.mm.vfree(area); } else live.push({ dev, kind: 'sg', addr: sgt.sgl?.dma_address ?? 0, size: area.size, dir, sgt, area });
  } else if (r < 75 && live.length > 0) {
    const l = live[rng.int(live.length)] as Live;
    const res = l.dir === DMA_TO_DEVICE ? l.dev.dma.read(l.addr, Math.min(l.size, 512)) : l.dev.dma.write(l.addr, new Uint8Array(Math.min(l.size, 512)).fill(ops & 0xff));
    if (res.ok) bytes += Math.min(l.size, 512);
  } else if (live.length > 0) {
    release(live.splice(rng.int(live.length), 1)[0] as Live);
  }
  if (rng.int(10) === 0 && process.env['SOAK_WELL_BEHAVED'] !== '1') misbehave();
  m.clock.advance(200 + rng.int(2000));
  ops++;
  if (ops % 200_000 === 0) {
    const v = m.audit();
    // Settle the heap before sampling (npm run soak passes --expose-gc), so RSS shows what is kept.
    (globalThis as { gc?: () => void }).gc?.();
    const mb = process.memoryUsage().rss / 2 ** 20;
    rss.push(mb);
    const findings = m.dma.ledger.findings;
    const dropped = [...findings.dropped.values()].reduce((a, b) => a + b, 0);
    const mu = process.memoryUsage();
    const heap = mu.heapUsed / 2 ** 20;
    const ab = mu.arrayBuffers / 2 ** 20;
    const heapTotal = mu.heapTotal / 2 ** 20;
    const written = (m.mm.contents.residentPages * 4096) / 2 ** 20;
    process.stderr.write(`soak: ${ops}/${total} ops, ${live.length} live, ${failures} injected failures handled, rss ${mb.toFixed(0)} MiB (heap ${heap.toFixed(0)} of ${heapTotal.toFixed(0)}, array buffers ${ab.toFixed(0)}, page contents ${written.toFixed(0)}), `
      + `misbehaving: ${bad.dma.faults.length + bad.dma.faultsDropped} faults (${bad.dma.faults.length} kept), ${m.klog.warnCount} WARNs (${m.klog.messages.length} messages kept), `
      + `${findings.list().length + dropped} findings (${findings.list().length} kept), audit ${v.length === 0 ? 'clean' : `${v.length} violations: ${v[0]?.message}`}\n`);
    if (v.length > 0) process.exit(1);
  }
}
for (const l of live.splice(0)) release(l);
m.clock.advance(2e9);
const final = m.audit();
const secs = (Date.now() - t0) / 1000;
process.stdout.write(`| soak: ${total} ops, 4 devices + 1 misbehaving (${badWrites} bad writes, ${m.klog.warnCount} WARNs), lazy IOMMU, fragmented 16 GiB, p=0.0005 failures on 5 kinds | ${(total / secs / 1000).toFixed(0)}k ops/s | ${failures} failures handled, ${(bytes / 2 ** 20).toFixed(0)} MiB moved, RSS ${rss[0]?.toFixed(0)} -> ${rss.at(-1)?.toFixed(0)} MiB, final audit ${final.length === 0 ? 'clean' : 'NOT clean'} |\n`);
process.exit(final.length === 0 ? 0 : 1);
