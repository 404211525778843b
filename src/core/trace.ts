/**
 * @module core/trace
 * The machine's event trace: every map, unmap, sync, flush, fault, WARN and injected failure, with
 * its virtual time. Chosen once at construction: a machine without tracing calls a no-op.
 * Exported as JSON lines (pino's shape) and in the Chrome trace-event format Perfetto opens, with
 * DMA directions and attributes printed by name.
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

/** One traced event. */
export interface TraceEvent {
  /** Virtual time, ns. */
  readonly t: number;
  /** 'map' | 'unmap' | 'sync' | 'flush' | 'fault' | 'warn' | 'inject' | 'alloc' | 'free' | ... */
  readonly kind: string;
  /** What happened, e.g. the kernel function. */
  readonly name: string;
  /** Who: a device name, 'cpu', 'iommu', 'mm'. */
  readonly actor: string;
  readonly args?: Readonly<Record<string, unknown>>;
  /** The CPU it happened on, when not CPU 0 (machine.currentCpu). */
  readonly cpu?: number;
}

/** The recorder: `emit` is a no-op when tracing is off. */
export interface Trace {
  readonly enabled: boolean;
  emit(kind: string, name: string, actor: string, args?: Record<string, unknown>): void;
  readonly events: readonly TraceEvent[];
  /** Events dropped, oldest first, to keep the trace bounded (0 for a trace that never filled). */
  readonly dropped?: number;
}

/** A trace as createTrace makes it, else EINVAL naming `trace`. */
function checkTrace(trace: unknown, fn: string): void {
  if (typeof trace !== 'object' || trace === null || !Array.isArray((trace as { events?: unknown }).events)) {
    throw new KernelError(EINVAL, fn, 'expected a trace (createTrace, machine.trace)', 'trace');
  }
}

/**
 * A trace recorder reading time from `now` (and the CPU from `cpu`, when given); `max` bounds the
 * events kept: past max + max/4 the oldest are dropped down to the newest `max` in one go (one
 * splice every max/4 events, not one per event: 600k map/unmap pairs past a 1M cap took 191 s with
 * a splice per event), and `dropped` counts them.
 * @example const t = createTrace(() => clock.now, true); t.emit('map', 'dma_map_page', dev.name, { addr });
 */
export function createTrace(now: () => number, enabled: boolean, max = 1_000_000, cpu?: () => number): Trace {
  const events: TraceEvent[] = [];
  if (!enabled) return { enabled: false, emit: () => {}, events, dropped: 0 };
  const slack = Math.max(1, Math.floor(max / 4));
  return {
    enabled: true,
    events,
    dropped: 0,
    emit(kind, name, actor, args) {
      const e: { -readonly [K in keyof TraceEvent]: TraceEvent[K] } = { t: now(), kind, name, actor };
      if (args !== undefined) e.args = args;
      const c = cpu === undefined ? 0 : cpu();
      if (c !== 0) e.cpu = c;
      events.push(e);
      if (events.length > max + slack) {
        const cut = events.length - max;
        events.splice(0, cut);
        (this as { dropped: number }).dropped += cut;
      }
    },
  };
}

// INVARIANT: DIRECTION_NAMES[d] is the C name of `enum dma_data_direction` value d, as
//   dma/direction.ts names it; ATTR_NAMES holds every DMA_ATTR_* bit of dma/attrs.ts as [bit, name],
//   lowest bit first. core sits below dma, so the printer keeps its own tables, as the kernel's
//   include/trace/events/dma.h does (decode_dma_data_direction, decode_dma_attrs);
//   test/sim/trace.test.ts checks them against those two modules.
const DIRECTION_NAMES = ['DMA_BIDIRECTIONAL', 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE', 'DMA_NONE'] as const;
const ATTR_NAMES: ReadonlyArray<readonly [number, string]> = [
  [1 << 1, 'DMA_ATTR_WEAK_ORDERING'], [1 << 2, 'DMA_ATTR_WRITE_COMBINE'], [1 << 4, 'DMA_ATTR_NO_KERNEL_MAPPING'],
  [1 << 5, 'DMA_ATTR_SKIP_CPU_SYNC'], [1 << 6, 'DMA_ATTR_FORCE_CONTIGUOUS'], [1 << 7, 'DMA_ATTR_ALLOC_SINGLE_PAGES'],
  [1 << 8, 'DMA_ATTR_NO_WARN'], [1 << 9, 'DMA_ATTR_PRIVILEGED'], [1 << 10, 'DMA_ATTR_MMIO'],
  [1 << 11, 'DMA_ATTR_DEBUGGING_IGNORE_CACHELINES'], [1 << 12, 'DMA_ATTR_REQUIRE_COHERENT'], [1 << 13, 'DMA_ATTR_CC_SHARED'],
];
/** Argument names that hold a bus, IOVA or physical address: printed in hex for Perfetto, as ftrace does. */
const ADDRESS_ARGS = new Set(['addr', 'phys', 'paddr', 'iova', 'handle', 'dma_address', 'start', 'end', 'dev_addr', 'dma_mask']);
/** The fields traceJsonLines writes itself; an argument of the same name is written as `arg_<name>`. */
const JSONL_FIELDS = new Set(['level', 'time', 'msg', 'kind', 'actor']);

/** `decode_dma_data_direction`: the C name, or 'invalid direction <n>'. */
function directionName(dir: unknown): unknown {
  if (typeof dir !== 'number') return dir;
  return dir === 0 || dir === 1 || dir === 2 || dir === 3 ? DIRECTION_NAMES[dir] : `invalid direction ${dir}`;
}

/** `decode_dma_attrs`: set bits by name joined with '|', unknown bits in hex after them, '0' for none. */
function attrsNames(attrs: unknown): unknown {
  if (typeof attrs !== 'number' || !Number.isInteger(attrs) || attrs < 0 || attrs > 0xffffffff) return attrs;
  if (attrs === 0) return '0';
  const out: string[] = [];
  let rest = attrs;
  for (const [bit, name] of ATTR_NAMES) {
    if ((rest & bit) !== 0) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) out.push(`0x${(rest >>> 0).toString(16)}`);
  return out.join('|');
}

/** An address argument in hex; -1 is DMA_MAPPING_ERROR; anything else (null, 2^64) as it is. */
function addressHex(v: unknown): unknown {
  if (v === -1) return 'DMA_MAPPING_ERROR';
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? `0x${v.toString(16)}` : v;
}

/** An event's arguments for people: directions and attributes by name, addresses in hex when `hex`. */
function printableArgs(args: Readonly<Record<string, unknown>> | undefined, hex: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (args === undefined) return out;
  for (const [k, v] of Object.entries(args)) {
    out[k] = k === 'dir' ? directionName(v) : k === 'attrs' ? attrsNames(v) : hex && ADDRESS_ARGS.has(k) ? addressHex(v) : v;
  }
  return out;
}

/**
 * JSON lines, one per event, in pino's field names (time in ms of virtual time, msg), then the
 * event's arguments: a DMA direction (`dir`) and attributes (`attrs`) by their C names; an argument
 * named like one of pino's fields (an injected failure's `kind`) is written as `arg_<name>`.
 * @example writeFileSync('trace.jsonl', traceJsonLines(machine.trace))
 */
export function traceJsonLines(trace: Trace): string {
  checkTrace(trace, 'traceJsonLines');
  return trace.events.map((e) => {
    const line: Record<string, unknown> = { level: 30, time: e.t / 1e6, msg: e.name, kind: e.kind, actor: e.actor };
    for (const [k, v] of Object.entries(printableArgs(e.args, false))) line[JSONL_FIELDS.has(k) ? `arg_${k}` : k] = v;
    return JSON.stringify(line);
  }).join('\n');
}

/** How chromeTrace labels the process (all optional). */
export interface ChromeTraceOptions {
  /** The process name Perfetto shows (default 'dmasim'); pass the machine's, e.g. `machine m0`. */
  readonly process?: string;
  /** The process id (default 1): give each machine its own when several traces are merged. */
  readonly pid?: number;
}

/**
 * The Chrome trace-event format (open it in Perfetto or chrome://tracing). Metadata events first:
 * `process_name` (the machine) and, per actor (a device, 'iommu', 'kernel', ...), `thread_name` and
 * `thread_sort_index` in order of first appearance. Then one instant event per trace event on its
 * actor's track, with arguments as ftrace prints them: directions and DMA attributes by their C
 * names (`DMA_TO_DEVICE`, `DMA_ATTR_SKIP_CPU_SYNC|DMA_ATTR_NO_WARN`), addresses in hex.
 * @example writeFileSync('trace.json', JSON.stringify(chromeTrace(machine.trace, { process: `machine ${machine.name}` })))
 */
export function chromeTrace(trace: Trace, opts: ChromeTraceOptions = {}): { traceEvents: object[]; displayTimeUnit: string } {
  checkTrace(trace, 'chromeTrace');
  if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'chromeTrace', 'expected an options object', 'opts');
  const processName = opts.process ?? 'dmasim';
  if (typeof processName !== 'string') throw new KernelError(EINVAL, 'chromeTrace', `expected a string process name, got ${typeof processName}`, 'opts');
  const pid = opts.pid ?? 1;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 0) throw new KernelError(EINVAL, 'chromeTrace', `expected a non-negative whole pid, got ${String(pid)}`, 'opts');
  // INVARIANT: tids maps each actor seen so far to its track, numbered 1, 2, ... in order of first appearance.
  const tids = new Map<string, number>();
  const tid = (actor: string): number => {
    let t = tids.get(actor);
    if (t === undefined) {
      t = tids.size + 1;
      tids.set(actor, t);
    }
    return t;
  };
  const instants: object[] = trace.events.map((e) => ({ name: e.name, cat: e.kind, ph: 'i', s: 't', ts: e.t / 1000, pid, tid: tid(e.actor), args: printableArgs(e.args, true) }));
  const meta: object[] = [{ name: 'process_name', ph: 'M', pid, tid: 0, args: { name: processName } }];
  for (const [actor, t] of tids) {
    meta.push({ name: 'thread_name', ph: 'M', pid, tid: t, args: { name: actor } });
    meta.push({ name: 'thread_sort_index', ph: 'M', pid, tid: t, args: { sort_index: t } });
  }
  return { traceEvents: [...meta, ...instants], displayTimeUnit: 'ns' };
}
