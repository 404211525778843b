/**
 * @module safe/vvec
 * The safe layer over the page allocator and vmalloc: allocations that throw KernelError(ENOMEM)
 * instead of returning null, and free themselves when disposed (`using`).
 */
import type { KernelContext } from '../core/context.ts';
import { ENOMEM } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { GFP_KERNEL } from '../mm/gfp.ts';
import type { Mm } from '../mm/mm.ts';
import type { VmallocPageIter, VmArea } from '../mm/vmalloc.ts';

/**
 * A vmalloc'ed byte buffer (the Rust VVec<u8> shape): owns its pages, frees them on dispose, and
 * offers them through the page-iterator contract an SGTable consumes.
 * @example
 * using buf = VVec.create(machine.mm, 64 * 2 ** 20);
 * buf.write(0, bytes); buf.pageIter().pageCount // 16384
 */
export class VVec implements Disposable {
  private readonly _mm: Mm;
  readonly area: VmArea;

  private constructor(mm: Mm, area: VmArea) {
    this._mm = mm;
    this.area = area;
  }

  /**
   * Allocate `size` bytes.
   * @throws KernelError ENOMEM when memory runs out; EINVAL for a bad size.
   */
  static create(mm: Mm, size: number, gfp: number = GFP_KERNEL): VVec {
    const area = mm.vmalloc(size, gfp);
    if (area === null) throw new KernelError(ENOMEM, 'VVec.create', `vmalloc of ${size} bytes failed`, 'size');
    return new VVec(mm, area);
  }

  /** Bytes in the buffer. */
  get size(): number {
    return this.area.size;
  }

  /** The machine whose memory holds the buffer. */
  get ctx(): KernelContext {
    return this._mm.ctx;
  }

  /** The page iterator (VmallocPageIter semantics). */
  pageIter(): VmallocPageIter {
    return this.area.pageIter();
  }

  read(offset: number, len: number): Uint8Array {
    return this.area.read(offset, len);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.area.write(offset, bytes);
  }

  /** True until disposed. */
  get live(): boolean {
    return this.area.live;
  }

  /** vfree the buffer (once; later calls do nothing). */
  [Symbol.dispose](): void {
    if (this.area.live) this._mm.vfree(this.area);
  }
}

/**
 * 2^order physically contiguous pages that free themselves.
 * @example using p = Pages.alloc(machine.mm, 2); p.pfn
 */
export class Pages implements Disposable {
  private readonly _mm: Mm;
  readonly pfn: number;
  readonly order: number;
  private _live = true;

  private constructor(mm: Mm, pfn: number, order: number) {
    this._mm = mm;
    this.pfn = pfn;
    this.order = order;
  }

  /**
   * @throws KernelError ENOMEM when no block is free; EINVAL for a bad order.
   */
  static alloc(mm: Mm, order: number, gfp: number = GFP_KERNEL): Pages {
    const pfn = mm.alloc_pages(gfp, order);
    if (pfn === null) throw new KernelError(ENOMEM, 'Pages.alloc', `no free block of order ${order}`, 'order');
    return new Pages(mm, pfn, order);
  }

  [Symbol.dispose](): void {
    if (!this._live) return;
    this._live = false;
    this._mm.__free_pages(this.pfn, this.order);
  }
}
