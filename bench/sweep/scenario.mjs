// The job `npm run bench sweep` sweeps: a 4 GiB fragmented machine, a device behind a strict IOMMU,
// 600 rounds of a 4 MiB vmalloc buffer built into a scatterlist, mapped and unmapped. Plain
// JavaScript against the built package (dist/), so workers start as a user's would.
import { DMA_TO_DEVICE, GFP_KERNEL, Machine, SgTable, dma_map_sgtable, dma_unmap_sgtable, sg_alloc_table_from_pages_segment, sg_free_table } from '../../dist/src/index.js';

export const columns = ['segments'];

export default function job(params = {}) {
  const m = new Machine({ memory: '4G', seed: params.seed ?? 1, fragment: { level: 0.5 }, iommu: { mode: 'strict' }, dmaDebug: false });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, maxSegmentSize: 65536 });
  m.pci.bind(dev, { name: 'bench', probe() {} });
  let segments = 0;
  for (let r = 0; r < 600; r++) {
    const area = m.mm.vmalloc(4 << 20);
    const sgt = new SgTable(m);
    sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
    dma_map_sgtable(dev, sgt, DMA_TO_DEVICE);
    segments += sgt.nents;
    dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE);
    sg_free_table(sgt);
    m.mm.vfree(area);
  }
  m.pci.unbind(dev);
  return { segments };
}
