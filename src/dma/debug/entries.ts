/**
 * @module dma/debug/entries
 * The `dma_debug_entry` slots, struct-of-arrays: the free pool (reused newest first, grown a page of
 * 32 entries at a time) and the 16384 hash lists (new entries at the tail), plus the best-fit
 * lookup both the exact and the containing search use.
 */
import { TrackedArrays } from '../../core/tracked-arrays.ts';
import { DMA_DEBUG_DYNAMIC_ENTRIES, HASH_SIZE } from './constants.ts';
import type { DebugDevice } from './device.ts';
import { hashBucket, u64LessEq, u64SumGreaterEq } from './u64.ts';
import { Buffer } from 'node:buffer';

const NIL = -1;

/** Buckets checked for emptiness at once (a native compare of their -1 words). */
const EMPTY_RUN = 256;
const EMPTY_RUN_BYTES = new Uint8Array(EMPTY_RUN * 4).fill(0xff);
const ALL_EMPTY_BYTES = new Uint8Array(HASH_SIZE * 4).fill(0xff);

/** Are the words [from, from + n) of `arr` all -1? One native compare against `ones` (n * 4 bytes of 0xff). */
function allNil(arr: Int32Array, from: number, n: number, ones: Uint8Array): boolean {
  return Buffer.compare(new Uint8Array(arr.buffer, arr.byteOffset + from * 4, n * 4), ones) === 0;
}

/**
 * The first bucket at or after `from` whose word in `arr` (a head or tail array) is not -1, or
 * HASH_SIZE when there is none. An idle table is one native compare of the whole 64 KiB (~1.2 us),
 * and runs of 256 empty buckets one compare each: a failure sweep audits the table at every point,
 * and a bucket at a time was most of that audit (bench/RESULTS.md, sessions 9 and 10).
 */
export function nextUsedBucket(arr: Int32Array, from: number): number {
  const n = arr.length;
  if (from === 0 && n === HASH_SIZE && allNil(arr, 0, n, ALL_EMPTY_BYTES)) return n;
  for (let b = from; b < n; b++) {
    if (b % EMPTY_RUN === 0 && b + EMPTY_RUN <= n && allNil(arr, b, EMPTY_RUN, EMPTY_RUN_BYTES)) {
      b += EMPTY_RUN - 1;
      continue;
    }
    if (arr[b] !== NIL) return b;
  }
  return n;
}

/** The fields a lookup compares: a `struct dma_debug_entry` used as a reference. */
export interface EntryRef {
  readonly dev: DebugDevice;
  readonly devAddr: number;
  readonly size: number;
  readonly type: number;
  readonly dir: number;
  readonly sgCallEnts: number;
}

/** Which candidates a bucket search accepts. */
export type MatchKind = 'exact' | 'contain';

/** Slots the arrays hold from the start (a test's live mappings rarely pass it). */
const INITIAL_SLOTS = 64;

/**
 * Slots, the free pool and the hash lists of one machine's dma-debug.
 * @example
 * const t = new EntryTable(64);
 * const s = t.alloc(); t.devAddr[s] = 0x1000; t.hashAdd(s);
 */
export class EntryTable {
  // INVARIANT: slots [0, fresh) have been handed out at least once; slots [fresh, total) never were.
  // INVARIANT: the free list is freeStack[freeTop-1] .. freeStack[0] (most recently freed first),
  //   followed by the never-used slots fresh, fresh+1, .., total-1; numFree = freeTop + total - fresh.
  // INVARIANT: a slot is live (live[s] === 1) iff it is in exactly one hash list, the one of
  //   hashBucket(devAddr[s]); bucket lists are doubly linked through next/prev in insertion order.
  // INVARIANT: a freed slot keeps its field values until it is handed out again (then zeroed), as
  //   the kernel's memset-on-allocation does; the cacheline tracker may read them meanwhile.
  dev: (DebugDevice | undefined)[] = [];
  devAddr = new Float64Array(0);
  size = new Float64Array(0);
  paddr = new Float64Array(0);
  type = new Uint8Array(0);
  dir = new Int32Array(0);
  sgCallEnts = new Int32Array(0);
  sgMappedEnts = new Int32Array(0);
  mapErr = new Uint8Array(0);
  clean = new Uint8Array(0);
  live = new Uint8Array(0);
  next = new Int32Array(0);
  prev = new Int32Array(0);
  readonly head = new Int32Array(HASH_SIZE).fill(NIL);
  readonly tail = new Int32Array(HASH_SIZE).fill(NIL);
  // The bucket heads and tails, captured by snapshots copy on write: hashAdd and hashDel announce
  // their bucket.
  private readonly _bucketsTracked = new TrackedArrays([this.head, this.tail]);
  private _freeStack = new Int32Array(INITIAL_SLOTS);
  private _freeTop = 0;
  private _fresh = 0;
  /** `nr_total_entries`. */
  total = 0;
  /** `min_free_entries`. */
  minFree = 0;
  /** Live entries. */
  liveCount = 0;

  /** A pool of `total` entries (already rounded to whole pages by the caller). */
  constructor(total: number) {
    this.total = total;
    this.minFree = total;
    // Room for the first entries from the start (and in _freeStack): a machine restored from a
    // snapshot gets back the arrays it had then, so arrays that began empty were grown again at
    // every failure point of a sweep (the 1 GiB rx ring fill: ~5 us a point in thirteen new typed
    // arrays, seen in a profile of the operation after each restore).
    this._reserve(INITIAL_SLOTS);
  }

  /** `num_free_entries`. */
  get numFree(): number {
    return this._freeTop + this.total - this._fresh;
  }

  /** Add one page of entries at the tail of the (empty) free list; returns the new total. */
  grow(): number {
    this.total += DMA_DEBUG_DYNAMIC_ENTRIES;
    return this.total;
  }

  /**
   * Take the first free entry and zero it. The caller made sure one is free.
   * @returns the slot
   */
  alloc(): number {
    let s: number;
    if (this._freeTop > 0) s = this._freeStack[--this._freeTop] as number;
    else {
      s = this._fresh++;
      if (s >= this.devAddr.length) this._reserve(s + 1);
    }
    this.dev[s] = undefined;
    this.devAddr[s] = 0;
    this.size[s] = 0;
    this.paddr[s] = 0;
    this.type[s] = 0;
    this.dir[s] = 0;
    this.sgCallEnts[s] = 0;
    this.sgMappedEnts[s] = 0;
    this.mapErr[s] = 0;
    this.clean[s] = 0;
    const nf = this.numFree;
    if (nf < this.minFree) this.minFree = nf;
    return s;
  }

  /**
   * Fill the fields every entry has (the rest stay as {@link alloc} zeroed them).
   * @example const s = t.alloc(); t.fill(s, dma_debug_phy, dev, 0x5000, 0x5000, 4096, DMA_TO_DEVICE);
   */
  fill(s: number, type: number, dev: DebugDevice, paddr: number, devAddr: number, size: number, dir: number): void {
    this.type[s] = type;
    this.dev[s] = dev;
    this.paddr[s] = paddr;
    this.devAddr[s] = devAddr;
    this.size[s] = size;
    this.dir[s] = dir;
  }

  /** Put a slot (already out of its hash list) back at the head of the free list. */
  free(s: number): void {
    if (this._freeTop >= this._freeStack.length) {
      const bigger = new Int32Array(Math.max(64, this._freeStack.length * 2));
      bigger.set(this._freeStack);
      this._freeStack = bigger;
    }
    this._freeStack[this._freeTop++] = s;
  }

  /** Append a slot to the tail of its bucket's list. */
  hashAdd(s: number): void {
    const b = hashBucket(this.devAddr[s] as number);
    this._bucketsTracked.touch(b, b + 1);
    const t = this.tail[b] as number;
    this.prev[s] = t;
    this.next[s] = NIL;
    if (t === NIL) this.head[b] = s;
    else this.next[t] = s;
    this.tail[b] = s;
    this.live[s] = 1;
    this.liveCount++;
  }

  /** Unlink a live slot from its bucket's list. */
  hashDel(s: number): void {
    const b = hashBucket(this.devAddr[s] as number);
    this._bucketsTracked.touch(b, b + 1);
    const p = this.prev[s] as number;
    const n = this.next[s] as number;
    if (p === NIL) this.head[b] = n;
    else this.next[p] = n;
    if (n === NIL) this.tail[b] = p;
    else this.prev[n] = p;
    this.live[s] = 0;
    this.liveCount--;
  }

  /**
   * `__hash_bucket_find`: among the bucket's entries accepted by `kind`, the first scoring 4 (size,
   * kind, direction and sg nents all equal); else the only candidate whatever its score; else none.
   * @returns the slot, or -1
   */
  find(bucket: number, ref: EntryRef, kind: MatchKind): number {
    let best = NIL;
    let bestLvl = -1;
    let matches = 0;
    for (let s = this.head[bucket] as number; s !== NIL; s = this.next[s] as number) {
      if (this.dev[s] !== ref.dev) continue;
      const a = this.devAddr[s] as number;
      if (kind === 'exact') {
        if (a !== ref.devAddr) continue;
      } else if (!(u64LessEq(a, ref.devAddr) && u64SumGreaterEq(a, this.size[s] as number, ref.devAddr, ref.size))) continue;
      matches++;
      let lvl = 0;
      if (this.size[s] === ref.size) lvl++;
      if (this.type[s] === ref.type) lvl++;
      if (this.dir[s] === ref.dir) lvl++;
      if (this.sgCallEnts[s] === ref.sgCallEnts) lvl++;
      if (lvl === 4) return s;
      if (lvl > bestLvl) {
        bestLvl = lvl;
        best = s;
      }
    }
    return matches === 1 ? best : NIL;
  }

  /** Live slots in scan order: bucket 0 to 16383, each list from head to tail. */
  *liveSlots(): Generator<number, void, undefined> {
    const head = this.head;
    for (let b = nextUsedBucket(head, 0); b < HASH_SIZE; b = nextUsedBucket(head, b + 1)) {
      // No list holds more entries than the pool: a corrupted list that loops cannot hang a reader
      // (auditState names the corruption).
      let steps = this.total;
      for (let s = head[b] as number; s !== NIL && steps > 0; s = this.next[s] as number, steps--) yield s;
    }
  }

  private _reserve(n: number): void {
    const cap = Math.max(64, this.devAddr.length * 2, n);
    const f64 = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => { const b = new Float64Array(cap); b.set(a); return b; };
    const i32 = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => { const b = new Int32Array(cap); b.set(a); return b; };
    const u8 = (a: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> => { const b = new Uint8Array(cap); b.set(a); return b; };
    this.devAddr = f64(this.devAddr);
    this.size = f64(this.size);
    this.paddr = f64(this.paddr);
    this.type = u8(this.type);
    this.dir = i32(this.dir);
    this.sgCallEnts = i32(this.sgCallEnts);
    this.sgMappedEnts = i32(this.sgMappedEnts);
    this.mapErr = u8(this.mapErr);
    this.clean = u8(this.clean);
    this.live = u8(this.live);
    this.next = i32(this.next);
    this.prev = i32(this.prev);
  }
}
