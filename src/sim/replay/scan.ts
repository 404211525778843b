/**
 * @module replay/scan
 * What a trace says about the machine it came from, read in one streaming pass before a replay:
 * the devices (bus from the name; the DMA mask where a `swiotlb_bounced` event prints it; the
 * longest segment the traced kernel built; whether their addresses were the physical ones), the
 * highest physical address and CPU number, and the time span. `replayMachineConfig` turns it into a
 * machine that can hold the trace, saying what it had to assume.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { DMA_MAPPING_ERROR } from '../../dma/debug/state.ts';
import { DMA_ATTR_MMIO } from '../../dma/api/attrs.ts';
import type { DeviceConfig, MachineConfig } from '../config.ts';
import type { FtraceEvent } from './events.ts';

/** One device as the trace shows it. */
export interface TraceDeviceSeen {
  readonly name: string;
  /** `pci` when the name is a PCI address (dddd:bb:dd.f), else `platform`. */
  readonly bus: 'pci' | 'platform';
  /** The line the device first appears on. */
  readonly firstLine: number;
  /** The DMA mask a `swiotlb_bounced` event printed for it (exact), else undefined. */
  dmaMask: number | undefined;
  /** The longest DMA segment the traced kernel gave it (sg mappings, after merging), bytes. */
  maxSegment: number;
  /** Single mappings whose DMA address was their physical address (dma-direct with no offset). */
  direct: number;
  /** Single mappings given another address (an IOMMU, a bounce or a bus offset). */
  remapped: number;
  /** `swiotlb_bounced` events for it. */
  bounced: number;
}

// INVARIANT: bit p of words is set ⇔ page frame p holds part of a range some event names; words
//   grows by doubling and never past MAX_TRACKED_PFN / 32 words.
/**
 * The physical pages a trace names, as a growable bitmap (4 GiB of RAM cost 128 KiB of it).
 * @example const s = new PageSet(); s.addRange(0x1000, 8192); [...s.runs()] // [[1, 3]]
 */
export class PageSet {
  words = new Uint32Array(1024);
  /** Ranges above MAX_TRACKED_PFN were not recorded. */
  untracked = 0;

  /** Mark the pages of [phys, phys + size). */
  addRange(phys: number, size: number): void {
    const first = Math.floor(phys / 4096);
    const last = Math.floor((phys + Math.max(1, size) - 1) / 4096);
    if (last >= MAX_TRACKED_PFN) { this.untracked++; return; }
    const need = (last >>> 5) + 1;
    if (need > this.words.length) {
      let n = this.words.length;
      while (n < need) n *= 2;
      const w = new Uint32Array(n);
      w.set(this.words);
      this.words = w;
    }
    for (let p = first; p <= last; p++) (this.words as Uint32Array)[p >>> 5] = ((this.words[p >>> 5] as number) | (1 << (p & 31))) >>> 0;
  }

  /** The marked pages as [first pfn, end pfn) runs, ascending. */
  *runs(): Generator<[number, number]> {
    const w = this.words;
    let start = -1;
    for (let i = 0; i < w.length; i++) {
      const v = w[i] as number;
      if (v === 0 && start < 0) continue;
      if (v === 0xffffffff && start >= 0) continue;
      for (let b = 0; b < 32; b++) {
        const set = (v & (1 << b)) !== 0;
        const p = i * 32 + b;
        if (set && start < 0) start = p;
        else if (!set && start >= 0) { yield [start, p]; start = -1; }
      }
    }
    if (start >= 0) yield [start, w.length * 32];
  }
}

/** Pages past this (4 TiB) are not recorded in a PageSet (the bitmap would pass 128 MiB). */
export const MAX_TRACKED_PFN = 2 ** 30;

/** What a scan found. */
export interface TraceScan {
  readonly devices: Map<string, TraceDeviceSeen>;
  /** Every physical page an event names (the replay machine keeps them out of its own use). */
  readonly pages: PageSet;
  /** The end of the highest physical range any event names (0 when none). */
  maxPhysEnd: number;
  /** The highest CPU number on an event line (-1 when none). */
  maxCpu: number;
  /** The first and last timestamps, seconds (NaN when the trace is empty). */
  firstTime: number;
  lastTime: number;
  events: number;
}

const PCI_NAME = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;

/**
 * The bus a traced device name belongs to: `pci` for a PCI address (dddd:bb:dd.f), else `platform`.
 * @example traceDeviceBus('0000:01:00.0') // 'pci'
 */
export function traceDeviceBus(name: string): 'pci' | 'platform' {
  return PCI_NAME.test(name) ? 'pci' : 'platform';
}

/** A device first seen at `line`, with nothing known of it yet. */
export function newTraceDevice(name: string, line: number): TraceDeviceSeen {
  return { name, bus: traceDeviceBus(name), firstLine: line, dmaMask: undefined, maxSegment: 0, direct: 0, remapped: 0, bounced: 0 };
}

/**
 * Accumulates a TraceScan, one event at a time.
 * @example
 * const s = new TraceScanner();
 * for await (const ev of parseFtrace('trace.txt')) s.add(ev);
 * s.scan.devices.get('0000:01:00.0')?.dmaMask
 */
export class TraceScanner {
  readonly scan: TraceScan = { devices: new Map(), pages: new PageSet(), maxPhysEnd: 0, maxCpu: -1, firstTime: NaN, lastTime: NaN, events: 0 };

  private _dev(name: string, line: number): TraceDeviceSeen {
    let d = this.scan.devices.get(name);
    if (d === undefined) {
      d = newTraceDevice(name, line);
      this.scan.devices.set(name, d);
    }
    return d;
  }

  private _phys(start: number, size: number): void {
    if (start + size > this.scan.maxPhysEnd) this.scan.maxPhysEnd = start + size;
    this.scan.pages.addRange(start, size);
  }

  /** Take in one event. */
  add(ev: FtraceEvent): void {
    if (typeof ev !== 'object' || ev === null || typeof (ev as { event?: unknown }).event !== 'string') throw new KernelError(EINVAL, 'TraceScanner.add', 'expected a parsed trace event', 'ev');
    const s = this.scan;
    s.events++;
    if (Number.isNaN(s.firstTime)) s.firstTime = ev.timestamp;
    s.lastTime = ev.timestamp;
    if (ev.cpu > s.maxCpu) s.maxCpu = ev.cpu;
    switch (ev.event) {
      case 'dma_map_phys': {
        const d = this._dev(ev.device, ev.line);
        // MMIO (DMA_ATTR_MMIO, dma_map_resource before 6.18) is device memory: the machine needs no RAM there.
        if ((ev.attrs & DMA_ATTR_MMIO) === 0) this._phys(ev.phys_addr, ev.size);
        if (ev.dma_addr === DMA_MAPPING_ERROR) return;
        if (ev.dma_addr === ev.phys_addr) d.direct++;
        else d.remapped++;
        return;
      }
      case 'dma_map_sg': {
        const d = this._dev(ev.device, ev.line);
        for (const l of ev.lengths) if (l > d.maxSegment) d.maxSegment = l;
        // The entries' own lengths are not traced: a segment's start plus its length bounds them.
        for (let i = 0; i < ev.phys_addrs.length; i++) this._phys(ev.phys_addrs[i] as number, ev.lengths[i] ?? 4096);
        return;
      }
      case 'dma_alloc_sgt':
      case 'dma_free_sgt':
        this._dev(ev.device, ev.line);
        for (const p of ev.phys_addrs) this._phys(p, 4096);
        return;
      case 'swiotlb_bounced': {
        const d = this._dev(ev.dev_name, ev.line);
        d.bounced++;
        d.dmaMask = ev.dma_mask;
        return;
      }
      case 'map':
      case 'unmap':
        return;
      case 'io_page_fault':
        this._dev(ev.device, ev.line);
        return;
      default:
        this._dev(ev.device, ev.line);
    }
  }
}

/** How to build the machine a trace is replayed on. */
export interface ReplayMachineOptions {
  /** The machine to start from (a preset or a parsed machine file); default: one sized for the trace. */
  readonly machine?: MachineConfig;
  /** The IOMMU's DMA domains: strict or lazy invalidation, or no IOMMU at all. */
  readonly iommu?: 'strict' | 'lazy' | 'off';
  /** Bounce every streaming mapping through swiotlb (swiotlb=force). */
  readonly swiotlbForce?: boolean;
  /** Every trace device's DMA mask, in bits (1..64), instead of what the machine file or the trace says. */
  readonly mask?: number;
}

/** A machine description for a replay, and what was assumed to make it. */
export interface ReplayMachinePlan {
  readonly config: MachineConfig;
  /** One line per assumption (`0000:01:00.0: 64-bit DMA mask assumed (...)`). */
  readonly notes: string[];
}

const GiB = 2 ** 30;
/** Memory when nothing tells how much the trace needs (a trace read from standard input). */
export const REPLAY_DEFAULT_MEMORY = 64 * GiB;
/** The kernel's segment limit for a device that never set one (dma_get_max_seg_size: SZ_64K). */
const DEFAULT_MAX_SEGMENT = 65536;

/** A mask in bits from a mask value (0xffffffff -> 32). */
function maskBits(mask: number): number {
  if (mask === -1 || mask >= 2 ** 53) return 64;
  return Math.max(1, Math.ceil(Math.log2(mask + 1)));
}

/**
 * The machine to replay a trace on: `opts.machine` (else RAM rounded up to cover the trace's highest
 * physical address, at least 4 GiB), the IOMMU and swiotlb overrides, enough CPUs for the trace's
 * CPU numbers, and every device the trace names: the machine file's own where it has one, else
 * made from the trace (a swiotlb_bounced event's mask, else 64 bits; the longest traced segment,
 * else the kernel's 64 KiB), each assumption noted.
 * @example const { config, notes } = replayMachineConfig(scan, { iommu: 'strict' });
 */
export function replayMachineConfig(scan: TraceScan | null, opts: ReplayMachineOptions = {}): ReplayMachinePlan {
  if (scan !== null && (typeof scan !== 'object' || !(scan.devices instanceof Map) || !(scan.pages instanceof PageSet) || typeof scan.maxPhysEnd !== 'number')) {
    throw new KernelError(EINVAL, 'replayMachineConfig', 'expected a TraceScanner\'s scan, or null', 'scan');
  }
  if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'replayMachineConfig', 'expected an options object', 'opts');
  if (opts.machine !== undefined && (typeof opts.machine !== 'object' || opts.machine === null)) throw new KernelError(EINVAL, 'replayMachineConfig', 'expected a machine description object', 'opts.machine');
  if (opts.swiotlbForce !== undefined && typeof opts.swiotlbForce !== 'boolean') throw new KernelError(EINVAL, 'replayMachineConfig', `swiotlbForce is true or false, got ${String(opts.swiotlbForce)}`, 'opts.swiotlbForce');
  if (opts.iommu !== undefined && !['strict', 'lazy', 'off'].includes(opts.iommu)) throw new KernelError(EINVAL, 'replayMachineConfig', `iommu is strict, lazy or off, got ${String(opts.iommu)}`, 'opts.iommu');
  if (opts.mask !== undefined && (!Number.isInteger(opts.mask) || opts.mask < 1 || opts.mask > 64)) throw new KernelError(EINVAL, 'replayMachineConfig', `mask is a number of bits from 1 to 64, got ${String(opts.mask)}`, 'opts.mask');
  const notes: string[] = [];
  const base: MachineConfig = opts.machine ?? { memory: 0 };
  let memory = base.memory;
  if (opts.machine === undefined) {
    const need = scan === null ? REPLAY_DEFAULT_MEMORY : Math.max(4 * GiB, Math.ceil(scan.maxPhysEnd / GiB) * GiB);
    memory = need;
    notes.push(scan === null
      ? `memory: ${need / GiB} GiB (the trace comes from standard input, so it was not measured; give --machine for another size)`
      : scan.maxPhysEnd === 0 ? `memory: ${need / GiB} GiB (the trace names no RAM address)` : `memory: ${need / GiB} GiB, enough for the trace's highest physical address 0x${(scan.maxPhysEnd - 1).toString(16)}`);
  }
  let iommu = base.iommu;
  if (opts.iommu === 'off') iommu = false;
  else if (opts.iommu !== undefined) {
    const given = typeof base.iommu === 'object' ? base.iommu : {};
    // An x86 machine's IOMMU is VT-d (or AMD-Vi, whose 4 KiB IOVA rules are the same here).
    const format = given.format ?? (base.arch === 'arm64' ? undefined : 'vtd');
    iommu = { ...given, mode: opts.iommu, ...(format === undefined ? {} : { format }) };
    if (given.format === undefined && format !== undefined) notes.push(`IOMMU: ${format === 'vtd' ? 'VT-d second-stage page tables (an x86 machine; give a machine file with iommu.format for another)' : format}`);
  }
  let swiotlb = base.swiotlb;
  if (opts.swiotlbForce === true) {
    swiotlb = typeof swiotlb === 'object' && swiotlb !== null ? { ...swiotlb, force: true } : typeof swiotlb === 'string' ? { size: swiotlb, force: true } : { force: true };
  }
  // CPUs: the machine file's, or as many as the trace uses (64 for a stream, not measured).
  const cpus = Math.min(1024, scan === null ? base.cpus ?? 64 : Math.max(base.cpus ?? 2, scan.maxCpu + 1));
  if (scan !== null && base.cpus !== undefined && cpus > base.cpus) notes.push(`CPUs: ${cpus}, not the machine file's ${base.cpus}: the trace runs on CPU ${scan.maxCpu}`);
  const devices: DeviceConfig[] = [];
  const fromFile = new Map((base.devices ?? []).map((d) => [d.name, d]));
  for (const d of base.devices ?? []) devices.push(opts.mask === undefined ? d : { ...d, dmaMask: opts.mask, coherentDmaMask: opts.mask });
  for (const seen of scan?.devices.values() ?? []) {
    if (fromFile.has(seen.name)) continue;
    devices.push(inferDevice(seen, opts.mask, notes));
  }
  const { devices: _ignored, ...rest } = base;
  const config: MachineConfig = {
    ...rest, memory, cpus, devices,
    ...(iommu === undefined ? {} : { iommu }),
    ...(swiotlb === undefined ? {} : { swiotlb }),
    // Every error dma-debug finds on the replay machine is wanted; the trace makes no CPU accesses.
    dmaDebug: true, accessChecks: false,
  };
  return { config, notes };
}

/** A device the machine file does not describe, from what the trace shows of it. */
export function inferDevice(seen: TraceDeviceSeen, maskOverride: number | undefined, notes: string[]): DeviceConfig {
  const why: string[] = [];
  let bits: number;
  if (maskOverride !== undefined) {
    bits = maskOverride;
    why.push(`${bits}-bit DMA mask (as asked)`);
  } else if (seen.dmaMask !== undefined) {
    bits = maskBits(seen.dmaMask);
    why.push(`${bits}-bit DMA mask (from its swiotlb_bounced events)`);
  } else {
    bits = 64;
    why.push('64-bit DMA mask assumed (no swiotlb_bounced event prints it)');
  }
  let maxSegmentSize = DEFAULT_MAX_SEGMENT;
  if (seen.maxSegment > DEFAULT_MAX_SEGMENT) {
    maxSegmentSize = Math.min(0xffffffff, 2 ** Math.ceil(Math.log2(seen.maxSegment)));
    why.push(`max segment ${maxSegmentSize} bytes (its longest traced segment is ${seen.maxSegment})`);
  } else {
    why.push(`max segment 64 KiB (the kernel's default${seen.maxSegment > 0 ? `; its longest traced segment is ${seen.maxSegment}` : ''})`);
  }
  const path = seen.direct > 0 && seen.remapped === 0 ? 'dma-direct (its DMA addresses were its physical ones)'
    : seen.remapped > 0 && seen.bounced === 0 ? 'remapped (an IOMMU or a bus offset: DMA addresses differ from physical)'
      : seen.bounced > 0 ? 'bounced through swiotlb' : undefined;
  notes.push(`${seen.name}: ${seen.bus}, ${why.join(', ')}${path === undefined ? '' : `; traced path: ${path}`}`);
  return { name: seen.name, bus: seen.bus, dmaMask: bits, coherentDmaMask: bits, ...(maxSegmentSize === DEFAULT_MAX_SEGMENT ? {} : { maxSegmentSize }) };
}
