/**
 * @module core/clock
 * The machine's virtual clock: nanoseconds, advanced only by the simulation, with timers.
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

interface Timer { readonly at: number; readonly seq: number; readonly fire: () => void }

/**
 * Deterministic virtual time. Timers fire in (time, creation) order when time is advanced past them.
 * @example
 * clock.setTimeout(10_000_000, () => flush()); clock.advance(10_000_000); // flush ran
 */
export class Clock {
  private _now = 0;
  private _seq = 0;
  // INVARIANT: timers is sorted by (at, seq); every timer's at >= the time it was armed.
  private _timers: Timer[] = [];

  /** Current virtual time, ns. */
  get now(): number {
    return this._now;
  }

  /** Move time forward by `ns`, firing due timers in order. */
  advance(ns: number): void {
    if (!(ns >= 0) || !Number.isFinite(ns)) throw new KernelError(EINVAL, 'Clock.advance', `expected a non-negative number of ns, got ${ns}`, 'ns');
    const target = this._now + ns;
    for (;;) {
      const t = this._timers[0];
      if (t === undefined || t.at > target) break;
      this._timers.shift();
      this._now = Math.max(this._now, t.at);
      t.fire();
    }
    this._now = target;
  }

  /** Arm a one-shot timer `delayNs` from now; returns a cancel function. */
  setTimeout(delayNs: number, fire: () => void): () => void {
    if (typeof delayNs !== 'number' || !(delayNs >= 0) || !Number.isFinite(delayNs)) throw new KernelError(EINVAL, 'Clock.setTimeout', `expected a non-negative delay in ns, got ${String(delayNs)}`, 'delayNs');
    if (typeof fire !== 'function') throw new KernelError(EINVAL, 'Clock.setTimeout', 'expected a function', 'fire');
    const timer: Timer = { at: this._now + Math.max(0, delayNs), seq: this._seq++, fire };
    let i = this._timers.length;
    while (i > 0 && (this._timers[i - 1] as Timer).at > timer.at) i--;
    this._timers.splice(i, 0, timer);
    return () => {
      const k = this._timers.indexOf(timer);
      if (k >= 0) this._timers.splice(k, 1);
    };
  }

  /** Number of armed timers. */
  get pending(): number {
    return this._timers.length;
  }
}
