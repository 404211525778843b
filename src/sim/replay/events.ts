/**
 * @module replay/events
 * The DMA trace events of a Linux 6.18 kernel as typed records, one per line of a trace: the
 * `dma:*` events, `swiotlb:swiotlb_bounced` and `iommu:map` / `unmap` / `io_page_fault`.
 *
 * Each record carries the line's common header (task, pid, CPU, the latency column, the time) and
 * the tracepoint's own fields under the kernel's field names (`TP_STRUCT__entry`), not under the
 * labels the print format shows: `dma_unmap_phys` keeps `addr` (printed `dma_addr=`),
 * `dma_unmap_sg` keeps `addrs` (physical addresses, printed `phys_addrs=`), `dma_map_sg_err`
 * keeps `phys_addrs` (printed, misleadingly, `dma_addrs=`), the sg events keep `lengths`
 * (printed `sizes=`).
 *
 * Values: a u64 is a plain number below 2^53, or -1 for the all-ones value (DMA_MAPPING_ERROR, as
 * every dmasim layer writes it); `dir` is the numeric `enum dma_data_direction`, `attrs` the numeric
 * `DMA_ATTR_*` mask; a GFP mask and a `%p` pointer stay the strings the kernel printed (the
 * kernel hashes pointers, and GFP names are not all modelled).
 *
 * This module also holds the print layout of each event (label, field and kind, in print order)
 * and its raw field order, which the parser and the printer share so that they cannot disagree.
 */

/** The trace systems replay reads. */
export type FtraceSystem = 'dma' | 'swiotlb' | 'iommu';

/** `enum dma_data_direction`: 0 BIDIRECTIONAL, 1 TO_DEVICE, 2 FROM_DEVICE, 3 NONE. */
export type DmaDirection = 0 | 1 | 2 | 3;

/**
 * The names `dir=` prints (`decode_dma_data_direction`), indexed by the direction's value.
 * @example DMA_DIRECTION_NAMES[1] // 'TO_DEVICE'
 */
export const DMA_DIRECTION_NAMES = ['BIDIRECTIONAL', 'TO_DEVICE', 'FROM_DEVICE', 'NONE'] as const;

// INVARIANT: DMA_ATTR_TRACE_NAMES lists the bits `attrs=` names on 6.18 (decode_dma_attrs), lowest
//   bit first, each a single distinct bit below 2^12: the printer walks it in order, as the kernel's
//   __print_flags walks its table, and prints any bit left over as one `0x%lx`.
/**
 * The `DMA_ATTR_*` bits `attrs=` prints by name on Linux 6.18, as `[bit value, name]`, in print order.
 * @example DMA_ATTR_TRACE_NAMES.find(([, n]) => n === 'SKIP_CPU_SYNC')?.[0] // 32
 */
export const DMA_ATTR_TRACE_NAMES: ReadonlyArray<readonly [bit: number, name: string]> = [
  [1 << 1, 'WEAK_ORDERING'], [1 << 2, 'WRITE_COMBINE'], [1 << 4, 'NO_KERNEL_MAPPING'], [1 << 5, 'SKIP_CPU_SYNC'],
  [1 << 6, 'FORCE_CONTIGUOUS'], [1 << 7, 'ALLOC_SINGLE_PAGES'], [1 << 8, 'NO_WARN'], [1 << 9, 'PRIVILEGED'],
  [1 << 10, 'MMIO'], [1 << 11, 'CACHE_CLEAN'],
];

/**
 * Names later kernels print for bits 6.18 prints in hex (or names differently). The parser accepts
 * them so a newer trace still reads; the printer writes 6.18's form (bits 12 and 13 as `0x3000`).
 * @example DMA_ATTR_TRACE_ALIASES.find(([, n]) => n === 'REQUIRE_COHERENT')?.[0] // 4096
 */
export const DMA_ATTR_TRACE_ALIASES: ReadonlyArray<readonly [bit: number, name: string]> = [
  [1 << 11, 'CACHELINES_OVERLAP'], [1 << 12, 'REQUIRE_COHERENT'], [1 << 13, 'CC_SHARED'],
];

/**
 * The common part of every line: who, where and when. `line` is the 1-based line number in the input.
 * `latency` is the irqs-off / need-resched / hard-soft-irq / preempt-depth column (`d..1.`) as
 * printed, undefined when the trace has none; it is not named `flags` because the alloc events and
 * io_page_fault have a field of that name. `tgid` is there only when the trace has the `(tgid)`
 * column (0 for `(-------)`). `timestamp` is in seconds.
 */
export interface FtraceHeader {
  readonly line: number;
  readonly task: string;
  readonly pid: number;
  readonly tgid?: number;
  readonly cpu: number;
  readonly latency: string | undefined;
  readonly timestamp: number;
  readonly system: FtraceSystem;
  /**
   * The name a pre-6.18 kernel printed, when it differs (`dma_map_page`, `dma_unmap_page`,
   * `dma_map_resource`, `dma_unmap_resource`): the record carries the 6.18 event it became.
   */
  readonly kernelName?: string;
}

/** Fields every `dma:` event has. */
interface DmaBase extends FtraceHeader {
  readonly system: 'dma';
  readonly device: string;
  readonly dir: DmaDirection;
}

/** `dma_alloc_class`: dma_alloc, dma_alloc_pages, dma_alloc_sgt_err (`dma_addr` is 0 when `virt_addr` is NULL). */
export interface DmaAllocEvent extends DmaBase {
  readonly event: 'dma_alloc' | 'dma_alloc_pages' | 'dma_alloc_sgt_err';
  readonly virt_addr: string;
  readonly dma_addr: number;
  readonly size: number;
  /** The GFP mask as printed (`GFP_KERNEL|__GFP_ZERO`, `none`). */
  readonly flags: string;
  readonly attrs: number;
}

/** `dma_alloc_sgt`: the table's physical addresses and its first DMA address. */
export interface DmaAllocSgtEvent extends DmaBase {
  readonly event: 'dma_alloc_sgt';
  readonly phys_addrs: number[];
  readonly dma_addr: number;
  readonly size: number;
  readonly flags: string;
  readonly attrs: number;
}

/** `dma_free_class`: dma_free, dma_free_pages. */
export interface DmaFreeEvent extends DmaBase {
  readonly event: 'dma_free' | 'dma_free_pages';
  readonly virt_addr: string;
  readonly dma_addr: number;
  readonly size: number;
  readonly attrs: number;
}

/** `dma_free_sgt`. */
export interface DmaFreeSgtEvent extends DmaBase {
  readonly event: 'dma_free_sgt';
  readonly phys_addrs: number[];
  readonly dma_addr: number;
  readonly size: number;
}

/** `dma_map_phys` (the `dma_map` class). */
export interface DmaMapPhysEvent extends DmaBase {
  readonly event: 'dma_map_phys';
  readonly phys_addr: number;
  readonly dma_addr: number;
  readonly size: number;
  readonly attrs: number;
}

/**
 * `dma_map_sg`: at most 128 entries are recorded. `nents`/`ents` are the printed min(n, 128),
 * `full_nents`/`full_ents` the real counts; `phys_addrs` has `nents` entries, `dma_addrs` and
 * `lengths` have `ents`.
 */
export interface DmaMapSgEvent extends DmaBase {
  readonly event: 'dma_map_sg';
  readonly full_nents: number;
  readonly full_ents: number;
  readonly nents: number;
  readonly ents: number;
  readonly truncated: boolean;
  readonly phys_addrs: number[];
  readonly dma_addrs: number[];
  readonly lengths: number[];
  readonly attrs: number;
}

/** `dma_map_sg_err`: `phys_addrs` holds physical addresses although the line labels them `dma_addrs=`. */
export interface DmaMapSgErrEvent extends DmaBase {
  readonly event: 'dma_map_sg_err';
  readonly phys_addrs: number[];
  readonly err: number;
  readonly attrs: number;
}

/** `dma_sync_sg` class: dma_sync_sg_for_cpu, dma_sync_sg_for_device. */
export interface DmaSyncSgEvent extends DmaBase {
  readonly event: 'dma_sync_sg_for_cpu' | 'dma_sync_sg_for_device';
  readonly dma_addrs: number[];
  readonly lengths: number[];
}

/** `dma_sync_single` class: dma_sync_single_for_cpu, dma_sync_single_for_device. */
export interface DmaSyncSingleEvent extends DmaBase {
  readonly event: 'dma_sync_single_for_cpu' | 'dma_sync_single_for_device';
  readonly dma_addr: number;
  readonly size: number;
}

/** `dma_unmap_phys` (the `dma_unmap` class): `addr` is the DMA address (printed `dma_addr=`). */
export interface DmaUnmapPhysEvent extends DmaBase {
  readonly event: 'dma_unmap_phys';
  readonly addr: number;
  readonly size: number;
  readonly attrs: number;
}

/** `dma_unmap_sg`: `addrs` are the entries' physical addresses (`sg_phys`), printed `phys_addrs=`. */
export interface DmaUnmapSgEvent extends DmaBase {
  readonly event: 'dma_unmap_sg';
  readonly addrs: number[];
  readonly attrs: number;
}

/** `swiotlb:swiotlb_bounced`: `dma_mask` -1 is the all-ones (64-bit) mask. */
export interface SwiotlbBouncedEvent extends FtraceHeader {
  readonly event: 'swiotlb_bounced';
  readonly system: 'swiotlb';
  readonly dev_name: string;
  readonly dma_mask: number;
  readonly dev_addr: number;
  readonly size: number;
  readonly force: boolean;
}

/** `iommu:map` (the printed end, iova + size, is not a field). */
export interface IommuMapEvent extends FtraceHeader {
  readonly event: 'map';
  readonly system: 'iommu';
  readonly iova: number;
  readonly paddr: number;
  readonly size: number;
}

/** `iommu:unmap`. */
export interface IommuUnmapEvent extends FtraceHeader {
  readonly event: 'unmap';
  readonly system: 'iommu';
  readonly iova: number;
  readonly size: number;
  readonly unmapped_size: number;
}

/**
 * `iommu:io_page_fault`: `flags` is the C int (IOMMU_FAULT_READ 0, IOMMU_FAULT_WRITE 1). `iova`
 * may be past 2^53 (the nearest number: a device can fault anywhere), unlike mapped addresses.
 */
export interface IommuIoPageFaultEvent extends FtraceHeader {
  readonly event: 'io_page_fault';
  readonly system: 'iommu';
  readonly device: string;
  readonly driver: string;
  readonly iova: number;
  readonly flags: number;
}

/**
 * One parsed trace line of an event replay models; narrow on `event`.
 * @example if (ev.event === 'dma_map_phys') ledger.map(ev.device, ev.phys_addr, ev.dma_addr, ev.size)
 */
export type FtraceEvent =
  | DmaAllocEvent | DmaAllocSgtEvent | DmaFreeEvent | DmaFreeSgtEvent | DmaMapPhysEvent | DmaMapSgEvent
  | DmaMapSgErrEvent | DmaSyncSgEvent | DmaSyncSingleEvent | DmaUnmapPhysEvent | DmaUnmapSgEvent
  | SwiotlbBouncedEvent | IommuMapEvent | IommuUnmapEvent | IommuIoPageFaultEvent;

/** The event names replay models. */
export type FtraceEventName = FtraceEvent['event'];

/**
 * How a field is printed, by the print-format conversion it goes through: `dir` the `%s` of
 * decode_dma_data_direction; `hex` a u64 as `%llx`; `dec` a u64 (size_t) as `%zu`; `int` a C int
 * as `%d`; `token` a `%p` pointer or the `%s` of show_gfp_flags, kept as printed; `attrs` the `%s`
 * of decode_dma_attrs; `arr64` / `arr32` a `__print_array` of u64 / unsigned int; `str` a
 * `__string` and `bool` a bool (these two in the raw layout only: the print layouts place them
 * themselves).
 * @example EVENT_LAYOUTS.dma_map_phys.print?.map((f) => f.kind) // ['dir', 'hex', 'dec', 'hex', 'attrs']
 */
export type FieldKind = 'dir' | 'hex' | 'dec' | 'int' | 'token' | 'attrs' | 'arr64' | 'arr32' | 'str' | 'bool';

/** One `label=value` of a print format: the label shown and the field it shows. */
export interface PrintedField {
  readonly label: string;
  readonly field: string;
  readonly kind: FieldKind;
}

/** One field of the record in struct order, as `trace-cmd report -R` lists it. */
export interface RawField {
  readonly name: string;
  readonly kind: FieldKind;
}

/** How one event prints: its system, its `label=value` list after the device (dma events other than dma_map_sg), its raw fields. */
export interface EventLayout {
  readonly system: FtraceSystem;
  readonly print: readonly PrintedField[] | undefined;
  readonly raw: readonly RawField[];
}

const p = (label: string, field: string, kind: FieldKind): PrintedField => ({ label, field, kind });
const r = (name: string, kind: FieldKind): RawField => ({ name, kind });
const DIR = p('dir', 'dir', 'dir');
const DMA_ADDR = p('dma_addr', 'dma_addr', 'hex');
const SIZE = p('size', 'size', 'dec');
const ATTRS = p('attrs', 'attrs', 'attrs');

const ALLOC: EventLayout = {
  system: 'dma',
  print: [DIR, DMA_ADDR, SIZE, p('virt_addr', 'virt_addr', 'token'), p('flags', 'flags', 'token'), ATTRS],
  raw: [r('device', 'str'), r('virt_addr', 'token'), r('dma_addr', 'hex'), r('size', 'dec'), r('flags', 'token'), r('dir', 'dir'), r('attrs', 'attrs')],
};
const FREE: EventLayout = {
  system: 'dma',
  print: [DIR, DMA_ADDR, SIZE, p('virt_addr', 'virt_addr', 'token'), ATTRS],
  raw: [r('device', 'str'), r('virt_addr', 'token'), r('dma_addr', 'hex'), r('size', 'dec'), r('dir', 'dir'), r('attrs', 'attrs')],
};
const SYNC_SG: EventLayout = {
  system: 'dma',
  print: [DIR, p('dma_addrs', 'dma_addrs', 'arr64'), p('sizes', 'lengths', 'arr32')],
  raw: [r('device', 'str'), r('dma_addrs', 'arr64'), r('lengths', 'arr32'), r('dir', 'dir')],
};
const SYNC_SINGLE: EventLayout = {
  system: 'dma',
  print: [DIR, DMA_ADDR, SIZE],
  raw: [r('device', 'str'), r('dma_addr', 'hex'), r('size', 'dec'), r('dir', 'dir')],
};

// INVARIANT: one entry per FtraceEventName. `print` lists every field of the event except `device`
//   (and, for dma_map_sg, which prints counts and a marker the generic list cannot express, it is
//   undefined); `raw` lists every field of TP_STRUCT__entry in struct order. Both are read-only and
//   shared by parse.ts and format.ts.
/**
 * Every modelled event's system, print layout and raw field order.
 * @example EVENT_LAYOUTS.dma_unmap_sg.print?.[1] // { label: 'phys_addrs', field: 'addrs', kind: 'arr64' }
 */
export const EVENT_LAYOUTS: Readonly<Record<FtraceEventName, EventLayout>> = {
  dma_alloc: ALLOC,
  dma_alloc_pages: ALLOC,
  dma_alloc_sgt: {
    system: 'dma',
    print: [DIR, DMA_ADDR, SIZE, p('phys_addrs', 'phys_addrs', 'arr64'), p('flags', 'flags', 'token'), ATTRS],
    raw: [r('device', 'str'), r('phys_addrs', 'arr64'), r('dma_addr', 'hex'), r('size', 'dec'), r('dir', 'dir'), r('flags', 'token'), r('attrs', 'attrs')],
  },
  dma_alloc_sgt_err: ALLOC,
  dma_free: FREE,
  dma_free_pages: FREE,
  dma_free_sgt: {
    system: 'dma',
    print: [DIR, DMA_ADDR, SIZE, p('phys_addrs', 'phys_addrs', 'arr64')],
    raw: [r('device', 'str'), r('phys_addrs', 'arr64'), r('dma_addr', 'hex'), r('size', 'dec'), r('dir', 'dir')],
  },
  dma_map_phys: {
    system: 'dma',
    print: [DIR, DMA_ADDR, SIZE, p('phys_addr', 'phys_addr', 'hex'), ATTRS],
    raw: [r('device', 'str'), r('phys_addr', 'hex'), r('dma_addr', 'hex'), r('size', 'dec'), r('dir', 'dir'), r('attrs', 'attrs')],
  },
  dma_map_sg: {
    system: 'dma',
    print: undefined,
    raw: [
      r('device', 'str'), r('full_nents', 'int'), r('full_ents', 'int'), r('truncated', 'bool'), r('phys_addrs', 'arr64'),
      r('dma_addrs', 'arr64'), r('lengths', 'arr32'), r('dir', 'dir'), r('attrs', 'attrs'),
    ],
  },
  dma_map_sg_err: {
    system: 'dma',
    print: [DIR, p('dma_addrs', 'phys_addrs', 'arr64'), p('err', 'err', 'int'), ATTRS],
    raw: [r('device', 'str'), r('phys_addrs', 'arr64'), r('err', 'int'), r('dir', 'dir'), r('attrs', 'attrs')],
  },
  dma_sync_sg_for_cpu: SYNC_SG,
  dma_sync_sg_for_device: SYNC_SG,
  dma_sync_single_for_cpu: SYNC_SINGLE,
  dma_sync_single_for_device: SYNC_SINGLE,
  dma_unmap_phys: {
    system: 'dma',
    print: [DIR, p('dma_addr', 'addr', 'hex'), SIZE, ATTRS],
    raw: [r('device', 'str'), r('addr', 'hex'), r('size', 'dec'), r('dir', 'dir'), r('attrs', 'attrs')],
  },
  dma_unmap_sg: {
    system: 'dma',
    print: [DIR, p('phys_addrs', 'addrs', 'arr64'), ATTRS],
    raw: [r('device', 'str'), r('addrs', 'arr64'), r('dir', 'dir'), r('attrs', 'attrs')],
  },
  swiotlb_bounced: {
    system: 'swiotlb',
    print: undefined,
    raw: [r('dev_name', 'str'), r('dma_mask', 'hex'), r('dev_addr', 'hex'), r('size', 'dec'), r('force', 'bool')],
  },
  map: { system: 'iommu', print: undefined, raw: [r('iova', 'hex'), r('paddr', 'hex'), r('size', 'dec')] },
  unmap: { system: 'iommu', print: undefined, raw: [r('iova', 'hex'), r('size', 'dec'), r('unmapped_size', 'dec')] },
  io_page_fault: { system: 'iommu', print: undefined, raw: [r('device', 'str'), r('driver', 'str'), r('iova', 'hex'), r('flags', 'int')] },
};

/**
 * Every modelled event name, in the order of the reference (dma events alphabetically, then swiotlb, then iommu).
 * @example FTRACE_EVENT_NAMES.includes('dma_map_sg') // true
 */
export const FTRACE_EVENT_NAMES = Object.keys(EVENT_LAYOUTS) as readonly FtraceEventName[];

/**
 * Whether `name` is an event replay models.
 * @example isFtraceEventName('sched_switch') // false
 */
export function isFtraceEventName(name: string): name is FtraceEventName {
  return Object.prototype.hasOwnProperty.call(EVENT_LAYOUTS, name);
}

/**
 * The most entries dma_map_sg records (the kernel's DMA_TRACE_MAX_ENTRIES).
 * @example Math.min(ev.full_nents, DMA_TRACE_MAX_ENTRIES) // what `nents=` prints before the slash
 */
export const DMA_TRACE_MAX_ENTRIES = 128;
