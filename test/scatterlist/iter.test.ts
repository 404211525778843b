import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EINVAL, GFP_KERNEL, KernelBug, Machine, PAGE_OFFSET, SG_MITER_FROM_SG, SgMappingIter, SgPageIter, SgTable,
  __sg_page_iter_next, __sg_page_iter_start, createContext, for_each_sg, for_each_sg_page, for_each_sgtable_dma_page,
  for_each_sgtable_dma_sg, for_each_sgtable_sg, sg_alloc_table, sg_chain, sg_copy_from_buffer, sg_copy_to_buffer,
  sg_dma_address, sg_dma_len, sg_init_one, sg_init_table, sg_is_last, sg_kfree, sg_kmalloc, sg_mark_end,
  sg_miter_next, sg_miter_start, sg_miter_stop, sg_nents, sg_nents_for_len, sg_page_iter_dma_address,
  sg_page_iter_page, sg_pcopy_from_buffer, sg_pcopy_to_buffer, sg_set_page, sg_unmark_end, sg_zero_buffer,
  sg_dma_mark_swiotlb, sg_dma_is_swiotlb, DMA_MAPPING_ERROR, sg_free_table,
} from '../../src/index.ts';

/** Read each step of a C-style iterator (the same object is yielded, mutated). */
function collect<T, R>(gen: Iterable<T>, f: (x: T) => R): R[] {
  const out: R[] = [];
  for (const x of gen) out.push(f(x));
  return out;
}

/** The reference's derived example: [p0 off100 len5000], [p4 len10], [p5 off4000 len200]. */
function threeEntries(ctx = createContext('t')) {
  const sgt = new SgTable(ctx);
  sg_alloc_table(sgt, 3, GFP_KERNEL);
  const [a, b, c] = [...for_each_sgtable_sg(sgt)];
  sg_set_page(a!, 0, 5000, 100);
  sg_set_page(b!, 4, 10, 0);
  sg_set_page(c!, 5, 200, 4000);
  return sgt;
}

describe('walking and counting', () => {
  it('for_each_sg runs exactly nents times and oopses past the end', () => {
    const sgt = threeEntries();
    expect([...for_each_sg(sgt.sgl, 2)].map((s) => s.page)).toEqual([0, 4]);
    expect(() => [...for_each_sg(sgt.sgl, 4)]).toThrow(KernelBug);
    expect([...for_each_sgtable_dma_sg(sgt)]).toHaveLength(3);
  });

  it('sg_nents counts to END; sg_nents_for_len counts to the length or -EINVAL', () => {
    const sgt = threeEntries();
    expect(sg_nents(sgt.sgl)).toBe(3);
    expect(sg_nents(null)).toBe(0);
    expect(sg_nents_for_len(sgt.sgl, 0)).toBe(0);
    expect(sg_nents_for_len(sgt.sgl, 5000)).toBe(1);
    expect(sg_nents_for_len(sgt.sgl, 5001)).toBe(2);
    expect(sg_nents_for_len(sgt.sgl, 5210)).toBe(3);
    expect(sg_nents_for_len(sgt.sgl, 5211)).toBe(-EINVAL);
  });

  it('marks, chaining and standalone arrays', () => {
    const ctx = createContext('t');
    const a = sg_kmalloc(3, ctx)!;
    const b = sg_kmalloc(2, ctx)!;
    sg_chain(a, 3, b);
    expect(sg_nents(a)).toBe(4); // 2 data slots of a + 2 of b
    sg_mark_end(a.at(1));
    expect(sg_nents(a)).toBe(2);
    sg_unmark_end(a.at(1));
    expect(sg_is_last(a.at(1))).toBe(false);
    sg_init_table(b, 2);
    expect(sg_is_last(b.at(1))).toBe(true);
    sg_kfree(a, 3);
    sg_kfree(b, 2);
    expect(() => sg_kfree(b, 2)).toThrow(KernelBug);
  });

  it('sg_dma_address / sg_dma_len read and write; DMA_MAPPING_ERROR and flags round-trip', () => {
    const sgt = threeEntries();
    const sg = sgt.sgl!;
    sg_dma_address(sg, 0x1_2345_6000);
    sg_dma_len(sg, 8192);
    expect(sg_dma_address(sg)).toBe(0x1_2345_6000);
    expect(sg_dma_len(sg)).toBe(8192);
    sg.dma_address = DMA_MAPPING_ERROR;
    expect(sg.dma_address).toBe(DMA_MAPPING_ERROR);
    sg_dma_mark_swiotlb(sg);
    expect(sg_dma_is_swiotlb(sg)).toBe(true);
    expect(sg_is_last(sg)).toBe(false);
    expect(sg.offset).toBe(100);
  });

  it('sg_init_one over a direct-mapped buffer', () => {
    const m = new Machine({ memory: '64M' });
    const sg = sg_kmalloc(1, m)!;
    sg_init_one(sg, PAGE_OFFSET + 0x200010, 100);
    expect([sg.page, sg.offset, sg.length]).toEqual([0x200, 0x10, 100]);
    expect(sg_is_last(sg)).toBe(true);
  });
});

describe('page iterators (derived example)', () => {
  it('visit pages 0, 1, 4, 5, 6; pgoffset 2 skips whole entries; nents limits', () => {
    const sgt = threeEntries();
    const pages = (nents: number, pgoff: number): number[] => collect(for_each_sg_page(sgt.sgl, nents, pgoff), sg_page_iter_page);
    expect(pages(3, 0)).toEqual([0, 1, 4, 5, 6]);
    expect(pages(3, 2)).toEqual([4, 5, 6]);
    expect(pages(2, 0)).toEqual([0, 1, 4]);
    const it = new SgPageIter();
    __sg_page_iter_start(it, sgt.sgl, 0, 0);
    expect(__sg_page_iter_next(it)).toBe(false);
  });

  it('an entry with offset 0 and length 0 is skipped silently', () => {
    const sgt = threeEntries();
    sg_set_page(sgt.sgl!.at(1), 4, 0, 0);
    expect(collect(for_each_sg_page(sgt.sgl, 3, 0), sg_page_iter_page)).toEqual([0, 1, 5, 6]);
  });

  it('the DMA page iterator counts pages from the CPU offset and the DMA length', () => {
    const sgt = threeEntries();
    sgt.nents = 1;
    sg_dma_address(sgt.sgl!, 0x10000);
    sg_dma_len(sgt.sgl!, 8000);
    expect(collect(for_each_sgtable_dma_page(sgt, 0), sg_page_iter_dma_address)).toEqual([0x10000, 0x11000]);
  });
});

describe('sg_miter and copies (derived example, real bytes)', () => {
  it('maps (100, 3996), (4096, 1004), (16384, 10), (24480, 96), (24576, 104)', () => {
    const sgt = threeEntries();
    const m = new SgMappingIter();
    sg_miter_start(m, sgt.sgl, 3, SG_MITER_FROM_SG);
    const chunks: Array<[number, number]> = [];
    while (sg_miter_next(m)) chunks.push([m.phys, m.length]);
    sg_miter_stop(m);
    expect(chunks).toEqual([[100, 3996], [4096, 1004], [16384, 10], [24480, 96], [24576, 104]]);
  });

  it('a miter started without a direction WARNs', () => {
    const ctx = createContext('t');
    const sgt = threeEntries(ctx);
    sg_miter_start(new SgMappingIter(), sgt.sgl, 3, 0);
    expect(ctx.klog.warnings('sg_miter_start')).toHaveLength(1);
  });

  it('copies count min(buflen, bytes - skip) and move the bytes', () => {
    const m = new Machine({ memory: '64M', lowReserve: 0 });
    const sgt = threeEntries(m);
    const src = Uint8Array.from({ length: 6000 }, (_, i) => (i * 7) & 0xff);
    expect(sg_copy_from_buffer(sgt.sgl, 3, src, 6000)).toBe(5210);
    expect(m.mm.readPhys(100, 4)).toEqual(src.subarray(0, 4));
    expect(m.mm.readPhys(24480, 1)[0]).toBe(src[5010]);
    const back = new Uint8Array(5210);
    expect(sg_copy_to_buffer(sgt.sgl, 3, back, 5210)).toBe(5210);
    expect(back).toEqual(src.subarray(0, 5210));
    expect(sg_pcopy_to_buffer(sgt.sgl, 3, back, 5210, 5210)).toBe(0);
    expect(sg_pcopy_to_buffer(sgt.sgl, 3, back, 5210, 6000)).toBe(0);
    const tail = new Uint8Array(5210);
    expect(sg_pcopy_to_buffer(sgt.sgl, 3, tail, 5210, 4990)).toBe(220);
    expect(tail.subarray(0, 220)).toEqual(src.subarray(4990, 5210));
    expect(sg_pcopy_from_buffer(sgt.sgl, 3, new Uint8Array(10).fill(9), 10, 5000)).toBe(10);
    expect(m.mm.readPhys(16384, 10)).toEqual(new Uint8Array(10).fill(9));
    expect(sg_zero_buffer(sgt.sgl, 3, 100, 10)).toBe(100);
    expect(m.mm.readPhys(110, 100)).toEqual(new Uint8Array(100));
    expect(sg_zero_buffer(sgt.sgl, 3, 100, 9999)).toBe(0);
  });
});

describe('sg copies join physically adjacent pieces', () => {
  it('sg_pcopy_to_buffer / sg_pcopy_from_buffer move exactly the listed bytes, entries adjacent or not', () => {
    // Pieces that follow each other in memory (within an entry, and across entries that meet at a
    // page boundary) are copied as one span (planted: joining pieces that do not follow, or
    // copying a span to the offset of its last piece, moves the wrong bytes).
    const m = new Machine({ memory: '64M', lowReserve: 0, swiotlb: false });
    const memBytes = (phys: number, n: number): Uint8Array => m.mm.readPhys(phys, n);
    fc.assert(fc.property(
      fc.array(fc.record({ page: fc.integer({ min: 0, max: 40 }), offset: fc.integer({ min: 0, max: 6000 }), length: fc.integer({ min: 0, max: 9000 }), follow: fc.boolean() }), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 20000 }), fc.integer({ min: 0, max: 30000 }),
      (ents, skip, buflen) => {
        const sgt = new SgTable(m);
        expect(sg_alloc_table(sgt, ents.length, GFP_KERNEL)).toBe(0);
        const list = [...for_each_sgtable_sg(sgt)];
        // The model: each entry's bytes are [page * 4096 + offset, + length) in order.
        const ranges: Array<[number, number]> = [];
        let prevEnd = -1;
        ents.forEach((e, i) => {
          let page = 100 + e.page * 4;
          let offset = e.offset;
          // Start where the previous entry ended, when it ended on a page boundary: one span.
          if (e.follow && prevEnd >= 0 && prevEnd % 4096 === 0) { page = prevEnd / 4096; offset = 0; }
          sg_set_page(list[i] as NonNullable<(typeof list)[number]>, page, e.length, offset);
          ranges.push([page * 4096 + offset, e.length]);
          prevEnd = page * 4096 + offset + e.length;
        });
        const total = ranges.reduce((a, [, n]) => a + n, 0);
        const fill = Uint8Array.from({ length: 40000 }, (_, i) => (i * 13 + skip) & 0xff);
        // From the buffer into the list, then each range read back against the model.
        const wrote = sg_pcopy_from_buffer(sgt.sgl, ents.length, fill, buflen, skip);
        const want = skip >= total ? 0 : Math.min(buflen, total - skip);
        expect(wrote).toBe(want);
        const model: number[] = [];
        for (const [a, n] of ranges) for (let k = 0; k < n; k++) model.push(a + k);
        // Ranges may overlap one another (random pages): compare what a byte-by-byte copy leaves.
        const expected = new Map<number, number>();
        for (let k = 0; k < wrote; k++) expected.set(model[skip + k] as number, fill[k] as number);
        // Memory as it reads now, one read per range.
        const held = ranges.map(([a, n]) => [a, memBytes(a, n)] as const);
        const byteAt = (phys: number): number => {
          const [a, bytes] = held.find(([a0, b]) => phys >= a0 && phys < a0 + b.length) as (typeof held)[number];
          return bytes[phys - a] as number;
        };
        let bad = 0;
        for (const [phys, v] of expected) if (byteAt(phys) !== v) bad++;
        expect(bad).toBe(0);
        // From the list into a buffer: the list's bytes as memory holds them now.
        const back = new Uint8Array(buflen + 8).fill(0xee);
        expect(sg_pcopy_to_buffer(sgt.sgl, ents.length, back, buflen, skip)).toBe(want);
        for (let k = 0; k < want; k++) if (back[k] !== byteAt(model[skip + k] as number)) bad++;
        expect(bad).toBe(0);
        expect(back.subarray(want).every((x) => x === 0xee)).toBe(true);
        sg_free_table(sgt);
      },
    ), { numRuns: 120 });
  });
});
