/**
 * Exhaustive failure sweeps: every allocating operation, failing allocation k = 1, 2, ... of each
 * kind it uses until it succeeds; each failure must be the kernel's error and leave audit() clean.
 */
import { describe, expect, it } from 'vitest';
import { forEachFailurePoint } from '../../src/testing/index.ts';
import {
  DMA_BIDIRECTIONAL, EIO, ENOMEM, GFP_KERNEL, KernelError, Machine, SGTable, SgTable, VVec, dma_alloc_coherent,
  dma_free_coherent, dma_map_sgtable, dma_unmap_sgtable, dmam_alloc_coherent, sg_alloc_table_from_pages_segment,
  sg_free_table, type Core, type Device, type FaultKind, type MachineOptions,
} from '../../src/index.ts';

interface Rig { machine: Machine; dev: Device<Core>; plain: Device }

function rig(opts: Partial<MachineOptions> = {}): () => Rig {
  return () => {
    const machine = new Machine({ memory: '8G', fragment: { run: [1, 4] }, ...opts });
    const plain = machine.pci.addDevice({ name: '0000:06:00.0', dmaMask: 64, coherentDmaMask: 64 });
    let dev: Device<Core> | undefined;
    machine.pci.bind(plain, { name: 'sweep', probe(d) { dev = d; } });
    return { machine, dev: dev as Device<Core>, plain };
  };
}

function expectSweep<T>(runs: ReturnType<typeof forEachFailurePoint<T, Rig>>, failed: (r: { result: T | undefined; error: unknown }) => boolean): void {
  expect(runs.length).toBeGreaterThan(1); // at least one allocation was failed
  for (const r of runs.slice(0, -1)) {
    expect(failed(r), `failure point ${r.k}`).toBe(true);
    expect(r.violations, `failure point ${r.k}`).toEqual([]);
  }
  expect(runs.at(-1)?.violations).toEqual([]);
}

const errno = (e: unknown): number | undefined => (e instanceof KernelError ? e.errno : undefined);

describe('failure sweeps: nothing is lost at any failure point', () => {
  it('vmalloc: NULL at every page failure', () => {
    const runs = forEachFailurePoint('page', rig(), ({ machine }) => machine.mm.vmalloc(40 * 4096), ({ machine }, a) => machine.mm.vfree(a));
    expectSweep(runs, (r) => r.result === null);
  });

  it('sg_alloc_table_from_pages_segment: -ENOMEM at every chunk failure', () => {
    const pages = Array.from({ length: 600 }, (_, i) => 0x10000 + 2 * i);
    const runs = forEachFailurePoint('sg-chunk', rig(), ({ machine }) => {
      const sgt = new SgTable(machine);
      return { ret: sg_alloc_table_from_pages_segment(sgt, pages, 600, 0, 600 * 4096, 65536, GFP_KERNEL), sgt };
    }, (_m, r) => sg_free_table(r.sgt));
    expectSweep(runs, (r) => r.result?.ret === -ENOMEM);
  });

  const mapCases: Array<[string, Partial<MachineOptions>, FaultKind, number]> = [
    ['forced swiotlb', { swiotlb: { force: true } }, 'swiotlb', -EIO],
    ['IOMMU strict: page tables', { iommu: { mode: 'strict' } }, 'pgtable', -ENOMEM],
    ['IOMMU lazy: page tables', { iommu: { mode: 'lazy' } }, 'pgtable', -ENOMEM],
  ];
  for (const [name, opts, kind, want] of mapCases) {
    it(`dma_map_sgtable through ${name}: ${want === 0 ? 'debugging turns itself off, the mapping works' : want === -EIO ? '-EIO' : '-ENOMEM'}`, () => {
      const make = rig(opts);
      const runs = forEachFailurePoint(kind, () => {
        const r = make();
        const area = r.machine.mm.vmalloc(24 * 4096)!;
        const sgt = new SgTable(r.machine);
        sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
        return { ...r, sgt };
      }, ({ dev, sgt }) => dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0), ({ dev, sgt, machine }) => {
        dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0);
        machine.clock.advance(20e6);
      });
      expectSweep(runs, (r) => r.result === want);
    });
  }

  it('IOVA: one failure is absorbed by the PCI 32-bit-first fallback (the kernel notice, with the limit clipped to the 48-bit aperture); failing every allocation is -ENOMEM with nothing lost', () => {
    const r = rig({ iommu: { mode: 'strict' } })();
    const area = r.machine.mm.vmalloc(24 * 4096)!;
    const sgt = new SgTable(r.machine);
    sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
    r.machine.faults.inject('iova', { nth: 1 });
    expect(dma_map_sgtable(r.dev, sgt, DMA_BIDIRECTIONAL, 0)).toBe(0);
    expect(r.machine.klog.messages.some((msg) => msg.message === 'sweep 0000:06:00.0: Using 48-bit DMA addresses')).toBe(true);
    dma_unmap_sgtable(r.dev, sgt, DMA_BIDIRECTIONAL, 0);
    expect(r.machine.audit()).toEqual([]);
    // A fresh machine: the first machine's range cache now holds that IOVA, and a cache hit
    // allocates nothing (so nothing can fail), exactly as the kernel.
    const f = rig({ iommu: { mode: 'strict' } })();
    const area2 = f.machine.mm.vmalloc(24 * 4096)!;
    const sgt2 = new SgTable(f.machine);
    sg_alloc_table_from_pages_segment(sgt2, area2.pages, area2.nrPages, 0, area2.size, 65536, GFP_KERNEL);
    f.machine.faults.inject('iova', { after: 1 });
    expect(dma_map_sgtable(f.dev, sgt2, DMA_BIDIRECTIONAL, 0)).toBe(-ENOMEM);
    expect(sgt2.sgl?.dma_address).toBe(-1); // __invalidate_sg restored every entry
    expect(f.machine.audit()).toEqual([]);
  });

  it('dma-debug entries: a failed entry allocation turns debugging off, as the kernel, and the mapping still works', () => {
    const r = rig()();
    const area = r.machine.mm.vmalloc(24 * 4096)!;
    const sgt = new SgTable(r.machine);
    sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
    r.machine.faults.inject('dma-debug', { nth: 1 });
    expect(dma_map_sgtable(r.dev, sgt, DMA_BIDIRECTIONAL, 0)).toBe(0);
    expect(r.machine.dmaDebug?.disabled).toBe(true);
    dma_unmap_sgtable(r.dev, sgt, DMA_BIDIRECTIONAL, 0);
    expect(r.machine.audit()).toEqual([]);
  });

  it('SGTable.create through a lazy IOMMU: a KernelError with the kernel errno at every failure', () => {
    for (const kind of ['sg-chunk', 'pgtable'] as const) {
      const make = rig({ iommu: { mode: 'lazy' } });
      const runs = forEachFailurePoint(kind, () => {
        const r = make();
        return { ...r, buf: VVec.create(r.machine.mm, 512 * 4096) };
      }, ({ dev, buf }) => SGTable.create(dev, buf, DMA_BIDIRECTIONAL, GFP_KERNEL), ({ machine }, t) => {
        t[Symbol.dispose]();
        machine.clock.advance(20e6);
      });
      for (const r of runs.slice(0, -1)) {
        expect(errno(r.error), `${kind} @${r.k}`).toBe(ENOMEM);
        expect(r.violations, `${kind} @${r.k}`).toEqual([]);
      }
      expect(runs.at(-1)?.error).toBeUndefined();
    }
  });

  it('coherent allocation, direct and through the IOMMU: NULL at every failure', () => {
    for (const [opts, kind] of [[{}, 'coherent'], [{ iommu: { mode: 'strict' } }, 'pgtable'], [{ iommu: { mode: 'strict' } }, 'page']] as const) {
      const runs = forEachFailurePoint(kind, rig(opts), ({ dev }) => dma_alloc_coherent(dev, 9 * 4096, GFP_KERNEL), ({ dev }, b) => { if (b !== null) dma_free_coherent(dev, 9 * 4096, b); });
      expectSweep(runs, (r) => r.result === null);
    }
  });

  it('bind: a probe whose managed allocation fails returns -ENOMEM and releases what it registered', () => {
    const runs = forEachFailurePoint('coherent', () => {
      const machine = new Machine({ memory: '1G' });
      const plain = machine.pci.addDevice({ name: 'd', dmaMask: 64, coherentDmaMask: 64 });
      return { machine, plain, dev: undefined as unknown as Device<Core> };
    }, ({ machine, plain }) => machine.pci.bind(plain, {
      name: 'p',
      probe(d) {
        for (let i = 0; i < 3; i++) if (dmam_alloc_coherent(d, 4096, GFP_KERNEL) === null) return -ENOMEM;
        return 0;
      },
    }), ({ machine, plain }) => machine.pci.unbind(plain));
    expectSweep(runs, (r) => r.result === -ENOMEM);
  });
});
