import { describe, expect, it } from 'vitest';
import {
  DMA_MAPPING_ERROR, EINVAL, EIO, ENOMEM, EREMOTEIO, GFP_KERNEL, SgTable, createContext, iommuDmaMapSg, sg_alloc_table,
  sg_set_page, unmapSgRange, type IommuSgDomain, type IommuSgReport, type Scatterlist,
} from '../../../src/index.ts';

const K = 1024;
const P = 4096;
const ULONG_MAX = 2 ** 64;

interface Ent { pfn: number; off?: number; len: number }

function table(ents: Ent[]): SgTable {
  const sgt = new SgTable(createContext('t'));
  sg_alloc_table(sgt, ents.length, GFP_KERNEL);
  let sg: Scatterlist | null = sgt.sgl;
  for (const e of ents) {
    sg_set_page(sg!, e.pfn, e.len, e.off ?? 0);
    sg = sg!.at(1);
  }
  return sgt;
}

function fakeDomain(opts: { failAlloc?: boolean; mapErr?: number } = {}) {
  const runs: Array<[number, number, number]> = [];
  const freed: Array<[number, number]> = [];
  const dom: IommuSgDomain = {
    granule: P,
    allocIova(size) {
      if (opts.failAlloc) return 0;
      let align = P;
      while (align < size) align *= 2;
      return Math.ceil(0x100000000 / align) * align;
    },
    freeIova(iova, size) { freed.push([iova, size]); },
    // The runs iommu_map_sg would map: physically contiguous entries merged, back to back from iova.
    mapSg(iova, sg, nents) {
      if (opts.mapErr !== undefined) return opts.mapErr;
      let at = iova;
      for (let i = 0; i < nents; i++) {
        const last = runs.at(-1);
        if (i > 0 && last !== undefined && last[1] + last[2] === sg.phys(i)) last[2] += sg.length(i);
        else runs.push([at, sg.phys(i), sg.length(i)]);
        at += sg.length(i);
      }
      return at - iova;
    },
  };
  return { dom, runs, freed };
}

function segments(sgt: SgTable, count: number, base: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let sg = sgt.sgl;
  for (let i = 0; i < count; i++) { out.push([sg!.dma_address - base, sg!.dma_length]); sg = sg!.at(1); }
  return out;
}

function map(ents: Ent[], maxSegSize: number, boundaryMask = ULONG_MAX, dopts = {}) {
  const sgt = table(ents);
  const f = fakeDomain(dopts);
  let rep: IommuSgReport | undefined;
  const n = iommuDmaMapSg(f.dom, { maxSegSize, boundaryMask }, sgt.sgl!, ents.length, (r) => { rep = r; });
  return { sgt, n, ...f, rep, base: rep?.iova ?? 0 };
}

describe('iommu_dma_map_sg layout and merge (kernel rules)', () => {
  it('page-aligned discontiguous pages merge into one DMA segment', () => {
    const r = map([{ pfn: 10, len: P }, { pfn: 50, len: P }, { pfn: 7, len: P }], 65536);
    expect(r.n).toBe(1);
    expect(segments(r.sgt, 1, r.base)).toEqual([[0, 3 * P]]);
    expect(r.runs.map(([iova, phys, size]) => [iova - r.base, phys / P, size])).toEqual([[0, 10, P], [P, 50, P], [2 * P, 7, P]]);
  });

  it('the u32 max-segment check wraps: with max 4096, 8K + 8K + 4K is one 20 KiB segment', () => {
    const r = map([{ pfn: 0, len: 8 * K }, { pfn: 100, len: 8 * K }, { pfn: 200, len: 4 * K }], 4096);
    expect(r.n).toBe(1);
    expect(segments(r.sgt, 1, r.base)).toEqual([[0, 20 * K]]);
  });

  it('max_seg_size 0xffff gives 15 pages per segment', () => {
    const r = map(Array.from({ length: 20 }, (_, i) => ({ pfn: 3 * i, len: P })), 0xffff);
    expect(r.n).toBe(2);
    expect(segments(r.sgt, 2, r.base)).toEqual([[0, 15 * P], [15 * P, 5 * P]]);
  });

  it('pads the previous entry so no entry straddles the segment boundary; padding is reported', () => {
    const r = map([{ pfn: 0, len: 60 * K }, { pfn: 100, len: 8 * K }], 1 << 20, 0xffff);
    expect(r.n).toBe(2);
    expect(segments(r.sgt, 2, r.base)).toEqual([[0, 60 * K], [64 * K, 8 * K]]);
    expect(r.rep?.paddingBytes).toBe(4 * K);
    expect(r.rep?.iovaLen).toBe(72 * K);
    expect(r.runs[0]).toEqual([r.base, 0, 64 * K]); // the padding maps the memory after entry 0
  });

  it('an entry ending exactly on the boundary is not padded', () => {
    const r = map([{ pfn: 0, len: 64 * K }, { pfn: 100, len: 8 * K }], 1 << 20, 0xffff);
    expect(r.rep?.paddingBytes).toBe(0);
    expect(r.n).toBe(2); // the second starts at a boundary: no merge
  });

  it('unaligned splits of a contiguous buffer never merge, and the page is mapped twice', () => {
    const r = map([{ pfn: 5, len: 2048 }, { pfn: 5, off: 2048, len: 2048 }], 65536);
    expect(r.n).toBe(2);
    expect(segments(r.sgt, 2, r.base)).toEqual([[0, 2048], [P + 2048, 2048]]);
    expect(r.runs).toHaveLength(2);
  });

  it('a short tail merges into the segment before it but closes it', () => {
    const r = map([{ pfn: 0, len: P }, { pfn: 9, len: 2 * K }, { pfn: 20, len: P }], 65536);
    expect(r.n).toBe(2);
    expect(segments(r.sgt, 2, r.base)).toEqual([[0, P + 2 * K], [2 * P, P]]);
  });

  it('an unaligned first offset stays in the DMA address; CPU fields are restored', () => {
    const r = map([{ pfn: 3, off: 100, len: P - 100 }, { pfn: 4, len: P }], 65536);
    expect(segments(r.sgt, 1, r.base)).toEqual([[100, 2 * P - 100]]);
    expect([r.sgt.sgl!.offset, r.sgt.sgl!.length]).toEqual([100, P - 100]);
    expect(r.sgt.sgl!.at(1).dma_address).toBe(DMA_MAPPING_ERROR);
    expect(r.sgt.sgl!.at(1).dma_length).toBe(0);
  });

  it('unmap releases from the first segment to the end of the last non-empty one', () => {
    const r = map([{ pfn: 0, len: P }, { pfn: 9, len: 2 * K }, { pfn: 20, len: P }], 65536);
    expect(unmapSgRange(r.sgt.sgl!, 3)).toEqual({ start: r.base, size: 3 * P });
  });
});

describe('failures restore every entry', () => {
  it('IOVA allocation failure: -ENOMEM', () => {
    const r = map([{ pfn: 3, off: 100, len: 200 }], 65536, ULONG_MAX, { failAlloc: true });
    expect(r.n).toBe(-ENOMEM);
    expect([r.sgt.sgl!.page, r.sgt.sgl!.offset, r.sgt.sgl!.length, r.sgt.sgl!.dma_address]).toEqual([3, 100, 200, DMA_MAPPING_ERROR]);
  });

  it('map errors: -ENOMEM and -EREMOTEIO pass through, anything else is -EINVAL; the IOVA is freed', () => {
    expect(map([{ pfn: 1, len: P }], 65536, ULONG_MAX, { mapErr: -ENOMEM }).n).toBe(-ENOMEM);
    expect(map([{ pfn: 1, len: P }], 65536, ULONG_MAX, { mapErr: -EREMOTEIO }).n).toBe(-EREMOTEIO);
    const r = map([{ pfn: 1, len: P }], 65536, ULONG_MAX, { mapErr: -EIO });
    expect(r.n).toBe(-EINVAL);
    expect(r.freed).toHaveLength(1);
  });
});

describe('degenerate entries (the kernel behaviour, confirmed natively)', () => {
  it('a zero-length entry with ULONG_MAX wraps the IOVA length to 0: nothing allocated, DMA address 0', () => {
    const r = map([{ pfn: 1, len: P }, { pfn: 2, len: 0 }], 65536);
    expect(r.rep).toBeUndefined();
    expect(r.runs).toHaveLength(0);
    expect(r.sgt.sgl!.dma_address).toBe(0);
  });

  it('padding an entry up to 4 GiB wraps its stored length to 0: a short map and -EINVAL', () => {
    const r = map([{ pfn: 0, len: 0xfffff000 }, { pfn: 0x200000, len: 8 * K }], 0xffffffff, 0xffffffff);
    expect(r.n).toBe(-EINVAL);
    expect(r.sgt.sgl!.length).toBe(0xfffff000);
  });
});
