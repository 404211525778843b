// Boots a sweep worker: Node 20 does not apply `--import tsx` to a worker's entry module, so the
// TypeScript loader is registered here before the worker itself is imported.
import { register } from 'tsx/esm/api';

register();
await import('./sweep-worker.ts');
