/**
 * @module dma/swiotlb/slots
 * The per-slot bookkeeping of one pool (`struct io_tlb_slot` as struct-of-arrays): the free-run
 * counts (`list`), the original address, the bytes left to the allocation end (`alloc_size`) and
 * the padding-slot count, with the kernel's claim and release rules.
 */
import { INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SIZE } from './constants.ts';
import { TrackedArrays } from '../../core/tracked-arrays.ts';

/**
 * Slot state of a pool, in typed arrays indexed by pool-absolute slot number.
 * @example
 * const t = new SlotTable(256);
 * t.claim(0, 2, 4096, 0);   // t.list[0] === 0, t.list[2] === 126
 * t.release(0, 2);          // back to the fresh state
 */
export class SlotTable {
  /** Number of slots. */
  readonly nslabs: number;
  // INVARIANT: list[i] === 0 iff slot i is allocated. For a free slot, list[i] is the number of free
  //   slots from i up to the end of i's 128-slot segment: 1 + (list[i+1] if i+1 is in the same
  //   segment, else 0). Free runs never count across a segment (or pool) end.
  /** `list`: free-run length from this slot to its segment end; 0 = allocated. */
  readonly list: Uint8Array;
  // INVARIANT: a free slot has orig === INVALID_PHYS_ADDR, room === 0 and pad === 0.
  // INVARIANT: in an allocation of `need` slots starting at slot f with in-slot offset o and rounded
  //   size s: room[f+j] === s - o - 2048*j (a size_t held signed: the last slot's value may be
  //   negative); orig is INVALID on the `pad` leading padding slots and orig + 2048*k on data slot k;
  //   pad[f+pad] === pad and every other pad entry is 0.
  /** `orig_addr`: original address this slot bounces; INVALID_PHYS_ADDR (-1) for none. */
  readonly orig: Float64Array;
  /** `alloc_size`: bytes from this slot's data position to the allocation end; signed (wraps below 0). */
  readonly room: Float64Array;
  /** `pad_slots`: padding slots before this one; set on the returned-address slot only. */
  readonly pad: Uint8Array;
  // INVARIANT: every store into the four arrays is announced to _tracked first (touch): snapshots
  //   copy a chunk of slots only when it is first written after one (a 64 MiB pool's table is 576
  //   KiB, compared on every snapshot before: bench/RESULTS.md, session 9).
  private readonly _tracked: TrackedArrays;

  constructor(nslabs: number) {
    this.nslabs = nslabs;
    this.list = new Uint8Array(nslabs);
    this.orig = new Float64Array(nslabs);
    this.room = new Float64Array(nslabs);
    this.pad = new Uint8Array(nslabs);
    this._tracked = new TrackedArrays([this.list, this.orig, this.room, this.pad]);
    this.reset();
  }

  /** Slots [lo, hi) are about to be written (call before the stores). */
  touch(lo: number, hi: number): void {
    this._tracked.touch(lo, hi);
  }

  /** The boot state: everything free (`swiotlb_init_io_tlb_pool`). */
  reset(): void {
    const { list, nslabs } = this;
    this.touch(0, nslabs);
    for (let i = 0; i < nslabs; i++) list[i] = Math.min(IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE), nslabs - i);
    this.orig.fill(INVALID_PHYS_ADDR);
    this.room.fill(0);
    this.pad.fill(0);
  }

  /**
   * Mark `n` free slots from `first` allocated for a rounded `size` with in-slot offset
   * `inSlotOffset`, and shorten the free run that ends just before them. Original addresses and
   * padding are the caller's (they depend on the padding count).
   */
  claim(first: number, n: number, size: number, inSlotOffset: number): void {
    const { list, room } = this;
    // The claimed slots and the free run before them, inside their segment.
    this.touch(first - (first % IO_TLB_SEGSIZE), first + n);
    for (let i = first; i < first + n; i++) {
      list[i] = 0;
      room[i] = size - (inSlotOffset + (i - first) * IO_TLB_SIZE);
    }
    let count = 0;
    for (let i = first - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && list[i] !== 0; i--) list[i] = ++count;
  }

  /**
   * Free `n` slots from `first` (`swiotlb_release_slots`): they join the free run after them (inside
   * the segment), and the free run before them (inside the segment) is extended.
   */
  release(first: number, n: number): void {
    const { list, orig, room, pad } = this;
    const segEnd = (Math.floor(first / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE;
    this.touch(segEnd - IO_TLB_SEGSIZE, first + n);
    let count = first + n < segEnd ? (list[first + n] as number) : 0;
    for (let i = first + n - 1; i >= first; i--) {
      list[i] = ++count;
      orig[i] = INVALID_PHYS_ADDR;
      room[i] = 0;
      pad[i] = 0;
    }
    for (let i = first - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && list[i] !== 0; i--) list[i] = ++count;
  }
}
