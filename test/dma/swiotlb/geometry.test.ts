import { describe, expect, it } from 'vitest';
import { EINVAL, KernelError } from '../../../src/core/index.ts';
import { DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { SwiotlbPool, swiotlbBootGeometry } from '../../../src/dma/swiotlb/index.ts';
import { Machine } from '../../../src/sim/machine.ts';

const boot = (param: string | undefined, cpus = 1, addressingLimited = true) => {
  const m = new Machine({ memory: '256M' });
  m.klog.clear(); // only what swiotlb prints
  const g = swiotlbBootGeometry({ ...(param === undefined ? {} : { param }), cpus, addressingLimited, klog: m.klog });
  return { g, msgs: m.klog.messages.map((x) => x.message) };
};

describe('swiotlb §1: boot geometry', () => {
  it('no parameter: 32768 slots (64 MiB), areas from the CPU count rounded up to a power of two', () => {
    expect(boot(undefined, 2)).toEqual({
      g: { enabled: true, nslabs: 32768, nareas: 2, size: 64 * 2 ** 20, force: false, noforce: false },
      msgs: ['software IO TLB: area num 2.\n'],
    });
    expect(boot(undefined, 3).g.nareas).toBe(4);
    expect(boot(undefined, 1).g.nareas).toBe(1);
  });

  it('slot counts round up to 128, then to 128 × areas and a power of two', () => {
    expect(boot('0').g.nslabs).toBe(128);
    expect(boot('0').msgs).toEqual(['software IO TLB: area num 1.\n', 'software IO TLB: SWIOTLB bounce buffer size roundup to 0MB']);
    expect(boot('130').g.nslabs).toBe(256);
    expect(boot('130').msgs).toEqual(['software IO TLB: area num 1.\n']); // 256 is already a power of two
    expect(boot('300').g.nslabs).toBe(512); // 384 → 512
    expect(boot('300').msgs).toEqual(['software IO TLB: area num 1.\n', 'software IO TLB: SWIOTLB bounce buffer size roundup to 1MB']);
    expect(boot('100,4')).toEqual({
      g: { enabled: true, nslabs: 512, nareas: 4, size: 2 ** 20, force: false, noforce: false },
      msgs: ['software IO TLB: area num 4.\n', 'software IO TLB: SWIOTLB bounce buffer size roundup to 1MB'],
    });
    expect(boot('2048,0').g).toMatchObject({ nslabs: 2048, nareas: 1 });
    expect(boot('2048,0').msgs).toEqual(['software IO TLB: area num 1.\n']);
    expect(boot('3000,3', 8).g).toMatchObject({ nslabs: 4096, nareas: 4 });
  });

  it('numbers are read like simple_strtoul(…, 0): hex and octal', () => {
    expect(boot('0x100').g.nslabs).toBe(256);
    expect(boot('0200').g.nslabs).toBe(128);
    expect(boot('0x').g.nslabs).toBe(128); // "0" in octal, then junk
  });

  it('no pool without addressing limits unless force, or with noforce; the area line still prints', () => {
    expect(boot(undefined, 2, false)).toEqual({ g: { enabled: false, nslabs: 0, nareas: 1, size: 0, force: false, noforce: false }, msgs: [] });
    expect(boot('1024,2', 2, false)).toMatchObject({ g: { enabled: false, nareas: 2 }, msgs: ['software IO TLB: area num 2.\n'] });
    expect(boot('force', 2, false).g).toMatchObject({ enabled: true, force: true, nslabs: 32768, nareas: 2 });
    expect(boot('1024,force', 1, false).g).toMatchObject({ enabled: true, nslabs: 1024 });
    expect(boot('1024,2,noforce', 2, true)).toMatchObject({ g: { enabled: false, noforce: true }, msgs: ['software IO TLB: area num 2.\n'] });
  });

  it('refuses a CPU count that is not a whole number >= 1', () => {
    try {
      swiotlbBootGeometry({ cpus: 0 });
      expect.unreachable();
    } catch (e) {
      expect((e as KernelError).errno).toBe(EINVAL);
      expect((e as KernelError).arg).toBe('cpus');
    }
  });

  it('a booted geometry builds a pool; the pool prints the mapped line (end exclusive) and starts zeroed', () => {
    const m = new Machine({ memory: '256M' });
    m.klog.clear(); // only what swiotlb prints
    const g = swiotlbBootGeometry({ param: '100,4', cpus: 2 });
    m.mm.writePhys(0x4000000, new Uint8Array(64).fill(0xee));
    const pool = new SwiotlbPool({ start: 0x4000000, size: g.size, areas: g.nareas, memory: m.mm, klog: m.klog });
    expect([pool.nslabs, pool.nareas, pool.areaNslabs]).toEqual([512, 4, 128]);
    expect(m.klog.messages.map((x) => x.message)).toEqual(['software IO TLB: mapped [mem 0x0000000004000000-0x0000000004100000] (1MB)\n']);
    expect(m.mm.readPhys(0x4000000, 64)).toEqual(new Uint8Array(64));
    const big = new SwiotlbPool({ start: 0x8000000, memory: m.mm, klog: m.klog });
    expect(m.klog.messages[1]?.message).toBe('software IO TLB: mapped [mem 0x0000000008000000-0x000000000c000000] (64MB)\n');
    expect(big.nslabs).toBe(32768);
    expect(big.swiotlb_tbl_map_single({}, 0x100000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(0x8000000);
  });

  it('clearing without fillPhys writes zeros through writePhys', () => {
    const m = new Machine({ memory: '256M' });
    m.klog.clear(); // only what swiotlb prints
    m.mm.writePhys(0x4000000 + 300_000, new Uint8Array(8).fill(1));
    const memory = { readPhysInto: m.mm.readPhysInto.bind(m.mm), writePhys: m.mm.writePhys.bind(m.mm) };
    new SwiotlbPool({ start: 0x4000000, size: '1M', memory, klog: m.klog, verbose: false });
    expect(m.mm.readPhys(0x4000000 + 300_000, 8)).toEqual(new Uint8Array(8));
  });
});
