/** @module core: errno values, errors, sizes, RNG, clock, kernel log, fault injection. */
export * from './errno.ts';
export * from './errors.ts';
export * from './size.ts';
export * from './rng.ts';
export * from './clock.ts';
export * from './kernel-log.ts';
export * from './fault.ts';
export * from './context.ts';
export * from './log.ts';
export * from './args.ts';
export * from './sparse-memory.ts';
export * from './page.ts';
export * from './bits.ts';
export * from './trace.ts';
