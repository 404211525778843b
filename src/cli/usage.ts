/**
 * @module cli/usage
 * Bad usage of a dmasim command: the error (exit 2, printed with the command's usage) and what
 * raises it: the argument parser, output paths with no directory, machine arguments that are
 * neither a preset nor a valid machine file.
 */
import { parseArgs } from 'node:util';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KernelError } from '../core/errors.ts';
import type { MachineConfig } from '../sim/config.ts';

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


/** Bad usage when an output path's directory does not exist (checked before anything runs). */
export function checkOutputDirs(outputs: ReadonlyArray<readonly [flag: string, path: string | undefined]>, usage: string): void {
  for (const [flag, out] of outputs) {
    if (out === undefined) continue;
    const dir = dirname(resolve(out));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${flag} ${out}: no directory ${dir}`, usage);
  }
}

/**
 * A machine argument: a preset's name, or a machine file parsed and checked against the schema.
 * Anything else is bad usage, its message prefixed with `prefix` (the flag, when there is one).
 */
export async function loadMachineArg(what: string, usage: string, prefix = ''): Promise<MachineConfig> {
  const { PRESETS } = await import('../sim/config.ts');
  const preset = PRESETS[what];
  if (preset !== undefined) return preset;
  if (!existsSync(what)) throw new UsageError(`${prefix}'${what}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a file`, usage);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(what, 'utf8'));
  } catch (e) {
    throw new UsageError(`${prefix}${what} is not valid JSON: ${(e as Error).message}`, usage);
  }
  const { parseMachineConfig } = await import('../sim/machine-file.ts');
  try {
    return parseMachineConfig(json, what);
  } catch (e) {
    // The file's content is the user's input: a bad field is bad usage.
    if (e instanceof KernelError) throw new UsageError(e.message, usage);
    throw e;
  }
}
