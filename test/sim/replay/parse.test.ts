/** Reading kernel DMA trace text: every event in both layouts, every quirk, a fuzz, and streaming. */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FTRACE_EVENT_NAMES, type FtraceEvent, type FtraceEventName } from '../../../src/sim/replay/events.ts';
import { formatFtraceLine } from '../../../src/sim/replay/format.ts';
import { parseFtrace, parseFtraceLine, type FtraceLineResult } from '../../../src/sim/replay/parse.ts';

// The common header of the hand-written lines, in both layouts.
const HEADER = { task: '<...>', pid: 1234, cpu: 1, latency: 'd..1.', timestamp: 5678.123456 };
/** `cat /sys/kernel/tracing/trace`: `%16s-%-7d [%03d] <lat> %5lu.%06lu: `. */
const SYS = '           <...>-1234    [001] d..1.  5678.123456: ';
/** `trace-cmd report`: `%16s-%-5d [%03d] <lat> %5lu.%06lu:`, then ` <name>: ` padded to 20. */
const TC = '           <...>-1234  [001] d..1.  5678.123456:';
const tcLine = (name: string, text: string): string => `${TC} ${name}: ${' '.repeat(Math.max(0, 20 - name.length))}${text}`;

interface Case {
  readonly name: FtraceEventName;
  readonly system: 'dma' | 'swiotlb' | 'iommu';
  readonly text: string;
  readonly fields: Record<string, unknown>;
}

// One line per event, as a 6.18 kernel prints it, with the fields it must give.
const CASES: readonly Case[] = [
  { name: 'dma_alloc', system: 'dma', text: '0000:01:00.0 dir=BIDIRECTIONAL dma_addr=fff80000 size=8192 virt_addr=00000000a1b2c3d4 flags=GFP_KERNEL|__GFP_ZERO attrs=',
    fields: { device: '0000:01:00.0', dir: 0, dma_addr: 0xfff80000, size: 8192, virt_addr: '00000000a1b2c3d4', flags: 'GFP_KERNEL|__GFP_ZERO', attrs: 0 } },
  { name: 'dma_alloc_pages', system: 'dma', text: '0000:01:00.0 dir=FROM_DEVICE dma_addr=1000000 size=16384 virt_addr=000000005e6f7a8b flags=GFP_KERNEL attrs=',
    fields: { device: '0000:01:00.0', dir: 2, dma_addr: 0x1000000, size: 16384, virt_addr: '000000005e6f7a8b', flags: 'GFP_KERNEL', attrs: 0 } },
  { name: 'dma_alloc_sgt', system: 'dma', text: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffe0000 size=12288 phys_addrs={0x11000,0x23000,0x35000} flags=GFP_KERNEL|__GFP_NOWARN attrs=ALLOC_SINGLE_PAGES',
    fields: { device: '0000:01:00.0', dir: 1, dma_addr: 0xfffe0000, size: 12288, phys_addrs: [0x11000, 0x23000, 0x35000], flags: 'GFP_KERNEL|__GFP_NOWARN', attrs: 1 << 7 } },
  { name: 'dma_alloc_sgt_err', system: 'dma', text: '0000:01:00.0 dir=TO_DEVICE dma_addr=0 size=1048576 virt_addr=0000000000000000 flags=none attrs=',
    fields: { device: '0000:01:00.0', dir: 1, dma_addr: 0, size: 1048576, virt_addr: '0000000000000000', flags: 'none', attrs: 0 } },
  { name: 'dma_free', system: 'dma', text: '0000:01:00.0 dir=BIDIRECTIONAL dma_addr=fff80000 size=8192 virt_addr=00000000a1b2c3d4 attrs=',
    fields: { device: '0000:01:00.0', dir: 0, dma_addr: 0xfff80000, size: 8192, virt_addr: '00000000a1b2c3d4', attrs: 0 } },
  { name: 'dma_free_pages', system: 'dma', text: '0000:01:00.0 dir=FROM_DEVICE dma_addr=1000000 size=16384 virt_addr=000000005e6f7a8b attrs=',
    fields: { device: '0000:01:00.0', dir: 2, dma_addr: 0x1000000, size: 16384, virt_addr: '000000005e6f7a8b', attrs: 0 } },
  { name: 'dma_free_sgt', system: 'dma', text: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffe0000 size=12288 phys_addrs={0x11000,0x23000,0x35000}',
    fields: { device: '0000:01:00.0', dir: 1, dma_addr: 0xfffe0000, size: 12288, phys_addrs: [0x11000, 0x23000, 0x35000] } },
  { name: 'dma_map_phys', system: 'dma', text: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs=',
    fields: { device: '0000:01:00.0', dir: 1, dma_addr: 0xfffff000, size: 4096, phys_addr: 0x1234000, attrs: 0 } },
  { name: 'dma_map_sg', system: 'dma', text: '0000:02:00.0 dir=FROM_DEVICE nents=3/3 ents=2/2 dma_addrs={0xfff00000,0xfff10000} sizes={0x2000,0x1000} phys_addrs={0x1000,0x2000,0x9000} attrs=SKIP_CPU_SYNC|NO_WARN',
    fields: { device: '0000:02:00.0', dir: 2, full_nents: 3, full_ents: 2, nents: 3, ents: 2, truncated: false, phys_addrs: [0x1000, 0x2000, 0x9000],
      dma_addrs: [0xfff00000, 0xfff10000], lengths: [0x2000, 0x1000], attrs: (1 << 5) | (1 << 8) } },
  { name: 'dma_map_sg_err', system: 'dma', text: '0000:02:00.0 dir=TO_DEVICE dma_addrs={0x1000,0x3000} err=-12 attrs=',
    fields: { device: '0000:02:00.0', dir: 1, phys_addrs: [0x1000, 0x3000], err: -12, attrs: 0 } },
  { name: 'dma_sync_sg_for_cpu', system: 'dma', text: '0000:02:00.0 dir=FROM_DEVICE dma_addrs={0xfff00000,0xfff01000} sizes={0x1000,0x800}',
    fields: { device: '0000:02:00.0', dir: 2, dma_addrs: [0xfff00000, 0xfff01000], lengths: [0x1000, 0x800] } },
  { name: 'dma_sync_sg_for_device', system: 'dma', text: '0000:02:00.0 dir=TO_DEVICE dma_addrs={0xfff00000} sizes={0x1000}',
    fields: { device: '0000:02:00.0', dir: 1, dma_addrs: [0xfff00000], lengths: [0x1000] } },
  { name: 'dma_sync_single_for_cpu', system: 'dma', text: '0000:01:00.0 dir=FROM_DEVICE dma_addr=fffff000 size=4096',
    fields: { device: '0000:01:00.0', dir: 2, dma_addr: 0xfffff000, size: 4096 } },
  { name: 'dma_sync_single_for_device', system: 'dma', text: '0000:01:00.0 dir=BIDIRECTIONAL dma_addr=fffff000 size=512',
    fields: { device: '0000:01:00.0', dir: 0, dma_addr: 0xfffff000, size: 512 } },
  { name: 'dma_unmap_phys', system: 'dma', text: '0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 attrs=SKIP_CPU_SYNC',
    fields: { device: '0000:01:00.0', dir: 1, addr: 0xfffff000, size: 4096, attrs: 1 << 5 } },
  { name: 'dma_unmap_sg', system: 'dma', text: '0000:02:00.0 dir=FROM_DEVICE phys_addrs={0x1000,0x2000,0x9000} attrs=',
    fields: { device: '0000:02:00.0', dir: 2, addrs: [0x1000, 0x2000, 0x9000], attrs: 0 } },
  { name: 'swiotlb_bounced', system: 'swiotlb', text: 'dev_name: 0000:03:00.0 dma_mask=ffffffff dev_addr=112345000 size=4096 NORMAL',
    fields: { dev_name: '0000:03:00.0', dma_mask: 0xffffffff, dev_addr: 0x112345000, size: 4096, force: false } },
  { name: 'map', system: 'iommu', text: 'IOMMU: iova=0x00000000fff00000 - 0x00000000fff02000 paddr=0x0000000123456000 size=8192',
    fields: { iova: 0xfff00000, paddr: 0x123456000, size: 8192 } },
  { name: 'unmap', system: 'iommu', text: 'IOMMU: iova=0x00000000fff00000 - 0x00000000fff02000 size=8192 unmapped_size=8192',
    fields: { iova: 0xfff00000, size: 8192, unmapped_size: 8192 } },
  { name: 'io_page_fault', system: 'iommu', text: 'IOMMU:nvme 0000:01:00.0 iova=0x00000000dead0000 flags=0x0001',
    fields: { driver: 'nvme', device: '0000:01:00.0', iova: 0xdead0000, flags: 1 } },
];

function event(r: FtraceLineResult): FtraceEvent {
  if (r.kind !== 'event') throw new Error(`expected an event, got ${JSON.stringify(r)}`);
  return r.event;
}

function malformedMessage(r: FtraceLineResult): string {
  if (r.kind !== 'malformed') throw new Error(`expected malformed, got ${JSON.stringify(r)}`);
  return r.message;
}

/** The fields of `text` as event `name` from a /sys layout line. */
function fieldsOf(name: string, text: string, lineNo = 1): Record<string, unknown> {
  return event(parseFtraceLine(`${SYS}${name}: ${text}`, lineNo)) as unknown as Record<string, unknown>;
}

describe('each event in the reference format', () => {
  it('the table covers every modelled event once', () => {
    expect(CASES.map((c) => c.name).sort()).toEqual([...FTRACE_EVENT_NAMES].sort());
  });

  for (const c of CASES) {
    it(`${c.name}: /sys/kernel/tracing/trace layout, field by field`, () => {
      const ev = event(parseFtraceLine(`${SYS}${c.name}: ${c.text}`, 42));
      expect(ev).toStrictEqual({ event: c.name, system: c.system, line: 42, ...HEADER, ...c.fields });
    });
    it(`${c.name}: trace-cmd report layout (padded name) and with the system prefix`, () => {
      const want = { event: c.name, system: c.system, line: 7, ...HEADER, ...c.fields };
      expect(event(parseFtraceLine(tcLine(c.name, c.text), 7))).toStrictEqual(want);
      expect(event(parseFtraceLine(tcLine(`${c.system}:${c.name}`, c.text), 7))).toStrictEqual(want);
    });
  }

  it('a literal trace-cmd report line', () => {
    const line = '     kworker/3:2-211   [003] .....  1024.000500: dma_unmap_phys:       0000:00:1f.6 dir=FROM_DEVICE dma_addr=ffffe000 size=1536 attrs=';
    expect(event(parseFtraceLine(line, 1))).toStrictEqual({
      event: 'dma_unmap_phys', system: 'dma', line: 1, task: 'kworker/3:2', pid: 211, cpu: 3, latency: '.....', timestamp: 1024.0005,
      device: '0000:00:1f.6', dir: 2, addr: 0xffffe000, size: 1536, attrs: 0,
    });
  });
});

describe('header variants', () => {
  const text = 'dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs=';
  const head = (line: string): Record<string, unknown> => {
    const { task, pid, cpu, latency, timestamp, tgid } = event(parseFtraceLine(line, 1));
    return tgid === undefined ? { task, pid, cpu, latency, timestamp } : { task, pid, cpu, latency, timestamp, tgid };
  };

  it('tasks with spaces, dashes, colons and slashes: the pid follows the last dash before [cpu]', () => {
    expect(head(`     Web Content-4242    [002] d..1.  5678.123456: ${text}`)).toMatchObject({ task: 'Web Content', pid: 4242 });
    expect(head(`   kworker/u16:3-77      [000] ....1    1.000000: ${text}`)).toMatchObject({ task: 'kworker/u16:3', pid: 77 });
    expect(head(`  irq/42-nvme0q1-300     [000] d.h1.    1.000000: ${text}`)).toMatchObject({ task: 'irq/42-nvme0q1', pid: 300 });
    expect(head(`       a-1-b-2-3-5       [000] .....    1.000000: ${text}`)).toMatchObject({ task: 'a-1-b-2-3', pid: 5 });
    expect(head(`          <idle>-0       [000] d.s2.    1.000000: ${text}`)).toMatchObject({ task: '<idle>', pid: 0 });
    expect(head(`           <...>-1234    [000] .....    1.000000: ${text}`)).toMatchObject({ task: '<...>', pid: 1234 });
  });

  it('no latency column; the (tgid) column; trace-cmd -t nanoseconds, --ts-diff, -l and -R headers', () => {
    expect(head(`           <...>-1234    [001]   5678.123456: ${text}`)).toEqual({ ...HEADER, latency: undefined });
    expect(head(`           <...>-1234    (   1200) [001] d..1.  5678.123456: ${text}`)).toEqual({ ...HEADER, tgid: 1200 });
    expect(head(`           <...>-1234    (-------) [001] d..1.  5678.123456: ${text}`)).toEqual({ ...HEADER, tgid: 0 });
    expect(head(`           <...>-1234  [001] d..1.  5678.123456789: ${text}`)).toEqual({ ...HEADER, timestamp: 5678.123456789 });
    expect(head(`           <...>-1234  [001] d..1.  5678.123456: (+125)   ${text}`)).toEqual(HEADER);
    expect(head(`   <...>-1234    1d..1.  5678.123456: ${text}`)).toEqual(HEADER);
    expect(head(`           <...>-1234  [001]-0x1  5678.123456: ${text}`)).toEqual({ ...HEADER, latency: '0x1' });
  });

  it('perf script lines (comm, [pid/]tid, sys:event)', () => {
    expect(head(`            perf  1234 [001]  5678.123456: dma:${text}`)).toEqual({ ...HEADER, task: 'perf', latency: undefined });
    expect(head(`     Web Content 1200/1234 [001]  5678.123456: dma:${text}`)).toEqual({ ...HEADER, task: 'Web Content', tgid: 1200, latency: undefined });
  });

  it('a trailing CR or spaces are ignored; an empty device name is read as empty', () => {
    expect(event(parseFtraceLine(`${SYS}${text}\r`, 1))).toMatchObject({ device: '0000:01:00.0', attrs: 0 });
    expect(event(parseFtraceLine(`${SYS}dma_sync_single_for_cpu:  dir=FROM_DEVICE dma_addr=1000 size=64`, 1))).toMatchObject({ device: '', size: 64 });
    expect(event(parseFtraceLine(`${SYS}io_page_fault: IOMMU: 0000:00:02.0 iova=0x0000000000001000 flags=0x0000`, 1)))
      .toMatchObject({ driver: '', device: '0000:00:02.0', flags: 0 });
    expect(event(parseFtraceLine(`${SYS}swiotlb_bounced: dev_name:  dma_mask=0 dev_addr=1000 size=64 FORCE`, 1))).toMatchObject({ dev_name: '', force: true });
  });
});

describe('the quirks of the DMA events', () => {
  it('dma_map_sg records 128 entries: min(n, 128)/n, [TRUNCATED], full counts kept', () => {
    const hex = (n: number, base: number): string => `{${Array.from({ length: n }, (_, i) => `0x${(base + i * 0x1000).toString(16)}`).join(',')}}`;
    const sizes = `{${Array(128).fill('0x1000').join(',')}}`;
    const text = `0000:02:00.0 dir=TO_DEVICE nents=128/200 ents=128/150 [TRUNCATED] dma_addrs=${hex(128, 0xf0000000)} sizes=${sizes} phys_addrs=${hex(128, 0x100000)} attrs=`;
    const ev = fieldsOf('dma_map_sg', text);
    expect(ev).toMatchObject({ full_nents: 200, full_ents: 150, nents: 128, ents: 128, truncated: true });
    expect((ev['phys_addrs'] as number[]).length).toBe(128);
    expect((ev['dma_addrs'] as number[])[127]).toBe(0xf0000000 + 127 * 0x1000);
    // Exactly 128 is not truncated.
    const full = `0000:02:00.0 dir=TO_DEVICE nents=128/128 ents=128/128 dma_addrs=${hex(128, 0xf0000000)} sizes=${sizes} phys_addrs=${hex(128, 0x100000)} attrs=`;
    expect(fieldsOf('dma_map_sg', full)).toMatchObject({ full_nents: 128, truncated: false });
    // What the kernel cannot print is malformed, naming the field.
    const bad = (t: string): string => malformedMessage(parseFtraceLine(`${SYS}dma_map_sg: ${t}`, 9));
    expect(bad(text.replace(' [TRUNCATED]', ''))).toMatch(/^line 9: dma_map_sg: truncated: /);
    expect(bad(text.replace('nents=128/200', 'nents=100/200'))).toMatch(/^line 9: dma_map_sg: nents: /);
    expect(bad(text.replace('0x100000,', ''))).toMatch(/^line 9: dma_map_sg: phys_addrs: 127 entries/);
    expect(bad(full.replace('128/128 dma', '128/128 [TRUNCATED] dma'))).toMatch(/^line 9: dma_map_sg: truncated: /);
  });

  it('dma_unmap_sg keeps physical addresses in `addrs`; dma_map_sg_err keeps its mislabelled array in `phys_addrs`', () => {
    const unmap = fieldsOf('dma_unmap_sg', '0000:02:00.0 dir=FROM_DEVICE phys_addrs={0x1000} attrs=');
    expect(unmap['addrs']).toEqual([0x1000]);
    expect('phys_addrs' in unmap).toBe(false);
    const err = fieldsOf('dma_map_sg_err', '0000:02:00.0 dir=FROM_DEVICE dma_addrs={0x1000} err=-5 attrs=');
    expect(err['phys_addrs']).toEqual([0x1000]);
    expect('dma_addrs' in err).toBe(false);
    expect(fieldsOf('dma_unmap_sg', '0000:02:00.0 dir=FROM_DEVICE phys_addrs={} attrs=')['addrs']).toEqual([]);
  });

  it('attrs: empty is 0, several names add up, a leftover 0x part, newer kernels\' names', () => {
    const attrs = (a: string): unknown => fieldsOf('dma_unmap_phys', `d dir=NONE dma_addr=0 size=0 attrs=${a}`)['attrs'];
    expect(attrs('')).toBe(0);
    expect(attrs('WEAK_ORDERING|WRITE_COMBINE|NO_KERNEL_MAPPING|SKIP_CPU_SYNC|FORCE_CONTIGUOUS|ALLOC_SINGLE_PAGES|NO_WARN|PRIVILEGED|MMIO|CACHE_CLEAN'))
      .toBe(0b1111_1111_0110);
    expect(attrs('SKIP_CPU_SYNC|0x1000')).toBe(0x1020);
    expect(attrs('0x80000000000')).toBe(0x80000000000);
    expect(attrs('REQUIRE_COHERENT|CC_SHARED')).toBe(0x3000);
    expect(attrs('CACHELINES_OVERLAP')).toBe(0x800);
    const bad = (a: string): string => malformedMessage(parseFtraceLine(`${SYS}dma_unmap_phys: d dir=NONE dma_addr=0 size=0 attrs=${a}`, 3));
    expect(bad('SKIP_CPU_SYNC|SKIP_CPU_SYNC')).toMatch(/^line 3: dma_unmap_phys: attrs: SKIP_CPU_SYNC given twice/);
    expect(bad('FAST')).toMatch(/^line 3: dma_unmap_phys: attrs: unknown DMA attribute 'FAST'/);
    expect(bad('0x20')).toMatch(/^line 3: dma_unmap_phys: attrs: .*printed by name/);
    expect(bad('0x1000|NO_WARN')).toMatch(/^line 3: dma_unmap_phys: attrs: unknown DMA attribute '0x1000'/);
  });

  it('DMA_MAPPING_ERROR (all ones) is -1; any other u64 past 2^53 is malformed naming the field', () => {
    expect(fieldsOf('dma_map_phys', 'd dir=TO_DEVICE dma_addr=ffffffffffffffff size=4096 phys_addr=1234000 attrs=')['dma_addr']).toBe(-1);
    expect(fieldsOf('dma_free_sgt', 'd dir=TO_DEVICE dma_addr=0 size=18446744073709551615 phys_addrs={0xffffffffffffffff}'))
      .toMatchObject({ size: -1, phys_addrs: [-1] });
    expect(fieldsOf('dma_map_phys', 'd dir=TO_DEVICE dma_addr=1fffffffffffff size=4096 phys_addr=0 attrs=')['dma_addr']).toBe(2 ** 53 - 1);
    const bad = (t: string): string => malformedMessage(parseFtraceLine(`${SYS}${t}`, 11));
    expect(bad('dma_map_phys: d dir=TO_DEVICE dma_addr=20000000000000 size=4096 phys_addr=0 attrs=')).toMatch(/^line 11: dma_map_phys: dma_addr: .*past 2\^53/);
    expect(bad('dma_map_phys: d dir=TO_DEVICE dma_addr=0 size=4096 phys_addr=fffffffffffffffe attrs=')).toMatch(/^line 11: dma_map_phys: phys_addr: /);
    expect(bad('dma_free_sgt: d dir=TO_DEVICE dma_addr=0 size=1 phys_addrs={0x1000,0x8000000000000000}')).toMatch(/^line 11: dma_free_sgt: phys_addrs\[1\]: /);
    expect(bad('dma_map_phys: d dir=TO_DEVICE dma_addr=0 size=99999999999999999999 phys_addr=0 attrs=')).toMatch(/^line 11: dma_map_phys: size: /);
    expect(bad('dma_map_phys: d dir=TO_DEVICE dma_addr=10000000000000000 size=1 phys_addr=0 attrs=')).toMatch(/^line 11: dma_map_phys: dma_addr: expected up to 16 hex/);
  });

  it('pointers and GFP masks stay the strings printed (hashed, unhashed, early-boot, trace-cmd\'s 0x form)', () => {
    const alloc = (ptr: string, gfp: string): Record<string, unknown> =>
      fieldsOf('dma_alloc', `d dir=BIDIRECTIONAL dma_addr=1000 size=4096 virt_addr=${ptr} flags=${gfp} attrs=`);
    expect(alloc('00000000deadbeef', 'none')).toMatchObject({ virt_addr: '00000000deadbeef', flags: 'none' });
    expect(alloc('(____ptrval____)', 'GFP_ATOMIC|__GFP_NOWARN|__GFP_ZERO')).toMatchObject({ virt_addr: '(____ptrval____)', flags: 'GFP_ATOMIC|__GFP_NOWARN|__GFP_ZERO' });
    expect(alloc('0xffff888100a00000', 'GFP_KERNEL|0x80000000')).toMatchObject({ virt_addr: '0xffff888100a00000', flags: 'GFP_KERNEL|0x80000000' });
  });

  it('iommu ranges print iova and iova + size; a wrong end is malformed; 64-bit arithmetic wraps', () => {
    const bad = malformedMessage(parseFtraceLine(`${SYS}map: IOMMU: iova=0x0000000000001000 - 0x0000000000003000 paddr=0x0000000000005000 size=4096`, 5));
    expect(bad).toMatch(/^line 5: map: iova: printed end 0x0000000000003000 is not iova \+ size/);
    // An end past 2^53 is no field: it is checked, not stored.
    expect(fieldsOf('unmap', 'IOMMU: iova=0x001ffffffffff000 - 0x0020000000000000 size=4096 unmapped_size=4096')).toMatchObject({ iova: 2 ** 53 - 4096 });
    expect(fieldsOf('unmap', 'IOMMU: iova=0xffffffffffffffff - 0x0000000000000fff size=4096 unmapped_size=0')).toMatchObject({ iova: -1, unmapped_size: 0 });
    expect(fieldsOf('io_page_fault', 'IOMMU:i915 0000:00:02.0 iova=0x0000000000001000 flags=0xffffffff')['flags']).toBe(-1);
  });
});

describe('lines that are not events', () => {
  it('skips blank, comment and header lines, and reports lost-event markers', () => {
    for (const l of ['', '   ', '\r', '# tracer: nop', '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION', '#              | |         |   |||||     |         |',
      'cpus=8', 'version = 7', 'CPU 3 is empty', 'CPU:0 [SUBBUFFER START]', ' => dma_map_page_attrs', ' => <00007f12a3b4c5d6>']) {
      expect(parseFtraceLine(l, 1), JSON.stringify(l)).toEqual({ kind: 'skip' });
    }
    expect(parseFtraceLine('CPU:2 [LOST 17 EVENTS]', 1)).toEqual({ kind: 'skip', lost: { cpu: 2, events: 17 } });
    expect(parseFtraceLine('CPU:1 [5 EVENTS DROPPED]', 1)).toEqual({ kind: 'skip', lost: { cpu: 1, events: 5 } });
    expect(parseFtraceLine('CPU:1 [EVENTS DROPPED]', 1)).toEqual({ kind: 'skip', lost: { cpu: 1, events: undefined } });
  });

  it('well-formed lines of other events are unknown, by name as printed', () => {
    const u = (rest: string): FtraceLineResult => parseFtraceLine(`${SYS}${rest}`, 1);
    expect(u('sched_switch: prev_comm=a prev_pid=1 ==> next_comm=b next_pid=2')).toEqual({ kind: 'unknown', name: 'sched_switch' });
    expect(u('sched:sched_switch: prev_comm=a')).toEqual({ kind: 'unknown', name: 'sched:sched_switch' });
    expect(u('dma:dma_bounce: x')).toEqual({ kind: 'unknown', name: 'dma:dma_bounce' });
    expect(u('xen:map: IOMMU: iova=0x0 - 0x0 paddr=0x0 size=0')).toEqual({ kind: 'unknown', name: 'xen:map' });
    expect(u('<stack trace>')).toEqual({ kind: 'unknown', name: '<stack trace>' });
    expect(u('do_timer <-tick_do_update_jiffies64')).toEqual({ kind: 'unknown', name: '(function)' });
  });

  it('reads the 6.12-6.17 forms: dma_map_page / dma_unmap_page, dma_map_resource (MMIO), sg maps without counts, 6.12 alloc/free', () => {
    const ev = (rest: string) => {
      const r = parseFtraceLine(`${SYS}${rest}`, 1);
      if (r.kind !== 'event') throw new Error(JSON.stringify(r));
      return r.event as unknown as Record<string, unknown>;
    };
    expect(ev('dma_map_page: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1000000 attrs=')).toMatchObject({ event: 'dma_map_phys', kernelName: 'dma_map_page', dma_addr: 0xfffff000, phys_addr: 0x1000000, attrs: 0 });
    expect(ev('dma_unmap_page: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 attrs=')).toMatchObject({ event: 'dma_unmap_phys', kernelName: 'dma_unmap_page', addr: 0xfffff000 });
    expect(ev('dma:dma_map_resource: 0000:01:00.0 dir=BIDIRECTIONAL dma_addr=f0000000 size=4096 phys_addr=f0000000 attrs=')).toMatchObject({ event: 'dma_map_phys', kernelName: 'dma_map_resource', attrs: 1 << 10 });
    expect(ev('dma_unmap_resource: 0000:01:00.0 dir=BIDIRECTIONAL dma_addr=f0000000 size=4096 attrs=')).toMatchObject({ event: 'dma_unmap_phys', attrs: 1 << 10 });
    expect(ev('dma_map_sg: 0000:01:00.0 dir=TO_DEVICE dma_addrs={0xffff0000} sizes={0x2000} phys_addrs={0x2000000,0x2001000} attrs=')).toMatchObject({
      event: 'dma_map_sg', nents: 2, full_nents: 2, ents: 1, full_ents: 1, truncated: false, dma_addrs: [0xffff0000], lengths: [0x2000], phys_addrs: [0x2000000, 0x2001000],
    });
    expect(ev('dma_map_sg: device=0000:01:00.0 phys_addrs=ARRAY[00, 00, 00, 02, 00, 00, 00, 00] dma_addrs=ARRAY[00, 00, ff, ff, 00, 00, 00, 00] lengths=ARRAY[00, 10, 00, 00] dir=1 attrs=0')).toMatchObject({ event: 'dma_map_sg', full_nents: 1, full_ents: 1, truncated: false });
    expect(ev('dma_alloc: 0000:01:00.0 dma_addr=fffe0000 size=8192 phys_addr=3a1b2000 flags=GFP_KERNEL attrs=')).toMatchObject({ event: 'dma_alloc', dir: 0, dma_addr: 0xfffe0000, size: 8192, virt_addr: '000000003a1b2000', flags: 'GFP_KERNEL' });
    expect(ev('dma_free: 0000:01:00.0 dma_addr=fffe0000 size=8192 phys_addr=3a1b2000 attrs=')).toMatchObject({ event: 'dma_free', dir: 0, virt_addr: '000000003a1b2000' });
    expect(malformedMessage(parseFtraceLine(`${SYS}dma_map_sg: d dir=TO_DEVICE dma_addrs={0x1} sizes={0x1,0x2} phys_addrs={0x1} attrs=`, 9))).toMatch(/^line 9: dma_map_sg: lengths: 2 sizes for 1 dma_addrs/);
    expect(malformedMessage(parseFtraceLine(`${SYS}dma_map_page: d dir=TO_DEVICE dma_addr=zz size=1 phys_addr=1 attrs=`, 9))).toMatch(/^line 9: dma_map_page: dma_addr/);
  });

  it('malformed lines name the line number and the field', () => {
    const m = (l: string): string => malformedMessage(parseFtraceLine(l, 31));
    expect(m('hello world')).toMatch(/^line 31: header: not a trace line/);
    expect(m(`${SYS}dma_map_phys: d dir=SIDEWAYS dma_addr=0 size=1 phys_addr=0 attrs=`)).toMatch(/^line 31: dma_map_phys: dir: expected BIDIRECTIONAL/);
    expect(m(`${SYS}dma_map_phys: d dir=TO_DEVICE dma_addr=0 size=1 phys_addr=0`)).toMatch(/^line 31: dma_map_phys: attrs: missing/);
    expect(m(`${SYS}dma_map_phys: d dir=TO_DEVICE dma_addr=0 size=1 phys_addr=0 attrs= extra`)).toMatch(/^line 31: dma_map_phys: attrs: unexpected text/);
    expect(m(`${SYS}dma_map_phys: d dir=TO_DEVICE dma_addr=0x10 size=1 phys_addr=0 attrs=`)).toMatch(/^line 31: dma_map_phys: dma_addr: /);
    expect(m(`${SYS}dma_map_phys: d`)).toMatch(/^line 31: dma_map_phys: dir: missing/);
    expect(m(`${SYS}dma_unmap_phys: d dir=TO_DEVICE addr=0 size=1 attrs=`)).toMatch(/^line 31: dma_unmap_phys: dma_addr= \(field addr\): expected 'dma_addr='/);
    expect(m(`${SYS}dma_sync_sg_for_cpu: d dir=TO_DEVICE dma_addrs={0x1} sizes={0x100000000}`)).toMatch(/^line 31: dma_sync_sg_for_cpu: lengths\[0\]: /);
    expect(m(`${SYS}dma_sync_sg_for_cpu: d dir=TO_DEVICE dma_addrs={1} sizes={}`)).toMatch(/^line 31: dma_sync_sg_for_cpu: dma_addrs\[0\]: expected 0x/);
    expect(m(`${SYS}dma_map_sg_err: d dir=TO_DEVICE dma_addrs={} err=2147483648 attrs=`)).toMatch(/^line 31: dma_map_sg_err: err: /);
    expect(m(`${SYS}swiotlb_bounced: dev_name: d dma_mask=0 dev_addr=0 size=1 MAYBE`)).toMatch(/^line 31: swiotlb_bounced: force: /);
    expect(m(`${SYS}map: IOMMU iova=0x0`)).toMatch(/^line 31: map: iova: /);
    expect(m(`${SYS}io_page_fault: IOMMU:nodevice iova=0x0000000000001000 flags=0x0000`)).toMatch(/^line 31: io_page_fault: device: /);
    expect(m('           <...>-99999999999999999999 [001] d..1.  1.000000: dma_map_phys: x')).toMatch(/^line 31: header: pid: /);
  });

  it('never throws on a non-string', () => {
    expect(parseFtraceLine(undefined as unknown as string, 2)).toMatchObject({ kind: 'malformed', line: 2 });
  });
});

describe('trace-cmd report -R raw field lists', () => {
  const R = '           <...>-1234  [001]-0x1  5678.123456:';
  const raw = (name: string, fields: string): Record<string, unknown> =>
    event(parseFtraceLine(`${R} ${name}: ${' '.repeat(Math.max(0, 20 - name.length))} ${fields}`, 1)) as unknown as Record<string, unknown>;

  it('numbers in the radix their print format uses, 0x where the field is a long or pointer', () => {
    expect(raw('dma_map_phys', 'device=0000:01:00.0 phys_addr=1234000 dma_addr=fffff000 size=4096 dir=1 attrs=0x20')).toMatchObject({
      latency: '0x1', device: '0000:01:00.0', phys_addr: 0x1234000, dma_addr: 0xfffff000, size: 4096, dir: 1, attrs: 0x20,
    });
    expect(raw('dma_alloc', 'device=0000:01:00.0 virt_addr=0xffff888100a00000 dma_addr=fff80000 size=8192 flags=3264 dir=0 attrs=0x0'))
      .toMatchObject({ virt_addr: '0xffff888100a00000', flags: '3264', dma_addr: 0xfff80000 });
    expect(raw('map', 'iova=0x00000000fff00000 paddr=0x0000000123456000 size=8192')).toMatchObject({ iova: 0xfff00000, paddr: 0x123456000, size: 8192 });
    expect(raw('io_page_fault', 'device=0000:01:00.0 driver=nvme iova=0x0000000000001000 flags=0x0001')).toMatchObject({ device: '0000:01:00.0', driver: 'nvme', flags: 1 });
    expect(raw('swiotlb_bounced', 'dev_name=0000:03:00.0 dma_mask=ffffffffffffffff dev_addr=112345000 size=4096 force=1'))
      .toMatchObject({ dev_name: '0000:03:00.0', dma_mask: -1, force: true });
  });

  it('arrays as ARRAY[..] little-endian bytes', () => {
    const ev = raw('dma_map_sg', 'device=0000:02:00.0 full_nents=2 full_ents=1 truncated=0 ' +
      'phys_addrs=ARRAY[00, 10, 00, 00, 00, 00, 00, 00, 00, 20, 00, 00, 01, 00, 00, 00] dma_addrs=ARRAY[ff, ff, ff, ff, ff, ff, ff, ff] ' +
      'lengths=ARRAY[00, 20, 00, 00] dir=2 attrs=0x0');
    expect(ev).toMatchObject({ full_nents: 2, nents: 2, full_ents: 1, ents: 1, truncated: false, phys_addrs: [0x1000, 0x100002000], dma_addrs: [-1], lengths: [0x2000], dir: 2 });
    expect(raw('dma_unmap_sg', 'device=x addrs=ARRAY[] dir=0 attrs=0x0')).toMatchObject({ addrs: [] });
    const bad = malformedMessage(parseFtraceLine(`${R} dma_unmap_sg: device=x addrs=ARRAY[00, 10] dir=0 attrs=0x0`, 4));
    expect(bad).toMatch(/^line 4: dma_unmap_sg: addrs: 2 bytes/);
  });
});

// ---- fuzz -----------------------------------------------------------------------------------------

/** mulberry32: a small seeded generator, so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('fuzz: mutated valid lines', () => {
  it('parseFtraceLine never throws, always gives one of the four kinds, and what it reads prints back', () => {
    const rand = rng(Number(process.env['FUZZ_SEED'] ?? 0x21d1a));
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)] as T;
    const seeds = [...CASES.flatMap((c) => [`${SYS}${c.name}: ${c.text}`, tcLine(`${c.system}:${c.name}`, c.text)]),
      '           <...>-1234  [001]-0x1  5678.123456: dma_map_phys:          device=0000:01:00.0 phys_addr=1234000 dma_addr=fffff000 size=4096 dir=1 attrs=0x0',
      'CPU:2 [LOST 17 EVENTS]', '# tracer: nop', 'cpus=4'];
    const randomChar = (): string => {
      const r = rand();
      if (r < 0.3) return pick([' ', '-', '[', ']', ':', '=', '{', '}', ',', '|', '/', '(', ')', '.', '0', 'x', 'f', '\t', '\r', '#']);
      if (r < 0.5) return String.fromCharCode(Math.floor(rand() * 32));
      if (r < 0.7) return String.fromCharCode(0xd800 + Math.floor(rand() * 0x800)); // lone surrogates
      return String.fromCodePoint(Math.floor(rand() * 0x10ffff) & ~0x800);
    };
    const mutate = (s: string): string => {
      const i = Math.floor(rand() * (s.length + 1));
      const j = i + Math.floor(rand() * 12);
      switch (Math.floor(rand() * 8)) {
        case 0: return s.slice(0, i);
        case 1: return s.slice(i);
        case 2: return s.slice(0, i) + s.slice(i, j) + s.slice(i);
        case 3: return s.slice(0, i) + randomChar() + s.slice(i + 1);
        case 4: return s.slice(0, i) + Array.from({ length: 1 + Math.floor(rand() * 8) }, randomChar).join('') + s.slice(i);
        case 5: return s.slice(0, i) + pick(['ffffffffffffffff', '1'.repeat(25), '20000000000000', '-1', '99999999999', '0x', '{}', '{0x}', ',']) + s.slice(j);
        case 6: return s.slice(0, i) + s.slice(j);
        default: return s.replace(/[0-9a-f]{2,}/, () => pick(['fffffffffffffffff', '0', '1fffffffffffff', 'ffffffffffffffff']));
      }
    };
    const kinds = new Map<string, number>();
    for (let n = 0; n < 30_000; n++) {
      let s = pick(seeds);
      const rounds = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < rounds; k++) s = mutate(s);
      const lineNo = n + 1;
      // Plain checks in the loop (expect() per iteration costs more than the parse); expect() on failure.
      let r: FtraceLineResult;
      try {
        r = parseFtraceLine(s, lineNo);
      } catch (e) {
        expect.fail(`threw on ${JSON.stringify(s)}: ${String(e)}`);
      }
      kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
      if (r.kind === 'malformed') {
        if (r.line !== lineNo || !r.message.startsWith(`line ${lineNo}: `) || r.message.includes('internal error')) {
          expect.fail(`${JSON.stringify(s)} gave ${JSON.stringify(r)}`);
        }
      } else if (r.kind === 'event') {
        // Whatever is read as an event prints as a line that reads back as the same event
        // (the time to the microsecond).
        const back = event(parseFtraceLine(formatFtraceLine(r.event), lineNo));
        if (Math.abs(back.timestamp - r.event.timestamp) > 5e-7 * Math.max(1, r.event.timestamp / 1e9)) expect(back.timestamp, JSON.stringify(s)).toBe(r.event.timestamp);
        if (!isDeepStrictEqual({ ...back, timestamp: 0 }, { ...r.event, timestamp: 0 })) {
          expect({ ...back, timestamp: 0 }, JSON.stringify(s)).toStrictEqual({ ...r.event, timestamp: 0 });
        }
      } else if (r.kind !== 'skip' && r.kind !== 'unknown') {
        expect.fail(`unexpected kind ${JSON.stringify(r)}`);
      }
    }
    // The mutations reach every outcome.
    for (const k of ['event', 'skip', 'unknown', 'malformed']) expect(kinds.get(k) ?? 0, k).toBeGreaterThan(50);
  });
});

describe('hostile lines', () => {
  it('take time linear in their length (no regex backtracking across the line)', () => {
    const n = 1 << 20;
    const lines = [
      `${' '.repeat(n)}x`, `a${' '.repeat(n)}b`, '-1 '.repeat(n / 3), `-1 [1] ${'x'.repeat(n)}`, `-1 (${' '.repeat(n)}`,
      '[1] 1: '.repeat(n / 7), '-1 [1] d '.repeat(n / 9), `${SYS}${'a:'.repeat(n / 2)}`, `${SYS}dma_map_phys: ${' dir='.repeat(n / 5)}`,
      `${SYS}dma_unmap_sg: d dir=NONE phys_addrs={${'0x1,'.repeat(n / 4)}0x1} attrs=`,
    ];
    for (const l of lines) {
      const t = performance.now();
      const r = parseFtraceLine(l, 1);
      expect(performance.now() - t, l.slice(0, 30)).toBeLessThan(1000);
      expect(['event', 'unknown', 'malformed']).toContain(r.kind);
    }
  });
});

// ---- streams --------------------------------------------------------------------------------------

const SMALL_TRACE = [
  '# tracer: nop',
  '#',
  `${SYS}dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1234000 attrs=`,
  '       naïve-€-😀-77      [002] d..1.  5678.200000: dma_unmap_phys: dév😀 dir=TO_DEVICE dma_addr=fffff000 size=4096 attrs=',
  `${SYS}sched_switch: prev_comm=a`,
  `${SYS}dma_map_phys: broken`,
  'CPU:2 [LOST 17 EVENTS]',
  tcLine('map', 'IOMMU: iova=0x00000000fff00000 - 0x00000000fff02000 paddr=0x0000000123456000 size=8192'),
].join('\r\n') + '\n' + `${SYS}dma_sync_single_for_cpu: 0000:01:00.0 dir=FROM_DEVICE dma_addr=fffff000 size=4096`; // no final newline

async function collect(src: Parameters<typeof parseFtrace>[0]): Promise<{ events: FtraceEvent[]; stats: unknown }> {
  const s = parseFtrace(src);
  const events: FtraceEvent[] = [];
  for await (const ev of s) events.push(ev);
  return { events, stats: JSON.parse(JSON.stringify(s.stats)) as unknown };
}

async function* chunks<T>(parts: T[]): AsyncGenerator<T> {
  for (const p of parts) yield p;
}

describe('parseFtrace: streaming', () => {
  it('reads a small trace: CRLF, UTF-8 names, a last line without newline; counts everything', async () => {
    const { events, stats } = await collect(chunks([Buffer.from(SMALL_TRACE)]));
    expect(events.map((e) => [e.event, e.line])).toEqual([['dma_map_phys', 3], ['dma_unmap_phys', 4], ['map', 8], ['dma_sync_single_for_cpu', 9]]);
    expect(events[1]).toMatchObject({ task: 'naïve-€-😀', pid: 77, device: 'dév😀' });
    expect(stats).toEqual({
      lines: 9, events: 4, skipped: 3, unknown: 1, unknownByName: { sched_switch: 1 }, malformed: 1,
      malformedLines: [{ line: 6, message: expect.stringMatching(/^line 6: dma_map_phys: dir: missing/) as unknown }], lostMarkers: 1, lostEvents: 17,
    });
  });

  it('gives the same result whatever the chunk boundaries (bytes and strings, every offset, one byte at a time)', async () => {
    const bytes = Buffer.from(SMALL_TRACE);
    const want = await collect(chunks([bytes]));
    for (let i = 0; i <= bytes.length; i++) {
      expect(await collect(chunks([bytes.subarray(0, i), bytes.subarray(i)])), `split at byte ${i}`).toEqual(want);
    }
    for (let i = 0; i <= SMALL_TRACE.length; i++) {
      expect(await collect(chunks([SMALL_TRACE.slice(0, i), SMALL_TRACE.slice(i)])), `split at char ${i}`).toEqual(want);
    }
    expect(await collect(chunks(Array.from(bytes, (b) => Uint8Array.of(b))))).toEqual(want);
    expect(await collect(Readable.from([bytes.subarray(0, 100), bytes.subarray(100)]))).toEqual(want);
  });

  it('a multi-byte UTF-8 character split across chunks stays whole', async () => {
    const line = '        €😀-5       [000] .....     1.000000: dma_sync_single_for_cpu: dév dir=NONE dma_addr=0 size=1\n';
    const b = Buffer.from(line);
    const euro = b.indexOf(Buffer.from('€'));
    const smile = b.indexOf(Buffer.from('😀'));
    for (const cut of [euro + 1, euro + 2, smile + 1, smile + 2, smile + 3]) {
      const { events } = await collect(chunks([b.subarray(0, cut), b.subarray(cut, cut + 1), b.subarray(cut + 1)]));
      expect(events[0], `cut at ${cut}`).toMatchObject({ task: '€😀', device: 'dév' });
    }
  });

  describe('from a file', () => {
    let dir = '';
    beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'dmasim-replay-')); });
    afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

    it('reads a path; a missing path rejects the iteration; a bad source is EINVAL at once', async () => {
      const path = join(dir, 'trace.txt');
      await writeFile(path, SMALL_TRACE);
      expect(await collect(path)).toEqual(await collect(chunks([SMALL_TRACE])));
      await expect(collect(join(dir, 'none.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(() => parseFtrace(42 as unknown as string)).toThrow(/parseFtrace: source: /);
      expect(() => parseFtrace(path, { keepMalformed: -1 })).toThrow(/keepMalformed/);
    });

    it('stopping early closes the file', async () => {
      const path = join(dir, 'many.txt');
      const out = createWriteStream(path);
      for (let i = 0; i < 5000; i++) out.write(`${SYS}${CASES[7]?.name}: ${CASES[7]?.text}\n`);
      out.end();
      await once(out, 'finish');
      let n = 0;
      for await (const ev of parseFtrace(path)) {
        expect(ev.event).toBe('dma_map_phys');
        if (++n === 3) break;
      }
      expect(n).toBe(3);
    });
  });

  it('keeps the first 100 malformed lines, counts them all; an overlong line is malformed and never held whole', async () => {
    const lines = Array.from({ length: 150 }, (_, i) => `${SYS}dma_map_phys: bad ${i}`);
    const s = parseFtrace(chunks([lines.join('\n')]));
    for await (const _ of s) { /* nothing */ }
    expect(s.stats.malformed).toBe(150);
    expect(s.stats.malformedLines).toHaveLength(100);
    expect(s.stats.malformedLines[99]).toMatchObject({ line: 100 });
    const long = parseFtrace(chunks(['x'.repeat(5000), 'y'.repeat(5000), `\n${SYS}${CASES[7]?.name}: ${CASES[7]?.text}`]), { maxLineLength: 4096, keepMalformed: 1 });
    const got: FtraceEvent[] = [];
    for await (const ev of long) got.push(ev);
    expect(got.map((e) => e.line)).toEqual([2]);
    expect(long.stats.malformedLines).toEqual([{ line: 1, message: 'line 1: line: longer than 4096 characters' }]);
  });

  it('streams ~50 MB in bounded memory', async () => {
    const block = Buffer.from(Array.from({ length: 400 }, (_, i) =>
      i % 2 === 0
        ? `   kworker/u16:3-77      [003] d..1.  ${String(1000 + i).padStart(5)}.000001: dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=${(0xfff00000 + i * 0x1000).toString(16)} size=4096 phys_addr=1234000 attrs=\n`
        : `   kworker/u16:3-77      [003] d..1.  ${String(1000 + i).padStart(5)}.000002: dma_unmap_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=${(0xfff00000 + i * 0x1000).toString(16)} size=4096 attrs=\n`,
    ).join(''));
    const target = 50 * 1024 * 1024;
    const blocks = Math.ceil(target / block.length);
    async function* source(): AsyncGenerator<Buffer> {
      // Odd-sized chunks, so lines and chunks never line up.
      const size = 65_537;
      let carry = Buffer.alloc(0);
      for (let b = 0; b < blocks; b++) {
        let buf = Buffer.concat([carry, block]);
        while (buf.length >= size) {
          yield buf.subarray(0, size);
          buf = buf.subarray(size);
        }
        carry = Buffer.from(buf);
      }
      yield carry;
    }
    const base = process.memoryUsage();
    let peak = 0;
    let n = 0;
    const s = parseFtrace(source());
    for await (const ev of s) {
      if (++n % 20_000 === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
      }
      if (ev.line < 0) throw new Error('unreachable');
    }
    expect(blocks * block.length).toBeGreaterThanOrEqual(target);
    expect(n).toBe(blocks * 400);
    expect(s.stats).toMatchObject({ lines: blocks * 400, events: blocks * 400, malformed: 0 });
    // Holding the input would take 50 MB and more; the stream holds a chunk and a line.
    expect(peak).toBeLessThan(40 * 1024 * 1024);
  });
});
