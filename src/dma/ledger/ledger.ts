/**
 * @module dma/ledger/ledger
 * The DMA ledger: dmasim's own record of every live streaming mapping and coherent allocation of a
 * machine, kept apart from dma-debug (which stays exactly the kernel's, with its filters, entry
 * limits and disable-on-exhaustion). The DMA API records here after a backend succeeds and removes
 * on unmap or free; leaks, device-access checks and CPU-ownership checks all read it.
 */
import { TrackedArrays } from '../../core/tracked-arrays.ts';
import type { Clock } from '../../core/clock.ts';
import type { Device } from '../../device/device.ts';
import type { Scatterlist } from '../../scatterlist/entry.ts';
import { LedgerEntry, type AddrRange, type LedgerEntryType } from './entry.ts';
import { FindingLog } from './findings.ts';
import { RangeIndex } from './range-index.ts';
import { ChurnMap } from '../../core/churn-map.ts';

/** Released entries remembered for use-after-unmap findings. */
export const LEDGER_HISTORY = 1024;

/** Buckets of the lane's address counts (a power of two). */
const LANE_BUCKETS = 8192;

/**
 * The lane's count bucket of a bus address: its 64-byte granule number, both 32-bit halves folded
 * and multiplied by a Fibonacci constant, the top 13 bits (the low bits alone put page-aligned
 * buffers 4 KiB apart in 64 buckets, so a ring's counts were never 1).
 */
function laneBucket(addr: number): number {
  const g = Math.floor(addr / 64);
  return Math.imul((g | 0) ^ Math.floor(g / 2 ** 32), 0x9e3779b1) >>> 19;
}

/** Range objects as (start, end) pairs. */
function packRanges(ranges: readonly AddrRange[]): number[] {
  const out = new Array<number>(2 * ranges.length);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i] as AddrRange;
    out[2 * i] = r.start;
    out[2 * i + 1] = r.end;
  }
  return out;
}

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
  /**
   * Live scatterlist mappings by their first entry. A ChurnMap: a driver maps and unmaps the same
   * table over and over, and a Map reallocated its table at every unmap that emptied it (~250 ns;
   * core/churn-map).
   */
  readonly sgs = new ChurnMap<Scatterlist, LedgerEntry>();
}

/**
 * One machine's DMA ledger.
 * @example
 * const live = machine.dma.ledger.entries(dev);   // what dev has mapped now
 * machine.dma.ledger.findings.list();             // bad device and CPU accesses seen
 */
export class DmaLedger {
  private readonly _host: LedgerHost;
  private readonly _devices = new Map<Device, DeviceLedger>();
  /** The CPU-side physical ranges of every indexed live entry. */
  readonly phys = new RangeIndex<LedgerEntry>();
  /** The swiotlb slots live streaming mappings of direct-translated devices bounce through. */
  readonly bounce = new RangeIndex<LedgerEntry>();
  /** Bad accesses seen (the access checks add to it). */
  readonly findings = new FindingLog();
  // INVARIANT: the live list (_head, linked through prev/next) holds exactly the entries made and
  //   not yet released. Each is either indexed (its ranges in its device's index, `phys` and,
  //   for bounced direct mappings, `bounce`) or in _pending, never both: indexing waits until a
  //   lookup needs it, so a map quickly followed by its unmap never touches an index (measured:
  //   map+unmap pairs 570 -> ~90 ns against ~80 without a ledger).
  private _head: LedgerEntry | null = null;
  private _tail: LedgerEntry | null = null;
  private _pending: LedgerEntry[] = [];
  // INVARIANT: single mappings start in the fast lane, slots [_laneHead, _laneLen) of these
  //   parallel arrays in mapping order (slots below _laneHead are free), with no object made: an
  //   unmap that finds its mapping there releases it into the ring below, so a map+unmap pair allocates nothing (measured: pair 105 -> ~85 ns, against
  //   ~80 without a ledger). Any lookup by address first turns the lane into entries (flush).
  private readonly _laneDev: Device[] = [];
  private readonly _laneApi: string[] = [];
  private readonly _laneDir: number[] = [];
  private readonly _laneSize: number[] = [];
  private readonly _laneDma: number[] = [];
  private readonly _lanePhys: number[] = [];
  private readonly _laneTime: number[] = [];
  private readonly _laneId: number[] = [];
  private _laneLen = 0;
  // INVARIANT: _laneAddrCount[laneBucket(a)] is the number of lane slots [_laneHead, _laneLen)
  //   whose bus address falls in that bucket. A count of 1 lets an unmap that matches the oldest
  //   slot take it without scanning the rest for a newer mapping at the same address (a ring of
  //   1,024 buffers refilled in order scanned them all per unmap: bench/RESULTS.md, session 14).
  private readonly _laneAddrCount = new Int32Array(LANE_BUCKETS);
  // The counts, captured by snapshots copy on write: _laneCount announces its bucket.
  private readonly _laneCountTracked = new TrackedArrays([this._laneAddrCount]);
  // Unmapping the oldest lane mapping (a ring refilled in order) moves the head instead of shifting
  // every later slot (48 live ring buffers: unmapSingle 10.6% -> 4.2% of a map+unmap).
  private _laneHead = 0;
  // INVARIANT: _history holds the last LEDGER_HISTORY released entries, oldest first; _ring holds
  //   the last LEDGER_HISTORY fast-lane singles released without becoming entries.
  private _history: LedgerEntry[] = [];
  private readonly _ring = new ReleasedRing(LEDGER_HISTORY);
  private _nextId = 1;
  /** Live streaming (non-coherent) entries: the CPU check has nothing to do while it is 0. */
  private _liveStreaming = 0;

  constructor(host: LedgerHost) {
    this._host = host;
  }

  /** Are there live streaming mappings anywhere on the machine? */
  get hasStreaming(): boolean {
    return this._liveStreaming > 0;
  }

  /** The ledger of one device (created on first use). */
  deviceLedger(dev: Device): DeviceLedger {
    let d = this._devices.get(dev);
    if (d === undefined) {
      d = new DeviceLedger();
      this._devices.set(dev, d);
    }
    return d;
  }

  /** A streaming single mapping of [phys, phys+size) at bus address `addr` succeeded. */
  mapSingle(dev: Device, api: string, dir: number, size: number, addr: number, phys: number): void {
    const i = this._laneLen++;
    this._laneDev[i] = dev;
    this._laneApi[i] = api;
    this._laneDir[i] = dir;
    this._laneSize[i] = size;
    this._laneDma[i] = addr;
    this._lanePhys[i] = phys;
    this._laneTime[i] = this._host.clock.now;
    this._laneId[i] = this._nextId++;
    this._laneCount(addr, 1);
    this._liveStreaming++;
  }

  /** Unmap of the single mapping of `dev` at `addr` by `api` (an unknown one is dma-debug's to report). */
  unmapSingle(dev: Device, addr: number, api: string): void {
    const h = this._laneHead;
    // The oldest slot, when no other lane slot can hold this address: the mapping a ring refilled
    // in order releases (the rule is still the newest match: there is no other).
    const first = h < this._laneLen && this._laneDma[h] === addr && this._laneDev[h] === dev && this._laneAddrCount[laneBucket(addr)] === 1 ? h : -1;
    for (let i = first >= 0 ? first : this._laneLen - 1; i >= h; i--) {
      if (this._laneDma[i] !== addr || this._laneDev[i] !== dev) continue;
      this._ring.push(dev, this._laneApi[i] as string, api, this._laneDir[i] as number, this._laneSize[i] as number, addr,
        this._lanePhys[i] as number, this._laneTime[i] as number, this._host.clock.now, this._laneId[i] as number);
      this._laneRemove(i);
      this._liveStreaming--;
      return;
    }
    const e = this._findIndexed(dev, addr, 'single');
    if (e !== undefined) this.release(e, api);
  }

  private _laneCount(addr: number, by: number): void {
    const b = laneBucket(addr);
    this._laneCountTracked.touch(b, b + 1);
    this._laneAddrCount[b] = (this._laneAddrCount[b] as number) + by;
  }

  private _laneRemove(i: number): void {
    this._laneCount(this._laneDma[i] as number, -1);
    if (i === this._laneHead) {
      this._laneDev[i] = undefined as unknown as Device; // let an unbound device's object go
      this._laneHead++;
      if (this._laneHead === this._laneLen) this._laneHead = this._laneLen = 0;
      else if (this._laneHead >= 64 && 2 * this._laneHead >= this._laneLen) this._laneCompact();
      return;
    }
    const last = --this._laneLen;
    for (let j = i; j < last; j++) {
      this._laneDev[j] = this._laneDev[j + 1] as Device;
      this._laneApi[j] = this._laneApi[j + 1] as string;
      this._laneDir[j] = this._laneDir[j + 1] as number;
      this._laneSize[j] = this._laneSize[j + 1] as number;
      this._laneDma[j] = this._laneDma[j + 1] as number;
      this._lanePhys[j] = this._lanePhys[j + 1] as number;
      this._laneTime[j] = this._laneTime[j + 1] as number;
      this._laneId[j] = this._laneId[j + 1] as number;
    }
    this._laneDev[last] = undefined as unknown as Device; // let an unbound device's object go
  }

  /** Record a single-range allocation that just succeeded. */
  recordOne(type: LedgerEntryType, dev: Device, api: string, dir: number, size: number, dmaStart: number, cpuStart: number, key: number | Scatterlist): LedgerEntry {
    return this._add(new LedgerEntry(this._nextId++, type, dev, dir, size, api, this._host.clock.now, key, dmaStart, dmaStart + size, cpuStart, cpuStart + size, null, null));
  }

  /** Record a mapping or allocation of several ranges (a scatterlist; a coherent buffer in pieces). */
  record(type: LedgerEntryType, dev: Device, api: string, dir: number, size: number, dma: readonly AddrRange[], cpu: readonly AddrRange[], key: number | Scatterlist, segMap: Float64Array | null = null): LedgerEntry {
    return this.recordPacked(type, dev, api, dir, size, packRanges(dma), dma.length, packRanges(cpu), cpu.length, key, segMap);
  }

  /**
   * {@link DmaLedger.record} with the ranges packed as (start, end) pairs: `dma[0..2 * nDma)` and
   * `cpu[0..2 * nCpu)`, read and copied (the caller may reuse the arrays).
   */
  recordPacked(type: LedgerEntryType, dev: Device, api: string, dir: number, size: number, dma: readonly number[], nDma: number, cpu: readonly number[], nCpu: number, key: number | Scatterlist, segMap: Float64Array | null): LedgerEntry {
    const e = new LedgerEntry(this._nextId++, type, dev, dir, size, api, this._host.clock.now, key,
      nDma > 0 ? dma[0] as number : 0, nDma > 0 ? dma[1] as number : 0, nCpu > 0 ? cpu[0] as number : 0, nCpu > 0 ? cpu[1] as number : 0,
      nDma > 1 ? dma.slice(2, 2 * nDma) : null, nCpu > 1 ? cpu.slice(2, 2 * nCpu) : null, segMap);
    if (type === 'sg') this.deviceLedger(dev).sgs.set(key as Scatterlist, e);
    return this._add(e);
  }

  private _add(e: LedgerEntry): LedgerEntry {
    this._link(e);
    this._pending.push(e);
    if (e.type !== 'coherent') this._liveStreaming++;
    return e;
  }

  private _link(e: LedgerEntry): void {
    e.prev = this._tail;
    if (this._tail === null) this._head = e;
    else this._tail.next = e;
    this._tail = e;
  }

  /** Move the lane's live slots down to slot 0 (amortised: only once the head passed half of them). */
  private _laneCompact(): void {
    const h = this._laneHead;
    const n = this._laneLen - h;
    for (let j = 0; j < n; j++) {
      this._laneDev[j] = this._laneDev[j + h] as Device;
      this._laneApi[j] = this._laneApi[j + h] as string;
      this._laneDir[j] = this._laneDir[j + h] as number;
      this._laneSize[j] = this._laneSize[j + h] as number;
      this._laneDma[j] = this._laneDma[j + h] as number;
      this._lanePhys[j] = this._lanePhys[j + h] as number;
      this._laneTime[j] = this._laneTime[j + h] as number;
      this._laneId[j] = this._laneId[j + h] as number;
    }
    for (let j = n; j < this._laneLen; j++) this._laneDev[j] = undefined as unknown as Device;
    this._laneHead = 0;
    this._laneLen = n;
  }

  /** Turn the fast lane into entries (kept in mapping order with the others by id). */
  private _drainLane(): void {
    const n = this._laneLen;
    if (n === this._laneHead) return;
    const lane: LedgerEntry[] = [];
    for (let i = this._laneHead; i < n; i++) {
      const size = this._laneSize[i] as number;
      const dma = this._laneDma[i] as number;
      const phys = this._lanePhys[i] as number;
      lane.push(new LedgerEntry(this._laneId[i] as number, 'single', this._laneDev[i] as Device, this._laneDir[i] as number, size,
        this._laneApi[i] as string, this._laneTime[i] as number, dma, dma, dma + size, phys, phys + size, null, null));
      this._laneDev[i] = undefined as unknown as Device;
      this._laneCount(dma, -1);
    }
    this._laneLen = 0;
    this._laneHead = 0;
    for (const e of lane) this._link(e);
    this._pending.push(...lane);
  }

  /** Put every pending entry's ranges in the indexes (before any lookup by address). */
  flush(): void {
    if (this._laneLen > this._laneHead) this._drainLane();
    const pending = this._pending;
    if (pending.length === 0) return;
    this._pending = [];
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
      const slots = this._bounceSlots(e);
      if (slots.length > 0) this.bounce.insertAll(slots, e);
    }
  }

  /** The live scatterlist mapping of `dev` whose first entry is `sgl`. */
  findSg(dev: Device, sgl: Scatterlist): LedgerEntry | undefined {
    return this._devices.get(dev)?.sgs.get(sgl);
  }

  /** The live coherent allocation of `dev` with handle `handle`. */
  findCoherent(dev: Device, handle: number): LedgerEntry | undefined {
    this.flush();
    return this._findIndexed(dev, handle, 'coherent');
  }

  /** The live entries of `dev` recorded by `api` whose DMA range starts in [a, b) (the links of an IOVA range). */
  liveStartingIn(dev: Device, a: number, b: number, api: string): LedgerEntry[] {
    this.flush();
    const hits: LedgerEntry[] = [];
    this._devices.get(dev)?.dma.query(a, b, (r) => {
      const e = r.value;
      if (e.api === api && e.dmaStart >= a && e.dmaStart < b && !hits.includes(e)) hits.push(e);
    });
    return hits;
  }

  /** The live noncoherent allocation of `dev` whose handle is `handle` (dma_alloc_pages and friends). */
  findNoncoherent(dev: Device, handle: number): LedgerEntry | undefined {
    return this._findIndexed(dev, handle, 'noncoherent');
  }

  /**
   * The live streaming mappings of `dev` whose DMA ranges hold `addr` (a sync_single on part of a
   * mapping; several when one buffer is mapped twice at one bus address).
   */
  findContaining(dev: Device, addr: number): LedgerEntry[] {
    this.flush();
    const hits: LedgerEntry[] = [];
    this._devices.get(dev)?.dma.query(addr, addr + 1, (r) => {
      if (r.value.type !== 'coherent' && !hits.includes(r.value)) hits.push(r.value);
    });
    return hits;
  }

  private _findIndexed(dev: Device, start: number, type: LedgerEntryType): LedgerEntry | undefined {
    this.flush();
    let hit: LedgerEntry | undefined;
    this._devices.get(dev)?.dma.query(start, start + 1, (r) => {
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
      const slots = this._bounceSlots(e);
      if (slots.length > 0) this.bounce.removeAll(slots, e);
    } else {
      const pending = this._pending;
      const i = pending.lastIndexOf(e);
      if (i === pending.length - 1) pending.pop();
      else pending.splice(i, 1);
    }
    if (e.type === 'sg') this._devices.get(e.device)?.sgs.delete(e.key as Scatterlist);
    if (e.prev === null) this._head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this._tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = e.next = null;
    if (e.type !== 'coherent') this._liveStreaming--;
    e.releasedApi = api;
    e.releasedTime = this._host.clock.now;
    this._history.push(e);
    if (this._history.length > LEDGER_HISTORY) this._history = this._history.slice(LEDGER_HISTORY / 2);
  }

  /** BUS_NOTIFY_UNBOUND_DRIVER: whatever `dev` still holds is leaked from now on. */
  deviceUnbound(dev: Device): void {
    this.flush();
    const now = this._host.clock.now;
    for (let e = this._head; e !== null; e = e.next) if (e.device === dev) e.orphanedAt ??= now;
  }

  /** Live entries, of one device or of all, oldest first. */
  entries(dev?: Device): LedgerEntry[] {
    this.flush();
    const out: LedgerEntry[] = [];
    for (let e = this._head; e !== null; e = e.next) if (dev === undefined || e.device === dev) out.push(e);
    // The live list is in the order entries were made; lane entries join it late, so sort by id.
    return out.sort((a, b) => a.id - b.id);
  }

  /** The newest released entry of `dev` whose DMA ranges overlapped [a, b). */
  releasedCovering(dev: Device, a: number, b: number): LedgerEntry | undefined {
    let hit: LedgerEntry | undefined;
    for (let i = this._history.length - 1; i >= 0; i--) {
      const e = this._history[i] as LedgerEntry;
      if (e.device !== dev) continue;
      if (e.dmaOverlaps(a, b)) {
        hit = e;
        break;
      }
    }
    const fromRing = this._ring.find(dev, a, b);
    return fromRing !== undefined && (hit === undefined || fromRing.releasedTime >= hit.releasedTime) ? fromRing : hit;
  }

  /** Bounce slots a direct-translated device addresses for this entry: its DMA ranges inside the pool. */
  private _bounceSlots(e: LedgerEntry): readonly AddrRange[] {
    if (e.type === 'coherent' || e.device.dma.translator.kind !== 'direct') return [];
    if (!e.multiRange) return this._host.isBounceSlot(e.dmaStart) ? [{ start: e.dmaStart, end: e.dmaEnd }] : [];
    return e.dma.filter((r) => this._host.isBounceSlot(r.start));
  }
}

// A released slot's numbers, in this order (8 words: one 64-byte line).
const R_DIR = 0;
const R_SIZE = 1;
const R_DMA = 2;
const R_PHYS = 3;
const R_TIME = 4;
const R_UNMAP_TIME = 5;
const R_ID = 6;
const NUM_WORDS = 8;

/**
 * Fast-lane singles released without becoming entries: a ring of the last `cap`, a row of numbers
 * and three object cells a slot; `find` makes the entry a finding names.
 */
class ReleasedRing {
  // INVARIANT: slots [0, _n) hold released mappings; _at is where the next one goes (the oldest
  //   once the ring is full). Slot i's numbers are _num[i * NUM_WORDS + R_*], its objects
  //   _obj[i * 3 + 0..2] (device, map call, unmap call): a slot in two places, not ten (ten arrays
  //   took ten cache lines a push; no gain on the map+unmap pair measurable above this machine's
  //   noise: bench/RESULTS.md, session 15).
  // Both grow as the ring first fills, from room for 64 (a snapshot walks the object cells one by
  // one, so they are not made ahead; the numbers start with room, since a machine restored from a
  // snapshot gets back the array it had then and one that began empty was grown again at every
  // failure point of a sweep).
  private readonly _cap: number;
  private _num: Float64Array;
  private readonly _obj: Array<Device | string> = [];
  private _at = 0;
  private _n = 0;

  constructor(cap: number) {
    this._cap = cap;
    this._num = new Float64Array(Math.min(cap, 64) * NUM_WORDS);
  }

  push(dev: Device, api: string, unmapApi: string, dir: number, size: number, dma: number, phys: number, time: number, unmapTime: number, id: number): void {
    const i = this._at;
    if ((i + 1) * NUM_WORDS > this._num.length) this._grow();
    const o = i * 3;
    this._obj[o] = dev;
    this._obj[o + 1] = api;
    this._obj[o + 2] = unmapApi;
    const w = i * NUM_WORDS;
    const num = this._num;
    num[w + R_DIR] = dir;
    num[w + R_SIZE] = size;
    num[w + R_DMA] = dma;
    num[w + R_PHYS] = phys;
    num[w + R_TIME] = time;
    num[w + R_UNMAP_TIME] = unmapTime;
    num[w + R_ID] = id;
    this._at = i + 1 === this._cap ? 0 : i + 1;
    if (this._n < this._cap) this._n++;
  }

  private _grow(): void {
    const slots = Math.min(this._cap, 2 * (this._num.length / NUM_WORDS));
    const num = new Float64Array(slots * NUM_WORDS);
    num.set(this._num);
    this._num = num;
  }

  /** The newest released mapping of `dev` overlapping [a, b), as an entry. */
  find(dev: Device, a: number, b: number): LedgerEntry | undefined {
    // Newest first, in two straight runs (a misbehaving device's every bad access scans the ring:
    // bench/RESULTS.md, session 9).
    const obj = this._obj;
    const num = this._num;
    const lowest = Math.max(0, this._at - this._n);
    let i = -1;
    for (let j = this._at - 1; j >= lowest; j--) {
      const w = j * NUM_WORDS;
      if (obj[j * 3] === dev && (num[w + R_DMA] as number) < b && (num[w + R_DMA] as number) + (num[w + R_SIZE] as number) > a) { i = j; break; }
    }
    for (let j = this._cap - 1, left = this._n - (this._at - lowest); i < 0 && left > 0; j--, left--) {
      const w = j * NUM_WORDS;
      if (obj[j * 3] === dev && (num[w + R_DMA] as number) < b && (num[w + R_DMA] as number) + (num[w + R_SIZE] as number) > a) i = j;
    }
    if (i < 0) return undefined;
    const w = i * NUM_WORDS;
    const dma = num[w + R_DMA] as number;
    const size = num[w + R_SIZE] as number;
    const phys = num[w + R_PHYS] as number;
    const e = new LedgerEntry(num[w + R_ID] as number, 'single', dev, num[w + R_DIR] as number, size, obj[i * 3 + 1] as string, num[w + R_TIME] as number, dma,
      dma, dma + size, phys, phys + size, null, null);
    e.releasedApi = obj[i * 3 + 2] as string;
    e.releasedTime = num[w + R_UNMAP_TIME] as number;
    return e;
  }
}
