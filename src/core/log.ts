/**
 * @module core/log
 * The library's logger: pino, JSON lines; pretty only when stderr is a terminal is left to the CLI.
 * The level comes from `LOG_LEVEL` (default `warn`, so the library is quiet unless asked).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

let root: Logger | undefined;

/**
 * The process-wide root logger (created on first use). Machines log through children of it.
 * @example rootLogger().child({ machine: 'm0' }).info('booted')
 */
export function rootLogger(): Logger {
  root ??= pino({ name: 'dmasim', level: process.env['LOG_LEVEL'] ?? 'warn' }, pino.destination(2));
  return root;
}

/** Replace the root logger (tests, the CLI). */
export function setRootLogger(logger: Logger): void {
  root = logger;
}
