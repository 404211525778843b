/**
 * @module core/rng
 * A small, fast, seeded PRNG (sfc32 seeded through splitmix32). Every random choice a machine makes
 * goes through one of these, so the same seed gives the same run.
 */

/** A deterministic random stream. */
export class Rng {
  // INVARIANT: a, b, c, d are uint32 state words; the stream is a pure function of the seed.
  private _a: number;
  private _b: number;
  private _c: number;
  private _d: number;

  /** @example new Rng(42).int(6) // a whole number in [0, 6) */
  constructor(seed: number) {
    let s = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this._a = next();
    this._b = next();
    this._c = next();
    this._d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Next uint32. */
  u32(): number {
    const t = (((this._a + this._b) >>> 0) + this._d) >>> 0;
    this._d = (this._d + 1) >>> 0;
    this._a = this._b ^ (this._b >>> 9);
    this._b = (this._c + (this._c << 3)) >>> 0;
    this._c = ((this._c << 21) | (this._c >>> 11)) >>> 0;
    this._c = (this._c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** A whole number in [0, n), n ≤ 2^32. */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A whole number in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** A child stream, independent of later draws from this one. */
  fork(): Rng {
    return new Rng(this.u32() * 2 ** 21 + (this.u32() >>> 11));
  }
}
