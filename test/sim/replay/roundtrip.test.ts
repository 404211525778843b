/**
 * Issue 21: dmasim writes the kernel's trace format, and replaying it finds what the machine's own
 * dma-debug and ledger found: run -> ftrace text -> parse -> check, in every backend, with the same
 * addresses and the same dma-debug messages (apart from the driver label, which a trace lacks).
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, GFP_KERNEL, Machine, SgTable, dma_alloc_coherent, dma_free_coherent,
  dma_map_sgtable, dma_map_single, dma_mapping_error, dma_sync_single_for_cpu, dma_sync_sgtable_for_cpu, dma_unmap_sgtable,
  dma_unmap_single, sg_alloc_table_from_pages_segment, sg_free_table, type MachineOptions,
} from '../../../src/index.ts';
import { checkTrace } from '../../../src/sim/replay/check.ts';
import { parseFtrace } from '../../../src/sim/replay/parse.ts';
import { traceFtrace } from '../../../src/sim/replay/write.ts';
import { dmaFindings } from '../../../src/testing/index.ts';

const BACKENDS: Record<string, Partial<MachineOptions>> = {
  direct: { swiotlb: false }, swiotlb: { swiotlb: { force: true, size: '8M' } },
  strict: { iommu: { mode: 'strict' } }, lazy: { iommu: { mode: 'lazy' } },
};

/** A driver with planted bugs: a wrong unmap size, a sync in the wrong direction, a leak. */
function scenario(opts: Partial<MachineOptions>, buggy: boolean): Machine {
  const m = new Machine({ memory: '1G', trace: true, ...opts });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
  m.pci.bind(dev, { name: 'rt', probe() {} });
  for (let i = 0; i < 5; i++) {
    const v = m.mm.kmalloc(1024 * (i + 1)) as number;
    const a = dma_map_single(dev, v, 1024 * (i + 1), DMA_FROM_DEVICE);
    expect(dma_mapping_error(dev, a)).toBe(0);
    dma_sync_single_for_cpu(dev, a, 1024 * (i + 1), buggy && i === 1 ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
    if (!(buggy && i === 4)) dma_unmap_single(dev, a, buggy && i === 2 ? 512 : 1024 * (i + 1), DMA_FROM_DEVICE);
  }
  const area = m.mm.vmalloc(12 * 4096);
  if (area === null) throw new Error('vmalloc');
  const sgt = new SgTable(m);
  expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL)).toBe(0);
  expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL)).toBe(0);
  dma_sync_sgtable_for_cpu(dev, sgt, DMA_BIDIRECTIONAL);
  dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL);
  sg_free_table(sgt);
  const buf = dma_alloc_coherent(dev, 8192, GFP_KERNEL);
  if (buf === null) throw new Error('coherent');
  dma_free_coherent(dev, 8192, buf);
  return m;
}

const strip = (s: string) => s.replace(/^DMA-API: \S+ \S+: /, '');

describe('replay round trips: run -> ftrace -> replay', () => {
  for (const [name, opts] of Object.entries(BACKENDS)) {
    it(`${name}: a clean run replays clean; a buggy one gives the machine's own dma-debug reports and leak`, async () => {
      const clean = await checkTrace(parseFtrace((async function* () { yield traceFtrace(scenario(opts, false)); })()));
      expect(clean.findings).toEqual([]);
      const m = scenario(opts, true);
      const text = traceFtrace(m);
      const stream = parseFtrace((async function* () { yield text; })());
      const r = await checkTrace(stream);
      expect(stream.stats.malformed).toBe(0);
      const own = (m.dmaDebug?.errors ?? []).map((e) => strip(e.text.replace(/\n$/, '')));
      expect(own.length).toBeGreaterThanOrEqual(2);
      expect(r.findings.filter((f) => f.kind === 'dma-debug').map((f) => strip(f.message))).toEqual(own);
      // The leak: the same mapping the machine's ledger holds live.
      const live = dmaFindings(m, { live: true, kinds: ['leaked-mapping'] });
      expect(live.length).toBe(1);
      const leak = r.findings.filter((f) => f.kind === 'leaked-mapping');
      expect(leak.length).toBe(1);
      expect(leak[0]?.message).toContain(`device address=0x${(live[0]?.mapping?.dmaStart ?? -1).toString(16).padStart(16, '0')}`);
    });
  }

  it('the addresses survive the trip exactly', async () => {
    const m = scenario({ iommu: { mode: 'strict' } }, false);
    const maps = m.trace.events.filter((e) => e.name === 'dma_map_phys').map((e) => [e.args?.['addr'], e.args?.['phys'], e.args?.['size']]);
    const got: unknown[] = [];
    for await (const ev of parseFtrace((async function* () { yield traceFtrace(m); })())) if (ev.event === 'dma_map_phys') got.push([ev.dma_addr, ev.phys_addr, ev.size]);
    expect(got).toEqual(maps);
    expect(maps.length).toBe(5);
  });

  it('refuses a machine without a trace', () => {
    expect(() => traceFtrace(new Machine({ memory: '64M' }))).toThrow(/traceFtrace: machine: the machine records no trace.*EINVAL/);
    expect(() => traceFtrace(null as never)).toThrow(/machine/);
  });
});

describe('replay of scatterlists past the 128 entries a trace keeps', () => {
  for (const buggy of [false, true]) {
    it(buggy ? 'a wrong unmap direction is still found' : 'a clean run replays clean', async () => {
      const m = new Machine({ memory: '1G', trace: true, swiotlb: false });
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
      m.pci.bind(dev, { name: 'rt', probe() {} });
      // Every other page: 300 entries that cannot merge.
      const pages: number[] = [];
      for (let i = 0; i < 600; i++) pages.push(m.mm.alloc_pages(GFP_KERNEL, 0) as number);
      const sgt = new SgTable(m);
      const use = pages.filter((_, i) => i % 2 === 0);
      expect(sg_alloc_table_from_pages_segment(sgt, use, use.length, 0, use.length * 4096, 65536, GFP_KERNEL)).toBe(0);
      expect(sgt.orig_nents).toBe(300);
      expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
      dma_sync_sgtable_for_cpu(dev, sgt, DMA_TO_DEVICE);
      dma_unmap_sgtable(dev, sgt, buggy ? DMA_FROM_DEVICE : DMA_TO_DEVICE);
      const text = traceFtrace(m);
      expect(text).toContain('nents=128/300 ents=128/300 [TRUNCATED]');
      const r = await checkTrace(parseFtrace((async function* () { yield text; })()));
      expect(r.stats.truncated).toBe(1);
      if (!buggy) expect(r.findings).toEqual([]);
      else expect(r.findings.map((f) => f.message)).toEqual(expect.arrayContaining([expect.stringMatching(/frees DMA memory with different direction .*\[mapped with DMA_TO_DEVICE\] \[unmapped with DMA_FROM_DEVICE\]/)]));
    });
  }
});

describe('iommu:map, iommu:unmap and iommu:io_page_fault in the written trace', () => {
  it('a strict IOMMU run prints each page-table map and unmap and a device fault as the kernel does, and they parse back', async () => {
    const m = new Machine({ memory: '1G', trace: true, iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'rt', probe() {} });
    const v = m.mm.kmalloc(8192) as number;
    const a = dma_map_single(dev, v, 8192, DMA_TO_DEVICE);
    expect(dma_mapping_error(dev, a)).toBe(0);
    dma_unmap_single(dev, a, 8192, DMA_TO_DEVICE);
    dev.dma.write(a, new Uint8Array(16)); // after the unmap: an IOMMU fault
    const text = traceFtrace(m);
    const phys = m.mm.virt_to_phys(v);
    const hex16 = (n: number) => `0x${n.toString(16).padStart(16, '0')}`;
    expect(text).toContain(`map: IOMMU: iova=${hex16(a)} - ${hex16(a + 8192)} paddr=${hex16(phys)} size=8192`);
    expect(text).toContain(`unmap: IOMMU: iova=${hex16(a)} - ${hex16(a + 8192)} size=8192 unmapped_size=8192`);
    expect(text).toMatch(new RegExp(`io_page_fault: IOMMU:rt 0000:01:00\\.0 iova=${hex16(a)} flags=0x0001`));
    const got: string[] = [];
    for await (const ev of parseFtrace((async function* () { yield text; })())) if (ev.system === 'iommu') got.push(ev.event);
    expect(got).toEqual(['map', 'unmap', 'io_page_fault']);
    // Without an IOMMU a bad device access is no io_page_fault.
    const d = new Machine({ memory: '1G', trace: true, swiotlb: false });
    const dd = d.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    d.pci.bind(dd, { name: 'rt', probe() {} });
    try { dd.dma.write(0x7fff_0000_0000, new Uint8Array(16)); } catch { /* a fault either way */ }
    expect(traceFtrace(d)).not.toContain('io_page_fault');
  });
});
