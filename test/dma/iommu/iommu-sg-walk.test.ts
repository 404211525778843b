/**
 * dma-iommu's scatterlist passes (layout, merge, invalidate, unmap range) and the ledger's record
 * of a mapped list walk slot words directly (src/scatterlist/walk.ts) rather than entry handles.
 * Held here against a model written with handles and sg_next, on random lists long enough to chain
 * across chunks: every word of every entry, the segment count and the IOVA range must agree.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_MAPPING_ERROR, GFP_KERNEL, Rng, SgTable, createContext, iommuDmaMapSg, layoutSg, sg_alloc_table, sg_next, sg_set_page, unmapSgRange,
  type IommuSgDomain, type Scatterlist,
} from '../../../src/index.ts';

const P = 4096;

/** The passes as the kernel writes them, through handles (the model). */
function modelMap(sgl: Scatterlist, nents: number, granule: number, mask: number, maxSeg: number, iova: number): number {
  const ents: Scatterlist[] = [];
  for (let s: Scatterlist | null = sgl, i = 0; s !== null && i < nents; s = sg_next(s), i++) ents.push(s);
  let iovaLen = 0;
  let prev: Scatterlist | null = null;
  for (const s of ents) {
    const off = s.offset % granule;
    const len = s.length;
    const span = Math.ceil((len + off) / granule) * granule;
    s.dma_address = off;
    s.dma_length = len;
    s.offset -= off;
    s.length = span;
    const pad = iovaLen === 0 ? 0 : (mask + 1 - (iovaLen % (mask + 1))) % (mask + 1);
    if (pad !== 0 && pad < span - 1 && prev !== null) {
      prev.length += pad;
      iovaLen += pad;
    }
    iovaLen += span;
    prev = s;
  }
  let cur = 0;
  let curLen = 0;
  let count = 0;
  let dma = iova;
  ents.forEach((s, i) => {
    const o = s.dma_address >>> 0;
    const len = s.dma_length;
    const l = s.length;
    s.dma_address = DMA_MAPPING_ERROR;
    s.dma_length = 0;
    s.offset += o;
    s.length = len;
    if (curLen !== 0 && o === 0 && dma % (mask + 1) !== 0 && maxSeg - curLen >= len) curLen += len;
    else {
      if (i > 0) cur++;
      curLen = len;
      count++;
      (ents[cur] as Scatterlist).dma_address = dma + o;
    }
    (ents[cur] as Scatterlist).dma_length = curLen;
    dma += l;
    if (len + o < l) curLen = 0;
  });
  return count;
}

function words(sgl: Scatterlist, nents: number): number[][] {
  const out: number[][] = [];
  for (let s: Scatterlist | null = sgl, i = 0; s !== null && i < nents; s = sg_next(s), i++) out.push([s.page, s.offset, s.length, s.dma_address, s.dma_length]);
  return out;
}

function randomTable(rng: Rng, n: number): SgTable {
  const sgt = new SgTable(createContext('walk'));
  expect(sg_alloc_table(sgt, n, GFP_KERNEL)).toBe(0);
  let pfn = 0x100 + rng.int(64);
  for (let s: Scatterlist | null = sgt.sgl; s !== null; s = sg_next(s)) {
    const off = rng.int(4) === 0 ? rng.int(P) : 0;
    const len = 1 + rng.int(rng.int(3) === 0 ? 3 * P : P);
    sg_set_page(s, pfn, len, off);
    pfn += rng.int(3) === 0 ? Math.ceil((off + len) / P) : 2 + rng.int(4);
  }
  return sgt;
}

describe('dma-iommu scatterlist passes over slot words', () => {
  it('agree with a handle-walking model on random lists, chained past 128 entries', () => {
    const rng = new Rng(20);
    for (let round = 0; round < 120; round++) {
      const n = 1 + rng.int(round % 4 === 0 ? 400 : 40);
      const mask = [0xffff, 0xfffff, 0xffffffff][rng.int(3)] as number;
      const maxSeg = [0x10000, 0xffff, 0x100000][rng.int(3)] as number;
      const a = randomTable(rng, n);
      const b = randomTable(new Rng(0), n);
      // Same entries in both tables.
      for (let s: Scatterlist | null = a.sgl, t: Scatterlist | null = b.sgl; s !== null && t !== null; s = sg_next(s), t = sg_next(t)) sg_set_page(t, s.page, s.length, s.offset);
      const iova = 0x40000000;
      const dom: IommuSgDomain = { granule: P, allocIova: () => iova, freeIova: () => {}, mapSg: (_at, sg, k) => { let t = 0; for (let i = 0; i < k; i++) { sg.phys(i); t += sg.length(i); } return t; } };
      const got = iommuDmaMapSg(dom, { boundaryMask: mask, maxSegSize: maxSeg }, a.sgl as Scatterlist, n);
      const want = modelMap(b.sgl as Scatterlist, n, P, mask, maxSeg, iova);
      expect(got).toBe(want);
      expect(words(a.sgl as Scatterlist, n)).toEqual(words(b.sgl as Scatterlist, n));
      expect(unmapSgRange(a.sgl as Scatterlist, n)).toEqual(unmapSgRange(b.sgl as Scatterlist, n));
    }
  });

  it('a failed map leaves every entry as it was, chained lists included', () => {
    const rng = new Rng(3);
    const sgt = randomTable(rng, 300);
    const before = words(sgt.sgl as Scatterlist, 300);
    const dom: IommuSgDomain = { granule: P, allocIova: () => 0x40000000, freeIova: () => {}, mapSg: () => -12 };
    expect(iommuDmaMapSg(dom, { boundaryMask: 0xffffffff, maxSegSize: 0x10000 }, sgt.sgl as Scatterlist, 300)).toBe(-12);
    // CPU fields back as they were; the DMA fields cleared as __invalidate_sg leaves them.
    expect(words(sgt.sgl as Scatterlist, 300)).toEqual(before.map(([pg, off, len]) => [pg, off, len, DMA_MAPPING_ERROR, 0]));
  });

  it('layoutSg still lays out with a granule that is not a power of two (by remainders)', () => {
    // IOMMU granules are powers of two and take the bitwise path; layoutSg is public and any other
    // granule keeps its old results (planted: refusing it, or masking with it, fails here).
    const sgt = randomTable(new Rng(1), 3);
    const sgl = sgt.sgl as Scatterlist;
    let s: Scatterlist | null = sgl;
    for (const [off, len] of [[0, 4096], [100, 5000], [2999, 2]] as const) { sg_set_page(s as Scatterlist, 0x200, len, off); s = sg_next(s as Scatterlist); }
    expect(layoutSg(sgl, 3, 3000, 2 ** 64)).toEqual({ iovaLen: 6000 + 6000 + 6000, padding: 0, cpuBytes: 4096 + 5000 + 2 });
    expect(words(sgl, 3).map(([, off, len, dmaOff, dmaLen]) => [off, len, dmaOff, dmaLen])).toEqual([[0, 6000, 0, 4096], [0, 6000, 100, 5000], [0, 6000, 2999, 2]]);
  });
});
