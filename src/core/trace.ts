/**
 * @module core/trace
 * The machine's event trace: every map, unmap, sync, flush, fault, WARN and injected failure, with
 * its virtual time. Chosen once at construction: a machine without tracing calls a no-op.
 * Exported as JSON lines (pino's shape) and in the Chrome trace-event format Perfetto opens.
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
}

/** The recorder: `emit` is a no-op when tracing is off. */
export interface Trace {
  readonly enabled: boolean;
  emit(kind: string, name: string, actor: string, args?: Record<string, unknown>): void;
  readonly events: readonly TraceEvent[];
}

/** A trace as createTrace makes it, else EINVAL naming `trace`. */
function checkTrace(trace: unknown, fn: string): void {
  if (typeof trace !== 'object' || trace === null || !Array.isArray((trace as { events?: unknown }).events)) {
    throw new KernelError(EINVAL, fn, 'expected a trace (createTrace, machine.trace)', 'trace');
  }
}

/**
 * A trace recorder reading time from `now`; `max` bounds the events kept (oldest dropped).
 * @example const t = createTrace(() => clock.now); t.emit('map', 'dma_map_page', dev.name, { addr });
 */
export function createTrace(now: () => number, enabled: boolean, max = 1_000_000): Trace {
  const events: TraceEvent[] = [];
  if (!enabled) return { enabled: false, emit: () => {}, events };
  return {
    enabled: true,
    events,
    emit(kind, name, actor, args) {
      events.push(args === undefined ? { t: now(), kind, name, actor } : { t: now(), kind, name, actor, args });
      if (events.length > max) events.splice(0, events.length - max);
    },
  };
}

/**
 * JSON lines, one per event, in pino's field names (time in ms of virtual time, msg).
 * @example writeFileSync('trace.jsonl', traceJsonLines(machine.trace))
 */
export function traceJsonLines(trace: Trace): string {
  checkTrace(trace, 'traceJsonLines');
  return trace.events.map((e) => JSON.stringify({ level: 30, time: e.t / 1e6, msg: e.name, kind: e.kind, actor: e.actor, ...(e.args ?? {}) })).join('\n');
}

/**
 * The Chrome trace-event format (open it in Perfetto or chrome://tracing): one instant event per
 * trace event, a track (tid) per actor.
 * @example writeFileSync('trace.json', JSON.stringify(chromeTrace(machine.trace)))
 */
export function chromeTrace(trace: Trace): { traceEvents: object[]; displayTimeUnit: string } {
  checkTrace(trace, 'chromeTrace');
  const tids = new Map<string, number>();
  const tid = (actor: string): number => {
    let t = tids.get(actor);
    if (t === undefined) {
      t = tids.size + 1;
      tids.set(actor, t);
    }
    return t;
  };
  const events: object[] = trace.events.map((e) => ({ name: e.name, cat: e.kind, ph: 'i', s: 't', ts: e.t / 1000, pid: 1, tid: tid(e.actor), args: e.args ?? {} }));
  for (const [actor, t] of tids) events.push({ name: 'thread_name', ph: 'M', pid: 1, tid: t, args: { name: actor } });
  return { traceEvents: events, displayTimeUnit: 'ns' };
}
