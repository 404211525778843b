/**
 * A release (unmap or free) whose range ends past what a number holds exactly is EINVAL naming the
 * argument, refused before dma-debug, the trace, the ledger or the backend sees it: the mapping
 * stays as it was (dma-debug still holds its entries, the device still reaches it), and the correct
 * release afterwards is clean (no dma-debug error, a clean audit). One case per release call.
 * Planted: the API-layer check dropped for any of them fails its case (dma-debug then drops the
 * entry before the backend refuses, and the correct release reports memory it never allocated),
 * found in a review of session 12.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DmaIovaState, EINVAL, GFP_KERNEL, KernelError, Machine, SgTable, dma_alloc_coherent,
  dma_alloc_noncontiguous, dma_alloc_pages, dma_free_coherent, dma_free_noncontiguous, dma_free_pages, dma_iova_destroy, dma_iova_link, dma_iova_unlink,
  dma_iova_sync, dma_iova_try_alloc, dma_map_page, dma_map_sgtable, dma_mapping_error, dma_set_max_seg_size, dma_set_min_align_mask, dma_unmap_page, dma_unmap_sgtable,
  sg_alloc_table_from_pages_segment,
} from '../../../src/index.ts';

const P = 4096;
const FAR = 2 ** 53;

function rig(iommu = true) {
  const m = new Machine({ memory: '1G', swiotlb: false, ...(iommu ? { iommu: { mode: 'strict' as const } } : {}) });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
  m.pci.bind(dev, { name: 'drv', probe() {} });
  return { m, dev };
}

/** Run `bad` (must throw EINVAL naming `arg`), check nothing changed, then `good` releases cleanly. */
function refusedThenClean(m: Machine, dev: ReturnType<typeof rig>['dev'], addr: number, arg: string, bad: () => void, good: () => void): void {
  const entries = m.dmaDebug!.entryCount(dev);
  const live = m.dma.ledger.entries(dev).length;
  const errors = m.dmaDebug!.errors.length;
  let err: unknown;
  try { bad(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(KernelError);
  expect((err as KernelError).errno).toBe(EINVAL);
  expect((err as KernelError).arg).toBe(arg);
  expect(m.dmaDebug!.entryCount(dev)).toBe(entries);
  expect(m.dma.ledger.entries(dev).length).toBe(live);
  expect(dev.dma.read(addr, 16).ok).toBe(true);
  good();
  expect(m.dmaDebug!.errors.slice(errors).map((e) => e.message)).toEqual([]);
  expect(m.dmaDebug!.entryCount(dev)).toBe(0);
  expect(m.audit()).toEqual([]);
}

describe('a release ending past 2^53 changes nothing', () => {
  it.each([['IOMMU', true], ['dma-direct', false]] as const)('dma_unmap_page (%s)', (_name, iommu) => {
    const { m, dev } = rig(iommu);
    const p = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const h = dma_map_page(dev, p, 0, P, DMA_TO_DEVICE);
    expect(dma_mapping_error(dev, h)).toBe(0);
    refusedThenClean(m, dev, h, 'size', () => dma_unmap_page(dev, h, FAR - h, DMA_TO_DEVICE), () => dma_unmap_page(dev, h, P, DMA_TO_DEVICE));
  });

  it('dma_free_coherent', () => {
    const { m, dev } = rig();
    const buf = dma_alloc_coherent(dev, P, GFP_KERNEL)!;
    refusedThenClean(m, dev, buf.dma_handle, 'size', () => dma_free_coherent(dev, FAR - buf.dma_handle, buf), () => dma_free_coherent(dev, P, buf));
  });

  it('dma_unmap_sgtable with a segment moved past 2^53', () => {
    const { m, dev } = rig();
    dma_set_max_seg_size(dev, P);
    const base = m.mm.alloc_pages(GFP_KERNEL, 2) as number;
    const sgt = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(sgt, [base, base + 2], 2, 0, 2 * P, 65536, GFP_KERNEL)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
    expect(sgt.nents).toBe(2);
    const second = sgt.sgl!.at(1)!;
    const good = second.dma_address;
    refusedThenClean(m, dev, sgt.sgl!.dma_address, 'sgl', () => {
      second.dma_address = FAR - P;
      try { dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE); } finally { second.dma_address = good; }
    }, () => dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE));
  });

  it('dma_free_pages', () => {
    const { m, dev } = rig();
    const pg = dma_alloc_pages(dev, P, DMA_BIDIRECTIONAL, GFP_KERNEL)!;
    refusedThenClean(m, dev, pg.dma_handle, 'size', () => dma_free_pages(dev, FAR - pg.dma_handle, pg.page, pg.dma_handle, DMA_BIDIRECTIONAL),
      () => dma_free_pages(dev, P, pg.page, pg.dma_handle, DMA_BIDIRECTIONAL));
  });

  it('dma_free_noncontiguous', () => {
    const { m, dev } = rig();
    const sgt = dma_alloc_noncontiguous(dev, 2 * P, DMA_BIDIRECTIONAL, GFP_KERNEL, 0)!;
    const h = sgt.sgl!.dma_address;
    refusedThenClean(m, dev, h, 'size', () => dma_free_noncontiguous(dev, FAR - h, sgt, DMA_BIDIRECTIONAL), () => dma_free_noncontiguous(dev, 2 * P, sgt, DMA_BIDIRECTIONAL));
  });

  it.each(['dma_iova_unlink', 'dma_iova_destroy'] as const)('%s of a bounced link (the slow walk releases bounce slots first)', (call) => {
    const m = new Machine({ memory: '256M', swiotlb: { size: '4M' }, iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64, untrusted: true });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    dma_set_min_align_mask(dev, 4095);
    const phys = (m.mm.alloc_pages(GFP_KERNEL, 1) as number) * P + 512; // unaligned: bounced
    const st = new DmaIovaState();
    expect(dma_iova_try_alloc(dev, st, phys, 1024)).toBe(true);
    expect(dma_iova_link(dev, st, phys, 0, 1024, DMA_TO_DEVICE, 0)).toBe(0);
    expect(dma_iova_sync(dev, st, 0, 1024)).toBe(0);
    const used = m.swiotlb!.io_tlb_used;
    expect(used).toBeGreaterThan(0);
    const bad = call === 'dma_iova_unlink'
      ? () => dma_iova_unlink(dev, st, 0, FAR - st.addr, DMA_TO_DEVICE, 0)
      : () => dma_iova_destroy(dev, st, FAR - st.addr, DMA_TO_DEVICE, 0);
    refusedThenClean(m, dev, st.addr, call === 'dma_iova_unlink' ? 'size' : 'mapped_len', () => {
      try { bad(); } finally { expect(m.swiotlb!.io_tlb_used).toBe(used); }
    }, () => dma_iova_destroy(dev, st, 1024, DMA_TO_DEVICE, 0));
    expect(m.swiotlb!.io_tlb_used).toBe(0);
  });

  it('dma_iova_destroy', () => {
    const { m, dev } = rig();
    const p = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const st = new DmaIovaState();
    expect(dma_iova_try_alloc(dev, st, p * P, P)).toBe(true);
    expect(dma_iova_link(dev, st, p * P, 0, P, DMA_TO_DEVICE, 0)).toBe(0);
    expect(dma_iova_sync(dev, st, 0, P)).toBe(0);
    refusedThenClean(m, dev, st.addr, 'mapped_len', () => dma_iova_destroy(dev, st, FAR - st.addr, DMA_TO_DEVICE, 0), () => dma_iova_destroy(dev, st, P, DMA_TO_DEVICE, 0));
  });
});
