/**
 * @module replay/format
 * Prints {@link FtraceEvent}s back as a Linux 6.18 kernel prints them: the event's text as its
 * TP_printk gives it, and the whole line as `/sys/kernel/tracing/trace` lays it out. What
 * parse.ts reads, this writes: `parseFtraceLine(formatFtraceLine(ev))` is `ev` again (dma_map_sg
 * past 128 entries keeps only the recorded ones), and a line the kernel printed comes back as it was.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import {
  DMA_ATTR_TRACE_NAMES, DMA_DIRECTION_NAMES, DMA_TRACE_MAX_ENTRIES, EVENT_LAYOUTS, isFtraceEventName,
  type DmaMapSgEvent, type FieldKind, type FtraceEvent, type IommuIoPageFaultEvent, type IommuMapEvent,
  type IommuUnmapEvent, type SwiotlbBouncedEvent,
} from './events.ts';

const FN = 'formatFtraceEvent';

function bad(field: string, message: string, fn = FN): never {
  throw new KernelError(EINVAL, fn, message, field);
}

/** A u64 field's value: a whole number in [0, 2^53), or -1 for all ones. */
function u64(v: unknown, field: string): number {
  if (v === -1 || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) return v;
  return bad(field, `expected a u64 below 2^53 or -1, got ${String(v)}`);
}

/** `%llx`. */
function hex(v: unknown, field: string): string {
  const n = u64(v, field);
  return n === -1 ? 'ffffffffffffffff' : n.toString(16);
}

/** `%016llx`. */
function hex16(v: unknown, field: string): string {
  return hex(v, field).padStart(16, '0');
}

/** `%zu`. */
function dec(v: unknown, field: string): string {
  const n = u64(v, field);
  return n === -1 ? '18446744073709551615' : String(n);
}

/** `%d` of a C int. */
function int(v: unknown, field: string): string {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    return bad(field, `expected a C int, got ${String(v)}`);
  }
  return String(v);
}

/** `decode_dma_data_direction`: the name, or `0x%lx` for a value outside the enum, as __print_symbolic does. */
function dir(v: unknown): string {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad('dir', `expected a DMA direction 0..3, got ${String(v)}`);
  return DMA_DIRECTION_NAMES[v as 0] ?? `0x${v.toString(16)}`;
}

/** `decode_dma_attrs`: the set names in table order joined by `|`, what is left as one `0x%lx`; '' for 0. */
function attrs(v: unknown): string {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad('attrs', `expected a DMA_ATTR_* mask below 2^53, got ${String(v)}`);
  if (v === 0) return '';
  const out: string[] = [];
  // CHECKED: every named bit sits below 2^12, so the low 32 bits decide them without cutting v.
  const low = v % 0x100000000;
  let rest = v;
  for (const [bit, name] of DMA_ATTR_TRACE_NAMES) {
    if ((low & bit) !== 0) {
      out.push(name);
      rest -= bit;
    }
  }
  if (rest !== 0) out.push(`0x${rest.toString(16)}`);
  return out.join('|');
}

/** `__print_array`: `{0x1,0x2}`, `{}` when empty. */
function array(v: unknown, field: string, wide: boolean, max = Infinity): string {
  if (!Array.isArray(v)) return bad(field, `expected an array of numbers, got ${typeof v}`);
  const n = Math.min(v.length, max);
  const parts = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const e: unknown = v[i];
    if (wide) parts[i] = `0x${hex(e, `${field}[${i}]`)}`;
    else if (typeof e === 'number' && Number.isInteger(e) && e >= 0 && e <= 0xffffffff) parts[i] = `0x${e.toString(16)}`;
    else return bad(`${field}[${i}]`, `expected an unsigned int, got ${String(e)}`);
  }
  return `{${parts.join(',')}}`;
}

/** A `%p` or GFP token: printed as given, so it must read back as one token. */
function token(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '' || /\s/.test(v)) return bad(field, `expected a non-empty string without spaces, got ${JSON.stringify(v)}`);
  return v;
}

/** A `%s` of a device or driver name: anything on one line. */
function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || /[\r\n]/.test(v)) return bad(field, `expected a one-line string, got ${JSON.stringify(v)}`);
  return v;
}

function value(kind: FieldKind, v: unknown, field: string): string {
  switch (kind) {
    case 'dir': return dir(v);
    case 'hex': return hex(v, field);
    case 'dec': return dec(v, field);
    case 'int': return int(v, field);
    case 'token': return token(v, field);
    case 'attrs': return attrs(v);
    case 'arr64': return array(v, field, true);
    case 'arr32': return array(v, field, false);
    case 'str': return str(v, field);
    case 'bool': return v === true ? '1' : '0';
  }
}

function mapSg(ev: DmaMapSgEvent): string {
  const fullN = Number(int(ev.full_nents, 'full_nents'));
  const fullE = Number(int(ev.full_ents, 'full_ents'));
  const cut = ev.truncated === true || fullN > DMA_TRACE_MAX_ENTRIES || fullE > DMA_TRACE_MAX_ENTRIES;
  const max = DMA_TRACE_MAX_ENTRIES;
  return `${str(ev.device, 'device')} dir=${dir(ev.dir)}` +
    ` nents=${Math.min(fullN, max)}/${fullN} ents=${Math.min(fullE, max)}/${fullE}${cut ? ' [TRUNCATED]' : ''}` +
    ` dma_addrs=${array(ev.dma_addrs, 'dma_addrs', true, max)} sizes=${array(ev.lengths, 'lengths', false, max)}` +
    ` phys_addrs=${array(ev.phys_addrs, 'phys_addrs', true, max)} attrs=${attrs(ev.attrs)}`;
}

function swiotlb(ev: SwiotlbBouncedEvent): string {
  return `dev_name: ${str(ev.dev_name, 'dev_name')} dma_mask=${hex(ev.dma_mask, 'dma_mask')} dev_addr=${hex(ev.dev_addr, 'dev_addr')}` +
    ` size=${dec(ev.size, 'size')} ${ev.force ? 'FORCE' : 'NORMAL'}`;
}

const U64_MASK = (1n << 64n) - 1n;

/** The end the iommu events print: iova + size in 64-bit arithmetic, `%016llx`. */
function rangeEnd(ev: IommuMapEvent | IommuUnmapEvent): string {
  const big = (v: number): bigint => (v === -1 ? U64_MASK : BigInt(v));
  const end = (big(u64(ev.iova, 'iova')) + big(u64(ev.size, 'size'))) & U64_MASK;
  return end.toString(16).padStart(16, '0');
}

function iommu(ev: IommuMapEvent | IommuUnmapEvent | IommuIoPageFaultEvent): string {
  if (ev.event === 'io_page_fault') {
    const f = int(ev.flags, 'flags');
    return `IOMMU:${str(ev.driver, 'driver')} ${str(ev.device, 'device')} iova=0x${hex16(ev.iova, 'iova')}` +
      ` flags=0x${(Number(f) >>> 0).toString(16).padStart(4, '0')}`;
  }
  const range = `IOMMU: iova=0x${hex16(ev.iova, 'iova')} - 0x${rangeEnd(ev)}`;
  if (ev.event === 'map') return `${range} paddr=0x${hex16(ev.paddr, 'paddr')} size=${dec(ev.size, 'size')}`;
  return `${range} size=${dec(ev.size, 'size')} unmapped_size=${dec(ev.unmapped_size, 'unmapped_size')}`;
}

/**
 * The text the kernel prints for `ev` after `<event>: ` (its TP_printk). dma_map_sg prints
 * min(n, 128)/n from `full_nents`/`full_ents`, at most 128 entries of each array, and
 * ` [TRUNCATED]` when `truncated` is set or a count is past 128. A value no kernel could hold
 * (a u64 past 2^53 other than -1, a fraction, a pointer with a space) is EINVAL naming the field.
 * @example
 * formatFtraceEvent(ev) // '0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs='
 */
export function formatFtraceEvent(ev: FtraceEvent): string {
  if (typeof ev !== 'object' || ev === null || typeof ev.event !== 'string' || !isFtraceEventName(ev.event)) {
    return bad('event', `expected an FtraceEvent, got event ${JSON.stringify((ev as { event?: unknown } | null)?.event)}`);
  }
  switch (ev.event) {
    case 'dma_map_sg': return mapSg(ev);
    case 'swiotlb_bounced': return swiotlb(ev);
    case 'map':
    case 'unmap':
    case 'io_page_fault': return iommu(ev);
    default: break;
  }
  const spec = EVENT_LAYOUTS[ev.event].print as NonNullable<(typeof EVENT_LAYOUTS)['dma_alloc']['print']>;
  const fields = ev as unknown as Record<string, unknown>;
  let out = str(ev.device, 'device');
  for (const f of spec) out += ` ${f.label}=${value(f.kind, fields[f.field], f.field)}`;
  return out;
}

/**
 * `ev` as one line of `/sys/kernel/tracing/trace` (no newline): the kernel's trace_print_context
 * (`%16s-%-7d `, `(%7d) ` or `(-------) ` when `tgid` is set, `[%03d] `, the latency column when
 * set, ` %5lu.%06lu: `), then `<event>: ` and {@link formatFtraceEvent}. The timestamp is rounded
 * to the microsecond.
 * @example
 * formatFtraceLine(ev)
 * // '           <...>-1234    [001] d..1.  5678.123456: dma_map_phys: 0000:01:00.0 dir=TO_DEVICE ...'
 */
export function formatFtraceLine(ev: FtraceEvent): string {
  const text = formatFtraceEvent(ev);
  const fn = 'formatFtraceLine';
  if (typeof ev.task !== 'string' || /[\r\n]/.test(ev.task)) bad('task', `expected a one-line string, got ${JSON.stringify(ev.task)}`, fn);
  if (!Number.isSafeInteger(ev.pid) || ev.pid < 0) bad('pid', `expected a non-negative whole number, got ${String(ev.pid)}`, fn);
  if (!Number.isSafeInteger(ev.cpu) || ev.cpu < 0) bad('cpu', `expected a non-negative whole number, got ${String(ev.cpu)}`, fn);
  if (typeof ev.timestamp !== 'number' || !(ev.timestamp >= 0) || ev.timestamp >= 1e21) {
    bad('timestamp', `expected seconds, non-negative and below 1e21, got ${String(ev.timestamp)}`, fn);
  }
  if (ev.latency !== undefined && (typeof ev.latency !== 'string' || ev.latency === '' || /\s/.test(ev.latency))) {
    bad('latency', `expected a column without spaces, got ${JSON.stringify(ev.latency)}`, fn);
  }
  let tgid = '';
  if (ev.tgid !== undefined) {
    if (!Number.isSafeInteger(ev.tgid) || ev.tgid < 0) bad('tgid', `expected a non-negative whole number, got ${String(ev.tgid)}`, fn);
    tgid = ev.tgid === 0 ? '(-------) ' : `(${String(ev.tgid).padStart(7)}) `;
  }
  let secs = Math.floor(ev.timestamp);
  let us = Math.round((ev.timestamp - secs) * 1e6);
  if (us === 1e6) {
    secs += 1;
    us = 0;
  }
  const time = `${String(secs).padStart(5)}.${String(us).padStart(6, '0')}`;
  return `${ev.task.padStart(16)}-${String(ev.pid).padEnd(7)} ${tgid}[${String(ev.cpu).padStart(3, '0')}] ${ev.latency ?? ''} ${time}: ${ev.event}: ${text}`;
}
