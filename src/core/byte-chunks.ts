/**
 * @module core/byte-chunks
 * Snapshots of byte arrays kept as lists of immutable fixed-size chunk copies, so that successive
 * snapshots share every chunk that did not change. Two ways to know what changed:
 * - {@link captureChunks} / {@link restoreChunks} compare each chunk against the previous copy
 *   (a native memcmp, ~14 GB/s here, against ~2 GB/s for a fresh copy): no help from the writer;
 * - {@link DirtyChunks}: the writer marks the chunks it touches, so a snapshot or restore costs
 *   the chunk count plus what changed (page metadata at 16 GiB is 12 MiB: bench/RESULTS.md,
 *   session 9).
 * Chunk copies are never written once made: a list may be shared by any number of snapshots.
 *
 * @example
 * const s1 = captureChunks(bytes, undefined);   // copies everything
 * bytes[5] = 1;
 * const s2 = captureChunks(bytes, s1.chunks);   // copies one chunk, shares the rest
 * restoreChunks(bytes, s1.chunks);              // writes back the one chunk that differs
 */
import { Buffer } from 'node:buffer';

/** Bytes per chunk of a compared array. */
export const COMPARE_CHUNK_BYTES = 64 * 1024;

/** Are two byte ranges of equal length equal? (Buffer.compare is a native memcmp.) */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** A snapshot of one byte array: its chunk copies in order, and how many bytes this capture copied. */
export interface ChunkCapture {
  readonly chunks: readonly Uint8Array[];
  readonly copied: number;
}

/**
 * Copy `bytes` as chunks, sharing each chunk of `previous` whose bytes are still the same.
 * @example const snap = captureChunks(view, lastSnap?.chunks)
 */
export function captureChunks(bytes: Uint8Array, previous: readonly Uint8Array[] | undefined): ChunkCapture {
  const n = Math.ceil(bytes.length / COMPARE_CHUNK_BYTES);
  const chunks = new Array<Uint8Array>(n);
  let copied = 0;
  for (let c = 0; c < n; c++) {
    const lo = c * COMPARE_CHUNK_BYTES;
    const live = bytes.subarray(lo, Math.min(bytes.length, lo + COMPARE_CHUNK_BYTES));
    const old = previous?.[c];
    if (old !== undefined && old.length === live.length && sameBytes(live, old)) chunks[c] = old;
    else {
      chunks[c] = live.slice();
      copied += live.length;
    }
  }
  return { chunks, copied };
}

/**
 * Write `chunks` (from {@link captureChunks} of this array) back into `bytes`, touching only the
 * chunks that differ.
 * @example restoreChunks(view, snap.chunks)
 */
export function restoreChunks(bytes: Uint8Array, chunks: readonly Uint8Array[]): void {
  for (let c = 0; c < chunks.length; c++) {
    const old = chunks[c] as Uint8Array;
    const lo = c * COMPARE_CHUNK_BYTES;
    const live = bytes.subarray(lo, lo + old.length);
    if (!sameBytes(live, old)) live.set(old);
  }
}

/** log2 of the elements per chunk of a {@link DirtyChunks}. */
export const DIRTY_CHUNK_SHIFT = 12;

/** What {@link DirtyChunks.capture} returns: per array, its chunk copies. */
export interface DirtyCapture {
  /** lists[k][c]: chunk c of array k. */
  readonly lists: readonly (readonly Uint8Array[])[];
  readonly copied: number;
}

/**
 * Snapshots of a few parallel typed arrays (same element count) whose writers mark what they
 * touch: {@link DirtyChunks.touch} before or after a write, with the element range.
 * @example
 * const track = new DirtyChunks([state, owner]);
 * state[i] = 1; track.touch(i, i + 1);
 * const snap = track.capture(); ...; track.restore(snap);
 */
export class DirtyChunks {
  // INVARIANT: when _ref is not null, every chunk c with dirty[c] === 0 holds, in every array,
  //   exactly the bytes of _ref.lists[k][c]; _ref is the last capture made or restored.
  // INVARIANT: chunk c covers elements [c << DIRTY_CHUNK_SHIFT, (c + 1) << DIRTY_CHUNK_SHIFT).
  readonly dirty: Uint8Array;
  private readonly _bytes: Uint8Array[];
  private readonly _elemBytes: number[];
  private _ref: DirtyCapture | null = null;

  constructor(arrays: readonly (Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array)[]) {
    const n = arrays[0]?.length ?? 0;
    this._bytes = arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this._elemBytes = arrays.map((a) => a.BYTES_PER_ELEMENT);
    this.dirty = new Uint8Array(Math.max(1, Math.ceil(n / 2 ** DIRTY_CHUNK_SHIFT)));
  }

  /** Mark elements [lo, hi) as written since the last capture or restore. */
  touch(lo: number, hi: number): void {
    if (hi <= lo) return;
    const last = (hi - 1) >>> DIRTY_CHUNK_SHIFT;
    for (let c = lo >>> DIRTY_CHUNK_SHIFT; c <= last; c++) this.dirty[c] = 1;
  }

  private _chunkOf(k: number, c: number): Uint8Array {
    const eb = this._elemBytes[k] as number;
    const bytes = this._bytes[k] as Uint8Array;
    const lo = (c << DIRTY_CHUNK_SHIFT) * eb;
    return bytes.subarray(lo, Math.min(bytes.length, lo + (eb << DIRTY_CHUNK_SHIFT)));
  }

  /** The last capture made or restored (the arrays equal it outside the dirty chunks), or null. */
  get reference(): DirtyCapture | null {
    return this._ref;
  }

  /** Number of chunks. */
  get chunks(): number {
    return this.dirty.length;
  }

  /**
   * The chunks whose bytes may differ from `snap` (one of this tracker's captures), in order:
   * written since the last capture or restore, or not shared between that one and `snap`.
   */
  changedSince(snap: DirtyCapture): number[] {
    const out: number[] = [];
    const ref = this._ref;
    const mine = ref === null ? null : (ref.lists[0] as readonly Uint8Array[]);
    const theirs = snap.lists[0] as readonly Uint8Array[];
    for (let c = 0; c < this.dirty.length; c++) if (this.dirty[c] !== 0 || mine === null || mine[c] !== theirs[c]) out.push(c);
    return out;
  }

  /** A snapshot: the chunks touched since the last capture or restore are copied, the rest shared. */
  capture(): DirtyCapture {
    const ref = this._ref;
    const dirty = this.dirty;
    let copied = 0;
    const lists = this._bytes.map((_, k) => {
      const list = ref === null ? new Array<Uint8Array>(dirty.length) : (ref.lists[k] as Uint8Array[]).slice();
      for (let c = 0; c < dirty.length; c++) {
        if (ref !== null && dirty[c] === 0) continue;
        const chunk = this._chunkOf(k, c).slice();
        copied += chunk.length;
        list[c] = chunk;
      }
      return list;
    });
    const snap: DirtyCapture = { lists, copied };
    this._ref = snap;
    dirty.fill(0);
    return snap;
  }

  /** Bring every array back to `snap` (one of this tracker's captures): only chunks that differ. */
  restore(snap: DirtyCapture): void {
    const ref = this._ref;
    const dirty = this.dirty;
    const first = snap.lists[0] as readonly Uint8Array[];
    for (let c = 0; c < dirty.length; c++) {
      // A chunk shared by both captures and untouched since holds snap's bytes already (chunk c
      // of every array is copied together, so array 0's chunk stands for all).
      if (dirty[c] === 0 && ref !== null && (ref.lists[0] as readonly Uint8Array[])[c] === first[c]) continue;
      for (let k = 0; k < this._bytes.length; k++) this._chunkOf(k, c).set((snap.lists[k] as readonly Uint8Array[])[c] as Uint8Array);
    }
    this._ref = snap;
    dirty.fill(0);
  }
}
