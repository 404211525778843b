/**
 * The two-step IOVA API: try_alloc / link / sync / unlink / destroy / free with the kernel's
 * fallbacks, checks and IOTLB behaviour, and the driver-test checks over linked ranges.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_ATTR_MMIO, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, DmaIovaState, EINVAL, EIO, EPERM, GFP_KERNEL, KernelBug, Machine,
  dma_iova_destroy, dma_iova_free, dma_iova_link, dma_iova_size, dma_iova_sync, dma_iova_try_alloc, dma_iova_unlink, dma_set_min_align_mask, dma_use_iova,
  type MachineOptions,
} from '../../../src/index.ts';
import { dmaFindings } from '../../../src/testing/index.ts';

const P = 4096;

function rig(opts: Partial<MachineOptions> = { iommu: { mode: 'strict' } }, untrusted = false) {
  const machine = new Machine({ memory: '256M', ...opts });
  const dev = machine.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64, ...(untrusted ? { untrusted: true } : {}) });
  return { machine, dev };
}

/** Scattered pages: every other page of an order-4 block. */
function pages(m: Machine, n: number): number[] {
  const base = m.mm.alloc_pages(GFP_KERNEL, 5)!;
  return Array.from({ length: n }, (_, i) => base + 2 * i);
}

const kinds = (m: Machine) => dmaFindings(m).map((f) => f.kind);

describe('dma_iova_try_alloc', () => {
  it('false without dma-iommu (no IOMMU, passthrough): the state stays zero and the driver falls back', () => {
    for (const opts of [{}, { iommu: { mode: 'passthrough' as const } }]) {
      const { dev } = rig(opts);
      const st = new DmaIovaState();
      st.addr = 123;
      expect(dma_iova_try_alloc(dev, st, 0, 8 * P)).toBe(false);
      expect(dma_use_iova(st)).toBe(false);
      expect(st.addr).toBe(0);
      // Linking anyway is the kernel's NULL dereference.
      expect(() => dma_iova_link(dev, st, 0, 0, P, DMA_TO_DEVICE, 0)).toThrow(KernelBug);
    }
  });

  it('reserves iova_align(size + offset) below 4 GiB first for PCI; addr carries phys\'s offset in the granule', () => {
    const { dev } = rig();
    const st = new DmaIovaState();
    expect(dma_iova_try_alloc(dev, st, 0x12345678, 5 * P)).toBe(true);
    expect(dma_use_iova(st)).toBe(true);
    expect(dma_iova_size(st)).toBe(5 * P);
    expect(st.addr % P).toBe(0x678);
    expect(st.addr).toBeLessThan(2 ** 32);
  });

  it('size 0 is WARN_ON_ONCE and false', () => {
    const { machine: m, dev } = rig();
    expect(dma_iova_try_alloc(dev, new DmaIovaState(), 0, 0)).toBe(false);
    expect(m.klog.messages.some((k) => k.message.includes('WARN_ON_ONCE(!size)'))).toBe(true);
  });
});

describe.each([['strict', 'strict'], ['lazy', 'lazy']] as const)('link, sync, unlink, destroy (%s)', (_n, mode) => {
  it('scattered pages linked into one range: the device sees them back to back; destroy unmaps and frees', () => {
    const { machine: m, dev } = rig({ iommu: { mode } });
    const ps = pages(m, 4);
    ps.forEach((p, i) => m.mm.writePhys(p * P, new Uint8Array([i + 1]), 0, 1));
    const st = new DmaIovaState();
    expect(dma_iova_try_alloc(dev, st, 0, 4 * P)).toBe(true);
    ps.forEach((p, i) => expect(dma_iova_link(dev, st, p * P, i * P, P, DMA_TO_DEVICE, 0)).toBe(0));
    expect(dma_iova_sync(dev, st, 0, 4 * P)).toBe(0);
    for (let i = 0; i < 4; i++) expect(dev.dma.read(st.addr + i * P, 1)).toEqual({ ok: true, value: new Uint8Array([i + 1]) });
    dma_iova_destroy(dev, st, 4 * P, DMA_TO_DEVICE, 0);
    expect(dmaFindings(m)).toEqual([]);
    expect(m.audit()).toEqual([]);
    // After destroy the device's access is a use after unmap (strict), or still reaches the
    // memory through a stale IOTLB entry until the flush queue drains (lazy): either way a finding.
    dev.dma.read(st.addr, 1);
    expect(kinds(m).some((k) => k === 'access-after-unmap' || k === 'access-unmapped')).toBe(true);
  });

  it('unlink syncs the IOTLB at once even on a lazy domain; the IOVA stays reserved and can be relinked', () => {
    const { machine: m, dev } = rig({ iommu: { mode } });
    const [p] = pages(m, 1) as [number];
    const st = new DmaIovaState();
    dma_iova_try_alloc(dev, st, 0, 2 * P);
    dma_iova_link(dev, st, p * P, 0, P, DMA_FROM_DEVICE, 0);
    dma_iova_sync(dev, st, 0, P);
    expect(dev.dma.write(st.addr, new Uint8Array([9])).ok).toBe(true);
    dma_iova_unlink(dev, st, 0, P, DMA_FROM_DEVICE, 0);
    // No stale IOTLB entry: the write faults on the hardware too.
    expect(dev.dma.write(st.addr, new Uint8Array([9])).ok).toBe(false);
    expect(dma_iova_link(dev, st, p * P, 0, P, DMA_FROM_DEVICE, 0)).toBe(0);
    dma_iova_sync(dev, st, 0, P);
    dma_iova_destroy(dev, st, P, DMA_FROM_DEVICE, 0);
    expect(m.audit()).toEqual([]);
  });
});

describe('the checks a driver test relies on (planted bugs)', () => {
  it('a device access before dma_iova_sync is a finding; after it, none', () => {
    const { machine: m, dev } = rig();
    const [p] = pages(m, 1) as [number];
    const st = new DmaIovaState();
    dma_iova_try_alloc(dev, st, 0, P);
    dma_iova_link(dev, st, p * P, 0, P, DMA_TO_DEVICE, 0);
    dev.dma.read(st.addr, 4);
    const f = dmaFindings(m).filter((x) => x.kind.startsWith('access'));
    expect(f.map((x) => x.kind)).toEqual(['access-unmapped']);
    expect(f[0]?.message).toContain('dma_iova_sync must come first');
    m.dma.ledger.findings.clear();
    dma_iova_sync(dev, st, 0, P);
    dev.dma.read(st.addr, 4);
    expect(dmaFindings(m).filter((x) => x.kind.startsWith('access'))).toEqual([]);
    dma_iova_destroy(dev, st, P, DMA_TO_DEVICE, 0);
  });

  it('links left at unbind are leaks; a device write into a TO_DEVICE link is a direction finding', () => {
    const { machine: m, dev } = rig();
    const [p] = pages(m, 1) as [number];
    m.pci.bind(dev, {
      name: 'leaky', probe: (d) => {
        const st = new DmaIovaState();
        dma_iova_try_alloc(d, st, 0, P);
        dma_iova_link(d, st, p * P, 0, P, DMA_TO_DEVICE, 0);
        dma_iova_sync(d, st, 0, P);
        d.dma.write(st.addr, new Uint8Array([1]));
      },
    });
    m.pci.unbind(dev);
    expect(kinds(m)).toContain('leaked-mapping');
    expect(kinds(m)).toContain('access-direction');
  });

  it('dma_iova_free with links still in place leaves them mapped: a leak, and the IOVA is reusable under them', () => {
    const { machine: m, dev } = rig();
    const [p] = pages(m, 1) as [number];
    const st = new DmaIovaState();
    dma_iova_try_alloc(dev, st, 0, P);
    dma_iova_link(dev, st, p * P, 0, P, DMA_TO_DEVICE, 0);
    dma_iova_free(dev, st);
    expect(dmaFindings(m, { live: true }).map((f) => f.kind)).toContain('leaked-mapping');
  });
});

describe('the kernel\'s link rules', () => {
  it('an unaligned phys at offset > 0 is WARN_ON_ONCE and -EIO; an IOVA that is not granule-aligned is -EINVAL', () => {
    const { machine: m, dev } = rig();
    const [p] = pages(m, 1) as [number];
    const st = new DmaIovaState();
    dma_iova_try_alloc(dev, st, 0, 4 * P);
    expect(dma_iova_link(dev, st, p * P + 16, P, 100, DMA_TO_DEVICE, 0)).toBe(-EIO);
    expect(m.klog.messages.some((k) => k.message.includes('WARN_ON_ONCE(iova_start_pad && offset > 0)'))).toBe(true);
    // At offset 0 the phys offset must be the one try_alloc saw (here 0): 16 bytes in, the IOVA
    // written is 16 bytes below the range, unaligned; so is any offset that is not granule-aligned.
    expect(dma_iova_link(dev, st, p * P + 16, 0, 100, DMA_TO_DEVICE, 0)).toBe(-EINVAL);
    expect(dma_iova_link(dev, st, p * P, 100, P, DMA_TO_DEVICE, 0)).toBe(-EINVAL);
    expect(m.klog.messages.some((k) => k.message.includes('unaligned: iova'))).toBe(true);
    expect(dma_iova_link(dev, st, p * P, 0, P, DMA_TO_DEVICE, 0)).toBe(0);
    dma_iova_destroy(dev, st, P, DMA_TO_DEVICE, 0);
    expect(m.audit()).toEqual([]);
  });

  it('an untrusted device bounces the unaligned head and tail through swiotlb; MMIO that would bounce is -EPERM', () => {
    const { machine: m, dev } = rig({ iommu: { mode: 'strict' }, swiotlb: { size: '4M' } }, true);
    // As NVMe does: swiotlb then keeps the buffer's offset in the granule, which the link needs.
    dma_set_min_align_mask(dev, P - 1);
    const ps = pages(m, 1);
    const phys = (ps[0] as number) * P + 100;
    m.mm.writePhys(phys, new Uint8Array([7, 7, 7]), 0, 3);
    const st = new DmaIovaState();
    expect(dma_iova_try_alloc(dev, st, phys, 3)).toBe(true);
    expect(dma_iova_link(dev, st, phys, 0, 3, DMA_BIDIRECTIONAL, 0)).toBe(0);
    expect(st.usesSwiotlb).toBe(true);
    dma_iova_sync(dev, st, 0, 3);
    expect(dev.dma.read(st.addr, 3)).toEqual({ ok: true, value: new Uint8Array([7, 7, 7]) });
    dev.dma.write(st.addr, new Uint8Array([8]));
    dma_iova_destroy(dev, st, 3, DMA_BIDIRECTIONAL, 0);
    // The bounce slot was copied back and released.
    expect(Array.from(m.mm.readPhys(phys, 1))).toEqual([8]);
    expect(m.audit()).toEqual([]);
    const st2 = new DmaIovaState();
    dma_iova_try_alloc(dev, st2, phys, 3);
    expect(dma_iova_link(dev, st2, phys, 0, 3, DMA_BIDIRECTIONAL, DMA_ATTR_MMIO)).toBe(-EPERM);
    dma_iova_free(dev, st2);
  });

  it('bad arguments are EINVAL naming them; another machine\'s state is refused', () => {
    const { dev } = rig();
    const other = rig();
    const st = new DmaIovaState();
    dma_iova_try_alloc(other.dev, st, 0, P);
    expect(() => dma_iova_link(dev, st, 0, 0, P, DMA_TO_DEVICE, 0)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'state' }) as Error);
    expect(() => dma_iova_try_alloc(dev, {} as DmaIovaState, 0, P)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'state' }) as Error);
    expect(() => dma_iova_sync(dev, new DmaIovaState(), -1, P)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'offset' }) as Error);
  });
});
