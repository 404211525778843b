import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  DMA_FROM_DEVICE, DMA_TO_DEVICE, DMA_NONE, EINVAL, GFP_KERNEL, KernelError, Machine, OwnedSGTable, SGTable, VVec, type Core, type Device,
} from '../../src/index.ts';

function rig(iommu: 'lazy' | 'strict' | false = 'lazy') {
  const m = new Machine({ memory: '8G', fragment: { level: 0.7 }, ...(iommu === false ? {} : { iommu: { mode: iommu } }) });
  const dev = m.pci.addDevice({ name: '0000:04:00.0', dmaMask: 64 });
  let core: Device<Core> | undefined;
  m.pci.bind(dev, { name: 'sgdrv', probe(d) { core = d; } });
  return { m, dev, core: core as Device<Core> };
}

describe('SGTable<Owned>', () => {
  it('builds from a vmalloc buffer, maps it, and iterates DMA segments bounded by nents', () => {
    const { m, core } = rig();
    const buf = VVec.create(m.mm, 1 << 20);
    const table = SGTable.create(core, buf, DMA_TO_DEVICE, GFP_KERNEL);
    expectTypeOf(table).toEqualTypeOf<OwnedSGTable<VVec>>();
    const segs = [...table.iter()];
    expect(segs.length).toBe(table.nents);
    expect(table.nents).toBeLessThan(table.origNents); // the IOMMU merged the 8-page runs
    expect(segs.reduce((n, s) => n + s.dmaLen(), 0)).toBe(1 << 20);
    table[Symbol.dispose]();
    expect(buf.live).toBe(false);
    expect(m.audit()).toEqual([]);
    expect(m.dmaDebug?.error_count).toBe(0);
  });

  it('using unwinds in order: unmap, free the entries, free the pages', () => {
    const { m, core } = rig('strict');
    const used = (): number => m.mm.allocatedPages - (m.iommu?.tablePagesInUse ?? 0); // page tables stay
    const before = used();
    {
      using table = SGTable.create(core, VVec.create(m.mm, 64 * 1024), DMA_TO_DEVICE, GFP_KERNEL);
      expect(table.mapped).toBe(true);
    }
    expect(used()).toBe(before);
    expect(m.audit()).toEqual([]);
  });

  it('unbind with a live table: the mapping is gone, the IOVA is back, no leak is reported, access is refused; dispose after does not unmap twice', () => {
    const { m, dev, core } = rig('strict');
    const table = SGTable.create(core, VVec.create(m.mm, 256 * 1024), DMA_TO_DEVICE, GFP_KERNEL);
    const first = [...table.iter()][0]!.dmaAddress();
    expect(dev.dma.read(first, 16).ok).toBe(true);
    m.pci.unbind(dev);
    expect(table.mapped).toBe(false);
    expect(() => [...table.iter()]).toThrow(/revoked when the device was unbound/);
    expect(dev.dma.read(first, 16).ok).toBe(false);
    expect(m.dmaDebug?.reports.some((r) => r.text.includes('leaked'))).toBe(false);
    table[Symbol.dispose]();
    table[Symbol.dispose]();
    expect(m.dmaDebug?.error_count).toBe(0);
    expect(m.audit()).toEqual([]);
  });

  it('max_segment comes from dma_max_mapping_size: 256 KiB entries on a swiotlb=force machine', () => {
    const m = new Machine({ memory: '8G', swiotlb: { force: true } });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    let core: Device<Core> | undefined;
    m.pci.bind(dev, { name: 'v', probe(d) { core = d; } });
    const t = SGTable.create(core!, VVec.create(m.mm, 1 << 20), DMA_TO_DEVICE, GFP_KERNEL);
    expect([...t.entries()].every((e) => e.length() <= 256 * 1024)).toBe(true);
    t[Symbol.dispose]();
    expect(m.audit()).toEqual([]);
  });

  it('refuses an empty provider, a bad direction, and an unbound device; a failed build leaves nothing behind', () => {
    const { m, dev, core } = rig();
    const empty = { pageIter: () => ({ size: 0, pageCount: 0, pfns: () => new Uint32Array(0) }) };
    try {
      SGTable.create(core, empty, DMA_TO_DEVICE, GFP_KERNEL);
      expect.unreachable();
    } catch (e) {
      expect((e as KernelError).errno).toBe(EINVAL);
    }
    expect(() => SGTable.create(core, VVec.create(m.mm, 4096), DMA_NONE as typeof DMA_TO_DEVICE, GFP_KERNEL)).toThrow(/direction/);
    const before = m.mm.allocatedPages;
    m.faults.inject('sg-chunk', { nth: 1 });
    const buf = VVec.create(m.mm, 8192);
    expect(() => SGTable.create(core, buf, DMA_TO_DEVICE, GFP_KERNEL)).toThrow(KernelError);
    buf[Symbol.dispose]();
    expect(m.mm.allocatedPages).toBe(before);
    m.pci.unbind(dev);
    // @ts-expect-error a plain (unbound) device reference cannot create a table
    expect(() => SGTable.create(dev, VVec.create(m.mm, 4096), DMA_TO_DEVICE, GFP_KERNEL)).toThrow(/not bound/);
  });

  it('a borrowed view has no dispose; an owned one cannot be built without a bound device type', () => {
    expectTypeOf<SGTable>().not.toHaveProperty(Symbol.dispose);
    expectTypeOf<OwnedSGTable<VVec>>().toHaveProperty(Symbol.dispose);
  });
});

describe('SGTable<Owned>: syncForCpu / syncForDevice (the ownership hand-over without unmapping)', () => {
  for (const [name, opts] of [
    ['dma-direct + swiotlb=force', { swiotlb: { size: '4M', force: true } }],
    ['strict IOMMU', { iommu: { mode: 'strict' } }],
  ] as const) {
    it(`${name}: the CPU reads what the device wrote only after syncForCpu; reading before is a finding`, () => {
      const m = new Machine({ memory: '256M', ...opts });
      const dev = m.pci.addDevice({ name: '0000:04:00.0', dmaMask: 64 });
      let core: Device<Core> | undefined;
      m.pci.bind(dev, { name: 'rx', probe(d) { core = d; } });
      const buf = VVec.create(m.mm, 8192);
      using table = SGTable.create(core as Device<Core>, buf, DMA_FROM_DEVICE, GFP_KERNEL);
      expect(table.direction).toBe(DMA_FROM_DEVICE);
      const seg = [...table.iter()][0]!;
      expect(dev.dma.write(seg.dmaAddress(), new Uint8Array([0xab, 0xcd])).ok).toBe(true);
      // The planted bug: a CPU read while the device owns the buffer.
      buf.read(0, 2);
      expect(m.dma.ledger.findings.list().map((f) => f.kind)).toEqual(['cpu-access-device-owned']);
      table.syncForCpu();
      expect([...buf.read(0, 2)]).toEqual([0xab, 0xcd]);
      expect(m.dma.ledger.findings.list().length).toBe(1); // the correct read adds nothing
      table.syncForDevice();
      expect(dev.dma.write(seg.dmaAddress(), new Uint8Array([0x11])).ok).toBe(true);
      table.syncForCpu();
      expect(buf.read(0, 1)[0]).toBe(0x11);
      expect(m.dmaDebug?.error_count).toBe(0);
    });
  }

  it('after unbind revoked the mapping, a sync is EINVAL (the addresses are stale) and changes nothing', () => {
    const { m, dev, core } = rig('strict');
    const table = SGTable.create(core, VVec.create(m.mm, 4096), DMA_FROM_DEVICE, GFP_KERNEL);
    m.pci.unbind(dev);
    for (const sync of [() => table.syncForCpu(), () => table.syncForDevice()]) {
      try {
        sync();
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).errno).toBe(EINVAL);
        expect((e as KernelError).message).toMatch(/revoked when the device was unbound/);
      }
    }
    table[Symbol.dispose]();
    expect(m.audit()).toEqual([]);
  });
});
