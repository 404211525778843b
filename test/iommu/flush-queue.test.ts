import { describe, expect, it } from 'vitest';
import { Clock, FlushQueue, type FqEntry } from '../../src/index.ts';

function fq(opts: { single?: boolean; size?: number } = {}) {
  const clock = new Clock();
  const released: number[] = [];
  let flushes = 0;
  const q = new FlushQueue(clock, { flushIotlbAll: () => { flushes++; }, release: (e: FqEntry) => released.push(e.iovaPfn) }, { cpus: 2, ...opts });
  return { clock, q, released, flushes: () => flushes };
}

describe('flush queue (lazy invalidation)', () => {
  it('holds IOVAs until the 10 ms timer flushes, then releases them', () => {
    const { clock, q, released, flushes } = fq();
    q.queue(100, 1, [], 0);
    q.queue(200, 2, [7], 1);
    expect(q.holds(201)).toBe(true);
    clock.advance(9_999_999);
    expect(released).toEqual([]);
    clock.advance(1);
    expect(flushes()).toBe(1);
    expect(released.sort()).toEqual([100, 200]);
    expect(q.pending).toBe(0);
    expect(q.longestWaitNs).toBe(10_000_000);
  });

  it('an entry queued after a flush started is not released by that flush (start/finish counters)', () => {
    const { q, released } = fq();
    q.queue(1, 1, [], 0);
    q.flushIotlb();
    q.queue(2, 1, [], 0); // releases 1 first (flushed), then queues 2 with counter = start
    expect(released).toEqual([1]);
    expect(q.holds(2)).toBe(true);
  });

  it('a full ring forces a synchronous flush (one slot stays empty)', () => {
    const { q, released, flushes } = fq({ size: 4 });
    for (let i = 0; i < 3; i++) q.queue(i, 1, [], 0);
    expect(flushes()).toBe(0);
    q.queue(3, 1, [], 0);
    expect(flushes()).toBe(1);
    expect(released).toEqual([0, 1, 2]);
    expect(q.pending).toBe(1);
  });

  it('the single shared queue waits 1 s', () => {
    const { clock, q, released } = fq({ single: true });
    expect(q.timeoutNs).toBe(1e9);
    q.queue(5, 1, [], 1);
    clock.advance(999e6);
    expect(released).toEqual([]);
    clock.advance(1e6);
    expect(released).toEqual([5]);
  });
});
