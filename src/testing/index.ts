/**
 * @module testing
 * vitest helpers for driver tests: a one-line machine, matchers that ask the machine what the
 * kernel would report, and a runner that repeats an operation once per injected failure point.
 *
 * @example
 * import { expect, it } from 'vitest';
 * import { testMachine, installDmasimMatchers } from 'dmasim/testing';
 * installDmasimMatchers(expect);
 * it('maps and unmaps cleanly', () => {
 *   const { machine, dev } = testMachine();
 *   // ... driver code ...
 *   expect(machine).toHaveNoDmaLeaks();
 * });
 */
import { FAULT_KINDS, type FaultKind } from '../core/fault.ts';
import type { Device } from '../device/device.ts';
import type { DmaFault } from '../device/dma-engine.ts';
import type { DeviceOptions } from '../device/device.ts';
import { Machine, type MachineOptions } from '../sim/machine.ts';
import { DRIVER_PAGE_OWNERS, driverPages, driverPagesSince } from '../mm/driver-pages.ts';
import type { MmAuditBase } from '../mm/audit.ts';
import type { AuditViolation } from '../sim/audit.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { ExpectStatic } from 'vitest';
import { ACCESS_KINDS, DEBUG_KINDS, LEAK_KINDS, dmaFindings, formatFindings, type DmaFindingKind, type DmaFindingsOptions } from '../sim/findings.ts';

export { dmaFindings, formatFindings, FINDING_KINDS, LEAK_KINDS, DEBUG_KINDS, ACCESS_KINDS, type DmaFinding, type DmaFindingKind, type DmaFindingsOptions } from '../sim/findings.ts';

/** A machine and one PCI device, ready for a driver test. */
export interface TestMachine {
  readonly machine: Machine;
  readonly dev: Device;
}

/**
 * A small machine with one PCI device (64-bit masks unless told otherwise).
 * @example const { machine, dev } = testMachine({ memory: '8G' }, { dmaMask: 32 });
 */
export function testMachine(opts: Partial<MachineOptions> = {}, device: Partial<DeviceOptions> = {}): TestMachine {
  const machine = new Machine({ memory: '1G', ...opts });
  const dev = machine.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64, ...device });
  return { machine, dev };
}

/** What one failure point gave. */
export interface FailurePointResult<T> {
  /** 1-based index of the allocation that was failed. */
  readonly k: number;
  readonly result: T | undefined;
  readonly error: unknown;
  /**
   * audit() right after (and after `cleanup`), plus any DMA ledger entry the operation left live
   * (`check: 'ledger'`) and any page (alloc_pages, alloc_pages_exact, vmalloc) or kmalloc buffer it
   * allocated and did not free (`check: 'leak'`).
   */
  readonly violations: ReturnType<Machine['audit']>;
  /** Failures actually injected in this run (0 on the last run). */
  readonly injected: number;
  /** The run counted as a success (so `cleanup` ran): see {@link FailurePointOptions.succeeded}. */
  readonly succeeded: boolean;
}

/** How forEachFailurePoint runs. */
export interface FailurePointOptions {
  /** Give up after this many failure points (default 10,000). */
  readonly limit?: number;
  /**
   * Start each run from a snapshot of the one machine `make` built (default), restored before every
   * failure point: the machine and everything reachable from `make`'s result come back exactly.
   * `false`: call `make` once per failure point (for driver state kept in closures, which a snapshot
   * cannot see).
   */
  readonly snapshot?: boolean;
  /**
   * Did `op` succeed with this result? Some injected failures are absorbed (dma-iommu retries an IOVA
   * allocation above 4 GiB, dma-debug maps on without its entry), so an operation can succeed with a
   * failure injected: `cleanup` then runs too, or the success's mappings would read as leaks. Default:
   * the kernel's conventions: 0 or a positive number, `true`, or an object (not an Error) succeeded;
   * a negative errno, `null`, `undefined` or `false` failed. Give your own for an op whose failure
   * is 0 (dma_map_sg's convention). The last run (nothing injected) always counts as a success.
   */
  readonly succeeded?: (result: unknown) => boolean;
}

/** The default success test of forEachFailurePoint (see {@link FailurePointOptions.succeeded}). */
function kernelSuccess(result: unknown): boolean {
  if (typeof result === 'number') return result >= 0;
  if (typeof result === 'boolean') return result;
  return typeof result === 'object' && result !== null && !(result instanceof Error);
}

const POINT_OPTIONS = new Set(['limit', 'snapshot', 'succeeded']);

/**
 * Run `op` once per allocation point of `kind`, each time from the state `make` built: fail
 * allocation k for k = 1, 2, ... until the operation succeeds with nothing injected. `cleanup`
 * undoes a success (also one that absorbed its injected failure: {@link FailurePointOptions.succeeded});
 * then the machine is audited. Returns one record per failure point (the last one
 * is the success). `make` runs once and each point starts from a machine snapshot (see
 * {@link FailurePointOptions.snapshot}); a number for `opts` is the old `limit` argument.
 * @example
 * const runs = forEachFailurePoint('page', () => testMachine(), ({ machine }) => machine.mm.vmalloc(8192),
 *   ({ machine }, area) => { if (area !== null) machine.mm.vfree(area); }); // without it, the success's area reads as a leak
 * for (const r of runs) expect(r.violations).toEqual([]);
 */
export function forEachFailurePoint<T, M extends { machine: Machine }>(
  kind: FaultKind, make: () => M, op: (m: M) => T, cleanup?: (m: M, result: T) => void, opts: number | FailurePointOptions = {},
): FailurePointResult<T>[] {
  const o: FailurePointOptions = typeof opts === 'number' ? { limit: opts } : opts;
  const fn = 'forEachFailurePoint';
  if (typeof o !== 'object' || o === null) throw new KernelError(EINVAL, fn, 'expected a limit or options ({ limit, snapshot, succeeded })', 'opts');
  for (const key of Object.keys(o)) if (!POINT_OPTIONS.has(key)) throw new KernelError(EINVAL, fn, `unknown option ${key} (one of ${[...POINT_OPTIONS].join(', ')})`, `opts.${key}`);
  if (!FAULT_KINDS.includes(kind)) throw new KernelError(EINVAL, fn, `unknown kind ${String(kind)} (one of ${FAULT_KINDS.join(', ')})`, 'kind');
  if (typeof make !== 'function') throw new KernelError(EINVAL, fn, 'expected a function that builds { machine, ... }', 'make');
  if (typeof op !== 'function') throw new KernelError(EINVAL, fn, 'expected the operation to run', 'op');
  if (cleanup !== undefined && typeof cleanup !== 'function') throw new KernelError(EINVAL, fn, 'expected a function or undefined', 'cleanup');
  if (o.limit !== undefined && !(Number.isSafeInteger(o.limit) && o.limit >= 1)) throw new KernelError(EINVAL, fn, `expected a whole number >= 1, got ${String(o.limit)}`, 'opts.limit');
  if (o.snapshot !== undefined && typeof o.snapshot !== 'boolean') throw new KernelError(EINVAL, fn, `expected true or false, got ${String(o.snapshot)}`, 'opts.snapshot');
  if (o.succeeded !== undefined && typeof o.succeeded !== 'function') throw new KernelError(EINVAL, fn, 'expected a function of the result', 'opts.succeeded');
  const succeeded = o.succeeded ?? kernelSuccess;
  const limit = o.limit ?? 10_000;
  const out: FailurePointResult<T>[] = [];
  let made: M | undefined;
  let snap: ReturnType<Machine['snapshot']> | undefined;
  let start: PointStart | undefined;
  for (let k = 1; k <= limit; k++) {
    let m: M;
    if (o.snapshot === false || made === undefined) {
      m = make();
      if (typeof m !== 'object' || m === null || !(m.machine instanceof Machine)) {
        throw new KernelError(EINVAL, fn, 'make must return an object with the machine in it ({ machine, ... }, as testMachine does)', 'make');
      }
      start = pointStart(m.machine);
      if (o.snapshot !== false) {
        made = m;
        // Audited at the capture, so each point's audit looks only at what changed.
        snap = m.machine.snapshot({ include: [m], audit: true });
      }
    } else {
      m = made;
      m.machine.restore(snap as NonNullable<typeof snap>);
    }
    m.machine.faults.inject(kind, { nth: k });
    let result: T | undefined;
    let error: unknown;
    try {
      result = op(m);
    } catch (e) {
      error = e;
    }
    const injected = m.machine.faults.injected[kind];
    // A success undoes itself through `cleanup`, also when the injected failure was absorbed.
    const ok = error === undefined && (injected === 0 || succeeded(result));
    if (ok && cleanup !== undefined) cleanup(m, result as T);
    const left = leftBehind(m.machine, start as PointStart, ok, snap?.auditBase ?? null);
    out.push({ k, result, error, violations: [...m.machine.audit(snap === undefined ? {} : { since: snap }), ...left], injected, succeeded: ok });
    if (injected === 0) return out;
  }
  throw new Error(`forEachFailurePoint: still failing after ${limit} injection points`);
}


/** What a failure point starts from, to name what the operation left behind. */
interface PointStart {
  /** Live DMA ledger entries. */
  readonly entries: Set<unknown>;
  /** Driver-allocated pages per owner (alloc_pages, alloc_pages_exact, vmalloc). */
  readonly pages: number[];
  /** Live kmalloc objects (only drivers kmalloc: the kernel's own objects are fault points). */
  readonly objects: Set<number>;
}

function pointStart(machine: Machine): PointStart {
  return { entries: new Set(machine.dma.ledger.entries()), pages: driverPages(machine.mm), objects: new Set(machine.mm.slab.liveAddresses()) };
}

/**
 * Mappings, driver pages and kmalloc buffers the operation made and neither its failure path nor
 * `cleanup` undid (pages counted over the metadata changed since `base` when there is one).
 */
function leftBehind(machine: Machine, start: PointStart, ok: boolean, base: MmAuditBase | null): AuditViolation[] {
  const who = ok ? 'the operation and cleanup' : 'the operation\'s failure path';
  const left = machine.dma.ledger.entries().filter((e) => !start.entries.has(e)).map((e) => ({ check: 'ledger', message: `left live: ${e.describe()}` }));
  const pages = base === null ? driverPages(machine.mm) : driverPagesSince(machine.mm, base, start.pages);
  DRIVER_PAGE_OWNERS.forEach(([, call], i) => {
    const n = (pages[i] as number) - (start.pages[i] as number);
    if (n > 0) left.push({ check: 'leak', message: `left allocated: ${n} page${n === 1 ? '' : 's'} from ${call} that ${who} did not free` });
  });
  const slab = machine.mm.slab;
  // Lowest addresses first: the slab's own order is not allocation order (see core/churn-map).
  const objects = [...slab.liveAddresses()].filter((a) => !start.objects.has(a)).sort((a, b) => a - b);
  if (objects.length > 0) {
    const shown = objects.slice(0, 4).map((a) => `${slab.ksize(a)} bytes at 0x${a.toString(16)}`).join(', ');
    left.push({ check: 'leak', message: `left allocated: ${objects.length} kmalloc buffer${objects.length === 1 ? '' : 's'} (${shown}${objects.length > 4 ? ', ...' : ''}) that ${who} did not free` });
  }
  return left;
}

function asMachine(v: unknown): Machine {
  if (!(v instanceof Machine)) throw new KernelError(EINVAL, 'expect', `a dmasim matcher needs a Machine, got ${v === null ? 'null' : typeof v}`, 'received');
  return v;
}

/** A matcher's verdict on the findings of the kinds it judges. */
function judge(m: Machine, kinds: readonly DmaFindingKind[], what: string, opts: DmaFindingsOptions = {}) {
  const found = dmaFindings(m, { ...opts, kinds });
  const pass = found.length === 0;
  return { pass, message: () => (pass ? `expected ${what}, found none` : `expected no ${what}, found ${found.length}:\n${formatFindings(found)}`) };
}

/**
 * Register dmasim's matchers on vitest's `expect` (each judges {@link dmaFindings} of some kinds):
 * - `toHaveNoDmaLeaks({ live? })`: no ledger leak (a mapping, coherent buffer or pin still held by a
 *   device that is no longer bound; with `live: true` anything still live) and a clean audit();
 * - `toHaveNoDmaDebugErrors()`: dma-debug's error_count is 0 (its errors, printed or filtered) and
 *   no kernel WARN was recorded;
 * - `toHaveNoDeviceAccessViolations()`: no device access outside its live mappings or against their
 *   direction, and no CPU access to bytes the device owns;
 * - `toHaveFaulted({ device?, iova? })`: some device took a DMA fault matching the pattern.
 * @example
 * installDmasimMatchers(expect);
 * m.pci.unbind(dev);
 * expect(m).toHaveNoDmaLeaks();
 */
export function installDmasimMatchers(expect: ExpectStatic): void {
  expect.extend({
    toHaveNoDmaLeaks(received: unknown, opts: { live?: boolean } = {}) {
      return judge(asMachine(received), LEAK_KINDS, 'DMA leaks', opts.live === true ? { live: true } : {});
    },
    toHaveNoDmaDebugErrors(received: unknown) {
      return judge(asMachine(received), DEBUG_KINDS, 'dma-debug errors or WARNs', { audit: false });
    },
    toHaveNoDeviceAccessViolations(received: unknown) {
      return judge(asMachine(received), ACCESS_KINDS, 'device or CPU access violations', { audit: false });
    },
    toHaveFaulted(received: unknown, pattern: { device?: string; iova?: number } = {}) {
      const m = asMachine(received);
      const faults: DmaFault[] = [];
      for (const d of m.devices()) faults.push(...d.dma.faults);
      const hit = faults.some((f) => (pattern.device === undefined || f.device === pattern.device) && (pattern.iova === undefined || (pattern.iova >= f.iova && pattern.iova < f.iova + Math.max(1, f.length))));
      return { pass: hit, message: () => (hit ? `expected no fault matching ${JSON.stringify(pattern)}` : `expected a fault matching ${JSON.stringify(pattern)}, saw ${JSON.stringify(faults)}`) };
    },
  });
}

/**
 * Audit every machine a test made, after each test: register with vitest's afterEach and hand
 * machines to the returned `track` (wrap testMachine's machine too: `track(testMachine().machine)`).
 * @example
 * const track = auditAfterEach(afterEach, expect);
 * it('...', () => { const m = track(new Machine({ memory: '1G' })); ... });
 */
export function auditAfterEach(afterEach: (fn: () => void) => void, expect: ExpectStatic): (m: Machine) => Machine {
  let machines: Machine[] = [];
  afterEach(() => {
    const done = machines;
    machines = [];
    for (const m of done) expect(m.audit(), `audit of machine ${m.name}`).toEqual([]);
  });
  return (m) => {
    machines.push(m);
    return m;
  };
}

/** The matchers installDmasimMatchers adds. */
export interface DmasimMatchers<R = unknown> {
  toHaveNoDmaLeaks(opts?: { live?: boolean }): R;
  toHaveNoDmaDebugErrors(): R;
  toHaveNoDeviceAccessViolations(): R;
  toHaveFaulted(pattern?: { device?: string; iova?: number }): R;
}

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface Matchers<T = any> extends DmasimMatchers<T> {}
}
