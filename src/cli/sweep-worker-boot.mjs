// Boots a sweep worker: Node 20 does not apply `--import tsx` to a worker's entry module, so the
// TypeScript loader is registered here before the worker itself is imported, but only when
// something TypeScript must load (the worker itself in a checkout, or a .ts scenario): under
// tsx's hooks the sweep bench's jobs ran slower (8 jobs in one process: 1.17-1.51 s plain,
// 1.53-2.06 s with --import tsx), so a .js/.mjs scenario of the built package runs without them.
import { workerData } from 'node:worker_threads';

const worker = new URL('./sweep-worker.ts', import.meta.url);
if (worker.pathname.endsWith('.ts') || /\.[cm]?tsx?$/.test(String(workerData?.file ?? ''))) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(worker.href);
