/**
 * How fragmentation turns into scatter-gather segments: one run of the sweep. `dmasim sweep
 * examples/fragmentation-sweep.ts --param level=0.2,0.5,0.8,1 --seeds 1..4` runs it across levels and seeds.
 */
import { GFP_KERNEL, Machine, SgTable, sg_alloc_table_from_pages_segment, sg_free_table, runHistogram } from '../src/index.ts';

export default function fragmentationSweep(params: { seed?: number; level?: number } = {}): Record<string, number> {
  const m = new Machine({ memory: '2G', seed: params.seed ?? 1, fragment: { level: params.level ?? 0.6 }, dmaDebug: false });
  const area = m.mm.vmalloc(16 * 2 ** 20)!;
  const sgt = new SgTable(m);
  sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
  const h = runHistogram(area.pages);
  const out = { pages: area.nrPages, runs: h.runs, meanRun: h.meanRun, entries: sgt.orig_nents };
  sg_free_table(sgt);
  return out;
}
