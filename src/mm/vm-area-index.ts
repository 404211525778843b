/**
 * @module mm/vm-area-index
 * The live vmalloc and vmap areas of one machine, found by start address or by any address inside
 * them (the kernel's find_vm_area / the vmap_area tree's lookup).
 *
 * Every CPU access through a vmalloc address asks which area holds it (a dma_pool block of an
 * IOMMU coherent page, a vmalloc'ed buffer handed to dma-debug), so that look-up is a bisection of
 * the sorted starts, not a walk of every area (a pool of 4,096 64-byte blocks on 64 coherent pages:
 * alloc+free 15 -> see bench/RESULTS.md, session 14).
 *
 * @example
 * const ix = new VmAreaIndex();
 * ix.add(area);
 * ix.find(area.addr + 100) === area // true
 */
import { ChurnMap } from '../core/churn-map.ts';
import { PAGE_SIZE } from './constants.ts';

/** What the index needs of an area: where it starts and how many pages it spans. */
export interface IndexedVmArea {
  readonly addr: number;
  readonly nrPages: number;
}

export class VmAreaIndex<A extends IndexedVmArea> {
  // INVARIANT: _byStart maps each live area's addr to it; _starts holds the same addrs in
  //   ascending order; live areas never overlap.
  // A ChurnMap: a freed area's address is often the next one's (core/churn-map).
  private readonly _byStart = new ChurnMap<number, A>();
  private readonly _starts: number[] = [];

  /** Live areas. */
  get size(): number {
    return this._byStart.size;
  }

  /** Add a live area (its range is free: the vmap allocator handed it out). */
  add(area: A): void {
    this._byStart.set(area.addr, area);
    const i = this._upper(area.addr);
    this._starts.splice(i, 0, area.addr);
  }

  /** Remove a live area; false when no area starts at its address. */
  remove(area: A): boolean {
    if (!this._byStart.delete(area.addr)) return false;
    this._starts.splice(this._upper(area.addr) - 1, 1);
    return true;
  }

  /** The area starting at `addr`. */
  get(addr: number): A | undefined {
    return this._byStart.get(addr);
  }

  /** The live area whose pages hold `virt`. */
  find(virt: number): A | undefined {
    const i = this._upper(virt) - 1;
    if (i < 0) return undefined;
    const a = this._byStart.get(this._starts[i] as number) as A;
    return virt < a.addr + a.nrPages * PAGE_SIZE ? a : undefined;
  }

  /**
   * Live areas in address order (as /proc/vmallocinfo lists them), from a copy of the starts taken
   * at the call: an area freed before the walk reaches it is skipped.
   */
  *values(): Generator<A, void, undefined> {
    for (const start of this._starts.slice()) {
      const a = this._byStart.get(start);
      if (a !== undefined) yield a;
    }
  }

  /** The number of starts at or below `addr`. */
  private _upper(addr: number): number {
    const s = this._starts;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((s[mid] as number) <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
