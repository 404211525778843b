/**
 * @module iommu/pgtable-ops
 * The one interface every IO page-table format implements (struct io_pgtable_ops and what the
 * IOMMU core, the translator and the audits read): the domain code, the device-side translator and
 * the reports name this interface, never a format. Formats: `arm-lpae` (io-pgtable-arm's rules,
 * {@link IoPageTable}); a second, hardware-exact format plugs in beside it, and both pass one
 * conformance suite (test/iommu/pgtable-conformance.test.ts).
 *
 * Hot path: a translation walk reports through the `walk*` out-parameters of {@link lookup}
 * instead of returning an object (no allocation per device access).
 */
import type { KernelLog } from '../core/kernel-log.ts';
import type { IommuIotlbGather } from './gather.ts';
import type { TablePageAllocator } from './pgtable-alloc.ts';

/**
 * The IOMMU driver's TLB callbacks (struct iommu_flush_ops), which the page table calls as it
 * clears entries.
 * @example pt.tlb = { tlb_flush_walk: (iova, size) => iotlb.invalidateRange(asid, iova, size), tlb_add_page: (g, iova, gr) => iommu_iotlb_gather_add_page(domain, g, iova, gr) };
 */
export interface IoPgtableFlushOps {
  /** A table was unhooked outside any gather: invalidate [iova, iova + size) now. */
  tlb_flush_walk(iova: number, size: number, granule: number): void;
  /** A leaf of `granule` bytes at `iova` was cleared: gather it for the next sync. */
  tlb_add_page(gather: IommuIotlbGather, iova: number, granule: number): void;
}

/**
 * One leaf, as {@link IoPgtableOps.forEachLeaf} reports it.
 * @example const v: LeafVisitor = (iova, size, phys, prot) => out.push([iova, size, phys, prot]);
 */
export type LeafVisitor = (iova: number, size: number, phys: number, prot: number) => void;

/**
 * An IO page table of some format.
 * @example
 * const pt: IoPgtableOps = new IoPageTable({ ias: 48 }, new SimpleTablePageAllocator());
 * pt.map_pages(0x200000, 0x4000_0000, 2 ** 21, 1, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL) // 2097152
 * if (pt.lookup(0x200123)) pt.walkPhys + (0x200123 - pt.walkIova) // 0x40000123
 */
export interface IoPgtableOps {
  /** The format's name ('arm-lpae', ...). */
  readonly format: string;
  /** The granule (smallest page size) in bytes. */
  readonly granule: number;
  /** The supported page sizes (the domain's pgsize_bitmap). */
  readonly pgsize_bitmap: number;
  /** Where WARNs go. */
  readonly klog: KernelLog;
  /** Where table pages come from. */
  readonly alloc: TablePageAllocator;
  /** TLB callbacks; a domain sets them. */
  tlb: IoPgtableFlushOps | null;
  /** Has {@link free} been called? */
  readonly freed: boolean;
  /** Bumped whenever an entry is cleared or replaced: an IOTLB entry filled at an older epoch may be stale. */
  readonly epoch: number;
  /** Live table pages (the top-level one included). */
  readonly tablePages: number;
  /** Table pages allocated so far (a sequence number: read it before a map to roll back after). */
  readonly tableAllocs: number;
  /** Most table pages live at once. */
  readonly peakTablePages: number;
  /** Freed table pages handed out on gather freelists, not yet released. */
  readonly deferredPages: number;
  /** Bytes mapped by leaves. */
  readonly mappedBytes: number;

  /** The last successful {@link lookup}: first IOVA of the leaf. */
  readonly walkIova: number;
  /** The last successful {@link lookup}: first physical address of the leaf. */
  readonly walkPhys: number;
  /** The last successful {@link lookup}: the leaf's IOMMU_* prot bits. */
  readonly walkProt: number;
  /** The last successful {@link lookup}: log2 of the leaf size. */
  readonly walkShift: number;

  /** map_pages: bytes mapped (pgsize × leaves written), or a negative errno when none were. */
  map_pages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, gfp: number): number;
  /** unmap_pages: bytes unmapped; cleared leaves go on `gather` (null: flush at once). */
  unmap_pages(iova: number, pgsize: number, pgcount: number, gather: IommuIotlbGather | null): number;
  /** Walk for `iova`: true and the walk* fields set, or false when nothing maps it. No allocation. */
  lookup(iova: number): boolean;
  /** iova_to_phys: the physical address `iova` maps to, or 0 when unmapped. */
  iova_to_phys(iova: number): number;
  /** Release table pages an unmap left on a gather freelist. Empties the list. */
  free_table_pages(pfns: number[]): void;
  /** free_io_pgtable_ops: free every table page. Idempotent. */
  free(): void;
  /** Free the empty tables allocated since `since` (a failed map's rollback); the number freed. */
  rollbackTablesSince(since: number): number;
  /** Every leaf in IOVA order. */
  forEachLeaf(visit: LeafVisitor): void;
  /** The pfns of every live table page. */
  tablePfns(): number[];
  /** Live tables with no entries (reported by audits and pictures). */
  emptyTables(): number;
  /** The table's own invariants, as problem strings ([] when sound). */
  audit(): string[];
}
