/**
 * @module dma/debug/debug
 * `DmaDebug`: the dma-debug state of one machine and the hooks the DMA API calls, named after the
 * kernel's (`debug_dma_map_phys`, `debug_dma_unmap_sg`, `debug_dma_sync_single_for_cpu`, ...,
 * `dma_debug_device_change`), plus the debugfs knobs and what an auditor reads.
 */
import { checkObject } from '../../core/args.ts';
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import type { FaultInjector } from '../../core/fault.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import { PAGE_SIZE } from '../../core/page.ts';
import { auditState, entryInfo, type DmaDebugEntryInfo } from './audit.ts';
import { DMA_DEBUG_DYNAMIC_ENTRIES, PREALLOC_DMA_DEBUG_ENTRIES } from './constants.ts';
import type { DebugDevice } from './device.ts';
import { resolvePlatform, type DebugPlatform, type DebugPlatformOptions } from './platform.ts';
import { allocCoherent, allocPages, mapPhys, mapSg, mapSingle } from './record.ts';
import { deviceChange, freeCoherent, freePages, syncSg, syncSingle, unmapPhys, unmapSg } from './release.ts';
import type { DmaDebugError, DmaDebugReport } from './report.ts';
import type { DebugSgList } from './sg.ts';
import { DebugState } from './state.ts';

/** Where dma-debug prints and where its allocations can be made to fail. */
export interface DmaDebugContext {
  readonly klog: KernelLog;
  /** 'dma-debug' faults fail entry allocations; 'kmalloc' faults fail claiming a new cacheline. */
  readonly faults?: FaultInjector | undefined;
}

/** Boot parameters and platform facts. */
export interface DmaDebugOptions extends DebugPlatformOptions {
  /** `dma_debug=off`: every hook does nothing. */
  readonly off?: boolean;
  /** `dma_debug_entries=N` (default 65536), rounded up to pages of 32 entries. */
  readonly entries?: number;
  /** `dma_debug_driver=NAME`: the driver filter at boot. */
  readonly driverFilter?: string;
}

/**
 * The dma-debug of one machine.
 * @example
 * const dbg = new DmaDebug(machine, { arch: ARCH_ARM64 });
 * const pci = { name: 'pci' };
 * const dev = { name: '0000:00:04.0', bus: pci, driver: { name: 'e1000' } };
 * dbg.debug_dma_map_phys(dev, 0x100000, 4096, DMA_TO_DEVICE, 0x100000, 0);
 * dbg.debug_dma_unmap_phys(dev, 0x100000, 4096, DMA_TO_DEVICE);
 * dbg.errors[0]?.text
 * // 'DMA-API: e1000 0000:00:04.0: device driver failed to check map error[device address=0x0000000000100000] [size=4096 bytes] [mapped as phy]'
 */
export class DmaDebug {
  private readonly _st: DebugState;

  constructor(ctx: DmaDebugContext, opts: DmaDebugOptions = {}) {
    checkObject(ctx, 'DmaDebug', 'ctx');
    if (typeof (ctx as { klog?: unknown }).klog !== 'object') throw new KernelError(EINVAL, 'DmaDebug', 'expected a context with a kernel log', 'ctx');
    checkObject(opts, 'DmaDebug', 'opts');
    const n = opts.entries ?? PREALLOC_DMA_DEBUG_ENTRIES;
    if (!(Number.isInteger(n) && n >= 1 && n <= 0xffffffff)) {
      throw new KernelError(EINVAL, 'DmaDebug', `dma_debug_entries must be a whole number in [1, 2^32), got ${n}`, 'entries');
    }
    const platform = resolvePlatform(opts);
    const off = opts.off === true;
    const total = off ? 0 : Math.ceil(n / DMA_DEBUG_DYNAMIC_ENTRIES) * DMA_DEBUG_DYNAMIC_ENTRIES;
    const st = new DebugState(ctx.klog, ctx.faults, platform, n, total);
    this._st = st;
    const r = st.reporter;
    if (off) {
      r.printk('info', 'dma_debug_cmdline', 'debugging disabled on kernel command line\n');
      st.globalDisable = true;
    }
    if (opts.driverFilter !== undefined) {
      const line = st.filter.setFromBoot(opts.driverFilter);
      if (line !== undefined) r.printk('info', 'dma_debug_driver_setup', line);
    }
    if (!off) {
      r.printk('info', 'dma_debug_init', `preallocated ${total} debug entries\n`);
      r.printk('info', 'dma_debug_init', 'debugging enabled by kernel config\n');
      st.initialized = true;
    }
  }

  // ------------------------------------------------------------------ streaming: page / single / phys

  /**
   * `debug_dma_map_single()`: dma_map_single's pointer checks (before the page hook): not a valid
   * linear-map address, and a vmalloc address.
   * @example dbg.debug_dma_map_single(dev, ptr, 512)
   */
  debug_dma_map_single(dev: DebugDevice, addr: number, len: number): void {
    if (typeof dev !== 'object' || dev === null) throw new KernelError(EINVAL, 'debug_dma_map_single', 'expected a device', 'dev');
    if (typeof addr !== 'number' || !Number.isSafeInteger(addr)) throw new KernelError(EINVAL, 'debug_dma_map_single', `expected an address, got ${String(addr)}`, 'addr');
    mapSingle(this._st, dev, addr, len);
  }

  /**
   * `debug_dma_map_phys()`, after dma_map_page / _single / _phys / _resource: records a `phy`
   * entry (map error unchecked) unless the handle is DMA_MAPPING_ERROR. Before recording it calls
   * `dma_mapping_error()` on the handle, which marks an older mapping of the same address checked.
   * @example dbg.debug_dma_map_phys(dev, phys, 4096, DMA_FROM_DEVICE, handle, 0)
   */
  debug_dma_map_phys(dev: DebugDevice, phys: number, size: number, direction: number, dma_addr: number, attrs = 0): void {
    mapPhys(this._st, dev, phys, size, direction, dma_addr, attrs);
  }

  /**
   * The pre-v6.18 name: `debug_dma_map_phys` at `pfn * PAGE_SIZE + offset`.
   * @example dbg.debug_dma_map_page(dev, pfn, 0, 4096, DMA_TO_DEVICE, handle)
   */
  debug_dma_map_page(dev: DebugDevice, pfn: number, offset: number, size: number, direction: number, dma_addr: number, attrs = 0): void {
    this.debug_dma_map_phys(dev, pfn * PAGE_SIZE + offset, size, direction, dma_addr, attrs);
  }

  /**
   * `debug_dma_mapping_error()`, from `dma_mapping_error()`: marks the first unchecked entry of
   * `dev` at `dma_addr`, in list order, as checked.
   * @example
   * // inside dma_mapping_error(dev, handle):
   * dbg.debug_dma_mapping_error(dev, handle);
   * return handle === DMA_MAPPING_ERROR;
   */
  debug_dma_mapping_error(dev: DebugDevice, dma_addr: number): void {
    this._st.markMappingChecked(dev, dma_addr);
  }

  /**
   * `debug_dma_unmap_phys()`, for dma_unmap_page / _single / _phys / _resource.
   * @example dbg.debug_dma_unmap_phys(dev, handle, 4096, DMA_TO_DEVICE)
   */
  debug_dma_unmap_phys(dev: DebugDevice, dma_addr: number, size: number, direction: number): void {
    unmapPhys(this._st, dev, dma_addr, size, direction);
  }

  /**
   * The pre-v6.18 name of {@link debug_dma_unmap_phys}.
   * @example dbg.debug_dma_unmap_page(dev, handle, 4096, DMA_TO_DEVICE)
   */
  debug_dma_unmap_page(dev: DebugDevice, dma_addr: number, size: number, direction: number): void {
    this.debug_dma_unmap_phys(dev, dma_addr, size, direction);
  }

  // ------------------------------------------------------------------ scatter-gather

  /**
   * `debug_dma_map_sg()`, after a dma_map_sg that mapped `mapped_ents` > 0 segments: stack and image
   * checks over all `nents` entries, then per mapped segment an entry, the length and boundary
   * checks and the cacheline claim.
   * @example dbg.debug_dma_map_sg(dev, { first: sgt.sgl, next: sg_next }, sgt.orig_nents, sgt.nents, DMA_FROM_DEVICE)
   */
  debug_dma_map_sg(dev: DebugDevice, sg: DebugSgList, nents: number, mapped_ents: number, direction: number, attrs = 0): void {
    mapSg(this._st, dev, sg, nents, mapped_ents, direction, attrs);
  }

  /**
   * `debug_dma_unmap_sg()`, before the real unmap: the mapped count comes from an exact lookup of
   * entry 0 (0 when not found, and then every entry passed is checked).
   * @example dbg.debug_dma_unmap_sg(dev, { first: sgt.sgl, next: sg_next }, sgt.orig_nents, DMA_FROM_DEVICE)
   */
  debug_dma_unmap_sg(dev: DebugDevice, sglist: DebugSgList, nelems: number, dir: number): void {
    unmapSg(this._st, dev, sglist, nelems, dir);
  }

  // ------------------------------------------------------------------ coherent and noncoherent allocations

  /**
   * `debug_dma_alloc_coherent()`, after dma_alloc_coherent / dma_alloc_attrs: a `coherent`
   * BIDIRECTIONAL entry at the physical address behind `virt`. A null CPU address, or one neither
   * in the linear map nor in vmalloc space, is not tracked.
   * @example dbg.debug_dma_alloc_coherent(dev, 8192, handle, cpuAddr)
   */
  debug_dma_alloc_coherent(dev: DebugDevice, size: number, dma_addr: number, virt: number | null, attrs = 0): void {
    allocCoherent(this._st, dev, size, dma_addr, virt, attrs);
  }

  /**
   * `debug_dma_free_coherent()`, from dma_free_coherent / dma_free_attrs before the real free.
   * @example dbg.debug_dma_free_coherent(dev, 8192, cpuAddr, handle)
   */
  debug_dma_free_coherent(dev: DebugDevice, size: number, virt: number | null, dma_addr: number): void {
    freeCoherent(this._st, dev, size, virt, dma_addr);
  }

  /**
   * `debug_dma_alloc_pages()`, after dma_alloc_pages / dma_alloc_noncoherent: a `noncoherent` entry.
   * @example dbg.debug_dma_alloc_pages(dev, pfn, 16384, DMA_FROM_DEVICE, handle)
   */
  debug_dma_alloc_pages(dev: DebugDevice, page: number, size: number, direction: number, dma_addr: number, attrs = 0): void {
    allocPages(this._st, dev, page, size, direction, dma_addr, attrs);
  }

  /**
   * `debug_dma_free_pages()`, from dma_free_pages / dma_free_noncoherent.
   * @example dbg.debug_dma_free_pages(dev, pfn, 16384, DMA_FROM_DEVICE, handle)
   */
  debug_dma_free_pages(dev: DebugDevice, page: number, size: number, direction: number, dma_addr: number): void {
    freePages(this._st, dev, page, size, direction, dma_addr);
  }

  // ------------------------------------------------------------------ sync

  /**
   * `debug_dma_sync_single_for_cpu()` (dma_sync_single_range_for_cpu passes `addr + offset`).
   * @example dbg.debug_dma_sync_single_for_cpu(dev, handle, 512, DMA_FROM_DEVICE)
   */
  debug_dma_sync_single_for_cpu(dev: DebugDevice, dma_handle: number, size: number, direction: number): void {
    syncSingle(this._st, dev, dma_handle, size, direction, true);
  }

  /**
   * `debug_dma_sync_single_for_device()`.
   * @example dbg.debug_dma_sync_single_for_device(dev, handle, 512, DMA_TO_DEVICE)
   */
  debug_dma_sync_single_for_device(dev: DebugDevice, dma_handle: number, size: number, direction: number): void {
    syncSingle(this._st, dev, dma_handle, size, direction, false);
  }

  /**
   * `debug_dma_sync_sg_for_cpu()`: the mapped count comes from entry 0; an unknown list is silent.
   * @example dbg.debug_dma_sync_sg_for_cpu(dev, sgl, nents, DMA_FROM_DEVICE)
   */
  debug_dma_sync_sg_for_cpu(dev: DebugDevice, sg: DebugSgList, nelems: number, direction: number): void {
    syncSg(this._st, dev, sg, nelems, direction, true);
  }

  /**
   * `debug_dma_sync_sg_for_device()`.
   * @example dbg.debug_dma_sync_sg_for_device(dev, sgl, nents, DMA_TO_DEVICE)
   */
  debug_dma_sync_sg_for_device(dev: DebugDevice, sg: DebugSgList, nelems: number, direction: number): void {
    syncSg(this._st, dev, sg, nelems, direction, false);
  }

  // ------------------------------------------------------------------ unbind

  /**
   * `dma_debug_device_change()`, the bus notifier. On BUS_NOTIFY_UNBOUND_DRIVER (called after devres
   * release and after the driver pointer was cleared) it reports the device's remaining entries as
   * a leak, naming the bus (the driver is gone, so a set driver filter always hides it). Entries
   * stay; other actions are ignored.
   * @returns 0 (NOTIFY_DONE)
   * @example bus.notifyUnbound = (dev) => dbg.dma_debug_device_change(dev, BUS_NOTIFY_UNBOUND_DRIVER);
   */
  dma_debug_device_change(dev: DebugDevice, action: number): number {
    return deviceChange(this._st, dev, action);
  }

  // ------------------------------------------------------------------ debugfs (dma-api/)

  /** `disabled`: dma_debug=off, or switched off after running out of memory. */
  get disabled(): boolean {
    return this._st.disabled();
  }

  /** `error_count`: every error found, printed or not (u32). */
  get error_count(): number {
    return this._st.reporter.error_count;
  }

  /** `num_errors`: how many more errors will be printed; writing it re-arms printing. */
  get num_errors(): number {
    return this._st.reporter.num_errors;
  }

  set num_errors(n: number) {
    this._st.reporter.num_errors = u32(n, 'num_errors');
  }

  /** `all_errors`: non-zero prints every error and leaves num_errors alone. */
  get all_errors(): number {
    return this._st.reporter.all_errors;
  }

  set all_errors(n: number) {
    this._st.reporter.all_errors = u32(n, 'all_errors');
  }

  /** `num_free_entries`. */
  get num_free_entries(): number {
    return this._st.table.numFree;
  }

  /** `min_free_entries`. */
  get min_free_entries(): number {
    return this._st.table.minFree;
  }

  /** `nr_total_entries`. */
  get nr_total_entries(): number {
    return this._st.table.total;
  }

  /** `driver_filter`: the name filtered on ('' when off). */
  get driver_filter(): string {
    return this._st.filter.name;
  }

  /**
   * A write to `driver_filter`: text starting with an alphanumeric character filters on its first
   * token; anything else switches the filter off.
   */
  set driver_filter(text: string) {
    const line = this._st.filter.write(text);
    if (line !== undefined) this._st.reporter.printk('info', 'filter_write', line);
  }

  // ------------------------------------------------------------------ what tests and auditors read

  /** Every line dma-debug printed, in order (errors, the WARN_ONCE, info and error lines). */
  get reports(): readonly DmaDebugReport[] {
    return this._st.reporter.reports;
  }

  /** Every error found (err_printk), printed or hidden by the filter or the quota. */
  get errors(): readonly DmaDebugError[] {
    return this._st.reporter.errors;
  }

  /** The platform facts in use. */
  get platform(): DebugPlatform {
    return this._st.platform;
  }

  /**
   * The live entries, optionally of one device, in the order the leak check scans them.
   * @example expect(dbg.entries(dev)).toHaveLength(liveMappings(dev))
   */
  entries(dev?: DebugDevice): DmaDebugEntryInfo[] {
    const st = this._st;
    const out: DmaDebugEntryInfo[] = [];
    for (const s of st.table.liveSlots()) if (dev === undefined || st.table.dev[s] === dev) out.push(entryInfo(st, s));
    return out;
  }

  /**
   * Number of live entries, optionally of one device.
   * @example dbg.entryCount() // 0 after a clean run
   */
  entryCount(dev?: DebugDevice): number {
    const st = this._st;
    if (dev === undefined) return st.table.liveCount;
    let n = 0;
    for (const s of st.table.liveSlots()) if (st.table.dev[s] === dev) n++;
    return n;
  }

  /**
   * The claimed cachelines, in line order: line number, overlap count (0..7) and the stored claimant slot.
   * @example dbg.cachelines() // [{ cln: 0x4000, overlap: 1, slot: 0 }]
   */
  cachelines(): { cln: number; overlap: number; slot: number }[] {
    return [...this._st.lines.lines()];
  }

  /**
   * Internal consistency problems, as sentences; empty when sound.
   * @example expect(dbg.audit()).toEqual([])
   */
  audit(): string[] {
    return auditState(this._st);
  }
}

function u32(n: number, arg: string): number {
  if (!(Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) throw new KernelError(EINVAL, 'DmaDebug', `expected a u32, got ${n}`, arg);
  return n;
}
