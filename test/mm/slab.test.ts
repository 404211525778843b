import { describe, expect, it } from 'vitest';
import { ENOMEM, GFP_KERNEL, KernelBug, KernelError, Machine, PAGE_SIZE, Pages, VVec } from '../../src/index.ts';

describe('kmalloc', () => {
  it('hands out physically contiguous, distinct objects and returns empty slabs', () => {
    const m = new Machine({ memory: '64M' });
    const a = m.mm.kmalloc(100)!;
    const b = m.mm.kmalloc(100)!;
    expect(a).not.toBe(b);
    expect(m.mm.slab.ksize(a)).toBe(128);
    m.mm.writePhys(m.mm.virt_to_phys(a), new Uint8Array(128).fill(1));
    expect(m.mm.readPhys(m.mm.virt_to_phys(b), 4)).toEqual(new Uint8Array(4));
    expect(m.mm.allocatedPages).toBe(1);
    m.mm.kfree(a);
    m.mm.kfree(b);
    expect(m.mm.allocatedPages).toBe(0);
    expect(() => m.mm.kfree(a)).toThrow(KernelBug);
    m.mm.kfree(null);
  });

  it('large sizes take pages; kzalloc zeroes; failslab injection gives null', () => {
    const m = new Machine({ memory: '64M' });
    const big = m.mm.kmalloc(3 * PAGE_SIZE)!;
    expect(m.mm.slab.ksize(big)).toBe(4 * PAGE_SIZE);
    m.mm.kfree(big);
    const z = m.mm.kzalloc(64)!;
    expect(m.mm.readPhys(m.mm.virt_to_phys(z), 64)).toEqual(new Uint8Array(64));
    m.faults.inject('kmalloc', { nth: 1 });
    expect(m.mm.kmalloc(64)).toBeNull();
    expect(m.mm.kmalloc(0)).toBeNull();
  });
});

describe('safe layer', () => {
  it('VVec frees on dispose and throws ENOMEM on exhaustion', () => {
    const m = new Machine({ memory: '64M' });
    {
      using v = VVec.create(m.mm, 5000);
      expect(v.pageIter().pageCount).toBe(2);
      expect(m.mm.allocatedPages).toBe(2);
    }
    expect(m.mm.allocatedPages).toBe(0);
    try {
      VVec.create(m.mm, 60 * 2 ** 20);
      VVec.create(m.mm, 60 * 2 ** 20);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).errno).toBe(ENOMEM);
    }
  });

  it('Pages frees once', () => {
    const m = new Machine({ memory: '64M' });
    const p = Pages.alloc(m.mm, 3, GFP_KERNEL);
    expect(m.mm.allocatedPages).toBe(8);
    p[Symbol.dispose]();
    p[Symbol.dispose]();
    expect(m.mm.allocatedPages).toBe(0);
    expect(() => Pages.alloc(m.mm, 11)).toThrow(KernelError);
  });
});
