/**
 * Issue 19, items 8-10: no plain JS errors from bad arguments, no global state broken by them, and
 * no state changed by a call that then fails.
 */
import { describe, expect, it } from 'vitest';
import {
  Devres, EBUSY, EINVAL, GFP_KERNEL, KernelBug, KernelError, Machine, SGTable, VVec, DMA_TO_DEVICE, setRootLogger,
  dma_alloc_coherent, dmam_alloc_coherent,
} from '../../src/index.ts';

function err(f: () => unknown): unknown {
  try { f(); } catch (e) { return e; }
  return undefined;
}
const einval = (f: () => unknown, arg: string, errno = EINVAL): void => {
  const e = err(f);
  expect(e, `expected errno ${errno} naming ${arg}`).toBeInstanceOf(KernelError);
  expect((e as KernelError).errno).toBe(errno);
  expect((e as KernelError).arg).toBe(arg);
};

describe('kernel errors, not plain JS errors', () => {
  it('device DMA with a bad length or address, VmArea.read(0, -1), vfree/kfree/virt_to_phys of garbage: EINVAL naming it', () => {
    const m = new Machine({ memory: '64M' });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    einval(() => dev.dma.read(0x100000, -1), 'length');
    einval(() => dev.dma.read(0x100000, 2.5), 'length');
    einval(() => dev.dma.read(NaN, 4), 'addr');
    einval(() => dev.dma.read('4096' as unknown as number, 4), 'addr');
    einval(() => dev.dma.write(0x100000, [1, 2] as unknown as Uint8Array), 'bytes');
    const area = m.mm.vmalloc(8192)!;
    einval(() => area.read(0, -1), 'len');
    einval(() => m.mm.vfree(undefined as unknown as null), 'area');
    einval(() => m.mm.kfree(undefined as unknown as null), 'addr');
    einval(() => m.mm.virt_to_phys(null as unknown as number), 'virt');
    m.mm.vfree(area);
  });

  it('a device given DMA_MAPPING_ERROR faults (a result, as on hardware) and the access check reports it', () => {
    const m = new Machine({ memory: '64M', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    const r = dev.dma.write(-1, new Uint8Array(4));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.fault.reason).toBe('beyond-mask');
    expect(m.dma.ledger.findings.list().map((f) => f.kind)).toEqual(['access-unmapped']);
    expect(m.dma.ledger.findings.list()[0]?.message).toMatch(/at DMA DMA_MAPPING_ERROR/);
  });
});

describe('global state survives bad input', () => {
  it('setRootLogger(garbage) is refused; later machines and tables work', () => {
    einval(() => setRootLogger({} as never), 'logger');
    einval(() => setRootLogger(null as never), 'logger');
    const m = new Machine({ memory: '64M' });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    using t = SGTable.create(dev.asBound(), VVec.create(m.mm, 8192), DMA_TO_DEVICE, GFP_KERNEL);
    expect(t.nents).toBeGreaterThan(0);
  });
});

describe('no state changed by a call that fails', () => {
  it('free_pages_exact past its allocation frees nothing; a bad owner, counter or dispose callback changes nothing', () => {
    const m = new Machine({ memory: '64M' });
    const virt = m.mm.alloc_pages_exact(10 * 4096, GFP_KERNEL)!;
    const free = m.mm.freePages;
    expect(err(() => m.mm.free_pages_exact(virt, 2 ** 32))).toBeInstanceOf(KernelBug);
    expect(m.mm.freePages).toBe(free);
    einval(() => m.mm.free_pages_exact(virt, 1.5), 'size');
    m.mm.free_pages_exact(virt, 10 * 4096);
    expect(m.mm.freePages).toBe(free + 10);
    const allocated = m.mm.allocatedPages;
    einval(() => m.mm.alloc_pages(GFP_KERNEL, 0, 'bogus' as never), 'owner');
    expect(m.mm.allocatedPages).toBe(allocated);
    einval(() => m.mm.adjustAllocated('x' as unknown as number), 'pages');
    expect(m.mm.allocatedPages).toBe(allocated);
    expect(m.audit()).toEqual([]);
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    let torn = 0;
    const res = new Devres(dev.asBound(), 1, () => { torn++; });
    einval(() => res.dispose(42 as never), 'then');
    expect(res.revoked).toBe(false);
    expect(torn).toBe(0);
    res.dispose();
    expect(torn).toBe(1);
  });
});

describe('gfp flags are checked where memory is allocated', () => {
  it('dma_alloc_coherent, dmam_alloc_coherent and kmalloc with NaN, a fraction, a string, null or an object: EINVAL naming gfp, nothing allocated', () => {
    const m = new Machine({ memory: '64M' });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64, coherentDmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const free = m.mm.freePages;
    for (const gfp of [NaN, 1.5, 'abc', null, {}]) {
      einval(() => dma_alloc_coherent(dev, 4096, gfp as number), 'gfp');
      einval(() => dmam_alloc_coherent(dev.asBound(), 4096, gfp as number), 'gfp');
      einval(() => m.mm.kmalloc(64, gfp as number), 'gfp');
    }
    expect(m.mm.freePages).toBe(free);
    expect(m.dma.ledger.entries()).toEqual([]);
  });
});
