/**
 * Issue 19, items 2-4: objects from another machine, lists walked past their end or after being
 * freed, fractions and non-numbers. Each is refused before anything is allocated or mapped.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_TO_DEVICE, EINVAL, GFP_KERNEL, KernelBug, KernelError, Machine, SGTable, SgTable, VVec,
  dma_alloc_coherent, dma_free_coherent, dma_map_page, dma_map_sg, dma_map_sgtable, dma_sync_sgtable_for_cpu,
  dma_unmap_sgtable, sg_alloc_table_from_pages_segment, sg_chain, sg_free_table, sg_nents, IOMMU_DOMAIN_UNMANAGED, type Core, type Device,
} from '../../src/index.ts';

function rig(mode: 'strict' | 'lazy' | false = 'lazy') {
  const m = new Machine({ memory: '1G', ...(mode === false ? {} : { iommu: { mode } }) });
  const plain = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
  let dev: Device<Core> | undefined;
  m.pci.bind(plain, { name: 'drv', probe(d) { dev = d; } });
  return { m, dev: dev as Device<Core> };
}

function table(m: Machine, pages = 4): SgTable {
  const area = m.mm.vmalloc(pages * 4096)!;
  const sgt = new SgTable(m);
  expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL)).toBe(0);
  return sgt;
}

const einval = (f: () => unknown, arg: string): void => {
  let err: unknown;
  try { f(); } catch (e) { err = e; }
  expect(err, `expected EINVAL naming ${arg}`).toBeInstanceOf(KernelError);
  expect((err as KernelError).errno).toBe(EINVAL);
  expect((err as KernelError).arg).toBe(arg);
};

describe('objects from another machine are bad input', () => {
  it('dma_map_sgtable / dma_unmap_sgtable / syncs with another machine\'s table: EINVAL naming sgt, both machines untouched', () => {
    const a = rig();
    const b = rig();
    const sgtA = table(a.m);
    einval(() => dma_map_sgtable(b.dev, sgtA, DMA_TO_DEVICE), 'sgt');
    expect(dma_map_sgtable(a.dev, sgtA, DMA_TO_DEVICE)).toBe(0);
    einval(() => dma_unmap_sgtable(b.dev, sgtA, DMA_TO_DEVICE), 'sgt');
    einval(() => dma_sync_sgtable_for_cpu(b.dev, sgtA, DMA_TO_DEVICE), 'sgt');
    einval(() => dma_map_sg(b.dev, sgtA.sgl, sgtA.orig_nents, DMA_TO_DEVICE), 'sgl');
    dma_unmap_sgtable(a.dev, sgtA, DMA_TO_DEVICE);
    a.m.clock.advance(20e6);
    b.m.clock.advance(20e6);
    expect(a.m.audit()).toEqual([]);
    expect(b.m.audit()).toEqual([]);
    expect(b.m.dma.ledger.entries()).toEqual([]);
  });

  it('SGTable.create with another machine\'s VVec: EINVAL naming pages, nothing allocated', () => {
    const a = rig();
    const b = rig();
    using buf = VVec.create(a.m.mm, 64 * 1024);
    const free = b.m.mm.freePages;
    einval(() => SGTable.create(b.dev, buf, DMA_TO_DEVICE, GFP_KERNEL), 'pages');
    expect(b.m.mm.freePages).toBe(free);
    expect(b.m.dma.ledger.entries()).toEqual([]);
  });

  it('dma_free_coherent of another machine\'s buffer: EINVAL naming buf, neither machine\'s pages touched', () => {
    const a = rig(false);
    const b = rig(false);
    const buf = dma_alloc_coherent(a.dev, 8192, GFP_KERNEL)!;
    const freeB = b.m.mm.freePages;
    einval(() => dma_free_coherent(b.dev, 8192, buf), 'buf');
    expect(b.m.mm.freePages).toBe(freeB);
    dma_free_coherent(a.dev, 8192, buf);
    expect(a.m.audit()).toEqual([]);
  });
});

describe('linking and attaching across machines', () => {
  it('sg_chain with another machine\'s list and iommu_attach_device with another machine\'s domain: EINVAL, nothing changed', () => {
    const a = rig('strict');
    const b = rig('strict');
    const sa = table(a.m);
    const sb = table(b.m);
    einval(() => sg_chain(sa.sgl!, sa.orig_nents, sb.sgl!), 'sgl');
    expect(sg_nents(sa.sgl)).toBe(sa.orig_nents);
    const foreign = b.m.iommu!.allocDomain(IOMMU_DOMAIN_UNMANAGED);
    einval(() => a.m.iommu!.attachDevice(a.dev, foreign), 'domain');
    expect(a.m.iommu!.domainOf(a.dev)).toBe(a.m.iommu!.dmaDomainOf(a.dev));
  });
});

describe('scatterlists walked past their end or after free', () => {
  for (const mode of ['strict', 'lazy', false] as const) {
    it(`dma_map_sg with nents beyond the list, or a freed table's sgl: KernelBug, no IOVA or mapping left (${mode || 'direct'})`, () => {
      const { m, dev } = rig(mode);
      const sgt = table(m);
      expect(() => dma_map_sg(dev, sgt.sgl, sgt.orig_nents + 1, DMA_BIDIRECTIONAL)).toThrow(KernelBug);
      const sgl = sgt.sgl;
      sg_free_table(sgt);
      expect(() => dma_map_sg(dev, sgl, 1, DMA_BIDIRECTIONAL)).toThrow(/freed memory/);
      m.clock.advance(20e6);
      expect(m.audit()).toEqual([]);
      expect(m.dma.ledger.entries()).toEqual([]);
      if (m.iommu !== null) expect(m.iommu.groupOf(dev)!.defaultDomain.paging!.pgtable.iova_to_phys(0xfffff000)).toBe(0);
    });
  }
});

describe('fractions and non-numbers', () => {
  it('dma_map_sg nents 1.5, dma_map_page page 1.5 / null / "12", dma_free_coherent size 1.5: EINVAL naming the argument, nothing changed', () => {
    const { m, dev } = rig('strict');
    const sgt = table(m);
    einval(() => dma_map_sg(dev, sgt.sgl, 1.5, DMA_TO_DEVICE), 'nents');
    for (const page of [1.5, null, '12', -1, NaN]) einval(() => dma_map_page(dev, page as number, 0, 4096, DMA_TO_DEVICE), 'page');
    einval(() => dma_map_page(dev, 300, 0.5, 4096, DMA_TO_DEVICE), 'offset');
    const buf = dma_alloc_coherent(dev, 8192, GFP_KERNEL)!;
    einval(() => dma_free_coherent(dev, 1.5, buf), 'size');
    expect(dev.dma.read(buf.dma_handle, 8).ok).toBe(true); // still mapped
    dma_free_coherent(dev, 8192, buf);
    einval(() => dma_map_sgtable(null as unknown as Device, sgt, DMA_TO_DEVICE), 'dev');
    expect(m.dma.ledger.entries()).toEqual([]);
    expect(m.audit()).toEqual([]);
  });
});
