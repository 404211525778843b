/**
 * Every exported entry point with each kind of wrong argument: the kernel layer returns the
 * kernel's error or throws KernelError / KernelBug; nothing throws a bare TypeError or RangeError,
 * hangs, or corrupts state (the machine audits clean afterwards).
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, GFP_KERNEL, KernelBug, KernelError, Machine, SGTable, SgAppendTable, SgTable, VVec, dma_alloc_coherent,
  dma_map_page_attrs, dma_map_sgtable, dma_set_mask, dma_set_max_seg_size, dma_unmap_page_attrs, parseSize,
  sg_alloc_append_table_from_pages, sg_alloc_table, sg_alloc_table_from_pages_segment, sg_free_table, sg_nents_for_len,
  sg_copy_from_buffer, type Core, type Device,
} from '../../src/index.ts';

const BAD: ReadonlyArray<[string, unknown]> = [
  ['negative', -1], ['NaN', Number.NaN], ['fractional', 1.5], ['beyond 2^53', 2 ** 60], ['Infinity', Infinity],
  ['a string', '12'], ['undefined', undefined], ['null', null], ['an object', {}], ['a bigint', 5n],
];

function setup() {
  const m = new Machine({ memory: '8G', iommu: { mode: 'strict' } });
  const plain = m.pci.addDevice({ name: 'd', dmaMask: 64 });
  let dev: Device<Core> | undefined;
  m.pci.bind(plain, { name: 'drv', probe(d) { dev = d; } });
  return { m, dev: dev as Device<Core>, plain };
}

type Call = (v: never, s: ReturnType<typeof setup>) => unknown;

const CALLS: Record<string, Call> = {
  'parseSize(size)': (v) => parseSize(v),
  'alloc_pages(gfp, order=bad)': (v, s) => s.m.mm.alloc_pages(GFP_KERNEL, v),
  '__free_pages(pfn=bad, 0)': (v, s) => s.m.mm.__free_pages(v, 0),
  'vmalloc(size=bad)': (v, s) => s.m.mm.vmalloc(v),
  'kmalloc(size=bad)': (v, s) => s.m.mm.kmalloc(v),
  'readPhys(phys=bad)': (v, s) => s.m.mm.readPhys(v, 4),
  'sg_alloc_table(nents=bad)': (v, s) => sg_alloc_table(new SgTable(s.m), v, GFP_KERNEL),
  'sg_alloc_table_from_pages_segment(n_pages=bad)': (v, s) => sg_alloc_table_from_pages_segment(new SgTable(s.m), [1, 2, 3], v, 0, 3 * 4096, 65536, GFP_KERNEL),
  'sg_alloc_table_from_pages_segment(offset=bad)': (v, s) => sg_alloc_table_from_pages_segment(new SgTable(s.m), [1, 2, 3], 3, v, 3 * 4096, 65536, GFP_KERNEL),
  'sg_alloc_table_from_pages_segment(size=bad)': (v, s) => sg_alloc_table_from_pages_segment(new SgTable(s.m), [1, 2, 3], 3, 0, v, 65536, GFP_KERNEL),
  'sg_alloc_table_from_pages_segment(max_segment=bad)': (v, s) => sg_alloc_table_from_pages_segment(new SgTable(s.m), [1, 2, 3], 3, 0, 3 * 4096, v, GFP_KERNEL),
  'sg_alloc_table_from_pages_segment(pages=[bad])': (v, s) => sg_alloc_table_from_pages_segment(new SgTable(s.m), [v as number], 1, 0, 4096, 65536, GFP_KERNEL),
  'sg_alloc_table_from_pages_segment(pages=bad)': (v, s) => sg_alloc_table_from_pages_segment(new SgTable(s.m), v, 1, 0, 4096, 65536, GFP_KERNEL),
  'sg_alloc_append_table_from_pages(left_pages=bad)': (v, s) => sg_alloc_append_table_from_pages(new SgAppendTable(s.m), [1], 1, 0, 4096, 65536, v, GFP_KERNEL),
  'dma_map_page_attrs(size=bad)': (v, s) => dma_map_page_attrs(s.dev, 0x1000, 0, v, DMA_TO_DEVICE, 0),
  'dma_map_page_attrs(dir=bad)': (v, s) => dma_map_page_attrs(s.dev, 0x1000, 0, 4096, v, 0),
  'dma_unmap_page_attrs(addr=bad)': (v, s) => dma_unmap_page_attrs(s.dev, v, 4096, DMA_TO_DEVICE, 0),
  'dma_set_mask(mask=bad)': (v, s) => dma_set_mask(s.dev, v),
  'dma_set_max_seg_size(size=bad)': (v, s) => dma_set_max_seg_size(s.dev, v),
  'dma_alloc_coherent(size=bad)': (v, s) => dma_alloc_coherent(s.dev, v, GFP_KERNEL),
  'VVec.create(size=bad)': (v, s) => VVec.create(s.m.mm, v),
  'sg_nents_for_len(len=bad)': (v, s) => { const t = new SgTable(s.m); sg_alloc_table(t, 2, GFP_KERNEL); return sg_nents_for_len(t.sgl, v); },
  'machine.faults.inject(rule=bad)': (v, s) => s.m.faults.inject('page', { nth: v }),
  'Bus.addDevice(dmaMask=bad)': (v, s) => s.m.pci.addDevice({ name: `x${Math.random()}`, dmaMask: v }),
  'Machine(memory=bad)': (v) => new Machine({ memory: v }),
};

function outcome(f: () => unknown): 'ok' | 'kernel' | string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof KernelError || e instanceof KernelBug) return 'kernel';
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

describe('bad input never escapes as a bare JavaScript error', () => {
  for (const [name, call] of Object.entries(CALLS)) {
    it(name, () => {
      for (const [what, v] of BAD) {
        const s = setup();
        const r = outcome(() => call(v as never, s));
        expect(r === 'ok' || r === 'kernel', `${name} with ${what}: ${r}`).toBe(true);
        s.m.clock.advance(20e6);
        expect(s.m.audit().filter((x) => x.check !== 'dma-debug'), `${name} with ${what}`).toEqual([]);
      }
    });
  }

  it('a table or device from another machine is refused', () => {
    const a = setup();
    const b = setup();
    const sgt = new SgTable(a.m);
    sg_alloc_table_from_pages_segment(sgt, [1, 2], 2, 0, 8192, 65536, GFP_KERNEL);
    const app = new SgAppendTable(a.m);
    sg_alloc_append_table_from_pages(app, [1, 2], 2, 0, 8192, 65536, 2, GFP_KERNEL);
    const other = new SgAppendTable(b.m);
    other.prv = app.prv;
    expect(outcome(() => sg_alloc_append_table_from_pages(other, [3], 1, 0, 4096, 65536, 0, GFP_KERNEL))).toBe('kernel');
    expect(outcome(() => SGTable.create(b.dev, VVec.create(a.m.mm, 4096), DMA_TO_DEVICE, GFP_KERNEL))).not.toMatch(/TypeError/);
  });

  it('a freed table and an unbound device are refused', () => {
    const s = setup();
    const sgt = new SgTable(s.m);
    sg_alloc_table_from_pages_segment(sgt, [1, 2], 2, 0, 8192, 65536, GFP_KERNEL);
    sg_free_table(sgt);
    expect(dma_map_sgtable(s.dev, sgt, DMA_TO_DEVICE, 0)).toBeLessThan(0);
    const view = SGTable.borrow(sgt);
    expect(outcome(() => [...view.entries()])).toBe('kernel');
    s.m.pci.unbind(s.plain);
    expect(outcome(() => SGTable.create(s.dev, VVec.create(s.m.mm, 4096), DMA_TO_DEVICE, GFP_KERNEL))).toBe('kernel');
  });

  it('copy helpers with a buffer shorter than buflen copy only what fits', () => {
    const s = setup();
    const sgt = new SgTable(s.m);
    sg_alloc_table_from_pages_segment(sgt, [0x1000, 0x1001], 2, 0, 8192, 65536, GFP_KERNEL);
    expect(sg_copy_from_buffer(sgt.sgl, 2, new Uint8Array(10), 9999)).toBe(10);
  });
});
