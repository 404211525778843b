import { describe, expect, expectTypeOf, it } from 'vitest';
import { GFP_KERNEL, KernelError, SGTable, SgTable, createContext, sg_alloc_table_from_pages_segment, sg_dma_address, sg_dma_len, sg_free_table, type Borrowed } from '../../src/index.ts';

describe('SGTable<Borrowed>', () => {
  it('iterates CPU entries (orig_nents) and DMA segments (nents), read-only', () => {
    const sgt = new SgTable(createContext('t'));
    expect(sg_alloc_table_from_pages_segment(sgt, [10, 11, 20, 30, 31], 5, 0, 5 * 4096, 0xffffffff, GFP_KERNEL)).toBe(0);
    // pretend a DMA mapping merged the three entries into two segments
    sg_dma_address(sgt.sgl!, 0x10000);
    sg_dma_len(sgt.sgl!, 3 * 4096);
    sg_dma_address(sgt.sgl!.at(1), 0x20000);
    sg_dma_len(sgt.sgl!.at(1), 2 * 4096);
    sgt.nents = 2;
    const view = SGTable.borrow(sgt);
    expectTypeOf(view).toEqualTypeOf<SGTable<Borrowed>>();
    expect([...view.entries()].map((e) => [e.page(), e.offset(), e.length()])).toEqual([[10, 0, 8192], [20, 0, 4096], [30, 0, 8192]]);
    expect([...view.iter()].map((e) => [e.dmaAddress(), e.dmaLen()])).toEqual([[0x10000, 12288], [0x20000, 8192]]);
    expect(view.nents).toBe(2);
    expect(view.origNents).toBe(3);
    // @ts-expect-error a borrowed view has no way to change the table
    view.raw = new SgTable();
  });

  it('a freed table says so instead of yielding stale entries', () => {
    const sgt = new SgTable(createContext('t'));
    sg_alloc_table_from_pages_segment(sgt, [1, 3], 2, 0, 8192, 0xffffffff, GFP_KERNEL);
    const view = SGTable.borrow(sgt);
    sg_free_table(sgt);
    expect(() => [...view.entries()]).toThrow(/ends after 0 of 2/);
  });

  it('borrow refuses what is not a table', () => {
    expect(() => SGTable.borrow({} as SgTable)).toThrow(KernelError);
  });
});
