/**
 * @module core/mod-pow2
 * An internal helper of the hot paths (not part of the package's API: it checks nothing).
 */

/**
 * x mod m for a power of two m and a whole x in [0, 2^53), exact, without a floating-point
 * remainder (V8 compiles `x % m` on a number past 2^31 to a runtime fmod, ~9 ns against ~1). A
 * bitwise and reads the low 32 bits of x, which hold x mod m for every m up to 2^30.
 * @example modPow2(2 ** 40 + 0x1234, 4096) // 0x234
 */
export function modPow2(x: number, m: number): number {
  return m <= 0x40000000 ? x & (m - 1) : x - Math.floor(x / m) * m;
}
