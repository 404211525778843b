/**
 * The seed flow of the Rust scatterlist abstraction: a VVec-like vmalloc buffer, an SGTable over it
 * mapped for a bound device, iterating the DMA segments, and unbind revoking the mapping.
 * Run: npx dmasim run examples/rust-sgtable-flow.ts
 */
import { DMA_TO_DEVICE, GFP_KERNEL, SGTable, VVec, buildMachine, preset, type Core, type Device, type OwnedSGTable } from '../src/index.ts';

export default function rustSgtableFlow(): string {
  const { machine, devices } = buildMachine(preset('laptop-nvme-vtd'));
  const nvme = devices['0000:02:00.0']!;
  const lines: string[] = [];
  let table: OwnedSGTable<VVec> | undefined;
  machine.pci.bind(nvme, {
    name: 'rnvme',
    probe(dev: Device<Core>) {
      const buf = VVec.create(machine.mm, 1 << 20);
      table = SGTable.create(dev, buf, DMA_TO_DEVICE, GFP_KERNEL);
      lines.push(`${table.origNents} CPU entries, ${table.nents} DMA segments:`);
      for (const seg of table.iter()) lines.push(`  0x${seg.dmaAddress().toString(16)} +${seg.dmaLen()}`);
    },
  });
  machine.pci.unbind(nvme);
  try {
    [...table!.iter()];
  } catch (e) {
    lines.push(`after unbind: ${(e as Error).message}`);
  }
  table![Symbol.dispose]();
  lines.push(`audit: ${machine.audit().length === 0 ? 'clean' : 'LEAKS'}`);
  return lines.join('\n');
}
