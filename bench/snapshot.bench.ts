/**
 * bench/snapshot: what machine snapshots cost and what they buy.
 * - snapshot and restore of a 1 GiB test machine and of a 16 GiB fragmented one with 1 GiB in use
 *   (vmalloc'd and written), medians of 9;
 * - forEachFailurePoint over a driver operation (an 8-page scatterlist mapped through a lazy IOMMU
 *   plus a header mapping, every 'page' failure point): from one snapshot against a fresh machine
 *   per point, the same run, with the ratio.
 */
import { DMA_TO_DEVICE, GFP_KERNEL, Machine, SgTable, dma_map_sgtable, dma_map_single, dma_mapping_error, dma_unmap_sgtable, dma_unmap_single, sg_alloc_table_from_pages_segment, sg_free_table, type MachineOptions } from '../src/index.ts';
import { forEachFailurePoint, testMachine } from '../src/testing/index.ts';
import { median, type BenchResult } from './util.ts';

function timeSnapshot(opts: MachineOptions, inUse: number): { snap: number; restore: number; objects: number; bytes: number } {
  const m = new Machine(opts);
  if (inUse > 0) {
    const area = m.mm.vmalloc(inUse);
    if (area === null) throw new Error('bench: vmalloc failed');
    const chunk = new Uint8Array(1 << 20).fill(0x5a);
    for (let off = 0; off < inUse; off += chunk.length) area.write(off, chunk);
  }
  const snaps: number[] = [];
  const restores: number[] = [];
  let s = m.snapshot();
  for (let i = 0; i < 9; i++) {
    let t = performance.now();
    s = m.snapshot();
    snaps.push(performance.now() - t);
    m.mm.writePhys(m.mm.virt_to_phys(m.mm.kmalloc(64) as number), new Uint8Array(64));
    t = performance.now();
    m.restore(s);
    restores.push(performance.now() - t);
  }
  return { snap: median(snaps), restore: median(restores), objects: s.objects, bytes: s.bytes };
}

function failureSweep(snapshot: boolean): { ms: number; points: number } {
  const make = () => {
    const t = testMachine({ iommu: { mode: 'lazy' } });
    t.machine.pci.bind(t.dev, { name: 'bench', probe() {} });
    return t;
  };
  const op = ({ machine, dev }: ReturnType<typeof make>) => {
    const hdr = machine.mm.kmalloc(512);
    if (hdr === null) return -12;
    const h = dma_map_single(dev, hdr, 512, DMA_TO_DEVICE);
    if (dma_mapping_error(dev, h) !== 0) { machine.mm.kfree(hdr); return -12; }
    const area = machine.mm.vmalloc(8 * 4096);
    const sgt = new SgTable(machine);
    if (area === null || sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL) !== 0 || dma_map_sgtable(dev, sgt, DMA_TO_DEVICE) !== 0) {
      sg_free_table(sgt);
      if (area !== null) machine.mm.vfree(area);
      dma_unmap_single(dev, h, 512, DMA_TO_DEVICE);
      machine.mm.kfree(hdr);
      return -12;
    }
    dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE);
    sg_free_table(sgt);
    machine.mm.vfree(area);
    dma_unmap_single(dev, h, 512, DMA_TO_DEVICE);
    machine.mm.kfree(hdr);
    return 0;
  };
  const t = performance.now();
  const runs = forEachFailurePoint('page', make, op, undefined, { snapshot });
  return { ms: performance.now() - t, points: runs.length };
}

export function benchSnapshot(): BenchResult[] {
  const out: BenchResult[] = [];
  for (const [name, opts, inUse] of [
    ['1 GiB test machine', { memory: '1G' }, 0],
    ['16 GiB fragmented, lazy IOMMU, 1 GiB in use', { memory: '16G', fragment: { level: 0.6 }, iommu: { mode: 'lazy' } }, 2 ** 30],
  ] as const) {
    const r = timeSnapshot(opts as MachineOptions, inUse);
    out.push({ name: `snapshot: ${name}`, value: r.snap, unit: 'ms', target: 1, note: `${r.objects} objects, ${(r.bytes / 2 ** 20).toFixed(1)} MiB of metadata copied; contents shared copy-on-write` });
    out.push({ name: `restore: ${name}`, value: r.restore, unit: 'ms', target: 1 });
  }
  // Alternate the two ways, 5 rounds each; medians.
  const viaSnap: number[] = [];
  const fresh: number[] = [];
  let points = 0;
  for (let i = 0; i < 5; i++) {
    const a = failureSweep(true);
    viaSnap.push(a.ms);
    points = a.points;
    fresh.push(failureSweep(false).ms);
  }
  const s = median(viaSnap);
  const f = median(fresh);
  out.push({ name: `forEachFailurePoint, ${points} points, from one snapshot`, value: s, unit: 'ms' });
  out.push({ name: `forEachFailurePoint, ${points} points, a fresh machine each`, value: f, unit: 'ms' });
  out.push({ name: 'failure sweep speed-up (fresh / snapshot)', value: f / s, unit: '×', note: 'target ≥ 10×' });
  return out;
}
