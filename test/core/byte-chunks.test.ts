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
    const bytes = new Uint8Array(3 * COMPARE_CHUNK_BYTES + 100).map((_, i) => i % 251);
    const orig = bytes.slice();
    const s1 = captureChunks(bytes, undefined);
    expect(s1.copied).toBe(bytes.length);
    expect(s1.chunks.length).toBe(4);
    bytes[COMPARE_CHUNK_BYTES + 7] = 255;
    const s2 = captureChunks(bytes, s1.chunks);
    expect(s2.copied).toBe(COMPARE_CHUNK_BYTES);
    expect(s2.chunks[0]).toBe(s1.chunks[0]);
    expect(s2.chunks[1]).not.toBe(s1.chunks[1]);
    expect(s2.chunks[3]).toBe(s1.chunks[3]);
    bytes.fill(0);
    restoreChunks(bytes, s1.chunks);
    expect(bytes).toEqual(orig);
    restoreChunks(bytes, s2.chunks);
    expect(bytes[COMPARE_CHUNK_BYTES + 7]).toBe(255);
    expect(bytes.filter((b, i) => b !== orig[i]).length).toBe(1);
  });

  it('shares one read-only chunk for chunks of a single repeated byte, and only for those', () => {
    // Empty hash tables (-1) and zeroed tables cost nothing to capture; a chunk that differs in its
    // first or last byte alone is no such chunk (planted: judging by the first byte, or by all but
    // the last, restores the wrong bytes below).
    const a = new Int32Array(COMPARE_CHUNK_BYTES / 2 + 3).fill(-1);
    const b = new Uint8Array(2 * COMPARE_CHUNK_BYTES + 1);
    b[COMPARE_CHUNK_BYTES - 1] = 7; // last byte of chunk 0
    b[COMPARE_CHUNK_BYTES] = 9; // first byte of chunk 1
    const aBytes = new Uint8Array(a.buffer);
    const sa = captureChunks(aBytes, undefined);
    const sb = captureChunks(b, undefined);
    expect(sa.copied).toBe(0);
    expect(sb.copied).toBe(2 * COMPARE_CHUNK_BYTES);
    expect(sa.chunks[0]?.buffer).toBe(sa.chunks[1]?.buffer); // one shared 0xff chunk
    expect(sb.chunks[2]?.length).toBe(1);
    const bOrig = b.slice();
    // Restores bring the right bytes back, and restoring one array never writes the shared chunk.
    a.fill(5);
    b.fill(0xff);
    restoreChunks(aBytes, sa.chunks);
    restoreChunks(b, sb.chunks);
    expect(a.every((x) => x === -1)).toBe(true);
    expect(b).toEqual(bOrig);
    const again = new Int32Array(8).fill(-1);
    const sAgain = captureChunks(new Uint8Array(again.buffer), undefined);
    again.fill(0);
    restoreChunks(new Uint8Array(again.buffer), sAgain.chunks);
    expect(again.every((x) => x === -1)).toBe(true);
    expect(sa.chunks.every((c) => c.every((x) => x === 0xff))).toBe(true);
  });

  it('shares the uniform chunk when a changed chunk becomes uniform later', () => {
    const bytes = new Uint8Array(2 * COMPARE_CHUNK_BYTES).map((_, i) => i & 0x7f);
    const s1 = captureChunks(bytes, undefined);
    bytes.fill(0, 0, COMPARE_CHUNK_BYTES);
    const s2 = captureChunks(bytes, s1.chunks);
    expect(s2.copied).toBe(0);
    expect(s2.chunks[1]).toBe(s1.chunks[1]);
    restoreChunks(bytes, s1.chunks);
    expect(bytes[1]).toBe(1);
    restoreChunks(bytes, s2.chunks);
    expect(bytes.subarray(0, COMPARE_CHUNK_BYTES).every((x) => x === 0)).toBe(true);
    expect(bytes[COMPARE_CHUNK_BYTES + 1]).toBe(1);
  });
});

describe('DirtyChunks (copy on write)', () => {
  const N = 5 * 2 ** DIRTY_CHUNK_SHIFT + 33;

  it('restores any capture exactly, in any order, copying only chunks written after a capture', () => {
    const a = new Uint8Array(N);
    const b = new Uint32Array(N);
    const track = new DirtyChunks([a, b]);
    const rng = new Rng(7);
    const caps: { cap: ReturnType<DirtyChunks['capture']>; a: Uint8Array; b: Uint32Array }[] = [];
    for (let round = 0; round < 40; round++) {
      // A few writes, each announced first, then a capture or a restore of an earlier capture.
      for (let w = 0; w < 1 + rng.int(5); w++) {
        const i = rng.int(N);
        const end = Math.min(N, i + 1 + rng.int(300));
        track.touch(i, end);
        a.fill(round + 1, i, end);
        b.fill(round * 1000 + w, i, end);
      }
      if (round % 3 === 2 && caps.length > 0) {
        const c = caps[rng.int(caps.length)] as (typeof caps)[number];
        track.restore(c.cap);
        expect(a).toEqual(c.a);
        expect(b).toEqual(c.b);
        expect(track.changedSince(c.cap)).toEqual([]);
      } else {
        const cap = track.capture();
        expect(cap.copied).toBe(0);
        caps.push({ cap, a: a.slice(), b: b.slice() });
      }
    }
    // Every capture still restores exactly after all the others.
    for (const c of [...caps].reverse()) {
      track.restore(c.cap);
      expect(a).toEqual(c.a);
      expect(b).toEqual(c.b);
    }
  });

  it('a capture shares the boxes of chunks nobody wrote; changedSince names the others', () => {
    const a = new Uint8Array(N);
    const track = new DirtyChunks([a]);
    const s1 = track.capture();
    const at = 2 ** DIRTY_CHUNK_SHIFT * 2 + 1;
    track.touch(at, at + 1);
    a[at] = 1;
    expect(track.changedSince(s1)).toEqual([2]);
    expect(track.chunkAt(s1, 0, 2)[1]).toBe(0);
    const s2 = track.capture();
    expect(s2.boxes[0]).toBe(s1.boxes[0]);
    expect(s2.boxes[2]).not.toBe(s1.boxes[2]);
    expect(track.changedSince(s1)).toEqual([2]);
    expect(track.changedSince(s2)).toEqual([]);
    track.touch(5, 6);
    a[5] = 1;
    expect(track.changedSince(s1)).toEqual([0, 2]);
    // A store made without touch first is what the INVARIANT forbids: the capture loses it (planted).
    a[2 ** DIRTY_CHUNK_SHIFT * 4] = 7;
    expect(track.changedSince(s2)).toEqual([0]);
    track.restore(s2);
    expect(a[2 ** DIRTY_CHUNK_SHIFT * 4]).toBe(7);
  });
});
