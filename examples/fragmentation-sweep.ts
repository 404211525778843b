/**
 * How fragmentation turns into scatter-gather segments: one run of the sweep. `dmasim sweep
 * examples/fragmentation-sweep.ts --param level=0.2,0.5,0.8,1 --seeds 1..4` runs it across levels and seeds.
 * The level lays free memory out in runs of one length; the seed drives a workload that allocates
 * blocks of random orders and frees half of them before the driver's vmalloc, so each seed leaves
 * a different mix of free runs, as machines that have run for a while do.
 */
import { GFP_KERNEL, Machine, SgTable, sg_alloc_table_from_pages_segment, sg_free_table, runHistogram } from '../src/index.ts';

export default function fragmentationSweep(params: { seed?: number; level?: number } = {}): Record<string, number> {
  const m = new Machine({ memory: '2G', seed: params.seed ?? 1, fragment: { level: params.level ?? 0.6 }, dmaDebug: false });
  const held: Array<[number, number]> = [];
  for (let i = 0; i < 600; i++) {
    const order = m.rng.int(4);
    const pfn = m.mm.alloc_pages(GFP_KERNEL, order);
    if (pfn !== null) held.push([pfn, order]);
  }
  for (let i = 0; i < held.length; i += 2) m.mm.__free_pages(...(held[i] as [number, number]));
  const area = m.mm.vmalloc(16 * 2 ** 20)!;
  const sgt = new SgTable(m);
  sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
  const h = runHistogram(area.pages);
  const out = { pages: area.nrPages, runs: h.runs, meanRun: h.meanRun, entries: sgt.orig_nents };
  sg_free_table(sgt);
  return out;
}
