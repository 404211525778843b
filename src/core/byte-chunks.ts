/**
 * @module core/byte-chunks
 * Snapshots of byte arrays kept as fixed-size chunks, so that successive snapshots share every
 * chunk that did not change. Two ways to know what changed:
 * - {@link captureChunks} / {@link restoreChunks} compare each chunk against the previous copy
 *   (a native memcmp, ~14 GB/s here, against ~2 GB/s for a fresh copy): no help from the writer;
 * - {@link DirtyChunks}: the writer announces the chunks it is about to write, so a snapshot costs
 *   the chunk count and a chunk is copied only when first written after one (copy on write).
 * Chunk copies are never written once made: any number of snapshots may share one.
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

// INVARIANT: filledChunks[b] is undefined or a chunk-sized array of byte b, never written (the
//   chunks of every capture share it).
const filledChunks: (Uint8Array | undefined)[] = [];

/** A shared read-only chunk equal to `live` when every byte of `live` is the same, else undefined. */
function uniformChunk(live: Uint8Array): Uint8Array | undefined {
  const n = live.length;
  if (n === 0) return live;
  // Every byte equals the next one: one native memcmp of the chunk against itself shifted by one.
  if (n > 1 && !sameBytes(live.subarray(0, n - 1), live.subarray(1))) return undefined;
  const b = live[0] as number;
  const filled = (filledChunks[b] ??= new Uint8Array(COMPARE_CHUNK_BYTES).fill(b));
  return filled.subarray(0, n);
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
      // Most of an IOMMU's or dma-debug's tables are one repeated byte (0, or 0xff for -1): those
      // chunks share one filled chunk (a 16 GiB machine's first snapshot copied 410 KiB of them:
      // bench/RESULTS.md, session 10).
      const uniform = uniformChunk(live);
      if (uniform !== undefined) chunks[c] = uniform;
      else {
        chunks[c] = live.slice();
        copied += live.length;
      }
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
export const DIRTY_CHUNK_SHIFT = 10;

/**
 * The bytes of one chunk (of every tracked array) at some capture: `copies` is null while the live
 * arrays still hold them (nothing written there since), else their saved copies, one per array.
 */
export interface ChunkBox {
  copies: Uint8Array[] | null;
}

/** What {@link DirtyChunks.capture} returns: chunk c's bytes at the capture are `boxes[c]`. */
export interface DirtyCapture {
  readonly boxes: readonly ChunkBox[];
  /** Bytes copied by the capture itself: always 0 (chunks are copied when first written after it). */
  readonly copied: number;
}

/**
 * Copy-on-write snapshots of a few parallel typed arrays (same element count) whose writers call
 * {@link DirtyChunks.touch} with the element range *before* writing it. A capture costs the chunk
 * count and copies nothing; the first write to a chunk after a capture copies that chunk once (the
 * first snapshot of a 16 GiB machine copied 12 MiB of page metadata up front: bench/RESULTS.md,
 * session 9); a restore writes back only the chunks that differ.
 * @example
 * const track = new DirtyChunks([state, owner]);
 * const snap = track.capture();
 * track.touch(i, i + 1); state[i] = 1;
 * track.restore(snap); // state[i] is back
 */
export class DirtyChunks {
  // INVARIANT: _current[c] is a box whose bytes the live arrays hold for chunk c (its copies are
  //   null, or equal to the live chunk), or null when chunk c was written since the last capture
  //   or restore. A box that is not some chunk's current box has its copies (touch and restore
  //   save a current box's bytes before the live chunk changes).
  // INVARIANT: chunk c covers elements [c << DIRTY_CHUNK_SHIFT, (c + 1) << DIRTY_CHUNK_SHIFT).
  private readonly _current: (ChunkBox | null)[];
  /** False until the first capture: before it, writes need no bookkeeping at all. */
  tracking = false;
  private readonly _bytes: Uint8Array[];
  private readonly _elemBytes: number[];

  constructor(arrays: readonly (Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array)[]) {
    const n = arrays[0]?.length ?? 0;
    this._bytes = arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this._elemBytes = arrays.map((a) => a.BYTES_PER_ELEMENT);
    this._current = new Array<ChunkBox | null>(Math.max(1, Math.ceil(n / 2 ** DIRTY_CHUNK_SHIFT))).fill(null);
  }

  /** Number of chunks. */
  get chunks(): number {
    return this._current.length;
  }

  /** Elements [lo, hi) are about to be written: save what a capture still needs of their chunks. */
  touch(lo: number, hi: number): void {
    if (!this.tracking || hi <= lo) return;
    const cur = this._current;
    const last = (hi - 1) >>> DIRTY_CHUNK_SHIFT;
    for (let c = lo >>> DIRTY_CHUNK_SHIFT; c <= last; c++) {
      const box = cur[c];
      // Untouched since no capture, or already saved this generation: one load and compare.
      if (box === null || box === undefined) continue;
      if (box.copies === null) box.copies = this._copyChunk(c);
      cur[c] = null;
    }
  }

  private _chunkOf(k: number, c: number): Uint8Array {
    const eb = this._elemBytes[k] as number;
    const bytes = this._bytes[k] as Uint8Array;
    const lo = (c << DIRTY_CHUNK_SHIFT) * eb;
    return bytes.subarray(lo, Math.min(bytes.length, lo + (eb << DIRTY_CHUNK_SHIFT)));
  }

  private _copyChunk(c: number): Uint8Array[] {
    return this._bytes.map((_, k) => this._chunkOf(k, c).slice());
  }

  /** A snapshot: a box per chunk, shared with the previous capture where nothing was written since. */
  capture(): DirtyCapture {
    this.tracking = true;
    const cur = this._current;
    const boxes = new Array<ChunkBox>(cur.length);
    for (let c = 0; c < cur.length; c++) {
      let box = cur[c];
      if (box === null || box === undefined) {
        box = { copies: null };
        cur[c] = box;
      }
      boxes[c] = box;
    }
    return { boxes, copied: 0 };
  }

  /** Bring every array back to `snap` (one of this tracker's captures): only chunks that differ. */
  restore(snap: DirtyCapture): void {
    const cur = this._current;
    for (let c = 0; c < cur.length; c++) {
      const box = snap.boxes[c] as ChunkBox;
      const now = cur[c];
      if (now === box) continue;
      // Save what another capture still needs before the live chunk changes.
      if (now !== null && now !== undefined && now.copies === null) now.copies = this._copyChunk(c);
      const copies = box.copies as Uint8Array[];
      for (let k = 0; k < this._bytes.length; k++) this._chunkOf(k, c).set(copies[k] as Uint8Array);
      cur[c] = box;
    }
  }

  /**
   * Does chunk c's current box hold saved copies (a restore made a box with copies current, and
   * nothing was written since)? Its captures then read those copies, not the live chunk.
   * @example if (track.currentSaved(c)) track.touch(lo, hi);
   */
  currentSaved(c: number): boolean {
    const box = this._current[c];
    return box !== null && box !== undefined && box.copies !== null;
  }

  /** The chunks whose bytes may differ from `snap` (one of this tracker's captures), in order. */
  changedSince(snap: DirtyCapture): number[] {
    const out: number[] = [];
    const cur = this._current;
    for (let c = 0; c < cur.length; c++) if (cur[c] !== snap.boxes[c]) out.push(c);
    return out;
  }

  /** Chunk c of array k as it was at `snap`. */
  chunkAt(snap: DirtyCapture, k: number, c: number): Uint8Array {
    const box = snap.boxes[c] as ChunkBox;
    return box.copies === null ? this._chunkOf(k, c) : (box.copies[k] as Uint8Array);
  }
}
