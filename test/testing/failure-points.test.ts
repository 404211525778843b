/**
 * forEachFailurePoint and absorbed failures (session 9, found by a new-user check): an injected
 * failure the kernel absorbs (dma-iommu's IOVA retry above 4 GiB, dma-debug mapping on without its
 * entry) leaves the operation successful, so `cleanup` must run, or a correct driver's mappings read
 * as leaks. A failed operation that unwound itself is not cleaned up twice; a leaky one is caught;
 * `succeeded` takes an op whose failure is 0; bad arguments are EINVAL naming them.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, EINVAL, GFP_KERNEL, SgTable, dma_map_sg, dma_map_single, dma_mapping_error, dma_unmap_sg, dma_unmap_single,
  sg_alloc_table_from_pages_segment, sg_free_table,
} from '../../src/index.ts';
import { forEachFailurePoint, testMachine } from '../../src/testing/index.ts';

type Rig = ReturnType<typeof testMachine>;
const bound = (opts: Parameters<typeof testMachine>[0]) => () => {
  const t = testMachine(opts);
  t.machine.pci.bind(t.dev, { name: 'drv', probe() {} });
  return t;
};

/** Map one buffer; 0 or -ENOMEM, unwinding on failure. */
function mapOne({ machine, dev }: Rig): { virt: number; addr: number } | number {
  const virt = machine.mm.kmalloc(4096);
  if (virt === null) return -12;
  const addr = dma_map_single(dev, virt, 4096, DMA_TO_DEVICE);
  if (dma_mapping_error(dev, addr) !== 0) { machine.mm.kfree(virt); return -12; }
  return { virt, addr };
}
function unmapOne({ machine, dev }: Rig, r: { virt: number; addr: number } | number): void {
  if (typeof r === 'number') return;
  dma_unmap_single(dev, r.addr, 4096, DMA_TO_DEVICE);
  machine.mm.kfree(r.virt);
}

describe('forEachFailurePoint with failures the kernel absorbs', () => {
  for (const [kind, opts] of [['iova', { iommu: { mode: 'strict' } }], ['dma-debug', {}]] as const) {
    for (const snapshot of [true, false]) {
      it(`${kind} (${snapshot ? 'from a snapshot' : 'fresh machines'}): the success that absorbed it is cleaned up, nothing reads as a leak`, () => {
        let cleanups = 0;
        const runs = forEachFailurePoint(kind, bound(opts), mapOne, (m, r) => { cleanups++; unmapOne(m, r); }, { snapshot });
        expect(runs.some((r) => r.injected > 0 && r.succeeded)).toBe(true);
        for (const r of runs) expect(r.violations, `k=${r.k}`).toEqual([]);
        expect(cleanups).toBe(runs.filter((r) => r.succeeded).length);
      });
    }
  }

  it('a failure that unwinds is not cleaned up; one that leaks its mapping is caught', () => {
    let cleanups = 0;
    const runs = forEachFailurePoint('kmalloc', bound({}), (m) => {
      const a = mapOne(m);
      if (typeof a === 'number') return a;
      const b = mapOne(m);
      if (typeof b === 'number') { unmapOne(m, a); return b; }
      return [a, b];
    }, (m, r) => { cleanups++; if (Array.isArray(r)) for (const x of r) unmapOne(m, x); });
    expect(runs.map((r) => r.succeeded)).toEqual([false, false, true]);
    expect(cleanups).toBe(1);
    for (const r of runs) expect(r.violations).toEqual([]);
    // The same with the first mapping left behind on the second one's failure.
    const leaky = forEachFailurePoint('kmalloc', bound({}), (m) => {
      const a = mapOne(m);
      if (typeof a === 'number') return a;
      const b = mapOne(m);
      if (typeof b === 'number') return b;
      return [a, b];
    }, (m, r) => { if (Array.isArray(r)) for (const x of r) unmapOne(m, x); });
    expect(leaky[1]?.violations.map((v) => v.message).join()).toMatch(/left live: dma_map_single/);
  });

  it('pages the failure path forgot (alloc_pages, vmalloc) are named; the same op done right is clean', () => {
    // A driver that allocates a descriptor page and a vmalloc'd ring, then maps the ring.
    const op = (leaky: boolean) => ({ machine, dev }: Rig) => {
      const desc = machine.mm.alloc_pages(GFP_KERNEL, 1);
      if (desc === null) return -12;
      const ring = machine.mm.vmalloc(4 * 4096);
      if (ring === null) { if (!leaky) machine.mm.__free_pages(desc, 1); return -12; }
      // A completion page after the ring: its failure is where the leaky driver forgets both.
      const done = machine.mm.alloc_pages(GFP_KERNEL, 0);
      if (done === null) { if (!leaky) { machine.mm.vfree(ring); machine.mm.__free_pages(desc, 1); } return -12; }
      const sgt = new SgTable(machine);
      if (sg_alloc_table_from_pages_segment(sgt, ring.pages, ring.nrPages, 0, ring.size, 65536, GFP_KERNEL) !== 0 || dma_map_sg(dev, sgt.sgl, sgt.orig_nents, DMA_TO_DEVICE) === 0) {
        sg_free_table(sgt);
        machine.mm.__free_pages(done, 0);
        machine.mm.vfree(ring);
        machine.mm.__free_pages(desc, 1);
        return -12;
      }
      return { desc, ring, sgt, done };
    };
    const undo = ({ machine, dev }: Rig, r: unknown) => {
      const x = r as { desc: number; ring: NonNullable<ReturnType<Rig['machine']['mm']['vmalloc']>>; sgt: SgTable; done: number };
      dma_unmap_sg(dev, x.sgt.sgl, x.sgt.orig_nents, DMA_TO_DEVICE);
      sg_free_table(x.sgt);
      machine.mm.__free_pages(x.done, 0);
      machine.mm.vfree(x.ring);
      machine.mm.__free_pages(x.desc, 1);
    };
    // The driver already holds pages of its own when the sweep starts (counted, not leaked).
    const holding = (opts: Parameters<typeof testMachine>[0]) => () => {
      const t = bound(opts)();
      t.machine.mm.vmalloc(8 * 4096);
      t.machine.mm.alloc_pages(GFP_KERNEL, 2);
      return t;
    };
    for (const opts of [{}, { iommu: { mode: 'strict' } }, { iommu: { mode: 'lazy' } }, { swiotlb: { force: true } }] as const) {
      for (const snapshot of [true, false]) {
        const good = forEachFailurePoint('page', holding(opts), op(false), undo, { snapshot });
        for (const r of good) expect(r.violations, `${JSON.stringify(opts)} k=${r.k}`).toEqual([]);
        const bad = forEachFailurePoint('page', holding(opts), op(true), undo, { snapshot });
        const leaks = bad.flatMap((r) => r.violations.filter((v) => v.check === 'leak').map((v) => v.message));
        expect(leaks, JSON.stringify(opts)).toContain("left allocated: 2 pages from alloc_pages that the operation's failure path did not free");
        expect(leaks, JSON.stringify(opts)).toContain("left allocated: 4 pages from vmalloc that the operation's failure path did not free");
      }
    }
  });

  it('kmalloc buffers the failure path forgot are named; held ones from make are not', () => {
    const make = () => { const t = bound({ iommu: { mode: 'lazy' } })(); t.machine.mm.kmalloc(512); return t; };
    const op = (leaky: boolean) => (m: Rig) => {
      const hdr = m.machine.mm.kmalloc(256);
      if (hdr === null) return -12;
      const one = mapOne(m);
      if (typeof one === 'number') { if (!leaky) m.machine.mm.kfree(hdr); return one; }
      return { hdr, one };
    };
    const undo = (m: Rig, r: unknown) => {
      const x = r as { hdr: number; one: { virt: number; addr: number } };
      unmapOne(m, x.one);
      m.machine.mm.kfree(x.hdr);
    };
    for (const snapshot of [true, false]) {
      for (const r of forEachFailurePoint('kmalloc', make, op(false), undo, { snapshot })) expect(r.violations).toEqual([]);
      const leaks = forEachFailurePoint('kmalloc', make, op(true), undo, { snapshot }).flatMap((r) => r.violations.map((v) => v.message));
      expect(leaks).toContainEqual(expect.stringMatching(/^left allocated: 1 kmalloc buffer \(256 bytes at 0x[0-9a-f]+\) that the operation's failure path did not free$/));
    }
  });

  it('succeeded: an op whose failure is 0 (dma_map_sg)', () => {
    const op = ({ machine, dev }: Rig) => {
      const pages = [machine.mm.alloc_pages(GFP_KERNEL, 0) as number];
      const sgt = new SgTable(machine);
      sg_alloc_table_from_pages_segment(sgt, pages, 1, 0, 4096, 65536, GFP_KERNEL);
      const n = dma_map_sg(dev, sgt.sgl, sgt.orig_nents, DMA_TO_DEVICE);
      if (n === 0) { sg_free_table(sgt); machine.mm.__free_pages(pages[0] as number, 0); }
      return { n, sgt, pfn: pages[0] as number };
    };
    const undo = ({ machine, dev }: Rig, r: ReturnType<typeof op>) => {
      dma_unmap_sg(dev, r.sgt.sgl, r.sgt.orig_nents, DMA_TO_DEVICE);
      sg_free_table(r.sgt);
      machine.mm.__free_pages(r.pfn, 0);
    };
    for (const kind of ['iova', 'pgtable'] as const) {
      const runs = forEachFailurePoint(kind, bound({ iommu: { mode: 'strict' } }), op, undo, { succeeded: (r) => (r as ReturnType<typeof op>).n > 0 });
      for (const r of runs) expect(r.violations, `${kind} k=${r.k}`).toEqual([]);
      // pgtable: the map fails (0) and unwinds; iova: the failure is absorbed and the map succeeds.
      expect(runs.some((r) => r.injected > 0 && r.succeeded === (kind === 'iova'))).toBe(true);
    }
  });

  it('bad arguments are EINVAL naming them, before anything runs', () => {
    const make = bound({});
    const bad: Array<[() => unknown, string]> = [
      [() => forEachFailurePoint('bogus' as never, make, mapOne), 'kind'],
      [() => forEachFailurePoint('page', make, mapOne, undefined, { snapshot: 'no' as never }), 'opts.snapshot'],
      [() => forEachFailurePoint('page', make, mapOne, undefined, { limit: 0 }), 'opts.limit'],
      [() => forEachFailurePoint('page', make, mapOne, undefined, { snapshots: false } as never), 'opts.snapshots'],
      [() => forEachFailurePoint('page', make, mapOne, undefined, { succeeded: 1 as never }), 'opts.succeeded'],
      [() => forEachFailurePoint('page', make, 'op' as never), 'op'],
      [() => forEachFailurePoint('page', make, mapOne, 5 as never), 'cleanup'],
      [() => forEachFailurePoint('page', () => testMachine().machine as never, mapOne), 'make'],
    ];
    for (const [call, arg] of bad) expect(call, arg).toThrow(expect.objectContaining({ errno: EINVAL, arg }) as Error);
  });
});
