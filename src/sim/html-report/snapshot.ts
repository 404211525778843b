/**
 * @module sim/html-report/snapshot
 * What the report's pictures of memory show, captured at a chosen moment: physical memory by owner
 * (page counts per cell of the map), every DMA domain's IOVA space and the swiotlb pool. A report
 * drawn after the driver has unmapped and freed its buffers would show none of them, so a scenario
 * takes the snapshot while they are live and the report draws it.
 */
import { OWNERS, OWNER_ID, PG_ALLOCATED, PG_RESERVED } from '../../mm/page-meta.ts';
import { Machine } from '../machine.ts';
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { checkObject, notInstance } from '../../core/args.ts';
import { iovaDomainsNow, type IovaDomainView } from './iova.ts';
import { swiotlbNow, type SwiotlbView } from './swiotlb.ts';

/** Columns of the memory map; a row is COLS cells. */
export const MAP_COLS = 128;
/** Most rows of the memory map: cells are sized (a power of two of pages) to stay within it. */
export const MAP_MAX_ROWS = 64;
/** The owner keys counted: every page owner of mm/page-meta, then 'free'. PG_reserved pages count as 'reserved'. */
export const OWNER_KEYS: readonly string[] = [...OWNERS, 'free'];
const FREE = OWNERS.length;
const RESERVED = OWNER_ID.reserved;

/** A zone's pfn span, for the map's zone axis. */
export interface ZoneView {
  readonly name: string;
  readonly startPfn: number;
  readonly endPfn: number;
}

/**
 * The machine's memory, IOVA spaces and swiotlb at one moment, for htmlReport.
 * @example
 * const snap = memorySnapshot(m, { label: 'while the ring is mapped' });
 * writeFileSync('r.html', htmlReport(m, { memorySnapshot: snap }));
 */
export class MemorySnapshot {
  /** What the moment was, as the report says it. */
  readonly label: string;
  /** Virtual time, ns. */
  readonly t: number;
  /** Trace events recorded before the snapshot (where the timeline marks it). */
  readonly eventIndex: number;
  readonly maxPfn: number;
  /** Pages per map cell: a power of two. */
  readonly pagesPerCell: number;
  readonly cells: number;
  // INVARIANT: counts[c * OWNER_KEYS.length + k] is the number of pages of cell c (pfns
  //   [c * pagesPerCell, min(maxPfn, (c + 1) * pagesPerCell))) whose owner key is k; a cell's counts
  //   sum to its page count, and totals[k] is the sum of key k over all cells.
  readonly counts: Uint32Array;
  readonly totals: Float64Array;
  readonly zones: readonly ZoneView[];
  readonly iova: readonly IovaDomainView[];
  readonly swiotlb: SwiotlbView | null;
  /** The machine it was taken of. */
  readonly machine: Machine;

  /** @internal memorySnapshot builds snapshots */
  constructor(m: Machine, label: string) {
    this.machine = m;
    this.label = label;
    this.t = m.clock.now;
    this.eventIndex = m.trace.events.length;
    const { maxPfn } = m.mm;
    this.maxPfn = maxPfn;
    const shift = Math.max(0, Math.ceil(Math.log2(Math.max(1, maxPfn / (MAP_COLS * MAP_MAX_ROWS)))));
    this.pagesPerCell = 2 ** shift;
    this.cells = Math.ceil(maxPfn / this.pagesPerCell);
    const K = OWNER_KEYS.length;
    const counts = new Uint32Array(this.cells * K);
    m.mm.meta.resolveAll();
    const { state, owner } = m.mm.meta;
    const ppc = this.pagesPerCell;
    // Holes count as reserved, cell by cell, without a walk over them (they can span 2^40 pfns).
    const countHole = (lo: number, hi: number): void => {
      for (let p = lo; p < hi;) {
        const cell = Math.floor(p / ppc);
        const next = Math.min(hi, (cell + 1) * ppc);
        const i = cell * K + RESERVED;
        counts[i] = (counts[i] as number) + (next - p);
        p = next;
      }
    };
    let prevEnd = 0;
    for (const r of m.mm.ram) {
      countHole(prevEnd, r.startPfn);
      prevEnd = r.endPfn;
      const at = m.mm.meta.index(r.startPfn) - r.startPfn;
      for (let p = r.startPfn; p < r.endPfn; p++) {
        const s = state[p + at] as number;
        const o = owner[p + at] as number;
        const k = (s & PG_RESERVED) !== 0 ? RESERVED : (s & PG_ALLOCATED) === 0 ? FREE : o < FREE ? o : 0;
        const i = Math.floor(p / ppc) * K + k;
        counts[i] = (counts[i] as number) + 1;
      }
    }
    const totals = new Float64Array(K);
    for (let i = 0; i < counts.length; i++) totals[i % K] = (totals[i % K] as number) + (counts[i] as number);
    this.counts = counts;
    this.totals = totals;
    this.zones = m.mm.zones.filter((z) => z.span.endPfn > z.span.startPfn).map((z) => ({ name: z.span.name, startPfn: z.span.startPfn, endPfn: z.span.endPfn }));
    this.iova = iovaDomainsNow(m);
    this.swiotlb = swiotlbNow(m);
  }
}

/** Options of memorySnapshot and markReportSnapshot. */
export interface MemorySnapshotOptions {
  /** What the moment is, e.g. 'while nvme's 64 MiB buffer is mapped' (default: 'at t=<now> ns'). */
  readonly label?: string;
}

function checkLabel(opts: unknown, fn: string): string | undefined {
  checkObject(opts, fn, 'opts');
  const label = (opts as MemorySnapshotOptions).label;
  if (label !== undefined && typeof label !== 'string') throw new KernelError(EINVAL, fn, `expected a string label, got ${typeof label}`, 'opts');
  return label;
}

/**
 * Snapshot the machine's memory by owner, its DMA domains' IOVA spaces and its swiotlb pool now.
 * Costs one pass over the page metadata (tens of ms for 16 GiB).
 * @example const snap = memorySnapshot(m, { label: 'ring mapped' }); htmlReport(m, { memorySnapshot: snap })
 */
export function memorySnapshot(m: Machine, opts: MemorySnapshotOptions = {}): MemorySnapshot {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'memorySnapshot', 'm');
  const label = checkLabel(opts, 'memorySnapshot');
  return new MemorySnapshot(m, label ?? `at t=${m.clock.now} ns`);
}

// The marked snapshot is the machine's own state (no module-level map of machines), declared here
// by the report that owns it.
declare module '../machine.ts' {
  interface Machine {
    /** The last snapshot markReportSnapshot took of this machine (its machine is this one). */
    reportSnapshot?: MemorySnapshot | undefined;
  }
}

/**
 * Snapshot the machine now and make it what htmlReport(m) draws when its data names no snapshot:
 * how a scenario run by `dmasim run --html` shows its buffers while they were live. The last mark wins.
 * @example markReportSnapshot(m, { label: 'while the driver's buffers are mapped' }); // then unmap, free, unbind
 */
export function markReportSnapshot(m: Machine, opts: MemorySnapshotOptions = {}): MemorySnapshot {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'markReportSnapshot', 'm');
  const label = checkLabel(opts, 'markReportSnapshot');
  const snap = new MemorySnapshot(m, label ?? `at t=${m.clock.now} ns`);
  m.reportSnapshot = snap;
  return snap;
}

/** The snapshot markReportSnapshot last took of `m`, if any. */
export function markedSnapshot(m: Machine): MemorySnapshot | undefined {
  return m.reportSnapshot;
}
