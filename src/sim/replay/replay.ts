/**
 * @module replay/replay
 * One call for a whole replay: stream the trace once through the offline check (dma-debug's rules
 * on the traced kernel's own addresses) and, when a machine is asked for, through a replay on it.
 * A trace given as a path is read twice when a machine is built: a first pass sizes the machine
 * and learns the devices (see replay/scan), the second replays. Memory stays bounded by what is
 * live in the trace, not by its length.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { buildMachine } from '../config.ts';
import { TraceChecker, type TraceCheckStats, type TraceFinding } from './check.ts';
import { TraceReplayer, claimPages, type ReplayReport } from './machine-replay.ts';
import { parseFtrace, type FtraceSource, type FtraceStats } from './parse.ts';
import { TraceScanner, replayMachineConfig, type ReplayMachineOptions, type ReplayMachinePlan } from './scan.ts';
import type { Machine } from '../machine.ts';

/** What replayTrace does besides the check. */
export interface ReplayTraceOptions extends ReplayMachineOptions {
  /** Replay on a machine (implied by machine, iommu, swiotlbForce or mask). */
  readonly replay?: boolean;
  /** Record the replay machine's own trace (for an HTML timeline; costs memory per event). */
  readonly trace?: boolean;
}

/** Everything a replay found. */
export interface ReplayTraceResult {
  /** The offline check's findings and counts. */
  readonly findings: TraceFinding[];
  readonly check: TraceCheckStats;
  /** The parser's counts (lines, events, unknown and malformed lines). */
  readonly parse: FtraceStats;
  /** The replay machine, its plan and report, when one was asked for. */
  readonly machine: Machine | null;
  readonly plan: ReplayMachinePlan | null;
  readonly replay: ReplayReport | null;
}

/**
 * Check a trace and, optionally, replay it on a machine.
 * @example
 * const r = await replayTrace('trace.txt', { iommu: 'strict', mask: 32 });
 * r.replay?.findings.filter((f) => f.kind === 'map-failed')
 */
export async function replayTrace(source: FtraceSource, opts: ReplayTraceOptions = {}): Promise<ReplayTraceResult> {
  if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'replayTrace', 'expected an options object', 'opts');
  if (typeof source !== 'string' && (typeof source !== 'object' || source === null || typeof (source as AsyncIterable<string>)[Symbol.asyncIterator] !== 'function')) {
    throw new KernelError(EINVAL, 'replayTrace', 'expected a path or an async iterable of text', 'source');
  }
  const wantsMachine = opts.replay === true || opts.machine !== undefined || opts.iommu !== undefined || opts.swiotlbForce === true || opts.mask !== undefined;
  let replayer: TraceReplayer | null = null;
  let plan: ReplayMachinePlan | null = null;
  let machine: Machine | null = null;
  if (wantsMachine) {
    let scan = null;
    if (typeof source === 'string') {
      const scanner = new TraceScanner();
      for await (const ev of parseFtrace(source)) scanner.add(ev);
      scan = scanner.scan;
    }
    plan = replayMachineConfig(scan, opts);
    // The trace's pages are claimed before the devices come (their IOMMU domains allocate
    // page-table pages), so nothing of the machine's own sits where the trace's buffers were.
    const pages = scan?.pages;
    machine = buildMachine({ ...plan.config, ...(opts.trace === true ? { trace: true } : {}) }, pages === undefined ? undefined : (m) => { claimPages(m, pages); }).machine;
    replayer = new TraceReplayer(machine, plan.notes, opts.mask === undefined ? {} : { mask: opts.mask });
  }
  const stream = parseFtrace(source);
  const checker = new TraceChecker();
  for await (const ev of stream) {
    const before = checker.findings.length;
    checker.add(ev);
    replayer?.add(ev, checker.findings.length > before);
  }
  const findings = checker.finish();
  return { findings, check: checker.stats, parse: stream.stats, machine, plan, replay: replayer?.finish() ?? null };
}
