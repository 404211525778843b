/**
 * @module core/context
 * What every kernel-layer object needs from the world it lives in: the kernel log, fault injection,
 * the clock and a logger. A Machine is one; {@link defaultContext} serves code that names no machine.
 */
import type { Logger } from 'pino';
import { Clock } from './clock.ts';
import { FaultInjector } from './fault.ts';
import { KernelLog } from './kernel-log.ts';
import { rootLogger } from './log.ts';

/** The per-world services kernel-layer code reaches for. */
export interface KernelContext {
  readonly name: string;
  readonly klog: KernelLog;
  readonly faults: FaultInjector;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Build a fresh, isolated context. */
export function createContext(name: string, seed = 0): KernelContext {
  const clock = new Clock();
  const logger = rootLogger().child({ machine: name });
  return { name, clock, logger, klog: new KernelLog(logger, clock), faults: new FaultInjector(seed) };
}

let fallback: KernelContext | undefined;

/**
 * The context used by kernel-layer objects created without a machine (e.g. `new SgTable()`):
 * its kernel log holds their WARNs.
 * @example new SgTable(); defaultContext().klog.warnings()
 */
export function defaultContext(): KernelContext {
  fallback ??= createContext('default');
  return fallback;
}
