/**
 * @module iommu/map-domain
 * What the core map/unmap calls need from a domain ({@link IommuDomainLike}), the domain type flags
 * with the kernel's values, and {@link PagingDomain}: a paging domain that wires an IO page table to
 * an IOTLB (invalidation on sync and walk flush, table pages released after the sync).
 */
import { defaultContext } from '../core/context.ts';
import { type KernelLog } from '../core/kernel-log.ts';
import { iommu_iotlb_gather_add_page, type IommuIotlbGather, type IotlbSyncDomain } from './gather.ts';
import { type Iotlb } from './iotlb.ts';
import type { IoPgtableOps } from './pgtable-ops.ts';

// Local copies of imported bindings used on hot paths: when a script loads dmasim as CommonJS (tsx
// does so for a .ts file outside an ESM package), every read of an imported binding is a getter call.
const gatherAddPage = iommu_iotlb_gather_add_page;

/**
 * Domain type bits and types (include/linux/iommu.h values).
 * @example (domain.type & __IOMMU_DOMAIN_PAGING) !== 0 // has a page table
 */
export const __IOMMU_DOMAIN_PAGING = 1 << 0;
export const __IOMMU_DOMAIN_DMA_API = 1 << 1;
export const __IOMMU_DOMAIN_PT = 1 << 2;
export const __IOMMU_DOMAIN_DMA_FQ = 1 << 3;
export const __IOMMU_DOMAIN_SVA = 1 << 4;
export const __IOMMU_DOMAIN_PLATFORM = 1 << 5;
export const __IOMMU_DOMAIN_NESTED = 1 << 6;
/** All DMA blocked. @example iommu_iova_to_phys({ ...d, type: IOMMU_DOMAIN_BLOCKED }, iova) // 0 */
export const IOMMU_DOMAIN_BLOCKED = 0;
/** DMA address == physical address. @example iommu_iova_to_phys(identityDomain, 0x1234) // 0x1234 */
export const IOMMU_DOMAIN_IDENTITY = __IOMMU_DOMAIN_PT;
/** A paging domain owned by a driver or VFIO. @example new PagingDomain({ pgtable, type: IOMMU_DOMAIN_UNMANAGED }) */
export const IOMMU_DOMAIN_UNMANAGED = __IOMMU_DOMAIN_PAGING;
/** The DMA API's paging domain, strict invalidation. @example new PagingDomain({ pgtable, type: IOMMU_DOMAIN_DMA }) */
export const IOMMU_DOMAIN_DMA = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API;
/** The DMA API's paging domain, lazy invalidation through a flush queue. @example new PagingDomain({ pgtable, type: IOMMU_DOMAIN_DMA_FQ }) */
export const IOMMU_DOMAIN_DMA_FQ = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API | __IOMMU_DOMAIN_DMA_FQ;

/**
 * The part of struct iommu_domain (and its ops) the core calls use. `pgtable` stands for
 * map_pages / unmap_pages / iova_to_phys; null means the domain has none (-ENODEV / 0).
 * @example iommu_map(domain, iova, paddr, size, IOMMU_READ, GFP_KERNEL) // any IommuDomainLike
 */
export interface IommuDomainLike extends IotlbSyncDomain {
  /** IOMMU_DOMAIN_* flags. */
  readonly type: number;
  /** Supported page sizes, a sum of powers of two (0: none). */
  readonly pgsize_bitmap: number;
  readonly pgtable: IoPgtableOps | null;
  /** Where pr_err lines and WARNs go. */
  readonly klog: KernelLog;
  /** ops->iotlb_sync_map (caching-mode IOMMUs): 0 or -errno. */
  iotlb_sync_map?(iova: number, size: number): number;
  /** The iommu:map tracepoint: a successful iommu_map_nosync of [iova, iova + size) to paddr. */
  readonly onMap?: ((iova: number, paddr: number, size: number) => void) | null;
  /** The iommu:unmap tracepoint: an unmap of `size` bytes at iova that cleared `unmapped`. */
  readonly onUnmap?: ((iova: number, size: number, unmapped: number) => void) | null;
}

/**
 * How to build a {@link PagingDomain}.
 * @example new PagingDomain({ pgtable, iotlb: iommu.iotlb, asid: domainId, type: IOMMU_DOMAIN_DMA_FQ })
 */
export interface PagingDomainOptions {
  readonly pgtable: IoPgtableOps;
  /** The IOMMU's IOTLB; none: translations are not cached. */
  readonly iotlb?: Iotlb | null;
  /** Address-space id keying this domain's IOTLB entries (the domain id). Default 1. */
  readonly asid?: number;
  /** IOMMU_DOMAIN_* (default IOMMU_DOMAIN_DMA). */
  readonly type?: number;
  /** Default: the page table's kernel log. */
  readonly klog?: KernelLog;
  /**
   * VT-d caching mode: iotlb_sync_map invalidates the mapped range (the IOTLB may cache
   * not-present entries). Counted, otherwise harmless here since misses are never cached.
   */
  readonly cachingMode?: boolean;
}

/**
 * A paging domain: its page table, the IOTLB it shares, its address-space id.
 * - iotlb_sync: page-selective invalidation of the gathered range, then the gather's freed table
 *   pages go back to the allocator.
 * - flush_iotlb_all: domain-selective invalidation.
 * - the page table's walk flushes invalidate at once; cleared leaves are gathered page by page.
 * @example
 * const pt = new IoPageTable({}, new SimpleTablePageAllocator());
 * const domain = new PagingDomain({ pgtable: pt, iotlb: new Iotlb(), asid: 1 });
 * iommu_map(domain, 0x1000, 0x5000, 4096, IOMMU_READ, GFP_KERNEL) // 0
 */
export class PagingDomain implements IommuDomainLike {
  readonly type: number;
  readonly pgsize_bitmap: number;
  readonly pgtable: IoPgtableOps;
  readonly iotlb: Iotlb | null;
  readonly asid: number;
  readonly klog: KernelLog;
  readonly cachingMode: boolean;
  /** iotlb_sync calls. */
  syncs = 0;
  /** iotlb_sync_map calls. */
  syncMaps = 0;
  /** flush_iotlb_all calls. */
  flushAlls = 0;
  /**
   * Told of each IOTLB invalidation this domain issues (the IOMMU's trace hook; null: none). Set
   * once when the domain is made, so an untraced domain pays one null check per flush.
   */
  onFlush: ((what: 'iommu_iotlb_sync' | 'flush_iotlb_all', start: number, end: number) => void) | null = null;
  /** iommu:map and iommu:unmap, when the machine traces (see IommuDomainLike). */
  onMap: ((iova: number, paddr: number, size: number) => void) | null = null;
  onUnmap: ((iova: number, size: number, unmapped: number) => void) | null = null;

  constructor(opts: PagingDomainOptions) {
    this.pgtable = opts.pgtable;
    this.pgsize_bitmap = opts.pgtable.pgsize_bitmap;
    this.iotlb = opts.iotlb ?? null;
    this.asid = opts.asid ?? 1;
    this.type = opts.type ?? IOMMU_DOMAIN_DMA;
    this.klog = opts.klog ?? opts.pgtable.klog ?? defaultContext().klog;
    this.cachingMode = opts.cachingMode === true;
    const iotlb = this.iotlb;
    const asid = this.asid;
    opts.pgtable.tlb = {
      tlb_flush_walk: iotlb === null ? () => {} : (iova: number, size: number) => {
        iotlb.invalidateRange(asid, iova, size);
      },
      tlb_add_page: (gather: IommuIotlbGather, iova: number, granule: number) => {
        gatherAddPage(this, gather, iova, granule);
      },
    };
  }

  /**
   * ops->iotlb_sync: invalidate what the gather holds, then release its freed table pages.
   * @example iommu_iotlb_sync(domain, gather) // calls this, then empties the gather
   */
  iotlb_sync(gather: IommuIotlbGather): void {
    this.syncs++;
    this.onFlush?.('iommu_iotlb_sync', gather.start, gather.end);
    if (this.iotlb !== null) this.iotlb.sync(this.asid, gather.start, gather.end);
    if (gather.freelist.length !== 0) this.pgtable.free_table_pages(gather.freelist);
  }

  /**
   * ops->flush_iotlb_all: drop every IOTLB entry of this domain.
   * @example iommu_flush_iotlb_all(domain)
   */
  flush_iotlb_all(): void {
    this.flushAlls++;
    this.onFlush?.('flush_iotlb_all', 0, -1);
    this.iotlb?.invalidateAsid(this.asid);
  }

  /**
   * ops->iotlb_sync_map: only in caching mode.
   * @example iommu_sync_map(domain, iova, size) // 0
   */
  iotlb_sync_map(iova: number, size: number): number {
    if (!this.cachingMode) return 0;
    this.syncMaps++;
    this.iotlb?.invalidateRange(this.asid, iova, size);
    return 0;
  }
}
