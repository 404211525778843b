/**
 * @module iommu/pgtable-alloc
 * Where IO page-table pages come from. The Machine backs this with its page allocator (owner
 * 'pgtable'); {@link SimpleTablePageAllocator} is a stand-alone one for tests and benchmarks.
 */
import { checkObject } from '../core/args.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';

/**
 * The allocator an IO page table takes its table pages from. `bytes` is the table size (the
 * granule: 4096, 16384 or 65536); an allocator for 4 KiB tables only may ignore it.
 * @example
 * const alloc: TablePageAllocator = { allocTablePage: () => mm.alloc_pages(GFP_KERNEL, 0, 'pgtable'),
 *   freeTablePage: (pfn) => mm.__free_pages(pfn, 0) };
 */
export interface TablePageAllocator {
  /** A zeroed table page: its first pfn, or null when memory is exhausted. */
  allocTablePage(bytes: number): number | null;
  /** Give a table page back. */
  freeTablePage(pfn: number, bytes: number): void;
}

/**
 * Refuse anything that is not a {@link TablePageAllocator} (every page-table format's constructor).
 * @throws KernelError EINVAL naming `alloc`.
 * @example checkTableAllocator(new SimpleTablePageAllocator(), 'alloc_io_pgtable_ops')
 */
export function checkTableAllocator(alloc: unknown, fn: string): asserts alloc is TablePageAllocator {
  const a = checkObject(alloc, fn, 'alloc') as Partial<TablePageAllocator>;
  if (typeof a.allocTablePage !== 'function' || typeof a.freeTablePage !== 'function') {
    throw new KernelError(EINVAL, fn, 'expected a table-page allocator (allocTablePage, freeTablePage)', 'alloc');
  }
}

/**
 * A table-page allocator over a private pfn range: lowest free pfn first, with a limit and counts,
 * so tests can check that every page came back.
 * @example
 * const a = new SimpleTablePageAllocator({ limit: 3 });
 * a.allocTablePage(4096) // 0x100000 (first pfn), ...; the 4th call returns null
 */
export class SimpleTablePageAllocator implements TablePageAllocator {
  // INVARIANT: inUse === allocs - frees; every pfn in _free was handed out before and came back;
  //   _live holds exactly the pfns handed out and not yet freed.
  readonly basePfn: number;
  readonly limit: number;
  allocs = 0;
  frees = 0;
  private _next: number;
  private readonly _free: number[] = [];
  private readonly _live = new Set<number>();
  private readonly _track: boolean;

  /**
   * @param opts.basePfn first pfn handed out (default 0x100000, i.e. 4 GiB).
   * @param opts.limit most pages live at once (default unlimited).
   * @param opts.track keep the set of live pfns to catch double frees (default true; off for benchmarks).
   */
  constructor(opts: { basePfn?: number; limit?: number; track?: boolean } = {}) {
    checkObject(opts, 'SimpleTablePageAllocator', 'opts');
    this.basePfn = opts.basePfn ?? 0x100000;
    this.limit = opts.limit ?? Number.POSITIVE_INFINITY;
    this._next = this.basePfn;
    this._track = opts.track ?? true;
  }

  /**
   * Table pages handed out and not yet freed.
   * @example expect(alloc.inUse).toBe(pt.tablePages + pt.deferredPages)
   */
  get inUse(): number {
    return this.allocs - this.frees;
  }

  /**
   * A table page's pfn (the lowest freed one first, else the next new one), or null at the limit.
   * @example alloc.allocTablePage(4096) // 0x100000
   */
  allocTablePage(bytes: number): number | null {
    if (this.inUse >= this.limit) return null;
    const pages = Math.max(1, bytes / 4096);
    let pfn: number;
    if (this._free.length > 0) {
      pfn = this._free.pop() as number;
    } else {
      pfn = this._next;
      this._next += pages;
    }
    this.allocs++;
    if (this._track) this._live.add(pfn);
    return pfn;
  }

  /**
   * Give a page back; with tracking, freeing a pfn that is not live throws.
   * @example alloc.freeTablePage(pfn, 4096)
   */
  freeTablePage(pfn: number, _bytes: number): void {
    if (this._track) {
      if (!this._live.has(pfn)) throw new Error(`SimpleTablePageAllocator: freeing pfn ${pfn}, which is not a live table page`);
      this._live.delete(pfn);
    }
    this.frees++;
    this._free.push(pfn);
  }

  /**
   * Is `pfn` a live table page? (Always false when not tracking.)
   * @example alloc.isLive(pt.tablePfns()[0]) // true
   */
  isLive(pfn: number): boolean {
    return this._live.has(pfn);
  }
}
