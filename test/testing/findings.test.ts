/**
 * Every finding kind and every matcher, planted and fixed, in every backend: a check that cannot
 * fail is a defect, and so is one that fires on a correct driver.
 */
import { describe, expect, it } from 'vitest';
import { dmaFindings, forEachFailurePoint, installDmasimMatchers, type DmaFindingKind } from '../../src/testing/index.ts';
import { EINVAL, FINDINGS_MAX, KernelError } from '../../src/index.ts';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, DMA_MAPPING_ERROR, GFP_KERNEL, Machine, SgTable, type Core, type Device,
  type MachineOptions, dma_alloc_coherent, dma_free_coherent, dma_map_sgtable, dma_map_single, dma_mapping_error, dma_sync_sgtable_for_cpu,
  dma_sync_sgtable_for_device, dma_sync_single_for_cpu, dma_sync_single_for_device, dma_unmap_sgtable, dma_unmap_single,
  sg_alloc_table_from_pages_segment, sg_free_table, sg_next,
} from '../../src/index.ts';

installDmasimMatchers(expect);

const BACKENDS: Record<string, Partial<MachineOptions>> = {
  direct: { swiotlb: false },
  swiotlb: { swiotlb: { force: true } },
  'iommu-strict': { iommu: { mode: 'strict' } },
  'iommu-lazy': { iommu: { mode: 'lazy' } },
  'iommu-strict-vtd': { iommu: { mode: 'strict', format: 'vtd' } },
  passthrough: { iommu: { mode: 'passthrough' } },
};

function machine(backend: string, extra: Partial<MachineOptions> = {}): Machine {
  return new Machine({ memory: '1G', ...BACKENDS[backend], ...extra });
}

/** A bound PCI device (probe does nothing): driver code runs in the test body. */
function boundDevice(m: Machine, name = '0000:01:00.0', opts: { iommuGroup?: number } = {}): Device {
  const dev = m.pci.addDevice({ name, dmaMask: 64, coherentDmaMask: 64, ...opts });
  expect(m.pci.bind(dev, { name: 'drv', probe() {} })).toBe(0);
  return dev;
}

/** A page-aligned kmalloc'd 4 KiB buffer: its direct-map address and physical address. */
function buffer(m: Machine): { virt: number; phys: number } {
  const virt = m.mm.kmalloc(4096) as number;
  return { virt, phys: m.mm.virt_to_phys(virt) };
}

/** dma_map_single plus the dma_mapping_error check dma-debug insists on. */
function mapChecked(dev: Device, virt: number, size: number, dir: number): number {
  const addr = dma_map_single(dev, virt, size, dir);
  expect(dma_mapping_error(dev, addr)).toBe(0);
  return addr;
}

const kinds = (m: Machine, opts = {}): DmaFindingKind[] => dmaFindings(m, { audit: false, ...opts }).map((f) => f.kind);

describe.each(Object.keys(BACKENDS))('findings on %s', (backend) => {
  it('leaked-mapping: a streaming mapping left at unbind fails toHaveNoDmaLeaks, naming dma_map_single; the fixed driver passes', () => {
    for (const dmaDebug of [true, false]) {
      const m = machine(backend, { dmaDebug });
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
      let addr = 0;
      const buf = buffer(m);
      m.pci.bind(dev, { name: 'leaky', probe(d: Device<Core>) { addr = mapChecked(d, buf.virt, 4096, DMA_FROM_DEVICE); } });
      expect(addr).not.toBe(DMA_MAPPING_ERROR);
      m.pci.unbind(dev);
      expect(kinds(m)).toContain('leaked-mapping');
      expect(() => expect(m).toHaveNoDmaLeaks()).toThrow(/leaked-mapping.*dma_map_single\(DMA_FROM_DEVICE\) of 4096 bytes/);

      const ok = machine(backend, { dmaDebug });
      const dev2 = ok.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
      const buf2 = buffer(ok);
      let a2 = 0;
      ok.pci.bind(dev2, {
        name: 'fixed',
        probe(d: Device<Core>) { a2 = mapChecked(d, buf2.virt, 4096, DMA_FROM_DEVICE); },
        remove(d: Device<Core>) { dma_unmap_single(d, a2, 4096, DMA_FROM_DEVICE); },
      });
      ok.pci.unbind(dev2);
      expect(ok).toHaveNoDmaLeaks();
    }
  });

  it('leaked-coherent: a coherent buffer left at unbind; live entries of a bound device only with { live: true }', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const buf = dma_alloc_coherent(dev, 8192, GFP_KERNEL);
    expect(buf).not.toBeNull();
    expect(m).toHaveNoDmaLeaks();
    expect(() => expect(m).toHaveNoDmaLeaks({ live: true })).toThrow(/leaked-coherent.*dma_alloc_coherent of 8192 bytes/);
    m.pci.unbind(dev);
    // dma-debug reports the same leak at unbind ("device driver has pending DMA allocations").
    expect(kinds(m)).toEqual(['leaked-coherent', 'dma-debug']);
    dma_free_coherent(dev, 8192, buf!);
    expect(kinds(m, { live: true, kinds: ['leaked-coherent'] })).toEqual([]);
  });

  it('access-direction: the device writes a DMA_TO_DEVICE mapping or reads a DMA_FROM_DEVICE one', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const to = mapChecked(dev, virt, 4096, DMA_TO_DEVICE);
    expect(dev.dma.read(to, 64).ok).toBe(true);
    expect(m).toHaveNoDeviceAccessViolations();
    dev.dma.write(to, new Uint8Array(64));
    expect(kinds(m)).toEqual(['access-direction']);
    expect(() => expect(m).toHaveNoDeviceAccessViolations()).toThrow(/DMA_TO_DEVICE mapping lets the device only read|refused the access direction/);
    dma_unmap_single(dev, to, 4096, DMA_TO_DEVICE);
    m.dma.ledger.findings.clear();
    const from = mapChecked(dev, virt, 4096, DMA_FROM_DEVICE);
    expect(dev.dma.write(from, new Uint8Array(64)).ok).toBe(true);
    expect(m).toHaveNoDeviceAccessViolations();
    dev.dma.read(from, 16);
    expect(kinds(m)).toEqual(['access-direction']);
    dma_unmap_single(dev, from, 4096, DMA_FROM_DEVICE);
  });

  it('access-unmapped: the device writes past the end of its mapping', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const addr = mapChecked(dev, virt, 2048, DMA_FROM_DEVICE);
    expect(dev.dma.write(addr, new Uint8Array(2048)).ok).toBe(true);
    expect(m).toHaveNoDeviceAccessViolations();
    dev.dma.write(addr + 2048, new Uint8Array(16));
    expect(kinds(m)).toEqual(['access-unmapped']);
    expect(() => expect(m).toHaveNoDeviceAccessViolations()).toThrow(/no live mapping of 0000:01:00.0 covers/);
    dma_unmap_single(dev, addr, 2048, DMA_FROM_DEVICE);
  });

  it('access-after-unmap: the device completes after the driver unmapped, naming the unmap', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_FROM_DEVICE);
    expect(dev.dma.write(addr, new Uint8Array(8)).ok).toBe(true); // fills the IOTLB in lazy mode
    dma_unmap_single(dev, addr, 4096, DMA_FROM_DEVICE);
    dev.dma.write(addr, new Uint8Array(8));
    const f = dmaFindings(m, { audit: false });
    expect(f.map((x) => x.kind)).toEqual(['access-after-unmap']);
    expect(f[0]?.message).toMatch(/unmapped by dma_unmap_single at t=\d+ ns \(dma_map_single\(DMA_FROM_DEVICE\)/);
  });

  it('access-other-device: a device reaches bytes another device has mapped', () => {
    const m = machine(backend);
    // Behind an IOMMU only devices sharing a group (one domain) can reach each other's IOVAs.
    const a = boundDevice(m, '0000:01:00.0', { iommuGroup: 7 });
    const b = m.pci.addDevice({ name: '0000:02:00.0', dmaMask: 64, iommuGroup: 7 });
    m.pci.bind(b, { name: 'other', probe() {} });
    const { virt } = buffer(m);
    const addr = mapChecked(a, virt, 4096, DMA_FROM_DEVICE);
    expect(a.dma.write(addr, new Uint8Array(8)).ok).toBe(true);
    b.dma.write(addr, new Uint8Array(8));
    const f = dmaFindings(m, { audit: false });
    expect(f.map((x) => x.kind)).toEqual(['access-other-device']);
    expect(f[0]?.device).toBe('0000:02:00.0');
    expect(f[0]?.message).toMatch(/belong to 0000:01:00.0's mapping: dma_map_single/);
    dma_unmap_single(a, addr, 4096, DMA_FROM_DEVICE);
  });

  it('cpu-access-device-owned: the CPU reads a DMA_FROM_DEVICE buffer before sync_for_cpu; the synced driver passes', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt, phys } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_FROM_DEVICE);
    dev.dma.write(addr, new Uint8Array(4096).fill(7));
    m.mm.readPhys(phys, 64);
    expect(kinds(m)).toEqual(['cpu-access-device-owned']);
    expect(() => expect(m).toHaveNoDeviceAccessViolations()).toThrow(/CPU read 64 bytes at phys .* while 0000:01:00.0 owns them/);
    m.dma.ledger.findings.clear();
    dma_sync_single_for_cpu(dev, addr, 4096, DMA_FROM_DEVICE);
    expect(m.mm.readPhys(phys, 64)).toEqual(new Uint8Array(64).fill(7));
    dma_sync_single_for_device(dev, addr, 4096, DMA_FROM_DEVICE);
    expect(m).toHaveNoDeviceAccessViolations();
    m.mm.writePhys(phys, new Uint8Array(4));
    expect(kinds(m)).toEqual(['cpu-access-device-owned']);
    m.dma.ledger.findings.clear();
    dma_unmap_single(dev, addr, 4096, DMA_FROM_DEVICE);
    m.mm.readPhys(phys, 4096);
    expect(m).toHaveNoDeviceAccessViolations();
  });

  it('cpu-access-device-owned: DMA_TO_DEVICE may be read but not written while mapped; a partial sync hands back only its bytes', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt, phys } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_TO_DEVICE);
    m.mm.readPhys(phys, 4096);
    expect(m).toHaveNoDeviceAccessViolations();
    m.mm.writePhys(phys + 100, new Uint8Array(4));
    expect(kinds(m)).toEqual(['cpu-access-device-owned']);
    m.dma.ledger.findings.clear();
    dma_unmap_single(dev, addr, 4096, DMA_TO_DEVICE);

    const b = mapChecked(dev, virt, 4096, DMA_BIDIRECTIONAL);
    dma_sync_single_for_cpu(dev, b + 512, 512, DMA_BIDIRECTIONAL);
    m.mm.readPhys(phys + 512, 512);
    expect(m).toHaveNoDeviceAccessViolations();
    m.mm.readPhys(phys + 1024, 16);
    expect(kinds(m)).toEqual(['cpu-access-device-owned']);
    dma_unmap_single(dev, b, 4096, DMA_BIDIRECTIONAL);
  });

  it('a device access to bytes the driver synced for the CPU (and did not give back) is access-unmapped', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_FROM_DEVICE);
    dma_sync_single_for_cpu(dev, addr + 1024, 1024, DMA_FROM_DEVICE);
    expect(dev.dma.write(addr, new Uint8Array(1024)).ok).toBe(true);
    expect(m).toHaveNoDeviceAccessViolations();
    dev.dma.write(addr + 1500, new Uint8Array(8));
    const f = dmaFindings(m, { audit: false });
    expect(f.map((x) => x.kind)).toEqual(['access-unmapped']);
    expect(f[0]?.message).toMatch(/gave to the CPU \(dma_sync_\*_for_cpu\) and has not given back/);
    m.dma.ledger.findings.clear();
    dma_sync_single_for_device(dev, addr + 1024, 1024, DMA_FROM_DEVICE);
    dev.dma.write(addr + 1500, new Uint8Array(8));
    expect(m).toHaveNoDeviceAccessViolations();
    dma_unmap_single(dev, addr, 4096, DMA_FROM_DEVICE);
  });

  it('dma_sync_single on one segment of a scatterlist hands over that segment\'s bytes only (whole list when segments were merged)', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 2)!;
    const sgt = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(sgt, [pfn, pfn + 2], 2, 0, 8192, 65536, GFP_KERNEL)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_FROM_DEVICE)).toBe(0);
    const second = sg_next(sgt.sgl!)!;
    const merged = sgt.nents < 2;
    dma_sync_single_for_cpu(dev, merged ? sgt.sgl!.dma_address + 4096 : second.dma_address, 4096, DMA_FROM_DEVICE);
    m.mm.readPhys((pfn + 2) * 4096, 64);
    expect(m).toHaveNoDeviceAccessViolations();
    m.mm.readPhys(pfn * 4096, 64);
    expect(kinds(m)).toEqual(merged ? [] : ['cpu-access-device-owned']);
    dma_unmap_sgtable(dev, sgt, DMA_FROM_DEVICE);
    sg_free_table(sgt);
  });

  it('one buffer mapped twice: syncing both hands the buffer to the CPU', () => {
    const m = machine(backend, { dmaDebug: false });
    const dev = boundDevice(m);
    const { virt, phys } = buffer(m);
    const a1 = dma_map_single(dev, virt, 4096, DMA_TO_DEVICE);
    const a2 = dma_map_single(dev, virt, 4096, DMA_TO_DEVICE);
    dma_sync_single_for_cpu(dev, a1, 4096, DMA_TO_DEVICE);
    dma_sync_single_for_cpu(dev, a2, 4096, DMA_TO_DEVICE);
    m.mm.writePhys(phys, new Uint8Array(8));
    expect(m).toHaveNoDeviceAccessViolations();
    dma_unmap_single(dev, a1, 4096, DMA_TO_DEVICE);
    dma_unmap_single(dev, a2, 4096, DMA_TO_DEVICE);
    m.pci.unbind(dev);
    expect(m).toHaveNoDmaLeaks();
  });

  it('an overrun within the mapped page is access-unmapped naming the mapping it ran out of, in every backend', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const addr = mapChecked(dev, virt, 100, DMA_TO_DEVICE);
    dev.dma.read(addr + 64, 64);
    const f = dmaFindings(m, { audit: false });
    expect(f.map((x) => x.kind)).toEqual(['access-unmapped']);
    expect(f[0]?.message).toMatch(/runs outside dma_map_single\(DMA_TO_DEVICE\) of 100 bytes/);
    dma_unmap_single(dev, addr, 100, DMA_TO_DEVICE);
  });

  it('a mapping left by a failed probe stays a leak after a later probe succeeds', () => {
    const m = machine(backend);
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    const { virt } = buffer(m);
    expect(m.pci.bind(dev, { name: 'deferred', probe(d: Device<Core>) { mapChecked(d, virt, 64, DMA_TO_DEVICE); return -517; } })).toBe(-517);
    expect(m.pci.bind(dev, { name: 'deferred', probe() {} })).toBe(0);
    expect(() => expect(m).toHaveNoDmaLeaks()).toThrow(/still live after 0000:01:00.0 was unbound/);
  });

  it('cpu-access-device-owned on a scatterlist (vmalloc area, sg copy path); coherent memory is exempt', () => {
    const m = machine(backend);
    const dev = boundDevice(m);
    const area = m.mm.vmalloc(64 * 1024)!;
    const sgt = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_FROM_DEVICE)).toBe(0);
    area.read(0, 100);
    expect(kinds(m)).toEqual(['cpu-access-device-owned']);
    m.dma.ledger.findings.clear();
    dma_sync_sgtable_for_cpu(dev, sgt, DMA_FROM_DEVICE);
    area.read(0, 64 * 1024);
    expect(m).toHaveNoDeviceAccessViolations();
    dma_sync_sgtable_for_device(dev, sgt, DMA_FROM_DEVICE);
    area.write(4096, new Uint8Array(8));
    expect(kinds(m)).toEqual(['cpu-access-device-owned']);
    m.dma.ledger.findings.clear();
    dma_unmap_sgtable(dev, sgt, DMA_FROM_DEVICE);
    sg_free_table(sgt);
    m.mm.vfree(area);

    const c = dma_alloc_coherent(dev, 4096, GFP_KERNEL)!;
    expect(dev.dma.write(c.dma_handle, new Uint8Array(16)).ok).toBe(true);
    expect(dev.dma.read(c.dma_handle, 16).ok).toBe(true);
    const cphys = m.mm.findVmArea(c.cpu_addr)?.physOf(c.cpu_addr - m.mm.findVmArea(c.cpu_addr)!.addr) ?? m.mm.virt_to_phys(c.cpu_addr);
    m.mm.writePhys(cphys, new Uint8Array(16));
    expect(m).toHaveNoDeviceAccessViolations();
    dma_free_coherent(dev, 4096, c);
    m.pci.unbind(dev);
    expect(m).toHaveNoDmaLeaks();
  });
});

describe('dma-debug, WARN and audit findings; the bounded log; failure sweeps see ledger leaks', () => {
  it('toHaveNoDmaDebugErrors counts errors dma-debug did not print (driver filter), and passes a correct driver', () => {
    const m = new Machine({ memory: '1G', dmaDebug: { driverFilter: 'someone-else' } });
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_TO_DEVICE);
    expect(m).toHaveNoDmaDebugErrors();
    dma_unmap_single(dev, addr, 2048, DMA_TO_DEVICE); // wrong size: a dma-debug error, filtered from dmesg
    expect(m.klog.warnings()).toEqual([]);
    expect(m.dmaDebug?.error_count).toBe(1);
    expect(kinds(m)).toEqual(['dma-debug']);
    expect(() => expect(m).toHaveNoDmaDebugErrors()).toThrow(/\[dma-debug\] DMA-API: drv 0000:01:00.0: device driver frees DMA memory with different size/);
  });

  it('a printed dma-debug error is listed once (as dma-debug, not again as warn); other WARNs are warn findings', () => {
    const m = new Machine({ memory: '1G' });
    const dev = boundDevice(m);
    const { virt } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_TO_DEVICE);
    dma_unmap_single(dev, addr, 2048, DMA_TO_DEVICE);
    expect(kinds(m)).toEqual(['dma-debug']);
    const sgt = new SgTable(m);
    sg_alloc_table_from_pages_segment(sgt, [1, 2], 2, 0, 8192, 512, GFP_KERNEL); // max_segment < PAGE_SIZE: WARN, -EINVAL
    expect(kinds(m)).toEqual(['dma-debug', 'warn']);
    expect(() => expect(m).toHaveNoDmaDebugErrors()).toThrow(/\[warn\] WARN in sg_alloc_append_table_from_pages/);
  });

  it('audit violations fail toHaveNoDmaLeaks', () => {
    const m = new Machine({ memory: '64M' });
    m.mm.alloc_pages(GFP_KERNEL, 0);
    m.mm.meta.owner.fill(0);
    expect(kinds(m, { audit: true })).toContain('audit');
    expect(() => expect(m).toHaveNoDmaLeaks()).toThrow(/\[audit\]/);
  });

  it('the access log keeps the newest findings and counts the dropped ones per kind, which still fail the matcher', () => {
    const m = new Machine({ memory: '64M', dmaDebug: false });
    const dev = boundDevice(m);
    for (let i = 0; i < FINDINGS_MAX + 10; i++) dev.dma.read(0x100000, 4);
    expect(m.dma.ledger.findings.list().length).toBeLessThanOrEqual(FINDINGS_MAX);
    expect(m.dma.ledger.findings.dropped.get('access-unmapped')).toBeGreaterThan(0);
    const f = dmaFindings(m, { audit: false });
    expect(f.at(-1)?.message).toMatch(/older access-unmapped findings were dropped/);
    expect(() => expect(m).toHaveNoDeviceAccessViolations()).toThrow();
  });

  it('turning the checks off (accessChecks: false) keeps the ledger: leaks are still found', () => {
    const m = new Machine({ memory: '64M', accessChecks: false });
    const dev = boundDevice(m);
    const { virt, phys } = buffer(m);
    const addr = mapChecked(dev, virt, 4096, DMA_TO_DEVICE);
    dev.dma.write(addr + 8192, new Uint8Array(4));
    m.mm.writePhys(phys, new Uint8Array(4));
    expect(m).toHaveNoDeviceAccessViolations();
    m.pci.unbind(dev);
    expect(() => expect(m).toHaveNoDmaLeaks()).toThrow(/leaked-mapping/);
  });

  it('a rebound device: the first binding\'s leaked mapping stays a leak', () => {
    const m = new Machine({ memory: '64M' });
    const dev = boundDevice(m);
    mapChecked(dev, buffer(m).virt, 4096, DMA_TO_DEVICE);
    m.pci.unbind(dev);
    m.pci.bind(dev, { name: 'drv2', probe() {} });
    expect(kinds(m, { kinds: ['leaked-mapping'] })).toEqual(['leaked-mapping']);
  });

  it('forEachFailurePoint reports a mapping the operation left live', () => {
    const runs = forEachFailurePoint('page', () => ({ machine: new Machine({ memory: '64M' }) }), ({ machine }) => {
      const dev = machine.pci.devices.get('leaky') ?? machine.pci.addDevice({ name: 'leaky', dmaMask: 64 });
      const virt = machine.mm.kmalloc(4096);
      if (virt === null) return null;
      return dma_map_single(dev, virt, 4096, DMA_TO_DEVICE);
    });
    // The mapping, and the buffer under it (no cleanup undoes the success).
    expect(runs.at(-1)?.violations.map((v) => v.check)).toEqual(['ledger', 'leak']);
    expect(runs.at(-1)?.violations[1]?.message).toMatch(/^left allocated: 1 kmalloc buffer \(4096 bytes at 0x[0-9a-f]+\) that the operation and cleanup did not free$/);
  });
});

describe('bad input to the new entry points', () => {
  it('dmaFindings and the matchers: EINVAL naming the argument', () => {
    const m = new Machine({ memory: '64M' });
    const errOf = (f: () => unknown) => { try { f(); } catch (e) { return e; } return undefined; };
    for (const [call, arg] of [
      [() => dmaFindings({} as Machine), 'machine'],
      [() => dmaFindings(null as unknown as Machine), 'machine'],
      [() => dmaFindings(m, null as unknown as object), 'opts'],
      [() => dmaFindings(m, { live: 'yes' as unknown as boolean }), 'opts.live'],
      [() => dmaFindings(m, { kinds: ['leaked'] as unknown as DmaFindingKind[] }), 'opts.kinds'],
      [() => expect({}).toHaveNoDmaLeaks(), 'received'],
      [() => new Machine({ memory: '64M', accessChecks: 1 as unknown as boolean }), 'accessChecks'],
    ] as const) {
      const e = errOf(call as () => unknown);
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).errno).toBe(EINVAL);
      expect((e as KernelError).arg).toBe(arg);
    }
  });
});

describe('a stale write into a buffer another device mapped since', () => {
  it('is access-after-unmap and names the device whose live buffer it hit (dma-direct)', () => {
    const m = new Machine({ memory: '64M', dmaDebug: false });
    const a = boundDevice(m, '0000:01:00.0');
    const b = boundDevice(m, '0000:02:00.0');
    const virt = m.mm.kmalloc(4096)!;
    const addr = dma_map_single(a, virt, 4096, DMA_FROM_DEVICE);
    dma_unmap_single(a, addr, 4096, DMA_FROM_DEVICE);
    const again = dma_map_single(b, virt, 4096, DMA_FROM_DEVICE);
    expect(again).toBe(addr);
    a.dma.write(addr, new Uint8Array(8));
    const f = dmaFindings(m, { audit: false });
    expect(f.map((x) => x.kind)).toEqual(['access-after-unmap']);
    expect(f[0]?.message).toMatch(/the bytes now belong to 0000:02:00.0's mapping: dma_map_single\(DMA_FROM_DEVICE\)/);
  });
});
