/**
 * @module core/snapshot
 * Object-graph snapshots restored in place: `captureGraph(root)` records, for every object reachable
 * from `root`, a shallow copy of its state (fields, array elements, Map and Set entries, typed-array
 * bytes) whose references still point at the original objects; `restore()` writes those states back
 * into the same objects. Every object that existed at the capture gets back exactly the state it had,
 * so every reference anyone holds (a Device, an SGTable, a closure that captured an object) sees the
 * old world again; objects made after the capture simply drop out of the graph.
 *
 * The rule this puts on the code it captures (see the machine's INVARIANT in sim/machine.ts): state
 * lives in own properties, arrays, Maps, Sets and typed arrays, never in `#private` fields, WeakMaps
 * or variables a closure captured (closures are shared, not copied). A class whose state is better
 * captured another way (memory contents: copy-on-write) implements {@link SNAPSHOT_STATE} and
 * {@link RESTORE_STATE}; an object that must never be copied (a logger, a stream) is marked with
 * {@link markShared}.
 *
 * @example
 * const snap = captureGraph(world);
 * world.counter++; world.list.push(x);
 * snap.restore(); // counter and list as they were; restore again as often as you like
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';
import { captureChunks, restoreChunks } from './byte-chunks.ts';

/** A hooked state may say how many bytes its capture copied (counted in {@link GraphSnapshot.bytes}). */
export interface CopiedBytes {
  readonly copied: number;
}

// INVARIANT: lastChunks maps a typed array or ArrayBuffer to the chunks of its last capture or
//   restore: a guess to share chunks with, always verified by comparing bytes (never graph state).
const lastChunks = new WeakMap<object, readonly Uint8Array[]>();

/** A class with its own capture: returns an opaque state {@link RESTORE_STATE} takes back. */
export const SNAPSHOT_STATE: unique symbol = Symbol.for('dmasim.snapshotState');
/** Restore what {@link SNAPSHOT_STATE} returned (possibly many times). */
export const RESTORE_STATE: unique symbol = Symbol.for('dmasim.restoreState');

/** An object with its own capture and restore. */
export interface SnapshotHooks {
  [SNAPSHOT_STATE](): unknown;
  [RESTORE_STATE](state: unknown): void;
}

// INVARIANT: sharedObjects holds objects no snapshot copies or restores (loggers, streams, caches
//   shared by every machine); weak, so marking keeps nothing alive.
const sharedObjects = new WeakSet<object>();

/**
 * Mark an object (and so everything only it reaches) as outside every snapshot: shared, never
 * copied or restored.
 * @example markShared(machine.logger)
 */
export function markShared<T extends object>(obj: T): T {
  sharedObjects.add(obj);
  return obj;
}

/** Stores `vals[j]` into `o[names[j]]` for one key list: see {@link fieldWriter}. */
type FieldWriter = (o: Record<string, unknown>, vals: readonly unknown[]) => void;

// INVARIANT: fieldWriters maps a key list (its JSON) to the writer of exactly those keys in
//   that order; at most MAX_FIELD_WRITERS entries (past that, the generic loop).
const fieldWriters = new Map<string, FieldWriter>();
const MAX_FIELD_WRITERS = 4096;
let codegenRefused = false;

/**
 * A function storing each of an object's captured fields by a constant key, made once per key list
 * (per class shape, in practice). A restore wrote fields with computed keys, a megamorphic keyed
 * store per field (~400 objects of ~8 fields on a test machine: most of a restore, bench/RESULTS.md,
 * session 10); a constant key in a function that sees one shape is a plain store. Null when code
 * generation is refused or the cache is full: the caller loops instead.
 */
function fieldWriter(names: readonly string[], n: number): FieldWriter | null {
  if (codegenRefused) return null;
  const used = n === names.length ? names : names.slice(0, n);
  // JSON of the list: unambiguous whatever the keys hold (a separator character could occur in one).
  const id = JSON.stringify(used);
  let w = fieldWriters.get(id);
  if (w !== undefined) return w;
  if (fieldWriters.size >= MAX_FIELD_WRITERS) return null;
  // Keys are quoted by JSON.stringify: no key can escape its string literal.
  // Strict, as the loop it replaces: a read-only field or a non-extensible object throws rather
  // than restoring silently wrong.
  const body = `'use strict';\n${used.map((k, j) => `o[${JSON.stringify(k)}] = v[${j}];`).join('\n')}`;
  try {
    w = new Function('o', 'v', body) as FieldWriter;
  } catch (e) {
    // node --disallow-code-generation-from-strings (or a CSP) refuses: loop instead. Anything else
    // (a key that broke out of its literal) is a bug here.
    if (!(e instanceof EvalError)) throw e;
    codegenRefused = true;
    return null;
  }
  fieldWriters.set(id, w);
  return w;
}

/** How a recorded object's state is kept. */
const Kind = { Object: 0, Literal: 1, Array: 2, Map: 3, Set: 4, Typed: 5, Hooked: 6 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

/** What one capture recorded. */
export interface GraphSnapshot {
  /** Objects recorded (the graph's size). */
  readonly objects: number;
  /** Bytes of typed-array and buffer contents copied. */
  readonly bytes: number;
  /** Put every recorded object back as it was at the capture. Repeatable. */
  restore(): void;
}

function isPlainLiteral(o: object): boolean {
  const p = Object.getPrototypeOf(o) as unknown;
  return p === Object.prototype || p === null;
}

/**
 * Capture the state of everything reachable from `root` (see the module doc).
 * @throws KernelError EINVAL when the graph holds state a snapshot cannot restore (a WeakMap,
 *   WeakSet or WeakRef, a non-writable data property), naming where it was found.
 * @example const snap = captureGraph(machine); ...; snap.restore();
 */
export function captureGraph(root: object): GraphSnapshot {
  if (typeof root !== 'object' || root === null) throw new KernelError(EINVAL, 'captureGraph', 'expected an object', 'root');
  // INVARIANT: objs[i], kinds[i], states[i] and keys[i] describe one recorded object; keys[i] is
  //   the own property names (Object/Literal) or undefined; seen holds every object visited.
  const objs: object[] = [];
  const kinds: Kind[] = [];
  const states: unknown[] = [];
  const keys: Array<string[] | undefined> = [];
  // counts[i]: for an Object/Literal whose for-in walk sees exactly its own keys, their number
  //   (the cheap shape check at restore); -1 otherwise (the exact check).
  const counts: number[] = [];
  // writers[i]: the field writer of an Object/Literal's data keys once made (index i, sparse) (from the second
  //   restore on: compiling one per key list cost a process's first snapshot ~10 ms, which a
  //   snapshot restored once never earns back), null to loop over the keys.
  const writers: Array<FieldWriter | null | undefined> = [];
  let restores = 0;
  // One recorded object: the parallel arrays above grow together (writers are made at restore).
  const record = (o: object, kind: Kind, names: string[] | undefined, count: number, state: unknown): void => {
    objs.push(o); kinds.push(kind); keys.push(names); counts.push(count); states.push(state);
  };
  const seen = new Set<object>();
  const stack: object[] = [root];
  let bytes = 0;
  const visit = (v: unknown): void => {
    // Functions are code, shared by every capture: only objects are walked.
    if (typeof v === 'object' && v !== null && !seen.has(v)) stack.push(v);
  };
  while (stack.length > 0) {
    const o = stack.pop() as object;
    if (seen.has(o)) continue;
    seen.add(o);
    if (sharedObjects.has(o)) continue;
    if (Object.isFrozen(o) && !(o instanceof Map) && !(o instanceof Set)) {
      // Its own fields never change, so nothing of it is recorded; what they hold still may (a
      // frozen config holding a live ring): walked. (A frozen Map or Set still changes: recorded.)
      for (const k of Reflect.ownKeys(o)) {
        const d = Object.getOwnPropertyDescriptor(o, k) as PropertyDescriptor;
        if ('value' in d) visit(d.value);
      }
      continue;
    }
    if (SNAPSHOT_STATE in o) {
      const state = (o as SnapshotHooks)[SNAPSHOT_STATE]();
      record(o, Kind.Hooked, undefined, -1, state);
      const copied = (state as Partial<CopiedBytes> | null)?.copied;
      if (typeof copied === 'number') bytes += copied;
      continue;
    }
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) {
      // Chunks equal to the last capture's are shared, not copied again (a 16 GiB machine's
      // bitmaps and pfn arrays: bench/RESULTS.md, session 9).
      const view = o instanceof ArrayBuffer ? new Uint8Array(o) : new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
      const snap = captureChunks(view, lastChunks.get(o));
      lastChunks.set(o, snap.chunks);
      record(o, Kind.Typed, undefined, -1, { view, chunks: snap.chunks });
      bytes += snap.copied;
      continue;
    }
    if (Array.isArray(o)) {
      if (!Object.isExtensible(o)) throw new KernelError(EINVAL, 'captureGraph', `an array is sealed or closed to new elements (reached from ${describe(root)}); a snapshot could not restore it`, 'root');
      const copy = o.slice();
      record(o, Kind.Array, undefined, -1, copy);
      for (let i = 0; i < copy.length; i++) visit(copy[i]);
      continue;
    }
    if (o instanceof Map) {
      const flat: unknown[] = [];
      for (const [k, v] of o) { flat.push(k, v); visit(k); visit(v); }
      record(o, Kind.Map, undefined, -1, flat);
      continue;
    }
    if (o instanceof Set) {
      const items = [...o];
      for (const v of items) visit(v);
      record(o, Kind.Set, undefined, -1, items);
      continue;
    }
    if (o instanceof WeakMap || o instanceof WeakSet || o instanceof WeakRef) {
      throw new KernelError(EINVAL, 'captureGraph', `a ${o.constructor.name} holds state a snapshot cannot see (reached from ${describe(root)}); keep it in a Map, or mark its owner with markShared`, 'root');
    }
    // Errors, dates, promises and regular expressions never change once made: shared.
    if (o instanceof Error || o instanceof Date || o instanceof Promise || o instanceof RegExp) continue;
    if (isPlainLiteral(o)) {
      // Object literals may carry accessors (`get active() {...}`): only data properties are state.
      const names: string[] = [];
      const vals: unknown[] = [];
      // Every own key, enumerable or not. One descriptor at a time: getOwnPropertyDescriptors made
      // an object of them all and cost ~5 us a literal of methods, 30% of a later snapshot of a
      // 16 GiB machine (37 literals: 70 of 231 us); key by key, ~4x less.
      const own = Reflect.ownKeys(o);
      if (own.some((k) => typeof k === 'symbol')) throw new KernelError(EINVAL, 'captureGraph', `an object has a property keyed by a symbol (reached from ${describe(root)}); a snapshot could not restore it`, 'root');
      if (!Object.isExtensible(o)) throw new KernelError(EINVAL, 'captureGraph', `an object is not extensible (reached from ${describe(root)}); a snapshot could not restore a property deleted from it`, 'root');
      let accessorNames: string[] | undefined;
      for (const k of own as string[]) {
        const d = Object.getOwnPropertyDescriptor(o, k) as PropertyDescriptor;
        if (!('value' in d)) { (accessorNames ??= []).push(k); continue; }
        if (d.writable !== true) throw new KernelError(EINVAL, 'captureGraph', `property ${k} of an object is read-only at run time; a snapshot could not restore it`, 'root');
        names.push(k); vals.push(d.value); visit(d.value);
      }
      // Accessors stay as they are; their names ride along (after the data names) for the shape check.
      if (accessorNames !== undefined) names.push(...accessorNames);
      record(o, Kind.Literal, names, enumCount(o, names.length), vals);
      continue;
    }
    // Class instances: TypeScript class fields are writable own data properties.
    const names = Object.keys(o);
    // What a restore could not put back is refused here, not lost there: a property keyed by a
    // symbol or not enumerable (Object.keys does not list it), or an object that takes no new
    // properties (a deleted one could not come back).
    if (Reflect.ownKeys(o).length !== names.length) {
      throw new KernelError(EINVAL, 'captureGraph', `${describe(o)} has a property keyed by a symbol or not enumerable (reached from ${describe(root)}); a snapshot could not restore it`, 'root');
    }
    if (!Object.isExtensible(o)) {
      throw new KernelError(EINVAL, 'captureGraph', `${describe(o)} is not extensible (reached from ${describe(root)}); a snapshot could not restore a property deleted from it`, 'root');
    }
    const vals = new Array<unknown>(names.length);
    for (let i = 0; i < names.length; i++) {
      const v = (o as Record<string, unknown>)[names[i] as string];
      vals[i] = v;
      visit(v);
    }
    record(o, Kind.Object, names, enumCount(o, names.length), vals);
  }
  return {
    objects: objs.length,
    bytes,
    restore() {
      // Hooked objects last: their hooks may read fields of objects restored before them.
      // The first restore loops over keys; later ones make and use the field writers.
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < objs.length; i++) {
          const kind = kinds[i] as Kind;
          if ((kind === Kind.Hooked) !== (pass === 1)) continue;
          let writer = writers[i];
          if (writer === undefined && restores > 0 && (kind === Kind.Object || kind === Kind.Literal)) {
            writer = fieldWriter(keys[i] as string[], (states[i] as unknown[]).length);
            writers[i] = writer;
          }
          restoreOne(objs[i] as object, kind, states[i], keys[i], counts[i] as number, writer ?? null);
        }
      }
      restores++;
    },
  };
}

function restoreOne(o: object, kind: Kind, state: unknown, names: string[] | undefined, count: number, writer: FieldWriter | null): void {
  switch (kind) {
    case Kind.Object:
    case Kind.Literal: {
      const rec = o as Record<string, unknown>;
      const vals = state as unknown[];
      const ks = names as string[];
      // ks holds the data properties (vals.length of them), then any accessors of a literal.
      if (writer !== null) writer(rec, vals);
      else for (let j = 0; j < vals.length; j++) rec[ks[j] as string] = vals[j];
      // Properties added since the capture go (an object's shape is part of its state). A for-in
      // count allocates nothing, where Object.keys copies an array per object per restore (a third
      // of a restore: bench/RESULTS.md, session 9).
      if (count >= 0 && enumCount(rec, count) === count) return;
      // Every own key, not only the enumerable ones: ks may hold a literal's non-enumerable
      // properties, and then an added enumerable one left the count of Object.keys unchanged.
      const now = Reflect.ownKeys(rec);
      if (now.length !== ks.length) {
        const keep = new Set<string | symbol>(ks);
        for (const k of now) if (!keep.has(k)) delete rec[k as string];
      }
      return;
    }
    // Containers are compared before they are rebuilt: most are unchanged between a restore and
    // the next (a failure sweep restores per point), and reading is cheaper than rebuilding a hash
    // table (bench/RESULTS.md, session 9).
    case Kind.Array: {
      const a = o as unknown[];
      const copy = state as unknown[];
      if (a.length === copy.length) {
        // Only the elements that differ are stored (a ring of 4096 unmap records changes a few);
        // Object.is tells -0 from 0, and an undefined element is checked for being a hole.
        for (let j = 0; j < copy.length; j++) {
          const v = copy[j];
          if (Object.is(a[j], v) && (v !== undefined || (j in a) === (j in copy))) continue;
          if (v === undefined && !(j in copy)) delete a[j];
          else a[j] = v;
        }
        return;
      }
      a.length = copy.length;
      for (let j = 0; j < copy.length; j++) a[j] = copy[j];
      return;
    }
    case Kind.Map: {
      const m = o as Map<unknown, unknown>;
      const flat = state as unknown[];
      if (m.size * 2 === flat.length && sameMap(m, flat)) return;
      m.clear();
      for (let j = 0; j < flat.length; j += 2) m.set(flat[j], flat[j + 1]);
      return;
    }
    case Kind.Set: {
      const s = o as Set<unknown>;
      const items = state as unknown[];
      if (s.size === items.length && sameSet(s, items)) return;
      s.clear();
      for (const v of items) s.add(v);
      return;
    }
    case Kind.Typed: {
      const { view, chunks } = state as { view: Uint8Array; chunks: readonly Uint8Array[] };
      restoreChunks(view, chunks);
      lastChunks.set(o, chunks);
      return;
    }
    case Kind.Hooked:
      (o as SnapshotHooks)[RESTORE_STATE](state);
      return;
  }
}

/**
 * The number of keys a for-in walk of `o` sees when it is `own` (so every one is an own key: no
 * enumerable property is inherited), else -1.
 */
function enumCount(o: object, own: number): number {
  let n = 0;
  for (const _k in o) n++;
  return n === own ? n : -1;
}

/** Does `m` hold exactly the entries of `flat` (key, value, key, value...) in the same order? */
function sameMap(m: Map<unknown, unknown>, flat: readonly unknown[]): boolean {
  let j = 0;
  for (const [k, v] of m) {
    if (!Object.is(k, flat[j]) || !Object.is(v, flat[j + 1])) return false;
    j += 2;
  }
  return true;
}

/** Does `s` hold exactly `items` in the same order? */
function sameSet(s: Set<unknown>, items: readonly unknown[]): boolean {
  let j = 0;
  for (const v of s) if (!Object.is(v, items[j++])) return false;
  return true;
}

function describe(o: object): string {
  const c = (o as { constructor?: { name?: string } }).constructor?.name;
  return c === undefined || c === '' ? 'an object' : `${/^[AEIOU]/.test(c) ? 'an' : 'a'} ${c}`;
}
