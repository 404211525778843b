/**
 * ChurnMap against a Map model: the same answers to get, has, size and delete, live entries only in
 * iteration, the order rule of the module doc, and memory bounded by the live count while the same
 * keys are deleted and added back (the pattern it exists for).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChurnMap } from '../../src/core/churn-map.ts';
import { captureGraph } from '../../src/core/snapshot.ts';

type Op = { op: 'set'; k: number; v: number } | { op: 'delete'; k: number } | { op: 'clear' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), k: fc.integer({ min: 0, max: 12 }), v: fc.integer() }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('delete' as const), k: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

/** The map's own Map (the dead entries included), to check the bound. */
function inner(m: ChurnMap<number, number>): Map<number, unknown> {
  return (m as unknown as { _map: Map<number, unknown> })._map;
}

describe('ChurnMap', () => {
  it('answers as a Map does; iterates live entries in first-added order (a key deleted and added back keeps its place)', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 400 }), (ops) => {
      const m = new ChurnMap<number, number>();
      const model = new Map<number, number>();
      // Where each key first came in since the last rebuild or clear: the order rule's model.
      const order: number[] = [];
      for (const o of ops) {
        if (o.op === 'set') {
          if (!order.includes(o.k)) order.push(o.k);
          expect(m.set(o.k, o.v)).toBe(m);
          model.set(o.k, o.v);
        } else if (o.op === 'delete') {
          expect(m.delete(o.k)).toBe(model.delete(o.k));
        } else {
          m.clear();
          model.clear();
          order.length = 0;
        }
        expect(m.size).toBe(model.size);
        // The INVARIANT: the counts are of the entries the inner Map holds.
        const counts = m as unknown as { _live: number; _dead: number };
        expect(counts._live + counts._dead).toBe(inner(m).size);
        for (let k = 0; k <= 12; k++) {
          expect(m.has(k)).toBe(model.has(k));
          expect(m.get(k)).toBe(model.get(k));
        }
        // Keys 0..12 never leave more than 64 dead entries, so no rebuild reorders them here.
        const keys = [...m.keys()];
        expect(keys).toEqual(order.filter((k) => model.has(k)));
        expect([...m.values()]).toEqual(keys.map((k) => model.get(k)));
        expect([...m.entries()]).toEqual(keys.map((k) => [k, model.get(k)]));
        expect([...m]).toEqual(keys.map((k) => [k, model.get(k)]));
        const seen: number[] = [];
        m.forEach((v, k) => { seen.push(k); expect(v).toBe(model.get(k)); });
        expect(seen).toEqual(keys);
      }
    }), { numRuns: 300 });
  });

  it('keeps at most twice its live entries plus 64 while keys churn (planted: no rebuild grows without bound)', () => {
    const m = new ChurnMap<number, number>();
    for (let k = 0; k < 1000; k++) m.set(2 ** 52 + k * 2048, k);
    // The same key deleted and added back: its dead entry is reused, nothing grows.
    for (let i = 0; i < 10000; i++) { m.delete(2 ** 52); m.set(2 ** 52, i); }
    expect(inner(m).size).toBe(1000);
    // Ever new keys, each deleted: dead entries are dropped once they outnumber the live ones.
    for (let i = 0; i < 100000; i++) { m.set(2 ** 53 - 1 - i, i); m.delete(2 ** 53 - 1 - i); }
    expect(m.size).toBe(1000);
    expect(inner(m).size).toBeLessThanOrEqual(2 * 1000 + 64);
    // All deleted: the bound holds at zero live entries too.
    for (let k = 0; k < 1000; k++) m.delete(2 ** 52 + k * 2048);
    expect(m.size).toBe(0);
    expect(inner(m).size).toBeLessThanOrEqual(65);
  });

  it('an iteration that deletes entries, rebuilds included, never yields a deleted one (a helper\'s review)', () => {
    // Each visited key deletes itself and a partner further on; the deletes pass the rebuild
    // threshold mid-walk (planted: iterating the walked map without checking the current one
    // yields the partners already deleted).
    const walks = [
      (c: ChurnMap<number, number>): Iterable<number> => (function* () { for (const [k] of c.entries()) yield k; })(),
      (c: ChurnMap<number, number>): Iterable<number> => c.keys(),
      (c: ChurnMap<number, number>): Iterable<number> => c.values(), // values equal keys here
    ];
    for (const walk of walks) {
      const n = 300;
      const m = new ChurnMap<number, number>();
      for (let k = 0; k < n; k++) m.set(k, k);
      const deleted = new Set<number>();
      const seen: number[] = [];
      for (const k of walk(m)) {
        expect(deleted.has(k)).toBe(false);
        seen.push(k);
        for (const d of [k, (k + 150) % n]) if (m.delete(d)) deleted.add(d);
      }
      expect(m.size).toBe(0);
      expect(seen.length).toBeLessThan(n);
    }
    const f = new ChurnMap<number, number>();
    for (let k = 0; k < 300; k++) f.set(k, k);
    const gone = new Set<number>();
    f.forEach((_v, k) => {
      expect(gone.has(k)).toBe(false);
      for (const d of [k, (k + 150) % 300]) if (f.delete(d)) gone.add(d);
    });
    expect(f.size).toBe(0);
  });

  it('a live key whose value is undefined is there (has), as in a Map', () => {
    const m = new ChurnMap<number, undefined>();
    m.set(1, undefined);
    expect(m.has(1)).toBe(true);
    expect([...m.keys()]).toEqual([1]);
    expect(m.delete(1)).toBe(true);
    expect(m.has(1)).toBe(false);
    expect(m.delete(1)).toBe(false);
  });

  it('comes back exactly from a machine snapshot (dead entries and counts included)', () => {
    const m = new ChurnMap<number, number>();
    for (let k = 0; k < 10; k++) m.set(k, k);
    m.delete(3);
    const snap = captureGraph({ m });
    m.set(3, 33); m.delete(4); m.set(11, 11);
    for (let k = 20; k < 300; k++) { m.set(k, k); m.delete(k); }
    snap.restore();
    expect([...m]).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9].map((k) => [k, k]));
    expect(m.size).toBe(9);
    m.set(3, 3);
    expect([...m.keys()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
