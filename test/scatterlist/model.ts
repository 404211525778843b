/**
 * A small, obviously-correct model of lib/scatterlist.c's table building, for tests: plain objects,
 * one per slot, transcribing the kernel's steps (get_next_sg, the continuation merge, the u32 and
 * u64 arithmetic) without any of the fast path's tricks.
 */
const PAGE = 4096;
const MAX = 128;

export interface MSlot { page: number; offset: number; length: number; end: boolean; chain: MSlot[] | null }
export interface MTable { chunks: MSlot[][]; sgl: MSlot[] | null; nents: number; origNents: number; prv: [MSlot[], number] | null; totalNents: number }

export function newModel(): MTable {
  return { chunks: [], sgl: null, nents: 0, origNents: 0, prv: null, totalNents: 0 };
}

function alloc(n: number): MSlot[] {
  const c = Array.from({ length: n }, () => ({ page: 0, offset: 0, length: 0, end: false, chain: null as MSlot[] | null }));
  (c[n - 1] as MSlot).end = true;
  return c;
}

function next(pos: [MSlot[], number]): [MSlot[], number] | null {
  const [chunk, i] = pos;
  if ((chunk[i] as MSlot).end) return null;
  const n = chunk[i + 1] as MSlot;
  return n.chain !== null ? [n.chain, 0] : [chunk, i + 1];
}

/** Returns the errno-style result; 'bug' for the kernel's NULL dereference. */
export function modelAppend(t: MTable, pages: number[], offset: number, size: bigint, maxSegment: number, leftPages: number, failAlloc = -1): number | 'bug' {
  const maxSeg = maxSegment - (maxSegment % PAGE);
  if (maxSeg < PAGE) return -22;
  if (pages.length === 0) return -22;
  let allocs = 0;
  let ps = [...pages];
  let prvLen = 0;
  if (t.prv !== null) {
    if (offset !== 0) return -22;
    const prv = (t.prv[0])[t.prv[1]] as MSlot;
    prvLen = prv.length;
    const nextPfn = Math.floor((prv.page * PAGE + prv.offset + prv.length) / PAGE);
    if (ps[0] === nextPfn) {
      let last = nextPfn - 1;
      while (ps.length > 0 && ps[0] === last + 1) {
        if (prv.length + PAGE > maxSeg) break;
        prv.length += PAGE;
        last = ps.shift() as number;
      }
      if (ps.length === 0) {
        if (leftPages === 0) { prv.end = true; prv.chain = null; }
        return 0;
      }
    }
  }
  // chunks
  const bounds: number[] = [0];
  let seg = 0;
  for (let i = 1; i < ps.length; i++) {
    seg += PAGE;
    if (seg >= maxSeg || ps[i] !== (ps[i - 1] as number) + 1) { bounds.push(i); seg = 0; }
  }
  bounds.push(ps.length);
  const chunks = bounds.length - 1;
  let cur: [MSlot[], number] | null = t.prv;
  let remaining = size;
  let added = 0;
  for (let i = 0; i < chunks; i++) {
    const needed = chunks - i + leftPages;
    let slot: [MSlot[], number];
    let nxt: [MSlot[], number] | null = null;
    if (cur !== null) {
      nxt = next(cur);
      if (nxt === null) {
        if (t.prv !== null) ((t.prv[0])[t.prv[1]] as MSlot).length = prvLen;
        return 'bug';
      }
    }
    if (cur !== null && nxt !== null && (!((nxt[0])[nxt[1]] as MSlot).end || needed === 1)) {
      slot = nxt;
    } else {
      if (allocs++ === failAlloc) {
        if (t.prv !== null) ((t.prv[0])[t.prv[1]] as MSlot).length = prvLen;
        return -12;
      }
      const n = Math.min(needed, MAX);
      const c = alloc(n);
      t.chunks.push(c);
      if (cur !== null && nxt !== null) {
        const link = (nxt[0])[nxt[1]] as MSlot;
        link.chain = c; link.end = false; link.offset = 0; link.length = 0;
        t.totalNents += n - 1;
      } else {
        t.sgl = c;
        t.totalNents = n;
      }
      slot = [c, 0];
    }
    const pages_ = (bounds[i + 1] as number) - (bounds[i] as number);
    const chunkSize = (pages_ * PAGE - offset) >>> 0;
    const s = (slot[0])[slot[1]] as MSlot;
    s.page = ps[bounds[i] as number] as number;
    s.offset = offset;
    s.length = Number(remaining < BigInt(chunkSize) ? remaining : BigInt(chunkSize));
    remaining = (remaining - BigInt(chunkSize)) & ((1n << 64n) - 1n);
    offset = 0;
    cur = slot;
    added++;
  }
  t.nents += added;
  t.origNents = t.nents;
  t.prv = cur;
  if (leftPages === 0 && cur !== null) { const s = (cur[0])[cur[1]] as MSlot; s.end = true; s.chain = null; }
  return 0;
}

/** Entries in walk order as [page, offset, length], and the walk's raw slot kinds. */
export function modelEntries(t: MTable): { entries: Array<[number, number, number]>; layout: string } {
  const entries: Array<[number, number, number]> = [];
  let layout = '';
  if (t.sgl === null) return { entries, layout };
  let chunk = t.sgl;
  let i = 0;
  for (;;) {
    const s = chunk[i] as MSlot;
    if (s.chain !== null) { layout += 'L'; chunk = s.chain; i = 0; continue; }
    entries.push([s.page, s.offset, s.length]);
    layout += s.end ? 'E' : 'd';
    if (s.end) break;
    i++;
    if (i >= chunk.length) break;
  }
  return { entries, layout };
}
