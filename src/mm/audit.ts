/**
 * @module mm/audit
 * Consistency of the memory model: every RAM page is either free in exactly one buddy block or
 * allocated with an owner, and the counters agree.
 */
import { MAX_PAGE_ORDER } from './constants.ts';
import { Mm } from './mm.ts';
import { PG_ALLOCATED, PG_ALLOCATED_X4, PG_RESERVED, type MetaCapture } from './page-meta.ts';
import { notInstance } from '../core/args.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { DIRTY_CHUNK_SHIFT } from '../core/byte-chunks.ts';
import { POW2 } from '../core/bits.ts';
import { Buffer } from 'node:buffer';

/** Bytes a native compare looks at per call in the audit's fast paths. */
const RUN_BYTES = 4096;
const ZEROS = new Uint8Array(RUN_BYTES);
const ONES = new Uint8Array(RUN_BYTES).fill(1);

/**
 * Are bytes [from, from + n) of `a` all equal to `like`'s (ZEROS or ONES)? Native compares of up to
 * RUN_BYTES at a time: the page loops ran ~2 ns a 4-page word (a fresh 1 GiB machine's full audit
 * ~600 us, most of a failure sweep's fixed cost: bench/RESULTS.md, session 14).
 */
function allLike(a: Uint8Array, from: number, n: number, like: Uint8Array): boolean {
  for (let at = from, end = from + n; at < end; at += RUN_BYTES) {
    const k = Math.min(RUN_BYTES, end - at);
    if (Buffer.compare(a.subarray(at, at + k), k === RUN_BYTES ? like : like.subarray(0, k)) !== 0) return false;
  }
  return true;
}

/**
 * Violations of the memory model's invariants (empty when sound). Walks every page: O(RAM).
 * @example expect(auditMm(machine.mm)).toEqual([])
 */
export function auditMm(mm: Mm): string[] {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'auditMm', 'mm');
  const out: string[] = [];
  const meta = mm.meta;
  // The whole arrays are read: the fragmenter's deferred held pages are written first.
  meta.resolveAll();
  const { state, owner } = meta;
  // Indexed like the metadata: RAM pages only. Reused between audits: a fresh 4 MiB array costs a
  // 16 GiB machine ~13 ms of page faults per audit on these VMs.
  const freeMark = freeMarks(state.length);
  // Four pages a word where a range allows (the page loops were most of an audit: see
  // bench/RESULTS.md, session 9); the byte loops name the problems.
  const words = state.byteOffset === 0 && owner.byteOffset === 0;
  const st32 = words ? new Uint32Array(state.buffer, 0, state.length >>> 2) : new Uint32Array(0);
  const fm32 = new Uint32Array(freeMark.buffer, 0, freeMark.length >>> 2);
  const busy = PG_ALLOCATED | PG_RESERVED;
  let freeSeen = 0;
  for (const zone of mm.zones) {
    let zoneFree = 0;
    // A callback per block, not the blocks() generator's array per block (a fragmented 16 GiB
    // machine has ~130,000 free blocks).
    zone.forEachFreeBlockIn(zone.span.startPfn, zone.span.endPfn, (pfn, o) => {
      const n = POW2[o] as number;
      // A block inside one RAM range has consecutive metadata indices: mark it in one tight loop
      // and walk it page by page only to name a problem.
      const i0 = meta.index(pfn);
      if (i0 >= 0 && meta.index(pfn + n - 1) === i0 + n - 1) {
        let bad = 0;
        // A block of never-marked, all-zero metadata (the usual free block) is sound by two native
        // compares; any other is read a word (or a page) at a time.
        const zeroByCompare = n >= 64 && allLike(freeMark, i0, n, ZEROS) && allLike(state, i0, n, ZEROS);
        if (!zeroByCompare && words && (i0 & 3) === 0 && (n & 3) === 0) {
          for (let k = i0 >>> 2; k < (i0 + n) >>> 2; k++) bad |= (fm32[k] as number) | ((st32[k] as number) & BUSY4);
        } else if (!zeroByCompare) {
          for (let i = i0; i < i0 + n; i++) bad |= (freeMark[i] as number) | ((state[i] as number) & busy);
        }
        if (bad === 0) {
          freeMark.fill(1, i0, i0 + n);
          zoneFree += n;
          if (o > MAX_PAGE_ORDER) out.push(`free block of order ${o}`);
          return;
        }
      }
      for (let p = pfn; p < pfn + n; p++) {
        const i = meta.index(p);
        if (i < 0) { out.push(`pfn 0x${p.toString(16)} is free in the buddy allocator but is not RAM`); continue; }
        if (freeMark[i] !== 0) out.push(`pfn 0x${p.toString(16)} is in two free blocks`);
        freeMark[i] = 1;
        if (((state[i] as number) & busy) !== 0) out.push(`pfn 0x${p.toString(16)} is free in the buddy allocator but marked ${(state[i] as number) & PG_RESERVED ? 'reserved' : 'allocated'}`);
      }
      zoneFree += POW2[o] as number;
      if (o > MAX_PAGE_ORDER) out.push(`free block of order ${o}`);
    });
    if (zoneFree !== zone.freePages) out.push(`zone ${zone.span.name}: free blocks cover ${zoneFree} pages, counter says ${zone.freePages}`);
    freeSeen += zoneFree;
  }
  // Allocated pages seen, and those among them without an owner.
  const counts = new Float64Array(2);
  const own32 = words ? new Uint32Array(owner.buffer, 0, owner.length >>> 2) : new Uint32Array(0);
  for (const r of mm.ram) {
    const first = meta.index(r.startPfn);
    const last = first + (r.endPfn - r.startPfn);
    let i = first;
    while (i < last) {
      // Runs of RUN_BYTES pages: one of free pages each in a free block (state 0, marked 1) is two
      // native compares; any other goes through the loop below (kept free of calls: with the
      // compares inside it an allocated machine's audit ran 2x slower).
      const runEnd = Math.min(last, (Math.floor(i / RUN_BYTES) + 1) * RUN_BYTES);
      if (runEnd - i === RUN_BYTES && state[i] === 0 && freeMark[i] === 1 && allLike(state, i, RUN_BYTES, ZEROS) && allLike(freeMark, i, RUN_BYTES, ONES)) {
        i = runEnd;
        continue;
      }
      // The page loop stops once it names a lost page past 20 lines (as it always has); lines the
      // free-block pass found do not stop it (a helper's review: stopping on them dropped the
      // counter lines and later lost pages).
      const before = out.length;
      i = auditRun(state, owner, freeMark, st32, fm32, own32, words, i, runEnd, r.startPfn - first, out, counts);
      if (out.length > 20 && out.length > before) return out;
    }
  }
  const allocated = counts[0] as number;
  const ownerless = counts[1] as number;
  if (ownerless > 0) out.push(`${ownerless} allocated pages have no owner`);
  if (allocated !== mm.allocatedPages) out.push(`${allocated} pages are marked allocated, the counter says ${mm.allocatedPages}`);
  if (freeSeen !== mm.freePages) out.push(`free pages ${freeSeen} != counter ${mm.freePages}`);
  return out;
}

/**
 * The page checks over metadata indices [i, end): allocated pages counted (counts[0]) with those
 * without an owner (counts[1]); a page neither allocated, reserved nor in a free block is named
 * (pfn = index + pfnDelta). Four pages a word where the range allows. Returns end, or where it
 * stopped after the 21st line.
 */
function auditRun(state: Uint8Array, owner: Uint8Array, freeMark: Uint8Array, st32: Uint32Array, fm32: Uint32Array, own32: Uint32Array,
  words: boolean, from: number, end: number, pfnDelta: number, out: string[], counts: Float64Array): number {
  let allocated = 0;
  let ownerless = 0;
  let i = from;
  while (i < end) {
    if (words && (i & 3) === 0 && i + 4 <= end) {
      const k = i >>> 2;
      const w = st32[k] as number;
      // Four free pages, each in a free block.
      if (w === 0 && fm32[k] === 0x01010101) { i += 4; continue; }
      if (ownedX4(w, own32[k] as number)) { allocated += 4; i += 4; continue; }
    }
    const s = state[i] as number;
    if ((s & PG_ALLOCATED) !== 0) {
      allocated++;
      if (owner[i] === 0) ownerless++;
    } else if ((s & PG_RESERVED) === 0 && freeMark[i] === 0) {
      out.push(`pfn 0x${(i + pfnDelta).toString(16)} is neither free nor allocated (lost)`);
      if (out.length > 20) { i++; break; }
    }
    i++;
  }
  counts[0] = (counts[0] as number) + allocated;
  counts[1] = (counts[1] as number) + ownerless;
  return i;
}

/** PG_ALLOCATED | PG_RESERVED in each byte of a word. */
const BUSY4 = (PG_ALLOCATED | PG_RESERVED) * 0x01010101;

/** Four allocated pages (state word `w`), none without an owner (no zero byte in owner word `ow`). */
function ownedX4(w: number, ow: number): boolean {
  return (w & PG_ALLOCATED_X4) === PG_ALLOCATED_X4 && ((ow - 0x01010101) & ~ow & 0x80808080) === 0;
}

// The free-block marks of the last audit, reused (zeroed) by the next; a whole number of words.
let freeMarkScratch = new Uint8Array(0);

function freeMarks(n: number): Uint8Array {
  const words = Math.ceil(n / 4) * 4;
  if (freeMarkScratch.length < words) freeMarkScratch = new Uint8Array(words);
  else freeMarkScratch.fill(0, 0, words);
  return freeMarkScratch.subarray(0, words);
}

/**
 * A sound state to audit changes from ({@link auditMmSince}): the page metadata's capture at that
 * moment and the page counters then.
 */
export interface MmAuditBase {
  /** The memory model it was taken of. */
  readonly mm: Mm;
  readonly capture: MetaCapture;
  readonly allocated: number;
  /** Pages the free blocks of each zone covered (= its counter, the base being sound). */
  readonly zoneFree: readonly number[];
}

/**
 * The base for {@link auditMmSince}, taken right after a snapshot or restore of a state auditMm
 * found sound; null when the metadata has no capture yet or was written since.
 * @example const base = auditMm(mm).length === 0 ? mmAuditBase(mm) : null
 */
export function mmAuditBase(mm: Mm): MmAuditBase | null {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'mmAuditBase', 'mm');
  const ref = mm.meta.lastCapture;
  if (ref === null || mm.meta.changedSince(ref).length > 0) return null;
  return { mm, capture: ref, allocated: mm.allocatedPages, zoneFree: mm.zones.map((z) => z.freePages) };
}

// Per-chunk coverage counts, reused (one chunk of pages at a time).
let coverScratch = new Uint8Array(0);
// A chunk of the base's state bytes with its deferred held pages written in (reused).
const oldScratch = new Uint8Array(2 ** DIRTY_CHUNK_SHIFT);

/** A Uint32Array over bytes [from, from + n) of `a` (whole words of it), or null when not 4-byte aligned. */
function words32(a: Uint8Array, from: number, n: number): Uint32Array | null {
  return ((a.byteOffset + from) & 3) === 0 ? new Uint32Array(a.buffer, a.byteOffset + from, n >>> 2) : null;
}

/** Bytes with bit 0 set in each byte of a 32-bit word of 0/1 bytes, summed. */
function byteOnes(x: number): number {
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * Pages of [from, from + n) whose state byte is neither allocated nor reserved (a word at a time
 * where aligned: a changed chunk's page loops were most of an audit since a failure point's base).
 */
function countFreeBytes(a: Uint8Array, from: number, n: number): number {
  const w = words32(a, from, n);
  let count = 0;
  let j = 0;
  if (w !== null) {
    for (let k = 0; k < w.length; k++) {
      const t = (w[k] as number) & BUSY4;
      // Bit 2 (PG_RESERVED) folded onto bit 0 (PG_ALLOCATED): one bit a busy byte.
      count += t === 0 ? 4 : 4 - byteOnes((t | (t >>> 2)) & 0x01010101);
    }
    j = w.length * 4;
  }
  for (; j < n; j++) if (((a[from + j] as number) & (PG_ALLOCATED | PG_RESERVED)) === 0) count++;
  return count;
}

/** Pages of [from, from + n) whose state byte says allocated (a word at a time where aligned). */
function countAllocatedBytes(a: Uint8Array, from: number, n: number): number {
  const w = words32(a, from, n);
  let count = 0;
  let j = 0;
  if (w !== null) {
    for (let k = 0; k < w.length; k++) count += byteOnes((w[k] as number) & PG_ALLOCATED_X4);
    j = w.length * 4;
  }
  for (; j < n; j++) if (((a[from + j] as number) & PG_ALLOCATED) !== 0) count++;
  return count;
}

/**
 * auditMm's checks for the pages whose metadata or buddy blocks changed since `base` (a state
 * auditMm found sound), and its counters from the changes: what auditMm would say, at a cost
 * proportional to what changed instead of to RAM (a failure sweep audits after every point).
 * @example
 * const base = mmAuditBase(mm); ...; expect(auditMmSince(mm, base)).toEqual([])
 */
export function auditMmSince(mm: Mm, base: MmAuditBase): string[] {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'auditMmSince', 'mm');
  if (typeof base !== 'object' || base === null || !(base.mm instanceof Mm) || !Array.isArray(base.capture?.chunks?.boxes) || !Array.isArray(base.zoneFree)) {
    throw new KernelError(EINVAL, 'auditMmSince', 'expected what mmAuditBase returned', 'base');
  }
  if (base.mm !== mm) throw new KernelError(EINVAL, 'auditMmSince', 'the base was taken of another machine\'s memory', 'base');
  // The full audit's order and cut-off: page-in-block problems, zone counters, lost pages (it
  // stops after 21 lines there), then the totals.
  const out: string[] = [];
  const lost: string[] = [];
  const meta = mm.meta;
  const { state, owner } = meta;
  const busy = PG_ALLOCATED | PG_RESERVED;
  const zones = mm.zones;
  // Per zone: pages the free blocks cover now minus the pages free in the base, over changed chunks.
  const dZone = zones.map(() => 0);
  let dAllocated = 0;
  let ownerless = 0;
  for (const c of meta.changedSince(base.capture)) {
    const i0 = c * 2 ** DIRTY_CHUNK_SHIFT;
    const i1 = Math.min(state.length, i0 + 2 ** DIRTY_CHUNK_SHIFT);
    meta.resolve(i0, i1);
    if (coverScratch.length < i1 - i0) coverScratch = new Uint8Array(2 ** DIRTY_CHUNK_SHIFT);
    const cover = coverScratch;
    cover.fill(0, 0, i1 - i0);
    const old = meta.chunkAt(base.capture, 0, c, oldScratch);
    // Count the free blocks over each page of the chunk, one pfn-consecutive run at a time.
    for (let i = i0; i < i1;) {
      const pfn0 = meta.pfnOf(i);
      const n = Math.min(i1, meta.runEnd(i)) - i;
      const at = i - i0 - pfn0;
      for (let z = 0; z < zones.length; z++) {
        const zone = zones[z] as (typeof zones)[number];
        const lo = Math.max(pfn0, zone.span.startPfn);
        const hi = Math.min(pfn0 + n, zone.span.endPfn);
        if (lo >= hi) continue;
        let covered = 0;
        zone.forEachFreeBlockIn(lo, hi, (bp, o) => {
          const start = Math.max(bp, lo);
          const end = Math.min(bp + (POW2[o] as number), hi);
          // A block over pages no other block covered yet: one fill (the common case; per page, a
          // changed chunk's free blocks were most of an audit since a failure point's base).
          if (end - start >= 16 && allLike(cover, start + at, end - start, ZEROS)) cover.fill(1, start + at, end + at);
          else for (let p = start; p < end; p++) cover[p + at] = (cover[p + at] as number) + 1;
          covered += end - start;
        });
        // In the sound base a page was free (in exactly one block) when neither allocated nor reserved.
        const wasFree = countFreeBytes(old, lo + at, hi - lo);
        dZone[z] = (dZone[z] as number) + covered - wasFree;
      }
      i += n;
    }
    dAllocated -= countAllocatedBytes(old, 0, i1 - i0);
    // Four pages at a time where they are four free pages each in one block, or four allocated
    // pages with owners and no block (what most of a chunk is); the others one by one.
    const st32 = words32(state, i0, i1 - i0);
    const own32 = words32(owner, i0, i1 - i0);
    const cov32 = words32(cover, 0, i1 - i0);
    for (let j = 0; j < i1 - i0; j++) {
      if (st32 !== null && own32 !== null && cov32 !== null && (j & 3) === 0 && j + 4 <= i1 - i0) {
        const w = st32[j >>> 2] as number;
        const cw = cov32[j >>> 2] as number;
        if (w === 0 && cw === 0x01010101) { j += 3; continue; }
        if (cw === 0 && ownedX4(w, own32[j >>> 2] as number)) { dAllocated += 4; j += 3; continue; }
      }
      const s = state[i0 + j] as number;
      const cv = cover[j] as number;
      // As auditMm walks each block: a second and third cover of a page each say so, and each
      // cover of a busy page says it.
      for (let k = 1; k < cv; k++) out.push(`pfn 0x${meta.pfnOf(i0 + j).toString(16)} is in two free blocks`);
      if ((s & busy) !== 0) for (let k = 0; k < cv; k++) out.push(`pfn 0x${meta.pfnOf(i0 + j).toString(16)} is free in the buddy allocator but marked ${s & PG_RESERVED ? 'reserved' : 'allocated'}`);
      if (cv === 0 && (s & busy) === 0) lost.push(`pfn 0x${meta.pfnOf(i0 + j).toString(16)} is neither free nor allocated (lost)`);
      if ((s & PG_ALLOCATED) !== 0) {
        dAllocated++;
        if (owner[i0 + j] === 0) ownerless++;
      }
    }
  }
  let free = 0;
  for (let z = 0; z < zones.length; z++) {
    const zone = zones[z] as (typeof zones)[number];
    const covered = (base.zoneFree[z] as number) + (dZone[z] as number);
    if (covered !== zone.freePages) out.push(`zone ${zone.span.name}: free blocks cover ${covered} pages, counter says ${zone.freePages}`);
    free += covered;
  }
  for (const line of lost) {
    out.push(line);
    if (out.length > 20) return out;
  }
  if (ownerless > 0) out.push(`${ownerless} allocated pages have no owner`);
  const allocated = base.allocated + dAllocated;
  if (allocated !== mm.allocatedPages) out.push(`${allocated} pages are marked allocated, the counter says ${mm.allocatedPages}`);
  if (free !== mm.freePages) out.push(`free pages ${free} != counter ${mm.freePages}`);
  return out;
}
