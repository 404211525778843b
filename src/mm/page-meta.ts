/**
 * @module mm/page-meta
 * Per-page metadata in typed arrays: 3 bytes a page frame of RAM (state+order, owner, refcount).
 * Only RAM has entries: the RAM ranges are packed one after another (the idea of the kernel's
 * SPARSEMEM, at range granularity), so a machine with RAM at 0 and at 2^50 pays for its RAM, not
 * for the hole. Untouched entries cost nothing: the OS commits typed-array pages on first write.
 */
import type { PfnRange } from './layout.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { MAX_PFN_LIMIT } from '../core/page.ts';
import { DirtyChunks, type DirtyCapture } from '../core/byte-chunks.ts';
import { RESTORE_STATE, SNAPSHOT_STATE, type SnapshotHooks } from '../core/snapshot.ts';
import { POW2 } from '../core/bits.ts';

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
  lastCapture: DirtyCapture | null = null;

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
    this.state = new Uint8Array(n);
    this.owner = new Uint8Array(n);
    this.refcount = new Uint8Array(n);
    this.written = new DirtyChunks([this.state, this.owner, this.refcount]);
  }

  /** Indices [lo, hi) of the arrays are about to be written directly (call before the stores). */
  touch(lo: number, hi: number): void {
    this.written.touch(lo, hi);
  }

  /** Snapshot: the arrays copy on write, a chunk at a time. */
  [SNAPSHOT_STATE](): DirtyCapture {
    this.lastCapture = this.written.capture();
    return this.lastCapture;
  }

  [RESTORE_STATE](state: unknown): void {
    this.written.restore(state as DirtyCapture);
    this.lastCapture = state as DirtyCapture;
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
    return i < 0 ? PG_RESERVED : (this.state[i] as number);
  }

  /** The owner id of `pfn` (0 for a pfn that is not RAM). */
  ownerOf(pfn: number): number {
    const i = this.index(pfn);
    return i < 0 ? 0 : (this.owner[i] as number);
  }

  /** The reference count kept on the head page `pfn`. */
  refcountOf(pfn: number): number {
    const i = this.index(pfn);
    return i < 0 ? 0 : (this.refcount[i] as number);
  }

  /** Set the reference count of the allocated head page `pfn` (a RAM page). */
  setRefcount(pfn: number, rc: number): void {
    const i = this.index(pfn);
    this.written.touch(i, i + 1);
    this.refcount[i] = rc;
  }

  /** Set `array`'s entries for the RAM pages of [startPfn, endPfn) to `value` (pages that are not RAM are skipped). */
  fill(array: Uint8Array, value: number, startPfn: number, endPfn: number): void {
    for (let k = 0; k < this._starts.length; k++) {
      const lo = Math.max(startPfn, this._starts[k] as number);
      const hi = Math.min(endPfn, this._ends[k] as number);
      if (lo >= hi) continue;
      const base = (this._bases[k] as number) - (this._starts[k] as number);
      this.written.touch(lo + base, hi + base);
      array.fill(value, lo + base, hi + base);
    }
  }

  /** Mark [pfn, pfn + 2^order) allocated as one block owned by `owner` (a block never leaves its RAM range). */
  markAllocated(pfn: number, order: number, owner: number): void {
    const n = POW2[order] as number;
    const i = this.index(pfn);
    this.written.touch(i, i + n);
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
    this.written.touch(i, i + n);
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
