/**
 * @module cli/sweep-worker
 * One worker of `dmasim sweep`: imports the scenario module and runs its default export once per
 * job it is sent, posting back each result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { onMachineCreated } from '../sim/machine.ts';
import { judgeMachine } from '../sim/findings.ts';

interface Job { readonly index: number; readonly params: Record<string, unknown> }

const { file } = workerData as { file: string };
const mod = (await import(pathToFileURL(file).href)) as { default?: (params: Record<string, unknown>) => unknown; columns?: unknown };
if (typeof mod.default !== 'function') throw new Error(`${file} has no default export to sweep`);
const run = mod.default;
parentPort?.on('message', async (job: Job | null) => {
  if (job === null) {
    process.exit(0);
  }
  // Every machine the job makes is judged after it, as `dmasim run` judges them: the row carries
  // how many findings they ended with (leaks, dma-debug errors, access violations, audit, WARNs).
  const made: object[] = [];
  const stop = onMachineCreated((m) => { made.push(m); });
  const findings = (): number => made.reduce((n, m) => n + (judgeMachine(m)?.findings.length ?? 0), 0);
  try {
    const out = await run(job.params);
    stop();
    const result = typeof out === 'object' && out !== null ? flatten(out as Record<string, unknown>) : { result: out };
    parentPort?.postMessage({ index: job.index, params: job.params, result, findings: findings() });
  } catch (e) {
    stop();
    parentPort?.postMessage({ index: job.index, params: job.params, error: e instanceof Error ? e.message : String(e), findings: findings() });
  }
});
// A scenario may declare its result columns (`export const columns = ['pages', ...]`): CSV output
// then has one header for every shard, whatever each shard's first row holds.
const columns = Array.isArray(mod.columns) && mod.columns.every((c) => typeof c === 'string') ? mod.columns : null;
parentPort?.postMessage({ ready: true, columns });

/** Keep numbers, strings and booleans; drop long texts (reports) and nested objects. */
function flatten(o: Record<string, unknown>): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 200)) r[k] = v;
  }
  return r;
}
