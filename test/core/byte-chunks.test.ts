/**
 * Chunked snapshots of byte arrays (issue 20): compared chunks are shared when equal, dirty-marked
 * chunks are the only ones copied, and a restore brings back exactly the captured bytes whatever
 * order snapshots are taken and restored in.
 */
import { describe, expect, it } from 'vitest';
import { COMPARE_CHUNK_BYTES, DIRTY_CHUNK_SHIFT, DirtyChunks, captureChunks, restoreChunks } from '../../src/core/byte-chunks.ts';
import { Rng } from '../../src/index.ts';

describe('captureChunks / restoreChunks', () => {
  it('copies everything once, then only the chunks that changed', () => {
    const bytes = new Uint8Array(3 * COMPARE_CHUNK_BYTES + 100).fill(3);
    const s1 = captureChunks(bytes, undefined);
    expect(s1.copied).toBe(bytes.length);
    expect(s1.chunks.length).toBe(4);
    bytes[COMPARE_CHUNK_BYTES + 7] = 9;
    const s2 = captureChunks(bytes, s1.chunks);
    expect(s2.copied).toBe(COMPARE_CHUNK_BYTES);
    expect(s2.chunks[0]).toBe(s1.chunks[0]);
    expect(s2.chunks[1]).not.toBe(s1.chunks[1]);
    expect(s2.chunks[3]).toBe(s1.chunks[3]);
    bytes.fill(0);
    restoreChunks(bytes, s1.chunks);
    expect(bytes.every((b) => b === 3)).toBe(true);
    restoreChunks(bytes, s2.chunks);
    expect(bytes[COMPARE_CHUNK_BYTES + 7]).toBe(9);
    expect(bytes.filter((b) => b !== 3).length).toBe(1);
  });
});

describe('DirtyChunks', () => {
  const N = 5 * 2 ** DIRTY_CHUNK_SHIFT + 33;

  it('copies only touched chunks; restores any capture exactly, in any order', () => {
    const a = new Uint8Array(N);
    const b = new Uint32Array(N);
    const track = new DirtyChunks([a, b]);
    const rng = new Rng(7);
    const caps: { cap: ReturnType<DirtyChunks['capture']>; a: Uint8Array; b: Uint32Array }[] = [];
    for (let round = 0; round < 12; round++) {
      // A few writes, each marked, then a capture or a restore of an earlier capture.
      for (let w = 0; w < 1 + rng.int(5); w++) {
        const i = rng.int(N);
        const n = 1 + rng.int(300);
        const end = Math.min(N, i + n);
        a.fill(round + 1, i, end);
        b.fill(round * 1000 + w, i, end);
        track.touch(i, end);
      }
      if (round % 3 === 2 && caps.length > 0) {
        const c = caps[rng.int(caps.length)] as (typeof caps)[number];
        track.restore(c.cap);
        expect(a).toEqual(c.a);
        expect(b).toEqual(c.b);
        expect(track.changedSince(c.cap)).toEqual([]);
      } else {
        const before = caps.length === 0 ? N * 5 : track.dirty.reduce((s, d) => s + d, 0) * 2 ** DIRTY_CHUNK_SHIFT * 5;
        const cap = track.capture();
        expect(cap.copied).toBeLessThanOrEqual(before);
        caps.push({ cap, a: a.slice(), b: b.slice() });
      }
    }
    // Every capture still restores exactly after all the others.
    for (const c of caps) {
      track.restore(c.cap);
      expect(a).toEqual(c.a);
      expect(b).toEqual(c.b);
    }
  });

  it('changedSince names the touched chunks and the chunks two captures do not share', () => {
    const a = new Uint8Array(N);
    const track = new DirtyChunks([a]);
    const s1 = track.capture();
    a[2 ** DIRTY_CHUNK_SHIFT * 2 + 1] = 1;
    track.touch(2 ** DIRTY_CHUNK_SHIFT * 2 + 1, 2 ** DIRTY_CHUNK_SHIFT * 2 + 2);
    expect(track.changedSince(s1)).toEqual([2]);
    const s2 = track.capture();
    expect(s2.copied).toBe(2 ** DIRTY_CHUNK_SHIFT);
    expect(track.changedSince(s1)).toEqual([2]);
    expect(track.changedSince(s2)).toEqual([]);
    a[5] = 1;
    track.touch(5, 6);
    expect(track.changedSince(s1)).toEqual([0, 2]);
    // An unmarked write is exactly what the INVARIANT forbids: it is invisible (planted).
    a[2 ** DIRTY_CHUNK_SHIFT * 4] = 7;
    expect(track.changedSince(s2)).toEqual([0]);
  });
});
