/**
 * One per-mapping row of `npm run bench dma` in a process of its own: `dma-row pair|sgtable16
 * strict|lazy on|off` prints the BenchResult as one JSON line. benchDma runs the pair and the
 * 16-entry table this way, alternating strict and lazy, so no row inherits the call-site feedback
 * of the rows before it (in one process the pair rows moved by up to 100 ns between two runs, and
 * "lazy never slower than strict" could not be judged: bench/RESULTS.md, session 12).
 */
import { sgtable16, strictVsLazy } from './dma.bench.ts';

const [row, mode, checks] = process.argv.slice(2);
if ((row !== 'pair' && row !== 'sgtable16') || (mode !== 'strict' && mode !== 'lazy') || (checks !== 'on' && checks !== 'off')) {
  process.stderr.write('usage: dma-row pair|sgtable16 strict|lazy on|off\n');
  process.exit(2);
}
const result = (row === 'pair' ? strictVsLazy : sgtable16)(mode, checks === 'on')[0];
process.stdout.write(`${JSON.stringify(result)}\n`);
