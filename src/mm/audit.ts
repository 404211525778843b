/**
 * @module mm/audit
 * Consistency of the memory model: every RAM page is either free in exactly one buddy block or
 * allocated with an owner, and the counters agree.
 */
import { MAX_PAGE_ORDER } from './constants.ts';
import { Mm } from './mm.ts';
import { PG_ALLOCATED, PG_RESERVED } from './page-meta.ts';
import { notInstance } from '../core/args.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { DIRTY_CHUNK_SHIFT, type DirtyCapture } from '../core/byte-chunks.ts';

/**
 * Violations of the memory model's invariants (empty when sound). Walks every page: O(RAM).
 * @example expect(auditMm(machine.mm)).toEqual([])
 */
export function auditMm(mm: Mm): string[] {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'auditMm', 'mm');
  const out: string[] = [];
  const meta = mm.meta;
  const { state, owner } = meta;
  // Indexed like the metadata: RAM pages only.
  const freeMark = new Uint8Array(state.length);
  let freeSeen = 0;
  for (const zone of mm.zones) {
    let zoneFree = 0;
    for (const [pfn, o] of zone.blocks()) {
      const n = 2 ** o;
      // A block inside one RAM range has consecutive metadata indices: mark it in one tight loop
      // and walk it page by page only to name a problem (audit of a 1 GiB machine 2.8 -> see
      // bench/RESULTS.md, session 7: every forEachFailurePoint run audits).
      const i0 = meta.index(pfn);
      if (i0 >= 0 && meta.index(pfn + n - 1) === i0 + n - 1) {
        let bad = 0;
        for (let i = i0; i < i0 + n; i++) bad |= (freeMark[i] as number) | ((state[i] as number) & (PG_ALLOCATED | PG_RESERVED));
        if (bad === 0) {
          freeMark.fill(1, i0, i0 + n);
          zoneFree += n;
          if (o > MAX_PAGE_ORDER) out.push(`free block of order ${o}`);
          continue;
        }
      }
      for (let p = pfn; p < pfn + n; p++) {
        const i = meta.index(p);
        if (i < 0) { out.push(`pfn 0x${p.toString(16)} is free in the buddy allocator but is not RAM`); continue; }
        if (freeMark[i] !== 0) out.push(`pfn 0x${p.toString(16)} is in two free blocks`);
        freeMark[i] = 1;
        if (((state[i] as number) & (PG_ALLOCATED | PG_RESERVED)) !== 0) out.push(`pfn 0x${p.toString(16)} is free in the buddy allocator but marked ${(state[i] as number) & PG_RESERVED ? 'reserved' : 'allocated'}`);
      }
      zoneFree += 2 ** o;
      if (o > MAX_PAGE_ORDER) out.push(`free block of order ${o}`);
    }
    if (zoneFree !== zone.freePages) out.push(`zone ${zone.span.name}: free blocks cover ${zoneFree} pages, counter says ${zone.freePages}`);
    freeSeen += zoneFree;
  }
  let allocated = 0;
  let ownerless = 0;
  const allocatedBit = PG_ALLOCATED;
  const reservedBit = PG_RESERVED;
  for (const r of mm.ram) {
    const first = meta.index(r.startPfn);
    const last = first + (r.endPfn - r.startPfn);
    for (let i = first; i < last; i++) {
      const s = state[i] as number;
      if ((s & allocatedBit) !== 0) {
        allocated++;
        if (owner[i] === 0) ownerless++;
      } else if ((s & reservedBit) === 0 && freeMark[i] === 0) {
        out.push(`pfn 0x${(r.startPfn + i - first).toString(16)} is neither free nor allocated (lost)`);
        if (out.length > 20) return out;
      }
    }
  }
  if (ownerless > 0) out.push(`${ownerless} allocated pages have no owner`);
  if (allocated !== mm.allocatedPages) out.push(`${allocated} pages are marked allocated, the counter says ${mm.allocatedPages}`);
  if (freeSeen !== mm.freePages) out.push(`free pages ${freeSeen} != counter ${mm.freePages}`);
  return out;
}

/**
 * A sound state to audit changes from ({@link auditMmSince}): the page metadata's capture at that
 * moment and the page counters then.
 */
export interface MmAuditBase {
  /** The memory model it was taken of. */
  readonly mm: Mm;
  readonly capture: DirtyCapture;
  readonly allocated: number;
  readonly free: number;
}

/**
 * The base for {@link auditMmSince}, taken right after a snapshot or restore of a state auditMm
 * found sound; null when the metadata has no capture yet or was written since.
 * @example const base = auditMm(mm).length === 0 ? mmAuditBase(mm) : null
 */
export function mmAuditBase(mm: Mm): MmAuditBase | null {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'mmAuditBase', 'mm');
  const ref = mm.meta.lastCapture;
  if (ref === null || mm.meta.written.changedSince(ref).length > 0) return null;
  return { mm, capture: ref, allocated: mm.allocatedPages, free: mm.freePages };
}

// Per-chunk coverage counts, reused (one chunk of pages at a time).
let coverScratch = new Uint8Array(0);

/**
 * auditMm's checks for the pages whose metadata or buddy blocks changed since `base` (a state
 * auditMm found sound), and its counters from the changes: what auditMm would say, at a cost
 * proportional to what changed instead of to RAM (a failure sweep audits after every point).
 * @example
 * const base = mmAuditBase(mm); ...; expect(auditMmSince(mm, base)).toEqual([])
 */
export function auditMmSince(mm: Mm, base: MmAuditBase): string[] {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'auditMmSince', 'mm');
  if (typeof base !== 'object' || base === null || !(base.mm instanceof Mm) || !Array.isArray(base.capture?.boxes)) {
    throw new KernelError(EINVAL, 'auditMmSince', 'expected what mmAuditBase returned', 'base');
  }
  if (base.mm !== mm) throw new KernelError(EINVAL, 'auditMmSince', 'the base was taken of another machine\'s memory', 'base');
  const out: string[] = [];
  const meta = mm.meta;
  const { state, owner } = meta;
  const busy = PG_ALLOCATED | PG_RESERVED;
  let dAllocated = 0;
  let dFree = 0;
  let ownerless = 0;
  for (const c of meta.written.changedSince(base.capture)) {
    const i0 = c * 2 ** DIRTY_CHUNK_SHIFT;
    const i1 = Math.min(state.length, i0 + 2 ** DIRTY_CHUNK_SHIFT);
    if (coverScratch.length < i1 - i0) coverScratch = new Uint8Array(2 ** DIRTY_CHUNK_SHIFT);
    const cover = coverScratch;
    cover.fill(0, 0, i1 - i0);
    // Count the free blocks over each page of the chunk, one pfn-consecutive run at a time.
    for (let i = i0; i < i1;) {
      const pfn0 = meta.pfnOf(i);
      const n = Math.min(i1, meta.runEnd(i)) - i;
      const at = i - i0 - pfn0;
      for (const zone of mm.zones) {
        zone.forEachFreeBlockIn(pfn0, pfn0 + n, (bp, o) => {
          const hi = Math.min(bp + 2 ** o, pfn0 + n);
          for (let p = Math.max(bp, pfn0); p < hi; p++) cover[p + at] = (cover[p + at] as number) + 1;
        });
      }
      i += n;
    }
    const old = meta.written.chunkAt(base.capture, 0, c);
    for (let j = 0; j < i1 - i0; j++) {
      const s = state[i0 + j] as number;
      const cv = cover[j] as number;
      if (cv > 1) out.push(`pfn 0x${meta.pfnOf(i0 + j).toString(16)} is in two free blocks`);
      if (cv > 0 && (s & busy) !== 0) out.push(`pfn 0x${meta.pfnOf(i0 + j).toString(16)} is free in the buddy allocator but marked ${s & PG_RESERVED ? 'reserved' : 'allocated'}`);
      if (cv === 0 && (s & busy) === 0) out.push(`pfn 0x${meta.pfnOf(i0 + j).toString(16)} is neither free nor allocated (lost)`);
      if (out.length > 20) return out;
      const was = old[j] as number;
      if ((s & PG_ALLOCATED) !== 0) {
        dAllocated++;
        if (owner[i0 + j] === 0) ownerless++;
      }
      if ((was & PG_ALLOCATED) !== 0) dAllocated--;
      // In the sound base state a page was free (in one block) exactly when neither allocated nor
      // reserved; blocks count with their multiplicity, as the counters do.
      dFree += cv - ((was & busy) === 0 ? 1 : 0);
    }
  }
  for (const zone of mm.zones) {
    let blocks = 0;
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) blocks += (zone.nrFree[o] as number) * 2 ** o;
    if (blocks !== zone.freePages) out.push(`zone ${zone.span.name}: free blocks cover ${blocks} pages, counter says ${zone.freePages}`);
  }
  if (ownerless > 0) out.push(`${ownerless} allocated pages have no owner`);
  const allocated = base.allocated + dAllocated;
  if (allocated !== mm.allocatedPages) out.push(`${allocated} pages are marked allocated, the counter says ${mm.allocatedPages}`);
  const free = base.free + dFree;
  if (free !== mm.freePages) out.push(`free pages ${free} != counter ${mm.freePages}`);
  return out;
}
