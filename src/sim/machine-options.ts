/**
 * @module sim/machine-options
 * The checks on {@link MachineOptions} that no deeper constructor makes: unknown keys (a misspelt
 * key would leave a default in place silently) and the plain scalar options. Sizes, the swiotlb,
 * IOMMU, dma-debug and fragment options are checked where they are used.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { MachineOptions } from './machine.ts';
import { parseSwiotlbParam } from '../dma/swiotlb/boot.ts';

const MACHINE_KEYS: ReadonlySet<string> = new Set<keyof MachineOptions>([
  'memory', 'deviceMemory', 'seed', 'name', 'cpus', 'lowReserve', 'fragment', 'swiotlb', 'arch', 'dmaDebug', 'iommu', 'trace', 'accessChecks',
]);

/**
 * Refuse unknown keys and badly typed scalars.
 * @throws KernelError EINVAL naming the option.
 * @example checkMachineOptions({ memory: '1G', cpus: 0 }) // throws: Machine: cpus: ...
 */
export function checkMachineOptions(opts: MachineOptions): void {
  const bad = (arg: string, what: string): never => { throw new KernelError(EINVAL, 'Machine', what, arg); };
  for (const k of Object.keys(opts)) if (!MACHINE_KEYS.has(k)) bad(k, `unknown option (one of ${[...MACHINE_KEYS].join(', ')})`);
  const o = opts as unknown as Record<string, unknown>;
  if (o['seed'] !== undefined && !(Number.isSafeInteger(o['seed']) && (o['seed'] as number) >= 0)) bad('seed', `expected a whole number >= 0, got ${String(o['seed'])}`);
  if (o['name'] !== undefined && (typeof o['name'] !== 'string' || o['name'] === '')) bad('name', `expected a non-empty string, got ${String(o['name'])}`);
  if (o['cpus'] !== undefined && !(Number.isInteger(o['cpus']) && (o['cpus'] as number) >= 1 && (o['cpus'] as number) <= 1024)) bad('cpus', `expected a whole number in [1, 1024], got ${String(o['cpus'])}`);
  if (o['arch'] !== undefined && o['arch'] !== 'x86_64' && o['arch'] !== 'arm64') bad('arch', `expected 'x86_64' or 'arm64', got ${String(o['arch'])}`);
  for (const k of ['trace', 'accessChecks'] as const) if (o[k] !== undefined && typeof o[k] !== 'boolean') bad(k, `${k} is true or false, got ${String(o[k])}`);
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const keysOf = (arg: string, v: Record<string, unknown>, known: readonly string[]): void => {
    for (const k of Object.keys(v)) if (!known.includes(k)) bad(`${arg}.${k}`, `unknown option (one of ${known.join(', ')})`);
  };
  const sw = o['swiotlb'];
  if (typeof sw === 'string') {
    parseSwiotlbParam(sw);
  } else if (sw !== undefined && sw !== false) {
    if (!isObject(sw)) bad('swiotlb', `expected false or { size, force, areas }, got ${String(sw)}`);
    keysOf('swiotlb', sw as Record<string, unknown>, ['size', 'force', 'areas', 'at']);
    const force = (sw as Record<string, unknown>)['force'];
    if (force !== undefined && typeof force !== 'boolean') bad('swiotlb.force', `force is true or false, got ${String(force)}`);
  }
  const io = o['iommu'];
  if (io !== undefined && io !== false) {
    if (!isObject(io)) bad('iommu', `expected false or { mode, addressWidth, ... }, got ${String(io)}`);
    keysOf('iommu', io as Record<string, unknown>, ['mode', 'format', 'addressWidth', 'granule', 'iotlbSize', 'singleQueue', 'faultLogSize', 'forcedac', 'outputWidth']);
  }
  const dbg = o['dmaDebug'];
  if (dbg !== undefined && typeof dbg !== 'boolean' && !isObject(dbg)) bad('dmaDebug', `expected true, false or options, got ${String(dbg)}`);
  const frag = o['fragment'];
  if (frag !== undefined) {
    if (!isObject(frag)) bad('fragment', `expected { level } or { run, gap }, got ${String(frag)}`);
    keysOf('fragment', frag as Record<string, unknown>, ['level', 'run', 'gap', 'seed']);
  }
}
