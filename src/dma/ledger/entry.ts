/**
 * @module dma/ledger/entry
 * One live DMA mapping or allocation as the ledger knows it, and how it is named in findings.
 */
import type { Device } from '../../device/device.ts';
import type { Scatterlist } from '../../scatterlist/entry.ts';
import { dmaDirectionName } from '../api/direction.ts';
import { rangeCovers, rangeMinus, rangeOverlaps, rangeUnion } from './range-set.ts';

/** A half-open address range [start, end). */
export interface AddrRange {
  readonly start: number;
  readonly end: number;
}

/**
 * What kind of DMA memory an entry is. `noncoherent`: dma_alloc_pages / dma_alloc_noncoherent /
 * dma_alloc_noncontiguous memory, allocated but owned like a streaming mapping (it starts with the
 * CPU; dma_sync_*_for_device hands it to the device).
 */
export type LedgerEntryType = 'single' | 'sg' | 'coherent' | 'noncoherent';

/** What ended an entry (an unmap or free), for use-after-unmap findings. */
export interface LedgerRelease {
  /** The DMA API call that released it. */
  readonly api: string;
  /** Virtual time, ns. */
  readonly time: number;
}

/**
 * A live mapping (streaming) or allocation (coherent), with who owns its bytes.
 * INVARIANT: the ranges are fixed at creation: the first DMA and CPU ranges in `dmaStart/dmaEnd`,
 *   `cpuStart/cpuEnd`, any further ones in `_moreDma`/`_moreCpu` as (start, end) pairs of one
 *   array of numbers (a single mapping has none, so recording it allocates nothing but the entry);
 *   `cpuOwned` holds the sorted, disjoint physical ranges of the buffer the CPU took back with a
 *   partial sync, null when none; `cpuOwnsAll` is set between a whole-mapping sync_for_cpu and the
 *   next sync_for_device; `releasedApi` is null while the entry is live.
 */
export class LedgerEntry {
  /** Physical bytes of the buffer the CPU owns again after a partial sync_for_cpu. */
  cpuOwned: AddrRange[] | null = null;
  /** The CPU owns the whole mapping (after sync_for_cpu of all of it). */
  cpuOwnsAll = false;
  /** Linked by dma_iova_link and not yet made visible to the device by dma_iova_sync. */
  awaitingSync = false;
  /** The unbind that left this entry behind (the leak moment), or null. */
  orphanedAt: number | null = null;
  /** The call that unmapped or freed it, or null while live. */
  releasedApi: string | null = null;
  /** When it was released, ns (meaningful once releasedApi is set). */
  releasedTime = 0;
  /** @internal the ledger has put its ranges in the indexes (it defers that until a lookup needs it). */
  indexed = false;
  /** @internal the ledger's list of live entries. */
  prev: LedgerEntry | null = null;
  /** @internal */
  next: LedgerEntry | null = null;

  /** Sequence number within the machine, from 1. */
  readonly id: number;
  readonly type: LedgerEntryType;
  readonly device: Device;
  /** enum dma_data_direction (coherent: DMA_BIDIRECTIONAL). */
  readonly dir: number;
  /** Bytes mapped, CPU side. */
  readonly size: number;
  /** The DMA API call that made it (`dma_map_single`, `dma_map_sgtable`, `dma_alloc_attrs`, ...). */
  readonly api: string;
  /** Virtual time of the call, ns. */
  readonly time: number;
  /** The key the release call names: the first DMA address, the handle, or the scatterlist. */
  readonly key: number | Scatterlist;
  /** The first DMA segment. */
  readonly dmaStart: number;
  readonly dmaEnd: number;
  /** The first physical range of the buffer. */
  readonly cpuStart: number;
  readonly cpuEnd: number;
  // Ranges after the first as [start0, end0, start1, end1, ...], null when there are none: one
  // array of doubles, not an object per range (a 16-entry sg map+unmap allocated ~2.5 KB in the
  // ledger and spent ~1.8 of its ~4.9 us there, bench/RESULTS.md, session 12).
  private readonly _moreDma: readonly number[] | null;
  private readonly _moreCpu: readonly number[] | null;
  // INVARIANT: for a scatterlist mapped one segment per CPU entry, (dma, phys, len) triples of its
  //   entries; null otherwise (merged segments, or not a scatterlist).
  private readonly _segMap: Float64Array | null;

  constructor(id: number, type: LedgerEntryType, device: Device, dir: number, size: number, api: string, time: number, key: number | Scatterlist,
    dmaStart: number, dmaEnd: number, cpuStart: number, cpuEnd: number, moreDma: readonly number[] | null, moreCpu: readonly number[] | null,
    segMap: Float64Array | null = null) {
    this.id = id;
    this.type = type;
    this.device = device;
    this.dir = dir;
    this.size = size;
    this.api = api;
    this.time = time;
    this.key = key;
    this.dmaStart = dmaStart;
    this.dmaEnd = dmaEnd;
    this.cpuStart = cpuStart;
    this.cpuEnd = cpuEnd;
    this._moreDma = moreDma;
    this._moreCpu = moreCpu;
    this._segMap = segMap;
  }

  /** What the device addresses: the DMA segments. */
  get dma(): readonly AddrRange[] {
    return unpackRanges(this.dmaStart, this.dmaEnd, this._moreDma);
  }

  /** What the CPU addresses: physical ranges of the buffer. */
  get cpu(): readonly AddrRange[] {
    return unpackRanges(this.cpuStart, this.cpuEnd, this._moreCpu);
  }

  /** Does some DMA range of this entry overlap [a, b)? (No array made.) */
  dmaOverlaps(a: number, b: number): boolean {
    if (this.dmaStart < b && this.dmaEnd > a) return true;
    const more = this._moreDma;
    if (more === null) return false;
    for (let i = 0; i < more.length; i += 2) if ((more[i] as number) < b && (more[i + 1] as number) > a) return true;
    return false;
  }

  /** More than one DMA or CPU range? */
  get multiRange(): boolean {
    return this._moreDma !== null || this._moreCpu !== null;
  }

  /** The unmap or free that ended it, or null while live. */
  get released(): LedgerRelease | null {
    return this.releasedApi === null ? null : { api: this.releasedApi, time: this.releasedTime };
  }

  /**
   * The physical ranges behind DMA addresses [a, b) of this mapping, or null when dmasim cannot
   * tell (a scatterlist whose segments dma-iommu merged: a partial sync then counts as whole).
   */
  dmaToPhys(a: number, b: number): AddrRange[] | null {
    if (this.type !== 'sg') {
      const lo = Math.max(a, this.dmaStart);
      const hi = Math.min(b, this.dmaEnd);
      return hi > lo ? [{ start: this.cpuStart + (lo - this.dmaStart), end: this.cpuStart + (hi - this.dmaStart) }] : [];
    }
    const m = this._segMap;
    if (m === null) return null;
    const out: AddrRange[] = [];
    for (let i = 0; i < m.length; i += 3) {
      const dma = m[i] as number;
      const phys = m[i + 1] as number;
      const len = m[i + 2] as number;
      const lo = Math.max(a, dma);
      const hi = Math.min(b, dma + len);
      if (hi > lo) out.push({ start: phys + (lo - dma), end: phys + (hi - dma) });
    }
    return out;
  }

  /** dma_sync_*_for_cpu: the CPU owns these physical bytes of the mapping again ('all': every byte). */
  giveCpu(phys: readonly AddrRange[] | 'all'): void {
    if (phys === 'all') {
      this.cpuOwnsAll = true;
      this.cpuOwned = null;
      return;
    }
    if (this.cpuOwnsAll) return;
    let set = this.cpuOwned ?? [];
    for (const r of phys) set = rangeUnion(set, r.start, r.end);
    this.cpuOwned = set.length === 0 ? null : set;
  }

  /** dma_sync_*_for_device: the device owns these physical bytes of the mapping ('all': every byte). */
  giveDevice(phys: readonly AddrRange[] | 'all'): void {
    if (phys === 'all' || (!this.cpuOwnsAll && this.cpuOwned === null)) {
      this.cpuOwnsAll = false;
      this.cpuOwned = null;
      return;
    }
    let set: AddrRange[] = this.cpuOwnsAll ? [...this.cpu] : this.cpuOwned ?? [];
    this.cpuOwnsAll = false;
    for (const r of phys) set = rangeMinus(set, r.start, r.end);
    this.cpuOwned = set.length === 0 ? null : set;
  }

  /** Does the device own some byte of the physical range [a, b) of the buffer? (The CPU then may not touch it.) */
  deviceOwnsAny(a: number, b: number): boolean {
    if (this.cpuOwnsAll) return false;
    return this.cpuOwned === null || !rangeCovers(this.cpuOwned, a, b);
  }

  /** Does the CPU own some byte behind DMA [a, b)? (The device then may not touch it.) */
  cpuOwnsAnyDma(a: number, b: number): boolean {
    if (this.cpuOwnsAll) return true;
    if (this.cpuOwned === null) return false;
    const owned = this.cpuOwned;
    const phys = this.dmaToPhys(a, b);
    return phys !== null && phys.some((r) => rangeOverlaps(owned, r.start, r.end));
  }

  /** One line naming the entry: `dma_map_single(DMA_FROM_DEVICE) of 4096 bytes at DMA 0x1000 (phys 0x1000) by 0000:01:00.0 (mapping #3, t=0 ns)`. */
  describe(): string {
    const dir = this.type === 'coherent' ? '' : `(${dmaDirectionName(this.dir)})`;
    const at = ` at DMA 0x${this.dmaStart.toString(16)}`;
    const p = ` (phys 0x${this.cpuStart.toString(16)})`;
    const n = 1 + (this._moreDma === null ? 0 : this._moreDma.length / 2);
    const segs = n > 1 ? `, ${n} segments` : '';
    return `${this.api}${dir} of ${this.size} bytes${at}${p}${segs} by ${this.device.name} (mapping #${this.id}, t=${this.time} ns)`;
  }
}

/** The first range and the packed rest as range objects. */
function unpackRanges(start: number, end: number, more: readonly number[] | null): AddrRange[] {
  const out: AddrRange[] = [{ start, end }];
  if (more !== null) for (let i = 0; i < more.length; i += 2) out.push({ start: more[i] as number, end: more[i + 1] as number });
  return out;
}

/**
 * Append [start, end) to ranges packed as (start, end) pairs in `out[0..2n)`, joined to the last
 * one when they touch, nothing when empty: the one merge rule of the ledger, for callers that make
 * their ranges as they go.
 * @returns the new number of ranges
 * @example const a: number[] = []; let n = appendMerged(a, 0, 0, 4096); n = appendMerged(a, n, 4096, 8192); // n === 1, a = [0, 8192]
 */
export function appendMerged(out: number[], n: number, start: number, end: number): number {
  if (end <= start) return n;
  if (n > 0 && out[2 * n - 1] === start) {
    out[2 * n - 1] = end;
    return n;
  }
  out[2 * n] = start;
  out[2 * n + 1] = end;
  return n + 1;
}

/** Join adjacent ranges (the CPU side of a scatterlist is often physically contiguous across entries). */
export function mergeAdjacent(ranges: readonly AddrRange[]): AddrRange[] {
  const packed: number[] = [];
  let n = 0;
  for (const r of ranges) n = appendMerged(packed, n, r.start, r.end);
  const out: AddrRange[] = [];
  for (let i = 0; i < n; i++) out.push({ start: packed[2 * i] as number, end: packed[2 * i + 1] as number });
  return out;
}
