/**
 * bench/iova: the IOVA allocator. ns per alloc_iova_fast + free_iova_fast pair on the range-cache hit path
 * (target 50 ns), and ns per alloc_iova + free_iova pair on the tree with 10,000 live ranges.
 */
import { IovaDomain, alloc_iova, free_iova, init_iova_domain } from '../src/iommu/iova.ts';
import { alloc_iova_fast, free_iova_fast, iova_domain_init_rcaches } from '../src/iommu/iova-rcache.ts';
import { median, type BenchResult } from './util.ts';

const L32 = 0xfffff; // DMA_BIT_MASK(32) >> 12
const L64 = 2 ** 52 - 1;

function fastDomain(): IovaDomain {
  const d = new IovaDomain({ nrCpus: 4 });
  init_iova_domain(d, 4096, 1);
  if (iova_domain_init_rcaches(d) !== 0) throw new Error('iova_domain_init_rcaches failed');
  return d;
}

/** Run `body(n)` `runs` times after 2 warm-up runs; median ns per iteration. */
function measure(runs: number, n: number, body: (n: number) => void): number {
  const times: number[] = [];
  for (let r = 0; r < runs + 2; r++) {
    const t0 = process.hrtime.bigint();
    body(n);
    const dt = Number(process.hrtime.bigint() - t0);
    if (r >= 2) times.push(dt / n);
  }
  return median(times);
}

export function benchIova(runs = 9): BenchResult[] {
  const results: BenchResult[] = [];
  const N = 2_000_000;

  // 1. Cache hit, one size: the steady state of a driver mapping and unmapping one page.
  {
    const d = fastDomain();
    const warm = alloc_iova_fast(d, 1, L32, true, 0);
    free_iova_fast(d, warm, 1, 0);
    let sink = 0;
    const ns = measure(runs, N, (n) => {
      for (let i = 0; i < n; i++) {
        const pfn = alloc_iova_fast(d, 1, L32, true, 0);
        free_iova_fast(d, pfn, 1, 0);
        sink += pfn;
      }
    });
    if (sink === 0) throw new Error('unreachable');
    results.push({ name: 'alloc_iova_fast + free_iova_fast, cache hit (1 pfn)', value: ns, unit: 'ns/pair', target: 50 });
  }

  // 2. Cache hits across orders, CPUs and 32/64-bit limits, with 32 mappings in flight (every one a hit:
  //    the warm-up leaves 32 pfns below 4 GiB per order and CPU).
  {
    const d = fastDomain();
    const sizes = [1, 2, 3, 4, 8, 16, 32, 1];
    const inflight = new Float64Array(32);
    for (let c = 0; c < 4; c++) {
      for (const s of sizes) {
        for (let k = 0; k < 32; k++) inflight[k] = alloc_iova_fast(d, s, L32, true, c); // below 4 GiB: fits either limit
        for (let k = 0; k < 32; k++) free_iova_fast(d, inflight[k] as number, s, c);
      }
    }
    const ns = measure(runs, N, (n) => {
      let done = 0;
      for (let round = 0; done < n; round++) {
        const cpu = round & 3;
        const size = sizes[round & 7] as number;
        const limit = (round & 8) === 0 ? L64 : L32;
        for (let k = 0; k < 32; k++) inflight[k] = alloc_iova_fast(d, size, limit, true, cpu);
        for (let k = 0; k < 32; k++) free_iova_fast(d, inflight[k] as number, size, cpu);
        done += 32;
      }
    });
    results.push({ name: 'alloc_iova_fast + free_iova_fast, cache hit (mixed sizes, CPUs, 32 in flight)', value: ns, unit: 'ns/pair', target: 50 });
  }

  // 3. The tree: alloc_iova + free_iova with 10,000 live ranges around.
  {
    const d = new IovaDomain();
    init_iova_domain(d, 4096, 1);
    for (let i = 0; i < 10_000; i++) alloc_iova(d, 1 + (i % 8), i % 2 === 0 ? L32 : L64, true);
    const M = 500_000;
    const ns = measure(runs, M, (n) => {
      for (let i = 0; i < n; i++) {
        const iova = alloc_iova(d, 1 + (i & 3), (i & 1) === 0 ? L32 : L64, true);
        if (iova === null) throw new Error('alloc_iova failed');
        free_iova(d, iova.pfn_lo);
      }
    });
    results.push({ name: 'alloc_iova + free_iova (10,000 live ranges)', value: ns, unit: 'ns/pair' });
  }
  return results;
}
