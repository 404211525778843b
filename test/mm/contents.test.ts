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

  it('property: fill with 0 (groups never written skipped whole) equals a byte model, pages released', () => {
    // 2 MiB groups: writes in a few of them, fills crossing group edges, partial pages, both ends.
    const base = 0x400000;
    const span = 6 * 2 ** 20;
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat({ max: span - 1 }), fc.integer({ min: 1, max: 3 * PAGE_SIZE }), fc.integer({ min: 1, max: 255 })), { maxLength: 6 }),
      fc.array(fc.tuple(fc.nat({ max: span - 1 }), fc.nat({ max: 3 * 2 ** 20 })), { minLength: 1, maxLength: 4 }),
      (writes, fills) => {
        const m = new Machine({ memory: '16M' });
        const model = new Uint8Array(span);
        for (const [off, len, v] of writes) {
          const n = Math.min(len, span - off);
          m.mm.writePhys(base + off, new Uint8Array(n).fill(v));
          model.fill(v, off, off + n);
        }
        for (const [off, len] of fills) {
          const n = Math.min(len, span - off);
          m.mm.fillPhys(base + off, n, 0);
          model.fill(0, off, off + n);
        }
        // Buffer.equals: toEqual walks 6 MiB element by element.
        expect(Buffer.from(m.mm.readPhys(base, span)).equals(Buffer.from(model))).toBe(true);
        let nonZeroPages = 0;
        const zeroPage = Buffer.alloc(PAGE_SIZE);
        for (let p = 0; p < span / PAGE_SIZE; p++) if (!zeroPage.equals(model.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))) nonZeroPages++;
        // Whole pages zeroed are released; a page zeroed in part may stay (all zero).
        expect(m.mm.contents.residentPages).toBeGreaterThanOrEqual(nonZeroPages);
        const fullyFilled = fills.some(([off, len]) => off === 0 && len >= span);
        if (fullyFilled) expect(m.mm.contents.residentPages).toBe(0);
      }), { numRuns: 60 });
    const m = new Machine({ memory: '16M' });
    m.mm.writePhys(0x600000, new Uint8Array(3 * PAGE_SIZE).fill(9));
    m.mm.fillPhys(0x400000, 4 * 2 ** 20, 0);
    expect(m.mm.contents.residentPages).toBe(0);
    expect(() => m.mm.contents.fill(-1, 4, 0)).toThrow(expect.objectContaining({ arg: 'addr' }) as Error);
  });

  it('property: writes round-trip across page boundaries', () => {
    fc.assert(fc.property(fc.nat({ max: 16 * PAGE_SIZE }), fc.uint8Array({ minLength: 1, maxLength: 3 * PAGE_SIZE }), (off, bytes) => {
      const m = new Machine({ memory: '16M' });
      m.mm.writePhys(0x100000 + off, bytes);
      expect(m.mm.readPhys(0x100000 + off, bytes.length)).toEqual(bytes);
    }), { numRuns: 50 });
  });
});
