/**
 * @module safe/sgtable
 * The safe scatter-gather table, after rust/kernel/scatterlist.rs. `SGTable<Borrowed>` is a
 * read-only view of a table someone else owns; `SGTable<Owned<P>>` (OwnedSGTable) owns its pages,
 * its entries and its DMA mapping: built from a page provider (a VVec, a vmalloc area, anything
 * with the page-iterator contract), mapped for a bound device, unmapped by unbind (Devres) or by
 * dispose, in the Rust field order: unmap, then free the table's entries, then the pages.
 *
 * Scatter-gather I/O lets a device move one buffer that is contiguous in the CPU's virtual space
 * but scattered in physical memory: the table lists the physical pieces (CPU entries) and, once
 * mapped, the address ranges the device uses (DMA segments, possibly fewer after IOMMU merging).
 * Both type-states live in this one module: the Borrowed view's `create` builds the Owned form,
 * and the Owned form extends the view.
 */
import type { KernelContext } from '../core/context.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Bound } from '../device/context.ts';
import type { Device } from '../device/device.ts';
import { valid_dma_direction, type DmaDirection } from '../dma/api/direction.ts';
import { dma_map_sgtable, dma_max_mapping_size, dma_sync_sgtable_for_cpu, dma_sync_sgtable_for_device, dma_unmap_sgtable } from '../dma/api/mapping.ts';
import { sg_next, type Scatterlist } from '../scatterlist/entry.ts';
import { sg_alloc_table_from_pages_segment } from '../scatterlist/from-pages.ts';
import { SgTable, sg_free_table } from '../scatterlist/table.ts';
import { Devres } from './devres.ts';

declare const STATE: unique symbol;

/** Type-state: a view of a table owned elsewhere. */
export interface Borrowed { readonly [STATE]: 'borrowed' }

/** Type-state: the table owns its pages `P`, its entries and its DMA mapping. */
export interface Owned<P> { readonly [STATE]: 'owned'; readonly pages: P }

/**
 * One entry of an SGTable, read-only.
 * @example for (const e of table.iter()) console.log(e.dmaAddress(), e.dmaLen());
 */
export class SGEntry {
  private readonly _sg: Scatterlist;

  /** @internal */
  constructor(sg: Scatterlist) {
    this._sg = sg;
  }

  /** DMA address of the segment (valid on mapped tables). */
  dmaAddress(): number {
    return this._sg.dma_address;
  }

  /** Length of the DMA segment in bytes. */
  dmaLen(): number {
    return this._sg.dma_length;
  }

  /** Page frame of the CPU entry. */
  page(): number {
    return this._sg.page;
  }

  /** Offset into the first page. */
  offset(): number {
    return this._sg.offset;
  }

  /** CPU length in bytes. */
  length(): number {
    return this._sg.length;
  }
}

/**
 * A safe scatter-gather table. `S` is its type-state.
 * @example
 * const view = SGTable.borrow(rawTable);
 * for (const seg of view.iter()) device.program(seg.dmaAddress(), seg.dmaLen());
 */
export class SGTable<S = Borrowed> {
  /** @internal the raw table this view reads */
  protected readonly raw: SgTable;
  declare readonly [STATE]: S;

  /** @internal use SGTable.borrow */
  protected constructor(raw: SgTable) {
    this.raw = raw;
  }

  /**
   * Build and DMA-map a table over `pages` for a bound device (SGTable::new): see
   * {@link OwnedSGTable.create}.
   * @example using t = SGTable.create(dev, VVec.create(mm, 1 << 20), DMA_TO_DEVICE, GFP_KERNEL);
   */
  static create<P extends PageProvider>(dev: Device<Bound>, pages: P, dir: DmaDirection, gfp: number): OwnedSGTable<P> {
    return OwnedSGTable.create(dev, pages, dir, gfp);
  }

  /**
   * A read-only view of a table someone else owns and keeps alive.
   * @throws KernelError EINVAL when `raw` is not an SgTable.
   * @example const view = SGTable.borrow(sgt);
   */
  static borrow(raw: SgTable): SGTable<Borrowed> {
    if (!(raw instanceof SgTable)) throw new KernelError(EINVAL, 'SGTable.borrow', 'expected a struct sg_table (SgTable)', 'raw');
    return new SGTable<Borrowed>(raw);
  }

  /** DMA segments (nents). */
  get nents(): number {
    return this.raw.nents;
  }

  /** CPU entries (orig_nents). */
  get origNents(): number {
    return this.raw.orig_nents;
  }

  /** The DMA segments, bounded by nents (for_each_sgtable_dma_sg). */
  *iter(): Generator<SGEntry, void, undefined> {
    yield* this._walk(this.raw.nents, 'iter');
  }

  /** The CPU entries, bounded by orig_nents (for_each_sgtable_sg). */
  *entries(): Generator<SGEntry, void, undefined> {
    yield* this._walk(this.raw.orig_nents, 'entries');
  }

  private *_walk(count: number, fn: string): Generator<SGEntry, void, undefined> {
    let sg = this.raw.sgl;
    for (let i = 0; i < count; i++) {
      if (sg === null) throw new KernelError(EINVAL, `SGTable.${fn}`, `the table ends after ${i} of ${count} entries (freed, or its counts are wrong)`);
      yield new SGEntry(sg);
      sg = sg_next(sg);
    }
  }
}

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
  private readonly _mapping: Devres<SgTable>;
  private readonly _pages: P;
  private readonly _dir: DmaDirection;
  private _disposed = false;

  private constructor(raw: SgTable, mapping: Devres<SgTable>, pages: P, dir: DmaDirection) {
    super(raw);
    this._mapping = mapping;
    this._pages = pages;
    this._dir = dir;
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
    return new OwnedSGTable(raw, mapping, pages, dir);
  }

  /** False once unbind revoked the mapping (or the table was disposed). */
  get mapped(): boolean {
    return this._mapping.tryAccess() !== undefined;
  }

  /**
   * The DMA segments (address, length), bounded by nents.
   * @throws KernelError EINVAL once the mapping was revoked by unbind or the table disposed:
   *   the addresses would be stale.
   */
  override *iter(): Generator<SGEntry, void, undefined> {
    const raw = this._live('SGTable::iter');
    let sg = raw.sgl;
    for (let i = 0; i < raw.nents && sg !== null; i++) {
      yield new SGEntry(sg);
      sg = sg_next(sg);
    }
  }

  /**
   * Hand the buffer to the CPU (dma_sync_sgtable_for_cpu with the table's direction): after the
   * device wrote it, before the CPU reads it, while the table stays mapped.
   * @throws KernelError EINVAL once the mapping was revoked by unbind or the table disposed.
   * @example table.syncForCpu(); const bytes = buf.read(0, 512);
   */
  syncForCpu(): void {
    dma_sync_sgtable_for_cpu(this._mapping.device(), this._live('SGTable::sync_for_cpu'), this._dir);
  }

  /**
   * Hand the buffer back to the device (dma_sync_sgtable_for_device with the table's direction):
   * after the CPU wrote it, before the device reads it again.
   * @throws KernelError EINVAL once the mapping was revoked by unbind or the table disposed.
   * @example buf.write(0, header); table.syncForDevice(); ring.kick();
   */
  syncForDevice(): void {
    dma_sync_sgtable_for_device(this._mapping.device(), this._live('SGTable::sync_for_device'), this._dir);
  }

  /** The DMA direction the table was mapped with. */
  get direction(): DmaDirection {
    return this._dir;
  }

  private _live(fn: string): SgTable {
    const raw = this._mapping.tryAccess();
    if (raw === undefined || this._disposed) throw new KernelError(EINVAL, fn, this._disposed ? 'the table was disposed' : 'the DMA mapping was revoked when the device was unbound');
    return raw;
  }

  /**
   * Drop the table: unmap it (unless unbind already did; a dispose arriving while unbind is
   * unmapping waits for it), then free the table's entries (sg_free_table frees the entries, not
   * the pages), then dispose the pages. A second call does nothing.
   */
  [Symbol.dispose](): void {
    if (this._disposed) return;
    this._disposed = true;
    this._mapping.dispose(() => {
      sg_free_table(this.raw);
      disposeIfDisposable(this._pages);
    });
  }
}

