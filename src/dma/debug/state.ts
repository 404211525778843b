/**
 * @module dma/debug/state
 * The state of one machine's dma-debug and its primitive operations: allocating and freeing entries
 * (pool growth, out-of-memory disabling), recording an entry (hash list, cacheline claim, overlap
 * report) and the `dma_mapping_error()` marking. The checks and hooks are built on these.
 */
import type { FaultInjector } from '../../core/fault.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import { DMA_TO_DEVICE } from '../api/direction.ts';
import { CachelineTable, CLAIM_ENOMEM, CLAIMED } from './cacheline.ts';
import {
  ACTIVE_CACHELINE_MAX_OVERLAP, DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC,
  DMA_DEBUG_DYNAMIC_ENTRIES, MAP_ERR_CHECKED, MAP_ERR_NOT_CHECKED,
} from './constants.ts';
import type { DebugDevice } from './device.ts';
import { EntryTable } from './entries.ts';
import { DriverFilter } from './filter.ts';
import type { DebugPlatform } from './platform.ts';
import { Reporter } from './report.ts';
import { hashBucket, hexA } from './u64.ts';

/** dmasim's DMA_MAPPING_ERROR (the kernel's all-ones handle), as every dmasim layer writes it. */
export const DMA_MAPPING_ERROR = -1;

/** @internal The state of one machine's dma-debug. */
export class DebugState {
  // INVARIANT: disabled() stays true once true (nothing re-enables dma-debug); while it is true no
  //   hook reads or writes table, lines or the counters.
  // INVARIANT: every live entry whose direction is not DMA_TO_DEVICE has claimed (or tried to claim)
  //   the line of its first byte; lines only refers to slots of this table.
  readonly table: EntryTable;
  readonly lines = new CachelineTable();
  readonly filter = new DriverFilter();
  readonly reporter: Reporter;
  readonly platform: DebugPlatform;
  readonly faults: FaultInjector | undefined;
  /** `nr_prealloc_entries`: the pool size asked for (growth messages are multiples of it). */
  readonly nrPrealloc: number;
  globalDisable = false;
  initialized = false;
  private readonly _allocFails: () => boolean;

  constructor(klog: KernelLog, faults: FaultInjector | undefined, platform: DebugPlatform, nrPrealloc: number, total: number) {
    this.reporter = new Reporter(klog, this.filter);
    this.platform = platform;
    this.faults = faults;
    this.nrPrealloc = nrPrealloc;
    this.table = new EntryTable(total);
    this._allocFails = faults === undefined ? () => false : () => faults.shouldFail('kmalloc');
  }

  /** `dma_debug_disabled()`. */
  disabled(): boolean {
    return this.globalDisable || !this.initialized;
  }

  /** The tracked cacheline of a physical address. */
  cacheline(paddr: number): number {
    return Math.floor(paddr / this.platform.arch.l1CacheBytes);
  }

  /**
   * `dma_entry_alloc()`: a zeroed entry slot, growing the pool by a page when it is empty. An
   * injected 'dma-debug' fault stands for the page allocation failing: dma-debug prints
   * "debugging out of memory - disabling" and turns itself off.
   * @returns the slot, or -1
   */
  entryAlloc(): number {
    const t = this.table;
    if (this.faults !== undefined && this.faults.shouldFail('dma-debug')) {
      this.globalDisable = true;
      this.reporter.printk('err', 'dma_entry_alloc', 'debugging out of memory - disabling\n');
      return -1;
    }
    const grownTo = t.numFree === 0 ? t.grow() : -1;
    const s = t.alloc();
    if (grownTo >= 0 && grownTo % this.nrPrealloc < DMA_DEBUG_DYNAMIC_ENTRIES) {
      this.reporter.printk('info', '__dma_entry_alloc_check_leak',
        `dma_debug_entry pool grown to ${grownTo} (${Math.floor(grownTo / this.nrPrealloc)}00%)\n`);
    }
    return s;
  }

  /** Unlink a live entry, release its cacheline claim and return it to the pool (newest first). */
  entryRemove(s: number): void {
    const t = this.table;
    t.hashDel(s);
    if (t.dir[s] !== DMA_TO_DEVICE) this.lines.remove(this.cacheline(t.paddr[s] as number));
    t.free(s);
  }

  /**
   * `add_dma_entry()`: note whether the mapping is "clean", append it to its bucket, claim its
   * first cacheline, and report an overlap unless an exemption applies.
   */
  addEntry(s: number, attrs: number): void {
    const t = this.table;
    t.clean[s] = (attrs & (DMA_ATTR_DEBUGGING_IGNORE_CACHELINES | DMA_ATTR_REQUIRE_COHERENT)) !== 0 ? 1 : 0;
    t.hashAdd(s);
    if (t.dir[s] === DMA_TO_DEVICE) return;
    const cln = this.cacheline(t.paddr[s] as number);
    const rc = this.lines.insert(cln, s, this._allocFails);
    if (rc === CLAIMED) return;
    if (rc === CLAIM_ENOMEM) {
      this.reporter.errOnce('cacheline-enomem', 'add_dma_entry', 'cacheline tracking ENOMEM, dma-debug disabled\n');
      this.globalDisable = true;
      return;
    }
    if (rc > ACTIVE_CACHELINE_MAX_OVERLAP) {
      this.reporter.warnOnce('cacheline-overflow', 'active_cacheline_inc_overlap',
        `exceeded ${ACTIVE_CACHELINE_MAX_OVERLAP} overlapping mappings of cacheline ${hexA(cln)}\n`);
    }
    // The line remembers its first claimant's slot, which may have been freed and reused since.
    const owner = this.lines.owner(cln) as number;
    const overlapClean = t.clean[owner] === 1;
    const dev = t.dev[s] as DebugDevice;
    const arch = this.platform.arch;
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0
      && !(t.clean[s] === 1 && overlapClean)
      && arch.cacheAlignment >= arch.l1CacheBytes
      && !(arch.bounceUnalignedKmalloc && this.platform.isSwiotlbActive(dev))) {
      this.reporter.error(dev, dev.driver, 'add_dma_entry', "cacheline tracking EEXIST, overlapping mappings aren't supported\n");
    }
  }

  /** `debug_dma_mapping_error()`: mark the first unchecked entry of `dev` at `addr` as checked. */
  markMappingChecked(dev: DebugDevice, addr: number): void {
    if (this.disabled()) return;
    const t = this.table;
    for (let s = t.head[hashBucket(addr)] as number; s !== -1; s = t.next[s] as number) {
      if (t.dev[s] !== dev || t.devAddr[s] !== addr) continue;
      if (t.mapErr[s] === MAP_ERR_NOT_CHECKED) {
        t.mapErr[s] = MAP_ERR_CHECKED;
        break;
      }
    }
  }

  /** The inline `dma_mapping_error()`: tell dma-debug, then compare with DMA_MAPPING_ERROR. */
  dmaMappingError(dev: DebugDevice, addr: number): boolean {
    this.markMappingChecked(dev, addr);
    return addr === DMA_MAPPING_ERROR;
  }
}
