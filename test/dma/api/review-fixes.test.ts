/** Fixes from a kernel-fidelity review of the session's new APIs: each test plants the difference. */
import { describe, expect, it } from 'vitest';
import {
  DMA_ATTR_REQUIRE_COHERENT, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, DmaIovaState, EFAULT, ENOMEM, EOPNOTSUPP, FOLL_NOFAULT,
  GFP_DMA32, GFP_KERNEL, Machine, dma_alloc_noncontiguous, dma_alloc_pages, dma_free_noncontiguous, dma_iova_destroy, dma_iova_link,
  dma_iova_sync, dma_iova_try_alloc, dma_set_min_align_mask, pin_user_pages_fast, unpin_user_page, unpin_user_pages,
} from '../../../src/index.ts';

const P = 4096;

describe('review fixes', () => {
  it('a failed swiotlb link undoes only what it mapped, at its own offset; earlier links stay', () => {
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' }, swiotlb: { size: '4M' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64, untrusted: true });
    dma_set_min_align_mask(dev, P - 1);
    const a = m.mm.alloc_pages(GFP_KERNEL, 1) as number;
    const b = m.mm.alloc_pages(GFP_KERNEL, 1) as number;
    const st = new DmaIovaState();
    expect(dma_iova_try_alloc(dev, st, 0, 8 * P)).toBe(true);
    expect(dma_iova_link(dev, st, a * P, 0, 2 * P, DMA_BIDIRECTIONAL, 0)).toBe(0);
    m.faults.inject('swiotlb', { nth: 1 });
    expect(dma_iova_link(dev, st, b * P, 2 * P, P + 100, DMA_BIDIRECTIONAL, 0)).toBe(-ENOMEM);
    m.faults.clear();
    dma_iova_sync(dev, st, 0, 2 * P);
    expect(dev.dma.read(st.addr, 4).ok).toBe(true);
    expect(dev.dma.read(st.addr + 2 * P, 4).ok).toBe(false);
    dma_iova_destroy(dev, st, 2 * P, DMA_BIDIRECTIONAL, 0);
    expect(m.klog.messages.some((k) => k.message.includes('unmapped != size'))).toBe(false);
    expect(m.audit()).toEqual([]);
  });

  it('dma-direct allocations respect bus_dma_limit (retrying from ZONE_DMA32)', () => {
    const m = new Machine({ memory: '8G' });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64, busDmaLimit: 2 ** 32 - 1 });
    const p = dma_alloc_pages(dev, 1 << 20, DMA_FROM_DEVICE, GFP_KERNEL)!;
    expect(p.dma_handle + (1 << 20)).toBeLessThanOrEqual(2 ** 32);
  });

  it('dma_alloc_noncontiguous through an IOMMU accepts zone modifiers in gfp (stripped before mapping)', () => {
    const m = new Machine({ memory: '1G', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    const sgt = dma_alloc_noncontiguous(dev, 1 << 20, DMA_FROM_DEVICE, GFP_KERNEL | GFP_DMA32, 0);
    expect(sgt).not.toBeNull();
    dma_free_noncontiguous(dev, 1 << 20, sgt!, DMA_FROM_DEVICE);
  });

  it('FOLL_NOFAULT pins only pages already present: -EFAULT for untouched ones', () => {
    const m = new Machine({ memory: '64M' });
    const a = m.user.mmap(4 * P);
    const pages: number[] = [];
    expect(pin_user_pages_fast(m.user, a, 4, FOLL_NOFAULT, pages)).toBe(-EFAULT);
    m.user.write(a, new Uint8Array([1]));
    expect(pin_user_pages_fast(m.user, a, 4, FOLL_NOFAULT, pages)).toBe(1);
    unpin_user_page(m.user, pages[0] as number);
  });

  it('dropping another reference on a pinned page is fine; the last one is not', () => {
    const m = new Machine({ memory: '64M' });
    const a = m.user.mmap(P, { populate: true });
    const pages: number[] = [];
    pin_user_pages_fast(m.user, a, 1, 0, pages);
    const pfn = pages[0] as number;
    m.mm.get_page(pfn);
    expect(() => m.mm.__free_pages(pfn, 0)).not.toThrow();
    unpin_user_pages(m.user, pages, -14); // a driver passing pin's -EFAULT: WARN, nothing done
    expect(m.klog.messages.some((k) => k.message.includes('IS_ERR_VALUE(npages)'))).toBe(true);
    expect(m.mm.pinsOf(pfn)).toBe(1);
    unpin_user_page(m.user, pfn);
  });

  it('DMA_ATTR_REQUIRE_COHERENT on a non-coherent device: dma_iova_link is -EOPNOTSUPP', () => {
    const m = new Machine({ memory: '256M', arch: 'arm64', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    expect(dev.dma_coherent).toBe(false);
    const st = new DmaIovaState();
    dma_iova_try_alloc(dev, st, 0, P);
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    expect(dma_iova_link(dev, st, pfn * P, 0, P, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(-EOPNOTSUPP);
    expect(dma_iova_link(dev, st, pfn * P, 0, P, DMA_TO_DEVICE, 0)).toBe(0);
    dma_iova_destroy(dev, st, P, DMA_TO_DEVICE, 0);
  });
});

describe('review fixes: vmap edges', () => {
  it('dma_vmap_noncontiguous of size 0 is null; vunmap of an address never vmapped WARNs (IOMMU) and does nothing', async () => {
    const { dma_vmap_noncontiguous, dma_vunmap_noncontiguous } = await import('../../../src/index.ts');
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    const sgt = dma_alloc_noncontiguous(dev, 4 * P, DMA_TO_DEVICE, GFP_KERNEL, 0)!;
    expect(dma_vmap_noncontiguous(dev, 0, sgt)).toBeNull();
    dma_vunmap_noncontiguous(dev, 0x1234000);
    expect(m.klog.messages.some((k) => k.message.includes('Trying to vunmap() nonexistent vm area'))).toBe(true);
    dma_free_noncontiguous(dev, 4 * P, sgt, DMA_TO_DEVICE);
    expect(m.audit()).toEqual([]);
  });
});
