/**
 * @module core/log
 * The library's logger: pino, JSON lines; pretty only when stderr is a terminal is left to the CLI.
 * The level comes from `LOG_LEVEL` (default `silent`: the library says nothing unless asked; the
 * CLI turns errors on). A driver that faults millions of times must not fill a pipe with warnings.
 */
import { pino, type Logger } from 'pino';
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

export type { Logger };

let root: Logger | undefined;

/** pino's levels, and silent. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * `LOG_LEVEL` when it names a level, else `fallback` (an unknown level would make pino throw).
 * @example logLevelFromEnv('silent') // 'warn' when LOG_LEVEL=warn
 */
export function logLevelFromEnv(fallback: string): string {
  const v = process.env['LOG_LEVEL'];
  return v !== undefined && (LOG_LEVELS as readonly string[]).includes(v) ? v : fallback;
}

/**
 * The process-wide root logger (created on first use). Machines log through children of it.
 * @example rootLogger().child({ machine: 'm0' }).info('booted')
 */
export function rootLogger(): Logger {
  root ??= pino({ name: 'dmasim', level: logLevelFromEnv('silent') }, pino.destination(2));
  return root;
}

/**
 * Replace the root logger (tests, the CLI). Anything but a pino-like logger is refused, so a bad
 * call cannot break every later Machine.
 * @throws KernelError EINVAL naming `logger`.
 */
export function setRootLogger(logger: Logger): void {
  const l = logger as unknown as Record<string, unknown> | null;
  const methods = ['child', 'info', 'warn', 'error', 'debug'];
  if (typeof l !== 'object' || l === null || methods.some((k) => typeof l[k] !== 'function')) {
    throw new KernelError(EINVAL, 'setRootLogger', `expected a pino logger (with ${methods.join(', ')})`, 'logger');
  }
  root = logger;
}
