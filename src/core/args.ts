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
