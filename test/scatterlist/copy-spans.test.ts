/**
 * Copies that join physically adjacent pieces into one span (sg_copy_buffer, VmArea reads and
 * writes) must do what page-by-page copies did (a helper's review of session 14's spans): name every
 * device-owned mapping a span touches, copy across memory that answers page by page but not as one
 * range (RAM then a BAR, two BARs back to back), write what precedes a hole before the EFAULT that
 * names the hole, and write what precedes a walk off an unterminated list.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_FROM_DEVICE, GFP_KERNEL, Machine, PAGE_SIZE, SgTable, dma_map_page_attrs, dma_mapping_error,
  for_each_sgtable_sg, sg_alloc_table, sg_copy_from_buffer, sg_copy_to_buffer, sg_set_page, sg_unmark_end,
} from '../../src/index.ts';

function machine(extra: object = {}) {
  const m = new Machine({ memory: '64M', swiotlb: false, dmaDebug: false, ...extra } as never);
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
  m.pci.bind(dev, { name: 'drv', probe() {} });
  return { m, dev };
}

function table(m: Machine, ents: Array<[number, number, number]>): SgTable {
  const sgt = new SgTable(m);
  expect(sg_alloc_table(sgt, ents.length, GFP_KERNEL)).toBe(0);
  const list = [...for_each_sgtable_sg(sgt)];
  ents.forEach(([page, len, off], i) => sg_set_page(list[i] as NonNullable<(typeof list)[number]>, page, len, off));
  return sgt;
}

describe('findings per span', () => {
  // Planted: the ownership check returning after the first mapping names one of the two.
  it('a vmalloc read over two adjacent pages, each its own DMA_FROM_DEVICE mapping: both named, each with its own bytes', () => {
    const { m, dev } = machine();
    const area = m.mm.vmalloc(4 * PAGE_SIZE) as NonNullable<ReturnType<typeof m.mm.vmalloc>>;
    expect(area.pages[2]).toBe((area.pages[1] as number) + 1);
    for (const k of [1, 2]) expect(dma_mapping_error(dev, dma_map_page_attrs(dev, area.pages[k] as number, 0, PAGE_SIZE, DMA_FROM_DEVICE, 0))).toBe(0);
    area.read(PAGE_SIZE, 2 * PAGE_SIZE);
    const f = m.dma.ledger.findings.list();
    expect(new Set(f.map((x) => x.mapping)).size).toBe(2);
    expect(f.map((x) => [x.addr, x.length]).sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual([1, 2].map((k) => [(area.pages[k] as number) * PAGE_SIZE, PAGE_SIZE]));
  });

  it('sg_copy_to_buffer over two adjacent pages, each its own DMA_FROM_DEVICE mapping: both named', () => {
    const { m, dev } = machine();
    const p = m.mm.alloc_pages(GFP_KERNEL, 1) as number;
    for (const q of [p, p + 1]) expect(dma_mapping_error(dev, dma_map_page_attrs(dev, q, 0, PAGE_SIZE, DMA_FROM_DEVICE, 0))).toBe(0);
    const sgt = table(m, [[p, PAGE_SIZE, 0], [p + 1, PAGE_SIZE, 0]]);
    sg_copy_to_buffer(sgt.sgl, 2, new Uint8Array(2 * PAGE_SIZE), 2 * PAGE_SIZE);
    expect(new Set(m.dma.ledger.findings.list().map((x) => x.mapping)).size).toBe(2);
  });
});

describe('sg spans across what answers', () => {
  // Planted: no page-by-page retry after the span's range check refuses (each case then throws
  // EFAULT naming the span, having written nothing).
  it('the last RAM page, then device memory right after it: both copied', () => {
    const { m } = machine({ deviceMemory: [{ start: '64M', size: '1M', name: 'bar' }] });
    const last = 64 * 256 - 1;
    const sgt = table(m, [[last, PAGE_SIZE, 0], [last + 1, PAGE_SIZE, 0]]);
    expect(sg_copy_from_buffer(sgt.sgl, 2, new Uint8Array(2 * PAGE_SIZE).fill(7), 2 * PAGE_SIZE)).toBe(2 * PAGE_SIZE);
    for (const q of [last, last + 1]) expect(m.mm.readPhys(q * PAGE_SIZE, PAGE_SIZE).every((x) => x === 7)).toBe(true);
  });

  it('two device-memory ranges back to back: both copied', () => {
    const { m } = machine({ deviceMemory: [{ start: '1G', size: '1M', name: 'bar0' }, { start: 0x40100000, size: '1M', name: 'bar1' }] });
    const pfn = 0x40100000 / PAGE_SIZE - 1;
    const sgt = table(m, [[pfn, 100, PAGE_SIZE - 100], [pfn + 1, 100, 0]]);
    expect(sg_copy_to_buffer(sgt.sgl, 2, new Uint8Array(200), 200)).toBe(200);
  });

  it('the last RAM page, then a hole: the RAM page is written before the EFAULT, which names the hole', () => {
    const { m } = machine();
    const last = 64 * 256 - 1;
    const sgt = table(m, [[last, PAGE_SIZE, 0], [last + 1, PAGE_SIZE, 0]]);
    expect(() => sg_copy_from_buffer(sgt.sgl, 2, new Uint8Array(2 * PAGE_SIZE).fill(7), 2 * PAGE_SIZE)).toThrow(new RegExp(`EFAULT|0x${((last + 1) * PAGE_SIZE).toString(16)}`));
    let msg = '';
    try { sg_copy_from_buffer(sgt.sgl, 2, new Uint8Array(2 * PAGE_SIZE).fill(7), 2 * PAGE_SIZE); } catch (e) { msg = String(e); }
    expect(msg).toContain(`[0x${((last + 1) * PAGE_SIZE).toString(16)}, +0x1000)`);
    expect(m.mm.readPhys(last * PAGE_SIZE, 4)).toEqual(new Uint8Array([7, 7, 7, 7]));
  });

  it('a list with no END mark: the pages before the walk off it are written (planted: no flush before rethrowing)', () => {
    const { m } = machine();
    const p = m.mm.alloc_pages(GFP_KERNEL, 1) as number;
    const sgt = table(m, [[p, PAGE_SIZE, 0], [p + 1, PAGE_SIZE, 0]]);
    const list = [...for_each_sgtable_sg(sgt)];
    sg_unmark_end(list[1] as NonNullable<(typeof list)[number]>);
    expect(() => sg_copy_from_buffer(sgt.sgl, 100, new Uint8Array(4 * PAGE_SIZE).fill(9), 4 * PAGE_SIZE)).toThrow(/END mark/);
    expect(m.mm.readPhys(p * PAGE_SIZE, 2 * PAGE_SIZE).every((x) => x === 9)).toBe(true);
  });
});
