/**
 * A driver that forgets to unmap: dma-debug reports the leak at unbind, naming the bus, and the
 * DMA ledger names the call that made the mapping (with dma-debug on or off).
 * Run: npx dmasim run examples/leak-at-unbind.ts
 */
import { DMA_TO_DEVICE, GFP_KERNEL, LEAK_KINDS, Machine, SgTable, dma_map_sgtable, dmaFindings, sg_alloc_table_from_pages_segment } from '../src/index.ts';

export default function leakAtUnbind(): string {
  const m = new Machine({ memory: '1G' });
  const dev = m.pci.addDevice({ name: '0000:05:00.0', dmaMask: 64 });
  const buf = m.mm.vmalloc(16 * 4096)!;
  const sgt = new SgTable(m);
  m.pci.bind(dev, {
    name: 'forgetful',
    probe(d) {
      sg_alloc_table_from_pages_segment(sgt, buf.pages, buf.nrPages, 0, buf.size, 65536, GFP_KERNEL);
      dma_map_sgtable(d, sgt, DMA_TO_DEVICE, 0);
    },
    remove() { /* forgot dma_unmap_sgtable */ },
  });
  m.pci.unbind(dev);
  const debug = m.dmaDebug!.errors.map((e) => e.text.trimEnd());
  const ledger = dmaFindings(m, { kinds: LEAK_KINDS }).map((f) => `[${f.kind}] ${f.message}`);
  return [...debug, ...ledger].join('\n');
}
