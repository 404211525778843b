/**
 * @module iommu/iotlb
 * The IOTLB: a finite cache of translations (IOVA page → physical page, permissions, page size),
 * keyed by address-space id (the domain id), in the manner of QEMU's VT-d model: a hash keyed by
 * (page frame, id, page size); a lookup tries each page size, smallest first; at most 1024 entries,
 * and inserting into a full IOTLB first drops every entry (vtd_update_iotlb's reset).
 *
 * A cached translation outlives its PTE: an entry stays and keeps serving until an invalidation
 * (range, domain or global) removes it. That is how a device can still reach memory after unmap in
 * lazy mode, and what translate() reports as a stale access.
 *
 * Storage is an open-addressing table (linear probing, backward-shift deletion) in typed arrays,
 * at most half full. Page frames are numbers (`Math.floor(iova / size)`), hashed without bitwise
 * operations on values above 2^32.
 */
import { TrackedArrays } from '../core/tracked-arrays.ts';
import { checkObject } from '../core/args.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { POW2, POW2_INV } from './pgtable-geometry.ts';

// Local copies of imported bindings used on hot paths: when a script loads dmasim as CommonJS (tsx
// does so for a .ts file outside an ESM package), every read of an imported binding is a getter call.
const P2 = POW2;
const P2_INV = POW2_INV;

/**
 * QEMU VT-d's VTD_IOTLB_MAX_SIZE.
 * @example new Iotlb().capacity === IOTLB_DEFAULT_CAPACITY // true
 */
export const IOTLB_DEFAULT_CAPACITY = 1024;

const EMPTY = -1;
const TWO32 = 4294967296;

/**
 * How to build an IOTLB.
 * @example new Iotlb({ capacity: 64 })
 */
export interface IotlbOptions {
  /** Entries it holds before the next insert drops them all (default 1024). */
  readonly capacity?: number;
}

/**
 * One cached translation, as {@link Iotlb.entries} reports it.
 * @example for (const e of tlb.entries()) console.log(e.asid, e.iova, e.size, e.phys, e.perm)
 */
export interface IotlbEntryInfo {
  readonly asid: number;
  /** First IOVA of the cached page. */
  readonly iova: number;
  /** Page size in bytes. */
  readonly size: number;
  /** First physical address of the page. */
  readonly phys: number;
  /** IOMMU_READ / IOMMU_WRITE (and the other prot bits). */
  readonly perm: number;
}

/**
 * An IOTLB shared by the domains of one IOMMU.
 * @example
 * const tlb = new Iotlb();
 * tlb.insert(1, 0x5000, 0x9000, IOMMU_READ, 12, 0);
 * const s = tlb.lookup(1, 0x5abc); // slot ≥ 0
 * tlb.pagePhys[s] + (0x5abc - 0x5000) // 0x9abc
 */
export class Iotlb {
  readonly capacity: number;
  // INVARIANT: the slot arrays below are written only by this class's methods (snapshots rely on
  //   it: see _tracked); read them freely.
  // INVARIANT: keyAsid[i] === EMPTY (-1) marks a free slot; a used slot i holds the entry with key
  //   (keyAsid[i], keyGfn[i], keyShift[i]) and no other slot holds that key.
  // INVARIANT: linear probing: every used slot is reachable from home(key) through used slots only.
  // INVARIANT: count === number of used slots <= capacity <= slots / 2.
  // INVARIANT: shiftList[0..nShifts) are the distinct page shifts ever inserted since the last
  //   reset/flushAll, ascending (a superset of the shifts present).
  readonly keyAsid: Int32Array;
  readonly keyGfn: Float64Array;
  readonly keyShift: Uint8Array;
  /** First physical address of the cached page. */
  readonly pagePhys: Float64Array;
  // INVARIANT: for a used slot, pageSize[i] === 2^keyShift[i] and pageIova[i] === keyGfn[i] * pageSize[i]
  //   (kept so translation reads them without arithmetic).
  /** First IOVA of the cached page. */
  readonly pageIova: Float64Array;
  /** Size of the cached page in bytes. */
  readonly pageSize: Float64Array;
  readonly perm: Uint8Array;
  /** The page table's epoch when the entry was filled or last confirmed (see translate.ts). */
  readonly epoch: Float64Array;
  readonly slots: number;
  count = 0;
  /** Lookups answered from the cache. */
  hits = 0;
  /** Lookups that found nothing (the caller walks the page table). */
  misses = 0;
  inserts = 0;
  /** Times an insert into a full IOTLB dropped every entry. */
  resets = 0;
  /** Range (page-selective) invalidations requested. */
  invalidations = 0;
  /** Domain-selective invalidations. */
  domainFlushes = 0;
  /** Global invalidations. */
  globalFlushes = 0;
  /** Entries removed by invalidations of any kind (not by resets). */
  entriesInvalidated = 0;
  /** iotlb_sync calls that reached this IOTLB. */
  syncs = 0;
  private readonly _mask: number;
  private readonly _hashShift: number;
  readonly shiftList = new Uint8Array(64);
  nShifts = 0;
  // The slot arrays, captured by snapshots copy on write: every write to them (here, and the epoch
  // confirmation through confirmEpoch) announces its slots first.
  private readonly _tracked: TrackedArrays;

  constructor(opts: IotlbOptions = {}) {
    checkObject(opts, 'Iotlb', 'opts');
    const cap = opts.capacity ?? IOTLB_DEFAULT_CAPACITY;
    if (typeof cap !== 'number' || !Number.isInteger(cap) || cap < 1 || cap > 2 ** 24) {
      throw new KernelError(EINVAL, 'Iotlb', `expected a whole number in [1, 2^24], got ${String(cap)}`, 'capacity');
    }
    this.capacity = cap;
    let slots = 8;
    while (slots < cap * 2) slots *= 2;
    this.slots = slots;
    this._mask = slots - 1;
    this._hashShift = 32 - Math.log2(slots);
    this.keyAsid = new Int32Array(slots).fill(EMPTY);
    this.keyGfn = new Float64Array(slots);
    this.keyShift = new Uint8Array(slots);
    this.pagePhys = new Float64Array(slots);
    this.pageIova = new Float64Array(slots);
    this.pageSize = new Float64Array(slots);
    this.perm = new Uint8Array(slots);
    this.epoch = new Float64Array(slots);
    this._tracked = new TrackedArrays([this.keyAsid, this.keyGfn, this.keyShift, this.pagePhys, this.pageIova, this.pageSize, this.perm, this.epoch]);
  }

  /**
   * A walk confirmed the entry in `slot` still matches the page table: note the table's epoch.
   * @example if (walk agrees) tlb.confirmEpoch(slot, pt.epoch);
   */
  confirmEpoch(slot: number, epoch: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots || this.keyAsid[slot] === EMPTY) throw new KernelError(EINVAL, 'Iotlb.confirmEpoch', `expected a used slot in [0, ${this.slots}), got ${String(slot)}`, 'slot');
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new KernelError(EINVAL, 'Iotlb.confirmEpoch', `expected an epoch (a whole number), got ${String(epoch)}`, 'epoch');
    this._tracked.touch(slot, slot + 1);
    this.epoch[slot] = epoch;
  }

  private _home(asid: number, gfn: number, shift: number): number {
    let lo = gfn;
    let hi = 0;
    if (gfn >= TWO32) {
      hi = Math.floor(gfn / TWO32);
      lo = gfn - hi * TWO32;
    }
    // Multiplicative (Fibonacci) hashing: the top bits of the product index the table.
    return Math.imul(lo ^ Math.imul(hi ^ asid ^ (shift << 24), 0x85ebca6b), 0x9e3779b1) >>> this._hashShift;
  }

  /** The slot holding the key, or -(e + 1) where e is the empty slot the probe stopped at. */
  private _probe(asid: number, gfn: number, shift: number): number {
    const ka = this.keyAsid;
    const mask = this._mask;
    let i = this._home(asid, gfn, shift);
    for (;;) {
      const a = ka[i] as number;
      if (a === EMPTY) return -(i + 1);
      if (a === asid && this.keyGfn[i] === gfn && this.keyShift[i] === shift) return i;
      i = (i + 1) & mask;
    }
  }


  /**
   * The slot caching `iova` for `asid`, trying each page size smallest first; -1 on a miss. Counts a
   * hit or a miss.
   * @example const s = tlb.lookup(asid, iova); if (s >= 0) tlb.pagePhys[s]
   */
  lookup(asid: number, iova: number): number {
    const slot = this.peek(asid, iova);
    if (slot >= 0) this.hits++;
    else this.misses++;
    return slot;
  }

  /**
   * Like {@link lookup} without counting (for reports and tests).
   * @example tlb.peek(asid, iova) >= 0 // cached?
   */
  peek(asid: number, iova: number): number {
    if (this.count === 0) return -1;
    const n = this.nShifts;
    const shifts = this.shiftList;
    for (let k = 0; k < n; k++) {
      const s = shifts[k] as number;
      const slot = this._probe(asid, Math.floor(iova * (P2_INV[s] as number)), s);
      if (slot >= 0) return slot;
    }
    return -1;
  }

  /**
   * First IOVA of the page cached in `slot`.
   * @example tlb.slotIova(tlb.peek(asid, 0x5abc)) // 0x5000
   */
  slotIova(slot: number): number {
    return this.pageIova[slot] as number;
  }

  /**
   * Cache the translation of the page of 2^shift bytes containing `iova`: a full IOTLB is dropped
   * first, as QEMU's VT-d does. Returns the slot.
   * @param pagePhys first physical address of the page.
   * @param epoch the page table's epoch now.
   * @example tlb.insert(asid, iova, pagePhys, IOMMU_READ | IOMMU_WRITE, 12, pt.epoch)
   */
  insert(asid: number, iova: number, pagePhys: number, perm: number, shift: number, epoch: number): number {
    if (!Number.isInteger(asid) || asid < 0 || asid > 0x7fffffff) throw new KernelError(EINVAL, 'Iotlb.insert', `expected a whole number in [0, 2^31), got ${String(asid)}`, 'asid');
    if (!Number.isInteger(shift) || shift < 0 || shift > 52) throw new KernelError(EINVAL, 'Iotlb.insert', `expected a page shift in [0, 52], got ${String(shift)}`, 'shift');
    const gfn = Math.floor(iova / (P2[shift] as number));
    let slot = this._probe(asid, gfn, shift);
    if (slot < 0) {
      if (this.count >= this.capacity) {
        this.resets++;
        this._clear();
        slot = this._home(asid, gfn, shift); // the table is empty now
      } else {
        slot = -slot - 1; // the empty slot where the probe stopped
      }
      this._tracked.touch(slot, slot + 1);
      this.keyAsid[slot] = asid;
      this.keyGfn[slot] = gfn;
      this.keyShift[slot] = shift;
      this.pageSize[slot] = P2[shift] as number;
      this.pageIova[slot] = gfn * (P2[shift] as number);
      this.count++;
      this._noteShift(shift);
    } else this._tracked.touch(slot, slot + 1);
    this.pagePhys[slot] = pagePhys;
    this.perm[slot] = perm;
    this.epoch[slot] = epoch;
    this.inserts++;
    return slot;
  }

  private _noteShift(shift: number): void {
    const list = this.shiftList;
    let n = this.nShifts;
    for (let k = 0; k < n; k++) if (list[k] === shift) return;
    let k = n;
    while (k > 0 && (list[k - 1] as number) > shift) {
      list[k] = list[k - 1] as number;
      k--;
    }
    list[k] = shift;
    this.nShifts = ++n;
  }

  private _removeAt(slot: number): void {
    const ka = this.keyAsid;
    const mask = this._mask;
    this._tracked.touch(slot, slot + 1);
    ka[slot] = EMPTY;
    this.count--;
    let hole = slot;
    let j = slot;
    for (;;) {
      j = (j + 1) & mask;
      const a = ka[j] as number;
      if (a === EMPTY) return;
      const home = this._home(a, this.keyGfn[j] as number, this.keyShift[j] as number);
      // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (stays) continue;
      // The hole was announced when it was emptied; j is about to be.
      this._tracked.touch(j, j + 1);
      ka[hole] = a;
      this.keyGfn[hole] = this.keyGfn[j] as number;
      this.keyShift[hole] = this.keyShift[j] as number;
      this.pageIova[hole] = this.pageIova[j] as number;
      this.pageSize[hole] = this.pageSize[j] as number;
      this.pagePhys[hole] = this.pagePhys[j] as number;
      this.perm[hole] = this.perm[j] as number;
      this.epoch[hole] = this.epoch[j] as number;
      ka[j] = EMPTY;
      hole = j;
    }
  }

  /**
   * Page-selective invalidation: remove every entry of `asid` whose page overlaps
   * [start, start + size). Returns the number removed.
   * @example tlb.invalidateRange(asid, 0x5000, 0x1000)
   */
  invalidateRange(asid: number, start: number, size: number): number {
    this.invalidations++;
    if (this.count === 0 || !(size > 0)) return 0;
    const last = start + size - 1;
    let probes = 0;
    for (let k = 0; k < this.nShifts; k++) {
      const ps = P2[this.shiftList[k] as number] as number;
      probes += Math.floor(last / ps) - Math.floor(start / ps) + 1;
    }
    let removed = 0;
    if (probes <= this.count * 2 + 16) {
      for (let k = 0; k < this.nShifts; k++) {
        const s = this.shiftList[k] as number;
        const ps = P2[s] as number;
        const lastGfn = Math.floor(last / ps);
        for (let gfn = Math.floor(start / ps); gfn <= lastGfn; gfn++) {
          const slot = this._probe(asid, gfn, s);
          if (slot >= 0) {
            this._removeAt(slot);
            removed++;
          }
        }
      }
    } else {
      removed = this._rebuild((a, gfn, s) => {
        if (a !== asid) return false;
        const ps = P2[s] as number;
        const pageStart = gfn * ps;
        return pageStart <= last && pageStart + ps > start;
      });
    }
    this.entriesInvalidated += removed;
    return removed;
  }

  /**
   * The invalidation an iotlb_sync issues for an inclusive range [start, end] (counted as a sync).
   * @example tlb.sync(asid, gather.start, gather.end)
   */
  sync(asid: number, start: number, end: number): number {
    this.syncs++;
    if (end < start) return 0;
    if (this.count === 0) {
      // Nothing cached: count the invalidation without the call (small enough to inline).
      this.invalidations++;
      return 0;
    }
    return this.invalidateRange(asid, start, end - start + 1);
  }

  /**
   * Domain-selective invalidation: drop every entry of `asid`.
   * @example tlb.invalidateAsid(domainId)
   */
  invalidateAsid(asid: number): number {
    this.domainFlushes++;
    if (this.count === 0) return 0;
    const removed = this._rebuild((a) => a === asid);
    this.entriesInvalidated += removed;
    return removed;
  }

  /**
   * Global invalidation: drop everything.
   * @example tlb.flushAll(); tlb.count // 0
   */
  flushAll(): number {
    this.globalFlushes++;
    const removed = this.count;
    this.entriesInvalidated += removed;
    this._clear();
    return removed;
  }

  private _clear(): void {
    this._tracked.touch(0, this.slots);
    this.keyAsid.fill(EMPTY);
    this.count = 0;
    this.nShifts = 0;
  }

  /** Remove entries `drop` selects by re-inserting the others into an emptied table. */
  private _rebuild(drop: (asid: number, gfn: number, shift: number) => boolean): number {
    const keep: number[] = [];
    for (let i = 0; i < this.slots; i++) {
      const a = this.keyAsid[i] as number;
      if (a === EMPTY) continue;
      if (!drop(a, this.keyGfn[i] as number, this.keyShift[i] as number)) keep.push(i);
    }
    const removed = this.count - keep.length;
    if (removed === 0) return 0;
    const saved = keep.map((i) => [this.keyAsid[i], this.keyGfn[i], this.keyShift[i], this.pagePhys[i], this.perm[i], this.epoch[i]] as number[]);
    this._tracked.touch(0, this.slots);
    this.keyAsid.fill(EMPTY);
    this.count = 0;
    for (const [a, gfn, s, phys, perm, epoch] of saved as Array<[number, number, number, number, number, number]>) {
      let slot = this._home(a, gfn, s);
      while ((this.keyAsid[slot] as number) !== EMPTY) slot = (slot + 1) & this._mask;
      this.keyAsid[slot] = a;
      this.keyGfn[slot] = gfn;
      this.keyShift[slot] = s;
      this.pageSize[slot] = P2[s] as number;
      this.pageIova[slot] = gfn * (P2[s] as number);
      this.pagePhys[slot] = phys;
      this.perm[slot] = perm;
      this.epoch[slot] = epoch;
      this.count++;
    }
    return removed;
  }

  /**
   * Every cached translation (for reports and tests), in slot order.
   * @example [...tlb.entries()].map((e) => e.iova)
   */
  *entries(): Generator<IotlbEntryInfo> {
    for (let i = 0; i < this.slots; i++) {
      const asid = this.keyAsid[i] as number;
      if (asid === EMPTY) continue;
      const shift = this.keyShift[i] as number;
      yield { asid, iova: this.slotIova(i), size: P2[shift] as number, phys: this.pagePhys[i] as number, perm: this.perm[i] as number };
    }
  }
}
