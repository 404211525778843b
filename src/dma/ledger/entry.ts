/**
 * @module dma/ledger/entry
 * One live DMA mapping or allocation as the ledger knows it, and how it is named in findings.
 */
import type { Device } from '../../device/device.ts';
import type { Scatterlist } from '../../scatterlist/entry.ts';
import { dmaDirectionName } from '../direction.ts';

/** A half-open address range [start, end). */
export interface AddrRange {
  readonly start: number;
  readonly end: number;
}

/** What kind of DMA memory an entry is. */
export type LedgerEntryType = 'single' | 'sg' | 'coherent';

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
 *   `cpuStart/cpuEnd`, any further ones in `moreDma`/`moreCpu` (a single mapping has none, so
 *   recording it allocates nothing but the entry); `cpuOwned` holds disjoint offsets into the
 *   mapping (single mappings only), null when empty; `cpuOwnsAll` is set between a whole-mapping
 *   sync_for_cpu and the next sync_for_device; `releasedApi` is null while the entry is live.
 */
export class LedgerEntry {
  /** Bytes the CPU owns again after a partial sync_for_cpu, as offsets from the mapping's start. */
  cpuOwned: AddrRange[] | null = null;
  /** The CPU owns the whole mapping (after sync_for_cpu of all of it). */
  cpuOwnsAll = false;
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
  readonly #moreDma: readonly AddrRange[] | null;
  readonly #moreCpu: readonly AddrRange[] | null;

  constructor(id: number, type: LedgerEntryType, device: Device, dir: number, size: number, api: string, time: number, key: number | Scatterlist,
    dmaStart: number, dmaEnd: number, cpuStart: number, cpuEnd: number, moreDma: readonly AddrRange[] | null, moreCpu: readonly AddrRange[] | null) {
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
    this.#moreDma = moreDma;
    this.#moreCpu = moreCpu;
  }

  /** What the device addresses: the DMA segments. */
  get dma(): readonly AddrRange[] {
    return [{ start: this.dmaStart, end: this.dmaEnd }, ...(this.#moreDma ?? [])];
  }

  /** What the CPU addresses: physical ranges of the buffer. */
  get cpu(): readonly AddrRange[] {
    return [{ start: this.cpuStart, end: this.cpuEnd }, ...(this.#moreCpu ?? [])];
  }

  /** More than one DMA or CPU range? */
  get multiRange(): boolean {
    return this.#moreDma !== null || this.#moreCpu !== null;
  }

  /** The unmap or free that ended it, or null while live. */
  get released(): LedgerRelease | null {
    return this.releasedApi === null ? null : { api: this.releasedApi, time: this.releasedTime };
  }

  /** Does the device own the bytes at [off, off+len) of the mapping? (coherent memory: never asked) */
  deviceOwns(off: number, len: number): boolean {
    if (this.cpuOwnsAll) return false;
    if (this.cpuOwned === null) return true;
    const end = off + len;
    for (const r of this.cpuOwned) if (r.start <= off && r.end >= end) return false;
    return true;
  }

  /** dma_sync_*_for_cpu on [off, off+len) of the mapping: the CPU owns those bytes again. */
  giveCpu(off: number, len: number): void {
    const end = Math.min(off + len, this.size);
    if (off <= 0 && end >= this.size) {
      this.cpuOwnsAll = true;
      this.cpuOwned = null;
      return;
    }
    if (this.cpuOwnsAll || end <= off) return;
    let start = Math.max(off, 0);
    let stop = end;
    const kept: AddrRange[] = [];
    for (const r of this.cpuOwned ?? []) {
      if (r.end < start || r.start > stop) kept.push(r);
      else {
        start = Math.min(start, r.start);
        stop = Math.max(stop, r.end);
      }
    }
    kept.push({ start, end: stop });
    this.cpuOwned = kept.sort((a, b) => a.start - b.start);
  }

  /** dma_sync_*_for_device on [off, off+len) (or a map): the device owns those bytes. */
  giveDevice(off: number, len: number): void {
    const end = off + len;
    if (off <= 0 && end >= this.size) {
      this.cpuOwnsAll = false;
      this.cpuOwned = null;
      return;
    }
    if (this.cpuOwned === null && !this.cpuOwnsAll) return;
    const owned = this.cpuOwnsAll ? [{ start: 0, end: this.size }] : this.cpuOwned ?? [];
    this.cpuOwnsAll = false;
    const kept: AddrRange[] = [];
    for (const r of owned) {
      if (r.end <= off || r.start >= end) kept.push(r);
      else {
        if (r.start < off) kept.push({ start: r.start, end: off });
        if (r.end > end) kept.push({ start: end, end: r.end });
      }
    }
    this.cpuOwned = kept.length === 0 ? null : kept;
  }

  /** One line naming the entry: `dma_map_single(DMA_FROM_DEVICE) of 4096 bytes at DMA 0x1000 (phys 0x1000), t=0 ns`. */
  describe(): string {
    const dir = this.type === 'coherent' ? '' : `(${dmaDirectionName(this.dir)})`;
    const at = ` at DMA 0x${this.dmaStart.toString(16)}`;
    const p = ` (phys 0x${this.cpuStart.toString(16)})`;
    const n = 1 + (this.#moreDma?.length ?? 0);
    const segs = n > 1 ? `, ${n} segments` : '';
    return `${this.api}${dir} of ${this.size} bytes${at}${p}${segs} by ${this.device.name}, t=${this.time} ns`;
  }
}

/** Join adjacent ranges (the CPU side of a scatterlist is often physically contiguous across entries). */
export function mergeAdjacent(ranges: AddrRange[]): AddrRange[] {
  const out: AddrRange[] = [];
  for (const r of ranges) {
    if (r.end <= r.start) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.end === r.start) out[out.length - 1] = { start: last.start, end: r.end };
    else out.push(r);
  }
  return out;
}
