/**
 * PhysContents copies runs of pages that lie one after another in a slab as one copy (reads and
 * writes). Held to a flat byte model over random sequences of writes and reads (with source and
 * destination offsets, up to 1.5 MiB so runs cross slab ends), zero fills that release pages to the
 * spare list (so later pages are handed out out of order, breaking runs), fills, copies, snapshots
 * and restores (copy on write). Planted: joining pieces that are not adjacent in the slab, or
 * ignoring where a piece sits on the caller's side, fails it. Copies between scattered and
 * in-order pages (with a hole in the source) are checked too (a run-joining copy was tried and
 * measured no faster: page-sized sets were already at copy speed).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../src/index.ts';
import { PhysContents } from '../../src/core/sparse-memory.ts';
import { captureGraph } from '../../src/core/snapshot.ts';

const SPAN = 6 * 2 ** 20;
const MAX = 3 * 2 ** 19; // 1.5 MiB

type Op =
  | { k: 'write'; off: number; len: number; seed: number; srcOff: number }
  | { k: 'read'; off: number; len: number; dstOff: number }
  | { k: 'zero' | 'fill'; off: number; len: number; v: number }
  | { k: 'copy'; dst: number; src: number; len: number }
  | { k: 'reverse'; off: number; pages: number }
  | { k: 'snap' }
  | { k: 'restore'; pick: number };

const span = (max: number) => fc.tuple(fc.nat({ max: SPAN - 1 }), fc.integer({ min: 1, max }));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(span(MAX), fc.nat(), fc.nat({ max: 64 })).map(([[off, len], seed, srcOff]) => ({ k: 'write' as const, off, len, seed, srcOff })) },
  { weight: 4, arbitrary: fc.tuple(span(MAX), fc.nat({ max: 64 })).map(([[off, len], dstOff]) => ({ k: 'read' as const, off, len, dstOff })) },
  { weight: 2, arbitrary: fc.tuple(span(MAX), fc.constantFrom('zero' as const, 'fill' as const), fc.integer({ min: 1, max: 255 })).map(([[off, len], k, v]) => ({ k, off, len, v })) },
  { weight: 1, arbitrary: fc.tuple(fc.nat({ max: SPAN / 2 - 1 }), fc.nat({ max: SPAN / 2 - 1 }), fc.integer({ min: 1, max: 2 ** 18 })).map(([a, b, len]) => ({ k: 'copy' as const, dst: a, src: SPAN / 2 + b, len })) },
  { weight: 1, arbitrary: fc.tuple(fc.nat({ max: SPAN / PAGE_SIZE - 1 }), fc.integer({ min: 2, max: 40 })).map(([p, pages]) => ({ k: 'reverse' as const, off: p * PAGE_SIZE, pages })) },
  { weight: 1, arbitrary: fc.constant({ k: 'snap' as const }) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ k: 'restore' as const, pick })) },
);

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

describe('PhysContents: runs of pages copied as one', () => {
  it('property: reads, writes, fills, copies, snapshots and restores equal a byte model', () => {
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 30 }), (ops) => {
      const mem = new PhysContents();
      let model = new Uint8Array(SPAN);
      const snaps: Array<{ snap: ReturnType<typeof captureGraph>; model: Uint8Array }> = [];
      for (const o of ops) {
        if (o.k === 'write') {
          const len = Math.min(o.len, SPAN - o.off);
          const src = bytes(len + o.srcOff, o.seed);
          mem.write(o.off, src, o.srcOff, len);
          model.set(src.subarray(o.srcOff, o.srcOff + len), o.off);
        } else if (o.k === 'read') {
          const len = Math.min(o.len, SPAN - o.off);
          const dst = new Uint8Array(len + o.dstOff + 8).fill(0xee);
          mem.readInto(o.off, dst, o.dstOff, len);
          expect(Buffer.from(dst.subarray(o.dstOff, o.dstOff + len)).equals(Buffer.from(model.subarray(o.off, o.off + len)))).toBe(true);
          // Nothing written around the asked range.
          expect(dst.subarray(0, o.dstOff).every((b) => b === 0xee) && dst.subarray(o.dstOff + len).every((b) => b === 0xee)).toBe(true);
        } else if (o.k === 'zero' || o.k === 'fill') {
          const len = Math.min(o.len, SPAN - o.off);
          const v = o.k === 'zero' ? 0 : o.v;
          mem.fill(o.off, len, v);
          model.fill(v, o.off, o.off + len);
        } else if (o.k === 'copy') {
          const len = Math.min(o.len, SPAN / 2 - o.dst, SPAN - o.src);
          mem.copy(o.dst, o.src, len);
          model.copyWithin(o.dst, o.src, o.src + len);
        } else if (o.k === 'reverse') {
          // Page by page from the last: slab pages handed out in reverse order (no runs).
          for (let p = Math.min(o.pages, SPAN / PAGE_SIZE - o.off / PAGE_SIZE) - 1; p >= 0; p--) {
            const at = o.off + p * PAGE_SIZE;
            mem.write(at, new Uint8Array([p + 1]));
            model[at] = p + 1;
          }
        } else if (o.k === 'snap') {
          snaps.push({ snap: captureGraph(mem), model: model.slice() });
        } else if (o.k === 'restore' && snaps.length > 0) {
          const s = snaps[o.pick % snaps.length]!;
          s.snap.restore();
          model = s.model.slice();
        }
      }
      const all = new Uint8Array(SPAN);
      mem.readInto(0, all);
      expect(Buffer.from(all).equals(Buffer.from(model))).toBe(true);
    }), { numRuns: 120 });
  });

  it('a write over pages handed out in order is read back whole, and one over scattered pages too', () => {
    const mem = new PhysContents();
    // Scattered first: every other page, from the top down, then the whole range in one call.
    for (let p = 63; p >= 0; p -= 2) mem.write(p * PAGE_SIZE, new Uint8Array([p]));
    const src = bytes(64 * PAGE_SIZE, 7);
    mem.write(0, src);
    expect(Buffer.from(mem.read(0, src.length)).equals(Buffer.from(src))).toBe(true);
    const again = bytes(64 * PAGE_SIZE, 8);
    mem.write(0, again);
    expect(Buffer.from(mem.read(0, again.length)).equals(Buffer.from(again))).toBe(true);
  });

  it('zero-length writes and reads touch nothing (no page made, no offset checked past the end)', () => {
    const mem = new PhysContents();
    const buf = new Uint8Array(16);
    mem.write(0x5000, buf, 0, 0);
    mem.write(0x5ff0, buf, 16, 0);
    expect(mem.residentPages).toBe(0);
    mem.write(0x5000, new Uint8Array([1]));
    expect(() => mem.readInto(0x5000, buf, buf.length, 0)).not.toThrow();
    expect(buf).toEqual(new Uint8Array(16));
    expect(mem.residentPages).toBe(1);
  });

  it('copy between in-order and scattered pages, both ways, with a hole in the source', () => {
    const mem = new PhysContents();
    const src = 2 ** 20;
    // Source: 32 pages written in order (one run in a slab), except page 9, never written.
    const data = bytes(32 * PAGE_SIZE, 3);
    data.fill(0, 9 * PAGE_SIZE, 10 * PAGE_SIZE);
    mem.write(src, data.subarray(0, 9 * PAGE_SIZE));
    mem.write(src + 10 * PAGE_SIZE, data.subarray(10 * PAGE_SIZE));
    // Destination: 32 pages handed out from the last down (no two adjacent in a slab).
    for (let p = 31; p >= 0; p--) mem.write(p * PAGE_SIZE, new Uint8Array([0xaa]));
    for (const shift of [0, 100]) {
      mem.copy(shift, src, 32 * PAGE_SIZE - shift);
      const want = new Uint8Array(32 * PAGE_SIZE);
      want.fill(0, 0, shift);
      for (let p = 0; p < 32; p++) if (p * PAGE_SIZE < shift) want[p * PAGE_SIZE] = 0xaa;
      want.set(data.subarray(0, 32 * PAGE_SIZE - shift), shift);
      const got = mem.read(0, 32 * PAGE_SIZE);
      if (shift === 0) expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
      else expect(Buffer.from(got.subarray(shift)).equals(Buffer.from(data.subarray(0, 32 * PAGE_SIZE - shift)))).toBe(true);
    }
    // The other way round: a scattered source into fresh pages (handed out in order: one run).
    const before = mem.read(0, 32 * PAGE_SIZE);
    mem.copy(4 * 2 ** 20, 0, 32 * PAGE_SIZE);
    expect(Buffer.from(mem.read(4 * 2 ** 20, 32 * PAGE_SIZE)).equals(Buffer.from(before))).toBe(true);
  });
});
