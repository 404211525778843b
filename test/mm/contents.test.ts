import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EFAULT, KernelError, Machine, PAGE_SIZE } from '../../src/index.ts';

describe('sparse physical contents', () => {
  it('reads zero where nothing was written and pays only for written pages', () => {
    const m = new Machine({ memory: '64G' });
    expect(m.mm.readPhys(40 * 2 ** 30, 16)).toEqual(new Uint8Array(16));
    m.mm.writePhys(5 * PAGE_SIZE - 2, new Uint8Array([1, 2, 3, 4]));
    expect(m.mm.readPhys(5 * PAGE_SIZE - 3, 6)).toEqual(new Uint8Array([0, 1, 2, 3, 4, 0]));
    expect(m.mm.contents.residentPages).toBe(2);
  });

  it('refuses holes with EFAULT', () => {
    const m = new Machine({ memory: [{ start: 0, size: '8M' }, { start: '16M', size: '8M' }] });
    try {
      m.mm.readPhys(8 * 2 ** 20 - 2, 4);
      expect.unreachable();
    } catch (e) {
      expect((e as KernelError).errno).toBe(EFAULT);
    }
  });

  it('zero-filling whole pages releases them', () => {
    const m = new Machine({ memory: '16M' });
    m.mm.writePhys(0x200000, new Uint8Array(PAGE_SIZE * 2).fill(7));
    m.mm.fillPhys(0x200000, PAGE_SIZE * 2, 0);
    expect(m.mm.contents.residentPages).toBe(0);
    expect(m.mm.readPhys(0x200000, 4)).toEqual(new Uint8Array(4));
  });

  it('property: writes round-trip across page boundaries', () => {
    fc.assert(fc.property(fc.nat({ max: 16 * PAGE_SIZE }), fc.uint8Array({ minLength: 1, maxLength: 3 * PAGE_SIZE }), (off, bytes) => {
      const m = new Machine({ memory: '16M' });
      m.mm.writePhys(0x100000 + off, bytes);
      expect(m.mm.readPhys(0x100000 + off, bytes.length)).toEqual(bytes);
    }), { numRuns: 50 });
  });
});
