import { describe, expect, it } from 'vitest';
import { forEachFailurePoint, installDmasimMatchers, testMachine } from '../src/testing/index.ts';
import { DMA_TO_DEVICE, GFP_KERNEL, SgTable, dma_map_sgtable, dma_unmap_sgtable, sg_alloc_table_from_pages_segment, sg_free_table } from '../src/index.ts';

installDmasimMatchers(expect);

describe('dmasim/testing', () => {
  it('a ten-line driver test', () => {
    const { machine, dev } = testMachine();
    const buf = machine.mm.vmalloc(64 * 1024)!;
    const sgt = new SgTable(machine);
    expect(sg_alloc_table_from_pages_segment(sgt, buf.pages, buf.nrPages, 0, buf.size, 65536, GFP_KERNEL)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
    dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE);
    sg_free_table(sgt);
    machine.mm.vfree(buf);
    expect(machine).toHaveNoDmaLeaks();
    expect(machine).toHaveNoDmaDebugErrors();
  });

  it('toHaveNoDmaLeaks fails on a leaked page; toHaveFaulted sees device faults', () => {
    const { machine, dev } = testMachine({ memory: '64M' }, { dmaMask: 32 });
    machine.mm.alloc_pages(GFP_KERNEL, 0);
    machine.mm.meta.owner.fill(0);
    expect(machine).not.toHaveNoDmaLeaks();
    dev.dma.read(2 ** 33, 4);
    expect(machine).toHaveFaulted({ device: dev.name, iova: 2 ** 33 });
    expect(machine).not.toHaveFaulted({ iova: 0 });
  });

  it('forEachFailurePoint fails each page allocation in turn, then succeeds; every run audits clean', () => {
    const runs = forEachFailurePoint('page', () => testMachine({ memory: '64M' }), ({ machine }) => machine.mm.vmalloc(5 * 4096), ({ machine }, area) => machine.mm.vfree(area));
    expect(runs).toHaveLength(6);
    expect(runs.slice(0, 5).every((r) => r.result === null)).toBe(true);
    expect(runs[5]?.result).not.toBeNull();
    for (const r of runs) expect(r.violations).toEqual([]);
  });
});

import { afterEach } from 'vitest';
import { auditAfterEach } from '../src/testing/index.ts';
import { Machine, dma_map_page_attrs, dma_mapping_error } from '../src/index.ts';

describe('auditAfterEach and the dma-debug cross-check', () => {
  const track = auditAfterEach(afterEach, expect);
  it('audits every tracked machine after the test (this one is clean)', () => {
    const m = track(new Machine({ memory: '1G', iommu: { mode: 'strict' } }));
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const a = dma_map_page_attrs(dev, 0x1000, 0, 4096, 1, 0);
    dma_mapping_error(dev, a);
    expect(m.audit()).toEqual([]); // a live mapping dma-debug knows about is consistent
  });

  it('finds a dma-debug entry whose IOVA was unmapped behind its back', () => {
    const m = new Machine({ memory: '1G', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const a = dma_map_page_attrs(dev, 0x1000, 0, 4096, 1, 0);
    dma_mapping_error(dev, a);
    const pt = m.iommu!.groupOf('d')!.domain.paging!.pgtable;
    pt.unmap_pages(a, 4096, 1, null); // corrupt: the PTE goes, dma-debug still tracks the mapping
    expect(m.audit().some((v) => v.check === 'dma-debug vs mappings')).toBe(true);
  });
});
