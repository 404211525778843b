/** modPow2 (the hot paths' remainder by a power of two) against BigInt over the whole safe range. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { modPow2 } from '../../src/core/mod-pow2.ts';

describe('modPow2', () => {
  it('is x mod 2^k for every whole x below 2^53 and every k up to 52', () => {
    fc.assert(fc.property(fc.maxSafeNat(), fc.integer({ min: 0, max: 52 }), (x, k) => {
      expect(modPow2(x, 2 ** k)).toBe(Number(BigInt(x) % (1n << BigInt(k))));
    }), { numRuns: 5000 });
    expect(modPow2(2 ** 40 + 0x1234, 4096)).toBe(0x234);
    expect(modPow2(2 ** 53 - 1, 2 ** 31)).toBe(2 ** 31 - 1);
  });
});
