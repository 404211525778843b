/**
 * @module dma/api/alloc-pages
 * Noncoherent DMA memory (kernel/dma/mapping.c): dma_alloc_pages / dma_free_pages,
 * dma_alloc_noncoherent / dma_free_noncoherent, dma_alloc_noncontiguous / dma_free_noncontiguous
 * with dma_vmap_noncontiguous / dma_vunmap_noncontiguous.
 *
 * The memory is mapped for the device at allocation but owned by the CPU, which zeroed it without
 * cache maintenance: a driver hands it over with dma_sync_single_for_device (dma_sync_sgtable_* for
 * the noncontiguous kind) before the device touches it, and takes it back with dma_sync_*_for_cpu.
 * The ledger holds such an allocation CPU-owned from the start, so a device access before that
 * sync is an access finding, in every backend.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelBug, KernelError } from '../../core/errors.ts';
import { Device } from '../../device/device.ts';
import { PAGE_OFFSET, PAGE_SIZE, pageAlign } from '../../mm/constants.ts';
import { GFP_DMA, GFP_DMA32, __GFP_COMP, __GFP_HIGHMEM } from '../../mm/gfp.ts';
import type { VmArea } from '../../mm/vmalloc.ts';
import type { Mm } from '../../mm/mm.ts';
import { sg_dma_address, sg_dma_len, sg_next, sg_phys, sg_set_page, type Scatterlist } from '../../scatterlist/entry.ts';
import { SgTable, sg_alloc_table, sg_free_table } from '../../scatterlist/table.ts';
import { DMA_ATTR_ALLOC_SINGLE_PAGES } from './attrs.ts';
import { checkAttrs, checkDev, checkDir, checkDmaRange, checkSgDmaRanges, checkSize, checkSgt, debug, ledger, sgPhysAddrs, trace, tracing } from './checks.ts';
import { dmaOpsOf, dmaSystemOf, type CoherentBuffer, type DmaPages, type NoncontiguousAlloc } from './ops.ts';
import { ledgerAllocNoncoherent, ledgerFreeNoncoherent } from '../ledger/record.ts';
import type { AddrRange } from '../ledger/entry.ts';

/** The machine's memory. */
function mmOf(dev: Device): Mm {
  const mm = dmaSystemOf(dev.host.ctx).mm;
  if (mm === null) throw new KernelError(EINVAL, 'dma_alloc_pages', `${dev.name} belongs to a context without memory (not a Machine)`, 'dev');
  return mm;
}

function checkGfp(gfp: unknown, fn: string): number {
  if (typeof gfp !== 'number' || !Number.isInteger(gfp) || gfp < 0 || gfp > 0xffffffff) throw new KernelError(EINVAL, fn, `expected gfp flags, got ${String(gfp)}`, 'gfp');
  return gfp;
}

/** __dma_alloc_pages: the checks, PAGE_ALIGN, the backend. No trace, no debug entry. */
function allocPagesQuiet(dev: Device, size: number, dir: number, gfp: number): DmaPages | null {
  const klog = dev.host.ctx.klog;
  if (dev.coherent_dma_mask === 0) {
    klog.warnOnce(`__dma_alloc_pages:mask:${dev.name}`, '__dma_alloc_pages', 'WARN_ON_ONCE(!dev->coherent_dma_mask)');
    return null;
  }
  if (gfp & (GFP_DMA | GFP_DMA32 | __GFP_HIGHMEM)) {
    klog.warnOnce('__dma_alloc_pages:zone', '__dma_alloc_pages', 'WARN_ON_ONCE(gfp & (__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM))');
    return null;
  }
  if (gfp & __GFP_COMP) {
    klog.warnOnce('__dma_alloc_pages:comp', '__dma_alloc_pages', 'WARN_ON_ONCE(gfp & __GFP_COMP)');
    return null;
  }
  if (size === 0) return null;
  return dmaOpsOf(dev).alloc_pages(dev, pageAlign(size), dir, gfp);
}

/**
 * dma_alloc_pages: `size` bytes of zeroed pages mapped for `dev` in direction `dir` (the kernel's
 * `*dma_handle` comes back in the result), or null. The memory starts owned by the CPU: call
 * dma_sync_single_for_device before the device touches it.
 * @returns null for a device without a coherent mask, a gfp with zone modifiers (__GFP_DMA,
 *   __GFP_DMA32, __GFP_HIGHMEM) or __GFP_COMP (each a WARN_ON_ONCE), or when memory runs out.
 * @example
 * const p = dma_alloc_pages(dev, 16384, DMA_FROM_DEVICE, GFP_KERNEL);
 * dma_sync_single_for_device(dev, p!.dma_handle, 16384, DMA_FROM_DEVICE); // now the device's
 */
export function dma_alloc_pages(dev: Device, size: number, dir: number, gfp: number): DmaPages | null {
  return allocPages(dev, size, dir, gfp, 'dma_alloc_pages');
}

function allocPages(dev: Device, size: number, dir: number, gfp: number, api: string): DmaPages | null {
  checkDev(dev, api);
  checkSize(size, api);
  checkDir(dir, api);
  checkGfp(gfp, api);
  const p = allocPagesQuiet(dev, size, dir, gfp);
  trace(dev, 'alloc', 'dma_alloc_pages', { size, dir, handle: p?.dma_handle ?? null, virt: p === null ? 0 : PAGE_OFFSET + p.page * PAGE_SIZE, gfp });
  if (p === null) return null;
  debug(dev)?.allocPages(dev, p.page, size, dir, p.dma_handle);
  const phys = p.page * PAGE_SIZE;
  ledgerAllocNoncoherent(ledger(dev), dev, api, dir, size, [{ start: p.dma_handle, end: p.dma_handle + size }], [{ start: phys, end: phys + size }], p.dma_handle);
  return p;
}

/**
 * dma_free_pages: free what dma_alloc_pages gave (same size and direction; dma-debug reports a
 * different one, as the kernel's does).
 * @example dma_free_pages(dev, 16384, p.page, p.dma_handle, DMA_FROM_DEVICE)
 */
export function dma_free_pages(dev: Device, size: number, page: number, dma_handle: number, dir: number): void {
  freePages(dev, size, page, dma_handle, dir, 'dma_free_pages');
}

function freePages(dev: Device, size: number, page: number, dma_handle: number, dir: number, api: string): void {
  checkDev(dev, api);
  checkSize(size, api);
  checkDir(dir, api);
  if (typeof page !== 'number' || !Number.isSafeInteger(page) || page < 0) throw new KernelError(EINVAL, api, `expected a page frame number, got ${String(page)}`, 'page');
  if (typeof dma_handle !== 'number' || !Number.isSafeInteger(dma_handle) || dma_handle < 0) throw new KernelError(EINVAL, api, `expected a DMA handle, got ${String(dma_handle)}`, 'dma_handle');
  checkDmaRange(dma_handle, size, api);
  const mm = mmOf(dev);
  const order = Math.ceil(Math.log2(Math.max(1, pageAlign(size) / PAGE_SIZE)));
  trace(dev, 'free', 'dma_free_pages', { size, dir, handle: dma_handle, virt: PAGE_OFFSET + page * PAGE_SIZE });
  // dma-debug reports a wrong size first, as the kernel's does; freeing a block of another order
  // would then corrupt the page allocator: nothing is freed.
  debug(dev)?.freePages(dev, page, size, dir, dma_handle);
  if (mm.meta.headOrder(page) !== order) throw new KernelBug(api, `Bad page state: pfn:0x${page.toString(16)} is not a block of ${pageAlign(size)} bytes from dma_alloc_pages`);
  dmaOpsOf(dev).free_pages(dev, pageAlign(size), page, dma_handle, dir);
  ledgerFreeNoncoherent(ledger(dev), dev, api, dma_handle);
}

/**
 * dma_alloc_noncoherent: dma_alloc_pages returning the kernel virtual address (page_address) with
 * the handle, or null.
 * @example const buf = dma_alloc_noncoherent(dev, 4096, DMA_TO_DEVICE, GFP_KERNEL);
 */
export function dma_alloc_noncoherent(dev: Device, size: number, dir: number, gfp: number): CoherentBuffer | null {
  const p = allocPages(dev, size, dir, gfp, 'dma_alloc_noncoherent');
  if (p === null) return null;
  return { cpu_addr: mmOf(dev).phys_to_virt(p.page * PAGE_SIZE), dma_handle: p.dma_handle };
}

/**
 * dma_free_noncoherent: free what dma_alloc_noncoherent gave.
 * @example dma_free_noncoherent(dev, 4096, buf.cpu_addr, buf.dma_handle, DMA_TO_DEVICE)
 */
export function dma_free_noncoherent(dev: Device, size: number, vaddr: number, dma_handle: number, dir: number): void {
  checkDev(dev, 'dma_free_noncoherent');
  if (typeof vaddr !== 'number' || !Number.isSafeInteger(vaddr)) throw new KernelError(EINVAL, 'dma_free_noncoherent', `expected a kernel virtual address, got ${String(vaddr)}`, 'vaddr');
  const page = Math.floor(mmOf(dev).virt_to_phys(vaddr) / PAGE_SIZE);
  freePages(dev, size, page, dma_handle, dir, 'dma_free_noncoherent');
}

/** What a noncontiguous allocation keeps besides its table: its pages (for vmap) and its vmap. */
interface NoncontigState { readonly dev: Device; readonly alloc: NoncontiguousAlloc | null; readonly page: number; vmap: VmArea | null }
/** The machine's live noncontiguous tables (DmaSystem.noncontig), typed. */
const noncontigOf = (dev: Device): Map<SgTable, NoncontigState> => dmaSystemOf(dev.host.ctx).noncontig as Map<SgTable, NoncontigState>;

/**
 * dma_alloc_noncontiguous: memory for `size` bytes that need not be physically contiguous, as an
 * sg_table whose `nents` is 1 (the device sees one DMA range: entry 0's dma_address and
 * dma_length) while `orig_nents` counts the physical runs. Through an IOMMU the pages come in the
 * largest blocks its page sizes allow (DMA_ATTR_ALLOC_SINGLE_PAGES: single pages) and the mapping
 * is read-write whatever `dir`; through dma-direct it is one contiguous block. CPU-owned at the
 * start, like dma_alloc_pages: dma_sync_sgtable_for_device first.
 * @returns null (with a WARN_ON_ONCE) for attrs other than DMA_ATTR_ALLOC_SINGLE_PAGES or for
 *   __GFP_COMP; null when memory or IOVA space runs out.
 * @example
 * const sgt = dma_alloc_noncontiguous(dev, 1 << 20, DMA_FROM_DEVICE, GFP_KERNEL, 0);
 * const vaddr = dma_vmap_noncontiguous(dev, 1 << 20, sgt!);
 */
export function dma_alloc_noncontiguous(dev: Device, size: number, dir: number, gfp: number, attrs: number): SgTable | null {
  const api = 'dma_alloc_noncontiguous';
  checkDev(dev, api);
  checkSize(size, api);
  checkDir(dir, api);
  checkGfp(gfp, api);
  checkAttrs(attrs, api);
  const klog = dev.host.ctx.klog;
  if (attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES) {
    klog.warnOnce('dma_alloc_noncontiguous:attrs', api, 'WARN_ON_ONCE(attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES)');
    return null;
  }
  if (gfp & __GFP_COMP) {
    klog.warnOnce('dma_alloc_noncontiguous:comp', api, 'WARN_ON_ONCE(gfp & __GFP_COMP)');
    return null;
  }
  if (size === 0) return null;
  const ops = dmaOpsOf(dev);
  let sgt: SgTable | null = null;
  let state: NoncontigState | null = null;
  if (ops.alloc_noncontiguous !== undefined) {
    const a = ops.alloc_noncontiguous(dev, size, gfp, attrs);
    if (a !== null) {
      sgt = a.sgt;
      state = { dev, alloc: a, page: -1, vmap: null };
    }
  } else {
    // alloc_single_sgt: one entry over one contiguous block.
    const t = new SgTable(dev.host.ctx);
    if (sg_alloc_table(t, 1, gfp) === 0) {
      const p = allocPagesQuiet(dev, size, dir, gfp);
      if (p === null) {
        sg_free_table(t);
      } else {
        const sg = t.sgl as Scatterlist;
        sg_set_page(sg, p.page, pageAlign(size), 0);
        sg_dma_address(sg, p.dma_handle);
        sg_dma_len(sg, pageAlign(size));
        sgt = t;
        state = { dev, alloc: null, page: p.page, vmap: null };
      }
    }
  }
  if (sgt === null || state === null) {
    trace(dev, 'alloc', 'dma_alloc_sgt_err', { size, dir, attrs, gfp });
    return null;
  }
  sgt.nents = 1;
  noncontigOf(dev).set(sgt, state);
  const sgl = sgt.sgl as Scatterlist;
  tracing(dev)?.emit('alloc', 'dma_alloc_sgt', dev.name, { size, dir, attrs, gfp, handle: sgl.dma_address, orig_nents: sgt.orig_nents, phys_addrs: sgPhysAddrs(sgl, sgt.orig_nents) });
  debug(dev)?.mapSg(dev, sgl, sgt.orig_nents, 1, dir, attrs);
  const cpu: AddrRange[] = [];
  for (let sg: Scatterlist | null = sgl, i = 0; sg !== null && i < sgt.orig_nents; sg = sg_next(sg), i++) cpu.push({ start: sg_phys(sg), end: sg_phys(sg) + sg.length });
  ledgerAllocNoncoherent(ledger(dev), dev, api, dir, size, [{ start: sgl.dma_address, end: sgl.dma_address + sgl.dma_length }], cpu, sgl.dma_address);
  return sgt;
}

function checkNoncontig(dev: Device, sgt: SgTable, fn: string): NoncontigState {
  checkSgt(dev, sgt, fn);
  const st = noncontigOf(dev).get(sgt);
  if (st === undefined) throw new KernelBug(fn, 'the sg_table is not a live dma_alloc_noncontiguous allocation (double free, or another allocator\'s table?)');
  if (st.dev !== dev) throw new KernelError(EINVAL, fn, `the table was allocated for ${st.dev.name}, not ${dev.name}`, 'dev');
  return st;
}

/**
 * dma_free_noncontiguous: free a dma_alloc_noncontiguous table (vunmap it first if it was vmapped).
 * @example dma_free_noncontiguous(dev, 1 << 20, sgt, DMA_FROM_DEVICE)
 */
export function dma_free_noncontiguous(dev: Device, size: number, sgt: SgTable, dir: number): void {
  const api = 'dma_free_noncontiguous';
  checkDev(dev, api);
  checkSize(size, api);
  checkDir(dir, api);
  const st = checkNoncontig(dev, sgt, api);
  const sgl = sgt.sgl as Scatterlist;
  const handle = sgl.dma_address;
  checkDmaRange(handle, size, api);
  checkSgDmaRanges(sgl, sgt.orig_nents, api);
  tracing(dev)?.emit('free', 'dma_free_sgt', dev.name, { size, dir, handle, phys_addrs: sgPhysAddrs(sgl, sgt.orig_nents) });
  debug(dev)?.unmapSg(dev, sgl, sgt.orig_nents, dir);
  const ops = dmaOpsOf(dev);
  if (st.alloc !== null && ops.free_noncontiguous !== undefined) {
    ops.free_noncontiguous(dev, size, st.alloc);
  } else {
    ops.free_pages(dev, pageAlign(size), st.page, handle, dir);
    sg_free_table(sgt);
  }
  noncontigOf(dev).delete(sgt);
  ledgerFreeNoncoherent(ledger(dev), dev, api, handle);
}

/**
 * dma_vmap_noncontiguous: a kernel virtual address for the whole allocation (through an IOMMU a
 * vmap of its pages; through dma-direct the direct-map address of its one block), or null.
 * @example const vaddr = dma_vmap_noncontiguous(dev, size, sgt); machine.mm.writeLe32(vaddr, 1);
 */
export function dma_vmap_noncontiguous(dev: Device, size: number, sgt: SgTable): number | null {
  const api = 'dma_vmap_noncontiguous';
  checkDev(dev, api);
  checkSize(size, api);
  const st = checkNoncontig(dev, sgt, api);
  const mm = mmOf(dev);
  if (st.alloc === null) return mm.phys_to_virt(st.page * PAGE_SIZE);
  const count = pageAlign(size) / PAGE_SIZE;
  if (count === 0) return null; // vmap of no pages: NULL
  if (count > st.alloc.pages.length) throw new KernelError(EINVAL, api, `size ${size} is larger than the allocation`, 'size');
  const area = mm.vmap(st.alloc.pages, count);
  if (area === null) return null;
  st.vmap = area;
  return area.addr;
}

/**
 * dma_vunmap_noncontiguous: undo dma_vmap_noncontiguous (nothing to do through dma-direct).
 * @example dma_vunmap_noncontiguous(dev, vaddr)
 */
export function dma_vunmap_noncontiguous(dev: Device, vaddr: number): void {
  checkDev(dev, 'dma_vunmap_noncontiguous');
  if (typeof vaddr !== 'number' || !Number.isSafeInteger(vaddr)) throw new KernelError(EINVAL, 'dma_vunmap_noncontiguous', `expected the address dma_vmap_noncontiguous gave, got ${String(vaddr)}`, 'vaddr');
  const mm = mmOf(dev);
  // dma-direct's vmap made no mapping (a direct-map address): nothing to undo.
  if (dmaOpsOf(dev).alloc_noncontiguous === undefined) return;
  const area = mm.findVmArea(vaddr);
  if (area === undefined || !area.mapped || area.addr !== vaddr) {
    dev.host.ctx.klog.warn('vunmap', `Trying to vunmap() nonexistent vm area (0x${vaddr.toString(16)})`);
    return;
  }
  mm.vunmap(vaddr);
}
