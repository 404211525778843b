/**
 * @module scatterlist/sgtable
 * The safe scatter-gather table, mirroring rust/kernel/scatterlist.rs. `SGTable<Borrowed>` is a
 * read-only view of a table someone else owns; the `Owned` form (which builds, DMA-maps and
 * frees its table) joins it with the DMA layer.
 *
 * Scatter-gather I/O lets a device move one buffer that is contiguous in the CPU's virtual space
 * but scattered in physical memory: the table lists the physical pieces (CPU entries) and, once
 * mapped, the address ranges the device uses (DMA segments, possibly fewer after IOMMU merging).
 */
import { EBUSY, EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Scatterlist } from './entry.ts';
import { sg_next } from './entry.ts';
import { SgTable } from './table.ts';
import type { Bound } from '../device/context.ts';
import type { Device } from '../device/device.ts';
import type { DmaDirection } from '../dma/direction.ts';
import type { OwnedSGTable, PageProvider } from './sgtable-owned.ts';

type OwnedFactory = <P extends PageProvider>(dev: Device<Bound>, pages: P, dir: DmaDirection, gfp: number) => OwnedSGTable<P>;
let ownedFactory: OwnedFactory | undefined;

/**
 * @internal sgtable-owned.ts registers the Owned constructor (avoids an import cycle), once.
 * @throws KernelError EINVAL for a non-function, EBUSY once one is registered (a second one would
 *   change every later SGTable.create).
 */
export function registerOwnedFactory(f: OwnedFactory): void {
  if (typeof f !== 'function') throw new KernelError(EINVAL, 'registerOwnedFactory', 'expected a function', 'f');
  if (ownedFactory !== undefined) throw new KernelError(EBUSY, 'registerOwnedFactory', 'the Owned constructor is registered already', 'f');
  ownedFactory = f;
}

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
  readonly #sg: Scatterlist;

  /** @internal */
  constructor(sg: Scatterlist) {
    this.#sg = sg;
  }

  /** DMA address of the segment (valid on mapped tables). */
  dmaAddress(): number {
    return this.#sg.dma_address;
  }

  /** Length of the DMA segment in bytes. */
  dmaLen(): number {
    return this.#sg.dma_length;
  }

  /** Page frame of the CPU entry. */
  page(): number {
    return this.#sg.page;
  }

  /** Offset into the first page. */
  offset(): number {
    return this.#sg.offset;
  }

  /** CPU length in bytes. */
  length(): number {
    return this.#sg.length;
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
    if (ownedFactory === undefined) throw new Error('SGTable.create: import dmasim (or scatterlist/index.ts), not sgtable.ts alone');
    return ownedFactory(dev, pages, dir, gfp);
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
    yield* this.#walk(this.raw.nents, 'iter');
  }

  /** The CPU entries, bounded by orig_nents (for_each_sgtable_sg). */
  *entries(): Generator<SGEntry, void, undefined> {
    yield* this.#walk(this.raw.orig_nents, 'entries');
  }

  *#walk(count: number, fn: string): Generator<SGEntry, void, undefined> {
    let sg = this.raw.sgl;
    for (let i = 0; i < count; i++) {
      if (sg === null) throw new KernelError(EINVAL, `SGTable.${fn}`, `the table ends after ${i} of ${count} entries (freed, or its counts are wrong)`);
      yield new SGEntry(sg);
      sg = sg_next(sg);
    }
  }
}
