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
 * INVARIANT: `dma` and `cpu` are fixed at creation; `cpuOwned` holds disjoint, sorted offsets into
 *   the mapping (single mappings only); `cpuOwnsAll` is set between a whole-mapping sync_for_cpu and
 *   the next sync_for_device; `released` is null while the entry is live.
 */
export class LedgerEntry {
  /** Bytes the CPU owns again after a partial sync_for_cpu, as offsets from the mapping's start. */
  cpuOwned: AddrRange[] = [];
  /** The CPU owns the whole mapping (after sync_for_cpu of all of it). */
  cpuOwnsAll = false;
  /** The unbind that left this entry behind (the leak moment), or null. */
  orphanedAt: number | null = null;
  /** The unmap or free that ended it, or null while live. */
  released: LedgerRelease | null = null;

  /** Sequence number within the machine, from 1. */
  readonly id: number;
  readonly type: LedgerEntryType;
  readonly device: Device;
  /** enum dma_data_direction (coherent: DMA_BIDIRECTIONAL). */
  readonly dir: number;
  /** Bytes mapped, CPU side. */
  readonly size: number;
  /** What the device addresses: DMA segments. */
  readonly dma: readonly AddrRange[];
  /** What the CPU addresses: physical ranges of the buffer. */
  readonly cpu: readonly AddrRange[];
  /** The DMA API call that made it (`dma_map_single`, `dma_map_sgtable`, `dma_alloc_attrs`, ...). */
  readonly api: string;
  /** Virtual time of the call, ns. */
  readonly time: number;
  /** The key the release call names: the first DMA address, the handle, or the scatterlist. */
  readonly key: number | Scatterlist;

  constructor(id: number, type: LedgerEntryType, device: Device, dir: number, size: number, dma: readonly AddrRange[], cpu: readonly AddrRange[], api: string, time: number, key: number | Scatterlist) {
    this.id = id;
    this.type = type;
    this.device = device;
    this.dir = dir;
    this.size = size;
    this.dma = dma;
    this.cpu = cpu;
    this.api = api;
    this.time = time;
    this.key = key;
  }

  /** Does the device own the bytes at [off, off+len) of the mapping? (coherent memory: never asked) */
  deviceOwns(off: number, len: number): boolean {
    if (this.cpuOwnsAll) return false;
    const end = off + len;
    for (const r of this.cpuOwned) if (r.start <= off && r.end >= end) return false;
    return true;
  }

  /** dma_sync_*_for_cpu on [off, off+len) of the mapping: the CPU owns those bytes again. */
  giveCpu(off: number, len: number): void {
    const end = Math.min(off + len, this.size);
    if (off <= 0 && end >= this.size) {
      this.cpuOwnsAll = true;
      this.cpuOwned = [];
      return;
    }
    if (this.cpuOwnsAll || end <= off) return;
    let start = Math.max(off, 0);
    let stop = end;
    const kept: AddrRange[] = [];
    for (const r of this.cpuOwned) {
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
      this.cpuOwned = [];
      return;
    }
    const owned = this.cpuOwnsAll ? [{ start: 0, end: this.size }] : this.cpuOwned;
    this.cpuOwnsAll = false;
    const kept: AddrRange[] = [];
    for (const r of owned) {
      if (r.end <= off || r.start >= end) kept.push(r);
      else {
        if (r.start < off) kept.push({ start: r.start, end: off });
        if (r.end > end) kept.push({ start: end, end: r.end });
      }
    }
    this.cpuOwned = kept;
  }

  /** One line naming the entry: `dma_map_single(DMA_FROM_DEVICE) of 4096 bytes at DMA 0x1000 (phys 0x1000), t=0 ns`. */
  describe(): string {
    const first = this.dma[0];
    const phys = this.cpu[0];
    const dir = this.type === 'coherent' ? '' : `(${dmaDirectionName(this.dir)})`;
    const at = first === undefined ? '' : ` at DMA 0x${first.start.toString(16)}`;
    const p = phys === undefined ? '' : ` (phys 0x${phys.start.toString(16)})`;
    const segs = this.dma.length > 1 ? `, ${this.dma.length} segments` : '';
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
