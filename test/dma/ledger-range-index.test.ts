/**
 * The ledger's range index against a plain model (issue 20, session 9: batch inserts now merge
 * instead of re-sorting the whole index). Random single and batch inserts and removes; every query
 * form must give the model's ranges in the model's order (descending start, the later insert first
 * among equal starts).
 */
import { describe, expect, it } from 'vitest';
import { RangeIndex, Rng } from '../../src/index.ts';

interface R { start: number; end: number; value: number; seq: number }

describe('RangeIndex', () => {
  it('agrees with a naive model under random single and batch inserts and removes', () => {
    for (const seed of [1, 2, 3, 4]) {
      const rng = new Rng(seed);
      const ix = new RangeIndex<number>();
      let model: R[] = [];
      let seq = 0;
      const batches = new Map<number, { start: number; end: number }[]>();
      // Descending start; among equal starts the later insert first (what a walk back from the top sees).
      const sorted = () => [...model].sort((a, b) => b.start - a.start || b.seq - a.seq);
      let most = 0;
      for (let step = 0; step < 600; step++) {
        const r = rng.int(10);
        if (r < 3) {
          const start = rng.int(4000);
          const end = start + rng.int(300);
          ix.insert(start, end, step);
          if (end > start) model.push({ start, end, value: step, seq: seq++ });
          batches.set(step, [{ start, end }]);
        } else if (r < 5) {
          // A batch: sometimes above the 16 that switches to the merge path; equal starts on purpose.
          const n = 1 + rng.int(40);
          const list = Array.from({ length: n }, () => { const start = rng.int(40) * 100; return { start, end: start + rng.int(500) }; });
          ix.insertAll(list, step);
          for (const x of list) if (x.end > x.start) model.push({ ...x, value: step, seq: seq++ });
          batches.set(step, list);
        } else if (r < 7 && batches.size > 0) {
          const keys = [...batches.keys()];
          const v = keys[rng.int(keys.length)] as number;
          const list = batches.get(v) as { start: number; end: number }[];
          batches.delete(v);
          ix.removeAll(list, v);
          model = model.filter((m) => m.value !== v);
        } else {
          const a = rng.int(4500);
          const b = a + 1 + rng.int(200);
          const want = sorted().filter((m) => m.start < b && m.end > a).map((m) => [m.start, m.end, m.value]);
          const got: number[][] = [];
          ix.query(a, b, (x) => { got.push([x.start, x.end, x.value]); });
          expect(got).toEqual(want);
          const collected: { start: number; end: number; value: number }[] = [];
          expect(ix.collect(a, b, collected as never)).toBe(want.length);
          expect(collected.map((x) => [x.start, x.end, x.value])).toEqual(want);
          expect(ix.overlaps(a, b)).toBe(want.length > 0);
          const odd = (v: number) => v % 2 === 1;
          const cover = sorted().find((m) => m.start <= a && m.end >= b && odd(m.value));
          const c = ix.covering(a, b, odd);
          expect(c === undefined ? undefined : [c.start, c.end, c.value]).toEqual(cover === undefined ? undefined : [cover.start, cover.end, cover.value]);
        }
        expect(ix.size).toBe(model.length);
        most = Math.max(most, model.length);
      }
      // Enough ranges that the index splits its blocks (2 × 64) several times.
      expect(most).toBeGreaterThan(400);
    }
  });

  it('hundreds of ranges with one start (across block boundaries): removed one by one, queried in insertion order', () => {
    const ix = new RangeIndex<number>();
    for (let v = 0; v < 300; v++) ix.insert(1000, 1001 + v, v);
    ix.insertAll(Array.from({ length: 200 }, (_, i) => ({ start: 1000, end: 2000 + i })), 999);
    const seen: number[] = [];
    ix.query(1000, 1001, (r) => { seen.push(r.value); });
    expect(seen).toEqual([...Array.from({ length: 200 }, () => 999), ...Array.from({ length: 300 }, (_, i) => 299 - i)]);
    for (let v = 0; v < 300; v += 2) ix.remove(1000, v);
    ix.removeAll(Array.from({ length: 200 }, (_, i) => ({ start: 1000, end: 2000 + i })), 999);
    const left: number[] = [];
    ix.query(1000, 1001, (r) => { left.push(r.value); });
    expect(left).toEqual(Array.from({ length: 150 }, (_, i) => 299 - 2 * i));
    expect(ix.size).toBe(150);
    expect(ix.covering(1000, 1290, (v) => v > 0)?.value).toBe(299);
  });
});
