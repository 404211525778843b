/**
 * @module iommu/audit
 * The IOMMU's accounting against itself: IOVAs in use are exactly those mapped in the page table
 * or waiting in the flush queue, no page-table leaf lies outside an allocated IOVA, page tables
 * are consistent, and the table pages taken from memory are the ones the tables hold.
 */
import { Iommu } from './iommu.ts';
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
    // IOVA ranges handed out: the tree minus what sits in the range caches, in address order (the
    // tree's), as two columns; no object per range, leaf or queued entry (this audit runs at every
    // point of a failure sweep: 37-39 -> 21 us after a ring fill; bench/RESULTS.md, session 10).
    const cached = new Set<number>();
    d.iovad.rcaches?.forEachCached((pfn) => { cached.add(pfn); });
    const los: number[] = [];
    const his: number[] = [];
    const tree = d.iovad.rbroot;
    for (let n = tree.first(); n !== null && n !== d.iovad.anchor; n = tree.next(n)) {
      if (cached.has(n.pfn_lo)) continue;
      los.push(n.pfn_lo);
      his.push(n.pfn_hi);
    }
    const nRanges = los.length;
    // The range holding pfn: the last whose start is at or below it (-1 when none), by bisection.
    const rangeAt = (pfn: number): number => {
      let lo = 0;
      let hi = nRanges - 1;
      if (hi < 0 || (los[0] as number) > pfn) return -1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if ((los[mid] as number) <= pfn) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    // Sweep: every leaf inside an in-use range; every in-use range mapped or queued.
    const mappedPages = new Float64Array(nRanges);
    pt.forEachLeaf((iova, size) => {
      const lo = iova / g;
      const hi = (iova + size) / g - 1;
      const r = rangeAt(lo);
      if (r < 0 || hi > (his[r] as number)) {
        out.push(`domain ${d.id}: IOVA 0x${iova.toString(16)} is mapped in the page table but not allocated (or already free)`);
        return;
      }
      mappedPages[r] = (mappedPages[r] as number) + (hi - lo + 1);
    });
    // A range whose start a queued entry names is waiting for a flush; an entry outside every
    // range is reported after the leaks, as before.
    const queuedStart = new Uint8Array(nRanges);
    let strayQueued: string[] | null = null;
    if (d.fq !== null) {
      for (const e of d.fq.entries()) {
        // The ranges are sorted and disjoint: the one that could hold the entry, by bisection (a
        // scan per entry made a lazy domain's audit quadratic in its flush queue).
        const r = rangeAt(e.iovaPfn);
        if (r >= 0 && (los[r] as number) === e.iovaPfn) queuedStart[r] = 1;
        if (r < 0 || e.iovaPfn + e.pages - 1 > (his[r] as number)) {
          (strayQueued ??= []).push(`domain ${d.id}: flush-queue entry 0x${(e.iovaPfn * g).toString(16)} is not an allocated IOVA`);
        }
      }
    }
    for (let r = 0; r < nRanges; r++) {
      if (queuedStart[r] === 1) continue;
      // alloc_iova_fast rounds sizes below 32 granules up to a power of two, so a range may be
      // larger than its mapping; one with nothing mapped and nothing queued is leaked.
      if (mappedPages[r] === 0) out.push(`domain ${d.id}: IOVA 0x${((los[r] as number) * g).toString(16)} (${(his[r] as number) - (los[r] as number) + 1} pages) is allocated but nothing is mapped there and it is not waiting for a flush (leaked IOVA)`);
    }
    if (strayQueued !== null) out.push(...strayQueued);
  }
  if (tablePages !== iommu.tablePagesInUse) out.push(`page tables hold ${tablePages} table pages, the IOMMU took ${iommu.tablePagesInUse} from memory`);
  return out;
}
