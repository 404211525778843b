/**
 * bench/checks: what the access checks cost. The same loops on two machines built alike, one with
 * `accessChecks: false`, alternated round by round in one process so drift hits both; each figure
 * is the median of the rounds, with the ratio on/off. The ledger itself is always on (it is what
 * finds leaks), so it is in both columns: its cost against a build without it is in RESULTS.md.
 */
import {
  DMA_BIDIRECTIONAL, DMA_TO_DEVICE, GFP_KERNEL, Machine, type Core, type Device, type MachineOptions,
  dma_map_page_attrs, dma_unmap_page_attrs,
} from '../src/index.ts';
import { median, type BenchResult } from './util.ts';

const ROUNDS = 15;
const N = 50_000;

interface Rig { readonly m: Machine; readonly dev: Device<Core>; readonly pfn: number; readonly live: number; readonly other: number }

function rig(opts: Partial<MachineOptions>, accessChecks: boolean): Rig {
  const m = new Machine({ memory: '1G', dmaDebug: false, ...opts, accessChecks });
  const plain = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
  let dev: Device<Core> | undefined;
  m.pci.bind(plain, { name: 'bench', probe(d) { dev = d; } });
  const d = dev as Device<Core>;
  // A driver keeps some mappings live (a ring): the checks search among them.
  for (let i = 0; i < 32; i++) dma_map_page_attrs(d, m.mm.alloc_pages(GFP_KERNEL, 0)!, 0, 4096, DMA_TO_DEVICE, 0);
  const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
  const live = dma_map_page_attrs(d, m.mm.alloc_pages(GFP_KERNEL, 0)!, 0, 4096, DMA_BIDIRECTIONAL, 0);
  return { m, dev: d, pfn, live, other: m.mm.alloc_pages(GFP_KERNEL, 0)! * 4096 };
}

const loops: Record<string, (r: Rig) => void> = {
  'dma_map_page + dma_unmap_page (ns/pair)': ({ dev, pfn }) => {
    for (let i = 0; i < N; i++) dma_unmap_page_attrs(dev, dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0), 4096, DMA_TO_DEVICE, 0);
  },
  'device write, 64 B (ns/access)': ({ dev, live }) => {
    const b = new Uint8Array(64);
    for (let i = 0; i < N; i++) dev.dma.write(live + 64, b);
  },
  'device read, 4 KiB (ns/access)': ({ dev, live }) => {
    for (let i = 0; i < N; i++) dev.dma.read(live, 4096);
  },
  'CPU readPhys, 64 B, not mapped (ns/access)': ({ m, other }) => {
    for (let i = 0; i < N; i++) m.mm.readPhys(other, 64);
  },
};

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / N;
}

/** Checks on against off, per backend and loop. */
export function benchChecks(): BenchResult[] {
  const out: BenchResult[] = [];
  const backends: Array<[string, Partial<MachineOptions>]> = [
    ['dma-direct', { swiotlb: false }],
    ['IOMMU strict', { iommu: { mode: 'strict' } }],
    ['swiotlb=force', { swiotlb: { force: true } }],
  ];
  for (const [label, opts] of backends) {
    const on = rig(opts, true);
    const off = rig(opts, false);
    for (const [name, loop] of Object.entries(loops)) {
      const tOn: number[] = [];
      const tOff: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        tOff.push(time(() => loop(off)));
        tOn.push(time(() => loop(on)));
      }
      // The first rounds warm the JIT up; keep the later ones.
      const a = median(tOn.slice(3));
      const b = median(tOff.slice(3));
      // The issue bounds device accesses and map/unmap pairs at 10% over unchecked; CPU accesses are reported.
      const bound = name.startsWith('CPU') ? {} : { target: Number((b * 1.1).toFixed(1)) };
      out.push({ name: `${label}: ${name}`, value: a, unit: 'ns', ...bound, note: `checks off ${b.toFixed(1)} ns; on/off ${(a / b).toFixed(3)}` });
    }
  }
  return out;
}
