/**
 * @module replay/check
 * Check a kernel DMA trace offline as dma-debug would have: every dma:* event of the trace is fed to
 * dmasim's dma-debug (the same engine, rules and messages as a CONFIG_DMA_API_DEBUG kernel), and
 * whatever it reports becomes a finding with the trace lines of each party. Mappings still live at
 * the end of the trace are leaks, per device.
 *
 * What a trace cannot tell, and so is never reported: whether the driver called dma_mapping_error
 * (not traced: every mapping counts as checked). CPU pointers print hashed (`%p`): equal hashes are
 * the same pointer, so an allocation and its free are still compared on their CPU side. dma_unmap_sg records physical addresses only: the unmap
 * is matched to the live dma_map_sg of that device whose first entry has the same physical address.
 */
import { DmaDebug } from '../../dma/debug/debug.ts';
import { linearDebugMemory } from '../../dma/debug/platform.ts';
import type { DebugDevice } from '../../dma/debug/device.ts';
import type { DebugSgEntry } from '../../dma/debug/sg.ts';
import { createServices } from '../../core/context.ts';
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { PAGE_SIZE } from '../../core/page.ts';
import { PAGE_OFFSET } from '../../mm/constants.ts';
import { DMA_MAPPING_ERROR } from '../../dma/debug/state.ts';
import type { DmaFindingKind } from '../findings.ts';
import { DMA_DIRECTION_NAMES, type FtraceEvent } from './events.ts';
import { traceDeviceBus } from './scan.ts';

/** One problem found in a trace. */
export interface TraceFinding {
  /** The same kinds as the driver-test checks' dmaFindings. */
  readonly kind: DmaFindingKind;
  /** The device's name as the trace gives it. */
  readonly device: string;
  /** dma-debug's words (`DMA-API: pci 0000:01:00.0: device driver frees DMA memory with different size ...`). */
  readonly message: string;
  /** The trace lines involved: the event at fault first, then the mapping it concerns, if known. */
  readonly lines: readonly number[];
}

/** What checkTrace saw. */
export interface TraceCheckStats {
  events: number;
  maps: number;
  unmaps: number;
  syncs: number;
  allocs: number;
  frees: number;
  /** Mappings that failed in the traced kernel (DMA_MAPPING_ERROR, dma_map_sg_err, dma_alloc_sgt_err). */
  failedMaps: number;
  /** Events of other systems (swiotlb, iommu), counted only. */
  other: number;
  /** dma_map_sg events cut at 128 entries: checked on what the trace kept. */
  truncated: number;
  devices: string[];
}

interface SgLive { line: number; phys: number[]; dma: number[]; lengths: number[]; nents: number; truncated: boolean }

// INVARIANT: a TraceChecker owns one DmaDebug whose entries are exactly the trace's live mappings
//   (by device object and device address); lines maps `device\0dma address` to the line of the
//   event that created the entry (the first entry of an sg mapping); sgLive maps `device\0first
//   phys` to the live dma_map_sg mappings with that first entry (newest last).
/**
 * The offline checker: feed it events in trace order, then `finish()`.
 * @example
 * const c = new TraceChecker();
 * for await (const ev of parseFtrace('trace.txt')) c.add(ev);
 * const findings = c.finish();
 */
export class TraceChecker {
  readonly stats: TraceCheckStats = { events: 0, maps: 0, unmaps: 0, syncs: 0, allocs: 0, frees: 0, failedMaps: 0, other: 0, truncated: 0, devices: [] };
  readonly findings: TraceFinding[] = [];
  private readonly _debug: DmaDebug;
  private readonly _devices = new Map<string, DebugDevice>();
  private readonly _lines = new Map<string, number>();
  private readonly _sgLive = new Map<string, SgLive[]>();
  /**
   * Per released `device\0DMA address`: the line of its last release (a second one names it) and of
   * its map (a partial sg unmap can leave dma-debug's entry behind, to be reported as a leak).
   */
  private readonly _gone = new Map<string, { unmap: number; map: number }>();
  /** The last RECENT_RELEASES released ranges per device, oldest first (for io_page_fault). */
  private readonly _recent = new Map<string, Array<{ start: number; end: number; line: number }>>();
  /** Live dma_alloc_noncontiguous allocations (no dma-debug entry of their own here), by `device\0DMA address`. */
  private readonly _sgtLive = new Map<string, { device: string; line: number; dma: number; size: number }>();
  /** Where the last dma_unmap_sg of `device\0first phys` and dma_free_sgt of `device\0DMA address` were (a second one names it). */
  private readonly _sgUnmappedAt = new Map<string, number>();
  /** Live dma_map_sg events cut at 128 entries, by `device\0first DMA address`. */
  private readonly _truncated = new Map<string, SgLive>();
  // INVARIANT: _virt maps each printed CPU pointer (hashed %p) to a stand-in page, the same one for
  //   every event printing that pointer, so dma-debug can compare an allocation's and a free's CPU side.
  private readonly _virt = new Map<string, number>();
  private readonly _virtOf = new Map<number, string>();
  private _errorsSeen = 0;
  private _finished = false;

  constructor() {
    // Offline, nothing says which physical addresses are RAM: only the stand-in pages of CPU
    // pointers are (so a traced MMIO mapping is never "dma_map_resource called for RAM address").
    this._debug = new DmaDebug({ klog: createServices('trace-check', 0).klog }, {
      entries: 1 << 22, memory: linearDebugMemory({ ram: [{ startPfn: STAND_IN_PFN, endPfn: STAND_IN_PFN + STAND_IN_PAGES + 1 }] }),
    });
    // Every error is wanted, not only the first per driver.
    this._debug.all_errors = 1;
  }

  private _dev(name: string): DebugDevice {
    let d = this._devices.get(name);
    if (d === undefined) {
      // The trace names devices, not drivers: dma-debug labels them by bus, as for an unbound device.
      // Nor its DMA parameters: no segment limit or boundary is checked here (a replay machine's
      // devices have theirs, from a machine file or the trace).
      d = { name, bus: { name: traceDeviceBus(name) }, dma_parms: { max_segment_size: 0xffffffff, segment_boundary_mask: 2 ** 64 - 1 } };
      this._devices.set(name, d);
      this.stats.devices.push(name);
    }
    return d;
  }

  private _note(dev: string, addr: number, line: number): void {
    this._lines.set(`${dev}\0${addr}`, line);
  }

  /** The stand-in pfn of a printed CPU pointer (pages at STAND_IN_PFN and up: the only RAM the check's dma-debug knows). */
  private _pageOf(virt: string): number {
    let n = this._virt.get(virt);
    if (n === undefined) {
      n = STAND_IN_PFN + (this._virt.size % STAND_IN_PAGES) + 1;
      this._virt.set(virt, n);
      this._virtOf.set(n, virt);
    }
    return n;
  }

  /** dma-debug's words with stand-in CPU addresses replaced by the pointers the trace printed. */
  private _unStandIn(text: string): string {
    return text.replace(/0x0x([0-9a-f]{16})/g, (all, hex: string) => {
      const pfn = Math.floor(parseInt(hex, 16) / PAGE_SIZE);
      const v = this._virtOf.get(pfn);
      return v === undefined ? all : `0x0x${v}`;
    });
  }

  /** A release of something never allocated that dma-debug cannot see (it matches by device address). */
  private _notAllocated(dev: DebugDevice, line: number, what: string, earlier?: number): void {
    this.findings.push({ kind: 'dma-debug', device: dev.name, lines: earlier === undefined ? [line] : [line, earlier], message: `DMA-API: ${dev.bus?.name ?? ''} ${dev.name}: device driver tries to free DMA memory it has not allocated ${what}` });
  }

  /** After a release at `line`: the mapping is gone; a second release names this line. */
  private _released(dev: string, addr: number, line: number, size = 0): void {
    const key = `${dev}\0${addr}`;
    const mapLine = this._lines.get(key);
    if (mapLine !== undefined) {
      this._lines.delete(key);
      this._gone.set(key, { unmap: line, map: mapLine });
    }
    if (size > 0) {
      let ring = this._recent.get(dev);
      if (ring === undefined) this._recent.set(dev, ring = []);
      ring.push({ start: addr, end: addr + size, line });
      // Trimmed in batches, not one shift of the whole ring per release once it is full.
      if (ring.length > RECENT_RELEASES + RECENT_RELEASES / 4) ring.splice(0, ring.length - RECENT_RELEASES);
    }
  }

  /**
   * iommu:io_page_fault: the device touched an IOVA the IOMMU would not translate for it. Where
   * that IOVA is in a live mapping of the device the access broke its direction; where the device
   * released a mapping there lately, it used it after the unmap; else it was never mapped.
   */
  private _fault(ev: { device: string; driver: string; iova: number; flags: number; line: number }): void {
    const dev = this._dev(ev.device);
    const write = (ev.flags & 1) !== 0;
    const what = `${ev.driver === '' ? '' : `${ev.driver} `}${ev.device}: IOMMU fault on a device ${write ? 'write' : 'read'} at iova ${hex16(ev.iova)}`;
    for (const e of this._debug.entries(dev)) {
      if (ev.iova >= e.dev_addr && ev.iova < e.dev_addr + e.size) {
        const line = this._lines.get(`${ev.device}\0${e.dev_addr}`);
        const dirName = DMA_DIRECTION_NAMES[e.direction as 0 | 1 | 2 | 3] ?? String(e.direction);
        // DMA_TO_DEVICE lets the device only read, DMA_FROM_DEVICE only write.
        const refused = (write && e.direction === 1) || (!write && e.direction === 2);
        const inside = `inside the live DMA_${dirName} mapping [device address=${hex16(e.dev_addr)}] [size=${e.size} bytes]${line === undefined ? '' : ` (mapped at line ${line})`}`;
        this.findings.push({ kind: refused ? 'access-direction' : 'access-unmapped', device: ev.device, lines: line === undefined ? [ev.line] : [ev.line, line],
          message: refused ? `${what}, ${inside}, which lets the device only ${write ? 'read' : 'write'}` : `${what}, ${inside}, which allows it: the IOMMU could not translate it all the same` });
        return;
      }
    }
    const ring = this._recent.get(ev.device) ?? [];
    for (let i = ring.length - 1; i >= 0; i--) {
      const r = ring[i] as { start: number; end: number; line: number };
      if (ev.iova >= r.start && ev.iova < r.end) {
        this.findings.push({ kind: 'access-after-unmap', device: ev.device, lines: [ev.line, r.line],
          message: `${what}, which the driver unmapped at line ${r.line} ([device address=${hex16(r.start)}] [size=${r.end - r.start} bytes])` });
        return;
      }
    }
    this.findings.push({ kind: 'access-unmapped', device: ev.device, lines: [ev.line], message: `${what}: no mapping of ${ev.device} covers it, and none released lately did` });
  }

  /** Findings for whatever dma-debug reported while handling the event at `line`. */
  private _collect(line: number, dev: string, addr: number | undefined): void {
    const count = this._debug.error_count;
    const fresh = count - this._errorsSeen;
    this._errorsSeen = count;
    if (fresh <= 0) return;
    const errs = this._debug.errors;
    const key = `${dev}\0${addr}`;
    const mapLine = addr === undefined ? undefined : this._lines.get(key) ?? this._gone.get(key)?.unmap;
    for (const e of errs.slice(Math.max(0, errs.length - fresh))) {
      this.findings.push({ kind: 'dma-debug', device: e.device, message: this._unStandIn(e.text.replace(/\n$/, '')), lines: mapLine === undefined || mapLine === line ? [line] : [line, mapLine] });
    }
  }

  /** Handle one event (in trace order). */
  add(ev: FtraceEvent): void {
    if (typeof ev !== 'object' || ev === null || typeof (ev as { event?: unknown }).event !== 'string' || typeof (ev as { line?: unknown }).line !== 'number') {
      throw new KernelError(EINVAL, 'TraceChecker.add', 'expected a parsed trace event (parseFtrace, parseFtraceLine)', 'ev');
    }
    if (this._finished) throw new KernelError(EINVAL, 'TraceChecker.add', 'the check is finished (finish() was called)', 'ev');
    if ('device' in ev && typeof ev.device !== 'string') throw new KernelError(EINVAL, 'TraceChecker.add', 'expected the event\'s device name', 'ev');
    this.stats.events++;
    const dbg = this._debug;
    switch (ev.event) {
      case 'dma_map_phys': {
        this.stats.maps++;
        const dev = this._dev(ev.device);
        if (ev.dma_addr === DMA_MAPPING_ERROR) { this.stats.failedMaps++; return; }
        this._note(ev.device, ev.dma_addr, ev.line);
        dbg.debug_dma_map_phys(dev, ev.phys_addr, ev.size, ev.dir, ev.dma_addr, ev.attrs);
        dbg.debug_dma_mapping_error(dev, ev.dma_addr);
        this._collect(ev.line, ev.device, ev.dma_addr);
        return;
      }
      case 'dma_unmap_phys': {
        this.stats.unmaps++;
        dbg.debug_dma_unmap_phys(this._dev(ev.device), ev.addr, ev.size, ev.dir);
        this._collect(ev.line, ev.device, ev.addr);
        this._released(ev.device, ev.addr, ev.line, ev.size);
        return;
      }
      case 'dma_map_sg': {
        this.stats.maps++;
        if (ev.truncated) this.stats.truncated++;
        const dev = this._dev(ev.device);
        const n = Math.min(ev.phys_addrs.length, ev.full_nents);
        const mapped = Math.min(ev.dma_addrs.length, ev.lengths.length, ev.full_ents);
        const list = sgEntries(ev.phys_addrs.slice(0, n), ev.dma_addrs, ev.lengths);
        if (ev.dma_addrs[0] !== undefined) this._note(ev.device, ev.dma_addrs[0], ev.line);
        for (let i = 1; i < mapped; i++) this._note(ev.device, ev.dma_addrs[i] as number, ev.line);
        dbg.debug_dma_map_sg(dev, list, n, mapped, ev.dir, ev.attrs);
        const key = `${ev.device}\0${ev.phys_addrs[0] ?? -1}`;
        const live = this._sgLive.get(key) ?? [];
        const rec = { line: ev.line, phys: ev.phys_addrs.slice(0, n), dma: ev.dma_addrs.slice(0, mapped), lengths: ev.lengths.slice(0, mapped), nents: n, truncated: ev.truncated };
        live.push(rec);
        if (ev.truncated && ev.dma_addrs[0] !== undefined) this._truncated.set(`${ev.device}\0${ev.dma_addrs[0]}`, rec);
        this._sgLive.set(key, live);
        this._collect(ev.line, ev.device, ev.dma_addrs[0]);
        return;
      }
      case 'dma_map_sg_err':
        this.stats.maps++;
        this.stats.failedMaps++;
        this._dev(ev.device);
        return;
      case 'dma_unmap_sg': {
        this.stats.unmaps++;
        const dev = this._dev(ev.device);
        const key = `${ev.device}\0${ev.addrs[0] ?? -1}`;
        const live = this._sgLive.get(key);
        const m = live?.pop();
        if (live !== undefined && live.length === 0) this._sgLive.delete(key);
        if (m === undefined) {
          const phys = ev.addrs[0] === undefined ? 'none' : hex16(ev.addrs[0]);
          const before = this._sgUnmappedAt.get(key);
          this._notAllocated(dev, ev.line, `[physical address=${phys}] (dma_unmap_sg: no live dma_map_sg of this device starts there${before === undefined ? '' : `; one was unmapped at line ${before}`})`, before);
          return;
        }
        this._sgUnmappedAt.set(key, ev.line);
        // The unmap's entries as the driver passed them: its own count, the mapping's DMA side (of a
        // map cut at 128 entries, the part the trace kept).
        const phys = m.truncated ? ev.addrs.slice(0, m.nents) : ev.addrs;
        if (m.truncated && m.dma[0] !== undefined) this._truncated.delete(`${ev.device}\0${m.dma[0]}`);
        const list = sgEntries(phys, m.dma, m.lengths);
        dbg.debug_dma_unmap_sg(dev, list, phys.length, ev.dir);
        this._collect(ev.line, ev.device, m.dma[0]);
        m.dma.forEach((a, i) => { this._released(ev.device, a, ev.line, m.lengths[i] ?? 0); });
        return;
      }
      case 'dma_sync_single_for_cpu':
      case 'dma_sync_single_for_device': {
        this.stats.syncs++;
        const dev = this._dev(ev.device);
        if (ev.event === 'dma_sync_single_for_cpu') dbg.debug_dma_sync_single_for_cpu(dev, ev.dma_addr, ev.size, ev.dir);
        else dbg.debug_dma_sync_single_for_device(dev, ev.dma_addr, ev.size, ev.dir);
        this._collect(ev.line, ev.device, ev.dma_addr);
        return;
      }
      case 'dma_sync_sg_for_cpu':
      case 'dma_sync_sg_for_device': {
        this.stats.syncs++;
        const dev = this._dev(ev.device);
        // The trace keeps the DMA side only; dma-debug matches syncs by device address. A sync of a
        // map cut at 128 entries is checked on the same part.
        const cut = this._truncated.get(`${ev.device}\0${ev.dma_addrs[0] ?? -1}`);
        const dmaAddrs = cut === undefined ? ev.dma_addrs : ev.dma_addrs.slice(0, cut.nents);
        const list = dmaAddrs.map((a, i) => ({ page: 0, offset: 0, length: ev.lengths[i] ?? 0, dma_address: a, dma_length: ev.lengths[i] ?? 0 }));
        if (ev.event === 'dma_sync_sg_for_cpu') dbg.debug_dma_sync_sg_for_cpu(dev, list, list.length, ev.dir);
        else dbg.debug_dma_sync_sg_for_device(dev, list, list.length, ev.dir);
        this._collect(ev.line, ev.device, ev.dma_addrs[0]);
        return;
      }
      case 'dma_alloc':
      case 'dma_alloc_pages': {
        this.stats.allocs++;
        const dev = this._dev(ev.device);
        // A failed allocation traces a NULL CPU pointer (and 0, or DMA_MAPPING_ERROR behind an IOMMU).
        if (isNullPointer(ev.virt_addr)) { this.stats.failedMaps++; return; }
        this._note(ev.device, ev.dma_addr, ev.line);
        // %p prints a hash: each distinct pointer gets a stand-in page of its own.
        const page = this._pageOf(ev.virt_addr);
        if (ev.event === 'dma_alloc') dbg.debug_dma_alloc_coherent(dev, ev.size, ev.dma_addr, PAGE_OFFSET + page * PAGE_SIZE, ev.attrs);
        else dbg.debug_dma_alloc_pages(dev, page, ev.size, ev.dir, ev.dma_addr, ev.attrs);
        this._collect(ev.line, ev.device, ev.dma_addr);
        return;
      }
      case 'dma_free':
      case 'dma_free_pages': {
        this.stats.frees++;
        const dev = this._dev(ev.device);
        const page = this._pageOf(ev.virt_addr);
        if (ev.event === 'dma_free') dbg.debug_dma_free_coherent(dev, ev.size, PAGE_OFFSET + page * PAGE_SIZE, ev.dma_addr);
        else dbg.debug_dma_free_pages(dev, page, ev.size, ev.dir, ev.dma_addr);
        this._collect(ev.line, ev.device, ev.dma_addr);
        this._released(ev.device, ev.dma_addr, ev.line, ev.size);
        return;
      }
      case 'dma_alloc_sgt': {
        this.stats.allocs++;
        const dev = this._dev(ev.device);
        this._note(ev.device, ev.dma_addr, ev.line);
        this._sgtLive.set(`${ev.device}\0${ev.dma_addr}`, { device: ev.device, line: ev.line, dma: ev.dma_addr, size: ev.size });
        // dma_alloc_noncontiguous: debug_dma_map_sg of the table's pages, mapped as one segment.
        dbg.debug_dma_map_sg(dev, sgEntries(ev.phys_addrs, [ev.dma_addr], [ev.size]), ev.phys_addrs.length, 1, ev.dir, 0);
        this._collect(ev.line, ev.device, ev.dma_addr);
        return;
      }
      case 'dma_alloc_sgt_err':
        this.stats.allocs++;
        this.stats.failedMaps++;
        this._dev(ev.device);
        return;
      case 'dma_free_sgt': {
        this.stats.frees++;
        const key = `${ev.device}\0${ev.dma_addr}`;
        const live = this._sgtLive.get(key);
        if (live === undefined) {
          const before = this._gone.get(key)?.unmap;
          this._notAllocated(this._dev(ev.device), ev.line, `[device address=${hex16(ev.dma_addr)}] [size=${ev.size} bytes] (dma_free_noncontiguous${before === undefined ? '' : `; freed at line ${before}`})`, before);
          return;
        }
        this._sgtLive.delete(key);
        // dma_free_noncontiguous: debug_dma_unmap_sg of the pages the free names.
        dbg.debug_dma_unmap_sg(this._dev(ev.device), sgEntries(ev.phys_addrs, [ev.dma_addr], [live.size]), ev.phys_addrs.length, ev.dir);
        this._collect(ev.line, ev.device, ev.dma_addr);
        this._released(ev.device, ev.dma_addr, ev.line, live.size);
        return;
      }
      case 'io_page_fault':
        this.stats.other++;
        this._fault(ev);
        return;
      default:
        this.stats.other++;
    }
  }

  /** End of trace: what is still mapped is a leak (per device). Returns every finding. */
  finish(): TraceFinding[] {
    if (this._finished) return this.findings;
    this._finished = true;
    for (const dev of this._devices.values()) {
      for (const e of this._debug.entries(dev)) {
        const key = `${dev.name}\0${e.dev_addr}`;
        // A noncontiguous allocation's entry: reported below, as an allocation.
        if (this._sgtLive.has(key)) continue;
        const line = this._lines.get(key) ?? this._gone.get(key)?.map;
        // Allocations (coherent, and dma_alloc_pages' noncoherent memory) leak as dmaFindings names them.
        const coherent = e.type === 'coherent' || e.type === 'noncoherent';
        this.findings.push({
          kind: coherent ? 'leaked-coherent' : 'leaked-mapping',
          device: dev.name,
          lines: line === undefined ? [] : [line],
          message: `${dev.name}: ${coherent ? 'coherent buffer' : `${e.type} mapping`} [device address=${hex16(e.dev_addr)}] [size=${e.size} bytes]${coherent ? '' : ` [DMA_${DMA_DIRECTION_NAMES[e.direction as 0 | 1 | 2 | 3] ?? e.direction}]`} never ${coherent ? 'freed' : 'unmapped'} before the trace ended${line === undefined ? '' : ` (mapped at line ${line})`}`,
        });
      }
    }
    for (const a of this._sgtLive.values()) {
      this.findings.push({ kind: 'leaked-coherent', device: a.device, lines: [a.line], message: `${a.device}: noncontiguous allocation [device address=${hex16(a.dma)}] [size=${a.size} bytes] never freed before the trace ended (allocated at line ${a.line})` });
    }
    return this.findings;
  }
}

/** A printed `%p` that is NULL (`0000000000000000`, `(null)`, `0x0`). */
export function isNullPointer(p: string): boolean {
  return p === '(null)' || p.replace(/^0x/, '').replace(/^0+/, '') === '';
}

/** Released ranges kept per device to name the unmap an io_page_fault follows. */
const RECENT_RELEASES = 1024;

/** Where the stand-in pages of CPU pointers start (32 TiB: above the physical addresses traces carry). */
const STAND_IN_PFN = 2 ** 33;
const STAND_IN_PAGES = 1 << 20;

/** A u64 as dma-debug prints addresses: 0x and 16 hex digits. */
const hex16 = (n: number): string => `0x${n.toString(16).padStart(16, '0')}`;

/** Scatterlist entries for dma-debug from a trace's arrays (CPU side by physical address). */
function sgEntries(phys: readonly number[], dma: readonly number[], lengths: readonly number[]): DebugSgEntry[] {
  return phys.map((p, i) => ({
    page: Math.floor(p / PAGE_SIZE), offset: p % PAGE_SIZE,
    // The CPU length is not traced; the DMA length stands in (dma-debug only reads it for overlap checks).
    length: lengths[i] ?? 0, dma_address: dma[i] ?? 0, dma_length: lengths[i] ?? 0,
  }));
}

/**
 * Check a whole trace (any iterable of events, e.g. `parseFtrace(path)`).
 * @example const { findings } = await checkTrace(parseFtrace('trace.txt'));
 */
export async function checkTrace(events: AsyncIterable<FtraceEvent> | Iterable<FtraceEvent>): Promise<{ findings: TraceFinding[]; stats: TraceCheckStats }> {
  if (typeof events !== 'object' || events === null || (typeof (events as AsyncIterable<FtraceEvent>)[Symbol.asyncIterator] !== 'function' && typeof (events as Iterable<FtraceEvent>)[Symbol.iterator] !== 'function')) {
    throw new KernelError(EINVAL, 'checkTrace', 'expected events (parseFtrace, or an array of parsed events)', 'events');
  }
  const c = new TraceChecker();
  for await (const ev of events) c.add(ev);
  return { findings: c.finish(), stats: c.stats };
}
