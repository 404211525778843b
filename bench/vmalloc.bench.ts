/**
 * bench/vmalloc: vmalloc(4 GiB) + vfree, ns per page; and the memory cost of a 64 GiB machine with
 * 1 GiB vmalloc'ed and 16 MiB written (resident set of the process).
 */
import { Machine, PAGE_SIZE } from '../src/index.ts';
import { median, type BenchResult } from './util.ts';

export function benchVmalloc(runs = 11): BenchResult[] {
  const m = new Machine({ memory: '8G' });
  const size = 4 * 2 ** 30;
  const pages = size / PAGE_SIZE;
  const times: number[] = [];
  for (let r = 0; r < runs + 2; r++) {
    const t0 = process.hrtime.bigint();
    const area = m.mm.vmalloc(size);
    if (area === null) throw new Error('vmalloc failed');
    m.mm.vfree(area);
    const dt = Number(process.hrtime.bigint() - t0);
    if (r >= 2) times.push(dt / pages);
  }
  return [{ name: 'vmalloc(4 GiB) + vfree', value: median(times), unit: 'ns/page', target: 100 }];
}

export function benchMemoryCost(): BenchResult[] {
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const m = new Machine({ memory: '64G' });
  const area = m.mm.vmalloc(2 ** 30);
  if (area === null) throw new Error('vmalloc failed');
  const chunk = new Uint8Array(2 ** 20).fill(0xa5);
  for (let i = 0; i < 16; i++) area.write(i * 2 ** 20, chunk);
  global.gc?.();
  const rss = process.memoryUsage().rss;
  const metaBytes = m.mm.meta.state.byteLength + m.mm.meta.owner.byteLength + m.mm.meta.refcount.byteLength;
  return [
    { name: 'metadata per page frame (64 GiB machine)', value: metaBytes / m.mm.maxPfn, unit: 'bytes/page', target: 4 },
    { name: 'RSS: 64 GiB machine, 1 GiB vmalloc, 16 MiB written', value: rss / 2 ** 20, unit: 'MiB (process)', target: 100 },
    { name: 'RSS growth for that machine', value: (rss - rss0) / 2 ** 20, unit: 'MiB', target: 100 },
  ];
}
