/**
 * @module replay/parse
 * Reads the text of a kernel trace into {@link FtraceEvent}s, one line at a time, never throwing on
 * what it reads: a line is an event, a line to skip (headers, comments, trace-cmd's notes), a
 * well-formed line of an event replay does not model, or a malformed line with a message naming
 * the line number and the field at fault.
 *
 * Layouts read: `cat /sys/kernel/tracing/trace` (and trace_pipe), with or without the latency
 * column and the `(tgid)` column; `trace-cmd report` (its padded event names, `-t` nanosecond
 * times, `-l` latency layout, `--ts-diff`, and `-R` / `-r` raw field lists); `perf script`'s
 * `comm pid [cpu] time: sys:event:` lines. The event name may carry its system (`dma:dma_map_phys:`).
 */
import { createReadStream } from 'node:fs';
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { DMA_ATTR_MMIO } from '../../dma/api/attrs.ts';
import {
  DMA_ATTR_TRACE_ALIASES, DMA_ATTR_TRACE_NAMES, DMA_DIRECTION_NAMES, DMA_TRACE_MAX_ENTRIES, EVENT_LAYOUTS,
  isFtraceEventName, type EventLayout, type FieldKind, type FtraceEvent, type FtraceEventName,
} from './events.ts';

/** What one line is. */
export type FtraceLineResult =
  | { readonly kind: 'event'; readonly event: FtraceEvent }
  /** `lost` is set on a lost-events marker (`CPU:2 [LOST 17 EVENTS]`); `events` undefined when the count is not printed. */
  | { readonly kind: 'skip'; readonly lost?: { readonly cpu: number; readonly events: number | undefined } }
  | { readonly kind: 'unknown'; readonly name: string }
  | { readonly kind: 'malformed'; readonly line: number; readonly message: string };

/** A malformed line as the stream's stats keep it. */
export interface FtraceMalformed {
  readonly line: number;
  readonly message: string;
}

/** Counts kept while a trace streams through {@link parseFtrace}; updated as it goes. */
export interface FtraceStats {
  /** Lines read (the last one counts even without a newline). */
  lines: number;
  /** Events yielded. */
  events: number;
  /** Blank, comment and header lines, lost-event markers. */
  skipped: number;
  /** Well-formed lines of events replay does not model, in all. */
  unknown: number;
  /** The same, by event name as printed (`sched_switch`, `sched:sched_switch`). */
  readonly unknownByName: Record<string, number>;
  /** Malformed lines, in all. */
  malformed: number;
  /** The first `keepMalformed` of them (default 100), in line order. */
  readonly malformedLines: FtraceMalformed[];
  /** Lost-event markers seen (the kernel's `[LOST n EVENTS]`, trace-cmd's `[EVENTS DROPPED]`). */
  lostMarkers: number;
  /** Events those markers say were lost, where they say how many. */
  lostEvents: number;
}

/** Options of {@link parseFtrace}. */
export interface ParseFtraceOptions {
  /** A longer line is malformed, and only this much of it is ever held (default 4 Mi characters). */
  readonly maxLineLength?: number;
  /** How many malformed lines the stats keep (default 100); all are counted. */
  readonly keepMalformed?: number;
}

/** A file path, a Node Readable, or any async iterable of text or byte chunks. */
export type FtraceSource = string | AsyncIterable<string | Uint8Array>;

/** The events of a trace, in order; `stats` fills in as they are read, and is also the generator's return value. */
export type FtraceEventStream = AsyncGenerator<FtraceEvent, FtraceStats, undefined> & { readonly stats: FtraceStats };

/** A fault in one field; thrown inside the line parser only, and always caught there. */
class FieldFault {
  readonly field: string;
  readonly message: string;
  constructor(field: string, message: string) {
    this.field = field;
    this.message = message;
  }
}

function fault(field: string, message: string): never {
  throw new FieldFault(field, message);
}

/** At most 40 characters of `s`, for messages. */
function clip(s: string): string {
  return s.length <= 40 ? s : `${s.slice(0, 37)}...`;
}

// ---- numbers -------------------------------------------------------------------------------------

const HEX = /^[0-9a-fA-F]+$/;
const DEC = /^[0-9]+$/;
const U64_MAX_DEC = '18446744073709551615';

/** A u64 from hex digits: exact below 2^53, -1 for all ones, a fault otherwise. */
function hexU64(s: string, field: string): number {
  const n = s.length;
  if (n === 0 || n > 16 || !HEX.test(s)) fault(field, `expected up to 16 hex digits, got '${clip(s)}'`);
  // 13 hex digits are 52 bits: parseInt is exact, no check needed.
  if (n <= 13) return parseInt(s, 16);
  if (n === 16 && /^[fF]{16}$/.test(s)) return -1;
  const v = parseInt(s, 16);
  if (v > Number.MAX_SAFE_INTEGER) fault(field, `${s} is past 2^53 (only all ones, DMA_MAPPING_ERROR, is taken there)`);
  return v;
}

/** A u64 from decimal digits, with the same rules as hexU64. */
function decU64(s: string, field: string): number {
  const n = s.length;
  if (n === 0 || n > 20 || !DEC.test(s)) fault(field, `expected a decimal number, got '${clip(s)}'`);
  if (n <= 15) return parseInt(s, 10);
  if (s === U64_MAX_DEC) return -1;
  const v = Number(s);
  if (v > Number.MAX_SAFE_INTEGER) fault(field, `${s} is past 2^53 (only all ones, DMA_MAPPING_ERROR, is taken there)`);
  return v;
}

/** A C int printed `%d`. */
function int32(s: string, field: string): number {
  if (!/^-?[0-9]{1,10}$/.test(s)) fault(field, `expected a decimal int, got '${clip(s)}'`);
  const v = parseInt(s, 10);
  if (v < -0x80000000 || v > 0x7fffffff) fault(field, `${s} does not fit a C int`);
  return v;
}

/** A 32-bit value from hex digits. */
function hexU32(s: string, field: string): number {
  if (s.length === 0 || s.length > 8 || !HEX.test(s)) fault(field, `expected up to 8 hex digits, got '${clip(s)}'`);
  return parseInt(s, 16);
}

/** `0x`-prefixed hex, else `radix` digits. */
function rawNumber(s: string, field: string, radix: 10 | 16): number {
  if (s.startsWith('0x') || s.startsWith('0X')) return hexU64(s.slice(2), field);
  return radix === 16 ? hexU64(s, field) : decU64(s, field);
}

// ---- printed values ----------------------------------------------------------------------------

// INVARIANT: DIR_BY_NAME maps each DMA_DIRECTION_NAMES entry to its index; ATTR_BY_NAME maps every
//   6.18 name and every alias to its single bit; NAMED_MASK is the OR of the 6.18 bits (a leftover
//   hex part holding one of them is not what the kernel prints).
const DIR_BY_NAME = new Map<string, number>(DMA_DIRECTION_NAMES.map((n, i) => [n, i]));
const ATTR_BY_NAME = new Map<string, number>([...DMA_ATTR_TRACE_NAMES, ...DMA_ATTR_TRACE_ALIASES].map(([b, n]) => [n, b]));
const NAMED_MASK = DMA_ATTR_TRACE_NAMES.reduce((m, [b]) => m | b, 0);

function dirValue(s: string, field: string): number {
  const d = DIR_BY_NAME.get(s);
  if (d === undefined) fault(field, `expected BIDIRECTIONAL, TO_DEVICE, FROM_DEVICE or NONE, got '${clip(s)}'`);
  return d;
}

/** `decode_dma_attrs` read back: names joined by `|`, then at most one leftover `0x...`; '' is 0. */
function attrsValue(s: string, field: string): number {
  if (s === '') return 0;
  let named = 0;
  let rest = 0;
  const parts = s.split('|');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const bit = ATTR_BY_NAME.get(part);
    if (bit !== undefined) {
      if ((named & bit) !== 0) fault(field, `${part} given twice`);
      named |= bit;
    } else if (part.startsWith('0x') && i === parts.length - 1) {
      rest = hexU64(part.slice(2), field);
      // CHECKED: rest is a safe integer or -1; the named bits all sit below 2^14.
      if (rest <= 0) fault(field, `leftover bits '${part}' are not a nonzero mask below 2^53`);
      const low = rest % 0x4000;
      if ((low & NAMED_MASK) !== 0 || (low & named) !== 0) fault(field, `leftover bits '${part}' hold a bit printed by name`);
    } else {
      fault(field, `unknown DMA attribute '${clip(part)}'`);
    }
  }
  return named + rest;
}

/** `__print_array` read back: `{0x1,0x2}`, `{}`. */
function arrayValue(s: string, field: string, wide: boolean): number[] {
  if (s.charCodeAt(0) !== 0x7b || s.charCodeAt(s.length - 1) !== 0x7d || s.length < 2) {
    fault(field, `expected an array like {0x1000,0x2000}, got '${clip(s)}'`);
  }
  if (s.length === 2) return [];
  const parts = s.slice(1, -1).split(',');
  const out = new Array<number>(parts.length);
  for (let i = 0; i < parts.length; i++) {
    const e = parts[i] as string;
    const at = `${field}[${i}]`;
    if (e.charCodeAt(0) !== 0x30 || e.charCodeAt(1) !== 0x78) fault(at, `expected 0x-prefixed hex, got '${clip(e)}'`);
    out[i] = wide ? hexU64(e.slice(2), at) : hexU32(e.slice(2), at);
  }
  return out;
}

/** `trace-cmd -R`'s dump of an array: `ARRAY[00, 10, ...]`, little-endian bytes of each element. */
function rawArray(s: string, field: string, wide: boolean): number[] {
  if (s.startsWith('{')) return arrayValue(s, field, wide);
  if (!s.startsWith('ARRAY[') || !s.endsWith(']')) fault(field, `expected ARRAY[..] or {..}, got '${clip(s)}'`);
  const body = s.slice(6, -1);
  const bytes = body === '' ? [] : body.split(', ');
  const size = wide ? 8 : 4;
  if (bytes.length % size !== 0) fault(field, `${bytes.length} bytes is not a whole number of ${size}-byte entries`);
  const out = new Array<number>(bytes.length / size);
  for (let i = 0; i < out.length; i++) {
    let lo = 0;
    let hi = 0;
    for (let b = size - 1; b >= 0; b--) {
      const t = bytes[i * size + b] as string;
      if (t.length !== 2 || !HEX.test(t)) fault(`${field}[${i}]`, `expected two hex digits per byte, got '${clip(t)}'`);
      const v = parseInt(t, 16);
      if (b >= 4) hi = hi * 256 + v;
      else lo = lo * 256 + v;
    }
    if (hi === 0xffffffff && lo === 0xffffffff) out[i] = -1;
    else if (hi >= 0x200000) fault(`${field}[${i}]`, 'value is past 2^53 (only all ones, DMA_MAPPING_ERROR, is taken there)');
    else out[i] = hi * 0x100000000 + lo;
  }
  return out;
}

/** A `%p` pointer or a GFP mask: one token, kept as printed. */
function tokenValue(s: string, field: string): string {
  if (s === '' || /\s/.test(s)) fault(field, `expected one token, got '${clip(s)}'`);
  return s;
}

/** One printed value of kind `kind`. */
function printedValue(kind: FieldKind, s: string, field: string): unknown {
  switch (kind) {
    case 'dir': return dirValue(s, field);
    case 'hex': return hexU64(s, field);
    case 'dec': return decU64(s, field);
    case 'int': return int32(s, field);
    case 'attrs': return attrsValue(s, field);
    case 'arr64': return arrayValue(s, field, true);
    case 'arr32': return arrayValue(s, field, false);
    case 'token': return tokenValue(s, field);
    default: return fault(field, `kind ${kind} is not printed in a label=value list`);
  }
}

/** One raw (`-R`) value of kind `kind`. */
function rawValue(kind: FieldKind, s: string, field: string): unknown {
  switch (kind) {
    case 'str': return s;
    case 'token': return tokenValue(s, field);
    case 'hex': return rawNumber(s, field, 16);
    case 'dec': return rawNumber(s, field, 10);
    case 'int':
      return s.startsWith('0x') ? hexU32(s.slice(2), field) | 0 : int32(s, field);
    case 'dir': {
      const d = rawNumber(s, field, 10);
      if (d < 0 || d > 3) fault(field, `direction ${s} is not 0..3`);
      return d;
    }
    case 'attrs': {
      const a = rawNumber(s, field, 10);
      if (a < 0) fault(field, 'attributes past 2^53');
      return a;
    }
    case 'bool':
      if (s === '0' || s === '0x0') return false;
      if (s === '1' || s === '0x1') return true;
      return fault(field, `expected 0 or 1, got '${clip(s)}'`);
    case 'arr64': return rawArray(s, field, true);
    case 'arr32': return rawArray(s, field, false);
  }
}

// ---- event text ----------------------------------------------------------------------------------

/** `label=` then the value, or a fault naming the label (and the field when it differs). */
function labelled(tok: string | undefined, label: string, field: string): string {
  const at = label === field ? label : `${label}= (field ${field})`;
  if (tok === undefined) fault(at, 'missing');
  if (!tok.startsWith(label) || tok.charCodeAt(label.length) !== 0x3d) fault(at, `expected '${label}=', got '${clip(tok)}'`);
  return tok.slice(label.length + 1);
}

/** Splits `<device> dir=...` into the device and the `label=value` tokens. */
function deviceAndTokens(text: string): [string, string[]] {
  if (text.startsWith('dir=')) return ['', text.split(' ')];
  const i = text.lastIndexOf(' dir=');
  if (i < 0) fault('dir', 'missing');
  return [text.slice(0, i), text.slice(i + 1).split(' ')];
}

function endOfTokens(tokens: string[], used: number, last: string): void {
  if (tokens.length > used) fault(last, `unexpected text after it: '${clip(tokens.slice(used).join(' '))}'`);
}

/** Kernel-side consistency of dma_map_sg: counts printed as min(n, 128), arrays of those lengths. */
function checkMapSg(o: Record<string, unknown>): void {
  const fullN = o['full_nents'] as number;
  const fullE = o['full_ents'] as number;
  const n = Math.min(fullN, DMA_TRACE_MAX_ENTRIES);
  const e = Math.min(fullE, DMA_TRACE_MAX_ENTRIES);
  if (o['nents'] !== undefined && o['nents'] !== n) fault('nents', `${String(o['nents'])}/${fullN} is not min(n, 128)/n`);
  if (o['ents'] !== undefined && o['ents'] !== e) fault('ents', `${String(o['ents'])}/${fullE} is not min(n, 128)/n`);
  o['nents'] = n;
  o['ents'] = e;
  const cut = fullN > DMA_TRACE_MAX_ENTRIES || fullE > DMA_TRACE_MAX_ENTRIES;
  if (o['truncated'] !== cut) fault('truncated', cut ? '[TRUNCATED] missing though a count is past 128' : '[TRUNCATED] though no count is past 128');
  const want: Array<[string, number]> = [['phys_addrs', Math.max(0, n)], ['dma_addrs', Math.max(0, e)], ['lengths', Math.max(0, e)]];
  for (const [f, len] of want) {
    const got = (o[f] as number[]).length;
    if (got !== len) fault(f, `${got} entries where the counts say ${len}`);
  }
}

/** The counts of a pre-6.18 dma_map_sg, from its arrays (nothing was cut then). */
function legacyMapSgCounts(o: Record<string, unknown>): void {
  const n = (o['phys_addrs'] as number[]).length;
  const e = (o['dma_addrs'] as number[]).length;
  if ((o['lengths'] as number[]).length !== e) fault('lengths', `${(o['lengths'] as number[]).length} sizes for ${e} dma_addrs`);
  o['nents'] = n;
  o['ents'] = e;
  o['full_nents'] = n;
  o['full_ents'] = e;
  o['truncated'] = false;
}

function parseMapSg(text: string, o: Record<string, unknown>): void {
  const [device, t] = deviceAndTokens(text);
  o['device'] = device;
  o['dir'] = dirValue(labelled(t[0], 'dir', 'dir'), 'dir');
  let i = 1;
  if (t[1]?.startsWith('dma_addrs=') === true) {
    // Kernels before 6.18 printed no counts and kept every entry: the arrays' lengths are the counts.
    o['dma_addrs'] = arrayValue(labelled(t[1], 'dma_addrs', 'dma_addrs'), 'dma_addrs', true);
    o['lengths'] = arrayValue(labelled(t[2], 'sizes', 'lengths'), 'lengths', false);
    o['phys_addrs'] = arrayValue(labelled(t[3], 'phys_addrs', 'phys_addrs'), 'phys_addrs', true);
    o['attrs'] = attrsValue(labelled(t[4], 'attrs', 'attrs'), 'attrs');
    endOfTokens(t, 5, 'attrs');
    legacyMapSgCounts(o);
    return;
  }
  for (const which of ['nents', 'ents'] as const) {
    const v = labelled(t[i++], which, which);
    const slash = v.indexOf('/');
    if (slash < 0) fault(which, `expected <printed>/<full>, got '${clip(v)}'`);
    o[which] = int32(v.slice(0, slash), which);
    o[`full_${which}`] = int32(v.slice(slash + 1), `full_${which}`);
  }
  o['truncated'] = t[i] === '[TRUNCATED]';
  if (o['truncated'] === true) i++;
  o['dma_addrs'] = arrayValue(labelled(t[i++], 'dma_addrs', 'dma_addrs'), 'dma_addrs', true);
  o['lengths'] = arrayValue(labelled(t[i++], 'sizes', 'lengths'), 'lengths', false);
  o['phys_addrs'] = arrayValue(labelled(t[i++], 'phys_addrs', 'phys_addrs'), 'phys_addrs', true);
  o['attrs'] = attrsValue(labelled(t[i++], 'attrs', 'attrs'), 'attrs');
  endOfTokens(t, i, 'attrs');
  checkMapSg(o);
}

function parseSwiotlb(text: string, o: Record<string, unknown>): void {
  if (!text.startsWith('dev_name: ')) fault('dev_name', `expected 'dev_name: ', got '${clip(text)}'`);
  const i = text.lastIndexOf(' dma_mask=');
  if (i < 10) fault('dma_mask', 'missing');
  o['dev_name'] = text.slice(10, i);
  const t = text.slice(i + 1).split(' ');
  o['dma_mask'] = hexU64(labelled(t[0], 'dma_mask', 'dma_mask'), 'dma_mask');
  o['dev_addr'] = hexU64(labelled(t[1], 'dev_addr', 'dev_addr'), 'dev_addr');
  o['size'] = decU64(labelled(t[2], 'size', 'size'), 'size');
  if (t[3] !== 'FORCE' && t[3] !== 'NORMAL') fault('force', `expected FORCE or NORMAL, got '${clip(t[3] ?? '')}'`);
  o['force'] = t[3] === 'FORCE';
  endOfTokens(t, 4, 'force');
}

/** `0x` then hex digits. */
function hex0x(s: string, field: string): number {
  if (!s.startsWith('0x')) fault(field, `expected 0x-prefixed hex, got '${clip(s)}'`);
  return hexU64(s.slice(2), field);
}

const U64_MASK = (1n << 64n) - 1n;

/** The printed end of an iommu range must be iova + size, wrapped to 64 bits as the kernel adds. */
function checkEnd(iova: string, size: string, end: string): void {
  // Numbers while the sum stays exact (every line of a usual trace); BigInt only past 2^53
  // (iommu:map lines, parseFtraceLine under tsx, 3 runs: 1451-1501 -> 1410-1452 ns a line).
  const sumN = parseInt(iova, 16) + parseInt(size, 10);
  if (sumN <= Number.MAX_SAFE_INTEGER) {
    if (sumN !== parseInt(end, 16)) fault('iova', `printed end ${end} is not iova + size`);
    return;
  }
  const sum = (BigInt(iova) + BigInt(size)) & U64_MASK;
  if (sum !== BigInt(end)) fault('iova', `printed end ${end} is not iova + size`);
}

function parseIommu(name: 'map' | 'unmap', text: string, o: Record<string, unknown>): void {
  const t = text.split(' ');
  if (t[0] !== 'IOMMU:') fault('iova', `expected 'IOMMU: iova=', got '${clip(text)}'`);
  const iova = labelled(t[1], 'iova', 'iova');
  o['iova'] = hex0x(iova, 'iova');
  if (t[2] !== '-') fault('iova', `expected ' - ' between the ends, got '${clip(t[2] ?? '')}'`);
  const end = t[3] ?? '';
  if (!/^0x[0-9a-fA-F]{1,16}$/.test(end)) fault('iova', `expected the range's end as 0x-prefixed hex, got '${clip(end)}'`);
  let sizeTok: string;
  if (name === 'map') {
    o['paddr'] = hex0x(labelled(t[4], 'paddr', 'paddr'), 'paddr');
    sizeTok = labelled(t[5], 'size', 'size');
    o['size'] = decU64(sizeTok, 'size');
    endOfTokens(t, 6, 'size');
  } else {
    sizeTok = labelled(t[4], 'size', 'size');
    o['size'] = decU64(sizeTok, 'size');
    o['unmapped_size'] = decU64(labelled(t[5], 'unmapped_size', 'unmapped_size'), 'unmapped_size');
    endOfTokens(t, 6, 'unmapped_size');
  }
  checkEnd(iova, sizeTok, end);
}

function parseIoPageFault(text: string, o: Record<string, unknown>): void {
  if (!text.startsWith('IOMMU:')) fault('driver', `expected 'IOMMU:<driver> <device>', got '${clip(text)}'`);
  const j = text.lastIndexOf(' iova=');
  if (j < 6) fault('iova', 'missing');
  const mid = text.slice(6, j);
  const k = mid.indexOf(' ');
  if (k < 0) fault('device', `expected '<driver> <device>', got '${clip(mid)}'`);
  o['driver'] = mid.slice(0, k);
  o['device'] = mid.slice(k + 1);
  const t = text.slice(j + 1).split(' ');
  // A faulting IOVA is whatever the device put on the bus, often past 2^53 (a stray pointer): kept
  // as the nearest number (exact for page-aligned ones), not refused like a mapping's address.
  const iova = labelled(t[0], 'iova', 'iova');
  if (!iova.startsWith('0x')) fault('iova', `expected 0x-prefixed hex, got '${clip(iova)}'`);
  const digits = iova.slice(2);
  if (digits.length === 0 || digits.length > 16 || !HEX.test(digits)) fault('iova', `expected up to 16 hex digits, got '${clip(digits)}'`);
  o['iova'] = /^[fF]{16}$/.test(digits) ? -1 : Number(BigInt(iova));
  const f = labelled(t[1], 'flags', 'flags');
  if (!f.startsWith('0x')) fault('flags', `expected 0x-prefixed hex, got '${clip(f)}'`);
  o['flags'] = hexU32(f.slice(2), 'flags') | 0;
  endOfTokens(t, 2, 'flags');
}

/** `name=value` pairs in struct order, as trace-cmd's `-R` prints them. */
function parseRaw(name: FtraceEventName, layout: EventLayout, text: string, o: Record<string, unknown>): void {
  // A pre-6.18 dma_map_sg record has no count fields.
  const legacySg = name === 'dma_map_sg' && !text.includes(' full_nents=');
  const fields = legacySg ? layout.raw.filter((f) => !['full_nents', 'full_ents', 'truncated'].includes(f.name)) : layout.raw;
  let pos = 0;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as (typeof fields)[number];
    if (!text.startsWith(`${f.name}=`, pos)) fault(f.name, `expected '${f.name}=' at column ${pos + 1}`);
    const start = pos + f.name.length + 1;
    const next = fields[i + 1];
    const end = next === undefined ? text.length : text.indexOf(` ${next.name}=`, start);
    if (end < 0) fault((next as (typeof fields)[number]).name, 'missing');
    const v = text.slice(start, end);
    if (f.kind !== 'str' && !v.startsWith('ARRAY[') && v.includes(' ')) fault(f.name, `unexpected space in '${clip(v)}'`);
    o[f.name] = rawValue(f.kind, v, f.name);
    pos = end + 1;
  }
  if (legacySg) legacyMapSgCounts(o);
  else if (name === 'dma_map_sg') checkMapSg(o);
}

/**
 * The first (6.12) dma_alloc / dma_free print: `dma_addr= size= phys_addr= [flags=] attrs=`, no
 * direction, and the CPU buffer's physical address where later kernels print its pointer: that
 * address stands in for `virt_addr` (printed as 16 hex digits, it matches an allocation to its
 * free the same way), and the direction is DMA_BIDIRECTIONAL, as coherent memory is.
 */
function parseLegacyAllocFree(name: 'dma_alloc' | 'dma_free', t: string[], o: Record<string, unknown>): void {
  o['dir'] = 0;
  o['dma_addr'] = hexU64(labelled(t[0], 'dma_addr', 'dma_addr'), 'dma_addr');
  o['size'] = decU64(labelled(t[1], 'size', 'size'), 'size');
  const phys = labelled(t[2], 'phys_addr', 'virt_addr');
  hexU64(phys, 'phys_addr');
  o['virt_addr'] = phys.padStart(16, '0');
  let i = 3;
  if (name === 'dma_alloc') o['flags'] = labelled(t[i++], 'flags', 'flags');
  o['attrs'] = attrsValue(labelled(t[i++], 'attrs', 'attrs'), 'attrs');
  endOfTokens(t, i, 'attrs');
}

/** Fills `o` with the fields of event `name` read from `text`. */
function parseText(name: FtraceEventName, text: string, o: Record<string, unknown>): void {
  const layout = EVENT_LAYOUTS[name];
  const first = layout.raw[0] as (typeof layout.raw)[number];
  if (text.startsWith(`${first.name}=`)) return parseRaw(name, layout, text, o);
  switch (name) {
    case 'dma_map_sg': return parseMapSg(text, o);
    case 'swiotlb_bounced': return parseSwiotlb(text, o);
    case 'map':
    case 'unmap': return parseIommu(name, text, o);
    case 'io_page_fault': return parseIoPageFault(text, o);
    default: break;
  }
  const spec = layout.print as NonNullable<EventLayout['print']>;
  if ((name === 'dma_alloc' || name === 'dma_free') && !text.includes(' dir=') && !text.startsWith('dir=')) {
    // The 6.12 print: the device, then dma_addr= (no direction).
    const i = text.lastIndexOf(' dma_addr=');
    if (i < 0) fault('dir', 'missing');
    o['device'] = text.slice(0, i);
    return parseLegacyAllocFree(name, text.slice(i + 1).split(' '), o);
  }
  const [device, t] = deviceAndTokens(text);
  o['device'] = device;
  for (let i = 0; i < spec.length; i++) {
    const f = spec[i] as (typeof spec)[number];
    o[f.field] = printedValue(f.kind, labelled(t[i], f.label, f.field), f.field);
  }
  endOfTokens(t, spec.length, (spec[spec.length - 1] as (typeof spec)[number]).field);
}

// ---- lines ---------------------------------------------------------------------------------------

/**
 * Events of 6.12-6.17 kernels under the 6.18 event they became (same fields and print format):
 * dma_map_page / dma_unmap_page were renamed dma_map_phys / dma_unmap_phys, and dma_map_resource /
 * dma_unmap_resource folded into them with DMA_ATTR_MMIO.
 */
const LEGACY_NAMES: Readonly<Record<string, { readonly as: FtraceEventName; readonly mmio?: boolean }>> = Object.freeze({
  dma_map_page: { as: 'dma_map_phys' }, dma_unmap_page: { as: 'dma_unmap_phys' },
  dma_map_resource: { as: 'dma_map_phys', mmio: true }, dma_unmap_resource: { as: 'dma_unmap_phys', mmio: true },
});

// What follows the dash before the pid: the kernel's `%-7d [(%7d) ][%03d] [<latency>] %5lu.%06lu: `,
// trace-cmd's `%-5d [%03d] <latency> %5lu.%06lu:` (`-R`: `[%03d]-0x%x`; `-l`: `%-5d %3d<latency>`).
// It is tried (sticky) at each dash from the left, so the pid is the digits after the last dash
// before the first `[cpu]`, and no quantifier spans the task: the time stays linear in the line.
// Groups: 1 pid, 2 tgid, 3 '-------', 4 cpu, 5 raw flags, 6 latency, 7 cpu (-l), 8 latency (-l),
// 9 seconds, 10 fraction.
const AFTER_DASH =
  /(\d+) +(?:\((?: *(\d+)|(-------))\) +)?(?:\[(\d+)\](?:-(0x[0-9a-fA-F]+))?(?: +([^\s\d]\S*|0x[0-9a-fA-F]+))?|(\d+)([^\s\d]\S*)) +(\d+)(?:\.(\d+))?:(?: +|$)/y;
// perf script, tried at each `[`: `[<cpu>] <secs>.<usecs>: [<period> ]` before `sys:event:`; the
// `comm [pid/]tid ` before it is read backwards.
const PERF_AFTER_BRACKET = /\[(\d+)\] +(\d+)(?:\.(\d+))?: +(?:\d+ +)?(?=\w+:\w+:(?: |$))/y;
// After the time: trace-cmd's `(+delta)`, `[system:]event:`, then the text past its padding.
const NAME = /^(?:\(\+\d+\) +)?(\w+)(?::(\w+))?:(?: +(.*))?$/s;
const SKIP = /^(?:cpus=\d+|version = .*|CPU \d+ is empty|CPU:\d+ \[SUBBUFFER START\].*|\s*=> .*)$/s;
const LOST = /^CPU:(\d+) \[(?:LOST (\d+) EVENTS|(\d+) EVENTS DROPPED|EVENTS DROPPED)\]$/;

const SKIP_RESULT: FtraceLineResult = Object.freeze({ kind: 'skip' });

function malformed(lineNo: number, where: string, message: string): FtraceLineResult {
  return { kind: 'malformed', line: lineNo, message: `line ${lineNo}: ${where}: ${message}` };
}

/** A whole number from header digits, or undefined when not exact. */
function headerNumber(s: string): number | undefined {
  const v = s.length <= 15 ? parseInt(s, 10) : Number(s);
  return Number.isSafeInteger(v) ? v : undefined;
}

interface Header {
  readonly task: string;
  readonly pid: number;
  readonly tgid: number | undefined;
  readonly cpu: number;
  readonly latency: string | undefined;
  readonly timestamp: number;
  readonly rest: string;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The header of `line` (leading blanks end at `start`), or the malformed result. */
function readHeader(line: string, start: number, lineNo: number): Header | FtraceLineResult {
  for (let d = line.indexOf('-', start); d >= 0; d = line.indexOf('-', d + 1)) {
    AFTER_DASH.lastIndex = d + 1;
    const m = AFTER_DASH.exec(line);
    if (m === null) continue;
    const tgid = m[2] ?? (m[3] !== undefined ? '0' : undefined);
    return header(lineNo, line.slice(start, d), m[1] as string, tgid, (m[4] ?? m[7]) as string, m[5] ?? m[6] ?? m[8],
      m[9] as string, m[10], line.slice(AFTER_DASH.lastIndex));
  }
  for (let b = line.indexOf('[', start); b >= 0; b = line.indexOf('[', b + 1)) {
    PERF_AFTER_BRACKET.lastIndex = b;
    const m = PERF_AFTER_BRACKET.exec(line);
    if (m === null) continue;
    // Backwards: spaces, the tid, an optional `pid/`, spaces, then the comm.
    let i = b;
    while (i > start && line.charCodeAt(i - 1) === 0x20) i--;
    const tidEnd = i;
    while (i > start && isDigit(line.charCodeAt(i - 1))) i--;
    if (i === tidEnd || tidEnd === b) continue;
    const tid = line.slice(i, tidEnd);
    let pid: string | undefined;
    if (i > start && line.charCodeAt(i - 1) === 0x2f) {
      const pidEnd = i - 1;
      let k = pidEnd;
      while (k > start && isDigit(line.charCodeAt(k - 1))) k--;
      if (k === pidEnd) continue;
      pid = line.slice(k, pidEnd);
      i = k;
    }
    const commEnd = i;
    while (i > start && line.charCodeAt(i - 1) === 0x20) i--;
    if (i === commEnd && i > start) continue;
    return header(lineNo, line.slice(start, i), tid, pid, m[1] as string, undefined, m[2] as string, m[3], line.slice(PERF_AFTER_BRACKET.lastIndex));
  }
  return malformed(lineNo, 'header', "not a trace line: expected '<task>-<pid> [<cpu>] <secs>.<usecs>: <event>: <fields>'");
}

/** The header from its printed parts, or the malformed result naming the part. */
function header(lineNo: number, task: string, pidS: string, tgidS: string | undefined, cpuS: string, latency: string | undefined,
  secs: string, frac: string | undefined, rest: string): Header | FtraceLineResult {
  const pid = headerNumber(pidS);
  if (pid === undefined) return malformed(lineNo, 'header: pid', `${clip(pidS)} is too large`);
  const cpu = headerNumber(cpuS);
  if (cpu === undefined) return malformed(lineNo, 'header: cpu', `${clip(cpuS)} is too large`);
  const tgid = tgidS === undefined ? undefined : headerNumber(tgidS);
  if (tgidS !== undefined && tgid === undefined) return malformed(lineNo, 'header: tgid', `${clip(tgidS)} is too large`);
  const timestamp = Number(frac === undefined ? secs : `${secs}.${frac}`);
  if (secs.length > 20 || !Number.isFinite(timestamp)) return malformed(lineNo, 'header: timestamp', `'${clip(secs)}' has more digits than a u64`);
  return { task, pid, tgid, cpu, latency, timestamp, rest };
}

/**
 * Classifies one line of a trace (without its newline; a trailing `\r` is ignored) and, for an
 * event replay models, reads it. Never throws: a line it cannot read is `malformed`, with a message
 * naming `lineNo` and the field at fault.
 * @example
 * parseFtraceLine('  <...>-1234    [001] d..1.  5678.123456: dma_unmap_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 attrs=', 7)
 * // { kind: 'event', event: { event: 'dma_unmap_phys', line: 7, pid: 1234, addr: 0xfffff000, dir: 1, ... } }
 */
export function parseFtraceLine(text: string, lineNo: number): FtraceLineResult {
  try {
    if (typeof text !== 'string') return malformed(lineNo, 'line', `expected a string, got ${typeof text}`);
    let end = text.length;
    while (end > 0 && /\s/.test(text[end - 1] as string)) end--;
    const line = end === text.length ? text : text.slice(0, end);
    if (line.includes('\n') || line.includes('\r')) return malformed(lineNo, 'line', 'holds a line break before its end');
    let start = 0;
    // Only spaces: they are the task's padding; a tab would be part of the task.
    while (start < line.length && line.charCodeAt(start) === 0x20) start++;
    if (start === line.length || line.charCodeAt(start) === 0x23 /* # */) return SKIP_RESULT;
    const c = line.charCodeAt(start);
    if (c === 0x43 /* C */ || c === 0x63 /* c */ || c === 0x76 /* v */ || c === 0x3d /* = */) {
      const lost = LOST.exec(line);
      if (lost !== null) {
        const n = lost[2] ?? lost[3];
        return { kind: 'skip', lost: { cpu: headerNumber(lost[1] as string) ?? -1, events: n === undefined ? undefined : headerNumber(n) } };
      }
      if (SKIP.test(line.slice(start))) return SKIP_RESULT;
    }
    const h = readHeader(line, start, lineNo);
    if ('kind' in h) return h;
    const nm = NAME.exec(h.rest);
    if (nm === null) {
      if (h.rest.startsWith('<')) {
        const close = h.rest.indexOf('>');
        return { kind: 'unknown', name: close < 0 ? h.rest : h.rest.slice(0, close + 1) };
      }
      // A function tracer line (`do_timer <-tick_sched_timer`) names no event.
      if (/^\S+(?: <-\S+)?$/.test(h.rest)) return { kind: 'unknown', name: '(function)' };
      return malformed(lineNo, 'header', `event name: expected '<event>: ' after the time, got '${clip(h.rest)}'`);
    }
    const sys = nm[2] === undefined ? undefined : (nm[1] as string);
    const printed = (nm[2] ?? nm[1]) as string;
    const legacy = LEGACY_NAMES[printed];
    const name = legacy?.as ?? printed;
    if (!isFtraceEventName(name) || (sys !== undefined && EVENT_LAYOUTS[name].system !== sys)) {
      return { kind: 'unknown', name: sys === undefined ? name : `${sys}:${name}` };
    }
    const o: Record<string, unknown> = {
      event: name, system: EVENT_LAYOUTS[name].system, line: lineNo, task: h.task, pid: h.pid,
      cpu: h.cpu, latency: h.latency, timestamp: h.timestamp,
    };
    if (h.tgid !== undefined) o['tgid'] = h.tgid;
    try {
      parseText(name, nm[3] ?? '', o);
    } catch (e) {
      if (e instanceof FieldFault) return malformed(lineNo, `${printed}: ${e.field}`, e.message);
      throw e;
    }
    if (legacy !== undefined) {
      o['kernelName'] = printed;
      // dma_map_resource / dma_unmap_resource became dma_map_phys / dma_unmap_phys with DMA_ATTR_MMIO.
      if (legacy.mmio === true) o['attrs'] = (o['attrs'] as number) | DMA_ATTR_MMIO;
    }
    return { kind: 'event', event: o as unknown as FtraceEvent };
  } catch (e) {
    // The parser's own bug: still a result, never a throw (the fuzz test looks for this message).
    return malformed(lineNo, 'internal error', e instanceof Error ? e.message : String(e));
  }
}

// ---- streams -------------------------------------------------------------------------------------

function newStats(): FtraceStats {
  return {
    lines: 0, events: 0, skipped: 0, unknown: 0, unknownByName: Object.create(null) as Record<string, number>,
    malformed: 0, malformedLines: [], lostMarkers: 0, lostEvents: 0,
  };
}

function isAsyncIterable(x: unknown): x is AsyncIterable<string | Uint8Array> {
  return typeof x === 'object' && x !== null && typeof (x as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

function positiveOption(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new KernelError(EINVAL, 'parseFtrace', `expected a non-negative whole number, got ${String(v)}`, name);
  }
  return v;
}

/**
 * Streams a trace line by line (bounded memory whatever its size: CRLF, a last line without
 * newline, chunks split anywhere, including inside a UTF-8 character) and yields its events in
 * order. Skipped, unknown and malformed lines are counted in `stats` (the first 100 malformed
 * kept). A bad `source` or option is EINVAL, thrown at once; a read error rejects the iteration.
 * @example
 * const events = parseFtrace('trace.txt');
 * for await (const ev of events) if (ev.event === 'dma_map_phys') maps++;
 * console.log(events.stats.malformed, events.stats.unknownByName);
 */
export function parseFtrace(source: FtraceSource, options: ParseFtraceOptions = {}): FtraceEventStream {
  if (typeof source !== 'string' && !isAsyncIterable(source)) {
    throw new KernelError(EINVAL, 'parseFtrace', 'expected a file path, a Readable or an async iterable of chunks', 'source');
  }
  if (typeof options !== 'object' || options === null) throw new KernelError(EINVAL, 'parseFtrace', 'expected an options object', 'options');
  const maxLine = positiveOption(options.maxLineLength, 'maxLineLength', 4 * 1024 * 1024) || 1;
  const keep = positiveOption(options.keepMalformed, 'keepMalformed', 100);
  const stats = newStats();
  return Object.assign(run(source, stats, maxLine, keep), { stats });
}

async function* run(source: FtraceSource, stats: FtraceStats, maxLine: number, keep: number): AsyncGenerator<FtraceEvent, FtraceStats, undefined> {
  const input = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;
  const decoder = new TextDecoder('utf-8');
  // INVARIANT: carry holds the start of the current line (never a newline, never more than
  //   maxLine characters); overlong is set once the line passed maxLine, and its text is dropped
  //   until its newline.
  let carry = '';
  let overlong = false;

  const take = (line: string): FtraceEvent | undefined => {
    const n = ++stats.lines;
    if (n === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    let r: FtraceLineResult;
    if (overlong) {
      overlong = false;
      r = malformed(n, 'line', `longer than ${maxLine} characters`);
    } else {
      r = parseFtraceLine(line, n);
    }
    switch (r.kind) {
      case 'event':
        stats.events++;
        return r.event;
      case 'skip':
        stats.skipped++;
        if (r.lost !== undefined) {
          stats.lostMarkers++;
          stats.lostEvents += r.lost.events ?? 0;
        }
        return undefined;
      case 'unknown':
        stats.unknown++;
        stats.unknownByName[r.name] = (stats.unknownByName[r.name] ?? 0) + 1;
        return undefined;
      case 'malformed':
        stats.malformed++;
        if (stats.malformedLines.length < keep) stats.malformedLines.push({ line: r.line, message: r.message });
        return undefined;
    }
  };
  const hold = (s: string): void => {
    if (overlong || s.length === 0) return;
    if (carry.length + s.length > maxLine) {
      overlong = true;
      carry = '';
    } else {
      carry = carry.length === 0 ? s : carry + s;
    }
  };

  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? decoder.decode() + chunk : decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      hold(text.slice(start, nl));
      const line = carry;
      carry = '';
      start = nl + 1;
      const ev = take(line);
      if (ev !== undefined) yield ev;
    }
    hold(text.slice(start));
  }
  hold(decoder.decode());
  if (carry.length > 0 || overlong) {
    const ev = take(carry);
    carry = '';
    if (ev !== undefined) yield ev;
  }
  return stats;
}
