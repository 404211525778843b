/**
 * The Machine as the composition root (sim/machine.ts): what it sets up from its options, and
 * the creation observer the CLI uses to judge every machine a scenario made.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, KernelError, Machine, onMachineCreated } from '../../src/index.ts';

describe('Machine', () => {
  it('sets up swiotlb as x86 does: 64 MiB below 4 GiB when RAM reaches above it, none otherwise', () => {
    const big = new Machine({ memory: '8G' });
    expect(big.swiotlb?.end).toBe(2 ** 32);
    expect((big.swiotlb?.end ?? 0) - (big.swiotlb?.start ?? 0)).toBe(64 * 2 ** 20);
    expect(new Machine({ memory: '2G' }).swiotlb).toBeNull();
    expect(new Machine({ memory: '8G', swiotlb: false }).swiotlb).toBeNull();
    expect(new Machine({ memory: '2G', swiotlb: { size: '4M' } }).swiotlb).not.toBeNull();
  });

  it('gives each device behind the IOMMU a default domain of the mode; a device with iommu: false none', () => {
    const m = new Machine({ memory: '1G', iommu: { mode: 'lazy' } });
    const a = m.pci.addDevice({ name: 'a', dmaMask: 64 });
    const b = m.pci.addDevice({ name: 'b', dmaMask: 64, iommu: false });
    const u = m.pci.addDevice({ name: 'u', dmaMask: 64, untrusted: true });
    expect(m.iommu?.groupOf(a)?.domain.typeName).toBe('DMA-FQ');
    expect(m.iommu?.groupOf(b)).toBeUndefined();
    expect(m.iommu?.groupOf(u)?.domain.typeName).toBe('DMA'); // untrusted: strict
  });

  it('arm64 devices are non-coherent unless they say so; x86 devices coherent', () => {
    const arm = new Machine({ memory: '1G', arch: 'arm64' });
    expect(arm.pci.addDevice({ name: 'a' }).dma_coherent).toBe(false);
    expect(arm.pci.addDevice({ name: 'b', coherent: true }).dma_coherent).toBe(true);
    expect(new Machine({ memory: '1G' }).pci.addDevice({ name: 'c' }).dma_coherent).toBe(true);
  });

  it('accessChecks: false leaves devices and the CPU unchecked', () => {
    const off = new Machine({ memory: '64M', accessChecks: false });
    const dev = off.pci.addDevice({ name: 'd', dmaMask: 64 });
    expect(dev.dma.checker).toBeNull();
    expect(off.mm.onCpuAccess).toBeNull();
    const on = new Machine({ memory: '64M' });
    expect(on.pci.addDevice({ name: 'd', dmaMask: 64 }).dma.checker).not.toBeNull();
  });

  it('onMachineCreated tells of every machine made until stopped; refuses a non-function', () => {
    const seen: string[] = [];
    const stop = onMachineCreated((m) => seen.push(m.name));
    new Machine({ memory: '64M', name: 'first' });
    new Machine({ memory: '64M', name: 'second' });
    stop();
    new Machine({ memory: '64M', name: 'third' });
    expect(seen).toEqual(['first', 'second']);
    try {
      onMachineCreated(42 as never);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).errno).toBe(EINVAL);
      expect((e as KernelError).arg).toBe('observer');
    }
  });

  it('the same seed and options give the same machine', () => {
    const pfns = (seed: number) => {
      const m = new Machine({ memory: '64M', seed, fragment: { run: [1, 16] } });
      return Array.from({ length: 50 }, () => m.mm.alloc_pages(0, 0));
    };
    expect(pfns(3)).toEqual(pfns(3));
  });
});

describe('the bus registry', () => {
  it('lists the buses, finds one by name, and walks every device bus by bus', () => {
    const m = new Machine({ memory: '64M' });
    expect(m.buses.map((b) => b.name)).toEqual(['pci', 'platform']);
    expect(m.bus('platform')).toBe(m.platform);
    expect(m.bus('usb')).toBeUndefined();
    m.platform.addDevice({ name: 'p0' });
    m.pci.addDevice({ name: '0000:00:01.0' });
    expect([...m.devices()].map((d) => d.name)).toEqual(['0000:00:01.0', 'p0']);
  });
});
