/**
 * @module mm/page-meta
 * Per-page metadata in typed arrays: 3 bytes a page frame of RAM (state+order, owner, refcount).
 * Only RAM has entries: the RAM ranges are packed one after another (the idea of the kernel's
 * SPARSEMEM, at range granularity), so a machine with RAM at 0 and at 2^50 pays for its RAM, not
 * for the hole. Untouched entries cost nothing: the OS commits typed-array pages on first write.
 * The fragmenter's periodic held pages are deferred ({@link PageMeta.defer}): written a chunk at a
 * time by the first read or write of the chunk, as the kernel's deferred struct-page init does.
 */
import type { PfnRange } from './layout.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { MAX_PFN_LIMIT } from '../core/page.ts';
import { DIRTY_CHUNK_SHIFT, DirtyChunks, type DirtyCapture } from '../core/byte-chunks.ts';
import { HeldSpans } from './held-spans.ts';
import { checkInt, notInstance } from '../core/args.ts';
import { RESTORE_STATE, SNAPSHOT_STATE, type SnapshotHooks } from '../core/snapshot.ts';
import { POW2 } from '../core/bits.ts';
import { zeroedBytes } from '../core/zeroed.ts';

/** Are these sorted, disjoint, non-empty pfn ranges below 2^40? */
function validRanges(ram: unknown): ram is readonly PfnRange[] {
  if (!Array.isArray(ram)) return false;
  let prevEnd = 0;
  for (const r of ram as unknown[]) {
    const { startPfn, endPfn } = (r ?? {}) as { startPfn?: unknown; endPfn?: unknown };
    if (!Number.isSafeInteger(startPfn) || !Number.isSafeInteger(endPfn)) return false;
    if ((startPfn as number) < prevEnd || (endPfn as number) <= (startPfn as number) || (endPfn as number) > MAX_PFN_LIMIT) return false;
    prevEnd = endPfn as number;
  }
  return true;
}

/** Page state bits (low nibble of `state`); the high nibble holds the order of an allocated head. */
export const PG_ALLOCATED = 0x1;
export const PG_HEAD = 0x2;
/** Not RAM (a hole) or reserved at boot: never handed out. */
export const PG_RESERVED = 0x4;
/** PG_ALLOCATED in each byte of a 32-bit word: four pages' states tested at once. */
export const PG_ALLOCATED_X4 = PG_ALLOCATED * 0x01010101;

/** Who owns an allocated page (for reports and the auditor). */
export const OWNERS = ['none', 'pages', 'vmalloc', 'kmalloc', 'fragmenter', 'sg', 'pgtable', 'swiotlb', 'coherent', 'reserved', 'pages-exact', 'user'] as const;
export type Owner = (typeof OWNERS)[number];
export const OWNER_ID: Readonly<Record<Owner, number>> = Object.fromEntries(OWNERS.map((o, i) => [o, i])) as Record<Owner, number>;

/** Elements per metadata chunk (copy on write and deferred held pages alike). */
const CHUNK = 2 ** DIRTY_CHUNK_SHIFT;
/** The state byte of a page the fragmenter holds: an allocated order-0 head. */
const HELD_STATE = PG_ALLOCATED | PG_HEAD;

/** What a {@link PageMeta} snapshot holds. */
export interface MetaCapture {
  /** The three arrays' chunks, copy on write. */
  readonly chunks: DirtyCapture;
  /** Per chunk, 1 where the fragmenter's held pages were not written yet at the capture; null when none were. */
  readonly deferred: Uint8Array | null;
  /** The 1s in `deferred`. */
  readonly deferredCount: number;
  /** The spans those deferred chunks follow. */
  readonly held: HeldSpans | null;
  /** Bytes the capture copied (the deferred flags). */
  readonly copied: number;
}

/**
 * The page metadata arrays of one machine, indexed by {@link PageMeta.index}.
 * @example meta.stateOf(pfn) & PG_ALLOCATED
 */
export class PageMeta implements SnapshotHooks {
  // INVARIANT: RAM range k (sorted, disjoint) occupies indices [bases[k], bases[k] + ends[k] - starts[k]);
  //   bases[0] = 0 and each range follows the previous one, so index(pfn) is dense over RAM.
  // INVARIANT: state[i] is 0 for a free RAM page; PG_RESERVED for boot reservations;
  //   PG_ALLOCATED|PG_HEAD|(order<<4) for the first page of an allocated block, PG_ALLOCATED for its others.
  // INVARIANT: owner[i] and refcount[i] are meaningful only while PG_ALLOCATED is set
  //   (refcount on the head page only).
  // INVARIANT: every write to state, owner or refcount is announced to `written` *before* it is
  //   made (the methods here do; a caller that stores into the arrays itself calls touch first):
  //   snapshots are copy on write.
  readonly state: Uint8Array;
  readonly owner: Uint8Array;
  readonly refcount: Uint8Array;
  private readonly _starts: number[];
  private readonly _ends: number[];
  private readonly _bases: number[];
  /** Start of the first range (pfn - first = index in the first range: the common one-range machine). */
  private readonly _first: number;
  private readonly _firstEnd: number;
  /** Copy-on-write snapshots of the three arrays. */
  readonly written: DirtyChunks;
  /** The capture last made or restored (what the incremental audit measures changes from). */
  lastCapture: MetaCapture | null = null;
  // Deferred held pages (the fragmenter's periodic layouts, written on first use).
  // INVARIANT: _deferred[c] === 1 ⇔ chunk c holds pages _held says are held whose bytes are not
  //   written yet (they still read as the free pages they were); those bytes have not been written
  //   since the fragmenter deferred them: every read or write of a chunk goes through _resolve first.
  // INVARIANT: _deferredCount === number of 1s in _deferred; _held !== null when it is > 0.
  // INVARIANT: a capture whose chunk c was deferred reads the same through chunkAt whether the
  //   bytes it shares with the live arrays were resolved since or not (resolving writes only held
  //   pages, with the values its held spans give them), so resolving is not a write for `written`
  //   unless the chunk's current box holds saved copies (after a restore): those stay unresolved,
  //   and a later capture must not share them with its flag clear.
  private readonly _deferred: Uint8Array;
  private _deferredCount = 0;
  private _held: HeldSpans | null = null;

  /** `ram`: sorted, disjoint RAM ranges (what parseRam returns). */
  constructor(ram: readonly PfnRange[]) {
    if (!validRanges(ram)) throw new KernelError(EINVAL, 'PageMeta', 'expected sorted, disjoint RAM ranges ({ startPfn, endPfn }) below pfn 2^40, as parseRam returns', 'ram');
    this._starts = ram.map((r) => r.startPfn);
    this._ends = ram.map((r) => r.endPfn);
    this._bases = [];
    let n = 0;
    for (const r of ram) {
      this._bases.push(n);
      n += r.endPfn - r.startPfn;
    }
    this._first = this._starts[0] ?? 0;
    this._firstEnd = this._ends[0] ?? 0;
    // Fresh zero pages, not calloc's cleared heap: most of a big machine's metadata is never written.
    this.state = zeroedBytes(n);
    this.owner = zeroedBytes(n);
    this.refcount = zeroedBytes(n);
    this.written = new DirtyChunks([this.state, this.owner, this.refcount]);
    this._deferred = new Uint8Array(this.written.chunks);
  }

  /** Indices [lo, hi) of the arrays are about to be written directly (call before the stores). */
  touch(lo: number, hi: number): void {
    if (this._deferredCount !== 0) this.resolve(lo, hi);
    this.written.touch(lo, hi);
  }

  /**
   * Indices [lo, hi) are about to be read directly from the arrays: write any deferred held pages
   * there first. (The methods here do it themselves.)
   * @example meta.resolve(i0, i1); const s = meta.state[i0];
   */
  resolve(lo: number, hi: number): void {
    if (this._deferredCount === 0) return;
    const last = Math.min(this._deferred.length - 1, Math.floor((hi - 1) / CHUNK));
    for (let c = Math.max(0, Math.floor(lo / CHUNK)); c <= last; c++) if (this._deferred[c] !== 0) this._resolveChunk(c);
  }

  /**
   * Write every deferred held page (before reading the arrays whole).
   * @example mm.meta.resolveAll(); const digest = sha1(mm.meta.state);
   */
  resolveAll(): void {
    this.resolve(0, this.state.length);
  }

  /**
   * Chunks whose held pages are still deferred.
   * @example new Machine({ memory: '16G', fragment: { level: 0.6 } }).mm.meta.deferredChunks // > 0
   */
  get deferredChunks(): number {
    return this._deferredCount;
  }

  /**
   * The fragmenter's periodic `spans` (pages it holds, in metadata indices; every one of them free
   * now): their held pages are written a chunk at a time, the first time the chunk is read or
   * written, instead of now.
   * @example meta.defer(spans) // what fragment() does with a periodic layout
   */
  defer(spans: HeldSpans): void {
    if (!(spans instanceof HeldSpans)) throw notInstance(spans, HeldSpans, 'PageMeta.defer', 'spans');
    if (spans.end > this.state.length) throw new KernelError(EINVAL, 'PageMeta.defer', `spans end at index ${spans.end}, past the ${this.state.length} pages of RAM`, 'spans');
    this.resolveAll();
    spans.forEachSpan((start, end) => {
      // The bytes change meaning: a capture taken before must see these chunks as changed.
      this.written.touch(start, end);
      for (let c = Math.floor(start / CHUNK); c <= Math.floor((end - 1) / CHUNK); c++) {
        if (this._deferred[c] === 0) {
          this._deferred[c] = 1;
          this._deferredCount++;
        }
      }
    });
    this._held = this._deferredCount === 0 ? null : spans;
  }

  private _resolveChunk(c: number): void {
    const held = this._held as HeldSpans;
    this._deferred[c] = 0;
    if (--this._deferredCount === 0) this._held = null;
    const lo = c * CHUNK;
    const hi = Math.min(this.state.length, lo + CHUNK);
    // Not announced as a write while the captures sharing this chunk read the live bytes: they all
    // had it deferred (deferring announces) and read it through its held spans (chunkAt), which
    // give the held pages exactly these values. Announcing always made every audited snapshot of a
    // fragmented machine lose its audit base (16 GiB failure sweeps 228 -> 2,572 ms). But after a
    // restore the current box holds saved (unwritten) copies, which a later capture with the flag
    // clear would read raw: then it is announced, so that capture gets a box of its own (both
    // found in review).
    if (this.written.currentSaved(c)) this.written.touch(lo, hi);
    held.forEachHeld(lo, hi, (a, b) => this._writeHeld(a, b, OWNER_ID.fragmenter));
  }

  /** Resolve the chunk of index `i` if it is deferred. */
  private _resolveAt(i: number): void {
    const c = Math.floor(i / CHUNK);
    if (this._deferred[c] !== 0) this._resolveChunk(c);
  }

  /**
   * Mark indices [i0, i1) held as order-0 pages of `owner`: what markAllocated(pfn, 0, owner) does
   * page by page, without the per-page calls (announce the range with touch first).
   * @example meta.touch(i0, i1); meta.writeHeld(i0, i1, OWNER_ID.fragmenter);
   */
  writeHeld(i0: number, i1: number, owner: number): void {
    checkInt(i0, 'PageMeta.writeHeld', 'i0', 0, this.state.length);
    checkInt(i1, 'PageMeta.writeHeld', 'i1', i0, this.state.length);
    checkInt(owner, 'PageMeta.writeHeld', 'owner', 1, OWNERS.length - 1);
    this._writeHeld(i0, i1, owner);
  }

  private _writeHeld(i0: number, i1: number, owner: number): void {
    const { state, refcount, owner: owners } = this;
    // Gaps up to 64 pages take plain stores (a 16 GiB build at level 0.6 holds 131,000 gaps of 16:
    // 24 ms with three fill calls each, 22-23 with stores); longer ones three native fills.
    if (i1 - i0 <= 64) {
      for (let i = i0; i < i1; i++) {
        state[i] = HELD_STATE;
        refcount[i] = 1;
        owners[i] = owner;
      }
      return;
    }
    state.fill(HELD_STATE, i0, i1);
    refcount.fill(1, i0, i1);
    owners.fill(owner, i0, i1);
  }

  /** Snapshot: the arrays copy on write, a chunk at a time; the deferred flags copied. */
  [SNAPSHOT_STATE](): MetaCapture {
    const deferred = this._deferredCount === 0 ? null : this._deferred.slice();
    this.lastCapture = { chunks: this.written.capture(), deferred, deferredCount: this._deferredCount, held: this._held, copied: deferred === null ? 0 : deferred.length };
    return this.lastCapture;
  }

  [RESTORE_STATE](state: unknown): void {
    const st = state as MetaCapture;
    this.written.restore(st.chunks);
    if (st.deferred === null) {
      if (this._deferredCount !== 0) this._deferred.fill(0);
      this._deferredCount = 0;
    } else {
      this._deferred.set(st.deferred);
      this._deferredCount = st.deferredCount;
    }
    this._held = this._deferredCount === 0 ? null : st.held;
    this.lastCapture = st;
  }

  /**
   * The chunks whose bytes may differ from `capture` (one of this metadata's), in order.
   * @example for (const c of meta.changedSince(meta.lastCapture!)) audit(c);
   */
  changedSince(capture: MetaCapture): number[] {
    return this.written.changedSince(capture.chunks);
  }

  /**
   * Chunk `c` of array `k` (0 state, 1 owner, 2 refcount) as it read at `capture`, deferred held
   * pages included (written into `scratch`, a chunk-sized array, when the chunk was deferred then).
   * @example const oldState = meta.chunkAt(base.capture, 0, c, scratch);
   */
  chunkAt(capture: MetaCapture, k: number, c: number, scratch: Uint8Array): Uint8Array {
    const bytes = this.written.chunkAt(capture.chunks, k, c);
    if (capture.deferred === null || capture.deferred[c] === 0) return bytes;
    const out = scratch.subarray(0, bytes.length);
    out.set(bytes);
    const value = k === 0 ? HELD_STATE : k === 1 ? OWNER_ID.fragmenter : 1;
    const lo = c * CHUNK;
    (capture.held as HeldSpans).forEachHeld(lo, lo + bytes.length, (a, b) => { out.fill(value, a - lo, b - lo); });
    return out;
  }

  /** Index of `pfn` in the arrays, or -1 when it is not RAM. */
  index(pfn: number): number {
    // One compare pair for the first range: most machines have one.
    if (pfn >= this._first && pfn < this._firstEnd) return pfn - this._first;
    for (let k = 1; k < this._starts.length; k++) {
      const s = this._starts[k] as number;
      if (pfn >= s && pfn < (this._ends[k] as number)) return pfn - s + (this._bases[k] as number);
    }
    return -1;
  }

  /** The RAM range holding metadata index `i`, or -1. */
  private _rangeOfIndex(i: number): number {
    let k = this._bases.length - 1;
    while (k >= 0 && i < (this._bases[k] as number)) k--;
    return k;
  }

  /** The end (exclusive) of the run of consecutive pfns that metadata index `i` belongs to. */
  runEnd(i: number): number {
    const k = this._rangeOfIndex(i);
    return k < 0 ? -1 : (this._bases[k] as number) + (this._ends[k] as number) - (this._starts[k] as number);
  }

  /** The pfn at metadata index `i` (0 <= i < state.length). */
  pfnOf(i: number): number {
    const k = this._rangeOfIndex(i);
    return k < 0 ? -1 : (this._starts[k] as number) + i - (this._bases[k] as number);
  }

  /** The state byte of `pfn`; PG_RESERVED for a pfn that is not RAM. */
  stateOf(pfn: number): number {
    const i = this.index(pfn);
    if (i < 0) return PG_RESERVED;
    if (this._deferredCount !== 0) this._resolveAt(i);
    return this.state[i] as number;
  }

  /** The owner id of `pfn` (0 for a pfn that is not RAM). */
  ownerOf(pfn: number): number {
    const i = this.index(pfn);
    if (i < 0) return 0;
    if (this._deferredCount !== 0) this._resolveAt(i);
    return this.owner[i] as number;
  }

  /** The reference count kept on the head page `pfn`. */
  refcountOf(pfn: number): number {
    const i = this.index(pfn);
    if (i < 0) return 0;
    if (this._deferredCount !== 0) this._resolveAt(i);
    return this.refcount[i] as number;
  }

  /** Set the reference count of the allocated head page `pfn` (a RAM page). */
  setRefcount(pfn: number, rc: number): void {
    const i = this.index(pfn);
    this.touch(i, i + 1);
    this.refcount[i] = rc;
  }

  /** Set `array`'s entries for the RAM pages of [startPfn, endPfn) to `value` (pages that are not RAM are skipped). */
  fill(array: Uint8Array, value: number, startPfn: number, endPfn: number): void {
    for (let k = 0; k < this._starts.length; k++) {
      const lo = Math.max(startPfn, this._starts[k] as number);
      const hi = Math.min(endPfn, this._ends[k] as number);
      if (lo >= hi) continue;
      const base = (this._bases[k] as number) - (this._starts[k] as number);
      this.touch(lo + base, hi + base);
      array.fill(value, lo + base, hi + base);
    }
  }

  /** Mark [pfn, pfn + 2^order) allocated as one block owned by `owner` (a block never leaves its RAM range). */
  markAllocated(pfn: number, order: number, owner: number): void {
    const n = POW2[order] as number;
    const i = this.index(pfn);
    this.touch(i, i + n);
    this.state[i] = PG_ALLOCATED | PG_HEAD | (order << 4);
    this.refcount[i] = 1;
    // One page (most allocations): a store, not a fill call (map+unmap pair with its page
    // allocations: bench/RESULTS.md, session 10).
    if (n === 1) {
      this.owner[i] = owner;
      return;
    }
    this.owner.fill(owner, i, i + n);
    this.state.fill(PG_ALLOCATED, i + 1, i + n);
  }

  /** Mark [pfn, pfn + 2^order) free. */
  markFree(pfn: number, order: number): void {
    const n = POW2[order] as number;
    const i = this.index(pfn);
    this.touch(i, i + n);
    if (n === 1) {
      this.state[i] = 0;
      this.owner[i] = 0;
    } else {
      this.state.fill(0, i, i + n);
      this.owner.fill(0, i, i + n);
    }
    this.refcount[i] = 0;
  }

  /** Order of the allocated block headed at `pfn`, or -1 when `pfn` is not an allocated head. */
  headOrder(pfn: number): number {
    const s = this.stateOf(pfn);
    return (s & (PG_ALLOCATED | PG_HEAD)) === (PG_ALLOCATED | PG_HEAD) ? s >> 4 : -1;
  }

  /** Visit every RAM page as (pfn, index): ranges in address order. */
  forEachRamPage(visit: (pfn: number, index: number) => void): void {
    for (let k = 0; k < this._starts.length; k++) {
      const s = this._starts[k] as number;
      const base = this._bases[k] as number;
      for (let p = s; p < (this._ends[k] as number); p++) visit(p, p - s + base);
    }
  }
}
