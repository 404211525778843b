/**
 * The README's "Testing a driver" walkthrough, kept true: a small RX driver, the same test against
 * its buggy and fixed versions, in every backend.
 */
import { describe, expect, it } from 'vitest';
import { installDmasimMatchers, testMachine } from '../../src/testing/index.ts';
import { DMA_FROM_DEVICE, ENOMEM, type Core, type Device, type Machine, dma_map_single, dma_mapping_error, dma_sync_single_for_cpu, dma_unmap_single } from '../../src/index.ts';

installDmasimMatchers(expect);

/** A receive path: map a buffer, the device fills it, the CPU reads it, unmap. */
function receive(machine: Machine, dev: Device<Core>, fixed: boolean): number {
  const buf = machine.mm.kmalloc(2048)!;
  const addr = dma_map_single(dev, buf, 2048, DMA_FROM_DEVICE);
  if (dma_mapping_error(dev, addr)) return -ENOMEM;
  dev.dma.write(addr, new Uint8Array(64).fill(0x5a));                    // a packet arrives
  if (fixed) dma_sync_single_for_cpu(dev, addr, 2048, DMA_FROM_DEVICE);  // bug 1: no sync before reading
  const first = machine.mm.readPhys(machine.mm.virt_to_phys(buf), 1)[0] as number;
  if (fixed) dma_unmap_single(dev, addr, 2048, DMA_FROM_DEVICE);       // bug 2: never unmapped
  return first;
}

describe.each(['direct', 'swiotlb', 'strict', 'lazy'] as const)('the RX driver on %s', (backend) => {
  const opts = backend === 'direct' ? {} : backend === 'swiotlb' ? { swiotlb: { force: true } } : { iommu: { mode: backend } };
  for (const fixed of [false, true]) {
    it(fixed ? 'the fixed driver passes' : 'the buggy driver fails both checks', () => {
      const { machine, dev } = testMachine(opts);
      let got = 0;
      expect(machine.pci.bind(dev, { name: 'rx', probe(d) { got = receive(machine, d, fixed); } })).toBe(0);
      machine.pci.unbind(dev);
      if (fixed) {
        expect(got).toBe(0x5a);
        expect(machine).toHaveNoDmaLeaks();
        expect(machine).toHaveNoDeviceAccessViolations();
        expect(machine).toHaveNoDmaDebugErrors();
      } else {
        expect(() => expect(machine).toHaveNoDeviceAccessViolations()).toThrow(/\[cpu-access-device-owned\] CPU read 1 bytes .* the CPU may touch a DMA_FROM_DEVICE buffer only after dma_sync_\*_for_cpu or unmap/);
        expect(() => expect(machine).toHaveNoDmaLeaks()).toThrow(/\[leaked-mapping\] mapping still live after 0000:01:00.0 was unbound at t=0 ns: dma_map_single\(DMA_FROM_DEVICE\) of 2048 bytes/);
      }
    });
  }
});
