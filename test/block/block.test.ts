/** Queue limits, bios, splitting, and blk_rq_map_sg with the block layer's merge rules. */
import { describe, expect, it } from 'vitest';
import {
  Bio, DMA_FROM_DEVICE, EINVAL, GFP_KERNEL, KernelBug, Machine, REQ_OP_READ, REQ_OP_WRITE, Request, SgTable, bio_add_page,
  bio_add_user_buffer, bio_release_pages, bio_split_rw_at, blankLimits, blk_alloc_queue, blk_rq_map_sg, blk_rq_nr_phys_segments,
  blk_submit_bio, blk_validate_limits, dma_map_sgtable, dma_unmap_sgtable, sg_alloc_table, sg_free_table, sg_next,
  type QueueLimits, type RequestQueue, type Scatterlist,
} from '../../src/index.ts';
import { dmaFindings } from '../../src/testing/index.ts';

const P = 4096;
const machine = () => new Machine({ memory: '256M' });

function queue(m: Machine, lim: Partial<QueueLimits> = {}): RequestQueue {
  const q = blk_alloc_queue(m, { ...blankLimits(), ...lim });
  if (typeof q === 'number') throw new Error(`queue refused: ${q}`);
  return q;
}

/** A bio over `pieces` of [pfn, offset, len]. */
function bioOf(m: Machine, pieces: Array<[number, number, number]>, op = REQ_OP_WRITE): Bio {
  const bio = new Bio(m, op);
  for (const [pfn, off, len] of pieces) expect(bio_add_page(bio, pfn, len, off)).toBe(len);
  return bio;
}

/** Map a request into a fresh table: the entries as [phys, len]. */
function mapped(m: Machine, rq: Request): Array<[number, number]> {
  const sgt = new SgTable(m);
  sg_alloc_table(sgt, blk_rq_nr_phys_segments(rq), GFP_KERNEL);
  const n = blk_rq_map_sg(rq, sgt.sgl as Scatterlist);
  const out: Array<[number, number]> = [];
  let sg: Scatterlist | null = sgt.sgl;
  for (let i = 0; i < n && sg !== null; i++, sg = sg_next(sg)) out.push([sg.page * P + sg.offset, sg.length]);
  sg_free_table(sgt);
  return out;
}

function submitOne(q: RequestQueue, bio: Bio): Request {
  const rqs = blk_submit_bio(q, bio);
  if (typeof rqs === 'number' || rqs.length !== 1) throw new Error(`expected one request, got ${String(typeof rqs === 'number' ? rqs : rqs.length)}`);
  return rqs[0] as Request;
}

describe('blk_validate_limits', () => {
  it('fills the defaults the kernel gives a zeroed queue_limits', () => {
    const m = machine();
    const lim = blankLimits();
    expect(blk_validate_limits(m, lim)).toBe(0);
    expect(lim).toMatchObject({ max_segments: 128, max_segment_size: 65536, seg_boundary_mask: 0xffffffff, dma_alignment: 511, logical_block_size: 512, max_hw_sectors: 255, max_sectors: 255, max_fast_segment_size: 4096 });
    const nvme = { ...blankLimits(), virt_boundary_mask: 4095, max_hw_sectors: 2048 };
    expect(blk_validate_limits(m, nvme)).toBe(0);
    expect(nvme.max_segment_size).toBe(0xffffffff); // a virt boundary leaves the segment size unlimited
  });

  it('refuses what the kernel refuses: WARN_ON_ONCE (or pr_warn) and -EINVAL', () => {
    const m = machine();
    const cases: Array<[Partial<QueueLimits>, string]> = [
      [{ max_segment_size: 1024 }, 'max_segment_size < BLK_MIN_SEGMENT_SIZE'],
      [{ dma_alignment: 8191 }, 'dma_alignment > PAGE_SIZE'],
      [{ seg_boundary_mask: 100 }, 'seg_boundary_mask < BLK_MIN_SEGMENT_SIZE - 1'],
      [{ max_hw_sectors: 4 }, 'max_hw_sectors < PAGE_SECTORS'],
      [{ logical_block_size: 3000 }, 'Invalid logical block size (3000)'],
    ];
    for (const [lim, text] of cases) {
      expect(blk_alloc_queue(m, { ...blankLimits(), ...lim })).toBe(-EINVAL);
      expect(m.klog.messages.some((k) => k.message.includes(text))).toBe(true);
    }
  });
});

describe('bio_add_page', () => {
  it('grows the last bvec while physically contiguous (whatever the limits); a full bio takes no more', () => {
    const m = machine();
    const bio = new Bio(m, REQ_OP_WRITE, 2);
    bio_add_page(bio, 100, 2048, 2048);
    bio_add_page(bio, 101, P, 0);
    bio_add_page(bio, 200, 512, 0);
    expect(bio.vecs).toEqual([{ page: 100, offset: 2048, len: 2048 + P }, { page: 200, offset: 0, len: 512 }]);
    expect(bio_add_page(bio, 300, 512, 0)).toBe(0);
    expect(bio.size).toBe(2048 + P + 512);
  });
});

describe('the kernel\'s worked examples', () => {
  it('(a) 8 contiguous pages: one entry under 64 KiB segments, eight under 4 KiB ones', () => {
    const m = machine();
    const pages = Array.from({ length: 8 }, (_, i) => [1000 + i, 0, P] as [number, number, number]);
    expect(mapped(m, submitOne(queue(m), bioOf(m, pages)))).toEqual([[1000 * P, 8 * P]]);
    const rq = submitOne(queue(m, { max_segment_size: P }), bioOf(m, pages));
    expect(rq.nr_phys_segments).toBe(8);
    expect(mapped(m, rq)).toHaveLength(8);
  });

  it('(b) a buffer across a 64 KiB seg_boundary: 8 KiB before it, 24 KiB after', () => {
    const m = machine();
    const q = queue(m, { seg_boundary_mask: 0xffff, max_segment_size: 65536 });
    const base = 0x40000 / P; // a 64 KiB-aligned page
    const pieces = Array.from({ length: 8 }, (_, i) => [base + 14 + i, 0, P] as [number, number, number]);
    expect(mapped(m, submitOne(q, bioOf(m, pieces)))).toEqual([[(base + 14) * P, 2 * P], [(base + 16) * P, 6 * P]]);
  });

  it('(c) NVMe\'s virt boundary: a bvec ending mid-page followed by another splits the bio at a sector boundary', () => {
    const m = machine();
    const q = queue(m, { virt_boundary_mask: P - 1, max_hw_sectors: 2048 });
    const rqs = blk_submit_bio(q, bioOf(m, [[10, 0, 2048], [20, 0, P]])) as Request[];
    expect(rqs.map((r) => r.bytes)).toEqual([2048, P]);
    // Page-aligned pieces make one request, one entry per physical run.
    const one = submitOne(q, bioOf(m, [[10, 0, P], [20, 0, P], [21, 0, P]]));
    expect(mapped(m, one)).toEqual([[10 * P, P], [20 * P, 2 * P]]);
  });
});

describe('splitting and mapping', () => {
  it('max_segments splits a scattered bio: 128 + 72 segments', () => {
    const m = machine();
    const q = queue(m, { max_hw_sectors: 4096 });
    const bio = new Bio(m, REQ_OP_READ);
    for (let i = 0; i < 200; i++) bio_add_page(bio, 5000 + 2 * i, P, 0);
    const rqs = blk_submit_bio(q, bio) as Request[];
    expect(rqs.map((r) => r.nr_phys_segments)).toEqual([128, 72]);
    expect(rqs.map((r) => mapped(m, r).length)).toEqual([128, 72]);
  });

  it('max_sectors caps a request: 1 MiB of contiguous pages under 255 sectors splits on the logical block', () => {
    const m = machine();
    const q = queue(m, { logical_block_size: 4096, max_hw_sectors: 256 });
    const pieces = Array.from({ length: 256 }, (_, i) => [3000 + i, 0, P] as [number, number, number]);
    const rqs = blk_submit_bio(q, bioOf(m, pieces)) as Request[];
    expect(rqs.every((r) => r.bytes <= 256 * 512 && r.bytes % 4096 === 0)).toBe(true);
    expect(rqs.reduce((a, r) => a + r.bytes, 0)).toBe(256 * P);
  });

  it('a bvec not aligned to dma_alignment is -EINVAL (BLK_STS_INVAL)', () => {
    const m = machine();
    expect(blk_submit_bio(queue(m), bioOf(m, [[10, 1, 511], [11, 0, P]]))).toBe(-EINVAL);
    expect(bio_split_rw_at(bioOf(m, [[10, 0, 512], [12, 0, 100]]), queue(m).limits, 2 ** 20).sectors).toBe(-EINVAL);
  });

  it('planted: a table shorter than the request is a KernelBug; more entries than counted is the kernel\'s WARN', () => {
    const m = machine();
    const q = queue(m);
    const rq = submitOne(q, bioOf(m, [[10, 0, P], [20, 0, P], [30, 0, P]]));
    const short = new SgTable(m);
    sg_alloc_table(short, 2, GFP_KERNEL);
    expect(() => blk_rq_map_sg(rq, short.sgl as Scatterlist)).toThrow(KernelBug);
    const lying = new Request(q, rq.bio, 2);
    const sgt = new SgTable(m);
    sg_alloc_table(sgt, 3, GFP_KERNEL);
    expect(blk_rq_map_sg(lying, sgt.sgl as Scatterlist)).toBe(3);
    expect(m.klog.messages.some((k) => k.message.includes('WARN_ON(nsegs > blk_rq_nr_phys_segments(rq))'))).toBe(true);
  });

  it('a user buffer read into through a device: pinned for the bio, mapped, released dirty; forgetting the release is a leaked pin', () => {
    for (const release of [true, false]) {
      const m = machine();
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
      const q = queue(m, { max_hw_sectors: 2048 });
      const buf = m.user.mmap(64 * 1024, { populate: true });
      const bio = new Bio(m, REQ_OP_READ);
      expect(bio_add_user_buffer(bio, m.user, buf, 16 * 1024)).toBe(0);
      const rq = submitOne(q, bio);
      const sgt = new SgTable(m);
      sg_alloc_table(sgt, blk_rq_nr_phys_segments(rq), GFP_KERNEL);
      sgt.orig_nents = blk_rq_map_sg(rq, sgt.sgl as Scatterlist);
      expect(dma_map_sgtable(dev, sgt, DMA_FROM_DEVICE)).toBe(0);
      expect(dev.dma.write((sgt.sgl as Scatterlist).dma_address, new Uint8Array([0x5a])).ok).toBe(true);
      dma_unmap_sgtable(dev, sgt, DMA_FROM_DEVICE);
      sg_free_table(sgt);
      expect(Array.from(m.user.read(buf, 1))).toEqual([0x5a]);
      if (release) bio_release_pages(bio, true);
      expect(dmaFindings(m, { live: true }).some((f) => f.kind === 'leaked-pin')).toBe(!release);
    }
  });
});

it('bio_add_user_buffer on a bio that fills up: -EINVAL, the bio as it was, nothing left pinned', () => {
  const m = new Machine({ memory: '256M', fragment: { level: 1 } });
  const buf = m.user.mmap(2 << 20, { populate: true });
  const bio = new Bio(m, REQ_OP_READ, 4);
  bio_add_page(bio, 7, 512, 0);
  expect(bio_add_user_buffer(bio, m.user, buf, 64 * 1024)).toBe(-EINVAL);
  expect(bio.vecs).toEqual([{ page: 7, offset: 0, len: 512 }]);
  expect(bio.size).toBe(512);
  expect(m.mm.pinnedPages().size).toBe(0);
});

it('blk_rq_map_sg also takes the pre-6.15 (q, rq, sglist) form; another queue is EINVAL', () => {
  const m = machine();
  const q = queue(m);
  const rq = submitOne(q, bioOf(m, [[10, 0, P], [11, 0, P]]));
  const sgt = new SgTable(m);
  sg_alloc_table(sgt, 2, GFP_KERNEL);
  expect(blk_rq_map_sg(q, rq, sgt.sgl as Scatterlist)).toBe(1);
  expect(() => blk_rq_map_sg(queue(m), rq, sgt.sgl as Scatterlist)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'q' }) as Error);
});

describe('review fixes (each case a planted difference from the kernel)', () => {
  it('get_max_io_size: a request ends on a physical-block boundary', () => {
    const m = machine();
    const q = queue(m, { physical_block_size: 4096 });
    const pieces = Array.from({ length: 32 }, (_, i) => [2000 + i, 0, P] as [number, number, number]);
    expect((blk_submit_bio(q, bioOf(m, pieces)) as Request[]).map((r) => r.bytes)).toEqual([126976, 4096]);
  });

  it('a split remainder goes through the slow path: its advanced offset fails dma_alignment', () => {
    const m = machine();
    const q = queue(m, { dma_alignment: 4095 });
    const pieces = Array.from({ length: 32 }, (_, i) => [2000 + i, 0, P] as [number, number, number]);
    expect(blk_submit_bio(q, bioOf(m, pieces))).toBe(-EINVAL);
  });

  it('bv_offset is kept raw: 512 bytes at offset 4097 fail dma_alignment, as in the kernel', () => {
    const m = machine();
    const bio = new Bio(m, REQ_OP_WRITE);
    bio_add_page(bio, 10, 512, 4097);
    expect(blk_submit_bio(queue(m), bio)).toBe(-EINVAL);
  });

  it('split points past 2 GiB and a ULONG_MAX virt boundary are exact (no 32-bit cut)', () => {
    const m = machine();
    const lim = { ...blankLimits(), virt_boundary_mask: 4095, max_segments: 1 };
    blk_validate_limits(m, lim);
    const bio = new Bio(m, REQ_OP_WRITE);
    bio_add_page(bio, 0, 3 * 2 ** 30, 0);
    bio_add_page(bio, 2 ** 20, P, 0);
    expect(bio_split_rw_at(bio, lim, 0xffffffff).sectors).toBe(6291456);
    const q = queue(m, { virt_boundary_mask: 2 ** 64 });
    expect((blk_submit_bio(q, bioOf(m, [[10, 512, 512], [20, 0, 512]])) as Request[]).length).toBe(2);
  });

  it('two user buffers sharing a page: one pin per page for the bio, none left after release', () => {
    const m = machine();
    const buf = m.user.mmap(P, { populate: true });
    const bio = new Bio(m, REQ_OP_READ);
    expect(bio_add_user_buffer(bio, m.user, buf, 512)).toBe(0);
    expect(bio_add_user_buffer(bio, m.user, buf + 512, 512)).toBe(0);
    expect(bio.vecs).toHaveLength(1);
    bio_release_pages(bio, false);
    expect(m.mm.pinnedPages().size).toBe(0);
    expect(bio_add_user_buffer(bio, m.user, buf + 100, 0)).toBe(0);
    expect(m.mm.pinnedPages().size).toBe(0);
  });
});
