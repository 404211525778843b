/**
 * @module dma/pool/dmapool
 * DMA pools (mm/dmapool.c): small coherent blocks carved from whole coherent allocations, as
 * drivers use them for descriptors (NVMe PRP lists, USB transfer descriptors).
 *
 * The kernel's rules, as of the 6.4 rework:
 * - dma_pool_create: NULL for no device, an alignment that is not a power of two, size 0 or above
 *   INT_MAX, a boundary below the size or not a power of two. The size grows to at least
 *   sizeof(struct dma_block) (16) and to a multiple of the alignment; each page is
 *   max(size, PAGE_SIZE) bytes of dma_alloc_coherent; the boundary defaults to (and is capped at)
 *   that allocation. The name keeps 31 characters. The device's pool list gains the pool (the
 *   `pools` sysfs file appears with the first).
 * - A new page is cut into blocks low to high, skipping to the next boundary whenever a block would
 *   cross it; its blocks go in front of the pool's free list, so allocation runs in ascending order.
 *   dma_pool_alloc pops the first free block (a new page when there is none), dma_pool_free pushes
 *   the block back; pages are never freed before dma_pool_destroy.
 * - With DMAPOOL_DEBUG (slab debugging, which dmasim always models): pages and freed blocks are
 *   poisoned with 0xa7, allocated blocks with 0xa9 (unless __GFP_ZERO); an allocated block whose
 *   bytes past its 16-byte header are not all 0xa7 is reported `pool_check_block <name>, <addr>
 *   (corrupted)` (a write after free); a free of an address in no page of the pool is
 *   `pool_block_err <name>, <vaddr>/<dma> (bad dma)`, of a free block `... dma <dma> already free`,
 *   and neither is freed.
 * - dma_pool_destroy with blocks still allocated: `dma_pool_destroy <name> busy`, and the pages are
 *   leaked (never freed: the DMA ledger reports them at unbind). dmam_pool_create destroys at unbind.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { notInstance } from '../../core/args.ts';
import type { DeviceContext, Normal, Bound } from '../../device/context.ts';
import { Device } from '../../device/device.ts';
import { __GFP_ZERO } from '../../mm/gfp.ts';
import { PAGE_SIZE } from '../../mm/constants.ts';
import { allocCoherentAs, freeCoherentAs } from '../api/mapping.ts';
import type { CoherentBuffer } from '../api/ops.ts';
import { dmaSystemOf } from '../api/ops.ts';
import { ChurnMap } from '../../core/churn-map.ts';

/** sizeof(struct dma_block): the free-list link and the block's DMA address. */
export const DMA_BLOCK_SIZE = 16;
/** Poison of a free block (POOL_POISON_FREED). */
export const POOL_POISON_FREED = 0xa7;
/** Poison of a newly allocated block (POOL_POISON_ALLOCATED). */
export const POOL_POISON_ALLOCATED = 0xa9;
const INT_MAX = 0x7fffffff;

declare module '../../device/device.ts' {
  interface Device<C extends DeviceContext = Normal> {
    /** dev->dma_pools: the device's pools, newest first. */
    dma_pools?: DmaPool[];
  }
}

/** One page of a pool (struct dma_page): a coherent allocation of `allocation` bytes. */
interface PoolPage {
  readonly buf: CoherentBuffer;
}

/** A block the pool handed out: its CPU address and DMA handle. */
export interface DmaPoolBlock {
  readonly vaddr: number;
  readonly dma: number;
}

/**
 * A DMA pool (struct dma_pool).
 * @example
 * const pool = dma_pool_create('prp list', dev, 4096, 4096, 0)!;
 * const blk = dma_pool_alloc(pool, GFP_KERNEL); // { vaddr, dma } or null
 * dma_pool_free(pool, blk!.vaddr, blk!.dma); dma_pool_destroy(pool);
 */
export class DmaPool {
  readonly name: string;
  readonly dev: Device;
  readonly size: number;
  readonly allocation: number;
  readonly boundary: number;
  // INVARIANT: pages holds every page the pool allocated and has not freed, newest first; every
  //   free block lies in one of them, on a block boundary of the page's layout.
  readonly pages: PoolPage[] = [];
  // INVARIANT: free holds the DMA handles of the free blocks, the next to hand out last (a stack
  //   popped from the end: the kernel's next_block list, head at the end); no handle twice;
  //   freeSet holds the same handles.
  private readonly _free: number[] = [];
  // A ChurnMap (as a set): the free list is LIFO, so one handle is taken and given back over and
  // over, the pattern a Set slows down on (core/churn-map: 4,096 free blocks, alloc+free ~20 us).
  private readonly _freeSet = new ChurnMap<number, true>();
  /** Blocks handed out and not freed (nr_active). */
  nrActive = 0;
  /** Blocks carved so far (nr_blocks). */
  nrBlocks = 0;
  private _destroyed = false;

  /** @internal use {@link dma_pool_create} */
  constructor(name: string, dev: Device, size: number, allocation: number, boundary: number) {
    this.name = name;
    this.dev = dev;
    this.size = size;
    this.allocation = allocation;
    this.boundary = boundary;
  }

  /** True after dma_pool_destroy. */
  get destroyed(): boolean {
    return this._destroyed;
  }

  /** The page holding `dma`, or undefined (pool_find_page). */
  pageOf(dma: number): PoolPage | undefined {
    return this.pages.find((p) => dma >= p.buf.dma_handle && dma < p.buf.dma_handle + this.allocation);
  }

  /** @internal pool_initialise_page: carve the page low to high, in front of the free list. */
  addPage(page: PoolPage): void {
    const blocks: number[] = [];
    let offset = 0;
    let nextBoundary = this.boundary;
    while (offset + this.size <= this.allocation) {
      if (offset + this.size > nextBoundary) {
        offset = nextBoundary;
        nextBoundary += this.boundary;
        continue;
      }
      blocks.push(page.buf.dma_handle + offset);
      offset += this.size;
      this.nrBlocks++;
    }
    // The first block must come out first: the stack's end is its head.
    for (let i = blocks.length - 1; i >= 0; i--) {
      this._free.push(blocks[i] as number);
      this._freeSet.set(blocks[i] as number, true);
    }
    this.pages.unshift(page);
  }

  /** @internal pool_block_pop. */
  pop(): number | undefined {
    const dma = this._free.pop();
    if (dma !== undefined) this._freeSet.delete(dma);
    return dma;
  }

  /** @internal pool_block_push. */
  push(dma: number): void {
    this._free.push(dma);
    this._freeSet.set(dma, true);
  }

  /** Is the block at `dma` on the free list? */
  isFree(dma: number): boolean {
    return this._freeSet.has(dma);
  }

  /** @internal */
  markDestroyed(): void {
    this._destroyed = true;
  }
}

/** dev_printk's prefix: the driver's name (the bus's when unbound), then the device's. */
function devPrefix(dev: Device): string {
  return `${dev.driver?.name ?? dev.bus.name} ${dev.name}: `;
}

function devErr(dev: Device, fn: string, message: string): void {
  dev.host.ctx.klog.printk('err', fn, `${devPrefix(dev)}${message}\n`);
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The CPU address of a block, from its page. */
function vaddrOf(page: PoolPage, dma: number): number {
  return page.buf.cpu_addr + (dma - page.buf.dma_handle);
}

/**
 * Fill `len` bytes at a pool address with `byte`, through the physical ranges behind its CPU address
 * (the allocator's own accesses: unchecked, as the kernel's memset on its own blocks). No array is
 * made: a new Uint8Array per poisoning was most of an alloc+free pair (64-byte blocks: 400-880 ns
 * to make and write one, 72 ns to write; bench/RESULTS.md, session 14).
 */
function fill(pool: DmaPool, page: PoolPage, dma: number, len: number, byte: number): void {
  const mem = pool.dev.host.memory;
  for (const r of dmaSystemOf(pool.dev.host.ctx).virtRanges(vaddrOf(page, dma), len)) mem.fillPhys(r.start, r.end - r.start, byte);
}

// The bytes of the block pool_check_block looks at, read into one buffer kept between calls (its
// contents matter only during the check; module state, not machine state).
let checkScratch = new Uint8Array(0);

/** Does every one of `len` bytes at a pool address hold `byte`? */
function holdsOnly(pool: DmaPool, page: PoolPage, dma: number, len: number, byte: number): boolean {
  if (checkScratch.length < len) checkScratch = new Uint8Array(len);
  const bytes = checkScratch.subarray(0, len);
  const mem = pool.dev.host.memory;
  let at = 0;
  for (const r of dmaSystemOf(pool.dev.host.ctx).virtRanges(vaddrOf(page, dma), len)) {
    mem.readPhysInto(r.start, bytes, at, r.end - r.start);
    at += r.end - r.start;
  }
  for (let i = 0; i < len; i++) if (bytes[i] !== byte) return false;
  return true;
}

function checkPool(pool: unknown, fn: string): asserts pool is DmaPool {
  if (!(pool instanceof DmaPool)) throw notInstance(pool, DmaPool, fn, 'pool');
  if (pool.destroyed) throw new KernelError(EINVAL, fn, `pool ${pool.name} was destroyed`, 'pool');
}

/**
 * dma_pool_create: a pool of `size`-byte blocks aligned to `align` that never cross `boundary`
 * (0: the page size), or null for arguments the kernel refuses.
 * @example const pool = dma_pool_create('prp list page', dev, 4096, 4096, 0);
 */
export function dma_pool_create(name: string, dev: Device, size: number, align: number, boundary: number): DmaPool | null {
  const fn = 'dma_pool_create';
  if (typeof name !== 'string') throw new KernelError(EINVAL, fn, `expected a name, got ${typeof name}`, 'name');
  if (dev === null || dev === undefined) return null;
  if (!(dev instanceof Device)) throw notInstance(dev, Device, fn, 'dev');
  for (const [arg, v] of [['size', size], ['align', align], ['boundary', boundary]] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new KernelError(EINVAL, fn, `expected a size_t, got ${String(v)}`, arg);
  }
  let a = align;
  if (a === 0) a = 1;
  else if ((a & (a - 1)) !== 0 || a > 2 ** 30) return null;
  if (size === 0 || size > INT_MAX) return null;
  let sz = Math.max(size, DMA_BLOCK_SIZE);
  sz = Math.ceil(sz / a) * a;
  const allocation = Math.max(sz, PAGE_SIZE);
  let b = boundary;
  if (b === 0) b = allocation;
  else if (b < sz || b > 2 ** 52 || 2 ** Math.round(Math.log2(b)) !== b) return null;
  b = Math.min(b, allocation);
  const pool = new DmaPool(name.slice(0, 31), dev, sz, allocation, b);
  (dev.dma_pools ??= []).unshift(pool);
  return pool;
}

/**
 * dma_pool_alloc: a free block, or null when a new page was needed and could not be had. The
 * block is poisoned 0xa9 (zeroed with __GFP_ZERO); a freed block written since is reported.
 * @example const blk = dma_pool_alloc(pool, GFP_KERNEL); if (blk) program(blk.dma);
 */
export function dma_pool_alloc(pool: DmaPool, gfp: number): DmaPoolBlock | null {
  const fn = 'dma_pool_alloc';
  checkPool(pool, fn);
  if (typeof gfp !== 'number' || !Number.isInteger(gfp) || gfp < 0 || gfp > 0xffffffff) throw new KernelError(EINVAL, fn, `expected gfp flags, got ${String(gfp)}`, 'gfp');
  let dma = pool.pop();
  if (dma === undefined) {
    // pool_alloc_page: one coherent allocation (without __GFP_ZERO), poisoned as free.
    const buf = allocCoherentAs(pool.dev, pool.allocation, gfp & ~__GFP_ZERO, `dma_pool_alloc(${pool.name})`);
    if (buf === null) return null;
    const page = { buf };
    fill(pool, page, buf.dma_handle, pool.allocation, POOL_POISON_FREED);
    pool.addPage(page);
    dma = pool.pop() as number;
  }
  pool.nrActive++;
  const page = pool.pageOf(dma) as PoolPage;
  const vaddr = vaddrOf(page, dma);
  // pool_check_block: past the free-list header, a free block holds only poison.
  if (!holdsOnly(pool, page, dma + DMA_BLOCK_SIZE, Math.max(0, pool.size - DMA_BLOCK_SIZE), POOL_POISON_FREED)) devErr(pool.dev, 'pool_check_block', `pool_check_block ${pool.name}, ${hex(vaddr)} (corrupted)`);
  fill(pool, page, dma, pool.size, (gfp & __GFP_ZERO) !== 0 ? 0 : POOL_POISON_ALLOCATED);
  return { vaddr, dma };
}

/**
 * dma_pool_zalloc: dma_pool_alloc with __GFP_ZERO.
 * @example const blk = dma_pool_zalloc(pool, GFP_KERNEL);
 */
export function dma_pool_zalloc(pool: DmaPool, gfp: number): DmaPoolBlock | null {
  return dma_pool_alloc(pool, (gfp >>> 0) | __GFP_ZERO);
}

/**
 * dma_pool_free: give a block back (poisoned 0xa7). A DMA address in no page of the pool, or a
 * block already free, is reported (dev_err) and changes nothing, as with DMAPOOL_DEBUG.
 * @example dma_pool_free(pool, blk.vaddr, blk.dma);
 */
export function dma_pool_free(pool: DmaPool, vaddr: number, dma: number): void {
  const fn = 'dma_pool_free';
  checkPool(pool, fn);
  for (const [arg, v] of [['vaddr', vaddr], ['dma', dma]] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new KernelError(EINVAL, fn, `expected an address, got ${String(v)}`, arg);
  }
  const page = pool.pageOf(dma);
  if (page === undefined) {
    devErr(pool.dev, 'pool_block_err', `pool_block_err ${pool.name}, ${hex(vaddr)}/${hex(dma)} (bad dma)`);
    return;
  }
  if (pool.isFree(dma)) {
    devErr(pool.dev, 'pool_block_err', `pool_block_err ${pool.name}, dma ${hex(dma)} already free`);
    return;
  }
  fill(pool, page, dma, pool.size, POOL_POISON_FREED);
  pool.push(dma);
  pool.nrActive--;
}

/**
 * dma_pool_destroy: free every page, or, with blocks still allocated, report the pool busy and
 * leak its pages. null does nothing.
 * @example dma_pool_destroy(pool);
 */
export function dma_pool_destroy(pool: DmaPool | null): void {
  if (pool === null || pool === undefined) return;
  checkPool(pool, 'dma_pool_destroy');
  const list = pool.dev.dma_pools ?? [];
  const at = list.indexOf(pool);
  if (at >= 0) list.splice(at, 1);
  pool.markDestroyed();
  const busy = pool.nrActive !== 0;
  if (busy) devErr(pool.dev, 'dma_pool_destroy', `dma_pool_destroy ${pool.name} busy`);
  for (const page of pool.pages) {
    if (!busy) freeCoherentAs(pool.dev, pool.allocation, page.buf, `dma_pool_destroy(${pool.name})`);
  }
  pool.pages.length = 0;
}

/**
 * dmam_pool_create: dma_pool_create, destroyed when the driver unbinds (devres).
 * @throws KernelError ENODEV for an unbound device.
 * @example const pool = dmam_pool_create('desc', dev, 64, 64, 0); // no dma_pool_destroy needed
 */
export function dmam_pool_create(name: string, dev: Device<Bound>, size: number, align: number, boundary: number): DmaPool | null {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dmam_pool_create', 'dev');
  dev.assertBound('dmam_pool_create');
  const pool = dma_pool_create(name, dev, size, align, boundary);
  if (pool !== null) dev.devres.add({ name: 'dmam_pool_release', release: () => { if (!pool.destroyed) dma_pool_destroy(pool); } });
  return pool;
}

/**
 * The device's `pools` sysfs file (show_pools): a header, then per pool its name, blocks in use,
 * blocks in all, block size and pages; '' when the device has no pool (no file).
 * @example dmaPoolsSysfs(dev) // 'poolinfo - 0.1\nprp list page       1    1 4096  1\n'
 */
export function dmaPoolsSysfs(dev: Device): string {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dmaPoolsSysfs', 'dev');
  const pools = dev.dma_pools ?? [];
  if (pools.length === 0) return '';
  let out = 'poolinfo - 0.1\n';
  for (const p of pools) {
    out += `${p.name.padEnd(16)} ${String(p.nrActive).padStart(4)} ${String(p.nrBlocks).padStart(4)} ${String(p.size).padStart(4)} ${String(p.pages.length).padStart(2)}\n`;
  }
  return out;
}
