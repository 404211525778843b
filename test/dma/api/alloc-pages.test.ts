/**
 * dma_alloc_pages / dma_alloc_noncoherent / dma_alloc_noncontiguous: the kernel's checks and WARNs,
 * the memory each backend hands out, ownership that starts with the CPU, dma-debug, and leaks.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_ATTR_ALLOC_SINGLE_PAGES, DMA_ATTR_WEAK_ORDERING, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, GFP_DMA32, GFP_KERNEL,
  KernelBug, Machine, __GFP_COMP, auditMm, dma_alloc_noncoherent, dma_alloc_noncontiguous, dma_alloc_pages, dma_free_noncoherent,
  dma_free_noncontiguous, dma_free_pages, dma_sync_sgtable_for_cpu, dma_sync_sgtable_for_device, dma_sync_single_for_cpu,
  dma_sync_single_for_device, dma_vmap_noncontiguous, dma_vunmap_noncontiguous, sg_next, type MachineOptions, type Scatterlist,
} from '../../../src/index.ts';
import { dmaFindings } from '../../../src/testing/index.ts';

const P = 4096;
const backends: Array<[string, Partial<MachineOptions>]> = [
  ['dma-direct', {}],
  ['IOMMU strict', { iommu: { mode: 'strict' } }],
  ['IOMMU lazy', { iommu: { mode: 'lazy' } }],
];

function rig(opts: Partial<MachineOptions>) {
  const machine = new Machine({ memory: '256M', ...opts });
  const dev = machine.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
  return { machine, dev };
}

const kinds = (m: Machine) => dmaFindings(m).map((f) => f.kind);
const warns = (m: Machine) => m.klog.messages.filter((k) => k.kind === 'WARN').map((k) => k.message).join('\n');

describe.each(backends)('dma_alloc_pages and dma_alloc_noncoherent (%s)', (_name, opts) => {
  it('zeroed pages the device reaches at the handle once synced for it; a clean free', () => {
    const { machine: m, dev } = rig(opts);
    const p = dma_alloc_pages(dev, 3 * P + 10, DMA_FROM_DEVICE, GFP_KERNEL)!;
    expect(p).not.toBeNull();
    expect(Array.from(m.mm.readPhys(p.page * P, 8))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    if (m.iommu === null) expect(p.dma_handle).toBe(p.page * P);
    dma_sync_single_for_device(dev, p.dma_handle, 3 * P + 10, DMA_FROM_DEVICE);
    expect(dev.dma.write(p.dma_handle + 3 * P, new Uint8Array([5, 6])).ok).toBe(true);
    dma_sync_single_for_cpu(dev, p.dma_handle, 3 * P + 10, DMA_FROM_DEVICE);
    expect(Array.from(m.mm.readPhys(p.page * P + 3 * P, 2))).toEqual([5, 6]);
    dma_free_pages(dev, 3 * P + 10, p.page, p.dma_handle, DMA_FROM_DEVICE);
    expect(dmaFindings(m)).toEqual([]);
    expect(m.audit()).toEqual([]);
    expect(auditMm(m.mm)).toEqual([]);
  });

  it('planted: the device writes before dma_sync_single_for_device (the memory starts with the CPU) is a finding', () => {
    const { machine: m, dev } = rig(opts);
    const buf = dma_alloc_noncoherent(dev, P, DMA_FROM_DEVICE, GFP_KERNEL)!;
    dev.dma.write(buf.dma_handle, new Uint8Array([1]));
    const f = dmaFindings(m).find((x) => x.kind === 'access-unmapped');
    expect(f?.message).toContain('noncoherent memory starts with the CPU');
    dma_free_noncoherent(dev, P, buf.cpu_addr, buf.dma_handle, DMA_FROM_DEVICE);
  });

  it('planted: the CPU reads while the device owns it (synced for the device, not back) is a finding', () => {
    const { machine: m, dev } = rig(opts);
    const buf = dma_alloc_noncoherent(dev, P, DMA_FROM_DEVICE, GFP_KERNEL)!;
    dma_sync_single_for_device(dev, buf.dma_handle, P, DMA_FROM_DEVICE);
    m.mm.readLe32(buf.cpu_addr);
    expect(kinds(m)).toContain('cpu-access-device-owned');
    dma_free_noncoherent(dev, P, buf.cpu_addr, buf.dma_handle, DMA_FROM_DEVICE);
  });

  it('planted: a leaked allocation at unbind is a leaked-coherent finding; a free with another size is dma-debug\'s report (or a Bad page state across orders)', () => {
    const { machine: m, dev } = rig(opts);
    m.pci.bind(dev, { name: 'leaky', probe: (d) => { dma_alloc_pages(d, P, DMA_TO_DEVICE, GFP_KERNEL); } });
    m.pci.unbind(dev);
    expect(kinds(m)).toContain('leaked-coherent');
    const { machine: m2, dev: d2 } = rig(opts);
    const p = dma_alloc_pages(d2, 2 * P, DMA_TO_DEVICE, GFP_KERNEL)!;
    // A size of another page order would free the wrong block: Bad page state, nothing freed.
    expect(() => dma_free_pages(d2, P, p.page, p.dma_handle, DMA_TO_DEVICE)).toThrow(KernelBug);
    // The same order, another size: dma-debug's report, as the kernel's.
    dma_free_pages(d2, 2 * P - 100, p.page, p.dma_handle, DMA_TO_DEVICE);
    expect(dmaFindings(m2).map((f) => f.message).join('\n')).toContain('frees DMA memory with different size');
  });

  it('the kernel\'s WARN_ON_ONCEs: zone modifiers, __GFP_COMP, no coherent mask; nothing allocated', () => {
    const { machine: m, dev } = rig(opts);
    const nomask = m.pci.addDevice({ name: '0000:02:00.0', dmaMask: 64, coherentDmaMask: 0 });
    const before = m.mm.allocatedPages;
    expect(dma_alloc_pages(dev, P, DMA_TO_DEVICE, GFP_KERNEL | GFP_DMA32)).toBeNull();
    expect(dma_alloc_pages(dev, P, DMA_TO_DEVICE, GFP_KERNEL | __GFP_COMP)).toBeNull();
    expect(dma_alloc_pages(nomask, P, DMA_TO_DEVICE, GFP_KERNEL)).toBeNull();
    expect(warns(m)).toContain('WARN_ON_ONCE(gfp & (__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM))');
    expect(warns(m)).toContain('WARN_ON_ONCE(gfp & __GFP_COMP)');
    expect(warns(m)).toContain('WARN_ON_ONCE(!dev->coherent_dma_mask)');
    expect(m.mm.allocatedPages).toBe(before);
  });

  it('injected failure: null, nothing left allocated or recorded', () => {
    const { machine: m, dev } = rig(opts);
    const before = m.mm.allocatedPages;
    m.faults.inject('coherent', { nth: 1 });
    expect(dma_alloc_pages(dev, P, DMA_TO_DEVICE, GFP_KERNEL)).toBeNull();
    expect(m.mm.allocatedPages).toBe(before);
    expect(dmaFindings(m, { live: true })).toEqual([]);
  });
});

describe.each(backends)('dma_alloc_noncontiguous (%s)', (name, opts) => {
  it('one DMA range (nents 1) over the physical runs; vmap gives the CPU one view; synced handover both ways', () => {
    // Fragmented memory behind an IOMMU (no two free pages adjacent); dma-direct needs one block.
    const { machine: m, dev } = rig(name === 'dma-direct' ? opts : { ...opts, fragment: { level: 1 } });
    const size = 8 * P;
    const sgt = dma_alloc_noncontiguous(dev, size, DMA_FROM_DEVICE, GFP_KERNEL, 0)!;
    expect(sgt.nents).toBe(1);
    const sgl = sgt.sgl as Scatterlist;
    if (name === 'dma-direct') {
      expect(sgt.orig_nents).toBe(1);
      expect(sgl.length).toBe(size);
    } else {
      // Fragmented memory: no two pages adjacent, so every page is its own run.
      expect(sgt.orig_nents).toBe(8);
      expect(sg_next(sgl)).not.toBeNull();
    }
    expect(sgl.dma_length).toBe(size);
    const vaddr = dma_vmap_noncontiguous(dev, size, sgt)!;
    dma_sync_sgtable_for_device(dev, sgt, DMA_FROM_DEVICE);
    expect(dev.dma.writeLe32(sgl.dma_address + 5 * P + 8, 0xa5a5).ok).toBe(true);
    dma_sync_sgtable_for_cpu(dev, sgt, DMA_FROM_DEVICE);
    expect(m.mm.readLe32(vaddr + 5 * P + 8)).toBe(0xa5a5);
    dma_vunmap_noncontiguous(dev, vaddr);
    dma_free_noncontiguous(dev, size, sgt, DMA_FROM_DEVICE);
    expect(dmaFindings(m)).toEqual([]);
    expect(m.audit()).toEqual([]);
    expect(auditMm(m.mm)).toEqual([]);
  });

  it('attrs other than DMA_ATTR_ALLOC_SINGLE_PAGES and __GFP_COMP are WARN_ON_ONCE and null', () => {
    const { machine: m, dev } = rig(opts);
    expect(dma_alloc_noncontiguous(dev, P, DMA_TO_DEVICE, GFP_KERNEL, DMA_ATTR_WEAK_ORDERING)).toBeNull();
    expect(dma_alloc_noncontiguous(dev, P, DMA_TO_DEVICE, GFP_KERNEL | __GFP_COMP, 0)).toBeNull();
    expect(warns(m)).toContain('WARN_ON_ONCE(attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES)');
    const sgt = dma_alloc_noncontiguous(dev, 4 * P, DMA_TO_DEVICE, GFP_KERNEL, DMA_ATTR_ALLOC_SINGLE_PAGES)!;
    expect(sgt).not.toBeNull();
    dma_free_noncontiguous(dev, 4 * P, sgt, DMA_TO_DEVICE);
    expect(() => dma_free_noncontiguous(dev, 4 * P, sgt, DMA_TO_DEVICE)).toThrow(KernelBug);
  });

  it('planted: a noncontiguous allocation left at unbind is a leak', () => {
    const { machine: m, dev } = rig(opts);
    m.pci.bind(dev, { name: 'leaky', probe: (d) => { dma_alloc_noncontiguous(d, 4 * P, DMA_BIDIRECTIONAL, GFP_KERNEL, 0); } });
    m.pci.unbind(dev);
    expect(kinds(m)).toContain('leaked-coherent');
  });
});

it('through an IOMMU with 2 MiB blocks, a 4 MiB noncontiguous allocation takes two 2 MiB blocks (the largest order first)', () => {
  const { machine: m, dev } = rig({ memory: '1G', iommu: { mode: 'strict' } });
  const sgt = dma_alloc_noncontiguous(dev, 4 << 20, DMA_TO_DEVICE, GFP_KERNEL, 0)!;
  // MAX_PAGE_ORDER is 10 (4 MiB): the IOMMU's 2 MiB page size is order 9, the largest it allows.
  const runs: number[] = [];
  for (let sg: Scatterlist | null = sgt.sgl; sg !== null; sg = sg_next(sg)) runs.push(sg.length);
  expect(runs.reduce((a, b) => a + b, 0)).toBe(4 << 20);
  expect(runs.every((r) => r % (2 << 20) === 0)).toBe(true);
  dma_free_noncontiguous(dev, 4 << 20, sgt, DMA_TO_DEVICE);
  expect(m.audit()).toEqual([]);
});

describe('dma_addressing_limited', () => {
  it('true for a 32-bit device on a machine with RAM above 4 GiB through dma-direct; false behind an IOMMU or with a 64-bit mask', async () => {
    const { dma_addressing_limited } = await import('../../../src/index.ts');
    const m = new Machine({ memory: '8G' });
    const narrow = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 32, coherentDmaMask: 32 });
    const wide = m.pci.addDevice({ name: '0000:02:00.0', dmaMask: 64, coherentDmaMask: 64 });
    expect(dma_addressing_limited(narrow)).toBe(true);
    expect(dma_addressing_limited(wide)).toBe(false);
    const small = new Machine({ memory: '1G' });
    expect(dma_addressing_limited(small.pci.addDevice({ name: '0000:01:00.0', dmaMask: 32, coherentDmaMask: 32 }))).toBe(false);
    const io = new Machine({ memory: '8G', iommu: { mode: 'strict' } });
    expect(dma_addressing_limited(io.pci.addDevice({ name: '0000:01:00.0', dmaMask: 32, coherentDmaMask: 32 }))).toBe(false);
  });
});
