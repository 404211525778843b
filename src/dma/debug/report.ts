/**
 * @module dma/debug/report
 * How dma-debug prints: `err_printk` (count every error, print it as a WARN only when the driver
 * filter lets the device through and the quota allows, spend the quota even when hidden), the
 * once-per-boot WARN and the `pr_info` / `pr_warn` / `pr_err` lines, which bypass both the count
 * and the filter. Everything printed goes to the machine's kernel log and to {@link Reporter.reports}.
 */
import { pushBounded } from '../../core/bounded.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import { devDriverString, type DebugDevice, type DebugDriver } from './device.ts';
import type { DriverFilter } from './filter.ts';

/** The `pr_fmt` prefix of every dma-debug line. */
export const DMA_API_PREFIX = 'DMA-API: ';

/** Reports and errors kept (error_count counts every one). */
export const REPORTS_MAX = 16384;

/** What kind of line a report is. */
export type DmaDebugReportKind = 'error' | 'warn-once' | 'info' | 'warning' | 'err';

/** One line (or two, for the leak report) that dma-debug printed. */
export interface DmaDebugReport {
  /**
   * `error`: an err_printk report (a WARN, counted in error_count); `warn-once`: the overlap-counter
   * WARN_ONCE; `info` / `warning` / `err`: pr_info / pr_warn / pr_err lines.
   */
  readonly kind: DmaDebugReportKind;
  /** The kernel function that printed it. */
  readonly fn: string;
  /** Exactly as printed, prefix and trailing newline (when the kernel has one) included. */
  readonly text: string;
}

/** One err_printk call, printed or not. */
export interface DmaDebugError {
  readonly fn: string;
  /** `dev_name()`. */
  readonly device: string;
  /** `dev_driver_string()` at the time (the bus name when no driver is bound). */
  readonly driver: string;
  /** The message after `DMA-API: <driver> <device>: `. */
  readonly message: string;
  /** The full text, as printed (or as it would have been). */
  readonly text: string;
  /** False when the driver filter or the quota hid it. */
  readonly printed: boolean;
}

/**
 * Error counting and printing for one machine.
 * @example
 * const r = new Reporter(machine.klog, new DriverFilter());
 * r.error(dev, dev.driver, 'check_unmap', 'device driver tries to free an invalid DMA memory address\n');
 * r.error_count // 1
 */
export class Reporter {
  // INVARIANT: error_count, num_errors and all_errors are u32 (0 .. 2^32-1); error_count ===
  //   (errors.length + errorsDropped) modulo 2^32; reports holds the newest REPORTS_MAX lines
  //   printed, in order (reportsDropped counts the older ones).
  /** `error_count`: every error ever found, printed or not. */
  error_count = 0;
  /** `num_errors` (debugfs `num_errors`): how many more errors to print. */
  num_errors = 1;
  /** `show_all_errors` (debugfs `all_errors`): non-zero prints every error. */
  all_errors = 0;
  readonly reports: DmaDebugReport[] = [];
  readonly errors: DmaDebugError[] = [];
  /** Older reports and errors dropped to keep the lists bounded (error_count still counts them). */
  reportsDropped = 0;
  errorsDropped = 0;
  private readonly _klog: KernelLog;
  private readonly _filter: DriverFilter;
  private readonly _once = new Set<string>();

  constructor(klog: KernelLog, filter: DriverFilter) {
    this._klog = klog;
    this._filter = filter;
  }

  /**
   * `err_printk(dev, ...)`: count, print if the filter and quota allow, spend the quota.
   * @param driver the device's driver pointer as read at the time
   * @param message the message after the `<driver> <device>: ` label, with its newline if it has one
   */
  error(dev: DebugDevice, driver: DebugDriver | null | undefined, fn: string, message: string): void {
    this.error_count = (this.error_count + 1) % 2 ** 32;
    const label = devDriverString(dev, driver);
    const text = `${DMA_API_PREFIX}${label} ${dev.name}: ${message}`;
    const printed = this._filter.passes(driver) && (this.all_errors !== 0 || this.num_errors > 0);
    if (printed) {
      this._klog.warn(fn, text);
      this.reportsDropped += pushBounded(this.reports, { kind: 'error', fn, text }, REPORTS_MAX);
    }
    if (this.all_errors === 0 && this.num_errors > 0) this.num_errors--;
    this.errorsDropped += pushBounded(this.errors, { fn, device: dev.name, driver: label, message, text, printed }, REPORTS_MAX);
  }

  /** A `pr_info` / `pr_warn` / `pr_err` line (the prefix is added here). */
  printk(kind: 'info' | 'warning' | 'err', fn: string, message: string): void {
    const text = DMA_API_PREFIX + message;
    this._klog.printk(kind === 'warning' ? 'warn' : kind, fn, text);
    this.reportsDropped += pushBounded(this.reports, { kind, fn, text }, REPORTS_MAX);
  }

  /** `pr_err_once`: a `pr_err` line printed the first time `site` is reached. */
  errOnce(site: string, fn: string, message: string): void {
    if (this._once.has(site)) return;
    this._once.add(site);
    this.printk('err', fn, message);
  }

  /** `WARN_ONCE` outside the error path: printed the first time `site` is reached, never counted. */
  warnOnce(site: string, fn: string, message: string): void {
    if (this._once.has(site)) return;
    this._once.add(site);
    const text = DMA_API_PREFIX + message;
    this._klog.warn(fn, text);
    this.reportsDropped += pushBounded(this.reports, { kind: 'warn-once', fn, text }, REPORTS_MAX);
  }
}
