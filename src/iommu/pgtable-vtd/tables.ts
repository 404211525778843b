/**
 * @module iommu/pgtable-vtd/tables
 * The table pages of one VT-d page table and their bookkeeping: struct-of-arrays storage, table by
 * table, 512 entries each; allocating a table and hooking it into its parent (vtdss_pt_install_table),
 * unhooking and releasing subtrees (to the allocator or onto a gather freelist), the rollback of a
 * failed map, and the counters IoPgtableOps reports.
 *
 * The PTE words are the hardware's (two 32-bit halves per entry); beside them sit two software
 * shadows the hardware never reads: `next` (which table a pointer leads to: the simulator's
 * phys_to_virt) and `prot` (the IOMMU_* bits a leaf was mapped with, for walkProt).
 */
import type { FaultInjector } from '../../core/fault.ts';
import type { TablePageAllocator } from '../pgtable-alloc.ts';
import type { LeafVisitor } from '../pgtable-ops.ts';
import { VTD_LEVEL_SIZE } from './geometry.ts';
import { VTD_HI_ADDR_MASK, VTD_LO_ADDR_MASK, VTD_PAGE_SIZE, VTD_PTE_R, VTD_PTE_W, VTD_TABLE_ENTRIES, vtdHiOf, vtdLoOf } from './pte.ts';

const EPL = VTD_TABLE_ENTRIES;
const TWO32 = 4294967296;
const PTE_RW = VTD_PTE_R | VTD_PTE_W;
const SIZE = VTD_LEVEL_SIZE;

/**
 * The table pages of one VT-d page table.
 * @example
 * const tables = new VtdTables(alloc, undefined);
 * const top = tables.newTable(4, -1); // 0: the top table, hooked nowhere
 */
export class VtdTables {
  // INVARIANT: table t is live ⇔ level[t] >= 1 (the VT-d level of its entries); a free table has
  //   level 0, all entries 0 (lo, hi, next, prot) and is in freeIds or at or above hwm.
  // INVARIANT: for a live entry e: next[e] === c + 1 ⇔ e is a table pointer to live table c, and then
  //   parent[c] === e and the PTE's address bits equal pfn[c] * 4096; next[e] === 0 for leaves and
  //   empty entries. prot[e] is the IOMMU_* prot of a leaf, 0 otherwise.
  // INVARIANT: used[t] === number of non-zero entries (lo !== 0) of live table t; seq[t] is its
  //   allocation number (unique, increasing).
  // INVARIANT: tablePages === live tables; deferredPages === pages handed out on gather freelists and
  //   not yet given back; mappedBytes === the sum of all leaves' sizes.
  // INVARIANT: walk cache: cacheKey >= 0 ⇒ table cacheTable is live at level 1 and translates every
  //   IOVA with floor(iova / 2 MiB) === cacheKey. Every release sets cacheKey to -1.
  // Two Uint32Array halves, not a BigUint64Array: reading a PTE and decoding its address measured
  // 1-4 ns against 16-21 ns a read (every BigUint64Array read boxes a BigInt; Node 20, 20M reads).
  lo: Uint32Array;
  hi: Uint32Array;
  next: Int32Array;
  prot: Uint8Array;
  pfn: Float64Array;
  level: Int8Array;
  parent: Float64Array;
  used: Uint16Array;
  seq: Float64Array;
  cap: number;
  /** One past the highest table id ever handed out. */
  hwm = 0;
  readonly freeIds: number[] = [];
  private readonly _stack: number[] = [];
  readonly alloc: TablePageAllocator;
  readonly faults: FaultInjector | undefined;

  tablePages = 0;
  tableAllocs = 0;
  peakTablePages = 0;
  deferredPages = 0;
  mappedBytes = 0;
  epoch = 0;
  cacheKey = -1;
  cacheTable = 0;

  /**
   * @param alloc where table pages come from.
   * @param faults consulted with 'pgtable' before each allocation.
   * @param cap tables to preallocate room for (the arrays double when full).
   */
  constructor(alloc: TablePageAllocator, faults: FaultInjector | undefined, cap = 8) {
    this.alloc = alloc;
    this.faults = faults;
    this.cap = cap;
    this.lo = new Uint32Array(cap * EPL);
    this.hi = new Uint32Array(cap * EPL);
    this.next = new Int32Array(cap * EPL);
    this.prot = new Uint8Array(cap * EPL);
    this.pfn = new Float64Array(cap);
    this.level = new Int8Array(cap);
    this.parent = new Float64Array(cap).fill(-1);
    this.used = new Uint16Array(cap);
    this.seq = new Float64Array(cap);
  }

  /**
   * Is table `t` live?
   * @example tables.isLive(0) // true while the page table lives
   */
  isLive(t: number): boolean {
    return (this.level[t] as number) >= 1;
  }

  /**
   * Allocate a table page for a table at `level` and, when `parent` >= 0, point entry `parent` at it
   * with R|W and its address (vtdss_pt_install_table). Returns its id, or -1 when allocation fails.
   * @example const t = tables.newTable(3, e); if (t < 0) return -ENOMEM;
   */
  newTable(level: number, parent: number): number {
    if (this.faults !== undefined && this.faults.shouldFail('pgtable')) return -1;
    const pfn = this.alloc.allocTablePage(VTD_PAGE_SIZE);
    if (pfn === null) return -1;
    let t: number;
    if (this.freeIds.length > 0) {
      t = this.freeIds.pop() as number;
    } else {
      if (this.hwm === this.cap) this._grow();
      t = this.hwm++;
    }
    this.pfn[t] = pfn;
    this.level[t] = level;
    this.parent[t] = parent;
    this.seq[t] = ++this.tableAllocs;
    if (++this.tablePages > this.peakTablePages) this.peakTablePages = this.tablePages;
    if (parent >= 0) {
      const phys = pfn * VTD_PAGE_SIZE;
      this.lo[parent] = vtdLoOf(phys, PTE_RW);
      this.hi[parent] = vtdHiOf(phys);
      this.next[parent] = t + 1;
      const pt = Math.floor(parent / EPL);
      this.used[pt] = (this.used[pt] as number) + 1;
    }
    return t;
  }

  /**
   * Clear table-pointer entry `e` and return the table it pointed to (still live: release it next).
   * @example tables.release(tables.unhook(e), gather.freelist)
   */
  unhook(e: number): number {
    const c = (this.next[e] as number) - 1;
    this.lo[e] = 0;
    this.hi[e] = 0;
    this.next[e] = 0;
    const pt = Math.floor(e / EPL);
    this.used[pt] = (this.used[pt] as number) - 1;
    this.epoch++;
    return c;
  }

  /**
   * Release table `root` and every table under it (their leaves leave mappedBytes): the pages go on
   * `deferTo`, or straight back to the allocator. The entry pointing at `root` is already cleared.
   * @example tables.release(0, null) // the whole page table
   */
  release(root: number, deferTo: number[] | null): void {
    this.cacheKey = -1;
    const stack = this._stack;
    stack.push(root);
    while (stack.length > 0) {
      const t = stack.pop() as number;
      const base = t * EPL;
      if ((this.used[t] as number) > 0) {
        const size = SIZE[this.level[t] as number] as number;
        for (let e = base; e < base + EPL; e++) {
          const c = this.next[e] as number;
          if (c !== 0) stack.push(c - 1);
          else if (this.lo[e] !== 0) this.mappedBytes -= size;
        }
        this.lo.fill(0, base, base + EPL);
        this.hi.fill(0, base, base + EPL);
        this.next.fill(0, base, base + EPL);
        this.prot.fill(0, base, base + EPL);
      }
      const pfn = this.pfn[t] as number;
      this.used[t] = 0;
      this.level[t] = 0;
      this.parent[t] = -1;
      this.freeIds.push(t);
      this.tablePages--;
      if (deferTo !== null) {
        deferTo.push(pfn);
        this.deferredPages++;
      } else {
        this.alloc.freeTablePage(pfn, VTD_PAGE_SIZE);
      }
    }
  }

  /**
   * Does anything under table `root` map memory? (clear_contig's check before a superpage replaces
   * a table.)
   * @example if (tables.subtreeMaps(c)) return -EADDRINUSE;
   */
  subtreeMaps(root: number): boolean {
    const stack = this._stack;
    stack.push(root);
    let found = false;
    while (stack.length > 0 && !found) {
      const t = stack.pop() as number;
      for (let e = t * EPL, end = e + EPL; e < end && !found; e++) {
        const c = this.next[e] as number;
        if (c !== 0) stack.push(c - 1);
        else if (this.lo[e] !== 0) found = true;
      }
    }
    stack.length = 0;
    return found;
  }

  /**
   * Free, newest first, every still-empty table allocated after tableAllocs was `since`, unhooking
   * it from its parent. Returns the number freed.
   * @example tables.rollbackSince(since) // 3 after a failed 4 KiB map that built three tables
   */
  rollbackSince(since: number): number {
    const found: number[] = [];
    for (let t = 1; t < this.hwm; t++) if (this.isLive(t) && (this.seq[t] as number) > since) found.push(t);
    found.sort((x, y) => (this.seq[y] as number) - (this.seq[x] as number));
    let freed = 0;
    for (const t of found) {
      if (this.used[t] !== 0) continue;
      this.unhook(this.parent[t] as number);
      this.release(t, null);
      freed++;
    }
    return freed;
  }

  /**
   * Visit the leaves under table `t` (at `level`, first IOVA `base`) in IOVA order.
   * @example tables.visit(0, 4, 0, (iova, size, phys, prot) => out.push(iova))
   */
  visit(t: number, level: number, base: number, visit: LeafVisitor): void {
    const size = SIZE[level] as number;
    for (let i = 0; i < EPL; i++) {
      const e = t * EPL + i;
      const w = this.lo[e] as number;
      if (w === 0) continue;
      const c = this.next[e] as number;
      if (c !== 0) {
        this.visit(c - 1, level - 1, base + i * size, visit);
      } else {
        const phys = ((this.hi[e] as number) & VTD_HI_ADDR_MASK) * TWO32 + ((w & VTD_LO_ADDR_MASK) >>> 0);
        visit(base + i * size, size, phys, (w & PTE_RW) | ((this.prot[e] as number) & ~PTE_RW));
      }
    }
  }

  /**
   * The pfns of the live tables, in id order (the top table first).
   * @example tables.livePfns().length === tables.tablePages // true
   */
  livePfns(): number[] {
    const out: number[] = [];
    for (let t = 0; t < this.hwm; t++) if (this.isLive(t)) out.push(this.pfn[t] as number);
    return out;
  }

  /**
   * Live tables below the top with no entries.
   * @example tables.emptyTables() // 0 on a fresh table
   */
  emptyTables(): number {
    let n = 0;
    for (let t = 1; t < this.hwm; t++) if (this.isLive(t) && this.used[t] === 0) n++;
    return n;
  }

  private _grow(): void {
    const cap = this.cap * 2;
    const widen = <T extends Uint32Array | Int32Array | Uint8Array | Uint16Array | Float64Array | Int8Array>(old: T, out: T): T => {
      out.set(old as never);
      return out;
    };
    this.lo = widen(this.lo, new Uint32Array(cap * EPL));
    this.hi = widen(this.hi, new Uint32Array(cap * EPL));
    this.next = widen(this.next, new Int32Array(cap * EPL));
    this.prot = widen(this.prot, new Uint8Array(cap * EPL));
    this.pfn = widen(this.pfn, new Float64Array(cap));
    this.level = widen(this.level, new Int8Array(cap));
    this.parent = widen(this.parent, new Float64Array(cap).fill(-1));
    this.used = widen(this.used, new Uint16Array(cap));
    this.seq = widen(this.seq, new Float64Array(cap));
    this.cap = cap;
  }
}
