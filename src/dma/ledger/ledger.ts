/**
 * @module dma/ledger/ledger
 * The DMA ledger: dmasim's own record of every live streaming mapping and coherent allocation of a
 * machine, kept apart from dma-debug (which stays exactly the kernel's, with its filters, entry
 * limits and disable-on-exhaustion). The DMA API records here after a backend succeeds and removes
 * on unmap or free; leaks, device-access checks and CPU-ownership checks all read it.
 */
import type { Clock } from '../../core/clock.ts';
import type { Device } from '../../device/device.ts';
import type { Scatterlist } from '../../scatterlist/entry.ts';
import { LedgerEntry, type AddrRange, type LedgerEntryType } from './entry.ts';
import { FindingLog } from './findings.ts';
import { RangeIndex } from './range-index.ts';

/** The ledger's view of one device. */
interface DeviceLedger {
  // INVARIANT: live holds exactly the device's entries whose released is null; dma indexes the dma
  //   ranges of exactly those; singles/sgs/coherent map each one's key to it (several single
  //   mappings may share a bus address under dma-direct: newest last).
  readonly live: Set<LedgerEntry>;
  readonly dma: RangeIndex<LedgerEntry>;
  readonly singles: Map<number, LedgerEntry[]>;
  readonly sgs: Map<Scatterlist, LedgerEntry>;
  readonly coherent: Map<number, LedgerEntry[]>;
}

/** Released entries remembered for use-after-unmap findings. */
export const LEDGER_HISTORY = 1024;

/** What the ledger needs from its machine. */
export interface LedgerHost {
  readonly clock: Clock;
  /** Is this physical address inside the swiotlb pool? (A direct device then addresses the slot.) */
  isBounceSlot(phys: number): boolean;
}

/**
 * One machine's DMA ledger.
 * @example
 * const live = machine.dma.ledger.entries(dev);   // what dev has mapped now
 * machine.dma.ledger.findings.list();             // bad device and CPU accesses seen
 */
export class DmaLedger {
  readonly #host: LedgerHost;
  readonly #devices = new Map<Device, DeviceLedger>();
  /** The CPU-side physical ranges of every live entry. */
  readonly phys = new RangeIndex<LedgerEntry>();
  /** The swiotlb slots live streaming mappings of direct-translated devices bounce through. */
  readonly bounce = new RangeIndex<LedgerEntry>();
  /** Bad accesses seen (the access checks add to it). */
  readonly findings = new FindingLog();
  // INVARIANT: #history holds the last LEDGER_HISTORY released entries, oldest first.
  #history: LedgerEntry[] = [];
  #nextId = 1;
  /** Live streaming (non-coherent) entries: the CPU check has nothing to do while it is 0. */
  #liveStreaming = 0;

  constructor(host: LedgerHost) {
    this.#host = host;
  }

  /** Are there live streaming mappings anywhere on the machine? */
  get hasStreaming(): boolean {
    return this.#liveStreaming > 0;
  }

  /** Record a mapping or allocation that just succeeded. */
  record(type: LedgerEntryType, dev: Device, api: string, dir: number, size: number, dma: AddrRange[], cpu: AddrRange[], key: number | Scatterlist): LedgerEntry {
    const e = new LedgerEntry(this.#nextId++, type, dev, dir, size, dma, cpu, api, this.#host.clock.now, key);
    const d = this.#device(dev);
    d.live.add(e);
    d.dma.insertAll(dma, e);
    this.phys.insertAll(cpu, e);
    const slots = this.#bounceSlots(e);
    if (slots.length > 0) this.bounce.insertAll(slots, e);
    if (type === 'sg') d.sgs.set(key as Scatterlist, e);
    else push(type === 'single' ? d.singles : d.coherent, key as number, e);
    if (type !== 'coherent') this.#liveStreaming++;
    return e;
  }

  /** The live single mapping of `dev` at bus address `addr` (the newest, when several share it). */
  findSingle(dev: Device, addr: number): LedgerEntry | undefined {
    const list = this.#devices.get(dev)?.singles.get(addr);
    return list?.[list.length - 1];
  }

  /** The live scatterlist mapping of `dev` whose first entry is `sgl`. */
  findSg(dev: Device, sgl: Scatterlist): LedgerEntry | undefined {
    return this.#devices.get(dev)?.sgs.get(sgl);
  }

  /** The live coherent allocation of `dev` with handle `handle`. */
  findCoherent(dev: Device, handle: number): LedgerEntry | undefined {
    const list = this.#devices.get(dev)?.coherent.get(handle);
    return list?.[list.length - 1];
  }

  /** The live streaming mapping of `dev` whose DMA range holds `addr` (sync_single on part of a mapping). */
  findContaining(dev: Device, addr: number): LedgerEntry | undefined {
    let hit: LedgerEntry | undefined;
    this.#devices.get(dev)?.dma.query(addr, addr + 1, (r) => {
      if (r.value.type === 'coherent') return false;
      hit = r.value;
      return true;
    });
    return hit;
  }

  /** Remove a live entry: an unmap or free by `api`. */
  release(e: LedgerEntry, api: string): void {
    if (e.released !== null) return;
    const d = this.#device(e.device);
    d.live.delete(e);
    d.dma.removeAll(e.dma, e);
    this.phys.removeAll(e.cpu, e);
    const slots = this.#bounceSlots(e);
    if (slots.length > 0) this.bounce.removeAll(slots, e);
    if (e.type === 'sg') d.sgs.delete(e.key as Scatterlist);
    else pull(e.type === 'single' ? d.singles : d.coherent, e.key as number, e);
    if (e.type !== 'coherent') this.#liveStreaming--;
    e.released = { api, time: this.#host.clock.now };
    this.#history.push(e);
    if (this.#history.length > LEDGER_HISTORY) this.#history = this.#history.slice(LEDGER_HISTORY / 2);
  }

  /** BUS_NOTIFY_UNBOUND_DRIVER: whatever `dev` still holds is leaked from now on. */
  deviceUnbound(dev: Device): void {
    const d = this.#devices.get(dev);
    if (d === undefined) return;
    const now = this.#host.clock.now;
    for (const e of d.live) e.orphanedAt ??= now;
  }

  /** Live entries, of one device or of all, oldest first. */
  entries(dev?: Device): LedgerEntry[] {
    const out: LedgerEntry[] = [];
    if (dev !== undefined) out.push(...(this.#devices.get(dev)?.live ?? []));
    else for (const d of this.#devices.values()) out.push(...d.live);
    return out.sort((a, b) => a.id - b.id);
  }

  /** Live entries whose DMA ranges overlap [a, b) for `dev`, in descending start order. */
  queryDma(dev: Device, a: number, b: number, visit: (start: number, end: number, e: LedgerEntry) => boolean | void): void {
    this.#devices.get(dev)?.dma.query(a, b, (r) => visit(r.start, r.end, r.value));
  }

  /** The newest released entry of `dev` whose DMA ranges overlapped [a, b). */
  releasedCovering(dev: Device, a: number, b: number): LedgerEntry | undefined {
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const e = this.#history[i] as LedgerEntry;
      if (e.device === dev && e.dma.some((r) => r.start < b && r.end > a)) return e;
    }
    return undefined;
  }

  #device(dev: Device): DeviceLedger {
    let d = this.#devices.get(dev);
    if (d === undefined) {
      d = { live: new Set(), dma: new RangeIndex(), singles: new Map(), sgs: new Map(), coherent: new Map() };
      this.#devices.set(dev, d);
    }
    return d;
  }

  /** Bounce slots a direct-translated device addresses for this entry: its DMA ranges inside the pool. */
  #bounceSlots(e: LedgerEntry): AddrRange[] {
    if (e.device.dma.translator.kind !== 'direct' || e.type === 'coherent') return [];
    return e.dma.filter((r) => this.#host.isBounceSlot(r.start));
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list === undefined) m.set(k, [v]);
  else list.push(v);
}

function pull<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list === undefined) return;
  const i = list.lastIndexOf(v);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) m.delete(k);
}
