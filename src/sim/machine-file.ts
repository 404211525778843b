/**
 * @module sim/machine-file
 * Machine files (machine.json) checked against {@link MACHINE_SCHEMA} before a machine is built:
 * an unknown key, a wrong type or a bad size is refused with the JSON path of the field, instead of
 * a default silently staying in place or a string reaching the DMA code as a number.
 *
 * ajv validates: a well-kept, fast validator of standard JSON Schema, so the published schema that
 * editors use and the check the CLI runs are one and the same document.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { MachineConfig } from './config.ts';
import { MACHINE_SCHEMA } from './machine-schema.ts';

let validator: ValidateFunction | null = null;

/** The compiled validator, made on first use (compiling costs a few milliseconds). */
function validate(): ValidateFunction {
  validator ??= new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(MACHINE_SCHEMA);
  return validator;
}

/** The keys of a JSON Pointer (`/devices/0/name` → devices, 0, name), unescaped. */
function pointerKeys(instancePath: string): string[] {
  return instancePath === '' ? [] : instancePath.slice(1).split('/').map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** `/devices/0/maxSegmentSize` as `devices[0].maxSegmentSize`; the root as `machine`. */
function jsonPathOf(instancePath: string): string {
  let out = '';
  for (const part of pointerKeys(instancePath)) out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? 'machine' : out;
}

/** What one schema error asks for, in words. */
function expected(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type': return p['type'] === 'integer' ? 'a whole number' : p['type'] === 'object' ? 'an object' : p['type'] === 'array' ? 'an array' : `a ${String(p['type'])}`;
    case 'pattern': return "a size string such as '16G' or '256K'";
    case 'enum': return `one of ${(p['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const': return JSON.stringify(p['allowedValue']);
    case 'minimum': return `at least ${String(p['limit'])}`;
    case 'maximum': return `at most ${String(p['limit'])}`;
    case 'minLength': return 'a non-empty string';
    case 'minItems': case 'maxItems': return `${String(p['limit'])} items`;
    default: return e.message ?? e.keyword;
  }
}

/**
 * One line per field at fault. A field under `oneOf` (a size: number or string; `iommu`: false or
 * options) fails every branch: their expectations are joined with "or", and when one branch got
 * further (an object with a bad key inside), its deeper error is the one reported.
 */
function describeErrors(errors: readonly ErrorObject[], json: unknown): Array<{ path: string; message: string }> {
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    if (e.keyword === 'oneOf' || e.keyword === 'if') continue;
    let path = e.instancePath;
    const key = e.keyword === 'additionalProperties' ? (e.params as { additionalProperty: string }).additionalProperty
      : e.keyword === 'required' ? (e.params as { missingProperty: string }).missingProperty : undefined;
    if (key !== undefined) path += `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    const list = byPath.get(path) ?? [];
    list.push(e);
    byPath.set(path, list);
  }
  // A path whose descendants also failed was matched by the deeper branch: report only the deeper.
  const paths = [...byPath.keys()].filter((p) => ![...byPath.keys()].some((q) => q !== p && q.startsWith(`${p}/`)));
  return paths.map((path) => {
    const errs = byPath.get(path) as ErrorObject[];
    const first = errs[0] as ErrorObject;
    if (first.keyword === 'additionalProperties') {
      const key = (first.params as { additionalProperty: string }).additionalProperty;
      return { path: jsonPathOf(path), message: `unknown key ${JSON.stringify(key)}` };
    }
    if (first.keyword === 'required') return { path: jsonPathOf(path), message: 'missing (required)' };
    const got = valueAt(json, path);
    const wants = [...new Set(errs.map(expected))].join(' or ');
    return { path: jsonPathOf(path), message: `expected ${wants}, got ${JSON.stringify(got)}` };
  });
}

function valueAt(json: unknown, instancePath: string): unknown {
  let v = json;
  for (const part of pointerKeys(instancePath)) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

/**
 * Check parsed machine.json content against the schema and return it as a {@link MachineConfig}.
 * @param source names the file in the error.
 * @throws KernelError EINVAL naming the JSON path of the first field at fault (`arg`), the message
 *   listing every field at fault.
 * @example
 * const config = parseMachineConfig(JSON.parse(readFileSync('machine.json', 'utf8')), 'machine.json');
 * const { machine, devices } = buildMachine(config);
 */
export function parseMachineConfig(json: unknown, source = 'machine.json'): MachineConfig {
  if (typeof source !== 'string') throw new KernelError(EINVAL, 'parseMachineConfig', `expected the file name, got ${typeof source}`, 'source');
  const check = validate();
  if (check(json)) {
    // "$schema" is for editors, not a machine option.
    const { $schema: _editorSchema, ...config } = json as MachineConfig & { $schema?: string };
    return config;
  }
  const problems = describeErrors(check.errors ?? [], json);
  const head = problems[0] ?? { path: 'machine', message: 'does not match the machine schema' };
  const rest = problems.slice(1).map((p) => `; ${p.path}: ${p.message}`).join('');
  throw new KernelError(EINVAL, source, `${head.message}${rest}`, head.path);
}
