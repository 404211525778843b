/**
 * @module mm/slab
 * kmalloc: small physically contiguous objects from power-of-two caches (8 bytes .. 8 KiB) carved
 * out of slab pages; larger requests take whole pages (kmalloc_large). Addresses are direct-map
 * virtual addresses, so dma_map_single and sg_init_one work on them.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import type { KernelContext } from '../core/context.ts';
import { PAGE_SIZE, getOrder } from './constants.ts';
import { __GFP_NOWARN, __GFP_ZERO } from './gfp.ts';
import type { Mm } from './mm.ts';
import { ChurnMap } from '../core/churn-map.ts';

/** Smallest and largest slab object sizes. */
export const KMALLOC_MIN_SIZE = 8;
export const KMALLOC_MAX_CACHE_SIZE = 8192;

interface Slab { readonly pfn: number; readonly order: number; inUse: number }

/**
 * The kmalloc allocator of one machine.
 * @example const p = slab.kmalloc(64, GFP_KERNEL); slab.kfree(p);
 */
export class Kmalloc {
  private readonly _mm: Mm;
  private readonly _ctx: KernelContext;
  // INVARIANT: objects maps every live object's address to its size class (or -order-1 for a
  //   kmalloc_large block); free[c] holds free object addresses of class c in slabs with inUse < capacity.
  // ChurnMaps: a freed object's address is the next one handed out (the free lists are LIFO), and a
  // slab page emptied is often the next one taken, the pattern a Map slows down on (core/churn-map).
  private readonly _objects = new ChurnMap<number, number>();
  private readonly _free = new Map<number, number[]>();
  private readonly _slabs = new ChurnMap<number, Slab>();

  constructor(mm: Mm, ctx: KernelContext) {
    this._mm = mm;
    this._ctx = ctx;
  }

  /** Live objects. */
  get liveObjects(): number {
    return this._objects.size;
  }

  /**
   * kmalloc: `size` bytes, physically contiguous, or null (ZERO_SIZE_PTR is modelled as null too).
   * Fault kind 'kmalloc' (failslab) applies to slab objects; large ones go through the page
   * allocator.
   */
  kmalloc(size: number, gfp: number): number | null {
    if (typeof gfp !== 'number' || !Number.isInteger(gfp) || gfp < 0 || gfp > 0xffffffff) throw new KernelError(EINVAL, 'kmalloc', `expected gfp flags, got ${String(gfp)}`, 'gfp');
    if (!Number.isSafeInteger(size) || size < 0) throw new KernelError(EINVAL, 'kmalloc', `expected a size in bytes, got ${size}`, 'size');
    if (size === 0) return null;
    if (size > KMALLOC_MAX_CACHE_SIZE) {
      const order = getOrder(size);
      const pfn = this._mm.alloc_pages(gfp, order, 'kmalloc');
      if (pfn === null) return null;
      const addr = this._mm.phys_to_virt(pfn * PAGE_SIZE);
      this._objects.set(addr, -order - 1);
      return addr;
    }
    if (this._ctx.faults.shouldFail('kmalloc')) return null;
    let cls = KMALLOC_MIN_SIZE;
    while (cls < size) cls *= 2;
    let list = this._free.get(cls);
    if (list === undefined || list.length === 0) {
      const order = cls > PAGE_SIZE ? 1 : 0;
      const pfn = this._mm.alloc_pages(gfp | __GFP_NOWARN, order, 'kmalloc');
      if (pfn === null) return null;
      const base = this._mm.phys_to_virt(pfn * PAGE_SIZE);
      list = [];
      for (let off = (PAGE_SIZE << order) - cls; off >= 0; off -= cls) list.push(base + off);
      this._free.set(cls, list);
      this._slabs.set(pfn, { pfn, order, inUse: 0 });
    }
    const addr = list.pop() as number;
    this._objects.set(addr, cls);
    this._slabOf(addr, cls).inUse++;
    if (gfp & __GFP_ZERO) this._mm.fillPhys(this._mm.virt_to_phys(addr), cls, 0);
    return addr;
  }

  /** kzalloc. */
  kzalloc(size: number, gfp: number): number | null {
    return this.kmalloc(size, gfp | __GFP_ZERO);
  }

  /** The addresses of the live objects (for leak checks: only drivers kmalloc in dmasim). */
  liveAddresses(): Iterable<number> {
    return this._objects.keys();
  }

  /** ksize: the usable size of an object. */
  ksize(addr: number): number {
    const c = this._objects.get(addr);
    if (c === undefined) throw new KernelBug('ksize', `0x${addr.toString(16)} is not a kmalloc object`);
    return c < 0 ? PAGE_SIZE << (-c - 1) : c;
  }

  /**
   * kfree; kfree(null) does nothing. An empty slab page goes back to the page allocator.
   * @throws KernelBug on a double free or a pointer kmalloc did not return.
   */
  kfree(addr: number | null): void {
    if (addr === null) return;
    if (typeof addr !== 'number' || !Number.isSafeInteger(addr)) throw new KernelError(EINVAL, 'kfree', `expected a kmalloc address or null, got ${typeof addr === 'number' ? String(addr) : typeof addr}`, 'addr');
    const c = this._objects.get(addr);
    if (c === undefined) throw new KernelBug('kfree', `invalid or double free of 0x${addr.toString(16)}`);
    this._objects.delete(addr);
    if (c < 0) {
      this._mm.__free_pages(Math.floor(this._mm.virt_to_phys(addr) / PAGE_SIZE), -c - 1);
      return;
    }
    const slab = this._slabOf(addr, c);
    slab.inUse--;
    const list = this._free.get(c) as number[];
    list.push(addr);
    if (slab.inUse === 0) {
      const base = this._mm.phys_to_virt(slab.pfn * PAGE_SIZE);
      const end = base + (PAGE_SIZE << slab.order);
      this._free.set(c, list.filter((a) => a < base || a >= end));
      this._slabs.delete(slab.pfn);
      this._mm.__free_pages(slab.pfn, slab.order);
    }
  }

  private _slabOf(addr: number, cls: number): Slab {
    const pfn = Math.floor(this._mm.virt_to_phys(addr) / PAGE_SIZE);
    const aligned = cls > PAGE_SIZE ? pfn - (pfn % 2) : pfn;
    const slab = this._slabs.get(aligned) ?? this._slabs.get(pfn);
    if (slab === undefined) throw new KernelBug('kmalloc', `no slab for 0x${addr.toString(16)}`);
    return slab;
  }
}
