/**
 * @module core/sparse-memory
 * Sparse physical memory contents: a page's bytes exist only once written; untouched memory reads
 * as zero. A 64 GiB machine costs what was written, plus the Map entry per written page.
 */
import { forEachPageSpan, PAGE_SIZE } from './page.ts';
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';
import { RESTORE_STATE, SNAPSHOT_STATE, type SnapshotHooks } from './snapshot.ts';

/** Bytes per slab of page buffers. */
const SLAB_BYTES = 256 * PAGE_SIZE;

/** The argument checks of forEachPageSpan, for the loops that walk pages inline. */
function checkSpan(addr: unknown, len: unknown, fn: string): void {
  if (typeof addr !== 'number' || !Number.isSafeInteger(addr) || addr < 0) throw new KernelError(EINVAL, fn, `expected an address, got ${String(addr)}`, 'addr');
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0 || !Number.isSafeInteger(addr + len)) {
    throw new KernelError(EINVAL, fn, `expected a length that ends below 2^53, got ${String(len)}`, 'len');
  }
}

/** Byte access to physical memory: what copies, bounces and device DMA need. */
export interface PhysMemory {
  readPhysInto(phys: number, dst: Uint8Array, dstOff: number, len: number): void;
  writePhys(phys: number, src: Uint8Array, srcOff: number, len: number): void;
  fillPhys(phys: number, len: number, value: number): void;
  /** Copy between two disjoint physical ranges without a buffer in between (optional). */
  copyPhys?(dst: number, src: number, len: number): void;
}

/** log2 of the pfns per group of the page directory (2 MiB of memory a group). */
const GROUP_SHIFT = 9;
const GROUP_PAGES = 2 ** GROUP_SHIFT;

/** The pages of GROUP_PAGES consecutive pfns (see PhysContents' INVARIANT). */
interface PageGroup {
  readonly pages: (Uint8Array | undefined)[];
  mine: Uint8Array | null;
}

/** What a snapshot of the contents holds. */
interface ContentsState {
  readonly groups: ReadonlyMap<number, PageGroup>;
  readonly resident: number;
}

/**
 * Byte contents of physical memory. Callers check that addresses are RAM.
 * @example
 * mem.write(0x1000ff0, new Uint8Array([1, 2, 3])); mem.read(0x1000ff0, 3) // crosses no page? fine either way
 */
export class PhysContents implements PhysMemory, SnapshotHooks {
  // INVARIANT: _groups maps pfn / GROUP_PAGES to the group of those 512 pfns; a pfn whose group or
  //   slot is absent reads as zeros. A group with mine === null may be held by a snapshot too: it
  //   is never written (the first write copies it: copy on write, a group at a time); a group in
  //   _mine belongs to this map alone, and its pages with mine[i] === 1 too (written in place,
  //   recycled when dropped); its other pages are a snapshot's and are copied before a write.
  // INVARIANT: _resident is the number of slots holding a page.
  // INVARIANT: while _groupsShared, a snapshot holds _groups itself: it is copied before the next
  //   change (copying it at every snapshot and restore cost ~0.15 ms each on a 16 GiB machine whose
  //   1 GiB in use spans 8,192 groups: bench/RESULTS.md, session 10).
  private _groups = new Map<number, PageGroup>();
  private _groupsShared = false;
  private readonly _mine: PageGroup[] = [];
  private _resident = 0;
  // INVARIANT: _spare holds zeroed page views no key uses; _slab[_slabUsed..] is never handed out yet.
  private readonly _spare: Uint8Array[] = [];
  private _slab: ArrayBuffer | null = null;
  private _slabUsed = 0;
  // The run a read or write is gathering (nothing between calls).
  private readonly _run = new SlabRun();

  /** Number of pages that hold written bytes. */
  get residentPages(): number {
    return this._resident;
  }

  /** The group of `key` for writing: copied first when a snapshot may share it. */
  private _groupForWrite(key: number): PageGroup {
    const g = this._groups.get(key);
    if (g !== undefined && g.mine !== null) return g;
    const own: PageGroup = {
      pages: g === undefined ? new Array<Uint8Array | undefined>(GROUP_PAGES).fill(undefined) : g.pages.slice(),
      mine: new Uint8Array(GROUP_PAGES),
    };
    if (this._groupsShared) {
      this._groups = new Map(this._groups);
      this._groupsShared = false;
    }
    this._groups.set(key, own);
    this._mine.push(own);
    return own;
  }

  /** The page's bytes, created on demand (for writers). */
  pageForWrite(pfn: number): Uint8Array {
    const key = Math.floor(pfn / GROUP_PAGES);
    const i = pfn - key * GROUP_PAGES;
    const g = this._groupForWrite(key);
    const mine = g.mine as Uint8Array;
    const p = g.pages[i];
    if (p !== undefined && mine[i] === 1) return p;
    const fresh = this._newPage();
    // Copy on write: the old buffer stays as a snapshot saw it.
    if (p !== undefined) fresh.set(p);
    else this._resident++;
    g.pages[i] = fresh;
    mine[i] = 1;
    return fresh;
  }

  /** Drop the page of `pfn` (it reads as zeros again). */
  private _drop(pfn: number): void {
    const key = Math.floor(pfn / GROUP_PAGES);
    const i = pfn - key * GROUP_PAGES;
    if (this._groups.get(key)?.pages[i] === undefined) return;
    const g = this._groupForWrite(key);
    const old = g.pages[i] as Uint8Array;
    g.pages[i] = undefined;
    this._resident--;
    // A page a snapshot still holds is dropped, not recycled.
    if ((g.mine as Uint8Array)[i] === 1) {
      (g.mine as Uint8Array)[i] = 0;
      old.fill(0);
      this._spare.push(old);
    }
  }

  /**
   * Snapshot: the directory as it is (the directory, its groups and pages shared until either
   * side writes). Costs the groups written since the last capture or restore.
   */
  [SNAPSHOT_STATE](): unknown {
    for (const g of this._mine) g.mine = null;
    this._mine.length = 0;
    this._groupsShared = true;
    return { groups: this._groups, resident: this._resident } satisfies ContentsState;
  }

  /** Restore a snapshot's directory; pages written since go back to the spare list. */
  [RESTORE_STATE](state: unknown): void {
    const s = state as ContentsState;
    for (const g of this._mine) {
      const mine = g.mine as Uint8Array;
      for (let i = 0; i < GROUP_PAGES; i++) {
        if (mine[i] !== 1) continue;
        const p = g.pages[i] as Uint8Array;
        p.fill(0);
        this._spare.push(p);
      }
      g.mine = null;
    }
    this._mine.length = 0;
    this._groups = s.groups as Map<number, PageGroup>;
    this._groupsShared = true;
    this._resident = s.resident;
  }

  /**
   * A zeroed page buffer: a view into a 1 MiB slab, or a page given back earlier. A separate
   * typed array per page cost ~2.7 us to allocate (measured: device I/O of 64 MiB 0.92 -> 1.18 GB/s).
   */
  private _newPage(): Uint8Array {
    const spare = this._spare.pop();
    if (spare !== undefined) return spare;
    if (this._slab === null || this._slabUsed === SLAB_BYTES) {
      this._slab = new ArrayBuffer(SLAB_BYTES);
      this._slabUsed = 0;
    }
    const view = new Uint8Array(this._slab, this._slabUsed, PAGE_SIZE);
    this._slabUsed += PAGE_SIZE;
    return view;
  }

  /** The page's bytes if ever written, else undefined (reads as zero). */
  pageForRead(pfn: number): Uint8Array | undefined {
    const key = Math.floor(pfn / GROUP_PAGES);
    return this._groups.get(key)?.pages[pfn - key * GROUP_PAGES];
  }

  /** Copy `len` bytes at `phys` into `dst[dstOff...]`. */
  readInto(phys: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): void {
    checkSpan(phys, len, 'PhysContents.readInto');
    // A loop, not forEachPageSpan's callback: 4 KiB device reads 2.0 -> see bench/RESULTS.md (session 6).
    const groups = this._groups;
    let pfn = Math.floor(phys / PAGE_SIZE);
    let off = phys - pfn * PAGE_SIZE;
    let done = 0;
    // The group is looked up once per 512 pages, not per page.
    let key = -1;
    let group: PageGroup | undefined;
    if (len === 0) return;
    if (off + len <= PAGE_SIZE) {
      // Within one page (a 4 KiB device read): the page itself, no run (runs cost a 4 KiB read 20%).
      const page = this.pageForRead(pfn);
      if (page === undefined) dst.fill(0, dstOff, dstOff + len);
      else dst.set(len === PAGE_SIZE ? page : page.subarray(off, off + len), dstOff);
      return;
    }
    // Pages that follow each other in one slab are copied as one run (see write).
    const run = this._run;
    run.reset();
    while (done < len) {
      const n = Math.min(PAGE_SIZE - off, len - done);
      const k = Math.floor(pfn / GROUP_PAGES);
      if (k !== key) { key = k; group = groups.get(k); }
      const page = group?.pages[pfn - k * GROUP_PAGES];
      if (page === undefined) {
        run.flushInto(dst, dstOff);
        dst.fill(0, dstOff + done, dstOff + done + n);
      } else run.add(page, off, n, done, dst, dstOff, true);
      done += n;
      pfn++;
      off = 0;
    }
    run.flushInto(dst, dstOff);
  }

  /** Read `len` bytes at `phys` into a new array. */
  read(phys: number, len: number): Uint8Array {
    // One buffer: at most 4 GiB (a larger typed array is a host RangeError, not a kernel result).
    if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0 || len > 2 ** 32) throw new KernelError(EINVAL, 'PhysContents.read', `expected a length up to 4 GiB, got ${String(len)}`, 'len');
    const out = new Uint8Array(len);
    this.readInto(phys, out, 0, len);
    return out;
  }

  /** Write `src[srcOff .. srcOff+len)` at `phys`. */
  write(phys: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): void {
    checkSpan(phys, len, 'PhysContents.write');
    let pfn = Math.floor(phys / PAGE_SIZE);
    let off = phys - pfn * PAGE_SIZE;
    let done = 0;
    if (len === 0) return;
    if (off + len <= PAGE_SIZE) {
      this.pageForWrite(pfn).set(src.subarray(srcOff, srcOff + len), off);
      return;
    }
    // Pages handed out in order sit one after another in a slab: a run of them is one copy, not
    // a copy per 4 KiB page (64 MiB of 4 MiB device writes: see bench/RESULTS.md, session 12).
    const run = this._run;
    run.reset();
    while (done < len) {
      const n = Math.min(PAGE_SIZE - off, len - done);
      run.add(this.pageForWrite(pfn), off, n, done, src, srcOff, false);
      done += n;
      pfn++;
      off = 0;
    }
    run.flushInto(src, srcOff);
  }

  /** Set `len` bytes at `phys` to `value`; zeroing whole untouched pages costs nothing. */
  fill(phys: number, len: number, value: number): void {
    if (value === 0) {
      this._zero(phys, len);
      return;
    }
    forEachPageSpan(phys, len, (pfn, off, _done, n) => {
      this.pageForWrite(pfn).fill(value, off, off + n);
    });
  }

  /**
   * fill(phys, len, 0): pages never written are zero already, and a group never written is skipped
   * whole (a swiotlb pool's clearing at boot looked up each of its 16,384 pages: bench/RESULTS.md,
   * session 11).
   */
  private _zero(phys: number, len: number): void {
    checkSpan(phys, len, 'PhysContents.fill');
    let pfn = Math.floor(phys / PAGE_SIZE);
    let off = phys - pfn * PAGE_SIZE;
    let done = 0;
    while (done < len) {
      const n = Math.min(PAGE_SIZE - off, len - done);
      if (n === PAGE_SIZE) {
        const key = Math.floor(pfn / GROUP_PAGES);
        if (!this._groups.has(key)) {
          const pages = Math.min((key + 1) * GROUP_PAGES - pfn, Math.floor((len - done) / PAGE_SIZE));
          pfn += pages;
          done += pages * PAGE_SIZE;
          continue;
        }
        this._drop(pfn);
      } else if (this.pageForRead(pfn) !== undefined) this.pageForWrite(pfn).fill(0, off, off + n);
      done += n;
      pfn++;
      off = 0;
    }
  }

  readPhysInto(phys: number, dst: Uint8Array, dstOff: number, len: number): void {
    this.readInto(phys, dst, dstOff, len);
  }

  writePhys(phys: number, src: Uint8Array, srcOff: number, len: number): void {
    this.write(phys, src, srcOff, len);
  }

  fillPhys(phys: number, len: number, value: number): void {
    this.fill(phys, len, value);
  }

  /**
   * Copy `len` bytes from physical `src` to physical `dst` (disjoint ranges), page piece to page
   * piece with no intermediate buffer (a swiotlb bounce was a read into scratch and a write back).
   */
  copy(dst: number, src: number, len: number): void {
    checkSpan(dst, len, 'PhysContents.copy');
    checkSpan(src, len, 'PhysContents.copy');
    let done = 0;
    while (done < len) {
      const s = src + done;
      const d = dst + done;
      const sPfn = Math.floor(s / PAGE_SIZE);
      const dPfn = Math.floor(d / PAGE_SIZE);
      const sOff = s - sPfn * PAGE_SIZE;
      const dOff = d - dPfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - sOff, PAGE_SIZE - dOff, len - done);
      const from = this.pageForRead(sPfn);
      if (from === undefined) {
        // Zeros: nothing to write where nothing was written.
        if (this.pageForRead(dPfn) !== undefined) this.pageForWrite(dPfn).fill(0, dOff, dOff + n);
      } else {
        this.pageForWrite(dPfn).set(n === PAGE_SIZE ? from : from.subarray(sOff, sOff + n), dOff);
      }
      done += n;
    }
  }

  copyPhys(dst: number, src: number, len: number): void {
    this.copy(dst, src, len);
  }
}

/**
 * Consecutive page pieces that lie one after another in one slab, gathered by a read or write and
 * copied as one: `add` extends the run when the next piece starts where it ends, else copies what
 * it has first. One per PhysContents, reset at the start of each call.
 * INVARIANT: while len > 0, [off, off + len) of buf holds the memory of the caller's bytes
 *   [at, at + len) (of the destination for a read, of the source for a write).
 */
class SlabRun {
  private buf: ArrayBufferLike | null = null;
  private off = 0;
  private len = 0;
  private at = 0;
  private toMemory = false;
  // The run's first piece: a run of one piece is copied through its page, with no view made (a
  // 4 KiB device write made one more typed array than before runs).
  private page: Uint8Array | null = null;
  private pageOff = 0;
  private pieces = 0;

  reset(): void {
    this.buf = this.page = null;
    this.len = 0;
  }

  /**
   * Add `n` bytes at `pageOff` of `page`, which are bytes [done, done + n) of the caller's side
   * (callers add pieces in order, with no gap on their side: a gap flushes first);
   * `fromMemory`: a read (memory to `other`), else a write (`other` to memory).
   */
  add(page: Uint8Array, pageOff: number, n: number, done: number, other: Uint8Array, otherOff: number, fromMemory: boolean): void {
    const buf = page.buffer;
    const at = page.byteOffset + pageOff;
    if (this.len > 0 && buf === this.buf && at === this.off + this.len) {
      this.len += n;
      this.pieces++;
      return;
    }
    this.flushInto(other, otherOff);
    this.buf = buf;
    this.off = at;
    this.len = n;
    this.at = done;
    this.toMemory = !fromMemory;
    this.page = page;
    this.pageOff = pageOff;
    this.pieces = 1;
  }

  /** Copy the gathered run (between memory and `other[otherOff + at ...]`) and empty it. */
  flushInto(other: Uint8Array, otherOff: number): void {
    if (this.len === 0) return;
    const lo = otherOff + this.at;
    const page = this.page as Uint8Array;
    if (this.pieces === 1) {
      if (this.toMemory) page.set(other.subarray(lo, lo + this.len), this.pageOff);
      else other.set(this.len === page.length ? page : page.subarray(this.pageOff, this.pageOff + this.len), lo);
    } else {
      const mem = new Uint8Array(this.buf as ArrayBufferLike, this.off, this.len);
      if (this.toMemory) mem.set(other.subarray(lo, lo + this.len));
      else other.set(mem, lo);
    }
    this.len = 0;
    this.buf = this.page = null;
  }
}
