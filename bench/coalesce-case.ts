/**
 * One coalescing case in a process of its own: `coalesce-case N LAYOUT MAX_SEGMENT MODE` prints
 * the CoalesceRow as one JSON line. benchCoalesce runs every case this way, so no case inherits
 * the compiled code and type feedback that earlier cases left (measured: scattered oneshot 1M
 * pages 3.97-4.08 ns/page fresh, 4.33-5.48 after the contiguous cases in the same process).
 */
import { LAYOUTS, MODES, runCase, type Layout, type Mode } from './coalesce.bench.ts';

const [n, layout, maxSegment, mode] = process.argv.slice(2);
if (!(LAYOUTS as readonly string[]).includes(layout ?? '') || !(MODES as readonly string[]).includes(mode ?? '')) {
  process.stderr.write('usage: coalesce-case N LAYOUT MAX_SEGMENT MODE\n');
  process.exit(2);
}
const row = runCase(Number(n), layout as Layout, Number(maxSegment), mode as Mode);
process.stdout.write(`${JSON.stringify(row)}\n`);
