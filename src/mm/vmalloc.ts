/**
 * @module mm/vmalloc
 * vmalloc areas: virtually contiguous, backed by order-0 pages wherever the buddy allocator put them,
 * plus the Rust `VmallocPageIter` view of their pages.
 */
import { EINVAL, EFAULT } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { PAGE_SIZE, VMALLOC_END, VMALLOC_START } from './constants.ts';
import { forEachPageSpan, type PfnArray } from '../core/page.ts';
import { markShared } from '../core/snapshot.ts';
import { SpanJoin } from '../core/span-join.ts';

import type { PhysMemory } from '../core/sparse-memory.ts';
import type { KernelContext } from '../core/context.ts';

/**
 * Pages of a vmalloc area in order, with the semantics of Rust's `VmallocPageIter`:
 * `pageCount = ceil(size / PAGE_SIZE)`; `size` may be less than `pageCount * PAGE_SIZE`; an empty
 * area yields nothing.
 * @example for (const pfn of area.pageIter()) use(pfn);
 */
export class VmallocPageIter implements Iterable<number> {
  private readonly _pfns: PfnArray;
  /** Bytes covered by the pages. */
  readonly size: number;

  constructor(pfns: PfnArray, size: number) {
    this._pfns = pfns;
    this.size = size;
  }

  /** Number of pages: ceil(size / PAGE_SIZE). */
  get pageCount(): number {
    return Math.ceil(this.size / PAGE_SIZE);
  }

  /** The pfns as a typed array (the form the scatterlist hot path consumes; a Float64Array on a machine with RAM past pfn 2^32). No copy. */
  pfns(): PfnArray {
    return this._pfns.subarray(0, this.pageCount);
  }

  *[Symbol.iterator](): Iterator<number> {
    const n = this.pageCount;
    for (let i = 0; i < n; i++) yield this._pfns[i] as number;
  }
}

/**
 * A live vmalloc area.
 * @example
 * const area = machine.mm.vmalloc(64 * 1024)!; area.write(0, bytes); machine.mm.vfree(area);
 */
export class VmArea {
  /** Kernel virtual address of the first byte. */
  readonly addr: number;
  /** Bytes requested (the area spans nrPages whole pages). */
  readonly size: number;
  // INVARIANT: pages[i] is the pfn backing virtual page i; length === nrPages; each is an allocated
  //   order-0 page owned by 'vmalloc' while the area is live. A Float64Array when the machine has
  //   RAM past pfn 2^32. Never written after construction, so every snapshot shares it (markShared:
  //   a 16 GiB machine with 1 GiB vmalloc'ed copied its 1 MiB pfn array at the first snapshot).
  readonly pages: PfnArray;
  private _live = true;
  /** A vmap() of pages someone else owns: vunmap releases the addresses only, vfree refuses it. */
  readonly mapped: boolean;
  private readonly _mem: PhysMemory;
  /** The machine whose memory backs the area (undefined for an area made outside a machine). */
  readonly ctx: KernelContext | undefined;

  constructor(addr: number, size: number, pages: PfnArray, mem: PhysMemory, ctx?: KernelContext, mapped = false) {
    this.mapped = mapped === true;
    this.addr = addr;
    this.size = size;
    this.pages = markShared(pages);
    this._mem = mem;
    this.ctx = ctx;
  }

  /** Pages backing the area. */
  get nrPages(): number {
    return this.pages.length;
  }

  /** False once vfree'd. */
  get live(): boolean {
    return this._live;
  }

  /** @internal called by vfree */
  kill(): void {
    this._live = false;
  }

  /** Page iterator with `VmallocPageIter` semantics over `size` bytes. */
  pageIter(): VmallocPageIter {
    return new VmallocPageIter(this.pages, this.size);
  }

  /** Physical address of byte `offset` of the area (vmalloc_to_page + offset). */
  physOf(offset: number): number {
    this._check(offset, 0, 'physOf');
    const page = Math.floor(offset / PAGE_SIZE);
    return (this.pages[page] as number) * PAGE_SIZE + (offset - page * PAGE_SIZE);
  }

  /** Read `len` bytes from `offset` through the virtual mapping, into a new array. */
  read(offset: number, len: number): Uint8Array {
    this._check(offset, len, 'read');
    const out = new Uint8Array(len);
    this._walk(offset, len, 'read', (phys, at, n) => this._mem.readPhysInto(phys, out, at, n));
    return out;
  }

  /**
   * Read `len` bytes from `offset` into `dst` at `dstOff` (default: as much as fills `dst`): the
   * form that allocates nothing. A fresh array per large read pays its page faults (a 64 MiB
   * `read` ran at ~1.2 GB/s here, mostly the first touch of the new array: bench/RESULTS.md,
   * session 14).
   * @example const buf = new Uint8Array(area.size); area.readInto(0, buf);
   */
  readInto(offset: number, dst: Uint8Array, dstOff = 0, len = dst?.length - dstOff): void {
    if (!(dst instanceof Uint8Array)) throw new KernelError(EINVAL, 'VmArea.readInto', `expected a Uint8Array, got ${dst === null ? 'null' : typeof dst}`, 'dst');
    if (!Number.isSafeInteger(dstOff) || dstOff < 0 || dstOff > dst.length) throw new KernelError(EINVAL, 'VmArea.readInto', `offset ${String(dstOff)} outside a buffer of ${dst.length}`, 'dstOff');
    if (!Number.isSafeInteger(len) || len < 0 || dstOff + len > dst.length) throw new KernelError(EINVAL, 'VmArea.readInto', `${String(len)} bytes do not fit a buffer of ${dst.length} from ${dstOff}`, 'len');
    this._walk(offset, len, 'readInto', (phys, at, n) => this._mem.readPhysInto(phys, dst, dstOff + at, n));
  }

  /** Write `bytes` at `offset` through the virtual mapping. */
  write(offset: number, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new KernelError(EINVAL, 'VmArea.write', `expected a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`, 'bytes');
    this._walk(offset, bytes.length, 'write', (phys, at, n) => this._mem.writePhys(phys, bytes, at, n));
  }

  private _check(offset: number, len: number, fn: string): void {
    if (!this._live) throw new KernelError(EFAULT, `VmArea.${fn}`, 'area was vfree()d');
    if (!Number.isSafeInteger(len) || len < 0) throw new KernelError(EINVAL, `VmArea.${fn}`, `expected a length, got ${String(len)}`, 'len');
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > this.nrPages * PAGE_SIZE) {
      throw new KernelError(EINVAL, `VmArea.${fn}`, `range [${String(offset)}, +${len}) outside the area of ${this.nrPages * PAGE_SIZE} bytes`, 'offset');
    }
  }

  /**
   * Visit the physical spans behind [offset, offset + len): pages that lie one after another in
   * physical memory make one span (one access check and one copy instead of one per page).
   */
  private _walk(offset: number, len: number, fn: string, step: (phys: number, at: number, n: number) => void): void {
    this._check(offset, len, fn);
    const join = new SpanJoin(step);
    forEachPageSpan(offset, len, (page, inPage, done, n) => join.add((this.pages[page] as number) * PAGE_SIZE + inPage, done, n));
    join.flush();
  }
}

/**
 * The vmalloc virtual address space: first fit, one guard page after each area (as the kernel).
 */
export class VmapSpace {
  // INVARIANT: free holds disjoint [start, end) ranges sorted by start, inside [VMALLOC_START, VMALLOC_END).
  private _free: Array<[number, number]> = [[VMALLOC_START, VMALLOC_END]];

  /** Reserve `bytes` (already page-aligned, guard included); returns the start or -1. */
  alloc(bytes: number): number {
    for (let i = 0; i < this._free.length; i++) {
      const r = this._free[i] as [number, number];
      if (r[1] - r[0] >= bytes) {
        const start = r[0];
        if (r[1] - r[0] === bytes) this._free.splice(i, 1);
        else r[0] += bytes;
        return start;
      }
    }
    return -1;
  }

  /** Give back [start, start + bytes), merging neighbours. */
  free(start: number, bytes: number): void {
    const end = start + bytes;
    let i = 0;
    while (i < this._free.length && (this._free[i] as [number, number])[0] < start) i++;
    this._free.splice(i, 0, [start, end]);
    const merge = (k: number): void => {
      const a = this._free[k];
      const b = this._free[k + 1];
      if (a !== undefined && b !== undefined && a[1] === b[0]) { a[1] = b[1]; this._free.splice(k + 1, 1); }
    };
    merge(i);
    if (i > 0) merge(i - 1);
  }
}
