/**
 * bench/iommu: the IO page table and IOTLB. iommu_map + iommu_unmap of 1,048,576 4 KiB pages (one call
 * per page, as dma_map_page does; and one call for all, with physical addresses that allow only 4 KiB
 * leaves), ns per page; translation of a 64-byte access on an IOTLB hit and on a miss, ns per access.
 * Medians of `runs` runs after 2 warm-up runs.
 */
import { GFP_KERNEL } from '../src/mm/gfp.ts';
import { Iotlb } from '../src/iommu/iotlb.ts';
import { PagingDomain } from '../src/iommu/map-domain.ts';
import { iommu_map, iommu_unmap } from '../src/iommu/map.ts';
import { IoPageTable } from '../src/iommu/pgtable.ts';
import { VtdPageTable } from '../src/iommu/pgtable-vtd/table.ts';
import { SimpleTablePageAllocator } from '../src/iommu/pgtable-alloc.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../src/iommu/pgtable-prot.ts';
import { TranslateResult, translate } from '../src/iommu/translate.ts';
import { median, type BenchResult } from './util.ts';

const N = 1 << 20;
const PAGE = 4096;
const IOVA0 = 2 ** 32;
const PHYS0 = 2 ** 36;
const RW = IOMMU_READ | IOMMU_WRITE;

type Format = 'arm-lpae' | 'vtd';

function domain(format: Format = 'arm-lpae'): PagingDomain {
  const alloc = new SimpleTablePageAllocator({ track: false });
  const pt = format === 'vtd' ? new VtdPageTable({ addressWidth: 48 }, alloc) : new IoPageTable({ ias: 48 }, alloc);
  return new PagingDomain({ pgtable: pt, iotlb: new Iotlb(), asid: 1 });
}

function now(): number {
  return Number(process.hrtime.bigint());
}

function fail(what: string): never {
  throw new Error(`bench/iommu: ${what}`);
}

// Each timed loop is a function of its own, as benchmark libraries do: V8 compiles a function
// with several hot loops as one unit (on-stack replacement), and the loops then share registers and
// type feedback. With the hit and miss loops in one function, a hit measured 20.5-22 ns; alone,
// 13.7-16 ns (bench/RESULTS.md).

function mapPages(d: PagingDomain): void {
  for (let i = 0; i < N; i++) {
    if (iommu_map(d, IOVA0 + i * PAGE, PHYS0 + i * PAGE, PAGE, RW, GFP_KERNEL) !== 0) fail('iommu_map failed');
  }
}

function unmapPages(d: PagingDomain): void {
  for (let i = 0; i < N; i++) {
    if (iommu_unmap(d, IOVA0 + i * PAGE, PAGE) !== PAGE) fail('iommu_unmap failed');
  }
}

/** iommu_map + iommu_unmap of N pages, one call per page: median ns per page. */
function perPage(runs: number, format: Format = 'arm-lpae'): number {
  const d = domain(format);
  const times: number[] = [];
  for (let r = 0; r < runs + 2; r++) {
    const t0 = now();
    mapPages(d);
    unmapPages(d);
    if (r >= 2) times.push((now() - t0) / N);
  }
  if (d.pgtable.mappedBytes !== 0) fail('pages left mapped');
  return median(times);
}

/** One iommu_map and one iommu_unmap of N pages, 4 KiB leaves only: median ns per page. */
function bulk(runs: number, format: Format = 'arm-lpae'): number {
  const d = domain(format);
  const times: number[] = [];
  for (let r = 0; r < runs + 2; r++) {
    const t0 = now();
    // paddr one page off the 2 MiB alignment of iova: only 4 KiB leaves are possible.
    if (iommu_map(d, IOVA0, PHYS0 + PAGE, N * PAGE, RW, GFP_KERNEL) !== 0) fail('bulk iommu_map failed');
    if (d.pgtable.mappedBytes !== N * PAGE) fail('bulk map: wrong size');
    if (iommu_unmap(d, IOVA0, N * PAGE) !== N * PAGE) fail('bulk iommu_unmap failed');
    if (r >= 2) times.push((now() - t0) / N);
  }
  return median(times);
}

/** `m` translations of 64-byte reads cycling through 64 cached pages; returns a sum of the results. */
function hitLoop(d: PagingDomain, out: TranslateResult, m: number): number {
  let sink = 0;
  for (let i = 0; i < m; i++) {
    translate(d, IOVA0 + (i & 63) * PAGE + 64, 64, 'read', out);
    sink += out.phys[0] as number;
  }
  return sink;
}

/** `k` translations of 64-byte writes over 1024 pages, the IOTLB flushed every 1024: all misses. */
function missLoop(d: PagingDomain, iotlb: Iotlb, out: TranslateResult, k: number): number {
  let sink = 0;
  for (let i = 0; i < k; i++) {
    if ((i & 1023) === 0) iotlb.flushAll();
    translate(d, IOVA0 + (i & 1023) * PAGE, 64, 'write', out);
    sink += out.phys[0] as number;
  }
  return sink;
}

/**
 * translate of 64-byte accesses: hits cycle through 64 cached pages; misses walk 1024 pages with the
 * IOTLB flushed every 1024 accesses. Both kinds run in every round, so translate's type feedback has
 * seen both. Median ns per access.
 */
function translation(runs: number, format: Format = 'arm-lpae'): { hit: number; miss: number; capacity: number } {
  const d = domain(format);
  if (iommu_map(d, IOVA0, PHYS0, 1024 * PAGE, RW, GFP_KERNEL) !== 0) fail('iommu_map failed');
  const iotlb = d.iotlb as Iotlb;
  const out = new TranslateResult();
  const M = 5_000_000;
  const K = 200_000;
  const hit: number[] = [];
  const miss: number[] = [];
  let sink = 0;
  for (let r = 0; r < runs + 2; r++) {
    const t0 = now();
    sink += hitLoop(d, out, M);
    const t1 = now();
    sink += missLoop(d, iotlb, out, K);
    const t2 = now();
    if (r >= 2) {
      hit.push((t1 - t0) / M);
      miss.push((t2 - t1) / K);
    }
  }
  if (!(sink > 0) || !out.ok) fail('translation produced nothing');
  return { hit: median(hit), miss: median(miss), capacity: iotlb.capacity };
}

export function benchIommu(runs = 9): BenchResult[] {
  // arm-lpae first, so its loops are measured before the second format makes the call sites polymorphic.
  const t = translation(runs);
  const arm = { perPage: perPage(runs), bulk: bulk(runs) };
  const v = translation(runs, 'vtd');
  const vtd = { perPage: perPage(runs, 'vtd'), bulk: bulk(runs, 'vtd') };
  const ratio = (x: number, base: number): string => `${(x / base).toFixed(2)}× arm-lpae, same run`;
  return [
    { name: 'iommu_map + iommu_unmap, 1M × 4 KiB, one call per page', value: arm.perPage, unit: 'ns/page', target: 100 },
    { name: 'iommu_map + iommu_unmap, 4 GiB in one call each (4 KiB leaves)', value: arm.bulk, unit: 'ns/page', target: 100 },
    { name: 'translate 64 B, IOTLB hit', value: t.hit, unit: 'ns/access', target: 20 },
    { name: 'translate 64 B, IOTLB miss (4-level walk + insert)', value: t.miss, unit: 'ns/access', note: `IOTLB ${t.capacity} entries` },
    { name: 'VT-d tables: iommu_map + iommu_unmap, one call per page', value: vtd.perPage, unit: 'ns/page', target: 100, note: ratio(vtd.perPage, arm.perPage) },
    { name: 'VT-d tables: iommu_map + iommu_unmap, 4 GiB in one call each', value: vtd.bulk, unit: 'ns/page', target: 100, note: ratio(vtd.bulk, arm.bulk) },
    { name: 'VT-d tables: translate 64 B, IOTLB miss (4-level walk + insert)', value: v.miss, unit: 'ns/access', note: ratio(v.miss, t.miss) },
  ];
}
