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
      for (let p = pfn; p < pfn + 2 ** o; p++) {
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
  for (const r of mm.ram) {
    const at = meta.index(r.startPfn) - r.startPfn;
    for (let p = r.startPfn; p < r.endPfn; p++) {
      const s = state[p + at] as number;
      if ((s & PG_ALLOCATED) !== 0) {
        allocated++;
        if (owner[p + at] === 0) ownerless++;
      } else if ((s & PG_RESERVED) === 0 && freeMark[p + at] === 0) {
        out.push(`pfn 0x${p.toString(16)} is neither free nor allocated (lost)`);
        if (out.length > 20) return out;
      }
    }
  }
  if (ownerless > 0) out.push(`${ownerless} allocated pages have no owner`);
  if (allocated !== mm.allocatedPages) out.push(`${allocated} pages are marked allocated, the counter says ${mm.allocatedPages}`);
  if (freeSeen !== mm.freePages) out.push(`free pages ${freeSeen} != counter ${mm.freePages}`);
  return out;
}
