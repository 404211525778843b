/**
 * The device-side DMA engine on its own (device/dma-engine.ts): with no IOMMU a device reaches RAM
 * directly, up to its mask and never into a hole; bytes move both ways; segment lists split a
 * buffer; faults are results (with the hook told), and bad arguments are EINVAL.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, KernelError, Machine } from '../../src/index.ts';

function rig(dmaMask = 64, memory: ConstructorParameters<typeof Machine>[0]['memory'] = '64M') {
  const m = new Machine({ memory, accessChecks: false, dmaDebug: false });
  const dev = m.pci.addDevice({ name: '0000:07:00.0', dmaMask });
  return { m, dev };
}

describe('DmaEngine (dma-direct translation)', () => {
  it('writes and reads RAM at the bus address, counting bytes', () => {
    const { m, dev } = rig();
    expect(dev.dma.write(0x200000, new Uint8Array([1, 2, 3]))).toEqual({ ok: true, value: 3 });
    expect([...m.mm.readPhys(0x200000, 3)]).toEqual([1, 2, 3]);
    const r = dev.dma.read(0x200001, 2);
    expect(r.ok && [...r.value]).toEqual([2, 3]);
    expect([dev.dma.bytesWritten, dev.dma.bytesRead]).toEqual([3, 2]);
  });

  it('faults past the device mask and in a hole of the physical map, and tells the fault hook', () => {
    const { dev } = rig(24, [{ start: 0, size: '8M' }, { start: '32M', size: '32M' }]);
    const seen: string[] = [];
    dev.dma.onFault = (f) => seen.push(f.reason);
    const beyond = dev.dma.read(0x1000000, 4);           // 16 MiB: past a 24-bit mask
    expect(beyond.ok === false && beyond.fault.reason).toBe('beyond-mask');
    const hole = dev.dma.write(0x900000, new Uint8Array(4)); // 9 MiB: between the RAM ranges
    expect(hole.ok === false && hole.fault.reason).toBe('not-ram');
    expect(seen).toEqual(['beyond-mask', 'not-ram']);
  });

  it('segment lists: a buffer written across segments reads back whole', () => {
    const { dev } = rig();
    const segs = [{ addr: 0x300000, length: 3 }, { addr: 0x100000, length: 5 }];
    const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(dev.dma.writeSegments(segs, bytes)).toEqual({ ok: true, value: 8 });
    const back = dev.dma.readSegments(segs);
    expect(back.ok && [...back.value]).toEqual([...bytes]);
  });

  it('refuses bad arguments with EINVAL naming them', () => {
    const { dev } = rig();
    for (const [call, arg] of [
      [() => dev.dma.read(-2, 4), 'addr'],   // -1 is DMA_MAPPING_ERROR: a fault, not bad input
      [() => dev.dma.read(0x1000, 2 ** 33), 'length'],
      [() => dev.dma.write(0x1000, [1, 2] as never), 'bytes'],
    ] as const) {
      try {
        call();
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).errno).toBe(EINVAL);
        expect((e as KernelError).arg).toBe(arg);
      }
    }
  });
});

describe('readInto and readSegmentsInto: reads into the caller\'s buffer', () => {
  it('the same bytes as read, at the offset asked, through direct and IOMMU translation; faults stop the gather', async () => {
    const { Machine: M, GFP_KERNEL: G, DMA_BIDIRECTIONAL: BI, dma_map_phys: map } = await import('../../src/index.ts');
    for (const opts of [{}, { iommu: { mode: 'strict' as const } }]) {
      const m = new M({ memory: '64M', ...opts });
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
      const pfn = m.mm.alloc_pages(G, 1) as number;
      m.mm.writePhys(pfn * 4096 + 4090, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
      const addr = map(dev, pfn * 4096, 8192, BI, 0);
      const buf = new Uint8Array(14).fill(0xee);
      expect(dev.dma.readInto(addr + 4090, buf, 4)).toEqual({ ok: true, value: 10 });
      expect(Array.from(buf)).toEqual([0xee, 0xee, 0xee, 0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const g = new Uint8Array(6);
      expect(dev.dma.readSegmentsInto([{ addr: addr + 4090, length: 3 }, { addr: addr + 4097, length: 10 }], g)).toEqual({ ok: true, value: 6 });
      expect(Array.from(g)).toEqual([1, 2, 3, 8, 9, 10]);
      // A segment past the mapping faults: the gather stops there with the fault.
      const bad = dev.dma.readSegmentsInto([{ addr: addr + 4090, length: 3 }, { addr: m.iommu === null ? 2 ** 40 : addr + 2 ** 30, length: 4 }], new Uint8Array(8));
      expect(bad.ok).toBe(false);
      expect(() => dev.dma.readInto(addr, new Uint8Array(4), 5)).toThrow(expect.objectContaining({ arg: 'dstOff' }) as Error);
      expect(() => dev.dma.readInto(addr, [] as unknown as Uint8Array)).toThrow(expect.objectContaining({ arg: 'dst' }) as Error);
    }
  });
});
