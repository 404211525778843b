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
import { PhysContents, type PhysMemory } from './sparse-memory.ts';

/** The per-world services kernel-layer code reaches for. */
export interface KernelContext {
  readonly name: string;
  readonly klog: KernelLog;
  readonly faults: FaultInjector;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Byte access to the context's physical memory. */
  readonly memory: PhysMemory;
  /** Simulated CPUs, for per-CPU caches (IOVA range caches, flush queues). Absent: 2. */
  readonly cpus?: number;
  /** The CPU the current call runs on (which per-CPU cache, which swiotlb area). Absent: 0. */
  readonly currentCpu?: number;
}

/** The services of a context, before its memory exists. */
export type ContextServices = Omit<KernelContext, 'memory'>;

/** Build the services of a fresh, isolated context. */
export function createServices(name: string, seed = 0): ContextServices {
  const clock = new Clock();
  const logger = rootLogger().child({ machine: name });
  return { name, clock, logger, klog: new KernelLog(logger, clock), faults: new FaultInjector(seed) };
}

/** A fresh, isolated context whose memory is unbounded sparse memory (every pfn reads as zero). */
export function createContext(name: string, seed = 0): KernelContext {
  return { ...createServices(name, seed), memory: new PhysContents() };
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
