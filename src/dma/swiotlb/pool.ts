/**
 * @module dma/swiotlb/pool
 * One swiotlb bounce-buffer pool (`struct io_tlb_mem` with its default pool, no dynamic pools):
 * map, unmap, release, sync and `swiotlb_map` with the kernel's names and return values, the
 * debugfs counters, and the accounting an auditor reads.
 */
import { checkInt, checkU32 } from '../../core/args.ts';
import { EINVAL } from '../../core/errno.ts';
import { KernelBug, KernelError } from '../../core/errors.ts';
import type { FaultInjector } from '../../core/fault.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import { parseSize } from '../../core/size.ts';
import { DMA_MAPPING_ERROR } from '../../scatterlist/entry.ts';
import { DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC } from '../api/attrs.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, isDmaDirection, type DmaDirection } from '../api/direction.ts';
import { alignUp, hex16, hexMask, isPowerOfTwo, low32 } from './bits.ts';
import { bounceScratch, clearRange, swiotlbBounce, type BounceContext } from './bounce.ts';
import { IO_TLB_DEFAULT_SIZE, IO_TLB_SEGSIZE, IO_TLB_SIZE } from './constants.ts';
import { swiotlbDeviceParams, type SwiotlbDevice, type SwiotlbDeviceParams } from './device.ts';
import { SWIOTLB_PR_PREFIX } from './geometry.ts';
import { findSlots } from './search.ts';
import { SlotTable } from './slots.ts';
import type { SwiotlbAreaState, SwiotlbMapping, SwiotlbPoolOptions } from './types.ts';
import { ChurnMap } from '../../core/churn-map.ts';

/** Largest size argument accepted: keeps size + offset + alignment exact as a number. */
const MAX_SIZE = 2 ** 52;

function checkDir(dir: unknown, fn: string): DmaDirection {
  if (!isDmaDirection(dir)) throw new KernelError(EINVAL, fn, `expected a DMA direction 0..3, got ${String(dir)}`, 'dir');
  return dir;
}

/**
 * A swiotlb pool over a physical range of the machine.
 * @example
 * const m = new Machine({ memory: '256M' });
 * const pool = new SwiotlbPool({ start: 0x4000000, memory: m.mm, klog: m.klog, faults: m.faults });
 * const tlb = pool.swiotlb_tbl_map_single({}, 0x200000, 4096, 0, DMA_TO_DEVICE, 0);
 * pool.swiotlb_tbl_unmap_single({}, tlb, 4096, DMA_TO_DEVICE, 0);
 */
export class SwiotlbPool {
  /** First byte of the pool. */
  readonly start: number;
  /** One past the last byte. */
  readonly end: number;
  /** Slots (`io_tlb_nslabs`); 0 means no pool. */
  readonly nslabs: number;
  readonly nareas: number;
  /** Slots per area: a multiple of 128, so no segment spans two areas. */
  readonly areaNslabs: number;
  /** Per-slot state; read-only for everyone but the pool. */
  readonly slots: SlotTable;
  private readonly _klog: KernelLog;
  private readonly _faults: FaultInjector | undefined;
  private readonly _bounce: BounceContext;
  // INVARIANT: areaIndex[a] < areaNslabs; areaUsed[a] = allocated slots charged to area a;
  //   used = sum of areaUsed = slots with list === 0; hiwater >= every value used has had since the
  //   last reset. (Misusing release can push the counters below zero, as the kernel's unsigned
  //   counters wrap; they are never clamped.)
  private readonly _areaIndex: Uint32Array;
  private readonly _areaUsed: Float64Array;
  private _used = 0;
  private _hiwater = 0;
  // INVARIANT: one entry per successful map not yet released, keyed by its first slot (padding
  //   included); entries are pairwise disjoint and their slots sum to `used` (without misuse).
  // A ChurnMap: a bounce freed and the next one mapped start at the same slot, the pattern a Map
  // slows down on (core/churn-map).
  private readonly _live = new ChurnMap<number, SwiotlbMapping>();

  constructor(opts: SwiotlbPoolOptions) {
    const fn = 'SwiotlbPool';
    const start = checkInt(opts.start, fn, 'start');
    if (start % IO_TLB_SIZE !== 0) throw new KernelError(EINVAL, fn, `pool start 0x${start.toString(16)} is not a multiple of ${IO_TLB_SIZE}`, 'start');
    const bytes = parseSize(opts.size ?? IO_TLB_DEFAULT_SIZE, fn, 'size');
    if (bytes % (IO_TLB_SIZE * IO_TLB_SEGSIZE) !== 0) throw new KernelError(EINVAL, fn, `${bytes} is not a whole number of 256 KiB segments`, 'size');
    if (start + bytes > 2 ** 53) throw new KernelError(EINVAL, fn, 'pool ends above 2^53', 'size');
    const nareas = checkInt(opts.areas ?? 1, fn, 'areas', 1, 2 ** 16);
    if (!isPowerOfTwo(nareas)) throw new KernelError(EINVAL, fn, `${nareas} is not a power of two`, 'areas');
    const nslabs = bytes / IO_TLB_SIZE;
    if (nslabs % (nareas * IO_TLB_SEGSIZE) !== 0) throw new KernelError(EINVAL, fn, `${nslabs} slots do not split into ${nareas} areas of whole segments`, 'areas');
    this.start = start;
    this.end = start + bytes;
    this.nslabs = nslabs;
    this.nareas = nareas;
    this.areaNslabs = nslabs / nareas;
    this.slots = new SlotTable(nslabs);
    this._klog = opts.klog;
    this._faults = opts.faults;
    this._areaIndex = new Uint32Array(nareas);
    this._areaUsed = new Float64Array(nareas);
    this._bounce = { slots: this.slots, start, memory: opts.memory, klog: opts.klog, scratch: bounceScratch() };
    if (nslabs > 0 && (opts.clear ?? true)) clearRange(opts.memory, start, bytes);
    if (nslabs > 0 && (opts.verbose ?? true)) {
      this._klog.printk('info', 'swiotlb_print_info', `${SWIOTLB_PR_PREFIX}mapped [mem 0x${hex16(start)}-0x${hex16(this.end)}] (${Math.floor(bytes / 2 ** 20)}MB)\n`);
    }
  }

  // ---------------------------------------------------------------- queries and counters

  /**
   * Is `phys` inside the pool (`is_swiotlb_buffer`)?
   * @example pool.is_swiotlb_buffer(pool.start) // true
   */
  is_swiotlb_buffer(phys: number): boolean {
    return phys >= this.start && phys < this.end;
  }

  /**
   * Does the pool exist (`is_swiotlb_active`)?
   * @example new SwiotlbPool({ start: 0, size: 0, memory, klog }).is_swiotlb_active() // false
   */
  is_swiotlb_active(): boolean {
    return this.nslabs > 0;
  }

  /**
   * debugfs `io_tlb_nslabs`.
   * @example pool.io_tlb_nslabs // 32768 for the default 64 MiB
   */
  get io_tlb_nslabs(): number {
    return this.nslabs;
  }

  /**
   * debugfs `io_tlb_used`: slots allocated now, padding included.
   * @example pool.io_tlb_used // 0 on a fresh pool
   */
  get io_tlb_used(): number {
    return this._used;
  }

  /**
   * debugfs `io_tlb_used_hiwater`: the most slots ever allocated at once since boot or reset.
   * @example pool.io_tlb_used_hiwater >= pool.io_tlb_used // true
   */
  get io_tlb_used_hiwater(): number {
    return this._hiwater;
  }

  /**
   * Write debugfs `io_tlb_used_hiwater`: 0 resets it and returns 0; anything else returns -EINVAL.
   * @example pool.io_tlb_hiwater_set(0) // 0
   */
  io_tlb_hiwater_set(val: number): number {
    if (val !== 0) return -EINVAL;
    this._hiwater = 0;
    return 0;
  }

  /**
   * Slots in use (the auditor's name for `io_tlb_used`).
   * @example pool.slotsInUse === pool.liveMappings().reduce((n, m) => n + m.nslots, 0) // true
   */
  get slotsInUse(): number {
    return this._used;
  }

  /**
   * The next-fit index and used count of area `a`.
   * @example pool.areaState(0) // { index: 0, used: 0 } on a fresh pool
   */
  areaState(a: number): SwiotlbAreaState {
    checkInt(a, 'SwiotlbPool.areaState', 'a', 0, this.nareas - 1);
    return { index: this._areaIndex[a] as number, used: this._areaUsed[a] as number };
  }

  /**
   * Live bounce mappings, in slot order.
   * @example pool.liveMappings()[0]?.tlbAddr
   */
  liveMappings(): SwiotlbMapping[] {
    return [...this._live.values()].sort((x, y) => x.firstSlot - y.firstSlot);
  }

  /**
   * The live mapping whose slots contain `phys`, if any.
   * @example pool.findMapping(tlb)?.orig
   */
  findMapping(phys: number): SwiotlbMapping | undefined {
    if (!this.is_swiotlb_buffer(phys)) return undefined;
    const slot = Math.floor((phys - this.start) / IO_TLB_SIZE);
    for (const m of this._live.values()) if (slot >= m.firstSlot && slot < m.firstSlot + m.nslots) return m;
    return undefined;
  }

  // ---------------------------------------------------------------- map

  /**
   * Bounce `mapping_size` bytes at `orig_addr` (`swiotlb_tbl_map_single`): allocate slots, record the
   * original addresses, copy the original into the bounce buffer (always, whatever `dir` and
   * `attrs` say) and return the bounce address, or {@link DMA_MAPPING_ERROR} with "swiotlb buffer is
   * full" (unless `DMA_ATTR_NO_WARN`). `dir` is accepted as is (DMA_NONE included).
   * @param cpu the calling CPU: areas are tried from `cpu & (nareas - 1)`.
   * @throws KernelBug for a zero-length mapping whose preserved offset is 0 (`BUG_ON(!nslots)`).
   * @throws KernelError EINVAL for an argument no C caller could pass (negative, fractional, > 2^52).
   * @example const tlb = pool.swiotlb_tbl_map_single({ min_align_mask: 0xfff }, 0x100234, 2000, 0, DMA_FROM_DEVICE, 0);
   */
  swiotlb_tbl_map_single(dev: SwiotlbDevice, orig_addr: number, mapping_size: number, alloc_align_mask: number, dir: DmaDirection, attrs: number, cpu = 0): number {
    const fn = 'swiotlb_tbl_map_single';
    const p = swiotlbDeviceParams(dev, fn);
    checkInt(orig_addr, fn, 'orig_addr');
    checkInt(mapping_size, fn, 'mapping_size', 0, MAX_SIZE);
    checkU32(alloc_align_mask, fn, 'alloc_align_mask');
    checkDir(dir, fn);
    checkU32(attrs, fn, 'attrs');
    checkInt(cpu, fn, 'cpu', 0, 2 ** 31 - 1);
    if (this.nslabs === 0) {
      this._klog.printk('warn', fn, "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer");
      return DMA_MAPPING_ERROR;
    }
    if (alloc_align_mask > 0xfff) this._klog.warnOnce('swiotlb_tbl_map_single:align', fn, 'Alloc alignment may prevent fulfilling requests with max mapping_size\n');
    const offset = (low32(orig_addr) & p.keep & (alloc_align_mask | (IO_TLB_SIZE - 1))) >>> 0;
    const size = alignUp(mapping_size + offset, alloc_align_mask);
    const need = Math.ceil(size / IO_TLB_SIZE);
    if (need === 0) throw new KernelBug('swiotlb_search_pool_area', 'BUG_ON(!nslots)');
    const first = this._faults?.shouldFail('swiotlb') === true ? -1 : findSlots({
      list: this.slots.list, areaIndex: this._areaIndex, areaUsed: this._areaUsed, areaNslabs: this.areaNslabs,
      start: this.start, boundary: p.boundary, keep: p.keep, orig: orig_addr, size, need, align: alloc_align_mask, cpu,
    });
    if (first < 0) {
      if ((attrs & DMA_ATTR_NO_WARN) === 0) {
        this._klog.printk('warn', fn, `swiotlb buffer is full (sz: ${size} bytes), total ${this.nslabs} (slots), used ${this._used} (slots)\n`);
      }
      return DMA_MAPPING_ERROR;
    }
    const area = Math.floor(first / this.areaNslabs);
    const savedIndex = this._areaIndex[area] as number;
    const savedHiwater = this._hiwater;
    const inSlot = offset % IO_TLB_SIZE;
    this.slots.claim(first, need, size, inSlot);
    const local = first - area * this.areaNslabs;
    this._areaIndex[area] = local + need >= this.areaNslabs ? 0 : local + need;
    this._areaUsed[area] = (this._areaUsed[area] as number) + need;
    this._used += need;
    if (this._used > this._hiwater) this._hiwater = this._used;
    const pad = Math.floor(offset / IO_TLB_SIZE);
    const index = first + pad;
    this.slots.touch(index, first + need);
    this.slots.pad[index] = pad;
    for (let i = 0; i < need - pad; i++) this.slots.orig[index + i] = orig_addr + i * IO_TLB_SIZE;
    const tlbAddr = this.start + index * IO_TLB_SIZE + inSlot;
    this._live.set(first, { orig: orig_addr, tlbAddr, mappingSize: mapping_size, allocSize: size, firstSlot: first, nslots: need, padSlots: pad, area });
    try {
      swiotlbBounce(this._bounce, tlbAddr, mapping_size, true, p.keep);
    } catch (e) {
      // The original is not readable memory: undo everything so the pool is exactly as before.
      this._free(first, need);
      this._areaIndex[area] = savedIndex;
      this._hiwater = savedHiwater;
      throw e;
    }
    return tlbAddr;
  }

  /**
   * The dma-direct bounce path (`swiotlb_map`): map with no alignment, then check that the bounce
   * buffer is below `min_not_zero(dma_mask, bus_dma_limit)`. If not, the slots are released
   * without copy-back, `swiotlb addr ... overflow` WARNs once, and DMA_MAPPING_ERROR is returned;
   * the area index and hiwater stay advanced. phys == dma.
   * @example pool.swiotlb_map({ dma_mask: 2 ** 32 - 1 }, 0x1_0000_0000, 4096, DMA_TO_DEVICE, 0)
   */
  swiotlb_map(dev: SwiotlbDevice, paddr: number, size: number, dir: DmaDirection, attrs: number, cpu = 0): number {
    const fn = 'swiotlb_map';
    const p = swiotlbDeviceParams(dev, fn);
    const tlb = this.swiotlb_tbl_map_single(dev, paddr, size, 0, dir, attrs, cpu);
    if (tlb === DMA_MAPPING_ERROR) return DMA_MAPPING_ERROR;
    const limit = p.dmaMask === 0 ? p.busLimit : p.busLimit === 0 ? p.dmaMask : Math.min(p.dmaMask, p.busLimit);
    if (!(tlb + size - 1 <= limit)) {
      this.swiotlb_tbl_unmap_single(dev, tlb, size, dir, (attrs | DMA_ATTR_SKIP_CPU_SYNC) >>> 0);
      this._klog.warnOnce('swiotlb_map:overflow', fn, `swiotlb addr 0x${hex16(tlb)}+${size} overflow (mask ${hexMask(p.dmaMask)}, bus limit ${hexMask(p.busLimit)}).\n`);
      return DMA_MAPPING_ERROR;
    }
    return tlb;
  }

  // ---------------------------------------------------------------- unmap and sync

  /**
   * Tear down a bounce mapping (`swiotlb_tbl_unmap_single`): copy `mapping_size` bytes back to the
   * original if `dir` is FROM_DEVICE or BIDIRECTIONAL and `DMA_ATTR_SKIP_CPU_SYNC` is clear, then
   * release the slots recorded at map time. An address outside the pool does nothing.
   * @example pool.swiotlb_tbl_unmap_single(dev, tlb, 2000, DMA_FROM_DEVICE, 0)
   */
  swiotlb_tbl_unmap_single(dev: SwiotlbDevice, tlb_addr: number, mapping_size: number, dir: DmaDirection, attrs: number): void {
    const fn = 'swiotlb_tbl_unmap_single';
    const p = swiotlbDeviceParams(dev, fn);
    checkInt(tlb_addr, fn, 'tlb_addr');
    checkInt(mapping_size, fn, 'mapping_size', 0, MAX_SIZE);
    checkDir(dir, fn);
    checkU32(attrs, fn, 'attrs');
    if (!this.is_swiotlb_buffer(tlb_addr)) return;
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL)) {
      swiotlbBounce(this._bounce, tlb_addr, mapping_size, false, p.keep);
    }
    this._release(p, tlb_addr);
  }

  /**
   * Free the slots of the mapping at `tlb_addr` without copying (`swiotlb_release_slots`): the
   * first slot is found from the address less its preserved in-slot offset, stepped back over the
   * padding; the count comes from the size recorded at map time.
   * @throws KernelError EINVAL when `tlb_addr` is outside the pool.
   * @example pool.swiotlb_release_slots(dev, tlb)
   */
  swiotlb_release_slots(dev: SwiotlbDevice, tlb_addr: number): void {
    const fn = 'swiotlb_release_slots';
    const p = swiotlbDeviceParams(dev, fn);
    checkInt(tlb_addr, fn, 'tlb_addr');
    if (!this.is_swiotlb_buffer(tlb_addr)) throw new KernelError(EINVAL, fn, `0x${tlb_addr.toString(16)} is not in the pool`, 'tlb_addr');
    this._release(p, tlb_addr);
  }

  /**
   * Give the buffer to the device (`swiotlb_sync_single_for_device`): TO_DEVICE and BIDIRECTIONAL
   * copy original → bounce; FROM_DEVICE copies nothing. Outside the pool: nothing.
   * @throws KernelBug for DMA_NONE (`BUG_ON(dir != DMA_FROM_DEVICE)`).
   * @example pool.swiotlb_sync_single_for_device(dev, tlb, 512, DMA_TO_DEVICE)
   */
  swiotlb_sync_single_for_device(dev: SwiotlbDevice, tlb_addr: number, size: number, dir: DmaDirection): void {
    const fn = 'swiotlb_sync_single_for_device';
    const p = this._checkSync(dev, tlb_addr, size, dir, fn);
    if (p === undefined) return;
    if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) swiotlbBounce(this._bounce, tlb_addr, size, true, p.keep);
    else if (dir !== DMA_FROM_DEVICE) throw new KernelBug(fn, 'BUG_ON(dir != DMA_FROM_DEVICE)');
  }

  /**
   * Give the buffer back to the CPU (`swiotlb_sync_single_for_cpu`): FROM_DEVICE and BIDIRECTIONAL
   * copy bounce → original; TO_DEVICE copies nothing. Outside the pool: nothing.
   * @throws KernelBug for DMA_NONE (`BUG_ON(dir != DMA_TO_DEVICE)`).
   * @example pool.swiotlb_sync_single_for_cpu(dev, tlb, 512, DMA_FROM_DEVICE)
   */
  swiotlb_sync_single_for_cpu(dev: SwiotlbDevice, tlb_addr: number, size: number, dir: DmaDirection): void {
    const fn = 'swiotlb_sync_single_for_cpu';
    const p = this._checkSync(dev, tlb_addr, size, dir, fn);
    if (p === undefined) return;
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) swiotlbBounce(this._bounce, tlb_addr, size, false, p.keep);
    else if (dir !== DMA_TO_DEVICE) throw new KernelBug(fn, 'BUG_ON(dir != DMA_TO_DEVICE)');
  }

  // ---------------------------------------------------------------- internals

  private _checkSync(dev: SwiotlbDevice, tlb_addr: number, size: number, dir: DmaDirection, fn: string): SwiotlbDeviceParams | undefined {
    const p = swiotlbDeviceParams(dev, fn);
    checkInt(tlb_addr, fn, 'tlb_addr');
    checkInt(size, fn, 'size', 0, MAX_SIZE);
    checkDir(dir, fn);
    return this.is_swiotlb_buffer(tlb_addr) ? p : undefined;
  }

  private _release(p: SwiotlbDeviceParams, tlb_addr: number): void {
    const off = (low32(tlb_addr) & p.keep & (IO_TLB_SIZE - 1)) >>> 0;
    let index = Math.floor((tlb_addr - off - this.start) / IO_TLB_SIZE);
    index -= this.slots.pad[index] as number;
    // nr_slots(alloc_size + offset) on a u64: a slightly negative sum rounds to 0 slots.
    const nslots = Math.max(0, Math.floor(((this.slots.room[index] as number) + off + IO_TLB_SIZE - 1) / IO_TLB_SIZE));
    this._free(index, nslots);
  }

  private _free(first: number, nslots: number): void {
    const area = Math.floor(first / this.areaNslabs);
    this.slots.release(first, nslots);
    this._areaUsed[area] = (this._areaUsed[area] as number) - nslots;
    this._used -= nslots;
    this._live.delete(first);
  }

}
