/** Bit helpers exact above 2^32, and little-endian register-style access from the CPU and the device. */
import { describe, expect, it } from 'vitest';
import {
  BIT_ULL, DMA_BIDIRECTIONAL, EINVAL, GENMASK_ULL, GFP_KERNEL, KernelError, Machine, and64, dma_alloc_coherent, dma_map_single,
  dma_pool_alloc, dma_pool_create, dma_unmap_single, getLe, lower_32_bits, or64, putLe, upper_32_bits,
} from '../../src/index.ts';

describe('64-bit values as exact numbers', () => {
  it('the operators cut to 32 bits; the helpers do not', () => {
    const addr = 0x7fff_dead_b123; // a 47-bit IOVA
    // What the README warns about: & on a 47-bit address loses the top bits without a word.
    expect(addr & ~0xfff).not.toBe(0x7fff_dead_b000);
    expect(and64(addr, GENMASK_ULL(47, 12))).toBe(0x7fff_dead_b000);
    expect(or64(2 ** 40, 0x123)).toBe(2 ** 40 + 0x123);
    expect(upper_32_bits(addr)).toBe(0x7fff);
    expect(lower_32_bits(addr)).toBe(0xdeadb123);
    expect(upper_32_bits(0xffffffff)).toBe(0);
    expect(BIT_ULL(40)).toBe(1099511627776);
    expect(GENMASK_ULL(52, 0)).toBe(2 ** 53 - 1);
    expect(GENMASK_ULL(3, 3)).toBe(8);
  });

  it('what no exact number holds is EINVAL naming the argument', () => {
    const cases: Array<[() => unknown, string]> = [
      [() => GENMASK_ULL(63, 0), 'h'], [() => GENMASK_ULL(3, 5), 'l'], [() => BIT_ULL(53), 'nr'],
      [() => upper_32_bits(2 ** 53), 'n'], [() => lower_32_bits(-1), 'n'], [() => and64(1.5, 1), 'v'],
      [() => putLe(new Uint8Array(2), 0, 0x10000, 2), 'v'],
      [() => getLe(new Uint8Array(8).fill(0xff), 0, 8), 'bytes'],
    ];
    for (const [f, arg] of cases) {
      let err: unknown;
      try { f(); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(KernelError);
      expect(err).toMatchObject({ errno: EINVAL, arg });
    }
  });

  it('putLe / getLe are little-endian and exact up to 2^53', () => {
    const b = new Uint8Array(8);
    putLe(b, 0, 0x0102_0304_0506, 8);
    expect(Array.from(b)).toEqual([6, 5, 4, 3, 2, 1, 0, 0]);
    expect(getLe(b, 0, 8)).toBe(0x0102_0304_0506);
    expect(getLe(b, 0, 2)).toBe(0x0506);
  });
});

describe('little-endian access on coherent, kmalloc and pool memory', () => {
  it('the CPU writes a 64-bit descriptor, the device reads it; the device writes a status, the CPU reads it', () => {
    const m = new Machine({ memory: '64M', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    const coh = dma_alloc_coherent(dev, 4096, GFP_KERNEL)!;
    m.mm.writeLe64(coh.cpu_addr + 8, 0x1234_5678_9abc);
    expect(dev.dma.readLe64(coh.dma_handle + 8)).toEqual({ ok: true, value: 0x1234_5678_9abc });
    expect(dev.dma.readLe32(coh.dma_handle + 8)).toEqual({ ok: true, value: 0x5678_9abc });
    expect(dev.dma.writeLe16(coh.dma_handle + 20, 0xbeef).ok).toBe(true);
    expect(m.mm.readLe16(coh.cpu_addr + 20)).toBe(0xbeef);
    expect(Array.from(m.mm.readPhys(m.mm.virt_to_phys(coh.cpu_addr) + 20, 2))).toEqual([0xef, 0xbe]);

    const pool = dma_pool_create('desc', dev, 64, 64, 0)!;
    const blk = dma_pool_alloc(pool, GFP_KERNEL)!;
    m.mm.writeLe32(blk.vaddr + 4, 0xcafe_f00d);
    expect(dev.dma.readLe32(blk.dma + 4)).toEqual({ ok: true, value: 0xcafe_f00d });

    // kmalloc memory under a streaming mapping: the device writes, the CPU reads after unmap.
    const buf = m.mm.kmalloc(256)!;
    const addr = dma_map_single(dev, buf, 256, DMA_BIDIRECTIONAL);
    expect(dev.dma.writeLe64(addr + 16, 2 ** 52 + 5).ok).toBe(true);
    dma_unmap_single(dev, addr, 256, DMA_BIDIRECTIONAL);
    expect(m.mm.readLe64(buf + 16)).toBe(2 ** 52 + 5);
  });

  it('a value straddling two vmalloc pages lands on both physical pages', () => {
    const m = new Machine({ memory: '64M', fragment: { level: 1 } });
    const area = m.mm.vmalloc(2 * 4096)!;
    expect(area.pages[1]).not.toBe((area.pages[0] as number) + 1);
    m.mm.writeLe32(area.addr + 4094, 0x4433_2211);
    expect(Array.from(m.mm.readPhys((area.pages[0] as number) * 4096 + 4094, 2))).toEqual([0x11, 0x22]);
    expect(Array.from(m.mm.readPhys((area.pages[1] as number) * 4096, 2))).toEqual([0x33, 0x44]);
    expect(m.mm.readLe32(area.addr + 4094)).toBe(0x4433_2211);
  });

  it('values that do not fit are EINVAL naming v, and nothing is written', () => {
    const m = new Machine({ memory: '64M' });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    const coh = dma_alloc_coherent(dev, 4096, GFP_KERNEL)!;
    expect(() => m.mm.writeLe16(coh.cpu_addr, 0x10000)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'v' }) as Error);
    expect(() => dev.dma.writeLe32(coh.dma_handle, -1)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'v' }) as Error);
    expect(m.mm.readLe32(coh.cpu_addr)).toBe(0);
  });
});

describe('review fixes', () => {
  it('a 64-bit descriptor of 2^53 or more is EINVAL naming the reader and the address, from the CPU and the device', () => {
    const m = new Machine({ memory: '64M' });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    const coh = dma_alloc_coherent(dev, 4096, GFP_KERNEL)!;
    m.mm.writeLe32(coh.cpu_addr, 0xffffffff);
    m.mm.writeLe32(coh.cpu_addr + 4, 0xffffffff);
    expect(() => dev.dma.readLe64(coh.dma_handle)).toThrow(expect.objectContaining({ fn: 'DmaEngine.readLe64', arg: 'addr' }) as Error);
    expect(() => m.mm.readLe64(coh.cpu_addr)).toThrow(expect.objectContaining({ fn: 'readLe64', arg: 'virt' }) as Error);
    expect(dev.dma.readLe32(coh.dma_handle + 4)).toEqual({ ok: true, value: 0xffffffff });
  });
});

describe('register-style CPU accesses share one buffer (session 14)', () => {
  it('a read or write made from inside another (an access listener) gets its own bytes; the 2^53 error still names the address', () => {
    // readLe*/writeLe* keep their bytes in one buffer per machine unless an access is already using
    // it (planted: always the shared buffer, and the nested read overwrites the outer value's
    // bytes before they are written; the address formatted only on success: the message loses it).
    const m = new Machine({ memory: '64M', swiotlb: false });
    const a = m.mm.kmalloc(64) as number;
    const b = m.mm.kmalloc(64) as number;
    m.mm.writeLe32(b, 0x0a0b0c0d);
    const seen: number[] = [];
    const outer = m.mm.onCpuAccess;
    m.mm.onCpuAccess = (phys, len, write) => {
      if (len === 8) seen.push(m.mm.readLe32(b));
      outer?.(phys, len, write);
    };
    m.mm.writeLe64(a, 0x1122_3344_5566);
    expect(m.mm.readLe64(a)).toBe(0x1122_3344_5566);
    expect(seen).toEqual([0x0a0b0c0d, 0x0a0b0c0d]);
    m.mm.onCpuAccess = outer;
    m.mm.writeLe32(a, 0xffffffff);
    m.mm.writeLe32(a + 4, 0xffffffff);
    expect(() => m.mm.readLe64(a)).toThrow(new RegExp(`0x${a.toString(16)}`));
    expect(() => m.mm.writeLe64(a, 2 ** 53)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'v' }) as Error);
    expect(m.mm.readLe32(a)).toBe(0xffffffff);
  });

  it('the device side the same: values round-trip, a nested access from a fault listener gets its own bytes, the 2^53 error names the DMA address', () => {
    const m = new Machine({ memory: '64M', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
    const coh = dma_alloc_coherent(dev, 4096, GFP_KERNEL) as NonNullable<ReturnType<typeof dma_alloc_coherent>>;
    for (const [w, v] of [[2, 0xbeef], [4, 0xdead_beef], [8, 2 ** 52 + 3]] as const) {
      const write = w === 2 ? dev.dma.writeLe16 : w === 4 ? dev.dma.writeLe32 : dev.dma.writeLe64;
      const read = w === 2 ? dev.dma.readLe16 : w === 4 ? dev.dma.readLe32 : dev.dma.readLe64;
      expect(write.call(dev.dma, coh.dma_handle + 16, v)).toEqual({ ok: true, value: w });
      expect(read.call(dev.dma, coh.dma_handle + 16)).toEqual({ ok: true, value: v });
    }
    // A write that faults runs the fault listener, which reads a register itself.
    const nested: unknown[] = [];
    dev.dma.onFault = () => { nested.push(dev.dma.readLe32(coh.dma_handle + 16)); };
    expect(dev.dma.writeLe64(2 ** 40, 7).ok).toBe(false);
    expect(nested).toEqual([{ ok: true, value: 3 }]);
    expect(dev.dma.readLe64(coh.dma_handle + 16)).toEqual({ ok: true, value: 2 ** 52 + 3 });
    m.mm.writeLe32(coh.cpu_addr, 0xffffffff);
    m.mm.writeLe32(coh.cpu_addr + 4, 0xffffffff);
    expect(() => dev.dma.readLe64(coh.dma_handle)).toThrow(new RegExp(`DMA 0x${coh.dma_handle.toString(16)}`));
  });
});

describe('PhysContents.copy: one copy between physical ranges', () => {
  it('matches a read and a write across pages at different offsets, and copies zeros over written bytes', async () => {
    const { PhysContents } = await import('../../src/index.ts');
    const mem = new PhysContents();
    const data = Uint8Array.from({ length: 10000 }, (_, i) => (i * 13 + 7) & 0xff);
    mem.write(0x1000 + 300, data);
    mem.copy(0x9000 + 3000, 0x1000 + 300, 10000);
    expect(Array.from(mem.read(0x9000 + 3000, 10000))).toEqual(Array.from(data));
    // Untouched source pages are zeros: they clear what the destination held.
    mem.copy(0x9000 + 3000, 0x40000, 5000);
    expect(mem.read(0x9000 + 3000, 5000).every((b) => b === 0)).toBe(true);
    expect(Array.from(mem.read(0x9000 + 8000, 5000))).toEqual(Array.from(data.subarray(5000)));
    expect(() => mem.copy(-1, 0, 1)).toThrow(expect.objectContaining({ arg: 'addr' }) as Error);
  });
});
