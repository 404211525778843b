/** Printing trace events as the kernel does, and the round trips with the parser. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EINVAL } from '../../../src/core/errno.ts';
import { KernelError } from '../../../src/core/errors.ts';
import { FTRACE_EVENT_NAMES, type FtraceEvent } from '../../../src/sim/replay/events.ts';
import { formatFtraceEvent, formatFtraceLine } from '../../../src/sim/replay/format.ts';
import { parseFtraceLine } from '../../../src/sim/replay/parse.ts';

const SYS = '           <...>-1234    [001] d..1.  5678.123456: ';

// One kernel-printed text per event (the reference's print formats, filled in by hand).
const TEXTS: Readonly<Record<string, string>> = {
  dma_alloc: '0000:01:00.0 dir=BIDIRECTIONAL dma_addr=fff80000 size=8192 virt_addr=00000000a1b2c3d4 flags=GFP_KERNEL|__GFP_ZERO attrs=',
  dma_alloc_pages: '0000:01:00.0 dir=FROM_DEVICE dma_addr=1000000 size=16384 virt_addr=000000005e6f7a8b flags=GFP_KERNEL attrs=WEAK_ORDERING',
  dma_alloc_sgt: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffe0000 size=12288 phys_addrs={0x11000,0x23000,0x35000} flags=GFP_KERNEL|__GFP_NOWARN attrs=ALLOC_SINGLE_PAGES',
  dma_alloc_sgt_err: '0000:01:00.0 dir=TO_DEVICE dma_addr=0 size=1048576 virt_addr=0000000000000000 flags=none attrs=',
  dma_free: '0000:01:00.0 dir=BIDIRECTIONAL dma_addr=fff80000 size=8192 virt_addr=00000000a1b2c3d4 attrs=',
  dma_free_pages: '0000:01:00.0 dir=FROM_DEVICE dma_addr=1000000 size=16384 virt_addr=000000005e6f7a8b attrs=NO_KERNEL_MAPPING|PRIVILEGED',
  dma_free_sgt: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffe0000 size=12288 phys_addrs={0x11000,0x23000,0x35000}',
  dma_map_phys: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs=',
  dma_map_sg: '0000:02:00.0 dir=FROM_DEVICE nents=3/3 ents=2/2 dma_addrs={0xfff00000,0xfff10000} sizes={0x2000,0x1000} phys_addrs={0x1000,0x2000,0x9000} attrs=SKIP_CPU_SYNC|NO_WARN',
  dma_map_sg_err: '0000:02:00.0 dir=TO_DEVICE dma_addrs={0x1000,0x3000} err=-12 attrs=MMIO|CACHE_CLEAN',
  dma_sync_sg_for_cpu: '0000:02:00.0 dir=FROM_DEVICE dma_addrs={0xfff00000,0xfff01000} sizes={0x1000,0x800}',
  dma_sync_sg_for_device: '0000:02:00.0 dir=TO_DEVICE dma_addrs={} sizes={}',
  dma_sync_single_for_cpu: '0000:01:00.0 dir=FROM_DEVICE dma_addr=fffff000 size=4096',
  dma_sync_single_for_device: '0000:01:00.0 dir=NONE dma_addr=fffff000 size=512',
  dma_unmap_phys: '0000:01:00.0 dir=TO_DEVICE dma_addr=ffffffffffffffff size=4096 attrs=SKIP_CPU_SYNC|0x1000',
  dma_unmap_sg: '0000:02:00.0 dir=FROM_DEVICE phys_addrs={0x1000,0x2000,0x9000} attrs=',
  swiotlb_bounced: 'dev_name: 0000:03:00.0 dma_mask=ffffffffffffffff dev_addr=112345000 size=4096 FORCE',
  map: 'IOMMU: iova=0x00000000fff00000 - 0x00000000fff02000 paddr=0x0000000123456000 size=8192',
  unmap: 'IOMMU: iova=0x00000000fff00000 - 0x00000000fff02000 size=8192 unmapped_size=4096',
  io_page_fault: 'IOMMU:nvme 0000:01:00.0 iova=0x00000000dead0000 flags=0x0001',
};

function read(line: string, lineNo = 1): FtraceEvent {
  const r = parseFtraceLine(line, lineNo);
  if (r.kind !== 'event') throw new Error(`expected an event, got ${JSON.stringify(r)}`);
  return r.event;
}

/** The KernelError `f` throws. */
function thrown(f: () => unknown): KernelError {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('format(parse(line)) is the line', () => {
  it('the table covers every event', () => {
    expect(Object.keys(TEXTS).sort()).toEqual([...FTRACE_EVENT_NAMES].sort());
  });

  for (const [name, text] of Object.entries(TEXTS)) {
    it(`${name}: the text and the /sys/kernel/tracing/trace line`, () => {
      const line = `${SYS}${name}: ${text}`;
      const ev = read(line);
      expect(formatFtraceEvent(ev)).toBe(text);
      expect(formatFtraceLine(ev)).toBe(line);
    });
  }

  it('the header as trace_print_context pads it: %16s-%-7d, (tgid), [%03d], latency, %5lu.%06lu', () => {
    const t = 'dma_sync_single_for_cpu: 0000:01:00.0 dir=FROM_DEVICE dma_addr=fffff000 size=4096';
    for (const line of [
      `           <...>-1234    [001] d..1.  5678.123456: ${t}`,
      `          <idle>-0       [000] d.s2.     0.000001: ${t}`,
      `     Web Content-4242    [127] .....    12.500000: ${t}`,
      `   kworker/u16:3-77      [003]    123.000000: ${t}`,
      `           <...>-1234    (   1200) [001] d..1.  5678.123456: ${t}`,
      `           <...>-1234    (-------) [001] d..1.  5678.123456: ${t}`,
      `a-task-longer-than-16-9999999 [1024] dNh1. 1234567.999999: ${t}`,
    ]) {
      expect(formatFtraceLine(read(line))).toBe(line);
    }
  });

  it('trace-cmd report lines come out in the /sys layout', () => {
    const tc = '           <...>-1234  [001] d..1.  5678.123456: dma_map_phys:         0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs=';
    expect(formatFtraceLine(read(tc))).toBe(`${SYS}dma_map_phys: ${TEXTS['dma_map_phys']}`);
    const ns = '           <...>-1234  [001] d..1.  5678.1234565: dma:dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs=';
    expect(formatFtraceLine(read(ns))).toBe(`           <...>-1234    [001] d..1.  5678.123457: dma_map_phys: ${TEXTS['dma_map_phys']}`);
  });
});

describe('the kernel\'s print quirks', () => {
  const base = { line: 1, task: 'x', pid: 1, cpu: 0, latency: undefined, timestamp: 1 } as const;

  it('dma_map_sg past 128 entries: min(n, 128)/n, [TRUNCATED], the first 128 of each array', () => {
    const seq = (n: number, from: number, step: number): number[] => Array.from({ length: n }, (_, i) => from + i * step);
    const ev: FtraceEvent = {
      ...base, event: 'dma_map_sg', system: 'dma', device: 'd', dir: 1, full_nents: 200, full_ents: 130, nents: 200, ents: 130,
      truncated: false, phys_addrs: seq(200, 0x100000, 0x1000), dma_addrs: seq(130, 0xf0000000, 0x1000), lengths: seq(130, 0x1000, 0), attrs: 0,
    };
    const text = formatFtraceEvent(ev);
    expect(text).toMatch(/^d dir=TO_DEVICE nents=128\/200 ents=128\/130 \[TRUNCATED\] dma_addrs=\{0xf0000000,/);
    const arrays = [...text.matchAll(/=\{([^}]*)\}/g)].map((m) => (m[1] as string).split(',').length);
    expect(arrays).toEqual([128, 128, 128]);
    const back = read(`${SYS}dma_map_sg: ${text}`);
    expect(back).toMatchObject({ full_nents: 200, full_ents: 130, nents: 128, ents: 128, truncated: true });
    expect(back).toMatchObject({ phys_addrs: ev.phys_addrs.slice(0, 128), dma_addrs: ev.dma_addrs.slice(0, 128), lengths: ev.lengths.slice(0, 128) });
    // Exactly 128 is not cut; a set `truncated` is printed as given.
    expect(formatFtraceEvent({ ...ev, full_nents: 128, full_ents: 1, phys_addrs: seq(128, 0, 1), dma_addrs: [0], lengths: [1] }))
      .toMatch(/nents=128\/128 ents=1\/1 dma_addrs/);
  });

  it('-1 prints as all ones in every u64 place; names for dir and attrs; leftover attribute bits in hex', () => {
    const ev: FtraceEvent = { ...base, event: 'dma_map_phys', system: 'dma', device: 'd', dir: 3, phys_addr: -1, dma_addr: -1, size: -1, attrs: 0x3020 };
    expect(formatFtraceEvent(ev)).toBe('d dir=NONE dma_addr=ffffffffffffffff size=18446744073709551615 phys_addr=ffffffffffffffff attrs=SKIP_CPU_SYNC|0x3000');
    expect(formatFtraceEvent({ ...ev, attrs: 2 ** 52 + 2 }).endsWith(' attrs=WEAK_ORDERING|0x10000000000000')).toBe(true);
    expect(formatFtraceEvent({ ...ev, attrs: 0xffe }).endsWith(
      ' attrs=WEAK_ORDERING|WRITE_COMBINE|NO_KERNEL_MAPPING|SKIP_CPU_SYNC|FORCE_CONTIGUOUS|ALLOC_SINGLE_PAGES|NO_WARN|PRIVILEGED|MMIO|CACHE_CLEAN|0x8',
    )).toBe(true);
    // A direction outside the enum prints as __print_symbolic prints an unknown value.
    expect(formatFtraceEvent({ ...ev, dir: 5 as 0 })).toMatch(/^d dir=0x5 /);
  });

  it('iommu: iova - iova+size in 64-bit arithmetic, %016llx; io_page_fault flags as 0x%04x of an int', () => {
    const map: FtraceEvent = { ...base, event: 'map', system: 'iommu', iova: 2 ** 53 - 0x1000, paddr: 0x1000, size: 0x2000 };
    expect(formatFtraceEvent(map)).toBe('IOMMU: iova=0x001ffffffffff000 - 0x0020000000001000 paddr=0x0000000000001000 size=8192');
    expect(read(`${SYS}map: ${formatFtraceEvent(map)}`)).toMatchObject({ iova: map.iova, size: 0x2000 });
    const wrap: FtraceEvent = { ...base, event: 'unmap', system: 'iommu', iova: -1, size: 0x1000, unmapped_size: 0 };
    expect(formatFtraceEvent(wrap)).toBe('IOMMU: iova=0xffffffffffffffff - 0x0000000000000fff size=4096 unmapped_size=0');
    const fault: FtraceEvent = { ...base, event: 'io_page_fault', system: 'iommu', device: '0000:00:02.0', driver: 'i915', iova: 0x1000, flags: -1 };
    expect(formatFtraceEvent(fault)).toBe('IOMMU:i915 0000:00:02.0 iova=0x0000000000001000 flags=0xffffffff');
    expect(formatFtraceEvent({ ...fault, flags: 0x12345 })).toMatch(/flags=0x12345$/);
  });

  it('swiotlb: FORCE or NORMAL', () => {
    const ev: FtraceEvent = { ...base, event: 'swiotlb_bounced', system: 'swiotlb', dev_name: 'x', dma_mask: 0xffffffff, dev_addr: 0x100000000, size: 64, force: false };
    expect(formatFtraceEvent(ev)).toBe('dev_name: x dma_mask=ffffffff dev_addr=100000000 size=64 NORMAL');
  });

  it('what no kernel could print is EINVAL naming the field', () => {
    const ev: FtraceEvent = { ...base, event: 'dma_alloc', system: 'dma', device: 'd', dir: 0, virt_addr: 'p', dma_addr: 0, size: 1, flags: 'none', attrs: 0 };
    const cases: Array<[FtraceEvent, string]> = [
      [{ ...ev, dma_addr: 2 ** 53 }, 'dma_addr'], [{ ...ev, size: 1.5 }, 'size'], [{ ...ev, size: -2 }, 'size'],
      [{ ...ev, virt_addr: 'a b' }, 'virt_addr'], [{ ...ev, flags: '' }, 'flags'], [{ ...ev, attrs: -1 }, 'attrs'],
      [{ ...ev, dir: 'x' as unknown as 0 }, 'dir'], [{ ...ev, device: 'a\nb' }, 'device'],
      [{ ...ev, event: 'dma_map_page' } as unknown as FtraceEvent, 'event'],
      [{ ...ev, event: 'dma_sync_sg_for_cpu', dma_addrs: [0], lengths: [2 ** 32] } as unknown as FtraceEvent, 'lengths[0]'],
      [{ ...ev, event: 'dma_map_sg_err', phys_addrs: [], err: 2 ** 31 } as unknown as FtraceEvent, 'err'],
    ];
    for (const [bad, arg] of cases) {
      const e = thrown(() => formatFtraceEvent(bad));
      expect(e).toMatchObject({ errno: EINVAL, fn: 'formatFtraceEvent', arg });
    }
    for (const [bad, arg] of [[{ ...ev, pid: -1 }, 'pid'], [{ ...ev, timestamp: Number.NaN }, 'timestamp'], [{ ...ev, latency: 'd .' }, 'latency'], [{ ...ev, tgid: 1.5 }, 'tgid']] as const) {
      expect(thrown(() => formatFtraceLine(bad as FtraceEvent))).toMatchObject({ errno: EINVAL, fn: 'formatFtraceLine', arg });
    }
  });
});

// ---- parse(format(ev)) is ev, for generated events -------------------------------------------------

const u64 = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xffff_ffff }), fc.maxSafeNat());
const size = fc.oneof(fc.integer({ min: 0, max: 1 << 24 }), fc.constant(-1), fc.maxSafeNat());
const dir = fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const);
const attrs = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0x3fff }).map((a) => a & ~0b1001), fc.maxSafeNat());
const addrs = (max = 6): fc.Arbitrary<number[]> => fc.array(u64, { maxLength: max });
const u32s = (n: number): fc.Arbitrary<number[]> => fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: n, maxLength: n });
const noBreak = (s: string): boolean => !/[\r\n]/.test(s);
// A kernel-ish name: no line breaks, no leading space (taken for padding); a device may hold anything else.
const name = fc.string({ unit: fc.constantFrom(...'abz09:._-/ +€😀\t'.split(/(?:)/u)), maxLength: 20 }).filter((s) => noBreak(s) && !s.startsWith(' '));
const token = fc.string({ unit: fc.constantFrom(...'0123456789abcdef()_|GFPKERNL'.split('')), minLength: 1, maxLength: 18 });
// A task holds no '[' (the parser ends it at the first `-<pid> [<cpu>]`) and starts with no space (the padding).
const task = fc.string({ unit: fc.constantFrom(...'ab<>.:/-_ 019\t'.split('')), maxLength: 15 }).filter((s) => !s.startsWith(' '));
const header = fc.record({
  line: fc.nat({ max: 1e9 }), task, pid: fc.nat({ max: 1 << 22 }), cpu: fc.nat({ max: 8191 }),
  latency: fc.option(fc.stringMatching(/^[.dDbX][.nNp][.zZhHs][.0-9a-f][.0-9a-f]$/), { nil: undefined }),
  timestamp: fc.nat({ max: 4e12 }).map((us) => us / 1e6),
}).chain((h) => fc.option(fc.nat({ max: 1 << 22 }), { nil: undefined }).map((tgid) => (tgid === undefined ? h : { ...h, tgid })));

const dma = <T extends object>(fields: fc.Arbitrary<T>): fc.Arbitrary<T & { system: 'dma'; device: string; dir: 0 | 1 | 2 | 3 }> =>
  fc.tuple(fields, name, dir).map(([f, device, d]) => ({ ...f, system: 'dma' as const, device, dir: d }));

const mapSg = fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 })).chain(([n, e]) => {
  const tn = Math.min(n, 128);
  const te = Math.min(e, 128);
  return dma(fc.record({
    event: fc.constant('dma_map_sg' as const), full_nents: fc.constant(n), full_ents: fc.constant(e), nents: fc.constant(tn), ents: fc.constant(te),
    truncated: fc.constant(n > 128 || e > 128), phys_addrs: fc.array(u64, { minLength: tn, maxLength: tn }),
    dma_addrs: fc.array(u64, { minLength: te, maxLength: te }), lengths: u32s(te), attrs,
  }));
});

const bodies: fc.Arbitrary<object> = fc.oneof(
  dma(fc.record({ event: fc.constantFrom('dma_alloc' as const, 'dma_alloc_pages' as const, 'dma_alloc_sgt_err' as const), virt_addr: token, dma_addr: u64, size, flags: token, attrs })),
  dma(fc.record({ event: fc.constant('dma_alloc_sgt' as const), phys_addrs: addrs(), dma_addr: u64, size, flags: token, attrs })),
  dma(fc.record({ event: fc.constantFrom('dma_free' as const, 'dma_free_pages' as const), virt_addr: token, dma_addr: u64, size, attrs })),
  dma(fc.record({ event: fc.constant('dma_free_sgt' as const), phys_addrs: addrs(), dma_addr: u64, size })),
  dma(fc.record({ event: fc.constant('dma_map_phys' as const), phys_addr: u64, dma_addr: u64, size, attrs })),
  mapSg,
  dma(fc.record({ event: fc.constant('dma_map_sg_err' as const), phys_addrs: addrs(), err: fc.integer({ min: -0x80000000, max: 0x7fffffff }), attrs })),
  dma(fc.integer({ min: 0, max: 5 }).chain((n) => fc.record({
    event: fc.constantFrom('dma_sync_sg_for_cpu' as const, 'dma_sync_sg_for_device' as const), dma_addrs: fc.array(u64, { minLength: n, maxLength: n }), lengths: u32s(n),
  }))),
  dma(fc.record({ event: fc.constantFrom('dma_sync_single_for_cpu' as const, 'dma_sync_single_for_device' as const), dma_addr: u64, size })),
  dma(fc.record({ event: fc.constant('dma_unmap_phys' as const), addr: u64, size, attrs })),
  dma(fc.record({ event: fc.constant('dma_unmap_sg' as const), addrs: addrs(), attrs })),
  fc.record({ event: fc.constant('swiotlb_bounced' as const), system: fc.constant('swiotlb' as const), dev_name: name, dma_mask: u64, dev_addr: u64, size, force: fc.boolean() }),
  fc.record({ event: fc.constant('map' as const), system: fc.constant('iommu' as const), iova: u64, paddr: u64, size }),
  fc.record({ event: fc.constant('unmap' as const), system: fc.constant('iommu' as const), iova: u64, size, unmapped_size: size }),
  fc.record({
    event: fc.constant('io_page_fault' as const), system: fc.constant('iommu' as const), device: name,
    driver: name.filter((s) => !s.includes(' ')), iova: u64, flags: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  }),
);

describe('parse(format(ev)) is ev', () => {
  it('for generated events of every kind (seeded)', () => {
    fc.assert(fc.property(header, bodies, (h, b) => {
      const ev = { ...h, ...b } as FtraceEvent;
      const back = parseFtraceLine(formatFtraceLine(ev), h.line);
      expect(back).toStrictEqual({ kind: 'event', event: ev });
    }), { seed: Number(process.env['FC_SEED'] ?? 21), numRuns: Number(process.env['FC_RUNS'] ?? 3000) });
  });
});
