/**
 * @module core/fault
 * Fault injection, like the kernel's fail_page_alloc / failslab: fail the Nth allocation of a kind,
 * every one after N, or at random with probability p under the machine's seed.
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';
import { Rng } from './rng.ts';

/** The kinds of allocation that can be made to fail. */
export const FAULT_KINDS = ['page', 'sg-chunk', 'iova', 'pgtable', 'swiotlb', 'dma-debug', 'coherent', 'kmalloc'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A rule for one kind. `nth` counts from 1 among allocations of that kind made after the rule was set. */
export interface FaultRule {
  /** Fail exactly the nth allocation (1-based). */
  readonly nth?: number;
  /** Fail every allocation from the nth on (1-based). */
  readonly after?: number;
  /** Fail each allocation with this probability (seeded). */
  readonly probability?: number;
  /** Stop after this many injected failures. */
  readonly times?: number;
}

/** Called on every injected failure (the machine records it in the trace). */
export type FaultListener = (kind: FaultKind, count: number) => void;

interface ArmedRule { rule: FaultRule; seen: number; failed: number }

/**
 * Per-machine fault injection.
 * @example
 * machine.faults.inject('page', { nth: 3 });   // the third page allocation from now fails
 * machine.faults.shouldFail('page')            // called by allocators
 */
export class FaultInjector {
  // INVARIANT: counts[k] is the number of allocations of kind k attempted since construction.
  readonly counts: Record<FaultKind, number>;
  readonly injected: Record<FaultKind, number>;
  private readonly _rules = new Map<FaultKind, ArmedRule>();
  private readonly _rng: Rng;
  private _listener: FaultListener | undefined;

  constructor(seed: number) {
    this._rng = new Rng(seed ^ 0x5a5a5a5a);
    this.counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
    this.injected = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  }

  /** Arm a rule for `kind`, replacing any previous one. */
  inject(kind: FaultKind, rule: FaultRule): void {
    if (!FAULT_KINDS.includes(kind)) throw new KernelError(EINVAL, 'FaultInjector.inject', `unknown kind ${String(kind)} (one of ${FAULT_KINDS.join(', ')})`, 'kind');
    if (typeof rule !== 'object' || rule === null) throw new KernelError(EINVAL, 'FaultInjector.inject', 'expected a rule { nth | after | probability, times? }', 'rule');
    for (const key of ['nth', 'after', 'times'] as const) {
      const v = rule[key];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw new KernelError(EINVAL, 'FaultInjector.inject', `must be a whole number >= 1, got ${v}`, key);
    }
    const p = rule.probability;
    if (p !== undefined && !(p >= 0 && p <= 1)) throw new KernelError(EINVAL, 'FaultInjector.inject', `must be in [0, 1], got ${p}`, 'probability');
    this._rules.set(kind, { rule, seen: 0, failed: 0 });
  }

  /** Disarm `kind`, or every kind. */
  clear(kind?: FaultKind): void {
    if (kind === undefined) this._rules.clear();
    else this._rules.delete(kind);
  }

  /** True when any rule is armed. */
  get armed(): boolean {
    return this._rules.size > 0;
  }

  /** Register the listener told of each injected failure. */
  onFault(listener: FaultListener | undefined): void {
    this._listener = listener;
  }

  /** Count `n` allocations of `kind` that no rule is watching (bulk paths; only valid while unarmed). */
  count(kind: FaultKind, n: number): void {
    this.counts[kind] += n;
  }

  /** Count one allocation of `kind`; true means the allocator must fail it. */
  shouldFail(kind: FaultKind): boolean {
    this.counts[kind]++;
    // Nothing armed (every allocation of a run without injection): no Map look-up.
    if (this._rules.size === 0) return false;
    const armed = this._rules.get(kind);
    if (armed === undefined) return false;
    const { rule } = armed;
    const n = ++armed.seen;
    if (rule.times !== undefined && armed.failed >= rule.times) return false;
    let fail = false;
    if (rule.nth !== undefined && n === rule.nth) fail = true;
    if (rule.after !== undefined && n >= rule.after) fail = true;
    if (rule.probability !== undefined && this._rng.float() < rule.probability) fail = true;
    if (!fail) return false;
    armed.failed++;
    this.injected[kind]++;
    this._listener?.(kind, n);
    return true;
  }
}
