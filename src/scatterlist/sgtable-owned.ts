/**
 * @module scatterlist/sgtable-owned
 * SGTable<Owned<P>>: a table that owns its pages, its entries and its DMA mapping, after
 * rust/kernel/scatterlist.rs. Built from a page provider (a vmalloc buffer, or anything with the
 * page-iterator contract), mapped for a bound device, unmapped by unbind (Devres) or by dispose.
 * Disposal follows the Rust field order: unmap, then free the table's entries, then the pages.
 */
import type { KernelContext } from '../core/context.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Bound } from '../device/context.ts';
import { Devres } from '../device/devres.ts';
import type { Device } from '../device/device.ts';
import { valid_dma_direction, type DmaDirection } from '../dma/direction.ts';
import { dma_map_sgtable, dma_max_mapping_size, dma_unmap_sgtable } from '../dma/mapping.ts';
import { sg_alloc_table_from_pages_segment } from './from-pages.ts';
import { SGEntry, SGTable, registerOwnedFactory, type Owned } from './sgtable.ts';
import { SgTable, sg_free_table } from './table.ts';
import { sg_next } from './entry.ts';

/** What SGTable.create takes ownership of: pages with the VmallocPageIter contract. */
export interface PageProvider {
  /** The page iterator: `size` bytes over `pageCount` pages, and the pfns in order. */
  pageIter(): { readonly size: number; readonly pageCount: number; pfns(): ArrayLike<number> };
  /** The machine whose memory holds the pages, when the provider knows (VVec, VmArea do). */
  readonly ctx?: KernelContext | undefined;
}

const UINT_MAX = 0xffffffff;

function disposeIfDisposable(p: unknown): void {
  const d = (p as Partial<Disposable> | null)?.[Symbol.dispose];
  if (typeof d === 'function') d.call(p);
}

/**
 * An owned, DMA-mapped scatter-gather table.
 * @example
 * using buf = VVec.create(machine.mm, 64 * 2 ** 20);
 * using table = OwnedSGTable.create(dev, buf, DMA_TO_DEVICE, GFP_KERNEL);
 * for (const seg of table.iter()) program(seg.dmaAddress(), seg.dmaLen());
 */
export class OwnedSGTable<P extends PageProvider> extends SGTable<Owned<P>> implements Disposable {
  readonly #mapping: Devres<SgTable>;
  readonly #pages: P;
  #disposed = false;

  private constructor(raw: SgTable, mapping: Devres<SgTable>, pages: P) {
    super(raw);
    this.#mapping = mapping;
    this.#pages = pages;
  }

  /**
   * Build and map a table over `pages` for the bound device `dev`, taking ownership of the pages.
   * max_segment is dma_max_mapping_size(dev) clamped to u32 (0 meaning u32::MAX), as the Rust code.
   * @throws KernelError EINVAL for a provider with no pages (the C builder would dereference NULL)
   *   or a bad direction; the builder's or dma_map_sgtable's errno otherwise. Nothing is left
   *   allocated or mapped on failure; the pages stay the caller's.
   */
  static override create<P extends PageProvider>(dev: Device<Bound>, pages: P, dir: DmaDirection, gfp: number): OwnedSGTable<P> {
    dev.assertBound('SGTable::new');
    if (!valid_dma_direction(dir)) throw new KernelError(EINVAL, 'SGTable::new', `invalid DMA direction ${String(dir)}`, 'dir');
    if (pages?.ctx !== undefined && pages.ctx !== dev.host.ctx) {
      throw new KernelError(EINVAL, 'SGTable::new', `the pages belong to machine ${pages.ctx.name}, ${dev.name} to ${dev.host.ctx.name}`, 'pages');
    }
    const iter = pages.pageIter();
    if (iter.pageCount === 0) throw new KernelError(EINVAL, 'SGTable::new', 'no pages to build a table from', 'pages');
    const maxMapping = dma_max_mapping_size(dev);
    const max_segment = maxMapping === 0 || maxMapping > UINT_MAX ? UINT_MAX : maxMapping;
    const raw = new SgTable(dev.host.ctx);
    let ret = sg_alloc_table_from_pages_segment(raw, iter.pfns(), iter.pageCount, 0, iter.size, max_segment, gfp);
    if (ret !== 0) throw new KernelError(-ret, 'SGTable::new', 'sg_alloc_table_from_pages_segment failed');
    ret = dma_map_sgtable(dev, raw, dir, 0);
    if (ret !== 0) {
      sg_free_table(raw);
      throw new KernelError(-ret, 'SGTable::new', 'dma_map_sgtable failed');
    }
    const mapping = new Devres(dev, raw, (sgt) => dma_unmap_sgtable(dev, sgt, dir, 0), 'DmaMappedSgt');
    return new OwnedSGTable(raw, mapping, pages);
  }

  /** False once unbind revoked the mapping (or the table was disposed). */
  get mapped(): boolean {
    return this.#mapping.tryAccess() !== undefined;
  }

  /**
   * The DMA segments (address, length), bounded by nents.
   * @throws KernelError EINVAL once the mapping was revoked by unbind or the table disposed:
   *   the addresses would be stale.
   */
  override *iter(): Generator<SGEntry, void, undefined> {
    const raw = this.#mapping.tryAccess();
    if (raw === undefined || this.#disposed) throw new KernelError(EINVAL, 'SGTable::iter', this.#disposed ? 'the table was disposed' : 'the DMA mapping was revoked when the device was unbound');
    let sg = raw.sgl;
    for (let i = 0; i < raw.nents && sg !== null; i++) {
      yield new SGEntry(sg);
      sg = sg_next(sg);
    }
  }

  /**
   * Drop the table: unmap it (unless unbind already did; a dispose arriving while unbind is
   * unmapping waits for it), then free the table's entries (sg_free_table frees the entries, not
   * the pages), then dispose the pages. A second call does nothing.
   */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#mapping.dispose(() => {
      sg_free_table(this.raw);
      disposeIfDisposable(this.#pages);
    });
  }
}

registerOwnedFactory((dev, pages, dir, gfp) => OwnedSGTable.create(dev, pages, dir, gfp));
