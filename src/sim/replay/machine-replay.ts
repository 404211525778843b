/**
 * @module replay/machine-replay
 * Replay a kernel DMA trace on a configured machine: every map, sync, unmap, allocation and free of
 * the trace goes through dmasim's real layers (dma-direct, swiotlb, dma-iommu, the IOVA allocator,
 * the page tables and IOTLB, dma-debug), at the trace's virtual times and on its CPUs. It answers
 * "what if this workload ran there?": which mappings would fail (and the kernel's words for why),
 * what dma-debug or a WARN would say there, how IOVA space, swiotlb slots, IOTLB invalidations and
 * the flush queue fill over time, and, for a machine configured like the traced one, where dmasim's
 * addresses and segment merging agree with the real kernel's.
 *
 * The trace's addresses are the traced kernel's; the replay keeps a translation from each traced
 * mapping to the replay machine's own, so a later unmap or sync reaches the right mapping. Physical
 * pages a trace names are taken out of the machine's free memory when first seen (owner
 * `reserved`), so the machine's own allocations (page tables, bounce buffers) never land on them.
 *
 * What the trace cannot give is rebuilt and said so: `dma_map_sg` records each entry's physical
 * address but only the merged segments' lengths. When nothing merged the lengths are exact; when
 * entries merged, each segment's entries but the last are taken to end at their IOMMU granule
 * (what merging requires) and the last gets the rest. A map cut at 128 entries cannot be rebuilt
 * and is skipped (counted). A mapping the trace shows failing is tried too: it is counted as one
 * that would succeed here, then released at once.
 */
import { EINVAL, errnoName } from '../../core/errno.ts';
import { KernelBug, KernelError } from '../../core/errors.ts';
import { PAGE_SIZE } from '../../core/page.ts';
import { GFP_KERNEL } from '../../mm/gfp.ts';
import { DMA_ATTR_MMIO } from '../../dma/api/attrs.ts';
import { OWNERS, OWNER_ID, PG_ALLOCATED, type PageMeta } from '../../mm/page-meta.ts';
import type { Device } from '../../device/device.ts';
import { DMA_MAPPING_ERROR } from '../../dma/debug/state.ts';
import {
  dma_alloc_attrs, dma_free_attrs, dma_map_phys, dma_map_sg_attrs, dma_mapping_error, dma_sync_sg_for_cpu, dma_sync_sg_for_device,
  dma_sync_single_for_cpu, dma_sync_single_for_device, dma_unmap_phys, dma_unmap_sg_attrs,
} from '../../dma/api/mapping.ts';
import { dma_alloc_noncontiguous, dma_alloc_pages, dma_free_noncontiguous, dma_free_pages } from '../../dma/api/alloc-pages.ts';
import type { Bouncer, CoherentBuffer, DmaPages } from '../../dma/api/ops.ts';
import { SgTable } from '../../scatterlist/table.ts';
import { sg_alloc_table, sg_free_table } from '../../scatterlist/table.ts';
import { sg_dma_address, sg_dma_len, sg_next, sg_set_page, type Scatterlist } from '../../scatterlist/entry.ts';
import { Machine } from '../machine.ts';
import type { DmaFindingKind } from '../findings.ts';
import type { FtraceEvent, DmaMapSgEvent } from './events.ts';
import { PageSet, inferDevice, newTraceDevice } from './scan.ts';
import { isNullPointer } from './check.ts';

/** A finding of the replay machine: `map-failed` (a mapping the traced kernel made fails here) or a dmaFindings kind. */
export type ReplayFindingKind = DmaFindingKind | 'map-failed';

/** Something that would go wrong if the trace's workload ran on the replay machine. */
export interface ReplayFinding {
  readonly kind: ReplayFindingKind;
  readonly device: string;
  /** The kernel's words (swiotlb's "buffer is full", dma-direct's overflow WARN, dma-debug's report). */
  readonly message: string;
  /** The trace line of the event that failed or made the report. */
  readonly lines: readonly number[];
}

/** The replay machine's state at one point of the trace. */
export interface PressureSample {
  /** The trace line just replayed. */
  readonly line: number;
  /** Seconds since the trace's first event. */
  readonly time: number;
  /** Live streaming mappings and allocations the replay holds. */
  readonly live: number;
  /** IOVA space those live mappings take, bytes (granule-rounded); 0 without an IOMMU. */
  readonly iovaBytes: number;
  /** Ranges in the IOVA trees (live, cached for reuse, or waiting in flush queues). */
  readonly iovaRanges: number;
  /** swiotlb slots in use (2 KiB each). */
  readonly swiotlbSlots: number;
  /** IOTLB invalidations so far (range, domain and global). */
  readonly iotlbInvalidations: number;
  /** IOVAs waiting in flush queues (lazy mode). */
  readonly flushQueued: number;
}

/** Where the replay machine's results agree with the traced kernel's. */
export interface ReplayFidelity {
  /** Single mappings replayed, and how many got the traced DMA address. */
  singleMaps: number;
  sameAddress: number;
  /** Scatterlist mappings replayed; how many mapped to as many segments, with the same lengths, at the same addresses. */
  sgMaps: number;
  sameSegmentCount: number;
  sameSegmentLengths: number;
  sameSegmentAddresses: number;
  /** Of those, maps whose entry lengths had to be inferred (entries merged in the trace). */
  sgLengthsInferred: number;
  /** swiotlb_bounced events in the trace, and mappings that bounced on the replay machine. */
  tracedBounces: number;
  replayBounces: number;
  /** The first differences, for the report. */
  readonly examples: Array<{ readonly line: number; readonly device: string; readonly traced: string; readonly replay: string }>;
}

/** Counts of a replay. */
export interface ReplayStats {
  events: number;
  replayed: number;
  /** Maps and allocations that failed on the replay machine (each also a `map-failed` finding). */
  failed: number;
  /** Maps the traced kernel failed: tried here, and how many would succeed. */
  tracedFailures: number;
  wouldSucceed: number;
  /** Events not replayed, by reason. */
  readonly skipped: Record<string, number>;
  /** iommu:map, unmap and io_page_fault events of the trace (the replay machine's IOMMU does its own). */
  iommuEvents: number;
  /** swiotlb_bounced events of the trace (compared with the replay's bounces, not replayed). */
  bounceEvents: number;
  /** Peaks over the whole replay. */
  peakLive: number;
  peakIovaBytes: number;
  /** swiotlb's own high-water mark, slots (0 without swiotlb). */
  swiotlbHiwater: number;
  swiotlbSlots: number;
}

/** What a replay found. */
export interface ReplayReport {
  readonly findings: ReplayFinding[];
  readonly stats: ReplayStats;
  readonly fidelity: ReplayFidelity;
  /** Up to MAX_SAMPLES evenly spaced samples of the machine's pressure. */
  readonly samples: PressureSample[];
  /** CPU entry lengths and DMA segment lengths of the replayed sg maps (bounded reservoirs), for the report's histogram. */
  readonly entryLengths: number[];
  readonly segmentLengths: number[];
}

const FRAGMENTER = OWNER_ID['fragmenter'];
const RESERVED = OWNER_ID['reserved'];

/**
 * Is an allocated page the trace's to use? Pages already claimed for it are; so are the
 * fragmenter's, which stand for other kernel users' memory (the trace's buffers are some of it):
 * they are relabelled as claimed.
 */
function isTracePage(meta: PageMeta, pfn: number): boolean {
  const owner = meta.ownerOf(pfn);
  if (owner === FRAGMENTER) meta.fill(meta.owner, RESERVED, pfn, pfn + 1);
  return owner === FRAGMENTER || owner === RESERVED;
}

/** Samples kept: when full, every other one goes and the stride doubles. */
const MAX_SAMPLES = 512;
/** Examples of address differences kept for the report. */
const MAX_EXAMPLES = 10;
/** Lengths kept for the histogram. */
const MAX_LENGTHS = 100_000;

/** A kernel log message of a replayed event: a WARN splat, a KERN_ERR line, or a dev_warn-level line. */
interface Logged { warn: boolean; err: boolean; text: string }

interface SingleLive { traced: number; sim: number; size: number; iova: number; line: number }
interface SgLive { sgt: SgTable; nents: number; tracedFirstDma: number; firstPhys: number; iova: number; line: number }

// INVARIANT: singles maps `device\0traced DMA address` to the replay machine's mapping of it, and
//   likewise coherent, pages and noncontig for allocations; sgByPhys maps `device\0first physical
//   address` to the live sg mappings starting there (newest last) and sgByDma `device\0traced first
//   DMA address` to the same records; live counts every record of these maps; liveIova is the sum of
//   their `iova` fields (granule-rounded IOVA bytes, 0 without an IOMMU).
/**
 * Replays events on a machine. Feed events in trace order with `add`, then `finish()`.
 * @example
 * const { machine } = buildMachine(replayMachineConfig(scan, { iommu: 'strict' }).config);
 * const r = new TraceReplayer(machine);
 * for await (const ev of parseFtrace('trace.txt')) r.add(ev);
 * const { findings, samples } = r.finish();
 */
export class TraceReplayer {
  readonly machine: Machine;
  readonly findings: ReplayFinding[] = [];
  readonly stats: ReplayStats = {
    events: 0, replayed: 0, failed: 0, tracedFailures: 0, wouldSucceed: 0, skipped: {}, iommuEvents: 0, bounceEvents: 0, peakLive: 0, peakIovaBytes: 0, swiotlbHiwater: 0, swiotlbSlots: 0,
  };
  readonly fidelity: ReplayFidelity = {
    singleMaps: 0, sameAddress: 0, sgMaps: 0, sameSegmentCount: 0, sameSegmentLengths: 0, sameSegmentAddresses: 0, sgLengthsInferred: 0, tracedBounces: 0, replayBounces: 0, examples: [],
  };
  readonly samples: PressureSample[] = [];
  private readonly _entryLengths: number[] = [];
  private readonly _segmentLengths: number[] = [];
  private readonly _singles = new Map<string, SingleLive>();
  private readonly _coherent = new Map<string, { buf: CoherentBuffer; size: number }>();
  private readonly _pages = new Map<string, { pages: DmaPages; size: number }>();
  private readonly _noncontig = new Map<string, { sgt: SgTable; size: number }>();
  private readonly _sgByPhys = new Map<string, SgLive[]>();
  private readonly _sgByDma = new Map<string, SgLive>();
  private _live = 0;
  private _liveIova = 0;
  private _stride = 1;
  private _sinceSample = 0;
  private _t0 = NaN;
  private _lastLine = 0;
  private _cpusNoted = false;
  private _lastTime = NaN;
  private _finished = false;
  private readonly _devices = new Map<string, Device>();
  private readonly _granule: number;
  private readonly _mask: number | undefined;

  /**
   * @param machine the replay machine (see replayMachineConfig); devices the trace names that it
   *   lacks are added on first sight as `inferDevice` makes them (64-bit unless `opts.mask`
   *   says otherwise, the kernel's defaults).
   * @param notes where those devices' assumptions are written.
   */
  readonly notes: string[];

  constructor(machine: Machine, notes: string[] = [], opts: { readonly mask?: number } = {}) {
    if (!(machine instanceof Machine)) throw new KernelError(EINVAL, 'TraceReplayer', `expected a dmasim Machine, got ${machine === null ? 'null' : typeof machine}`, 'machine');
    if (!Array.isArray(notes)) throw new KernelError(EINVAL, 'TraceReplayer', 'expected an array for the notes', 'notes');
    if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'TraceReplayer', 'expected an options object', 'opts');
    if (opts.mask !== undefined && (!Number.isInteger(opts.mask) || opts.mask < 1 || opts.mask > 64)) throw new KernelError(EINVAL, 'TraceReplayer', `mask is a number of bits from 1 to 64, got ${String(opts.mask)}`, 'opts.mask');
    this._mask = opts.mask;
    this.machine = machine;
    this.notes = notes;
    this._granule = machine.iommu?.granule ?? PAGE_SIZE;
    // Every error dma-debug finds is wanted, not the first per driver.
    if (machine.dmaDebug !== null) machine.dmaDebug.all_errors = 1;
    for (const bus of machine.buses) for (const d of bus.devices.values()) this._devices.set(d.name, d);
    // Count bounces as the kernel's swiotlb_bounced tracepoint does: one per attempt to bounce a
    // buffer (each sg entry), before slots are searched.
    const b = machine.dma.bouncer;
    if (b !== null) {
      const counted = Object.create(b) as Bouncer;
      const fi = this.fidelity;
      counted.map = (dev, phys, size, dir, attrs) => { fi.replayBounces++; return b.map(dev, phys, size, dir, attrs); };
      counted.mapAligned = (dev, phys, size, mask, dir, attrs) => { fi.replayBounces++; return b.mapAligned(dev, phys, size, mask, dir, attrs); };
      machine.dma.bouncer = counted;
    }
  }

  private _dev(name: string, line: number): Device {
    let d = this._devices.get(name);
    if (d === undefined) {
      const { bus, ...opts } = inferDevice(newTraceDevice(name, line), this._mask, this.notes);
      d = (this.machine.bus(bus ?? 'pci') ?? this.machine.pci).addDevice(opts);
      this._devices.set(name, d);
    }
    return d;
  }

  private _skip(why: string): void {
    this.stats.skipped[why] = (this.stats.skipped[why] ?? 0) + 1;
  }

  /**
   * Take the physical pages of [phys, phys + size) out of free memory (once): true when they are
   * RAM the replay may use, false when the machine has no RAM there or uses a page itself.
   */
  private _claim(phys: number, size: number): boolean {
    const mm = this.machine.mm;
    const first = Math.floor(phys / PAGE_SIZE);
    const last = Math.floor((phys + Math.max(1, size) - 1) / PAGE_SIZE);
    if (!mm.isRam(first * PAGE_SIZE, (last - first + 1) * PAGE_SIZE)) { this._skip('physical address not RAM on the replay machine'); return false; }
    const meta = mm.meta;
    for (let pfn = first; pfn <= last; pfn++) {
      if ((meta.stateOf(pfn) & PG_ALLOCATED) === 0) {
        if (!mm.memblockReserve(pfn * PAGE_SIZE, PAGE_SIZE, 'reserved')) { this._skip('physical page not free on the replay machine'); return false; }
      } else if (!isTracePage(meta, pfn)) {
        this._skip(`physical page the replay machine uses itself (${OWNERS[meta.ownerOf(pfn)] ?? 'unknown'})`); return false;
      }
    }
    return true;
  }

  /** The kernel log's count of messages so far (dropped ones included). */
  private _klogMark(): number {
    const k = this.machine.klog;
    return k.dropped + k.messages.length;
  }

  /** The WARNs and errors the kernel logged since `mark`, as text. */
  private _klogSince(mark: number): Logged[] {
    const k = this.machine.klog;
    const n = k.dropped + k.messages.length - mark;
    if (n <= 0) return [];
    const out: Logged[] = [];
    for (const m of k.messages.slice(Math.max(0, k.messages.length - n))) {
      if (m.kind === 'WARN' || m.level === 'err' || m.level === 'warn') out.push({ warn: m.kind === 'WARN', err: m.level === 'err', text: m.message.trimEnd() });
    }
    return out;
  }

  /** IOVA bytes a mapping of [addr, addr + size) takes on this machine (0 when it is not behind an IOMMU). */
  private _iovaOf(dev: Device, addr: number, size: number): number {
    if (this.machine.iommu === null || this.machine.iommu.dmaDomainOf(dev)?.iovad == null) return 0;
    const g = this._granule;
    const off = addr % g;
    return Math.ceil((size + off) / g) * g;
  }

  private _hold(iova: number): void {
    this._live++;
    this._liveIova += iova;
    if (this._live > this.stats.peakLive) this.stats.peakLive = this._live;
    if (this._liveIova > this.stats.peakIovaBytes) this.stats.peakIovaBytes = this._liveIova;
  }

  private _drop(iova: number): void {
    this._live--;
    this._liveIova -= iova;
  }

  private _fail(dev: string, line: number, what: string, logged: Array<{ text: string }>): void {
    this.stats.failed++;
    this.findings.push({ kind: 'map-failed', device: dev, lines: [line], message: `${what} fails on the replay machine${logged.length === 0 ? ' (DMA_MAPPING_ERROR, with nothing in the kernel log)' : `: ${logged.map((l) => l.text).join(' / ')}`}` });
  }

  /**
   * WARNs and errors the kernel logged while replaying a line the trace check did not already flag
   * (dev_warn-level notes alone are not findings; they explain a failure when there is one).
   */
  private _reports(dev: string, line: number, logged: Logged[], flagged: boolean): void {
    if (flagged) return;
    for (const l of logged) {
      if (!l.warn && !l.err) continue;
      const kind: ReplayFindingKind = l.text.startsWith('DMA-API:') ? 'dma-debug' : 'warn';
      this.findings.push({ kind, device: dev, lines: [line], message: kind === 'warn' && l.warn ? `WARN: ${l.text}` : l.text });
    }
  }

  private _example(line: number, device: string, traced: string, replay: string): void {
    if (this.fidelity.examples.length < MAX_EXAMPLES) this.fidelity.examples.push({ line, device, traced, replay });
  }

  private _keepLength(into: number[], v: number): void {
    if (into.length < MAX_LENGTHS) into.push(v);
  }

  /**
   * Replay one event. `flagged`: the offline trace check already reported this line (its
   * replay-machine reports would repeat that one, so they are left out).
   */
  add(ev: FtraceEvent, flagged = false): void {
    if (typeof ev !== 'object' || ev === null || typeof (ev as { event?: unknown }).event !== 'string' || typeof (ev as { line?: unknown }).line !== 'number') {
      throw new KernelError(EINVAL, 'TraceReplayer.add', 'expected a parsed trace event (parseFtrace, parseFtraceLine)', 'ev');
    }
    if (this._finished) throw new KernelError(EINVAL, 'TraceReplayer.add', 'the replay is finished (finish() was called)', 'ev');
    if (typeof flagged !== 'boolean') throw new KernelError(EINVAL, 'TraceReplayer.add', `flagged is true or false, got ${String(flagged)}`, 'flagged');
    this.stats.events++;
    const m = this.machine;
    // The trace's clock and CPU drive the machine's: lazy flush queues time out as they did.
    if (Number.isNaN(this._t0)) this._t0 = ev.timestamp;
    const at = Math.round((ev.timestamp - this._t0) * 1e9);
    if (at > m.clock.now) m.clock.advance(at - m.clock.now);
    if (ev.cpu >= m.cpus && !this._cpusNoted) {
      this._cpusNoted = true;
      this.notes.push(`CPUs: the trace runs on CPU ${ev.cpu} (line ${ev.line}) but the replay machine has ${m.cpus}: events of CPU n replay on CPU n mod ${m.cpus} (per-CPU IOVA caches differ from the traced kernel's)`);
    }
    m.currentCpu = ev.cpu % m.cpus;
    const mark = this._klogMark();
    try {
      this._replay(ev, mark, flagged);
    } catch (e) {
      if (e instanceof KernelBug) {
        // What the kernel BUGs on (a free of the wrong size reaching the page allocator: "Bad page
        // state") happens on the replay machine too: a finding, and the replay goes on.
        this.findings.push({ kind: 'warn', device: 'device' in ev ? ev.device : '', lines: [ev.line], message: `BUG in ${e.fn} on the replay machine: ${e.message}` });
        this._skip('hit a kernel BUG on the replay machine');
      } else {
        // Bad input to a layer (a size the kernel would refuse, an address it cannot map): the
        // layer left no state behind; the event is skipped with the layer's reason.
        if (!(e instanceof KernelError)) throw e;
        this._skip(`refused by ${e.fn}${e.arg === undefined ? '' : ` (${e.arg})`}: -${errnoName(e.errno)}`);
      }
    }
    this._lastLine = ev.line;
    this._lastTime = ev.timestamp;
    if (++this._sinceSample >= this._stride) this._sample(ev.line, ev.timestamp);
  }

  private _replay(ev: FtraceEvent, mark: number, flagged: boolean): void {
    switch (ev.event) {
      case 'dma_map_phys': {
        const dev = this._dev(ev.device, ev.line);
        const failedThere = ev.dma_addr === DMA_MAPPING_ERROR;
        // An MMIO mapping (dma_map_resource before 6.18) names device memory, not RAM: nothing to
        // claim, but where the replay machine has RAM at that address (no PCI hole there) its
        // dma-debug would call it RAM, so it is not replayed.
        if ((ev.attrs & DMA_ATTR_MMIO) !== 0) {
          if (this.machine.mm.isRam(Math.floor(ev.phys_addr / PAGE_SIZE) * PAGE_SIZE, PAGE_SIZE)) { this._skip('MMIO address that is RAM on the replay machine'); return; }
        } else if (!this._claim(ev.phys_addr, ev.size)) return;
        const a = dma_map_phys(dev, ev.phys_addr, ev.size, ev.dir, ev.attrs);
        const bad = dma_mapping_error(dev, a) !== 0;
        const logged = this._klogSince(mark);
        if (failedThere) {
          this.stats.tracedFailures++;
          if (!bad) { this.stats.wouldSucceed++; dma_unmap_phys(dev, a, ev.size, ev.dir, ev.attrs); }
          return;
        }
        this.stats.replayed++;
        if (bad) { this._fail(ev.device, ev.line, `dma_map_phys of ${ev.size} bytes at phys 0x${ev.phys_addr.toString(16)}`, logged); return; }
        this.fidelity.singleMaps++;
        if (a === ev.dma_addr) this.fidelity.sameAddress++;
        else this._example(ev.line, ev.device, `dma_addr=0x${ev.dma_addr.toString(16)}`, `dma_addr=0x${a.toString(16)}`);
        const iova = this._iovaOf(dev, a, ev.size);
        const key = `${ev.device}\0${ev.dma_addr}`;
        const prev = this._singles.get(key);
        if (prev !== undefined) this._drop(prev.iova); // the trace mapped it twice: keep the newest
        this._singles.set(key, { traced: ev.dma_addr, sim: a, size: ev.size, iova, line: ev.line });
        this._hold(iova);
        this._reports(ev.device, ev.line, logged, flagged);
        return;
      }
      case 'dma_unmap_phys': {
        const key = `${ev.device}\0${ev.addr}`;
        const s = this._singles.get(key);
        if (s === undefined) { this._skip('release of a mapping the replay does not hold'); return; }
        const dev = this._dev(ev.device, ev.line);
        this._singles.delete(key);
        this._drop(s.iova);
        this.stats.replayed++;
        dma_unmap_phys(dev, s.sim, ev.size, ev.dir, ev.attrs);
        this._reports(ev.device, ev.line, this._klogSince(mark), flagged);
        return;
      }
      case 'dma_sync_single_for_cpu':
      case 'dma_sync_single_for_device': {
        const found = this._singleAt(ev.device, ev.dma_addr);
        if (found === undefined) { this._skip('sync of a mapping the replay does not hold'); return; }
        const dev = this._dev(ev.device, ev.line);
        this.stats.replayed++;
        const addr = found.sim + (ev.dma_addr - found.traced);
        if (ev.event === 'dma_sync_single_for_cpu') dma_sync_single_for_cpu(dev, addr, ev.size, ev.dir);
        else dma_sync_single_for_device(dev, addr, ev.size, ev.dir);
        this._reports(ev.device, ev.line, this._klogSince(mark), flagged);
        return;
      }
      case 'dma_map_sg':
        this._mapSg(ev, mark, flagged);
        return;
      case 'dma_map_sg_err':
        this._dev(ev.device, ev.line);
        this.stats.tracedFailures++;
        this._skip('failed dma_map_sg (the trace does not record its lengths)');
        return;
      case 'dma_unmap_sg': {
        const key = `${ev.device}\0${ev.addrs[0] ?? -1}`;
        const list = this._sgByPhys.get(key);
        const s = list?.pop();
        if (list !== undefined && list.length === 0) this._sgByPhys.delete(key);
        if (s === undefined) { this._skip('release of a mapping the replay does not hold'); return; }
        const dev = this._dev(ev.device, ev.line);
        this._sgByDma.delete(`${ev.device}\0${s.tracedFirstDma}`);
        this._drop(s.iova);
        this.stats.replayed++;
        dma_unmap_sg_attrs(dev, s.sgt.sgl, s.nents, ev.dir, ev.attrs);
        sg_free_table(s.sgt);
        this._reports(ev.device, ev.line, this._klogSince(mark), flagged);
        return;
      }
      case 'dma_sync_sg_for_cpu':
      case 'dma_sync_sg_for_device': {
        const s = this._sgByDma.get(`${ev.device}\0${ev.dma_addrs[0] ?? -1}`);
        if (s === undefined) { this._skip('sync of a mapping the replay does not hold'); return; }
        const dev = this._dev(ev.device, ev.line);
        this.stats.replayed++;
        if (ev.event === 'dma_sync_sg_for_cpu') dma_sync_sg_for_cpu(dev, s.sgt.sgl as Scatterlist, s.nents, ev.dir);
        else dma_sync_sg_for_device(dev, s.sgt.sgl as Scatterlist, s.nents, ev.dir);
        this._reports(ev.device, ev.line, this._klogSince(mark), flagged);
        return;
      }
      case 'dma_alloc':
      case 'dma_alloc_pages': {
        const dev = this._dev(ev.device, ev.line);
        const failedThere = isNullPointer(ev.virt_addr);
        const key = `${ev.device}\0${ev.dma_addr}`;
        if (ev.event === 'dma_alloc') {
          const buf = dma_alloc_attrs(dev, ev.size, GFP_KERNEL, ev.attrs);
          const logged = this._klogSince(mark);
          if (failedThere) { this._tracedFailure(buf !== null, () => dma_free_attrs(dev, ev.size, buf as CoherentBuffer, ev.attrs)); return; }
          this.stats.replayed++;
          if (buf === null) { this._fail(ev.device, ev.line, `dma_alloc_coherent of ${ev.size} bytes`, logged); return; }
          this._coherent.set(key, { buf, size: ev.size });
          this._hold(this._iovaOf(dev, buf.dma_handle, ev.size));
          this._reports(ev.device, ev.line, logged, flagged);
        } else {
          const pages = dma_alloc_pages(dev, ev.size, ev.dir, GFP_KERNEL);
          const logged = this._klogSince(mark);
          if (failedThere) { this._tracedFailure(pages !== null, () => dma_free_pages(dev, ev.size, (pages as DmaPages).page, (pages as DmaPages).dma_handle, ev.dir)); return; }
          this.stats.replayed++;
          if (pages === null) { this._fail(ev.device, ev.line, `dma_alloc_pages of ${ev.size} bytes`, logged); return; }
          this._pages.set(key, { pages, size: ev.size });
          this._hold(this._iovaOf(dev, pages.dma_handle, ev.size));
          this._reports(ev.device, ev.line, logged, flagged);
        }
        return;
      }
      case 'dma_free':
      case 'dma_free_pages': {
        const key = `${ev.device}\0${ev.dma_addr}`;
        const dev = this._dev(ev.device, ev.line);
        if (ev.event === 'dma_free') {
          const c = this._coherent.get(key);
          if (c === undefined) { this._skip('release of a mapping the replay does not hold'); return; }
          this._coherent.delete(key);
          this._drop(this._iovaOf(dev, c.buf.dma_handle, c.size));
          dma_free_attrs(dev, ev.size, c.buf, ev.attrs);
        } else {
          const p = this._pages.get(key);
          if (p === undefined) { this._skip('release of a mapping the replay does not hold'); return; }
          this._pages.delete(key);
          this._drop(this._iovaOf(dev, p.pages.dma_handle, p.size));
          dma_free_pages(dev, ev.size, p.pages.page, p.pages.dma_handle, ev.dir);
        }
        this.stats.replayed++;
        this._reports(ev.device, ev.line, this._klogSince(mark), flagged);
        return;
      }
      case 'dma_alloc_sgt': {
        const dev = this._dev(ev.device, ev.line);
        const sgt = dma_alloc_noncontiguous(dev, ev.size, ev.dir, GFP_KERNEL, ev.attrs);
        const logged = this._klogSince(mark);
        this.stats.replayed++;
        if (sgt === null) { this._fail(ev.device, ev.line, `dma_alloc_noncontiguous of ${ev.size} bytes`, logged); return; }
        this._noncontig.set(`${ev.device}\0${ev.dma_addr}`, { sgt, size: ev.size });
        this._hold(this._iovaOf(dev, sg_dma_address(sgt.sgl as Scatterlist), ev.size));
        this._reports(ev.device, ev.line, logged, flagged);
        return;
      }
      case 'dma_alloc_sgt_err': {
        const dev = this._dev(ev.device, ev.line);
        const sgt = dma_alloc_noncontiguous(dev, ev.size, ev.dir, GFP_KERNEL, ev.attrs);
        this._tracedFailure(sgt !== null, () => dma_free_noncontiguous(dev, ev.size, sgt as SgTable, ev.dir));
        return;
      }
      case 'dma_free_sgt': {
        const key = `${ev.device}\0${ev.dma_addr}`;
        const a = this._noncontig.get(key);
        if (a === undefined) { this._skip('release of a mapping the replay does not hold'); return; }
        const dev = this._dev(ev.device, ev.line);
        this._noncontig.delete(key);
        this._drop(this._iovaOf(dev, sg_dma_address(a.sgt.sgl as Scatterlist), a.size));
        this.stats.replayed++;
        dma_free_noncontiguous(dev, ev.size, a.sgt, ev.dir);
        this._reports(ev.device, ev.line, this._klogSince(mark), flagged);
        return;
      }
      case 'swiotlb_bounced':
        this.fidelity.tracedBounces++;
        this.stats.bounceEvents++;
        return;
      default:
        // iommu:map/unmap/io_page_fault: the replay machine's own IOMMU does that work; counted.
        this.stats.iommuEvents++;
    }
  }

  private _tracedFailure(succeeded: boolean, release: () => void): void {
    this.stats.tracedFailures++;
    if (!succeeded) return;
    this.stats.wouldSucceed++;
    release();
  }

  /** The live single mapping of `device` that holds traced address `addr`: exact first, then containing. */
  private _singleAt(device: string, addr: number): SingleLive | undefined {
    const exact = this._singles.get(`${device}\0${addr}`);
    if (exact !== undefined) return exact;
    const prefix = `${device}\0`;
    for (const [k, s] of this._singles) if (addr >= s.traced && addr < s.traced + s.size && k.startsWith(prefix)) return s;
    return undefined;
  }

  private _mapSg(ev: DmaMapSgEvent, mark: number, flagged: boolean): void {
    const dev = this._dev(ev.device, ev.line);
    if (ev.truncated || ev.phys_addrs.length < ev.full_nents) { this._skip('dma_map_sg cut at 128 entries by the tracer'); return; }
    const n = ev.full_nents;
    const lengths = entryLengths(ev, this._granule);
    if (lengths === null) { this._skip('dma_map_sg whose entry lengths cannot be rebuilt'); return; }
    for (let i = 0; i < n; i++) if (!this._claim(ev.phys_addrs[i] as number, lengths[i] as number)) { return; }
    const sgt = new SgTable(this.machine);
    if (sg_alloc_table(sgt, n, GFP_KERNEL) !== 0) { this._skip('no memory for the scatterlist'); return; }
    let sg: Scatterlist | null = sgt.sgl;
    for (let i = 0; i < n && sg !== null; i++, sg = sg_next(sg)) {
      const p = ev.phys_addrs[i] as number;
      sg_set_page(sg, Math.floor(p / PAGE_SIZE), lengths[i] as number, p % PAGE_SIZE);
      this._keepLength(this._entryLengths, lengths[i] as number);
    }
    const count = dma_map_sg_attrs(dev, sgt.sgl, n, ev.dir, ev.attrs);
    const logged = this._klogSince(mark);
    this.stats.replayed++;
    if (count <= 0) {
      sg_free_table(sgt);
      this._fail(ev.device, ev.line, `dma_map_sg of ${n} entries (${lengths.reduce((a, b) => a + b, 0)} bytes)`, logged);
      return;
    }
    const f = this.fidelity;
    f.sgMaps++;
    if (ev.full_ents < n) f.sgLengthsInferred++;
    const dma: number[] = [];
    const lens: number[] = [];
    for (let s: Scatterlist | null = sgt.sgl; s !== null && dma.length < count; s = sg_next(s)) {
      dma.push(sg_dma_address(s));
      lens.push(sg_dma_len(s));
      this._keepLength(this._segmentLengths, sg_dma_len(s));
    }
    const sameCount = count === ev.full_ents;
    const sameLengths = sameCount && lens.every((l, i) => l === ev.lengths[i]);
    const sameAddrs = sameCount && dma.every((a, i) => a === ev.dma_addrs[i]);
    if (sameCount) f.sameSegmentCount++;
    if (sameLengths) f.sameSegmentLengths++;
    if (sameAddrs) f.sameSegmentAddresses++;
    if (!sameLengths || !sameAddrs) {
      const show = (as: readonly number[], ls: readonly number[]): string => `${ls.length} segment${ls.length === 1 ? '' : 's'} ${as.slice(0, 4).map((a, i) => `0x${a.toString(16)}+${ls[i]}`).join(' ')}${ls.length > 4 ? ' ...' : ''}`;
      this._example(ev.line, ev.device, show(ev.dma_addrs, ev.lengths), show(dma, lens));
    }
    const iova = lens.reduce((t, l, i) => t + this._iovaOf(dev, dma[i] as number, l), 0);
    const rec: SgLive = { sgt, nents: n, tracedFirstDma: ev.dma_addrs[0] ?? -1, firstPhys: ev.phys_addrs[0] as number, iova, line: ev.line };
    const key = `${ev.device}\0${rec.firstPhys}`;
    const list = this._sgByPhys.get(key) ?? [];
    list.push(rec);
    this._sgByPhys.set(key, list);
    this._sgByDma.set(`${ev.device}\0${rec.tracedFirstDma}`, rec);
    this._hold(iova);
    this._reports(ev.device, ev.line, logged, flagged);
  }

  private _sample(line: number, timestamp: number): void {
    this._sinceSample = 0;
    const m = this.machine;
    let iovaRanges = 0;
    let flushQueued = 0;
    for (const d of m.iommu?.domains ?? []) {
      if (d.iovad !== null) iovaRanges += d.iovad.rbroot.count - 1; // less the anchor
      if (d.fq !== null) flushQueued += d.fq.pending;
    }
    const tlb = m.iommu?.iotlb;
    const slots = m.swiotlb?.io_tlb_used ?? 0;
    this.samples.push({
      line, time: timestamp - this._t0, live: this._live, iovaBytes: this._liveIova, iovaRanges, swiotlbSlots: slots,
      iotlbInvalidations: tlb === undefined ? 0 : tlb.invalidations + tlb.domainFlushes + tlb.globalFlushes, flushQueued,
    });
    if (this.samples.length >= MAX_SAMPLES) {
      // Keep every other sample and sample half as often: bounded memory, even spacing.
      let w = 0;
      for (let r = 1; r < this.samples.length; r += 2) this.samples[w++] = this.samples[r] as PressureSample;
      this.samples.length = w;
      this._stride *= 2;
    }
  }

  /** End of the trace: the report. What the trace leaves mapped stays mapped (the trace check reports leaks). */
  finish(): ReplayReport {
    if (!this._finished) {
      // The last sample is the machine as the trace leaves it (totals, not a sample's).
      if (this.stats.events > 0 && this._sinceSample > 0) this._sample(this._lastLine, this._lastTime);
      this._finished = true;
      const pool = this.machine.swiotlb;
      this.stats.swiotlbHiwater = pool?.io_tlb_used_hiwater ?? 0;
      this.stats.swiotlbSlots = pool?.io_tlb_nslabs ?? 0;
    }
    return { findings: this.findings, stats: this.stats, fidelity: this.fidelity, samples: this.samples, entryLengths: this._entryLengths, segmentLengths: this._segmentLengths };
  }
}

/**
 * Before a replay: take every page a trace names out of the machine's free memory (owner
 * `reserved`), so nothing the machine allocates while replaying (page tables, pools) lands on
 * them. Pages the machine already uses are left to TraceReplayer's per-event check (those events
 * are skipped, with the owner named).
 * @example claimPages(machine, scan.pages)
 */
export function claimPages(machine: Machine, pages: PageSet): void {
  if (!(machine instanceof Machine)) throw new KernelError(EINVAL, 'claimPages', 'expected a dmasim Machine', 'machine');
  if (!(pages instanceof PageSet)) throw new KernelError(EINVAL, 'claimPages', 'expected the PageSet of a TraceScan', 'pages');
  const mm = machine.mm;
  const meta = mm.meta;
  for (const [start, end] of pages.runs()) {
    for (let pfn = start; pfn < end;) {
      if (!mm.isRam(pfn * PAGE_SIZE, PAGE_SIZE)) { pfn++; continue; }
      if ((meta.stateOf(pfn) & PG_ALLOCATED) !== 0) {
        isTracePage(meta, pfn);
        pfn++;
        continue;
      }
      // The longest free stretch from pfn within the run, reserved in one carve (page by page when
      // it crosses a zone).
      let stop = pfn + 1;
      while (stop < end && mm.isRam(stop * PAGE_SIZE, PAGE_SIZE) && (meta.stateOf(stop) & PG_ALLOCATED) === 0) stop++;
      if (!mm.memblockReserve(pfn * PAGE_SIZE, (stop - pfn) * PAGE_SIZE, 'reserved')) {
        for (let p = pfn; p < stop; p++) mm.memblockReserve(p * PAGE_SIZE, PAGE_SIZE, 'reserved');
      }
      pfn = stop;
    }
  }
}

/**
 * Each entry's length for a traced dma_map_sg: the segment lengths when nothing merged; when
 * entries merged into segment j, its entries but the last end at their granule (what merging
 * needs) and the last takes the rest. Null when the trace's numbers do not fit that shape.
 */
export function entryLengths(ev: DmaMapSgEvent, granule: number): number[] | null {
  const n = ev.full_nents;
  const ents = ev.full_ents;
  if (ev.lengths.length < ents || ev.dma_addrs.length < ents) return null;
  if (ents === n) return ev.lengths.slice(0, n);
  // Walk the entries: segment j starts at the entry whose offset in its granule matches the
  // segment's DMA address (dma-iommu keeps the first entry's offset); entries after it that start
  // a granule are merged into it until the segment's length is used up.
  const out: number[] = [];
  let i = 0;
  for (let j = 0; j < ents; j++) {
    let left = ev.lengths[j] as number;
    const segsLeft = ents - j - 1;
    // The entries this segment may take: all but one for each later segment.
    const maxEntries = n - i - segsLeft;
    if (maxEntries <= 0) return null;
    let taken = 0;
    while (taken < maxEntries) {
      const p = ev.phys_addrs[i + taken] as number;
      const room = granule - (p % granule);
      const lastHere = taken === maxEntries - 1 || left <= room || (ev.phys_addrs[i + taken + 1] as number) % granule !== 0;
      if (lastHere) { out.push(left); left = 0; taken++; break; }
      out.push(room);
      left -= room;
      taken++;
    }
    if (left !== 0 || (out[out.length - 1] as number) <= 0) return null;
    i += taken;
  }
  return i === n ? out : null;
}
