/**
 * @module iommu/gather
 * struct iommu_iotlb_gather and its helpers (include/linux/iommu.h): an unmap collects the IOVA range
 * whose IOTLB entries must go, and the page-table pages it freed, and one iommu_iotlb_sync
 * invalidates the range and releases the pages. add_page syncs early when the page size changes or
 * the new page is disjoint from (neither overlapping nor adjacent to) what is gathered.
 *
 * `end` is inclusive; an empty gather has start = ULONG_MAX (2^64 here) and end = 0, as
 * iommu_iotlb_gather_init leaves it.
 */

/**
 * ULONG_MAX as a number: 2^64 (above every address a caller can pass).
 * @example new IommuIotlbGather().start === ULONG_MAX // true
 */
export const ULONG_MAX = 2 ** 64;
import { checkObject, notInstance } from '../core/args.ts';

/**
 * What the gather helpers need from a domain: its `iotlb_sync` op (none: nothing caches translations).
 * @example const d: IotlbSyncDomain = { iotlb_sync: (g) => iotlb.invalidateRange(asid, g.start, g.end - g.start + 1) };
 */
export interface IotlbSyncDomain {
  /**
   * ops->iotlb_sync: invalidate [gather.start, gather.end] and release gather.freelist (the freed
   * table pages), which may only be reused once the IOTLB can no longer walk them.
   */
  iotlb_sync?(gather: IommuIotlbGather): void;
  /** ops->flush_iotlb_all. */
  flush_iotlb_all?(): void;
}

/**
 * struct iommu_iotlb_gather.
 * @example
 * const g = new IommuIotlbGather();
 * iommu_unmap_fast(domain, iova, size, g); iommu_iotlb_sync(domain, g);
 */
export class IommuIotlbGather {
  // INVARIANT: empty ⇔ start === ULONG_MAX && end === 0 && pgsize === 0; otherwise start <= end and
  //   [start, end] covers every page added since the last init.
  start = ULONG_MAX;
  /** Inclusive end. */
  end = 0;
  /** Page size of the gathered pages (0: none yet, or gathered by range). */
  pgsize = 0;
  /** Page-table pages (pfns) freed by the unmap, to release after the invalidation. */
  freelist: number[] = [];
  /** A flush queue will flush the whole IOTLB later: drivers skip per-page invalidation. */
  queued = false;
  /** Syncs issued early by add_page (for reports). */
  earlySyncs = 0;
}

/**
 * iommu_iotlb_gather_init: empty the gather (a fresh, empty freelist; `queued` cleared).
 * @example iommu_iotlb_gather_init(g); g.start === ULONG_MAX // true
 */
export function iommu_iotlb_gather_init(gather: IommuIotlbGather): void {
  if (!(gather instanceof IommuIotlbGather)) throw notInstance(gather, IommuIotlbGather, 'iommu_iotlb_gather_init', 'gather');
  gather.start = ULONG_MAX;
  gather.end = 0;
  gather.pgsize = 0;
  if (gather.freelist.length !== 0) gather.freelist = [];
  gather.queued = false;
}

// INVARIANT: gatherPool holds at most GATHER_POOL gathers no unmap is using.
const gatherPool: IommuIotlbGather[] = [];
const GATHER_POOL = 8;

/**
 * @internal An empty gather for one unmap. The kernel's lives on the unmap's stack; a small pool
 * stands in, so an unmap started while another runs (from a kernel-log listener on a WARN inside
 * it) takes another gather instead of emptying the one in use.
 * @example const g = takeGather(); ...; iommu_iotlb_sync(domain, g); giveGather(g);
 */
export function takeGather(): IommuIotlbGather {
  const g = gatherPool.pop();
  if (g === undefined) return new IommuIotlbGather();
  iommu_iotlb_gather_init(g);
  return g;
}

/** @internal Give back a gather from {@link takeGather} once its unmap is done with it. */
export function giveGather(g: IommuIotlbGather): void {
  if (gatherPool.length < GATHER_POOL) gatherPool.push(g);
}

/**
 * iommu_iotlb_gather_is_disjoint: would [iova, iova + size) leave a gap next to (or be apart from)
 * the gathered range? False for an empty gather (end === 0).
 * @example
 * iommu_iotlb_gather_add_range(g, 0x1000, 0x1000);
 * iommu_iotlb_gather_is_disjoint(g, 0x2000, 0x1000) // false (adjacent)
 * iommu_iotlb_gather_is_disjoint(g, 0x4000, 0x1000) // true
 */
export function iommu_iotlb_gather_is_disjoint(gather: IommuIotlbGather, iova: number, size: number): boolean {
  if (!(gather instanceof IommuIotlbGather)) throw notInstance(gather, IommuIotlbGather, 'iommu_iotlb_gather_is_disjoint', 'gather');
  const end = iova + size - 1;
  return gather.end !== 0 && (end + 1 < gather.start || iova > gather.end + 1);
}

/**
 * iommu_iotlb_gather_add_range: widen the gathered range to cover [iova, iova + size).
 * @example iommu_iotlb_gather_add_range(g, 0x1000, 0x1000); [g.start, g.end] // [0x1000, 0x1fff]
 */
export function iommu_iotlb_gather_add_range(gather: IommuIotlbGather, iova: number, size: number): void {
  if (!(gather instanceof IommuIotlbGather)) throw notInstance(gather, IommuIotlbGather, 'iommu_iotlb_gather_add_range', 'gather');
  const end = iova + size - 1;
  if (gather.start > iova) gather.start = iova;
  if (gather.end < end) gather.end = end;
}

/**
 * iommu_iotlb_gather_add_page: gather one page of `size` bytes; first sync what is gathered when
 * its page size differs or the new page is disjoint from it.
 * @example
 * iommu_iotlb_gather_add_page(domain, g, 0x1000, 4096);
 * iommu_iotlb_gather_add_page(domain, g, 0x200000, 2 ** 21); // page size changed: synced first
 */
export function iommu_iotlb_gather_add_page(domain: IotlbSyncDomain, gather: IommuIotlbGather, iova: number, size: number): void {
  if (!(gather instanceof IommuIotlbGather)) throw notInstance(gather, IommuIotlbGather, 'iommu_iotlb_gather_add_page', 'gather');
  if ((gather.pgsize !== 0 && gather.pgsize !== size) || iommu_iotlb_gather_is_disjoint(gather, iova, size)) {
    gather.earlySyncs++;
    // The early sync must not drop table pages already gathered: iommu_iotlb_sync releases them
    // through the domain, which is what the kernel's drivers do on every sync.
    iommu_iotlb_sync(domain, gather);
  }
  gather.pgsize = size;
  iommu_iotlb_gather_add_range(gather, iova, size);
}

/**
 * iommu_iotlb_sync: the domain's iotlb_sync op (invalidate, release freed table pages), then init.
 * @example iommu_unmap_fast(domain, iova, size, g); iommu_iotlb_sync(domain, g);
 */
export function iommu_iotlb_sync(domain: IotlbSyncDomain, gather: IommuIotlbGather): void {
  checkObject(domain, 'iommu_iotlb_sync', 'domain');
  if (!(gather instanceof IommuIotlbGather)) throw notInstance(gather, IommuIotlbGather, 'iommu_iotlb_sync', 'gather');
  if (domain.iotlb_sync !== undefined) domain.iotlb_sync(gather);
  iommu_iotlb_gather_init(gather);
}

/**
 * iommu_flush_iotlb_all: drop every cached translation of the domain.
 * @example iommu_flush_iotlb_all(domain)
 */
export function iommu_flush_iotlb_all(domain: IotlbSyncDomain): void {
  checkObject(domain, 'iommu_flush_iotlb_all', 'domain');
  if (domain.flush_iotlb_all !== undefined) domain.flush_iotlb_all();
}
