/**
 * @module core/kernel-log
 * The machine's dmesg: kernel WARNs, BUG notices and info lines, in the kernel's wording, kept where a
 * test can assert on them and logged through pino.
 */
import type { Logger } from 'pino';

/** How serious a kernel message is. */
export type KernelLevel = 'warn' | 'err' | 'notice' | 'info';

/** One line of the simulated kernel log. */
export interface KernelMessage {
  /** `WARN` for a WARN_ON splat, otherwise the printk level. */
  readonly kind: 'WARN' | 'printk';
  readonly level: KernelLevel;
  /** The kernel function that printed it. */
  readonly fn: string;
  /** The message, in the kernel's words. */
  readonly message: string;
  /** Virtual time of the message, ns. */
  readonly time: number;
}

/** Messages the log keeps (older ones are dropped and counted, as the printk ring overwrites them). */
export const KLOG_MAX = 16384;

/** Source of virtual time for timestamps. */
export interface TimeSource { readonly now: number }

/**
 * The kernel log of one machine.
 * @example
 * const log = new KernelLog(logger, clock);
 * log.warn('sg_alloc_append_table_from_pages', 'WARN_ON(max_segment < PAGE_SIZE)');
 * log.warnings().length // 1
 */
export class KernelLog {
  // INVARIANT: messages are the newest at most KLOG_MAX printed, in order; warnCount counts every
  //   WARN ever printed (those kept plus droppedWarnings).
  readonly messages: KernelMessage[] = [];
  /** Messages dropped to keep the log bounded (the printk ring overwrote them). */
  dropped = 0;
  /** WARNs among them. */
  droppedWarnings = 0;
  private _warnCount = 0;
  private readonly _logger: Logger;
  private readonly _time: TimeSource;
  /** WARN_ON_ONCE sites that fired already. */
  private readonly _once = new Set<string>();

  constructor(logger: Logger, time: TimeSource) {
    this._logger = logger;
    this._time = time;
  }

  /** Record a kernel `WARN_ON`/`WARN` splat from `fn`. */
  warn(fn: string, message: string): void {
    this._warnCount++;
    this._push({ kind: 'WARN', level: 'warn', fn, message, time: this._time.now });
  }

  /** `WARN_ON_ONCE` / `WARN_ONCE`: only the first hit per `site` is recorded. Returns true when it fired. */
  warnOnce(site: string, fn: string, message: string): boolean {
    if (this._once.has(site)) return false;
    this._once.add(site);
    this.warn(fn, message);
    return true;
  }

  /** A printk line (`pr_err`, `dev_info`, ...). */
  printk(level: KernelLevel, fn: string, message: string): void {
    this._push({ kind: 'printk', level, fn, message, time: this._time.now });
  }

  /** Number of WARN splats so far. */
  get warnCount(): number {
    return this._warnCount;
  }

  /** The WARN splats, optionally only those from `fn`. */
  warnings(fn?: string): KernelMessage[] {
    return this.messages.filter((m) => m.kind === 'WARN' && (fn === undefined || m.fn === fn));
  }

  /** Forget everything recorded (WARN_ONCE memory included). */
  clear(): void {
    this.messages.length = 0;
    this.dropped = 0;
    this.droppedWarnings = 0;
    this._warnCount = 0;
    this._once.clear();
  }

  private _listener: ((m: KernelMessage) => void) | undefined;

  /** Be told of every message (the machine's trace). */
  onMessage(listener: ((m: KernelMessage) => void) | undefined): void {
    this._listener = listener;
  }

  private _push(m: KernelMessage): void {
    if (this.messages.length >= KLOG_MAX) {
      const cut = this.messages.length - KLOG_MAX / 2;
      for (let i = 0; i < cut; i++) if ((this.messages[i] as KernelMessage).kind === 'WARN') this.droppedWarnings++;
      this.dropped += cut;
      this.messages.splice(0, cut);
    }
    this.messages.push(m);
    this._listener?.(m);
    const line = { kernel: m.kind, fn: m.fn, t: m.time };
    if (m.level === 'info' || m.level === 'notice') this._logger.info(line, m.message);
    else this._logger.warn(line, m.message);
  }
}
