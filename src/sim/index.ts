/** @module sim: the Machine, scenarios and reports. */
export * from './machine.ts';
export * from './report.ts';
export * from './audit.ts';
export * from './config.ts';
export * from './isolation.ts';
export * from './html-report.ts';
export * from './findings.ts';
export * from './describe.ts';
export * from './machine-schema.ts';
export * from './machine-file.ts';
export { MachineSnapshot } from './snapshot.ts';
export { parseFtrace, parseFtraceLine, type FtraceLineResult, type FtraceStats, type FtraceSource, type FtraceEventStream, type ParseFtraceOptions } from './replay/parse.ts';
export { formatFtraceEvent, formatFtraceLine } from './replay/format.ts';
export { checkTrace, TraceChecker, type TraceFinding, type TraceCheckStats } from './replay/check.ts';
export { traceFtrace, toFtraceEvent } from './replay/write.ts';
export { replayTrace, type ReplayTraceOptions, type ReplayTraceResult } from './replay/replay.ts';
export {
  TraceReplayer, claimPages, type ReplayFinding, type ReplayFindingKind, type ReplayReport, type ReplayStats, type ReplayFidelity, type PressureSample,
} from './replay/machine-replay.ts';
export { TraceScanner, PageSet, replayMachineConfig, type TraceScan, type TraceDeviceSeen, type ReplayMachineOptions, type ReplayMachinePlan } from './replay/scan.ts';
export { formatReplaySummary, replayHtml, type ReplayOutputFinding } from './replay/report.ts';
export type { FtraceEvent, FtraceEventName } from './replay/events.ts';
