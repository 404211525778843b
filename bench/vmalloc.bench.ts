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

/** Metadata per page frame; the process RSS all told is `npm run bench:rss` (plain node, not tsx). */
export function benchMemoryCost(): BenchResult[] {
  const m = new Machine({ memory: '64G' });
  const metaBytes = m.mm.meta.state.byteLength + m.mm.meta.owner.byteLength + m.mm.meta.refcount.byteLength;
  return [{ name: 'metadata per page frame (64 GiB machine)', value: metaBytes / m.mm.maxPfn, unit: 'bytes/page', target: 4, note: 'RSS all told: npm run bench:rss' }];
}
