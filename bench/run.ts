/**
 * Benchmark runner: `npm run bench [name...]`. Names: coalesce, vmalloc, memory, iova, dma, iommu, checks, snapshot, replay, sweep, construct. Prints Markdown tables.
 * Run with `node --expose-gc` (npm run bench does) so memory figures are settled.
 */
import { benchMemoryCost, benchVmalloc } from './vmalloc.bench.ts';
import { table, type BenchResult } from './util.ts';
import { benchCoalesce, coalesceTable } from './coalesce.bench.ts';
import { benchIova } from './iova.bench.ts';
import { benchDma } from './dma.bench.ts';
import { benchIommu } from './iommu.bench.ts';
import { benchChecks } from './checks.bench.ts';
import { benchSnapshot } from './snapshot.bench.ts';
import { benchReplay } from './replay.bench.ts';
import { benchSweep } from './sweep.bench.ts';
import { benchConstruct } from './construct.bench.ts';

const suites: Record<string, () => BenchResult[] | string | Promise<BenchResult[] | string>> = {
  coalesce: async () => coalesceTable(await benchCoalesce()),
  vmalloc: () => benchVmalloc(),
  memory: () => benchMemoryCost(),
  iova: () => benchIova(),
  dma: () => benchDma(),
  iommu: () => benchIommu(),
  checks: () => benchChecks(),
  snapshot: () => benchSnapshot(),
  replay: () => benchReplay(),
  sweep: () => benchSweep(),
  construct: () => benchConstruct(),
};

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(suites);
if (names.length > 1) {
  // Each suite in its own process: memory figures must not see another suite's heap.
  const { spawnSync } = await import('node:child_process');
  for (const name of names) {
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1] as string, name], { stdio: 'inherit' });
    if (r.status !== 0) process.exitCode = r.status ?? 1;
  }
  process.exit();
}
for (const name of names) {
  const suite = suites[name];
  if (suite === undefined) {
    process.stderr.write(`unknown benchmark '${name}' (one of ${Object.keys(suites).join(', ')})\n`);
    process.exitCode = 2;
    continue;
  }
    const out = await suite();
  process.stdout.write(`\n## ${name}\n\n${typeof out === 'string' ? out : table(out)}\n`);
}
