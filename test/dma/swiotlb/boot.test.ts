/**
 * swiotlb at boot (dma/swiotlb/boot.ts, through the Machine): the kernel's swiotlb= parameter with
 * its rounding and messages, areas from the CPU count, and the swiotlb_bounced tracepoint.
 */
import { describe, expect, it } from 'vitest';
import { DMA_TO_DEVICE, EINVAL, GFP_KERNEL, KernelError, Machine, dma_map_page_attrs, dma_unmap_page_attrs } from '../../../src/index.ts';
import { parseSwiotlbParam } from '../../../src/dma/swiotlb/boot.ts';

const info = (m: Machine): string[] => m.klog.messages.filter((x) => x.fn.startsWith('swiotlb')).map((x) => x.message);

describe('swiotlb= (the kernel parameter)', () => {
  // The reference's worked cases: 0 → 128 × areas; 130 → 256; 100,4 → 512; 2048,0 → one area.
  for (const [param, cpus, nslabs, nareas] of [
    ['0', 1, 128, 1], ['130', 2, 256, 2], ['100,4', 2, 512, 4], ['2048,0', 8, 2048, 1], ['3,3', 1, 512, 4], ['0x800,force', 2, 2048, 2],
  ] as const) {
    it(`swiotlb=${param} with ${cpus} CPU(s): ${nslabs} slots in ${nareas} areas`, () => {
      const m = new Machine({ memory: '8G', cpus, swiotlb: param });
      expect(m.swiotlb?.nslabs).toBe(nslabs);
      expect(m.swiotlb?.nareas).toBe(nareas);
      expect(info(m)).toContain(`software IO TLB: area num ${nareas}.\n`);
      expect(m.swiotlbForce).toBe(param.endsWith('force'));
    });
  }

  it('prints the roundup (in MiB, no newline) only when the slot count changed', () => {
    const m = new Machine({ memory: '8G', cpus: 2, swiotlb: '100,4' });
    expect(info(m)).toEqual([
      'software IO TLB: area num 4.\n',
      'software IO TLB: SWIOTLB bounce buffer size roundup to 1MB',
      expect.stringMatching(/^software IO TLB: mapped \[mem 0x[0-9a-f]{16}-0x[0-9a-f]{16}\] \(1MB\)\n$/),
    ]);
    expect(info(new Machine({ memory: '8G', cpus: 2, swiotlb: '2048,2' })).some((l) => l.includes('roundup'))).toBe(false);
  });

  it('noforce: no pool, even on a machine that would want one; force: a pool on a small machine', () => {
    expect(new Machine({ memory: '8G', swiotlb: 'noforce' }).swiotlb).toBeNull();
    expect(new Machine({ memory: '1G', swiotlb: '1024' }).swiotlb).toBeNull(); // nothing needs it
    const forced = new Machine({ memory: '1G', swiotlb: '1024,force' });
    expect(forced.swiotlb?.nslabs).toBe(1024);
    expect(forced.swiotlbForce).toBe(true);
  });

  it('text the kernel would not read is EINVAL naming swiotlb', () => {
    for (const bad of ['lots', '1,2,3', 'force,1', '']) {
      try {
        parseSwiotlbParam(bad);
        expect.unreachable(bad);
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).errno).toBe(EINVAL);
        expect((e as KernelError).arg).toBe('swiotlb');
      }
    }
    expect(() => new Machine({ memory: '1G', swiotlb: 'lots' })).toThrow(/swiotlb/);
  });
});

describe('areas from the CPU count', () => {
  it('num_possible_cpus() rounded up to a power of two, printed; a size option rounds like the kernel', () => {
    const m = new Machine({ memory: '8G', cpus: 3 });
    expect([m.swiotlb?.nslabs, m.swiotlb?.nareas]).toEqual([32768, 4]);
    expect(info(m)[0]).toBe('software IO TLB: area num 4.\n');
    const small = new Machine({ memory: '1G', cpus: 8, swiotlb: { size: '768K' } });
    expect([small.swiotlb?.nslabs, small.swiotlb?.nareas]).toEqual([1024, 8]); // 384 slots → 128 × 8 → 1024
    expect(new Machine({ memory: '1G', cpus: 8, swiotlb: { size: '4M', areas: 2 } }).swiotlb?.nareas).toBe(2);
  });

  it('each CPU starts its slot search in its own area', () => {
    const m = new Machine({ memory: '1G', cpus: 4, swiotlb: { size: '4M', force: true } });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const pool = m.swiotlb!;
    const areaBytes = pool.areaNslabs * 2048;
    for (const cpu of [0, 1, 2, 3]) {
      m.currentCpu = cpu;
      const addr = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0);
      expect(Math.floor((addr - pool.start) / areaBytes)).toBe(cpu);
      dma_unmap_page_attrs(dev, addr, 4096, DMA_TO_DEVICE, 0);
    }
  });
});

describe('the swiotlb_bounced tracepoint', () => {
  it('records each bounce with the kernel fields: dev_name, dma_mask, dev_addr (the original), size, FORCE/NORMAL', () => {
    const m = new Machine({ memory: '1G', trace: true, swiotlb: { size: '4M', force: true } });
    const dev = m.pci.addDevice({ name: 'virtio0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const addr = dma_map_page_attrs(dev, pfn, 0x10, 100, DMA_TO_DEVICE, 0);
    dma_unmap_page_attrs(dev, addr, 100, DMA_TO_DEVICE, 0);
    const ev = m.trace.events.filter((e) => e.name === 'swiotlb_bounced');
    expect(ev.length).toBe(1);
    expect(ev[0]).toMatchObject({ kind: 'bounce', actor: 'virtio0', args: { dma_mask: 2 ** 64 - 1, dev_addr: pfn * 4096 + 0x10, size: 100, force: 'FORCE' } });
    const untraced = new Machine({ memory: '1G', swiotlb: { size: '4M', force: true } });
    expect(untraced.trace.events.length).toBe(0);
  });
});

describe('a pool at a given address', () => {
  it('sits where it is told; a device that cannot reach it fails to bounce as the kernel does', () => {
    const m = new Machine({ memory: '8G', swiotlb: { size: '4M', at: '6G', force: true } });
    expect(m.swiotlb?.start).toBe(6 * 2 ** 30);
    expect(m.mm.zoneStats().length).toBeGreaterThan(0);
    const dev = m.pci.addDevice({ name: 'dma32', dmaMask: 32 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const addr = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0);
    expect(addr).toBe(-1); // DMA_MAPPING_ERROR: the bounce slot is beyond its 32-bit mask
    expect(m.audit()).toEqual([]);
  });

  it('refuses an address that is not free RAM, naming swiotlb.at', () => {
    for (const at of ['12G', 4096 + 1, '0']) {
      try {
        new Machine({ memory: '8G', swiotlb: { size: '4M', at } });
        expect.unreachable(String(at));
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).arg).toBe('swiotlb.at');
      }
    }
  });
});

describe('a pool that does not fit below 4 GiB', () => {
  it('is halved until it fits, as swiotlb_init_remap does, and says so', () => {
    const m = new Machine({ memory: '16G', swiotlb: { size: '8G', force: true } });
    expect(m.swiotlb).not.toBeNull();
    expect(m.swiotlb!.end).toBeLessThanOrEqual(2 ** 32);
    expect((m.swiotlb!.end - m.swiotlb!.start) / 2 ** 30).toBe(2);
    expect(info(m)).toContain('software IO TLB: SWIOTLB bounce buffer size adjusted 4194304 -> 1048576 slabs');
    expect(m.klog.messages.filter((x) => x.fn === 'swiotlb_memblock_alloc').map((x) => x.message)).toEqual([
      'software IO TLB: swiotlb_memblock_alloc: Failed to allocate 8589934592 bytes tlb structure\n',
      'software IO TLB: swiotlb_memblock_alloc: Failed to allocate 4294967296 bytes tlb structure\n',
    ]);
    expect(m.swiotlbForce).toBe(true);
  });
});
