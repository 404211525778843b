/**
 * @module mm/audit
 * Consistency of the memory model: every RAM page is either free in exactly one buddy block or
 * allocated with an owner, and the counters agree.
 */
import { MAX_PAGE_ORDER } from './constants.ts';
import { Mm } from './mm.ts';
import { PG_ALLOCATED, PG_RESERVED } from './page-meta.ts';
import { notInstance } from '../core/args.ts';

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
