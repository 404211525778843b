/**
 * bench/construct: what building a machine costs (issue 20: at most 2 ms for 16 GiB fragmented).
 * `new Machine` for 1 GiB, 16 GiB and 16 GiB fragmented at level 0.6 (the fragmenter's periodic
 * layout, its held pages deferred), against the same 16 GiB machine fragmented run by run with
 * every held page written (the way before session 11), the same run; then what the deferral costs
 * later: writing every deferred held page (what a full audit or an unfragment does first).
 * Medians of 15 after 5 untimed builds (a suite builds many machines; the process's first is noted).
 */
import { Machine, type MachineOptions } from '../src/index.ts';
import { layOutFragments } from '../src/mm/fragment-layout.ts';
import { Rng } from '../src/core/rng.ts';
import { median, type BenchResult } from './util.ts';

function timeBuild(build: () => Machine, rounds = 15, warm = 5): { first: number; median: number } {
  let t = performance.now();
  build();
  const first = performance.now() - t;
  for (let i = 1; i < warm; i++) build();
  const xs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    t = performance.now();
    build();
    xs.push(performance.now() - t);
  }
  return { first, median: median(xs) };
}

export function benchConstruct(): BenchResult[] {
  const out: BenchResult[] = [];
  const frag: MachineOptions = { memory: '16G', fragment: { level: 0.6 }, iommu: { mode: 'lazy' } };
  for (const [name, opts, target] of [
    ['1 GiB', { memory: '1G' }, undefined],
    ['16 GiB', { memory: '16G', iommu: { mode: 'lazy' } }, undefined],
    ['16 GiB fragmented (level 0.6), held pages deferred', frag, 2],
  ] as const) {
    const r = timeBuild(() => new Machine(opts as MachineOptions));
    out.push({ name: `new Machine: ${name}`, value: r.median, unit: 'ms', ...(target === undefined ? {} : { target }), note: `the process's first: ${r.first.toFixed(1)} ms` });
  }
  // The same layout run by run, every held page written (level 0.6: runs of 16 pages, gaps of 1-2).
  const eager = timeBuild(() => {
    const m = new Machine({ memory: '16G', iommu: { mode: 'lazy' } });
    layOutFragments(m.mm, [4, 4], [1, 2], new Rng(1), false);
    return m;
  });
  const deferred = out[2] as BenchResult;
  out.push({ name: 'new Machine: 16 GiB fragmented, every held page written up front (same run)', value: eager.median, unit: 'ms', note: `deferred is ${(eager.median / deferred.value).toFixed(1)}× faster` });
  const xs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const m = new Machine(frag);
    const t = performance.now();
    m.mm.meta.resolveAll();
    xs.push(performance.now() - t);
  }
  out.push({ name: 'write every deferred held page of a 16 GiB fragmented machine (first full audit, unfragment)', value: median(xs), unit: 'ms', note: 'paid once, only by what reads all the metadata' });
  return out;
}
