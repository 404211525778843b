/**
 * @module mm/driver-pages
 * Pages a driver allocates itself and must give back (alloc_pages, alloc_pages_exact, vmalloc),
 * counted by owner: what a failure sweep compares before and after an operation to name the pages
 * its failure path leaked. The simulated kernel's own pages (slab caches, page tables, swiotlb,
 * coherent pools, user mappings) have owners of their own and may legitimately stay allocated.
 */
import { Mm } from './mm.ts';
import { OWNER_ID, PG_ALLOCATED, PG_ALLOCATED_X4 } from './page-meta.ts';
import { DIRTY_CHUNK_SHIFT } from '../core/byte-chunks.ts';
import { notInstance } from '../core/args.ts';
import type { MmAuditBase } from './audit.ts';

/** The owners counted, and the kernel call that hands such pages out (for messages). */
export const DRIVER_PAGE_OWNERS = [['pages', 'alloc_pages'], ['pages-exact', 'alloc_pages_exact'], ['vmalloc', 'vmalloc']] as const;

// SLOT[owner id] = index in DRIVER_PAGE_OWNERS, or -1: one load per allocated page (a fragmented
// 16 GiB machine has two million).
const SLOT = new Int8Array(256).fill(-1);
DRIVER_PAGE_OWNERS.forEach(([o], k) => { SLOT[OWNER_ID[o]] = k; });

/** Add (sign 1) or take away (sign -1) the driver pages among metadata bytes `state`/`owner`. */
function tally(counts: number[], state: Uint8Array, owner: Uint8Array, sign: number): void {
  // Four free pages a word are skipped at once (most of a test machine is free).
  const words = (state.byteOffset & 3) === 0 ? new Uint32Array(state.buffer, state.byteOffset, state.length >>> 2) : null;
  for (let i = 0; i < state.length; i++) {
    if (words !== null && (i & 3) === 0 && i + 4 <= state.length && ((words[i >>> 2] as number) & PG_ALLOCATED_X4) === 0) { i += 3; continue; }
    if (((state[i] as number) & PG_ALLOCATED) === 0) continue;
    const k = SLOT[owner[i] as number] as number;
    if (k >= 0) counts[k] = (counts[k] as number) + sign;
  }
}

/**
 * Allocated pages per owner of {@link DRIVER_PAGE_OWNERS}, by walking all RAM.
 * @example const before = driverPages(machine.mm); op(); const after = driverPages(machine.mm);
 */
export function driverPages(mm: Mm): number[] {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'driverPages', 'mm');
  const counts = DRIVER_PAGE_OWNERS.map(() => 0);
  tally(counts, mm.meta.state, mm.meta.owner, 1);
  return counts;
}

/**
 * {@link driverPages} now, from its value `atBase` at a snapshot's capture (`base`): only the
 * metadata chunks changed since are walked.
 * @example const now = driverPagesSince(mm, base, driverPages(mm) taken at the capture);
 */
export function driverPagesSince(mm: Mm, base: MmAuditBase, atBase: readonly number[]): number[] {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'driverPagesSince', 'mm');
  const counts = [...atBase];
  const { meta } = mm;
  // Deferred held pages (still reading as free) are the fragmenter's: never counted either way.
  for (const c of meta.changedSince(base.capture)) {
    const i0 = c * 2 ** DIRTY_CHUNK_SHIFT;
    const i1 = Math.min(meta.state.length, i0 + 2 ** DIRTY_CHUNK_SHIFT);
    tally(counts, meta.state.subarray(i0, i1), meta.owner.subarray(i0, i1), 1);
    tally(counts, meta.written.chunkAt(base.capture.chunks, 0, c), meta.written.chunkAt(base.capture.chunks, 1, c), -1);
  }
  return counts;
}
