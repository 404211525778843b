/**
 * @module mm/mm
 * The physical memory of one machine: zones with buddy allocators, page metadata, sparse contents,
 * vmalloc, and the kernel-named entry points (alloc_pages, __free_pages, vmalloc, vfree, ...).
 */
import type { KernelContext } from '../core/context.ts';
import { EFAULT, EINVAL } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { checkFunction, checkInt } from '../core/args.ts';
import { MAX_PAGE_ORDER, PAGE_OFFSET, PAGE_SIZE, ZONE_DMA_LIMIT, getOrder, pageAlign } from './constants.ts';
import { carveRange, FreeArea, freeRange } from './buddy.ts';
import { PhysContents, type PhysMemory } from '../core/sparse-memory.ts';
import { pfnArray, type PfnArray } from '../core/page.ts';
import { POW2, leValue, putLe } from '../core/bits.ts';
import { LeScratch, checkLeValue } from '../core/le-value.ts';
import { modPow2 } from '../core/mod-pow2.ts';
import { formatGfp, gfpZone, GFP_KERNEL, __GFP_NOFAIL, __GFP_NOWARN, __GFP_ZERO } from './gfp.ts';
import { parseDeviceMemory, parseRam, zoneSpans, type DeviceMemoryRange, type DeviceMemorySpec, type PfnRange, type RamRangeSpec } from './layout.ts';
import { OWNER_ID, PageMeta, PG_ALLOCATED, PG_RESERVED, type Owner } from './page-meta.ts';
import { VmapSpace, VmArea } from './vmalloc.ts';
import { Kmalloc } from './slab.ts';
import { parseSize, type Size } from '../core/size.ts';
import { VmAreaIndex } from './vm-area-index.ts';

/** How to build a memory model. */
export interface MmOptions {
  /** Total RAM from address 0, or explicit ranges (holes between them). */
  readonly memory: Size | readonly RamRangeSpec[];
  /** Bytes at the bottom of RAM reserved at boot (x86 keeps the first MiB). Default 1 MiB. */
  readonly lowReserve?: Size;
  /** Where ZONE_DMA ends, in bytes: 16 MiB (x86, the default) or 4 GiB (arm64 without a firmware limit). */
  readonly zoneDmaLimit?: number;
  /** Device memory (PCI BARs, other MMIO) that devices and the CPU can reach but the page allocator never hands out. */
  readonly deviceMemory?: readonly DeviceMemorySpec[];
}

/** Per-zone numbers for reports. */
export interface ZoneStats {
  readonly name: string;
  readonly presentPages: number;
  readonly freePages: number;
  /** Free blocks per order 0..MAX_PAGE_ORDER. */
  readonly nrFree: readonly number[];
}

/** A byte buffer and a window [off, off+len) inside it, else EINVAL naming the bad argument. */
function checkBuffer(buf: unknown, off: unknown, len: unknown, fn: string, arg: string): void {
  if (!(buf instanceof Uint8Array)) throw new KernelError(EINVAL, fn, `expected a Uint8Array, got ${buf === null ? 'null' : typeof buf}`, arg);
  if (typeof off !== 'number' || !Number.isSafeInteger(off) || off < 0 || off > buf.length) throw new KernelError(EINVAL, fn, `offset ${String(off)} outside the buffer`, `${arg}Off`);
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0 || off + len > buf.length) throw new KernelError(EINVAL, fn, `length ${String(len)} runs past the buffer`, 'len');
}

/**
 * Physical memory and the page allocator of one machine.
 * @example
 * const pfn = machine.mm.alloc_pages(GFP_KERNEL, 2); // 4 contiguous pages, or null
 * if (pfn !== null) machine.mm.__free_pages(pfn, 2);
 */
export class Mm implements PhysMemory {
  readonly ram: readonly PfnRange[];
  /** Device memory ranges (no page metadata, never allocated), sorted. */
  readonly deviceMemory: readonly DeviceMemoryRange[];
  /** One past the highest RAM pfn. */
  readonly maxPfn: number;
  /** zone_dma_limit + 1: where ZONE_DMA ends, in bytes (x86 16 MiB, arm64 4 GiB). */
  readonly zoneDmaLimit: number;
  readonly zones: readonly FreeArea[];
  readonly meta: PageMeta;
  readonly contents = new PhysContents();
  private readonly _ctx: KernelContext;
  /** The machine (kernel context) this memory belongs to. */
  get ctx(): KernelContext {
    return this._ctx;
  }
  private readonly _vmap = new VmapSpace();
  // INVARIANT: _areas holds exactly the live vmalloc and vmap areas (found by start or by any
  //   address inside).
  private readonly _areas = new VmAreaIndex<VmArea>();
  /** Pages handed out by the page allocator and not yet freed. */
  private _allocatedPages = 0;
  // INVARIANT: _pins maps a pfn to its pin count (> 0) while pinned (pin_user_pages*); _deferred
  //   holds pinned pages whose mapping went away: the last unpin frees them.
  private readonly _pins = new Map<number, number>();
  private readonly _deferred = new Set<number>();
  /** Pages marked dirty by an unpin with make_dirty (the device wrote them). */
  readonly dirtyPages = new Set<number>();
  /** The bytes of register-style accesses (readLe*, writeLe*). */
  private readonly _le = new LeScratch();
  /** kmalloc / kfree for small physically contiguous objects. */
  readonly slab: Kmalloc;

  constructor(ctx: KernelContext, opts: MmOptions) {
    if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'Mm', 'expected options ({ memory, ... })', 'opts');
    this._ctx = ctx;
    this.ram = parseRam(opts.memory);
    this.maxPfn = (this.ram[this.ram.length - 1] as PfnRange).endPfn;
    this.deviceMemory = parseDeviceMemory(opts.deviceMemory, this.ram);
    this.meta = new PageMeta(this.ram);
    const reserve = Math.ceil(parseSize(opts.lowReserve ?? 2 ** 20, 'Machine', 'lowReserve') / PAGE_SIZE);
    // Holes have no metadata (they read as PG_RESERVED); the low reservation is marked.
    this.meta.fill(this.meta.state, PG_RESERVED, 0, Math.min(reserve, this.maxPfn));
    this.slab = new Kmalloc(this, ctx);
    this.zoneDmaLimit = opts.zoneDmaLimit ?? ZONE_DMA_LIMIT;
    this.zones = zoneSpans(this.ram, this.zoneDmaLimit).map((span) => {
      const area = new FreeArea(span);
      for (const r of span.ram) freeRange(area, Math.max(r.startPfn, reserve), r.endPfn);
      // Buddy changes count as page-metadata writes (snapshots, the incremental audit), once a
      // snapshot was taken (before, the hook cost a fragmented 16 GiB machine 43 -> 57 ms to build).
      const meta = this.meta;
      const written = meta.written;
      area.changed = (pfn, pages) => {
        if (!written.tracking) return;
        // Announced, not resolved: deferred held pages do not depend on the buddy bitmaps.
        const i = meta.index(pfn);
        written.touch(i, i + pages);
      };
      return area;
    });
  }

  // ---------------------------------------------------------------- queries

  /** Is [phys, phys+len) entirely RAM (not a hole)? */
  isRam(phys: number, len = 1): boolean {
    if (!(phys >= 0) || !(len >= 0) || !Number.isFinite(phys + len)) return false;
    const first = Math.floor(phys / PAGE_SIZE);
    const last = Math.floor((phys + Math.max(len, 1) - 1) / PAGE_SIZE);
    // A loop, not ram.some's closure: it runs on every device access and CPU copy.
    const ram = this.ram;
    for (let i = 0; i < ram.length; i++) {
      const r = ram[i] as PfnRange;
      if (first >= r.startPfn && last < r.endPfn) return true;
    }
    return false;
  }

  /** Is [phys, phys+len) entirely inside one device-memory range? */
  isDeviceMemory(phys: number, len = 1): boolean {
    if (!(phys >= 0) || !(len >= 0) || !Number.isFinite(phys + len)) return false;
    const end = phys + Math.max(len, 1);
    return this.deviceMemory.some((r) => phys >= r.start && end <= r.end);
  }

  /** Does something answer at [phys, phys+len): RAM, or one device-memory range? (What a bus access reaches.) */
  answers(phys: number, len = 1): boolean {
    return this.isRam(phys, len) || this.isDeviceMemory(phys, len);
  }

  /** Pages of RAM in all zones. */
  get totalPages(): number {
    return this.zones.reduce((n, z) => n + z.span.presentPages, 0);
  }

  /** Free pages in all zones. */
  get freePages(): number {
    return this.zones.reduce((n, z) => n + z.freePages, 0);
  }

  /** Pages currently allocated through the page allocator. */
  get allocatedPages(): number {
    return this._allocatedPages;
  }

  /** @internal the fragmenter marks pages held without going through alloc_pages. */
  adjustAllocated(pages: number): void {
    checkInt(pages, 'adjustAllocated', 'pages', -this._allocatedPages, this.maxPfn);
    this._allocatedPages += pages;
  }

  /** Per-zone statistics. */
  zoneStats(): ZoneStats[] {
    return this.zones.filter((z) => z.span.presentPages > 0).map((z) => ({
      name: z.span.name, presentPages: z.span.presentPages, freePages: z.freePages, nrFree: Array.from(z.nrFree),
    }));
  }

  /**
   * The `/proc/buddyinfo` view: free blocks per order for each populated zone.
   * @example mm.buddyinfo() // 'Node 0, zone      DMA      1      1 ...'
   */
  buddyinfo(): string {
    return this.zoneStats().map((z) => `Node 0, zone ${z.name.padStart(8)} ${z.nrFree.map((n) => String(n).padStart(6)).join(' ')}`).join('\n');
  }

  // ---------------------------------------------------------------- page allocator

  /**
   * Allocate 2^order physically contiguous pages (kernel alloc_pages). Zones are tried from the one
   * `gfp` allows down to ZONE_DMA.
   * @returns the first pfn, or null when no block is free (warn_alloc prints unless __GFP_NOWARN).
   * @example const pfn = mm.alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
   */
  alloc_pages(gfp: number, order: number, owner: Owner = 'pages'): number | null {
    checkInt(gfp, 'alloc_pages', 'gfp', 0, 0xffffffff);
    checkInt(order, 'alloc_pages', 'order', 0, 63);
    if (typeof owner !== 'string' || !Object.hasOwn(OWNER_ID, owner)) throw new KernelError(EINVAL, 'alloc_pages', `unknown page owner ${String(owner)}`, 'owner');
    if (order > MAX_PAGE_ORDER) {
      // Kernel: WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp), then NULL.
      if (!(gfp & __GFP_NOWARN)) this._ctx.klog.warnOnce('alloc_pages:order', '__alloc_pages', `WARN_ON_ONCE(order > MAX_PAGE_ORDER) order:${order}`);
      return null;
    }
    const pfn = this._take(gfp, order);
    if (pfn < 0) {
      this._warnAlloc(gfp, order);
      return null;
    }
    this.meta.markAllocated(pfn, order, OWNER_ID[owner]);
    this._allocatedPages += POW2[order] as number;
    if (gfp & __GFP_ZERO) this.contents.fill(pfn * PAGE_SIZE, PAGE_SIZE * (POW2[order] as number), 0);
    return pfn;
  }

  /**
   * Drop a reference to a block from alloc_pages; the pages return to the buddy allocator when the
   * count reaches zero (kernel __free_pages).
   * @throws KernelBug when `pfn` is not the head of an allocated block of exactly `order` (double free).
   */
  __free_pages(pfn: number, order: number): void {
    checkInt(pfn, '__free_pages', 'pfn', 0, this.maxPfn - 1);
    checkInt(order, '__free_pages', 'order', 0, MAX_PAGE_ORDER);
    const have = this.meta.headOrder(pfn);
    if (have < 0) throw new KernelBug('__free_pages', `Bad page state: pfn:0x${pfn.toString(16)} is not an allocated page (double free?)`);
    if (have !== order) throw new KernelBug('__free_pages', `Bad page state: pfn:0x${pfn.toString(16)} freed with order ${order}, allocated with order ${have}`);
    const rc = this.meta.refcountOf(pfn) - 1;
    // A pin holds references of its own (GUP_PIN_COUNTING_BIAS): dropping another reference is
    // fine; the page may not go back to the allocator while pinned.
    if (rc === 0 && this._pins.size > 0) this._checkNotPinned(pfn, POW2[order] as number, '__free_pages');
    this.meta.setRefcount(pfn, rc);
    if (rc > 0) return;
    this._release(pfn, order);
  }

  /** Pins held on page `pfn` (pin_user_pages*). */
  pinsOf(pfn: number): number {
    return this._pins.get(pfn) ?? 0;
  }

  /** Pages pinned now, with their pin counts. */
  pinnedPages(): ReadonlyMap<number, number> {
    return this._pins;
  }

  /** @internal take one pin on an allocated page (try_grab_folio with FOLL_PIN). */
  pin(pfn: number): void {
    checkInt(pfn, 'try_grab_folio', 'pfn', 0, this.maxPfn - 1);
    if ((this.meta.stateOf(pfn) & PG_ALLOCATED) === 0) throw new KernelBug('try_grab_folio', `page 0x${pfn.toString(16)} is not allocated`);
    this._pins.set(pfn, this.pinsOf(pfn) + 1);
  }

  /** @internal drop one pin; the last pin of a page whose mapping is gone frees it. */
  unpin(pfn: number, fn: string): void {
    checkInt(pfn, 'unpin_user_page', 'pfn', 0, this.maxPfn - 1);
    const n = this.pinsOf(pfn);
    if (n === 0) throw new KernelBug(fn, `page 0x${pfn.toString(16)} holds no pin: unpinning it underflows the refcount and frees a page still in use`);
    if (n > 1) { this._pins.set(pfn, n - 1); return; }
    this._pins.delete(pfn);
    if (this._deferred.delete(pfn)) this.__free_pages(pfn, 0);
  }

  /** @internal the page's mapping went away while pinned: free it at its last unpin. */
  deferFreeUntilUnpinned(pfn: number): void {
    this._deferred.add(pfn);
  }

  /** @internal folio_mark_dirty from an unpin with make_dirty. */
  markDirty(pfn: number): void {
    this.dirtyPages.add(pfn);
  }

  private _checkNotPinned(pfn: number, n: number, fn: string): void {
    for (let i = 0; i < n; i++) {
      const pins = this._pins.get(pfn + i);
      if (pins !== undefined) throw new KernelBug(fn, `Bad page state: pfn:0x${(pfn + i).toString(16)} is freed with ${pins} pin${pins === 1 ? '' : 's'} held (nonzero pincount): a device may still be writing it`);
    }
  }

  /** Take an extra reference on an allocated block (get_page). */
  get_page(pfn: number): void {
    checkInt(pfn, 'get_page', 'pfn', 0, this.maxPfn - 1);
    if (this.meta.headOrder(pfn) < 0) throw new KernelBug('get_page', `page 0x${pfn.toString(16)} is not allocated`);
    const rc = this.meta.refcountOf(pfn);
    if (rc === 255) throw new KernelError(EINVAL, 'get_page', 'dmasim keeps page refcounts below 256', 'pfn');
    this.meta.setRefcount(pfn, rc + 1);
  }

  /** Physical address of a page frame. */
  page_to_phys(pfn: number): number {
    return pfn * PAGE_SIZE;
  }

  /** Direct-map virtual address of a physical address (phys_to_virt). */
  phys_to_virt(phys: number): number {
    return PAGE_OFFSET + phys;
  }

  /** Physical address behind a direct-map or vmalloc virtual address (virt_to_phys / vmalloc_to_page). */
  virt_to_phys(virt: number): number {
    if (typeof virt !== 'number' || !Number.isSafeInteger(virt)) throw new KernelError(EINVAL, 'virt_to_phys', `expected a kernel virtual address, got ${virt === null ? 'null' : typeof virt === 'number' ? String(virt) : typeof virt}`, 'virt');
    if (virt >= PAGE_OFFSET && virt < PAGE_OFFSET + this.maxPfn * PAGE_SIZE) return virt - PAGE_OFFSET;
    const area = this.findVmArea(virt);
    if (area !== undefined) return area.physOf(virt - area.addr);
    throw new KernelError(EFAULT, 'virt_to_phys', `0x${virt.toString(16)} is neither direct-mapped nor vmalloc'ed`, 'virt');
  }

  /**
   * Physically contiguous pages for `size` bytes, the unused tail of the block given back
   * (alloc_pages_exact). Returns the direct-map virtual address or null.
   */
  alloc_pages_exact(size: number, gfp: number = GFP_KERNEL): number | null {
    checkInt(size, 'alloc_pages_exact', 'size', 1);
    const pages = pageAlign(size) / PAGE_SIZE;
    const order = getOrder(size);
    const pfn = this.alloc_pages(gfp, order, 'pages-exact');
    if (pfn === null) return null;
    // Every page becomes its own order-0 allocation; the tail goes back.
    this.split_page(pfn, order);
    for (let i = pages, n = POW2[order] as number; i < n; i++) this.__free_pages(pfn + i, 0);
    return this.phys_to_virt(pfn * PAGE_SIZE);
  }

  /** Free what alloc_pages_exact returned. */
  free_pages_exact(virt: number, size: number): void {
    checkInt(size, 'free_pages_exact', 'size', 1);
    const pfn = Math.floor(this.virt_to_phys(virt) / PAGE_SIZE);
    const pages = pageAlign(size) / PAGE_SIZE;
    // Every page is checked before any is freed: a size past the allocation frees nothing.
    for (let i = 0; i < pages; i++) {
      if (pfn + i >= this.maxPfn || this.meta.headOrder(pfn + i) !== 0) {
        throw new KernelBug('free_pages_exact', `Bad page state: pfn:0x${(pfn + i).toString(16)} (page ${i} of ${pages}) is not an allocated page`);
      }
    }
    for (let i = 0; i < pages; i++) this.__free_pages(pfn + i, 0);
  }

  /**
   * Boot-time allocation of `bytes` of physically contiguous memory below `limit` (memblock_alloc_low,
   * top-down as on x86): the highest free range that fits. Returns its physical address or -1.
   * The pages are owned by `owner` and never freed.
   */
  memblockAllocLow(bytes: number, limit: number, owner: Owner): number {
    const pages = Math.ceil(bytes / PAGE_SIZE);
    for (let r = this.ram.length - 1; r >= 0; r--) {
      const range = this.ram[r] as PfnRange;
      const top = Math.min(range.endPfn, Math.floor(limit / PAGE_SIZE));
      for (let start = top - pages; start >= range.startPfn; start -= 1024) {
        if (this._memblockTake(start, pages, owner)) return start * PAGE_SIZE;
      }
    }
    return -1;
  }

  /** Take [start, start + pages) out of its zone's free lists for `owner`, for good; false when it is not all free in one zone. */
  private _memblockTake(start: number, pages: number, owner: Owner): boolean {
    const zone = this.zones.find((z) => start >= z.span.startPfn && start + pages <= z.span.endPfn);
    if (zone === undefined || !carveRange(zone, start, start + pages)) return false;
    const meta = this.meta;
    meta.fill(meta.state, PG_ALLOCATED | 0x2, start, start + pages);
    meta.fill(meta.refcount, 1, start, start + pages);
    meta.fill(meta.owner, OWNER_ID[owner], start, start + pages);
    this._allocatedPages += pages;
    return true;
  }

  /**
   * Boot-time reservation of exactly [phys, phys + bytes) (memblock_reserve of a region the
   * firmware names, e.g. a reserved-memory node for a DMA pool): true when it was free RAM within
   * one zone, then owned by `owner` and never freed; false, and nothing changed, otherwise.
   */
  memblockReserve(phys: number, bytes: number, owner: Owner): boolean {
    if (!Number.isSafeInteger(phys) || phys < 0 || phys % PAGE_SIZE !== 0 || !Number.isSafeInteger(bytes) || bytes <= 0) return false;
    const start = phys / PAGE_SIZE;
    const pages = Math.ceil(bytes / PAGE_SIZE);
    return this.isRam(phys, pages * PAGE_SIZE) && this._memblockTake(start, pages, owner);
  }

  /**
   * Read a little-endian 16/32/64-bit value at kernel virtual address `virt` (direct map or
   * vmalloc) as the CPU does (`le32_to_cpu(*p)`): checked against DMA ownership like readPhys.
   * @example const status = machine.mm.readLe32(cqe + 12);
   */
  readLe16(virt: number): number { return leValue(this._readVirt(virt, 2, 'readLe16'), 2, 'readLe16', 'virt', ''); }
  /** @see readLe16 */
  readLe32(virt: number): number { return leValue(this._readVirt(virt, 4, 'readLe32'), 4, 'readLe32', 'virt', ''); }
  /** @see readLe16; a value of 2^53 or more is EINVAL (read two 32-bit halves). */
  readLe64(virt: number): number {
    const b = this._readVirt(virt, 8, 'readLe64');
    // The address is formatted only for the error (per call it was half of a readLe64).
    return leValue(b, 8, 'readLe64', 'virt', (b[7] as number) >= 0x20 ? `0x${virt.toString(16)}` : '');
  }

  /**
   * Write a little-endian 16/32/64-bit value at kernel virtual address `virt` (`*p = cpu_to_le64(v)`).
   * @example machine.mm.writeLe64(prpList + 8 * i, dmaAddr);
   */
  writeLe16(virt: number, v: number): void { this._writeLe(virt, v, 2, 'writeLe16'); }
  /** @see writeLe16 */
  writeLe32(virt: number, v: number): void { this._writeLe(virt, v, 4, 'writeLe32'); }
  /** @see writeLe16 */
  writeLe64(virt: number, v: number): void { this._writeLe(virt, v, 8, 'writeLe64'); }

  private _readVirt(virt: number, len: number, fn: string): Uint8Array {
    const out = this._le.take(len);
    try {
      this.forEachVirtSpan(virt, len, fn, (phys, at, n) => this.readPhysInto(phys, out, at, n));
    } finally {
      this._le.give();
    }
    return out;
  }

  private _writeLe(virt: number, v: number, bytes: 2 | 4 | 8, fn: string): void {
    const buf = this._le.take(bytes);
    try {
      putLe(buf, 0, checkLeValue(v, bytes, fn), bytes);
      this.forEachVirtSpan(virt, bytes, fn, (phys, at, n) => this.writePhys(phys, buf, at, n));
    } finally {
      this._le.give();
    }
  }

  /**
   * Visit the physical spans behind the kernel virtual range [virt, virt + len): one span for the
   * direct map, page pieces for a vmalloc (or vmap) area, whose pages lie anywhere.
   * @throws KernelError EINVAL naming `fn` for a non-address, EFAULT for an address neither mapping holds.
   * @example mm.forEachVirtSpan(area.addr, 8192, 'probe', (phys, at, n) => ...)
   */
  forEachVirtSpan(virt: number, len: number, fn: string, visit: (phys: number, at: number, n: number) => void): void {
    if (typeof virt !== 'number' || !Number.isSafeInteger(virt)) throw new KernelError(EINVAL, fn, `expected a kernel virtual address, got ${String(virt)}`, 'virt');
    checkInt(len, fn, 'len', 0);
    checkFunction(visit, fn, 'visit');
    if (len === 0) return;
    const area = virt >= PAGE_OFFSET && virt < PAGE_OFFSET + this.maxPfn * PAGE_SIZE ? undefined : this.findVmArea(virt);
    if (area === undefined) {
      visit(this.virt_to_phys(virt), 0, len);
      return;
    }
    for (let at = 0; at < len;) {
      const phys = area.physOf(virt - area.addr + at);
      const n = Math.min(len - at, PAGE_SIZE - modPow2(phys, PAGE_SIZE));
      visit(phys, at, n);
      at += n;
    }
  }

  /** kmalloc: a physically contiguous object; its direct-map address or null. */
  kmalloc(size: number, gfp: number = GFP_KERNEL): number | null {
    return this.slab.kmalloc(size, gfp);
  }

  /** kzalloc. */
  kzalloc(size: number, gfp: number = GFP_KERNEL): number | null {
    return this.slab.kzalloc(size, gfp);
  }

  /** kfree. */
  kfree(addr: number | null): void {
    this.slab.kfree(addr);
  }

  // ---------------------------------------------------------------- contents

  /**
   * Watches CPU accesses through the methods below (the machine's CPU-ownership check); null when
   * unchecked. Called after the RAM check, before the bytes move, for non-empty accesses.
   */
  onCpuAccess: ((phys: number, len: number, write: boolean) => void) | null = null;

  /**
   * Byte access for the simulator's own copies, which are not CPU accesses by a driver: swiotlb's
   * bounce copies, device DMA, the allocator's zeroing. RAM-checked like the CPU methods, never
   * reported to `onCpuAccess`.
   */
  readonly kernelMemory: PhysMemory = {
    readPhysInto: (phys, dst, dstOff, len) => {
      this._checkRam(phys, len, 'readPhysInto');
      this.contents.readInto(phys, dst, dstOff, len);
    },
    writePhys: (phys, src, srcOff, len) => {
      this._checkRam(phys, len, 'writePhys');
      this.contents.write(phys, src, srcOff, len);
    },
    fillPhys: (phys, len, value) => {
      this._checkRam(phys, len, 'fillPhys');
      this.contents.fill(phys, len, value);
    },
    copyPhys: (dst, src, len) => {
      this._checkRam(src, len, 'copyPhys');
      this._checkRam(dst, len, 'copyPhys');
      this.contents.copy(dst, src, len);
    },
  };

  /** Read bytes at a physical address (crossing pages is fine). Holes are EFAULT. A CPU access. */
  readPhys(phys: number, len: number): Uint8Array {
    this._checkRam(phys, len, 'readPhys');
    if (this.onCpuAccess !== null && len > 0) this.onCpuAccess(phys, len, false);
    return this.contents.read(phys, len);
  }

  /** Copy bytes at a physical address into `dst`. A CPU access. */
  readPhysInto(phys: number, dst: Uint8Array, dstOff = 0, len = dst?.length - dstOff): void {
    checkBuffer(dst, dstOff, len, 'readPhysInto', 'dst');
    this._checkRam(phys, len, 'readPhysInto');
    if (this.onCpuAccess !== null && len > 0) this.onCpuAccess(phys, len, false);
    this.contents.readInto(phys, dst, dstOff, len);
  }

  /** Write bytes at a physical address. A CPU access. */
  writePhys(phys: number, src: Uint8Array, srcOff = 0, len = src?.length - srcOff): void {
    checkBuffer(src, srcOff, len, 'writePhys', 'src');
    this._checkRam(phys, len, 'writePhys');
    if (this.onCpuAccess !== null && len > 0) this.onCpuAccess(phys, len, true);
    this.contents.write(phys, src, srcOff, len);
  }

  /** Fill bytes at a physical address with `value`. A CPU access. */
  fillPhys(phys: number, len: number, value: number = 0): void {
    this._checkRam(phys, len, 'fillPhys');
    if (this.onCpuAccess !== null && len > 0) this.onCpuAccess(phys, len, true);
    this.contents.fill(phys, len, value);
  }

  // ---------------------------------------------------------------- vmalloc

  /**
   * Allocate a virtually contiguous area backed by order-0 pages (kernel vmalloc). Returns null on
   * failure with the kernel's "vmalloc error" report (nothing is left allocated).
   * @example const area = mm.vmalloc(64 * 2 ** 20); area?.pageIter().pageCount // 16384
   */
  vmalloc(size: number, gfp: number = GFP_KERNEL): VmArea | null {
    checkInt(size, 'vmalloc', 'size');
    if (size === 0) {
      this._ctx.klog.warnOnce('vmalloc:size0', '__vmalloc_node_range', 'WARN_ON_ONCE(!size)');
      return null;
    }
    const nrPages = pageAlign(size) / PAGE_SIZE;
    if (nrPages > this.totalPages) {
      this._vmallocError(gfp, `size ${pageAlign(size)}, exceeds total pages`);
      return null;
    }
    const addr = this._vmap.alloc((nrPages + 1) * PAGE_SIZE);
    if (addr < 0) {
      this._vmallocError(gfp, `size ${pageAlign(size)}, vm_struct allocation failed`);
      return null;
    }
    const pages = pfnArray(nrPages, this.maxPfn);
    const got = this._bulkAllocOrder0(gfp, pages, OWNER_ID.vmalloc);
    if (got < nrPages) {
      for (let i = 0; i < got; i++) this.__free_pages(pages[i] as number, 0);
      this._vmap.free(addr, (nrPages + 1) * PAGE_SIZE);
      this._vmallocError(gfp, `size ${pageAlign(size)}, failed to allocate pages`);
      return null;
    }
    if (gfp & __GFP_ZERO) for (let i = 0; i < nrPages; i++) this.contents.fill((pages[i] as number) * PAGE_SIZE, PAGE_SIZE, 0);
    const area = new VmArea(addr, size, pages, this, this._ctx);
    this._areas.add(area);
    return area;
  }

  /** vzalloc: vmalloc with zeroed contents. */
  vzalloc(size: number, gfp: number = GFP_KERNEL): VmArea | null {
    return this.vmalloc(size, gfp | __GFP_ZERO);
  }

  /**
   * Free a vmalloc area and its pages (kernel vfree). vfree(null) does nothing, as in C.
   * @throws KernelBug when the area was already freed or belongs to another machine.
   */
  vfree(area: VmArea | null): void {
    if (area === null) return;
    if (!(area instanceof VmArea)) throw new KernelError(EINVAL, 'vfree', `expected a vmalloc area or null, got ${typeof area}`, 'area');
    if (this._areas.get(area.addr) !== area) {
      throw new KernelBug('vfree', `Trying to vfree() nonexistent vm area (0x${area.addr.toString(16)})`);
    }
    if (area.mapped) throw new KernelBug('vfree', `Trying to vfree() a vmap() area (0x${area.addr.toString(16)}): its pages are not vmalloc's; vunmap() it`);
    this._bulkFreeOrder0(area.pages, 'vfree');
    this._areas.remove(area);
    area.kill();
    this._vmap.free(area.addr, (area.pages.length + 1) * PAGE_SIZE);
  }

  /**
   * vmap: map `count` allocated pages (owned by the caller) virtually contiguously. The area's
   * pages stay the caller's; vunmap releases the addresses. Returns null when the vmalloc space is full.
   * @throws KernelBug for a page that is not allocated.
   * @example const area = m.mm.vmap(pages, pages.length); m.mm.vunmap(area.addr);
   */
  vmap(pages: ArrayLike<number>, count: number): VmArea | null {
    checkInt(count, 'vmap', 'count', 1, 2 ** 30);
    if (pages === null || typeof pages !== 'object' || typeof pages.length !== 'number' || pages.length < count) {
      throw new KernelError(EINVAL, 'vmap', `expected an array of at least ${count} page frame numbers`, 'pages');
    }
    const pfns = pfnArray(count, this.maxPfn);
    for (let i = 0; i < count; i++) {
      const pfn = pages[i] as number;
      if (typeof pfn !== 'number' || !Number.isSafeInteger(pfn) || (this.meta.stateOf(pfn) & PG_ALLOCATED) === 0) {
        throw new KernelBug('vmap', `page ${i} (pfn ${String(pfn)}) is not an allocated page`);
      }
      pfns[i] = pfn;
    }
    const addr = this._vmap.alloc((count + 1) * PAGE_SIZE);
    if (addr < 0) return null;
    const area = new VmArea(addr, count * PAGE_SIZE, pfns, this, this._ctx, true);
    this._areas.add(area);
    return area;
  }

  /**
   * vunmap: release the addresses of a vmap() area (the pages stay allocated).
   * @throws KernelBug for an address that is not a live vmap() area.
   */
  vunmap(addr: number): void {
    const area = this._areas.get(addr);
    if (area === undefined || !area.mapped) throw new KernelBug('vunmap', `Trying to vunmap() nonexistent vm area (0x${typeof addr === 'number' ? addr.toString(16) : String(addr)})`);
    this._areas.remove(area);
    area.kill();
    this._vmap.free(addr, (area.nrPages + 1) * PAGE_SIZE);
  }

  /**
   * split_page: make each page of an allocated order-`order` block its own order-0 allocation, so
   * each can be freed alone.
   * @throws KernelBug when `pfn` is not the head of an allocated block of that order.
   */
  split_page(pfn: number, order: number): void {
    checkInt(order, 'split_page', 'order', 0, MAX_PAGE_ORDER);
    if (this.meta.headOrder(pfn) !== order) throw new KernelBug('split_page', `pfn 0x${Number(pfn).toString(16)} is not the head of an allocated order-${order} block`);
    const owner = this.meta.ownerOf(pfn);
    for (let i = 0, n = POW2[order] as number; i < n; i++) this.meta.markAllocated(pfn + i, 0, owner);
  }

  /** The live vmalloc area containing virtual address `virt`. */
  findVmArea(virt: number): VmArea | undefined {
    return this._areas.find(virt);
  }

  /** Live vmalloc areas. */
  vmAreas(): IterableIterator<VmArea> {
    return this._areas.values();
  }

  // ---------------------------------------------------------------- internals

  /**
   * Fill `out` with order-0 pages (alloc_pages_bulk). Whole free blocks are handed out page by page
   * in ascending order, exactly what repeated alloc_pages(order 0) would return. Returns the count.
   */
  private _bulkAllocOrder0(gfp: number, out: PfnArray, owner: number): number {
    let got = 0;
    const want = out.length;
    const meta = this.meta;
    while (got < want) {
      if (this._ctx.faults.shouldFail('page') && !(gfp & __GFP_NOFAIL)) break;
      const zone = this._zoneFor(gfp, 0);
      if (zone === undefined) break;
      const o = zone.smallestAvailable(0);
      const block = POW2[o] as number;
      if (o > 0 && block <= want - got && !this._ctx.faults.armed) {
        const pfn = zone.take(o);
        // Whole block: mark each page an order-0 allocation (what split pages look like).
        const i = meta.index(pfn);
        meta.touch(i, i + block);
        meta.state.fill(PG_ALLOCATED | 0x2, i, i + block);
        meta.refcount.fill(1, i, i + block);
        meta.owner.fill(owner, i, i + block);
        for (let i = 0; i < block; i++) out[got++] = pfn + i;
        this._allocatedPages += block;
        this._ctx.faults.count('page', block - 1);
        continue;
      }
      const pfn = zone.take(0);
      this.meta.markAllocated(pfn, 0, owner);
      this._allocatedPages++;
      out[got++] = pfn;
    }
    if (got < want) this._warnAlloc(gfp, 0);
    return got;
  }

  /**
   * __free_pages(pfn, 0) for every page of `pages`, all checked before any is freed so a bad page
   * changes nothing. pfn-consecutive runs go back as maximal aligned blocks: the buddy state after
   * freeing a set of pages does not depend on the order; measured: vmalloc+vfree of 4 GiB went
   * from 155 to 14 ns/page (bench/vmalloc).
   */
  private _bulkFreeOrder0(pages: PfnArray, fn: string): void {
    const meta = this.meta;
    const { state, refcount, owner } = meta;
    const head0 = PG_ALLOCATED | 0x2;
    for (let i = 0; i < pages.length; i++) {
      const pfn = pages[i] as number;
      if (meta.stateOf(pfn) !== head0) throw new KernelBug(fn, `Bad page state: pfn:0x${pfn.toString(16)} is not an allocated order-0 page`);
      if (this._pins.size > 0) this._checkNotPinned(pfn, 1, fn);
    }
    let i = 0;
    while (i < pages.length) {
      const start = pages[i] as number;
      let end = start;
      // Extend the run while pages are consecutive and each drops its last reference. A run of
      // pfn-consecutive pages lies in one RAM range, so its indices are consecutive too.
      const at = meta.index(start) - start;
      let kept = false;
      while (i < pages.length && pages[i] === end) {
        meta.touch(end + at, end + at + 1);
        const rc = (refcount[end + at] as number) - 1;
        refcount[end + at] = rc;
        if (rc > 0) { kept = true; break; }
        end++;
        i++;
      }
      // A page that keeps a reference has had its one put: the next run starts after it (it once
      // started on it again and dropped a second reference, freeing a page get_page held).
      if (kept) i++;
      if (end === start) continue;
      state.fill(0, start + at, end + at);
      owner.fill(0, start + at, end + at);
      this._allocatedPages -= end - start;
      for (let lo = start; lo < end;) {
        const zone = this._zoneOf(lo);
        const hi = Math.min(end, zone.span.endPfn);
        freeRange(zone, lo, hi);
        lo = hi;
      }
    }
  }

  /** The first zone in the fallback list of `gfp` with a free block of `order`. */
  private _zoneFor(gfp: number, order: number): FreeArea | undefined {
    for (let z = gfpZone(gfp); z >= 0; z--) {
      const zone = this.zones[z] as FreeArea;
      if (zone.smallestAvailable(order) >= 0) return zone;
    }
    return undefined;
  }

  private _take(gfp: number, order: number): number {
    if (this._ctx.faults.shouldFail('page') && !(gfp & __GFP_NOFAIL)) return -1;
    const zone = this._zoneFor(gfp, order);
    return zone === undefined ? -1 : zone.take(order);
  }

  private _release(pfn: number, order: number): void {
    this.meta.markFree(pfn, order);
    this._allocatedPages -= POW2[order] as number;
    this._zoneOf(pfn).give(pfn, order);
  }

  private _zoneOf(pfn: number): FreeArea {
    for (const z of this.zones) if (pfn >= z.span.startPfn && pfn < z.span.endPfn) return z;
    throw new KernelBug('page_zone', `pfn 0x${pfn.toString(16)} outside every zone`);
  }

  private _warnAlloc(gfp: number, order: number): void {
    if (gfp & __GFP_NOWARN) return;
    this._ctx.klog.printk('warn', 'warn_alloc', `dmasim: page allocation failure: order:${order}, mode:0x${gfp.toString(16)}(${formatGfp(gfp)}), nodemask=(null)`);
  }

  private _vmallocError(gfp: number, what: string): void {
    if (gfp & __GFP_NOWARN) return;
    this._ctx.klog.printk('warn', 'warn_alloc', `dmasim: vmalloc error: ${what}, mode:0x${gfp.toString(16)}(${formatGfp(gfp)}), nodemask=(null)`);
  }

  private _checkRam(phys: number, len: number, fn: string): void {
    if (!Number.isSafeInteger(phys) || phys < 0) throw new KernelError(EINVAL, fn, `expected a physical address, got ${phys}`, 'phys');
    if (!Number.isSafeInteger(len) || len < 0) throw new KernelError(EINVAL, fn, `expected a length, got ${len}`, 'len');
    if (len > 0 && !this.answers(phys, len)) throw new KernelError(EFAULT, fn, `[0x${phys.toString(16)}, +0x${len.toString(16)}) is neither RAM nor device memory`, 'phys');
  }
}

