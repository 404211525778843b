/**
 * @module cli/usage
 * Bad usage of a dmasim command: the error (exit 2, printed with the command's usage) and the
 * argument parser that raises it.
 */
import { parseArgs } from 'node:util';

/** Bad usage (exit 2): the message, then the usage of the command that was misused. */
export class UsageError extends Error {
  readonly usage: string;
  constructor(message: string, usage: string) {
    super(message);
    this.usage = usage;
  }
}


type ParseOptions = NonNullable<Parameters<typeof parseArgs>[0]>['options'];
/** What parseCommandArgs gives for `options`. */
export type ParsedCommand<O extends ParseOptions> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

/** parseArgs, with an unknown flag or a missing value reported as bad usage of this command. */
export function parseCommandArgs<O extends ParseOptions>(args: string[], options: O, usage: string): ParsedCommand<O> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message, usage);
  }
}

