/**
 * @module test/dma/debug/u64: the 64-bit arithmetic on numbers, against BigInt as the oracle
 * (BigInt is used here only, as a reference; the implementation never touches it).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crossesBoundary, decU64, hashBucket, hex16, hi32, lo32, u64End, u64LessEq, u64SumGreaterEq, walkLimit } from '../../../src/dma/debug/u64.ts';

const M64 = (1n << 64n) - 1n;
/** The u64 a number stands for (negative: two's complement). */
const big = (x: number): bigint => BigInt.asUintN(64, BigInt(x));
/** Any u64 a number holds exactly: safe integers, doubles up to 2^64, and small negatives. */
const u64num = fc.oneof(
  fc.maxSafeNat(),
  fc.bigInt({ min: 0n, max: M64 }).map((b) => Number(b)).filter((n) => n < 2 ** 64),
  fc.integer({ min: -4096, max: -1 }),
);

describe('dma-debug u64 helpers', () => {
  it('hi32 and lo32 are the halves of the u64 a number stands for (negatives, past 2^53, wrapping at 2^64)', () => {
    const wide = fc.oneof(u64num, fc.bigInt({ min: 0n, max: (1n << 70n) }).map((b) => Number(b)), fc.maxSafeInteger().map((n) => -n));
    fc.assert(fc.property(wide, (x) => {
      const u = BigInt.asUintN(64, BigInt(x));
      expect(hi32(x)).toBe(Number(u >> 32n));
      expect(lo32(x)).toBe(Number(u & 0xffffffffn));
    }), { numRuns: 3000 });
    expect([hi32(-1), lo32(-1)]).toEqual([0xffffffff, 0xffffffff]);
    expect([hi32(-(2 ** 32)), lo32(-(2 ** 32))]).toEqual([0xffffffff, 0]);
    expect([hi32(2 ** 64 + 2 ** 33), lo32(2 ** 64 + 2 ** 33)]).toEqual([2, 0]);
  });

  it('format the edge values', () => {
    expect(hex16(-1)).toBe('ffffffffffffffff');
    expect(hex16(0)).toBe('0000000000000000');
    expect(hex16(2 ** 64 - 4096)).toBe('fffffffffffff000');
    expect(decU64(-1)).toBe('18446744073709551615');
    expect(decU64(2 ** 64 - 2 ** 20)).toBe('18446744073708503040');
    expect(decU64(2 ** 53)).toBe('9007199254740992');
    expect(decU64(1_000_000 * 2 ** 32)).toBe('4294967296000000');
    expect(u64End(0, 0)).toEqual([0xffffffff, 0xffffffff]);
    expect(hashBucket(-1)).toBe(0x3fff);
    expect(hashBucket(0x8000000)).toBe(0);
    expect(walkLimit(-1)).toBe(16384);
    expect(walkLimit(0x1fff)).toBe(1);
  });

  it('hex16 and decU64 print the exact u64', () => {
    fc.assert(fc.property(u64num, (x) => {
      expect(hex16(x)).toBe(big(x).toString(16).padStart(16, '0'));
      expect(decU64(x)).toBe(big(x).toString());
    }));
  });

  it('comparisons and wrapping sums agree with u64 arithmetic', () => {
    fc.assert(fc.property(u64num, u64num, u64num, u64num, (a, b, c, d) => {
      expect(u64LessEq(a, b)).toBe(big(a) <= big(b));
      expect(u64SumGreaterEq(a, b, c, d)).toBe(((big(a) + big(b)) & M64) >= ((big(c) + big(d)) & M64));
    }));
  });

  it('the boundary check is (start ^ (start + len - 1)) & ~mask', () => {
    const mask = fc.oneof(fc.integer({ min: 0, max: 52 }).map((k) => 2 ** k - 1), fc.maxSafeNat(), fc.constant(Infinity), fc.constant(2 ** 64));
    fc.assert(fc.property(u64num, fc.nat(2 ** 32 - 1), mask, (start, len, m) => {
      const mb = m >= 2 ** 63 ? M64 : BigInt(m);
      const s = big(start);
      const e = (s + BigInt(len) - 1n) & M64;
      const crosses = ((s ^ e) & (~mb & M64)) !== 0n;
      const got = crossesBoundary(start, len, m);
      expect(got !== null).toBe(crosses);
      if (got !== null) expect([got.start, got.end, got.boundary]).toEqual([s, e, mb].map((v) => v.toString(16).padStart(16, '0')));
    }));
  });

  it('the hash bucket is (addr >> 13) & 0x3fff', () => {
    fc.assert(fc.property(u64num, (x) => {
      expect(hashBucket(x)).toBe(Number((big(x) >> 13n) & 0x3fffn));
      expect(walkLimit(x)).toBe(Number((big(x) >> 13n) + 1n < 16384n ? (big(x) >> 13n) + 1n : 16384n));
    }));
  });
});
