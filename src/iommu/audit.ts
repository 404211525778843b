/**
 * @module iommu/audit
 * The IOMMU's accounting against itself: IOVAs in use are exactly those mapped in the page table
 * or waiting in the flush queue, no page-table leaf lies outside an allocated IOVA, page tables
 * are consistent, and the table pages taken from memory are the ones the tables hold.
 */
import { Iommu } from './iommu.ts';
import { IOVA_RANGE_CACHE_MAX_SIZE } from './iova-rcache.ts';
import { notInstance } from '../core/args.ts';

/**
 * Violations of the IOMMU's invariants (empty when sound).
 * @example machine.auditor.add({ name: 'iommu', run: () => auditIommu(machine.iommu!) })
 */
export function auditIommu(iommu: Iommu): string[] {
  if (!(iommu instanceof Iommu)) throw notInstance(iommu, Iommu, 'auditIommu', 'iommu');
  const out: string[] = [];
  const g = iommu.granule;
  let tablePages = 0;
  for (const d of iommu.domains) {
    const pt = d.paging?.pgtable;
    if (pt === undefined) continue;
    for (const v of pt.audit()) out.push(`domain ${d.id}: ${v}`);
    tablePages += pt.tablePages + pt.deferredPages;
    if (d.iovad === null) continue;
    // IOVA ranges handed out: the tree minus what sits in the range caches.
    const cached = new Set<number>();
    for (let o = 0; o < IOVA_RANGE_CACHE_MAX_SIZE; o++) for (const pfn of d.iovad.rcaches?.allCached(o) ?? []) cached.add(pfn);
    const inUse = d.iovad.ranges().filter(([lo]) => !cached.has(lo));
    const queued = d.fq === null ? [] : [...d.fq.entries()];
    const leaves: Array<[number, number]> = [];
    pt.forEachLeaf((iova, size) => { leaves.push([iova / g, (iova + size) / g - 1]); });
    // Sweep: every leaf inside an in-use range; every in-use range fully mapped or queued.
    inUse.sort((a, b) => a[0] - b[0]);
    leaves.sort((a, b) => a[0] - b[0]);
    const mappedPages = new Float64Array(inUse.length);
    let r = 0;
    for (const [lo, hi] of leaves) {
      while (r < inUse.length && (inUse[r] as [number, number])[1] < lo) r++;
      const range = inUse[r];
      if (range === undefined || lo < range[0] || hi > range[1]) {
        out.push(`domain ${d.id}: IOVA 0x${(lo * g).toString(16)} is mapped in the page table but not allocated (or already free)`);
        continue;
      }
      mappedPages[r] = (mappedPages[r] as number) + (hi - lo + 1);
    }
    const queuedAt = new Set(queued.map((e) => e.iovaPfn));
    inUse.forEach(([lo, hi], i) => {
      if (queuedAt.has(lo)) return;
      // alloc_iova_fast rounds sizes below 32 granules up to a power of two, so a range may be
      // larger than its mapping; one with nothing mapped and nothing queued is leaked.
      if (mappedPages[i] === 0) out.push(`domain ${d.id}: IOVA 0x${(lo * g).toString(16)} (${hi - lo + 1} pages) is allocated but nothing is mapped there and it is not waiting for a flush (leaked IOVA)`);
    });
    for (const e of queued) {
      // inUse is sorted and disjoint: the one range that could hold the entry, by bisection (a
      // scan per entry made a lazy domain's audit quadratic in its flush queue).
      let lo = 0;
      let hi = inUse.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if ((inUse[mid] as [number, number])[0] <= e.iovaPfn) lo = mid;
        else hi = mid - 1;
      }
      const range = inUse[lo];
      const hit = range !== undefined && e.iovaPfn >= range[0] && e.iovaPfn + e.pages - 1 <= range[1];
      if (!hit) out.push(`domain ${d.id}: flush-queue entry 0x${(e.iovaPfn * g).toString(16)} is not an allocated IOVA`);
    }
  }
  if (tablePages !== iommu.tablePagesInUse) out.push(`page tables hold ${tablePages} table pages, the IOMMU took ${iommu.tablePagesInUse} from memory`);
  return out;
}
