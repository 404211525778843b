/**
 * @module iommu/pgtable
 * A multi-level IO page table with io-pgtable-arm's rules (drivers/iommu/io-pgtable-arm.c):
 * - map_pages writes `pgcount` leaves of `pgsize` at the level whose entries are that size, within one
 *   table page per call, allocating missing tables on the way down (-ENOMEM when that fails). A leaf
 *   already on the path or in a target slot: WARN and -EEXIST ("We require an unmap first"). A table
 *   in a target slot is unhooked and freed (with whatever it still maps) before the block goes in.
 *   No READ/WRITE in prot: -EINVAL. IOVA beyond the input width or paddr beyond the output width:
 *   WARN and -ERANGE. A page size not supported: WARN and -EINVAL.
 * - unmap_pages clears up to `pgcount` entries of `pgsize` within one table page; it stops at an
 *   empty entry (WARN unless the no-warn quirk; returns what it cleared), refuses to split a larger
 *   leaf (WARN_ONCE "Unmap of a partial large IOPTE is not allowed", returns 0), and when the slot
 *   holds a table the whole subtree goes. Cleared leaves are added to the gather page by page unless
 *   the gather is queued (a flush queue will flush everything).
 *
 * Table pages: tables are freed only when an unmap or a block mapping covers the whole table's
 * range, or when the page table is freed (io-pgtable-arm's behaviour; a table emptied page by page
 * stays, ready for reuse). With a gather, freed table pages go on `gather.freelist` and are released
 * after the IOTLB sync, or by the flush queue in lazy mode (VT-d's freelist); without a gather they
 * are freed at once after a walk flush. A map call that fails part-way also frees the tables it
 * allocated, so the table is left exactly as before (see {@link IoPageTable.rollbackTablesSince}).
 *
 * Storage: one Float64Array of entries, table by table (`entriesPerTable` slots each), plus per-table
 * typed arrays. An entry is 0 (empty), -(t + 1) (points to table t), or a leaf
 * `floor(phys / 4096) * 64 + prot` (prot has READ or WRITE, so a leaf is ≥ 1).
 */
import { Buffer } from 'node:buffer';
import { defaultContext } from '../core/context.ts';
import { EEXIST, EINVAL, ENOMEM, ERANGE } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { type FaultInjector } from '../core/fault.ts';
import { type KernelLog } from '../core/kernel-log.ts';
import { type IommuIotlbGather } from './gather.ts';
import type { IoPgtableFlushOps, IoPgtableOps, LeafVisitor } from './pgtable-ops.ts';
import { checkTableAllocator, type TablePageAllocator } from './pgtable-alloc.ts';
import { checkObject } from '../core/args.ts';
import { POW2, pgtableGeometry, type IoPgtableConfig, type IoPgtableGeometry } from './pgtable-geometry.ts';
import { IOMMU_PROT_LIMIT, IOMMU_READ, IOMMU_WRITE } from './pgtable-prot.ts';

// Local copies of imported bindings used on hot paths: when a script loads dmasim as CommonJS (tsx
// does so for a .ts file outside an ESM package), every read of an imported binding is a getter call.
const P2 = POW2;

/** Leaf encoding: physical address in 4 KiB units, times 64, plus the six prot bits. */
const PHYS_UNIT = 4096;
const PROT_MUL = IOMMU_PROT_LIMIT;
const PHYS_UNIT_INV = 1 / PHYS_UNIT;
const PROT_MUL_INV = 1 / PROT_MUL;
const RW = IOMMU_READ | IOMMU_WRITE;

const TWO32 = 4294967296;

/** log2 of a power of two in [1, 2^52], or -1 when `size` is not one. */
function log2Exact(size: number): number {
  if (size >= 1 && size < TWO32) {
    const s = 31 - Math.clz32(size);
    return (P2[s] as number) === size ? s : -1;
  }
  if (size >= TWO32 && size <= 2 ** 52) {
    const hi = size / TWO32;
    const s = 63 - Math.clz32(hi);
    return (P2[s] as number) === size ? s : -1;
  }
  return -1;
}

/**
 * The level a leaf of `pgsize` bytes sits at, or -1 when the table has no such page size. The granule
 * is the common case and skips the log2 (map+unmap of one 4 KiB page, bench/iommu).
 */
function leafLevel(cfg: IoPgtableGeometry, pgsize: number): number {
  const shift = pgsize === cfg.granule ? cfg.pgShift : log2Exact(pgsize);
  return shift >= 0 ? (cfg.shiftLevel[shift] as number) : -1;
}

/**
 * floor(iova / size) mod entries, given inv = 1 / size (a power of two, so `iova * inv` is exact and
 * needs no division); without fmod (slow) and without bitwise ops on values ≥ 2^32.
 */
function indexOf(iova: number, inv: number, entries: number): number {
  const q = Math.floor(iova * inv);
  return q < TWO32 ? q & (entries - 1) : q - Math.floor(q / entries) * entries;
}

const WARN_NO_QUIRK = 'WARN_ON(!(data->iop.cfg.quirks & IO_PGTABLE_QUIRK_NO_WARN))';
const WARN_NO_QUIRK_CFG = 'WARN_ON(!(cfg->quirks & IO_PGTABLE_QUIRK_NO_WARN))';

/**
 * What a page table takes from its world. All optional.
 * @example new IoPageTable({}, allocator, { faults: machine.faults, klog: machine.klog, quirkNoWarn: false })
 */
export interface IoPageTableOptions {
  /** Consulted with 'pgtable' before each table page is allocated. */
  readonly faults?: FaultInjector;
  /** Where WARNs go; default `defaultContext().klog`. */
  readonly klog?: KernelLog;
  /** TLB callbacks (a domain sets them; settable later through `tlb`). */
  readonly tlb?: IoPgtableFlushOps;
  /** IO_PGTABLE_QUIRK_NO_WARN: no WARN for -EEXIST or for unmapping an empty entry. */
  readonly quirkNoWarn?: boolean;
}

/** 64 empty entries, as bytes (what _nonZeroFrom compares runs against). */
const ZERO_RUN = new Uint8Array(512);
// A byte view of each entry array the audits walked, made once (outside every machine: snapshots
// never see it); weak, so a table that grew lets its old array go.
const pteBytes = new WeakMap<Float64Array, Buffer>();

function bytesOf(pte: Float64Array): Buffer {
  let b = pteBytes.get(pte);
  if (b === undefined) {
    b = Buffer.from(pte.buffer, pte.byteOffset, pte.byteLength);
    pteBytes.set(pte, b);
  }
  return b;
}

/**
 * An IO page table (the io_pgtable_ops of one domain).
 * @example
 * const pt = new IoPageTable({ ias: 48 }, new SimpleTablePageAllocator());
 * pt.map_pages(0x200000, 0x4000_0000, 2 ** 21, 1, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL) // 2097152
 * pt.iova_to_phys(0x200123) // 0x40000123
 */
export class IoPageTable implements IoPgtableOps {
  /** io-pgtable-arm's rules (ARM LPAE stage-1 layout). */
  readonly format = 'arm-lpae';
  readonly cfg: IoPgtableGeometry;
  readonly alloc: TablePageAllocator;
  tlb: IoPgtableFlushOps | null;
  readonly klog: KernelLog;
  readonly faults: FaultInjector | undefined;
  readonly quirkNoWarn: boolean;

  // INVARIANT: table t is live ⇔ level[t] >= 0; table 0 is the pgd (level 0) while the page table
  //   lives; every other live table is pointed to by exactly one entry, pte[parent[t]] === -(t + 1),
  //   at level level[t] - 1.
  // INVARIANT: used[t] === number of non-zero entries of live table t; entries of a free table are 0.
  // INVARIANT: tablePages === live tables (each one table page from `alloc`); deferredPages === pages
  //   handed out on gather freelists and not yet given to free_table_pages.
  // INVARIANT: mappedBytes === sum of the sizes of all leaves.
  // INVARIANT: leaves at level l only where cfg.levelLeaf[l]; every leaf's phys is a multiple of 4096.
  private _pte: Float64Array;
  private _used: Uint32Array;
  private _pfn: Float64Array;
  private _level: Int8Array;
  private _parent: Float64Array;
  private _cap: number;
  private _hwm = 0;
  private readonly _freeIds: number[] = [];
  private readonly _epl: number;
  private readonly _levels: number;
  private readonly _lsize: Float64Array;
  private readonly _lents: Float64Array;
  /** 1 / levelSize[l]. */
  private readonly _linv: Float64Array;
  private readonly _stack: number[] = [];
  private _dead = false;
  // INVARIANT: walk cache: when cacheLevel >= 1, table cacheTable is live at level cacheLevel and is
  //   the table covering every IOVA with floor(iova / levelSize[cacheLevel - 1]) === cacheKey. Any
  //   table release resets cacheLevel to -1.
  private _cacheLevel = -1;
  private _cacheKey = -1;
  private _cacheTable = 0;
  // INVARIANT: seq[t] is the value tableAllocs had when live table t was allocated (1-based, unique).
  private _seq: Float64Array;

  /** Live table pages (the pgd included). */
  tablePages = 0;
  /** Table pages allocated so far (a sequence number: read it before a map to roll back after). */
  tableAllocs = 0;
  /** Most table pages live at once. */
  peakTablePages = 0;
  /** Freed table pages handed to callers on gather freelists, not yet released. */
  deferredPages = 0;
  /** Bytes mapped by leaves. */
  mappedBytes = 0;
  /** Incremented whenever an entry is cleared or replaced: an IOTLB entry filled at an older epoch may be stale. */
  epoch = 0;

  /** Result of the last successful {@link lookup}: first IOVA of the leaf. */
  walkIova = 0;
  /** Result of the last successful {@link lookup}: first physical address of the leaf. */
  walkPhys = 0;
  /** Result of the last successful {@link lookup}: the leaf's prot bits. */
  walkProt = 0;
  /** Result of the last successful {@link lookup}: log2 of the leaf size. */
  walkShift = 0;

  /**
   * Build a page table and allocate its top-level table.
   * @throws KernelError EINVAL for a bad configuration; ENOMEM when the top-level table cannot be
   *   allocated (use {@link alloc_io_pgtable_ops} for a null return instead).
   */
  constructor(config: IoPgtableConfig | IoPgtableGeometry, alloc: TablePageAllocator, opts: IoPageTableOptions = {}) {
    checkObject(config, 'alloc_io_pgtable_ops', 'config');
    checkTableAllocator(alloc, 'alloc_io_pgtable_ops');
    checkObject(opts, 'alloc_io_pgtable_ops', 'opts');
    this.cfg = 'levelShift' in config ? config : pgtableGeometry(config);
    this.alloc = alloc;
    this.tlb = opts.tlb ?? null;
    this.klog = opts.klog ?? defaultContext().klog;
    this.faults = opts.faults;
    this.quirkNoWarn = opts.quirkNoWarn === true;
    this._epl = this.cfg.entriesPerTable;
    this._levels = this.cfg.levels;
    this._lsize = Float64Array.from(this.cfg.levelSize);
    this._lents = Float64Array.from(this.cfg.levelEntries);
    this._linv = Float64Array.from(this.cfg.levelSize, (x) => 1 / x);
    this._cap = 16;
    this._pte = new Float64Array(this._cap * this._epl);
    this._used = new Uint32Array(this._cap);
    this._pfn = new Float64Array(this._cap);
    this._level = new Int8Array(this._cap).fill(-1);
    this._parent = new Float64Array(this._cap).fill(-1);
    this._seq = new Float64Array(this._cap);
    if (this._newTable(0, -1) < 0) throw new KernelError(ENOMEM, 'alloc_io_pgtable_ops', 'cannot allocate the top-level table');
  }

  /**
   * The granule (smallest page size) in bytes.
   * @example pt.granule // 4096
   */
  get granule(): number {
    return this.cfg.granule;
  }

  /**
   * The supported page sizes (the domain's pgsize_bitmap).
   * @example pt.pgsize_bitmap === 4096 + 2 ** 21 + 2 ** 30 // true by default
   */
  get pgsize_bitmap(): number {
    return this.cfg.pgsize_bitmap;
  }

  /**
   * Has {@link free} been called?
   * @example pt.free(); pt.freed // true
   */
  get freed(): boolean {
    return this._dead;
  }

  private _grow(): void {
    const cap = this._cap * 2;
    const pte = new Float64Array(cap * this._epl);
    pte.set(this._pte);
    this._pte = pte;
    const used = new Uint32Array(cap);
    used.set(this._used);
    this._used = used;
    const pfn = new Float64Array(cap);
    pfn.set(this._pfn);
    this._pfn = pfn;
    const level = new Int8Array(cap).fill(-1);
    level.set(this._level);
    this._level = level;
    const parent = new Float64Array(cap).fill(-1);
    parent.set(this._parent);
    this._parent = parent;
    const seq = new Float64Array(cap);
    seq.set(this._seq);
    this._seq = seq;
    this._cap = cap;
  }

  /** Allocate a table page for a table at `level` hooked at entry `parent`: its id, or -1. */
  private _newTable(level: number, parent: number): number {
    if (this.faults !== undefined && this.faults.shouldFail('pgtable')) return -1;
    const pfn = this.alloc.allocTablePage(this.cfg.granule);
    if (pfn === null) return -1;
    let t: number;
    if (this._freeIds.length > 0) {
      t = this._freeIds.pop() as number;
    } else {
      if (this._hwm === this._cap) this._grow();
      t = this._hwm++;
    }
    this._pfn[t] = pfn;
    this._level[t] = level;
    this._parent[t] = parent;
    this._used[t] = 0;
    if (++this.tablePages > this.peakTablePages) this.peakTablePages = this.tablePages;
    this._seq[t] = ++this.tableAllocs;
    return t;
  }

  /**
   * Release table `root` and every table under it (their leaves leave mappedBytes): the pages go on
   * `deferTo`, or straight back to the allocator. The caller has already cleared the entry to `root`.
   */
  private _releaseSubtree(root: number, deferTo: number[] | null): void {
    this._cacheLevel = -1;
    const stack = this._stack;
    stack.push(root);
    const epl = this._epl;
    const last = this._levels - 1;
    const granule = this.cfg.granule;
    while (stack.length > 0) {
      const t = stack.pop() as number;
      const level = this._level[t] as number;
      const used = this._used[t] as number;
      const pte = this._pte;
      const base = t * epl;
      if (used > 0) {
        if (level === last) {
          this.mappedBytes -= used * granule;
        } else {
          const size = this._lsize[level] as number;
          const n = this._lents[level] as number;
          for (let i = 0; i < n; i++) {
            const v = pte[base + i] as number;
            if (v < 0) stack.push(-v - 1);
            else if (v > 0) this.mappedBytes -= size;
          }
        }
        pte.fill(0, base, base + epl);
      }
      this._used[t] = 0;
      this._level[t] = -1;
      this._parent[t] = -1;
      this._freeIds.push(t);
      this.tablePages--;
      const pfn = this._pfn[t] as number;
      if (deferTo !== null) {
        deferTo.push(pfn);
        this.deferredPages++;
      } else {
        this.alloc.freeTablePage(pfn, granule);
      }
    }
  }

  /** The walk cache's table for `level` at `iova` (the leaf table a map/unmap needs), or -1. */
  private _cachedTable(level: number, iova: number): number {
    if (level === 0 || this._cacheLevel !== level) return -1;
    return Math.floor(iova * (this._linv[level - 1] as number)) === this._cacheKey ? this._cacheTable : -1;
  }

  private _setCache(level: number, iova: number, t: number): void {
    this._cacheLevel = level;
    this._cacheKey = Math.floor(iova * (this._linv[level - 1] as number));
    this._cacheTable = t;
  }

  private _useAfterFree(fn: string): never {
    throw new KernelBug(fn, 'page table used after free_io_pgtable_ops');
  }

  /**
   * arm_lpae_map_pages: map up to `pgcount` pages of `pgsize` from `iova` to `paddr`, stopping at the
   * end of the table page holding the first one.
   * @returns bytes mapped (> 0), or -EINVAL / -ERANGE / -EEXIST / -ENOMEM with nothing mapped.
   * @example pt.map_pages(0x1000, 0x5000, 4096, 2, IOMMU_READ, GFP_KERNEL) // 8192
   */
  map_pages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, _gfp: number): number {
    if (this._dead) this._useAfterFree('arm_lpae_map_pages');
    const cfg = this.cfg;
    const target = leafLevel(cfg, pgsize);
    if (target < 0) {
      this.klog.warn('arm_lpae_map_pages', 'WARN_ON(!pgsize || (pgsize & cfg->pgsize_bitmap) != pgsize)');
      return -EINVAL;
    }
    if (iova >= cfg.iovaLimit || paddr >= cfg.physLimit) {
      this.klog.warn('arm_lpae_map_pages', 'WARN_ON(iaext || paddr >> cfg->oas)');
      return -ERANGE;
    }
    if ((prot & RW) === 0) return -EINVAL;
    if (!(pgcount >= 1)) return 0;
    const epl = this._epl;
    const linv = this._linv;
    const lents = this._lents;
    const cached = this._cachedTable(target, iova);
    let t = cached < 0 ? 0 : cached;
    let l = cached < 0 ? 0 : target;
    for (; l < target; l++) {
      const e = t * epl + indexOf(iova, linv[l] as number, lents[l] as number);
      let v = this._pte[e] as number;
      if (v === 0) {
        const nt = this._newTable(l + 1, e);
        if (nt < 0) return -ENOMEM;
        v = -(nt + 1);
        this._pte[e] = v;
        this._used[t] = (this._used[t] as number) + 1;
      } else if (v > 0) {
        if (!this.quirkNoWarn) this.klog.warn('__arm_lpae_map', WARN_NO_QUIRK_CFG);
        return -EEXIST;
      }
      t = -v - 1;
      if (l + 1 === target) this._setCache(target, iova, t);
    }
    const idx = indexOf(iova, linv[target] as number, lents[target] as number);
    const room = (lents[target] as number) - idx;
    const num = pgcount < room ? pgcount : room;
    const e0 = t * epl + idx;
    const pte = this._pte;
    for (let i = 0; i < num; i++) {
      const v = pte[e0 + i] as number;
      if (v > 0) {
        if (!this.quirkNoWarn) this.klog.warn('arm_lpae_init_pte', WARN_NO_QUIRK);
        return -EEXIST;
      }
      if (v < 0) {
        // A table where the block goes: unhook it, flush the walk, free it with what it maps.
        pte[e0 + i] = 0;
        this._used[t] = (this._used[t] as number) - 1;
        this.epoch++;
        this.tlb?.tlb_flush_walk(iova + i * pgsize, pgsize, cfg.granule);
        this._releaseSubtree(-v - 1, null);
      }
    }
    const step = pgsize * PHYS_UNIT_INV * PROT_MUL;
    const enc0 = Math.floor(paddr * PHYS_UNIT_INV) * PROT_MUL + prot;
    for (let i = 0; i < num; i++) pte[e0 + i] = enc0 + i * step;
    this._used[t] = (this._used[t] as number) + num;
    const bytes = num * pgsize;
    this.mappedBytes += bytes;
    return bytes;
  }

  /**
   * arm_lpae_unmap_pages: clear up to `pgcount` entries of `pgsize` from `iova`, within one table page.
   * @param gather where cleared pages are gathered and freed table pages go; null: free tables now.
   * @returns bytes unmapped; 0 at a hole, on a partial large page, or for bad arguments.
   * @example pt.unmap_pages(0x1000, 4096, 2, gather) // 8192
   */
  unmap_pages(iova: number, pgsize: number, pgcount: number, gather: IommuIotlbGather | null): number {
    if (this._dead) this._useAfterFree('arm_lpae_unmap_pages');
    const cfg = this.cfg;
    const target = leafLevel(cfg, pgsize);
    if (target < 0 || !(pgcount >= 1)) {
      this.klog.warn('arm_lpae_unmap_pages', 'WARN_ON(!pgsize || (pgsize & cfg->pgsize_bitmap) != pgsize || !pgcount)');
      return 0;
    }
    if (iova >= cfg.iovaLimit) {
      this.klog.warn('arm_lpae_unmap_pages', 'WARN_ON(iaext)');
      return 0;
    }
    const epl = this._epl;
    const linv = this._linv;
    const lents = this._lents;
    const pte = this._pte;
    const cached = this._cachedTable(target, iova);
    let t = cached < 0 ? 0 : cached;
    let l = cached < 0 ? 0 : target;
    for (; l < target; l++) {
      const v = pte[t * epl + indexOf(iova, linv[l] as number, lents[l] as number)] as number;
      if (v === 0) {
        if (!this.quirkNoWarn) this.klog.warn('__arm_lpae_unmap', WARN_NO_QUIRK);
        return 0;
      }
      if (v > 0) {
        this.klog.warnOnce('__arm_lpae_unmap:partial', '__arm_lpae_unmap', 'Unmap of a partial large IOPTE is not allowed');
        return 0;
      }
      t = -v - 1;
      if (l + 1 === target) this._setCache(target, iova, t);
    }
    const idx = indexOf(iova, linv[target] as number, lents[target] as number);
    const room = (lents[target] as number) - idx;
    const num = pgcount < room ? pgcount : room;
    const e0 = t * epl + idx;
    let i = 0;
    let leafBytes = 0;
    for (; i < num; i++) {
      const v = pte[e0 + i] as number;
      if (v === 0) {
        if (!this.quirkNoWarn) this.klog.warn('__arm_lpae_unmap', WARN_NO_QUIRK);
        break;
      }
      pte[e0 + i] = 0;
      if (v > 0) {
        leafBytes += pgsize;
      } else if (gather === null) {
        // A whole table under this entry: flush the walk, then free it (io-pgtable-arm).
        this.tlb?.tlb_flush_walk(iova + i * pgsize, pgsize, cfg.granule);
        this._releaseSubtree(-v - 1, null);
      } else {
        // With a gather, its pages wait on the freelist until the sync (VT-d's freelist).
        this._releaseSubtree(-v - 1, gather.freelist);
      }
    }
    if (i === 0) return 0;
    this._used[t] = (this._used[t] as number) - i;
    this.mappedBytes -= leafBytes;
    this.epoch++;
    const tlb = this.tlb;
    if (gather !== null && !gather.queued && tlb !== null) {
      for (let j = 0; j < i; j++) tlb.tlb_add_page(gather, iova + j * pgsize, pgsize);
    }
    return i * pgsize;
  }

  /**
   * Walk the table for `iova`. On success sets walkIova / walkPhys / walkProt / walkShift and returns
   * true; false when nothing maps it. No allocation.
   * @example if (pt.lookup(iova)) pt.walkPhys + (iova - pt.walkIova)
   */
  lookup(iova: number): boolean {
    if (this._dead || !(iova >= 0) || iova >= this.cfg.iovaLimit) return false;
    const epl = this._epl;
    const lsize = this._lsize;
    const linv = this._linv;
    const lents = this._lents;
    const pte = this._pte;
    const levels = this._levels;
    let t = 0;
    let l = 0;
    const cl = this._cacheLevel;
    if (cl > 0 && Math.floor(iova * (linv[cl - 1] as number)) === this._cacheKey) {
      t = this._cacheTable;
      l = cl;
    }
    for (; l < levels; l++) {
      const size = lsize[l] as number;
      const v = pte[t * epl + indexOf(iova, linv[l] as number, lents[l] as number)] as number;
      if (v === 0) return false;
      if (v > 0) {
        const q = Math.floor(v * PROT_MUL_INV);
        this.walkProt = v - q * PROT_MUL;
        this.walkPhys = q * PHYS_UNIT;
        this.walkIova = Math.floor(iova * (linv[l] as number)) * size;
        this.walkShift = this.cfg.levelShift[l] as number;
        return true;
      }
      t = -v - 1;
    }
    return false;
  }

  /**
   * arm_lpae_iova_to_phys: the physical address `iova` maps to, or 0 when unmapped.
   * @example pt.iova_to_phys(0x1234) // 0x5234 after mapping 0x1000 → 0x5000
   */
  iova_to_phys(iova: number): number {
    return this.lookup(iova) ? this.walkPhys + (iova - this.walkIova) : 0;
  }

  /**
   * Release table pages an unmap left on a gather freelist (after the IOTLB sync, or from the flush
   * queue). Empties the list.
   * @example pt.free_table_pages(gather.freelist)
   */
  free_table_pages(pfns: number[]): void {
    const granule = this.cfg.granule;
    for (const pfn of pfns) this.alloc.freeTablePage(pfn, granule);
    this.deferredPages -= pfns.length;
    pfns.length = 0;
  }

  /**
   * free_io_pgtable_ops: free every table page, the top-level one included. Pages already handed
   * out on gather freelists stay the holder's to release. Idempotent.
   * @example pt.free(); pt.tablePages // 0
   */
  free(): void {
    if (this._dead) return;
    this._releaseSubtree(0, null);
    this._dead = true;
    this.epoch++;
  }

  /**
   * Free, bottom-up, every table allocated after `tableAllocs` was `since` that is still live and
   * empty, unhooking it from its parent. After a failed map has unmapped what it mapped, this puts the
   * page table back exactly as it was. Returns the number of tables freed.
   * @example
   * const since = pt.tableAllocs;
   * if (mapFailed) { unmapWhatWasMapped(); pt.rollbackTablesSince(since); }
   */
  rollbackTablesSince(since: number): number {
    if (this._dead || this.tableAllocs === since) return 0;
    const found: number[] = [];
    for (let t = 1; t < this._hwm; t++) {
      if ((this._level[t] as number) >= 0 && (this._seq[t] as number) > since) found.push(t);
    }
    // Children were allocated after their parents: newest first frees leaves of the tree first.
    found.sort((a, b) => (this._seq[b] as number) - (this._seq[a] as number));
    let freed = 0;
    for (const t of found) {
      if (this._used[t] !== 0) continue;
      const parent = this._parent[t] as number;
      this._pte[parent] = 0;
      const pt = Math.floor(parent / this._epl);
      this._used[pt] = (this._used[pt] as number) - 1;
      this._releaseSubtree(t, null);
      freed++;
    }
    return freed;
  }

  /**
   * Visit every leaf in IOVA order.
   * @example pt.forEachLeaf((iova, size, phys, prot) => console.log(iova, size, phys, prot))
   */
  forEachLeaf(visit: LeafVisitor): void {
    if (this._dead) return;
    this._visit(0, 0, 0, visit);
  }

  /**
   * The first i in [from, n) whose entry at off + i is not 0, or n. Runs of 64 empty entries are
   * passed by one native compare (the audit's walks read every entry of every table page: most of
   * an audit since a failure point's base on a sparse table, bench/RESULTS.md, session 15).
   */
  private _nonZeroFrom(off: number, from: number, n: number): number {
    let i = from;
    let bytes: Buffer | undefined;
    // Only inside the array: an audit may be walking a corrupted table pointer.
    const inArray = off >= 0 && Number.isInteger(off);
    while (i < n) {
      if (inArray && (i & 63) === 0 && i + 64 <= n && (off + i + 64) * 8 <= this._pte.byteLength) {
        bytes ??= bytesOf(this._pte);
        if (bytes.compare(ZERO_RUN, 0, 512, (off + i) * 8, (off + i + 64) * 8) === 0) {
          i += 64;
          continue;
        }
      }
      if (this._pte[off + i] !== 0) return i;
      i++;
    }
    return n;
  }

  private _visit(t: number, level: number, base: number, visit: LeafVisitor): void {
    const size = this._lsize[level] as number;
    const n = this._lents[level] as number;
    const off = t * this._epl;
    for (let i = this._nonZeroFrom(off, 0, n); i < n; i = this._nonZeroFrom(off, i + 1, n)) {
      const v = this._pte[off + i] as number;
      const iova = base + i * size;
      if (v < 0) {
        this._visit(-v - 1, level + 1, iova, visit);
      } else {
        const q = Math.floor(v / PROT_MUL);
        visit(iova, size, q * PHYS_UNIT, v - q * PROT_MUL);
      }
    }
  }

  /**
   * The pfns of every live table page, the top-level one first (for auditors).
   * @example pt.tablePfns().length === pt.tablePages // true
   */
  tablePfns(): number[] {
    const out: number[] = [];
    for (let t = 0; t < this._hwm; t++) if ((this._level[t] as number) >= 0) out.push(this._pfn[t] as number);
    return out;
  }

  /**
   * Live tables with no entries (left by page-by-page unmaps; freed with the page table or when an
   * unmap or block mapping covers them).
   * @example pt.emptyTables() // 0 on a fresh table
   */
  emptyTables(): number {
    let n = 0;
    for (let t = 1; t < this._hwm; t++) if ((this._level[t] as number) >= 0 && this._used[t] === 0) n++;
    return n;
  }

  /**
   * Check the invariants by walking the whole table: reachable tables vs the live count, used
   * counts, parent links, leaf placement and mappedBytes. Returns the problems found (empty: sound).
   * @example expect(pt.audit()).toEqual([])
   */
  audit(): string[] {
    const problems: string[] = [];
    if (this._dead) {
      if (this.tablePages !== 0) problems.push(`freed page table still counts ${this.tablePages} table pages`);
      return problems;
    }
    let reachable = 0;
    let bytes = 0;
    const epl = this._epl;
    const seen = new Set<number>();
    const walk = (t: number, level: number): void => {
      reachable++;
      seen.add(t);
      if (this._level[t] !== level) problems.push(`table ${t} at level ${level} records level ${String(this._level[t])}`);
      let nonzero = 0;
      for (let i = this._nonZeroFrom(t * epl, 0, epl); i < epl; i = this._nonZeroFrom(t * epl, i + 1, epl)) {
        const v = this._pte[t * epl + i] as number;
        nonzero++;
        if (i >= (this._lents[level] as number)) problems.push(`table ${t}: entry ${i} beyond the level's ${String(this._lents[level])} entries`);
        if (v < 0) {
          const c = -v - 1;
          if (level === this._levels - 1) problems.push(`table ${t}: table pointer at the last level`);
          else if (this._parent[c] !== t * epl + i) problems.push(`table ${c}: parent link ${String(this._parent[c])} != ${t * epl + i}`);
          else walk(c, level + 1);
        } else {
          if (!this.cfg.levelLeaf[level]) problems.push(`table ${t}: leaf at level ${level}, where no page size is supported`);
          if ((v % PROT_MUL & RW) === 0) problems.push(`table ${t}: leaf ${i} without READ or WRITE`);
          bytes += this._lsize[level] as number;
        }
      }
      if (this._used[t] !== nonzero) problems.push(`table ${t}: used ${String(this._used[t])} != ${nonzero} entries`);
    };
    walk(0, 0);
    if (reachable !== this.tablePages) problems.push(`tablePages ${this.tablePages} != ${reachable} reachable tables`);
    for (let t = 0; t < this._hwm; t++) {
      if ((this._level[t] as number) >= 0 && !seen.has(t)) problems.push(`table ${t} is live but unreachable (leaked)`);
    }
    if (bytes !== this.mappedBytes) problems.push(`mappedBytes ${this.mappedBytes} != ${bytes} mapped by leaves`);
    if (this.deferredPages < 0) problems.push(`deferredPages ${this.deferredPages} < 0`);
    return problems;
  }
}

/**
 * alloc_io_pgtable_ops: a page table, or null when its top-level table cannot be allocated.
 * @example const pt = alloc_io_pgtable_ops({ granule: 4096, ias: 39 }, allocator, { faults }); // null on ENOMEM
 */
export function alloc_io_pgtable_ops(config: IoPgtableConfig, alloc: TablePageAllocator, opts: IoPageTableOptions = {}): IoPageTable | null {
  const geometry = pgtableGeometry(config);
  try {
    return new IoPageTable(geometry, alloc, opts);
  } catch (e) {
    if (e instanceof KernelError && e.errno === ENOMEM) return null;
    throw e;
  }
}

/**
 * free_io_pgtable_ops.
 * @example free_io_pgtable_ops(pt)
 */
export function free_io_pgtable_ops(pt: IoPageTable | null): void {
  pt?.free();
}
