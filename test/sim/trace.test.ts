import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, EINVAL, GFP_KERNEL, Machine, PAGE_SIZE, chromeTrace, createTrace, dmaDirectionName, dma_map_page_attrs, dma_mapping_error, dma_unmap_page_attrs, traceJsonLines } from '../../src/index.ts';
import * as attrs from '../../src/dma/api/attrs.ts';

describe('the event trace', () => {
  it('records maps, unmaps, flushes, faults, WARNs and injected failures; exports JSON lines and Chrome trace events', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'lazy' }, trace: true });
    const dev = m.pci.addDevice({ name: 'nvme0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'nvme', probe() {} });
    const addr = dma_map_page_attrs(dev, 0x1234, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(dev, addr);
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    m.clock.advance(10e6); // the flush queue's timer: a full flush
    dev.dma.read(addr, 4); // now unmapped: a fault
    m.faults.inject('page', { nth: 1 });
    m.mm.alloc_pages(GFP_KERNEL, 0);
    dma_unmap_page_attrs(dev, 0x5000_0000, 4096, DMA_BIDIRECTIONAL, 0); // WARN: no translation
    const kinds = new Set(m.trace.events.map((e) => e.kind));
    for (const k of ['map', 'unmap', 'flush', 'fault', 'inject', 'warn']) expect(kinds.has(k), k).toBe(true);
    const lines = traceJsonLines(m.trace).split('\n').map((l) => JSON.parse(l) as { kind: string; time: number });
    expect(lines.length).toBe(m.trace.events.length);
    const ct = chromeTrace(m.trace);
    expect(ct.traceEvents.some((e) => (e as { ph: string }).ph === 'M')).toBe(true);
    expect(ct.traceEvents.filter((e) => (e as { ph: string }).ph === 'i').length).toBe(m.trace.events.length);
  });

  it('costs nothing when off: no events', () => {
    const m = new Machine({ memory: '64M' });
    expect(m.trace.enabled).toBe(false);
    m.mm.alloc_pages(GFP_KERNEL, 0);
    expect(m.trace.events).toHaveLength(0);
  });
});

describe('the trace as people read it: Perfetto metadata, directions and attributes by name', () => {
  type Ev = { name: string; ph: string; pid: number; tid: number; args: Record<string, unknown> };

  it('chromeTrace names the process and a thread per actor (metadata first), and prints the direction and addresses as ftrace does', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'strict' }, trace: true });
    const dev = m.pci.addDevice({ name: 'nvme0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'nvme', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const addr = dma_map_page_attrs(dev, pfn, 0, PAGE_SIZE, DMA_TO_DEVICE, attrs.DMA_ATTR_NO_WARN);
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_TO_DEVICE, 0);
    const ev = chromeTrace(m.trace, { process: `machine ${m.name}`, pid: 7 }).traceEvents as Ev[];
    const meta = ev.filter((e) => e.ph === 'M');
    expect(ev.slice(0, meta.length)).toEqual(meta); // metadata before the events it names
    expect(meta.find((e) => e.name === 'process_name')).toMatchObject({ pid: 7, args: { name: `machine ${m.name}` } });
    const threads = new Map(meta.filter((e) => e.name === 'thread_name').map((e) => [e.args['name'], e.tid]));
    expect(threads.has('nvme0')).toBe(true);
    const map = ev.find((e) => e.ph === 'i' && e.name === 'dma_map_phys') as Ev;
    expect(map.tid).toBe(threads.get('nvme0'));
    expect(map.pid).toBe(7);
    expect(map.args).toMatchObject({ dir: 'DMA_TO_DEVICE', attrs: 'DMA_ATTR_NO_WARN', addr: `0x${addr.toString(16)}`, phys: `0x${(pfn * PAGE_SIZE).toString(16)}`, size: PAGE_SIZE });
    expect((ev.find((e) => e.ph === 'i' && e.name === 'dma_unmap_phys') as Ev).args).toMatchObject({ dir: 'DMA_TO_DEVICE', attrs: '0' });
    expect(JSON.stringify(ev)).not.toMatch(/"dir":\d/);
    // Without options the process is still named.
    const plain = chromeTrace(m.trace).traceEvents as Ev[];
    expect(plain.find((e) => e.name === 'process_name')?.args).toEqual({ name: 'dmasim' });
  });

  it('decodes every direction and every DMA_ATTR_* bit with the names dma/direction.ts and dma/attrs.ts give them', () => {
    const t = createTrace(() => 0, true);
    for (const dir of [0, 1, 2, 3, 9]) t.emit('map', 'dir', 'dev', { dir });
    const bits = Object.entries(attrs).filter(([k]) => k.startsWith('DMA_ATTR_')) as Array<[string, number]>;
    expect(bits.length).toBeGreaterThanOrEqual(12);
    for (const [, bit] of bits) t.emit('map', 'attr', 'dev', { attrs: bit });
    t.emit('map', 'attrs', 'dev', { attrs: attrs.DMA_ATTR_SKIP_CPU_SYNC | attrs.DMA_ATTR_NO_WARN | 1 });
    t.emit('map', 'attrs', 'dev', { attrs: 0 });
    const args = (chromeTrace(t).traceEvents as Ev[]).filter((e) => e.ph === 'i').map((e) => e.args);
    expect(args.slice(0, 5).map((a) => a['dir'])).toEqual([0, 1, 2, 3, 9].map((d) => dmaDirectionName(d)));
    expect(args.slice(0, 4).map((a) => a['dir'])).toEqual(['DMA_BIDIRECTIONAL', 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE', 'DMA_NONE']);
    expect(args.slice(5, 5 + bits.length).map((a) => a['attrs'])).toEqual(bits.map(([name]) => name));
    expect(args.at(-2)?.['attrs']).toBe('DMA_ATTR_SKIP_CPU_SYNC|DMA_ATTR_NO_WARN|0x1'); // an unknown bit in hex, last
    expect(args.at(-1)?.['attrs']).toBe('0');
    // JSON lines print them by name too.
    const lines = traceJsonLines(t).split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[1]?.['dir']).toBe('DMA_TO_DEVICE');
    expect(lines.at(-2)?.['attrs']).toBe('DMA_ATTR_SKIP_CPU_SYNC|DMA_ATTR_NO_WARN|0x1');
  });

  it('JSON lines keep their own fields when an argument shares a name (an injected failure\'s kind)', () => {
    const m = new Machine({ memory: '64M', trace: true });
    m.faults.inject('page', { nth: 1 });
    m.mm.alloc_pages(GFP_KERNEL, 0);
    const line = traceJsonLines(m.trace).split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['arg_kind'] !== undefined);
    expect(line).toMatchObject({ kind: 'inject', arg_kind: 'page', n: 1 });
  });

  it('chromeTrace refuses bad options with EINVAL naming opts', () => {
    const t = createTrace(() => 0, true);
    for (const bad of [null, 5, { process: 5 }, { pid: -1 }, { pid: 1.5 }]) {
      expect(() => chromeTrace(t, bad as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'opts' }));
    }
  });
});

describe('a bounded trace', () => {
  it('keeps the newest events, drops the oldest in batches and counts them; traceFtrace marks the loss as the kernel does', async () => {
    const { createTrace: make } = await import('../../src/core/trace.ts');
    const { traceFtrace } = await import('../../src/sim/replay/write.ts');
    const t = make(() => 0, true, 8);
    for (let i = 0; i < 100; i++) t.emit('map', 'dma_map_phys', 'd', { phys: i, size: 1, dir: 1, attrs: 0, addr: i });
    expect(t.events.length).toBeGreaterThanOrEqual(8);
    expect(t.events.length).toBeLessThanOrEqual(10);
    expect(t.events[t.events.length - 1]?.args?.['addr']).toBe(99);
    expect((t.dropped ?? 0) + t.events.length).toBe(100);
    const text = traceFtrace({ trace: t });
    expect(text).toContain(`CPU:0 [LOST ${t.dropped} EVENTS]`);
    expect(traceFtrace({ trace: make(() => 0, true) })).not.toContain('LOST');
  });
});
