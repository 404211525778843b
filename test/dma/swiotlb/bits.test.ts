import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alignUp, and64, hex16, hexMask, isPowerOfTwo, low32 } from '../../../src/dma/swiotlb/bits.ts';
import { DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { DMA_MAPPING_ERROR } from '../../../src/dma/swiotlb/index.ts';
import { rig } from './helpers.ts';

describe('swiotlb C arithmetic on numbers', () => {
  it('low32, and64 (ULONG_MAX in every form), alignUp (ALIGN with a u32 mask, 0xffffffff → 0)', () => {
    expect(low32(2 ** 32 + 0x1234)).toBe(0x1234);
    expect(and64(0x1_2345_6000, 0xffff)).toBe(0x6000);
    expect(and64(0x1_2345_6000, 2 ** 36 - 1)).toBe(0x1_2345_6000);
    expect(and64(0xf_0000_1000, 0x3_0000_ffff)).toBe(0x3_0000_1000);
    for (const ulong of [Infinity, Number.MAX_SAFE_INTEGER, 2 ** 64]) expect(and64(2 ** 52 + 5, ulong)).toBe(2 ** 52 + 5);
    expect(alignUp(3000, 0xfff)).toBe(4096);
    expect(alignUp(4096, 0xfff)).toBe(4096);
    expect(alignUp(2 ** 40 + 1, 0x1ffff)).toBe(2 ** 40 + 0x20000);
    expect(alignUp(5, 0)).toBe(5);
    expect(alignUp(5, 0xffffffff)).toBe(0);
    expect([1, 2, 2 ** 53, 2 ** 40].map(isPowerOfTwo)).toEqual([true, true, true, true]);
    expect([0, 3, 48, 2 ** 53 - 1, 0.5].map(isPowerOfTwo)).toEqual([false, false, false, false, false]);
  });

  it('property: and64 agrees with BigInt AND for masks 2^k - 1 and arbitrary safe masks', () => {
    fc.assert(fc.property(fc.maxSafeNat(), fc.oneof(fc.integer({ min: 0, max: 53 }).map((k) => 2 ** k - 1), fc.maxSafeNat()), (a, m) => {
      expect(and64(a, m)).toBe(Number(BigInt(a) & BigInt(m)));
    }));
  });

  it('formats addresses as %016llx and masks as %llx, masks at or above 2^53 as all-ones of their width', () => {
    expect(hex16(0x4000000)).toBe('0000000004000000');
    expect(hexMask(0xffffffff)).toBe('ffffffff');
    expect(hexMask(2 ** 53 - 1)).toBe('1fffffffffffff');
    expect(hexMask(2 ** 60 - 1)).toBe('fffffffffffffff');
    expect(hexMask(2 ** 64)).toBe('ffffffffffffffff');
    expect(hexMask(Infinity)).toBe('ffffffffffffffff');
  });

  it('swiotlb_map prints DMA_BIT_MASK(64) given as 2^64 exactly', () => {
    const r = rig({ memory: '8G', start: 2 ** 32 - 131072, size: '256K' });
    r.pool.swiotlb_map({ dma_mask: 2 ** 64 }, 0x200000, 131072, DMA_TO_DEVICE, 0);
    expect(r.pool.swiotlb_map({ dma_mask: 2 ** 64, bus_dma_limit: 0xffffffff }, 0x200000, 4096, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.m.klog.warnings()[0]?.message).toBe('swiotlb addr 0x0000000100000000+4096 overflow (mask ffffffffffffffff, bus limit ffffffff).\n');
  });
});
