/**
 * bench/rss: the memory cost of a 64 GiB machine with 1 GiB vmalloc'ed and 16 MiB written, as a
 * process RSS under plain Node (`npm run bench:rss` compiles with tsc first: tsx's loader alone
 * costs ~40 MiB of RSS, which is not dmasim's).
 */
import { Machine } from '../src/index.ts';

const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const rss0 = process.memoryUsage().rss;
const m = new Machine({ memory: '64G' });
const area = m.mm.vmalloc(2 ** 30);
if (area === null) throw new Error('vmalloc failed');
const chunk = new Uint8Array(2 ** 20).fill(0xa5);
for (let i = 0; i < 16; i++) area.write(i * 2 ** 20, chunk);
gc?.();
const rss = process.memoryUsage().rss;
process.stdout.write(`| process RSS, 64 GiB machine + 1 GiB vmalloc + 16 MiB written (plain node) | ${(rss / 2 ** 20).toFixed(1)} | MiB | ≤ 100 ${rss / 2 ** 20 <= 100 ? '✓' : '✗'} | growth ${((rss - rss0) / 2 ** 20).toFixed(1)} MiB |\n`);
