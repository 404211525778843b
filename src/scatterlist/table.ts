/**
 * @module scatterlist/table
 * `struct sg_table` and `struct sg_append_table`, sg_alloc_table and the free walks, laid out
 * exactly as __sg_alloc_table / __sg_free_table: 127 data slots + 1 chain link per full chunk.
 */
import { defaultContext, type KernelContext } from '../core/context.ts';
import { EINVAL, ENOMEM } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { checkInt, checkU32, checkContext, notInstance } from '../core/args.ts';
import { __sg_chain, Scatterlist, sg_mark_end } from './entry.ts';
import { arenaOf, SEG_MASK, SEG_SHIFT, SG_CHAIN, SG_MAX_SINGLE_ALLOC, SLOT_WORDS, type SlotArena, W_FLAGS, W_PAGE } from './slots.ts';

export { SG_MAX_SINGLE_ALLOC } from './slots.ts';
/** Entries per sg_pool chunk. */
export const SG_CHUNK_SIZE = 128;
/** Most segments a block request may have (SG_MAX_SEGMENTS with chaining). */
export const SG_MAX_SEGMENTS = 2048;

/**
 * struct sg_table.
 * @example
 * const sgt = new SgTable(machine);
 * sg_alloc_table(sgt, 300, GFP_KERNEL); // 0; sgt.orig_nents === 300
 * sg_free_table(sgt);
 */
export class SgTable {
  /** First entry, or null. */
  sgl: Scatterlist | null = null;
  /** Entries mapped for DMA (set by dma_map_sgtable). */
  nents = 0;
  /** CPU entries (data slots; chain links not counted). */
  orig_nents = 0;
  /** The machine whose memory holds the table. */
  readonly ctx: KernelContext;
  /** @internal the slot arena of the table's machine (looked up once: a WeakMap lookup per append call cost ~10 ns) */
  readonly arena: SlotArena;

  constructor(ctx: KernelContext = defaultContext()) {
    this.ctx = ctx;
    this.arena = arenaOf(ctx);
  }
}

/**
 * struct sg_append_table: a table grown by sg_alloc_append_table_from_pages.
 * @example const app = new SgAppendTable(machine); app.sgt.nents
 */
export class SgAppendTable {
  readonly sgt: SgTable;
  /** Last data entry written so far, or null. */
  prv: Scatterlist | null = null;
  /** Slots allocated, minus those used as chain links. */
  total_nents = 0;
  /**
   * @internal Where prv's chunk ends, kept by the builder so a continuation call need not walk the
   * unused slots after prv to find it (a walk of up to 126 slots cost ~130 ns a call).
   * INVARIANT: when hintPrv === prv.slot, hintEnd is the first marked (END or CHAIN) slot after
   *   prv, and the slots between them are unused; hintPrv is -1 when nothing is known.
   */
  hintPrv = -1;
  /** @internal see hintPrv */
  hintEnd = -1;

  constructor(ctx: KernelContext = defaultContext()) {
    this.sgt = new SgTable(ctx);
  }
}

/**
 * __sg_alloc_table with the kernel's chunking. Returns 0, -EINVAL (nents 0) or -ENOMEM (the table
 * is left for the caller to free, its orig_nents counting the previous chunk's link slot).
 */
export function __sg_alloc_table(table: SgTable, nents: number, max_ents: number): number {
  if (!(table instanceof SgTable)) throw notInstance(table, SgTable, '__sg_alloc_table', 'table');
  checkU32(nents, '__sg_alloc_table', 'nents');
  // A chunk of one slot has no room for data beside its chain link: the loop would never end.
  checkInt(max_ents, '__sg_alloc_table', 'max_ents', nents > max_ents ? 2 : 1, SG_MAX_SINGLE_ALLOC);
  table.sgl = null;
  table.nents = 0;
  table.orig_nents = 0;
  if (nents === 0) return -EINVAL;
  const arena = table.arena;
  let left = nents;
  let prvBase = -1;
  do {
    let allocSize = left;
    let sgSize = allocSize;
    if (allocSize > max_ents) {
      allocSize = max_ents;
      sgSize = allocSize - 1;
    }
    left -= sgSize;
    const base = arena.allocChunk(allocSize);
    if (base < 0) {
      if (prvBase >= 0) table.nents = ++table.orig_nents;
      return -ENOMEM;
    }
    table.nents = table.orig_nents += sgSize;
    const first = new Scatterlist(arena, base);
    if (prvBase >= 0) __sg_chain(new Scatterlist(arena, prvBase + max_ents - 1), first);
    else table.sgl = first;
    if (left === 0) sg_mark_end(first.at(sgSize - 1));
    prvBase = base;
  } while (left > 0);
  return 0;
}

/**
 * sg_alloc_table: a table of `nents` entries in chained page-sized chunks. On failure the table is
 * freed before returning.
 * @returns 0, -EINVAL when nents is 0, -ENOMEM.
 * @example sg_alloc_table(sgt, 129, GFP_KERNEL) // chunks of 128 (127 + link) and 2
 */
export function sg_alloc_table(table: SgTable, nents: number, gfp: number): number {
  if (!(table instanceof SgTable)) throw notInstance(table, SgTable, 'sg_alloc_table', 'table');
  checkU32(nents, 'sg_alloc_table', 'nents');
  checkU32(gfp, 'sg_alloc_table', 'gfp');
  const ret = __sg_alloc_table(table, nents, SG_MAX_SINGLE_ALLOC);
  if (ret !== 0) sg_free_table(table);
  return ret;
}

/**
 * __sg_free_table: walk `num_ents` data slots assuming every non-final chunk holds `max_ents` slots,
 * freeing each chunk. The walk is checked before anything is freed: a layout that does not match
 * (the kernel would read past a chunk) is a KernelBug and frees nothing.
 */
export function __sg_free_table(table: SgTable, max_ents: number, num_ents: number, fn = 'sg_free_table'): void {
  if (!(table instanceof SgTable)) throw notInstance(table, SgTable, '__sg_free_table', 'table');
  const sgl = table.sgl;
  if (sgl === null) return;
  const arena = sgl.arena;
  let chunks = 0;
  let lastSize = 0;
  let base = sgl.slot;
  let left = num_ents;
  while (left > 0) {
    let allocSize = left;
    let sgSize = allocSize;
    let next = -1;
    if (allocSize > max_ents) {
      const link = base + max_ents - 1;
      const seg = arena.segs[link >>> SEG_SHIFT];
      const w = (link & SEG_MASK) * SLOT_WORDS;
      if (seg === undefined || (((seg[w + W_FLAGS] as number) & SG_CHAIN) === 0) || arena.chunkClassOf(base) < 0) {
        throw new KernelBug(fn, `slot ${max_ents - 1} of the chunk at ${base} is not a chain link: the table's layout does not match ${num_ents} entries (the kernel would overrun the chunk)`);
      }
      next = seg[w + W_PAGE] as number;
      allocSize = max_ents;
      sgSize = allocSize - 1;
    }
    if (chunks === walkBases.length) growWalk();
    walkBases[chunks] = base;
    lastSize = allocSize;
    chunks++;
    left -= sgSize;
    base = next;
  }
  // Every chunk but the last was checked by the walk (it had a chain link); check the last one here.
  if (chunks > 0) {
    const last = walkBases[chunks - 1] as number;
    if (arena.chunkClassOf(last) < 0) throw new KernelBug(fn, `chunk at slot ${last} is not allocated (double free?)`);
  }
  // Newest first, so the LIFO free lists hand the next table its chunks in ascending address order
  // (a forward walk through the arena; measured below in bench/coalesce). Every chunk but the last
  // holds max_ents slots.
  for (let i = chunks - 1; i >= 0; i--) arena.freeChunk(walkBases[i] as number, i === chunks - 1 ? lastSize : max_ents);
  table.sgl = null;
}

// The chunk walk's record of chunk bases, reused by every free (single-threaded, never held across
// calls): one array per free, not a [base, size] pair per chunk (scattered 1M pages: the free took
// 0.43-0.56 ns/page, now 0.34-0.38). INVARIANT: only indexes below the current walk's count mean anything.
let walkBases = new Int32Array(64);

function growWalk(): void {
  const bases = new Int32Array(walkBases.length * 2);
  bases.set(walkBases);
  walkBases = bases;
}

/**
 * sg_free_table: free the chunks of a table (walking orig_nents). nents/orig_nents are left as they
 * were, as in the kernel; a second call does nothing.
 */
export function sg_free_table(table: SgTable): void {
  if (!(table instanceof SgTable)) throw notInstance(table, SgTable, 'sg_free_table', 'table');
  __sg_free_table(table, SG_MAX_SINGLE_ALLOC, table.orig_nents);
}

/**
 * sg_free_append_table: free a table built with the append API (walking total_nents, which counts
 * pre-allocated slots that were never used).
 */
export function sg_free_append_table(table: SgAppendTable): void {
  if (!(table instanceof SgAppendTable)) throw notInstance(table, SgAppendTable, 'sg_free_append_table', 'table');
  __sg_free_table(table.sgt, SG_MAX_SINGLE_ALLOC, table.total_nents, 'sg_free_append_table');
}

/**
 * A standalone scatterlist array of `nents` slots (what a driver declares as `struct scatterlist
 * sg[n]` or kmalloc_array()s), zeroed and END-marked. Free it with {@link sg_kfree}.
 * @returns the first entry, or null on allocation failure.
 * @example const sg = sg_kmalloc(1, machine)!; sg_init_one(...)
 */
export function sg_kmalloc(nents: number, ctx: KernelContext = defaultContext()): Scatterlist | null {
  checkContext(ctx, 'sg_kmalloc', 'ctx');
  if (!Number.isInteger(nents) || nents < 1 || nents > SG_MAX_SINGLE_ALLOC) {
    throw new KernelError(EINVAL, 'sg_kmalloc', `expected 1..${SG_MAX_SINGLE_ALLOC} entries, got ${nents}`, 'nents');
  }
  const arena = arenaOf(ctx);
  const base = arena.allocChunk(nents);
  return base < 0 ? null : new Scatterlist(arena, base);
}

/** Free an array from {@link sg_kmalloc}. */
export function sg_kfree(sgl: Scatterlist, nents: number): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'sg_kfree', 'sgl');
  sgl.arena.freeChunk(sgl.slot, nents);
}
