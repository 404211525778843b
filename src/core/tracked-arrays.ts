/**
 * @module core/tracked-arrays
 * Fixed typed arrays a snapshot captures copy on write instead of comparing them (internal).
 *
 * Why: a machine snapshot compares every typed array it reaches against its last copy, chunk by
 * chunk, at each capture and each restore. The IOMMU's unmap history, dma-debug's hash heads, the
 * IOTLB and the ledger's lane counts were ~430 of the ~505 KiB a restore of the 1 GiB test machine
 * compared (bench/RESULTS.md, session 15), though a failure point writes a few slots of them. Their
 * owners announce each write instead ({@link TrackedArrays.touch}, a load and a compare while no
 * capture exists), and a capture costs the chunk count.
 *
 * The arrays themselves are marked shared, so the snapshot's walk skips them where their owner
 * holds them: this object captures and restores their contents. They must never be replaced (an
 * owner that grows an array cannot use this).
 *
 * @example
 * const heads = new Int32Array(16384);
 * const tracked = new TrackedArrays([heads]);     // keep it in a field of the owner
 * tracked.touch(b, b + 1); heads[b] = slot;       // every write announced first
 */
import { DirtyChunks, type DirtyCapture } from './byte-chunks.ts';
import { RESTORE_STATE, SNAPSHOT_STATE, markShared, type SnapshotHooks } from './snapshot.ts';

type Tracked = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;

export class TrackedArrays implements SnapshotHooks {
  // INVARIANT: every write to the arrays was announced to _dirty before it was made (the owners'
  //   duty); the arrays are the ones given to the constructor, same length each.
  private readonly _dirty: DirtyChunks;

  constructor(arrays: readonly Tracked[]) {
    const n = arrays[0]?.length ?? 0;
    if (arrays.some((a) => a.length !== n)) throw new Error('TrackedArrays: the arrays must have one length');
    for (const a of arrays) markShared(a);
    this._dirty = new DirtyChunks(arrays);
  }

  /** Elements [lo, hi) of every array are about to be written. */
  touch(lo: number, hi: number): void {
    this._dirty.touch(lo, hi);
  }

  [SNAPSHOT_STATE](): DirtyCapture {
    return this._dirty.capture();
  }

  [RESTORE_STATE](state: unknown): void {
    this._dirty.restore(state as DirtyCapture);
  }
}
