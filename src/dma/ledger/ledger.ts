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

/** Released entries remembered for use-after-unmap findings. */
export const LEDGER_HISTORY = 1024;

/** What the ledger needs from its machine. */
export interface LedgerHost {
  readonly clock: Clock;
  /** Is this physical address inside the swiotlb pool? (A direct device then addresses the slot.) */
  isBounceSlot(phys: number): boolean;
}

/** The ledger's view of one device: its live entries' DMA ranges. */
export class DeviceLedger {
  /** DMA ranges of the device's indexed live entries. */
  readonly dma = new RangeIndex<LedgerEntry>();
  /** Live scatterlist mappings by their first entry. */
  readonly sgs = new Map<Scatterlist, LedgerEntry>();
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
  /** The CPU-side physical ranges of every indexed live entry. */
  readonly phys = new RangeIndex<LedgerEntry>();
  /** The swiotlb slots live streaming mappings of direct-translated devices bounce through. */
  readonly bounce = new RangeIndex<LedgerEntry>();
  /** Bad accesses seen (the access checks add to it). */
  readonly findings = new FindingLog();
  // INVARIANT: the live list (#head, linked through prev/next) holds exactly the entries made and
  //   not yet released. Each is either indexed (its ranges in its device's index, `phys` and,
  //   for bounced direct mappings, `bounce`) or in #pending, never both: indexing waits until a
  //   lookup needs it, so a map quickly followed by its unmap never touches an index (measured:
  //   map+unmap pairs 570 -> ~90 ns against ~80 without a ledger).
  #head: LedgerEntry | null = null;
  #tail: LedgerEntry | null = null;
  #pending: LedgerEntry[] = [];
  // INVARIANT: single mappings start in the fast lane, slots [0, #laneLen) of these parallel arrays
  //   in mapping order, with no object made: an unmap that finds its mapping there releases it into
  //   the ring below, so a map+unmap pair allocates nothing (measured: pair 105 -> ~85 ns, against
  //   ~80 without a ledger). Any lookup by address first turns the lane into entries (flush).
  readonly #laneDev: Device[] = [];
  readonly #laneApi: string[] = [];
  readonly #laneDir: number[] = [];
  readonly #laneSize: number[] = [];
  readonly #laneDma: number[] = [];
  readonly #lanePhys: number[] = [];
  readonly #laneTime: number[] = [];
  readonly #laneId: number[] = [];
  #laneLen = 0;
  // INVARIANT: #history holds the last LEDGER_HISTORY released entries, oldest first; #ring holds
  //   the last LEDGER_HISTORY fast-lane singles released without becoming entries.
  #history: LedgerEntry[] = [];
  readonly #ring = new ReleasedRing(LEDGER_HISTORY);
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

  /** The ledger of one device (created on first use). */
  deviceLedger(dev: Device): DeviceLedger {
    let d = this.#devices.get(dev);
    if (d === undefined) {
      d = new DeviceLedger();
      this.#devices.set(dev, d);
    }
    return d;
  }

  /** A streaming single mapping of [phys, phys+size) at bus address `addr` succeeded. */
  mapSingle(dev: Device, api: string, dir: number, size: number, addr: number, phys: number): void {
    const i = this.#laneLen++;
    this.#laneDev[i] = dev;
    this.#laneApi[i] = api;
    this.#laneDir[i] = dir;
    this.#laneSize[i] = size;
    this.#laneDma[i] = addr;
    this.#lanePhys[i] = phys;
    this.#laneTime[i] = this.#host.clock.now;
    this.#laneId[i] = this.#nextId++;
    this.#liveStreaming++;
  }

  /** Unmap of the single mapping of `dev` at `addr` by `api` (an unknown one is dma-debug's to report). */
  unmapSingle(dev: Device, addr: number, api: string): void {
    for (let i = this.#laneLen - 1; i >= 0; i--) {
      if (this.#laneDma[i] !== addr || this.#laneDev[i] !== dev) continue;
      this.#ring.push(dev, this.#laneApi[i] as string, api, this.#laneDir[i] as number, this.#laneSize[i] as number, addr,
        this.#lanePhys[i] as number, this.#laneTime[i] as number, this.#host.clock.now, this.#laneId[i] as number);
      this.#laneRemove(i);
      this.#liveStreaming--;
      return;
    }
    const e = this.#findIndexed(dev, addr, 'single');
    if (e !== undefined) this.release(e, api);
  }

  #laneRemove(i: number): void {
    const last = --this.#laneLen;
    for (let j = i; j < last; j++) {
      this.#laneDev[j] = this.#laneDev[j + 1] as Device;
      this.#laneApi[j] = this.#laneApi[j + 1] as string;
      this.#laneDir[j] = this.#laneDir[j + 1] as number;
      this.#laneSize[j] = this.#laneSize[j + 1] as number;
      this.#laneDma[j] = this.#laneDma[j + 1] as number;
      this.#lanePhys[j] = this.#lanePhys[j + 1] as number;
      this.#laneTime[j] = this.#laneTime[j + 1] as number;
      this.#laneId[j] = this.#laneId[j + 1] as number;
    }
    this.#laneDev[last] = undefined as unknown as Device; // let an unbound device's object go
  }

  /** Record a single-range allocation that just succeeded. */
  recordOne(type: LedgerEntryType, dev: Device, api: string, dir: number, size: number, dmaStart: number, cpuStart: number, key: number | Scatterlist): LedgerEntry {
    return this.#add(new LedgerEntry(this.#nextId++, type, dev, dir, size, api, this.#host.clock.now, key, dmaStart, dmaStart + size, cpuStart, cpuStart + size, null, null));
  }

  /** Record a mapping or allocation of several ranges (a scatterlist; a coherent buffer in pieces). */
  record(type: LedgerEntryType, dev: Device, api: string, dir: number, size: number, dma: readonly AddrRange[], cpu: readonly AddrRange[], key: number | Scatterlist, segMap: Float64Array | null = null): LedgerEntry {
    const d0 = dma[0] ?? { start: 0, end: 0 };
    const c0 = cpu[0] ?? { start: 0, end: 0 };
    const e = new LedgerEntry(this.#nextId++, type, dev, dir, size, api, this.#host.clock.now, key, d0.start, d0.end, c0.start, c0.end,
      dma.length > 1 ? dma.slice(1) : null, cpu.length > 1 ? cpu.slice(1) : null, segMap);
    if (type === 'sg') this.deviceLedger(dev).sgs.set(key as Scatterlist, e);
    return this.#add(e);
  }

  #add(e: LedgerEntry): LedgerEntry {
    this.#link(e);
    this.#pending.push(e);
    if (e.type !== 'coherent') this.#liveStreaming++;
    return e;
  }

  #link(e: LedgerEntry): void {
    e.prev = this.#tail;
    if (this.#tail === null) this.#head = e;
    else this.#tail.next = e;
    this.#tail = e;
  }

  /** Turn the fast lane into entries (kept in mapping order with the others by id). */
  #drainLane(): void {
    const n = this.#laneLen;
    if (n === 0) return;
    const lane: LedgerEntry[] = [];
    for (let i = 0; i < n; i++) {
      const size = this.#laneSize[i] as number;
      const dma = this.#laneDma[i] as number;
      const phys = this.#lanePhys[i] as number;
      lane.push(new LedgerEntry(this.#laneId[i] as number, 'single', this.#laneDev[i] as Device, this.#laneDir[i] as number, size,
        this.#laneApi[i] as string, this.#laneTime[i] as number, dma, dma, dma + size, phys, phys + size, null, null));
      this.#laneDev[i] = undefined as unknown as Device;
    }
    this.#laneLen = 0;
    for (const e of lane) this.#link(e);
    this.#pending.push(...lane);
  }

  /** Put every pending entry's ranges in the indexes (before any lookup by address). */
  flush(): void {
    if (this.#laneLen > 0) this.#drainLane();
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    for (const e of pending) {
      e.indexed = true;
      const d = this.deviceLedger(e.device);
      if (e.multiRange) {
        d.dma.insertAll(e.dma, e);
        this.phys.insertAll(e.cpu, e);
      } else {
        d.dma.insert(e.dmaStart, e.dmaEnd, e);
        this.phys.insert(e.cpuStart, e.cpuEnd, e);
      }
      const slots = this.#bounceSlots(e);
      if (slots.length > 0) this.bounce.insertAll(slots, e);
    }
  }

  /** The live scatterlist mapping of `dev` whose first entry is `sgl`. */
  findSg(dev: Device, sgl: Scatterlist): LedgerEntry | undefined {
    return this.#devices.get(dev)?.sgs.get(sgl);
  }

  /** The live coherent allocation of `dev` with handle `handle`. */
  findCoherent(dev: Device, handle: number): LedgerEntry | undefined {
    this.flush();
    return this.#findIndexed(dev, handle, 'coherent');
  }

  /** The live entries of `dev` recorded by `api` whose DMA range starts in [a, b) (the links of an IOVA range). */
  liveStartingIn(dev: Device, a: number, b: number, api: string): LedgerEntry[] {
    this.flush();
    const hits: LedgerEntry[] = [];
    this.#devices.get(dev)?.dma.query(a, b, (r) => {
      const e = r.value;
      if (e.api === api && e.dmaStart >= a && e.dmaStart < b && !hits.includes(e)) hits.push(e);
    });
    return hits;
  }

  /** The live noncoherent allocation of `dev` whose handle is `handle` (dma_alloc_pages and friends). */
  findNoncoherent(dev: Device, handle: number): LedgerEntry | undefined {
    return this.#findIndexed(dev, handle, 'noncoherent');
  }

  /**
   * The live streaming mappings of `dev` whose DMA ranges hold `addr` (a sync_single on part of a
   * mapping; several when one buffer is mapped twice at one bus address).
   */
  findContaining(dev: Device, addr: number): LedgerEntry[] {
    this.flush();
    const hits: LedgerEntry[] = [];
    this.#devices.get(dev)?.dma.query(addr, addr + 1, (r) => {
      if (r.value.type !== 'coherent' && !hits.includes(r.value)) hits.push(r.value);
    });
    return hits;
  }

  #findIndexed(dev: Device, start: number, type: LedgerEntryType): LedgerEntry | undefined {
    this.flush();
    let hit: LedgerEntry | undefined;
    this.#devices.get(dev)?.dma.query(start, start + 1, (r) => {
      if (r.start === start && r.value.type === type && (hit === undefined || r.value.id > hit.id)) hit = r.value;
      return false;
    });
    return hit;
  }

  /** Remove a live entry: an unmap or free by `api`. */
  release(e: LedgerEntry, api: string): void {
    if (e.releasedApi !== null) return;
    if (e.indexed) {
      const d = this.deviceLedger(e.device);
      if (e.multiRange) {
        d.dma.removeAll(e.dma, e);
        this.phys.removeAll(e.cpu, e);
      } else {
        d.dma.remove(e.dmaStart, e);
        this.phys.remove(e.cpuStart, e);
      }
      const slots = this.#bounceSlots(e);
      if (slots.length > 0) this.bounce.removeAll(slots, e);
    } else {
      const pending = this.#pending;
      const i = pending.lastIndexOf(e);
      if (i === pending.length - 1) pending.pop();
      else pending.splice(i, 1);
    }
    if (e.type === 'sg') this.#devices.get(e.device)?.sgs.delete(e.key as Scatterlist);
    if (e.prev === null) this.#head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this.#tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = e.next = null;
    if (e.type !== 'coherent') this.#liveStreaming--;
    e.releasedApi = api;
    e.releasedTime = this.#host.clock.now;
    this.#history.push(e);
    if (this.#history.length > LEDGER_HISTORY) this.#history = this.#history.slice(LEDGER_HISTORY / 2);
  }

  /** BUS_NOTIFY_UNBOUND_DRIVER: whatever `dev` still holds is leaked from now on. */
  deviceUnbound(dev: Device): void {
    this.flush();
    const now = this.#host.clock.now;
    for (let e = this.#head; e !== null; e = e.next) if (e.device === dev) e.orphanedAt ??= now;
  }

  /** Live entries, of one device or of all, oldest first. */
  entries(dev?: Device): LedgerEntry[] {
    this.flush();
    const out: LedgerEntry[] = [];
    for (let e = this.#head; e !== null; e = e.next) if (dev === undefined || e.device === dev) out.push(e);
    // The live list is in the order entries were made; lane entries join it late, so sort by id.
    return out.sort((a, b) => a.id - b.id);
  }

  /** The newest released entry of `dev` whose DMA ranges overlapped [a, b). */
  releasedCovering(dev: Device, a: number, b: number): LedgerEntry | undefined {
    let hit: LedgerEntry | undefined;
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const e = this.#history[i] as LedgerEntry;
      if (e.device !== dev) continue;
      if (e.multiRange ? e.dma.some((r) => r.start < b && r.end > a) : e.dmaStart < b && e.dmaEnd > a) {
        hit = e;
        break;
      }
    }
    const fromRing = this.#ring.find(dev, a, b);
    return fromRing !== undefined && (hit === undefined || fromRing.releasedTime >= hit.releasedTime) ? fromRing : hit;
  }

  /** Bounce slots a direct-translated device addresses for this entry: its DMA ranges inside the pool. */
  #bounceSlots(e: LedgerEntry): readonly AddrRange[] {
    if (e.type === 'coherent' || e.device.dma.translator.kind !== 'direct') return [];
    if (!e.multiRange) return this.#host.isBounceSlot(e.dmaStart) ? [{ start: e.dmaStart, end: e.dmaEnd }] : [];
    return e.dma.filter((r) => this.#host.isBounceSlot(r.start));
  }
}

/**
 * Fast-lane singles released without becoming entries: a ring of the last `cap`, as parallel
 * arrays; `find` makes the entry a finding names.
 */
class ReleasedRing {
  // INVARIANT: slots [0, #n) hold released mappings; #at is where the next one goes (the oldest
  //   once the ring is full).
  readonly #cap: number;
  readonly #dev: Device[] = [];
  readonly #api: string[] = [];
  readonly #unmapApi: string[] = [];
  readonly #dir: number[] = [];
  readonly #size: number[] = [];
  readonly #dma: number[] = [];
  readonly #phys: number[] = [];
  readonly #time: number[] = [];
  readonly #unmapTime: number[] = [];
  readonly #id: number[] = [];
  #at = 0;
  #n = 0;

  constructor(cap: number) {
    this.#cap = cap;
  }

  push(dev: Device, api: string, unmapApi: string, dir: number, size: number, dma: number, phys: number, time: number, unmapTime: number, id: number): void {
    const i = this.#at;
    this.#dev[i] = dev;
    this.#api[i] = api;
    this.#unmapApi[i] = unmapApi;
    this.#dir[i] = dir;
    this.#size[i] = size;
    this.#dma[i] = dma;
    this.#phys[i] = phys;
    this.#time[i] = time;
    this.#unmapTime[i] = unmapTime;
    this.#id[i] = id;
    this.#at = i + 1 === this.#cap ? 0 : i + 1;
    if (this.#n < this.#cap) this.#n++;
  }

  /** The newest released mapping of `dev` overlapping [a, b), as an entry. */
  find(dev: Device, a: number, b: number): LedgerEntry | undefined {
    for (let k = 1; k <= this.#n; k++) {
      const i = (this.#at - k + this.#cap) % this.#cap;
      const dma = this.#dma[i] as number;
      const size = this.#size[i] as number;
      if (this.#dev[i] !== dev || !(dma < b && dma + size > a)) continue;
      const phys = this.#phys[i] as number;
      const e = new LedgerEntry(this.#id[i] as number, 'single', dev, this.#dir[i] as number, size, this.#api[i] as string, this.#time[i] as number, dma,
        dma, dma + size, phys, phys + size, null, null);
      e.releasedApi = this.#unmapApi[i] as string;
      e.releasedTime = this.#unmapTime[i] as number;
      return e;
    }
    return undefined;
  }
}
