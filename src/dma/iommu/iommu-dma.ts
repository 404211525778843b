/**
 * @module dma/iommu/iommu-dma
 * dma-iommu (drivers/iommu/dma-iommu.c): the DMA API backend for devices behind an IOMMU DMA domain.
 * One IOVA range per mapping (per scatterlist), allocated 32-bit first for PCI devices, mapped with
 * iommu_map; unmapping syncs the IOTLB at once (strict) or queues the IOVA for a lazy flush (DMA_FQ).
 * Untrusted devices bounce unaligned buffers through swiotlb with the padding zeroed.
 */
import type { Device } from '../../device/device.ts';
import { DMA_BIT_MASK, minNotZero } from '../../device/mask.ts';
import { PAGE_SIZE } from '../../mm/constants.ts';
import { GFP_KERNEL } from '../../mm/gfp.ts';
import { Mm } from '../../mm/mm.ts';
import { DMA_MAPPING_ERROR, type Scatterlist, sg_dma_is_swiotlb, sg_dma_mark_swiotlb, sg_phys } from '../../scatterlist/entry.ts';
import { visitSg } from '../../scatterlist/iter.ts';
import { Iommu, type IommuDomain } from '../../iommu/iommu.ts';
import type { PagingDomain } from '../../iommu/map-domain.ts';
import { checkObject, notInstance } from '../../core/args.ts';
import { KernelError } from '../../core/errors.ts';
import { modPow2 } from '../../core/mod-pow2.ts';
import { alloc_iova_fast, free_iova_fast, iova_rcache_range } from '../../iommu/iova-rcache.ts';
import { iommu_map, iommu_map_nosync, iommu_map_sg, iommu_sync_map, iommu_unmap, iommu_unmap_fast, iommuMapSgTrusted, iommuMapTrusted, iommuUnmapFastTrusted } from '../../iommu/map.ts';
import { EINVAL, EIO, ENOMEM, EPERM } from '../../core/errno.ts';
import { IommuIotlbGather, giveGather, iommu_iotlb_sync, takeGather } from '../../iommu/gather.ts';

/** An empty freelist for the flush queue (it only reads it). */
const NO_PAGES: readonly number[] = Object.freeze([]);
import { IOMMU_CACHE, IOMMU_MMIO, IOMMU_PRIV, IOMMU_READ, IOMMU_WRITE } from '../../iommu/pgtable-prot.ts';
import { DMA_ATTR_ALLOC_SINGLE_PAGES, DMA_ATTR_MMIO, DMA_ATTR_PRIVILEGED, DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC } from '../api/attrs.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../api/direction.ts';
import { SIZE_MAX } from '../direct/direct.ts';
import { iommuDmaMapSg, scatterlistAccessor, unmapSgRange, type IommuSgDomain, type IommuSgReport } from './iommu-sg.ts';
import { dmaSystemOf, type CoherentBuffer, type DmaOps, type DmaPages, type NoncontiguousAlloc } from '../api/ops.ts';
import { MAX_PAGE_ORDER, getOrder } from '../../mm/constants.ts';
import { GFP_DMA, GFP_DMA32, __GFP_COMP, __GFP_HIGHMEM, __GFP_NOWARN, __GFP_ZERO } from '../../mm/gfp.ts';
import { pfnArray, type PfnArray } from '../../core/page.ts';
import { SgTable, sg_free_table } from '../../scatterlist/table.ts';
import { sg_alloc_table_from_pages } from '../../scatterlist/from-pages.ts';
import { dma_get_mask, dma_get_max_seg_size, dma_get_min_align_mask, dma_get_seg_boundary } from '../api/params.ts';

/** dma_info_to_prot: the IOMMU permission a direction needs. */
export function dma_info_to_prot(dir: number, coherent: boolean, attrs: number): number {
  let prot = coherent ? IOMMU_CACHE : 0;
  if (attrs & DMA_ATTR_PRIVILEGED) prot |= IOMMU_PRIV;
  if (dir === DMA_BIDIRECTIONAL) return prot | IOMMU_READ | IOMMU_WRITE;
  if (dir === DMA_TO_DEVICE) return prot | IOMMU_READ;
  if (dir === DMA_FROM_DEVICE) return prot | IOMMU_WRITE;
  return 0;
}

/**
 * What the backend remembers per device (dev->iommu). `domain` is the group's default domain, fixed
 * once the device is probed behind the IOMMU (kept here: one look-up a call instead of two).
 */
interface DevState { pci32bitWorkaround: boolean; readonly domain: IommuDomain }

/** Observers of dma-iommu's work (reports, the trace). */
export interface IommuDmaObserver {
  mapSg?(dev: Device, r: IommuSgReport, segmentsIn: number, segmentsOut: number): void;
}

/**
 * The dma-iommu backend of one machine.
 * @example dev.dma_ops = iommuDmaOps(machine.iommu!, machine.mm)
 */
export function iommuDmaOps(iommu: Iommu, mm: Mm, observer: IommuDmaObserver = {}): DmaOps {
  if (!(iommu instanceof Iommu)) throw notInstance(iommu, Iommu, 'iommuDmaOps', 'iommu');
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'iommuDmaOps', 'mm');
  checkObject(observer, 'iommuDmaOps', 'observer');
  const cpu = (): number => iommu.ctx.currentCpu ?? 0;
  // dev->iommu: kept by the IOMMU per device (a Map machine snapshots see, not a WeakMap here).
  const newState = (dev: Device): DevState => ({ pci32bitWorkaround: dev.bus.name === 'pci' && !iommu.forcedac, domain: domainOf(dev) });
  const state = (dev: Device): DevState => iommu.devIommu(dev, newState);
  // iommu_get_dma_domain: the DMA API maps in the group's default domain, even while a driver has
  // attached the group to a domain of its own (the mappings then wait there for the detach).
  const domainOf = (dev: Device): IommuDomain => {
    const d = iommu.dmaDomainOf(dev);
    if (d === undefined) throw new Error(`${dev.name} is not behind the IOMMU`);
    return d;
  };
  const bouncer = (dev: Device) => dmaSystemOf(dev.host.ctx).bouncer;
  const granule = iommu.granule;
  // The granule is a power of two: no runtime fmod for an address past 2^31.
  const ioffset = (a: number): number => (a >= 0 ? modPow2(a, granule) : a % granule);
  const ialign = (a: number): number => Math.ceil(a / granule) * granule;

  // Per-call constants computed once, and the dev->iommu record looked up without making its
  // init closure each time (map+unmap pair, .scratch/pair.mjs, 3 runs each: lazy with checks
  // 657-722 -> 568-612 ns, lazy without 486-575 -> 439-485, strict without 459-494 -> 403-421).
  const apertureEnd = 2 ** iommu.addressWidth - 1;
  const limit32Pfn = Math.floor(DMA_BIT_MASK(32) / granule);

  /** iommu_dma_alloc_iova: 32-bit first for PCI, then the full mask; 0 on failure. */
  function allocIova(dev: Device, domain: IommuDomain, size: number, mask: number, st: DevState = state(dev)): number {
    const iovad = domain.iovad;
    if (iovad === null) return 0;
    const len = size / granule;
    let limit = minNotZero(mask, dev.bus_dma_limit);
    if (limit > apertureEnd) limit = apertureEnd;
    if (limit > 0xffffffff && st.pci32bitWorkaround) {
      const pfn = alloc_iova_fast(iovad, len, limit32Pfn, false, cpu());
      if (pfn !== 0) return pfn * granule;
      st.pci32bitWorkaround = false;
      const bits = limit >= 2 ** 63 ? 64 : Math.floor(Math.log2(limit)) + 1;
      dev.host.ctx.klog.printk('notice', 'iommu_dma_alloc_iova', `${dev.driver?.name ?? dev.bus.name} ${dev.name}: Using ${bits}-bit DMA addresses`);
    }
    const pfn = alloc_iova_fast(iovad, len, Math.floor(Math.min(limit, 2 ** 53 - 1) / granule), true, cpu());
    return pfn * granule;
  }

  /** iommu_dma_free_iova without a gather: straight back to the range cache. */
  function freeIova(domain: IommuDomain, iova: number, size: number): void {
    if (domain.iovad !== null) free_iova_fast(domain.iovad, iova / granule, size / granule, cpu());
  }

  /** __iommu_dma_map: DMA_MAPPING_ERROR or the IOVA plus the intra-granule offset. */
  function dmaMap(dev: Device, phys: number, size: number, prot: number, mask: number): number {
    const st = state(dev);
    const domain = st.domain;
    const paging = domain.paging;
    if (paging === null) return DMA_MAPPING_ERROR;
    if ((dev.dma_parms?.min_align_mask ?? 0) > granule - 1) {
      dev.host.ctx.klog.warnOnce(`__iommu_dma_map:align:${dev.name}`, '__iommu_dma_map', `${dev.driver?.name ?? dev.bus.name} ${dev.name}: Unsupported alignment constraint`);
      return DMA_MAPPING_ERROR;
    }
    const off = ioffset(phys);
    const len = ialign(size + off);
    const iova = allocIova(dev, domain, len, mask, st);
    if (iova === 0) return DMA_MAPPING_ERROR;
    if (iommuMapTrusted(paging, iova, phys - off, len, prot, GFP_KERNEL) !== 0) {
      freeIova(domain, iova, len);
      return DMA_MAPPING_ERROR;
    }
    return iova + off;
  }


  /** __iommu_dma_unmap: clear the PTEs, then sync now (strict) or queue the IOVA (lazy). */
  function dmaUnmap(dev: Device, addr: number, size: number, via: string, domain: IommuDomain = state(dev).domain): void {
    const paging = domain.paging;
    if (paging === null) return;
    const off = ioffset(addr);
    const start = addr - off;
    const len = ialign(size + off);
    // The driver's size: an unmap reaching past 2^53 is refused before anything changes (the
    // argument check of iommu_unmap_fast, whose trusted body is called below).
    if (!(start + len <= Number.MAX_SAFE_INTEGER)) throw new KernelError(EINVAL, 'iommu_unmap_fast', `iova + size exceeds 2^53 - 1 (${start} + ${len})`, 'size');
    // A pooled gather, not a new object per unmap (map+unmap pair, standalone loop: strict 637 ->
    // 559 ns with checks, 477 -> 424 without); an unmap nested from a listener on the WARNs below
    // takes another (one shared gather was emptied by it, and the outer sync then invalidated nothing).
    const gather = takeGather();
    gather.queued = domain.fq !== null;
    const unmapped = iommuUnmapFastTrusted(paging, start, len, gather);
    if (unmapped !== len) dev.host.ctx.klog.warn('__iommu_dma_unmap', `WARN_ON(unmapped != size): unmapped ${unmapped} of ${len} at 0x${start.toString(16)}`);
    iommu.noteUnmap(dev.name, domain.id, start, len, dev.host.ctx.clock.now, via, domain.fq !== null);
    if (domain.fq !== null) {
      domain.fq.queue(start / granule, len / granule, gather.freelist.length === 0 ? NO_PAGES : gather.freelist.splice(0), cpu());
    } else {
      iommu_iotlb_sync(paging, gather);
      freeIova(domain, start, len);
    }
    giveGather(gather);
  }

  /** iommu_dma_map_swiotlb: bounce whole granules; an untrusted device's padding is zeroed. */
  function mapSwiotlb(dev: Device, phys: number, size: number, dir: number, attrs: number): number {
    const b = bouncer(dev);
    if (b === null || !b.active) {
      dev.host.ctx.klog.warnOnce(`iommu_dma_map_swiotlb:${dev.name}`, 'iommu_dma_map_swiotlb', `${dev.driver?.name ?? dev.bus.name} ${dev.name}: DMA bounce buffers are inactive, unable to map unaligned transaction.`);
      return DMA_MAPPING_ERROR;
    }
    const tlb = b.mapAligned(dev, phys, size, granule - 1, dir, attrs);
    if (tlb !== DMA_MAPPING_ERROR && dev.untrusted) {
      const pre = tlb - Math.floor(tlb / granule) * granule;
      if (pre > 0) mm.fillPhys(tlb - pre, pre, 0);
      const end = tlb + size;
      const post = ialign(end) - end;
      if (post > 0) mm.fillPhys(end, post, 0);
    }
    return tlb;
  }

  const useSwiotlb = (dev: Device): boolean => dev.untrusted;

  /** __dma_iova_link: map aligned [phys, phys+size) at aligned addr, no IOTLB sync. */
  function iovaLinkAligned(dev: Device, addr: number, phys: number, size: number, dir: number, attrs: number): number {
    const paging = domainOf(dev).paging;
    if (paging === null) return -EINVAL;
    const prot = (attrs & DMA_ATTR_MMIO ? (dma_info_to_prot(dir, false, attrs) | IOMMU_MMIO) : dma_info_to_prot(dir, dev.dma_coherent, attrs));
    return iommu_map_nosync(paging, addr, phys, size, prot, GFP_KERNEL);
  }

  /** iommu_dma_iova_bounce_and_link: bounce [phys, +len) into a slot keeping phys's granule offset, link the slot. */
  function bounceAndLink(dev: Device, addr: number, phys: number, len: number, dir: number, attrs: number, pad: number): number {
    const slot = mapSwiotlb(dev, phys, len, dir, attrs);
    if (slot === DMA_MAPPING_ERROR) return -ENOMEM;
    const ret = iovaLinkAligned(dev, addr - pad, slot - pad, ialign(len), dir, attrs);
    if (ret !== 0) bouncer(dev)?.unmap(dev, slot, len, dir, attrs);
    return ret;
  }

  /** dma_iova_link's body (the kernel's checks, the bounce decision, the link). */
  function iovaLink(dev: Device, stateAddr: number, phys: number, offset: number, size: number, dir: number, attrs: number): { ret: number; bounced: boolean } {
    const pad = ioffset(phys);
    if (pad !== 0 && offset > 0) {
      dev.host.ctx.klog.warnOnce(`dma_iova_link:pad:${dev.name}`, 'dma_iova_link', 'WARN_ON_ONCE(iova_start_pad && offset > 0)');
      return { ret: -EIO, bounced: false };
    }
    if (useSwiotlb(dev) && (ioffset(phys) !== 0 || ioffset(size) !== 0)) {
      if (attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT)) return { ret: -EPERM, bounced: false };
      return iovaLinkSwiotlb(dev, stateAddr, phys, offset, size, dir, attrs);
    }
    return { ret: iovaLinkAligned(dev, stateAddr + offset - pad, phys - pad, ialign(size + pad), dir, attrs), bounced: false };
  }

  /** iommu_dma_iova_link_swiotlb: bounce the unaligned head and tail, link the aligned middle in place. */
  function iovaLinkSwiotlb(dev: Device, stateAddr: number, phys: number, offset: number, sizeIn: number, dir: number, attrs: number): { ret: number; bounced: boolean } {
    const startPad = ioffset(phys);
    const endPad = ioffset(phys + sizeIn);
    const addr = stateAddr + offset;
    let size = sizeIn;
    let mapped = 0;
    let bounced = false;
    if (startPad !== 0) {
      const len = Math.min(size, granule - startPad);
      const ret = bounceAndLink(dev, addr, phys, len, dir, attrs, startPad);
      if (ret !== 0) return { ret, bounced };
      bounced = true;
      mapped += len;
      size -= len;
      if (size === 0) return { ret: 0, bounced };
    }
    size -= endPad;
    // A zero-length middle maps nothing (upstream 6ec91df8aff7: no iommu_map of a 0-length region).
    let ret = size > 0 ? iovaLinkAligned(dev, addr + mapped, phys + mapped, size, dir, attrs) : 0;
    if (ret === 0) {
      mapped += size;
      if (endPad !== 0) {
        ret = bounceAndLink(dev, addr + mapped, phys + mapped, endPad, dir, attrs, 0);
        if (ret === 0) bounced = true;
      }
    }
    if (ret === 0) return { ret: 0, bounced };
    // Undo what this link mapped, from its own offset, and only if it mapped something (upstream
    // 6ec91df8aff7 fixed an unwind from offset 0 of the state).
    if (mapped > 0) iovaUnlink(dev, stateAddr, offset, mapped, dir, attrs, true, false);
    return { ret, bounced };
  }

  /** __iommu_dma_iova_unlink: release bounce slots (slow), unmap, sync now or queue, free the IOVA if asked. */
  function iovaUnlink(dev: Device, stateAddr: number, offset: number, sizeIn: number, dir: number, attrs: number, slow: boolean, free: boolean): void {
    const domain = domainOf(dev);
    const paging = domain.paging;
    if (paging === null) return;
    let addr = stateAddr + offset;
    const pad = ioffset(addr);
    if (slow) {
      const b = bouncer(dev);
      for (let a = addr, end = addr + sizeIn; a < end;) {
        const len = Math.min(granule - ioffset(a), end - a);
        const phys = paging.pgtable.iova_to_phys(a);
        if (phys === 0) {
          dev.host.ctx.klog.warn('iommu_dma_iova_unlink_range_slow', `WARN_ON(!phys): 0x${a.toString(16)} has no translation`);
          break;
        }
        if (b !== null && b.isBuffer(phys)) b.unmap(dev, phys, len, dir, attrs);
        a += len;
      }
    }
    const gather = new IommuIotlbGather();
    gather.queued = free && domain.fq !== null;
    const size = ialign(sizeIn + pad);
    addr -= pad;
    const unmapped = iommu_unmap_fast(paging, addr, size, gather);
    if (unmapped !== size) dev.host.ctx.klog.warn('__iommu_dma_iova_unlink', `WARN_ON(unmapped != size): unmapped ${unmapped} of ${size} at 0x${addr.toString(16)}`);
    iommu.recordUnmap({ device: dev.name, domain: domain.id, iova: addr, size, time: dev.host.ctx.clock.now, via: free ? 'dma_iova_destroy' : 'dma_iova_unlink', lazy: gather.queued });
    if (!gather.queued) iommu_iotlb_sync(paging, gather);
    if (free) {
      if (gather.queued && domain.fq !== null) domain.fq.queue(addr / granule, size / granule, gather.freelist.splice(0), cpu());
      else freeIova(domain, addr, size);
    }
  }

  /**
   * __iommu_dma_alloc_pages: `count` pages, each block as large as `orders` (highest first) and the
   * pages left allow, split so every page is freed alone; null (nothing kept) when a page cannot be had.
   */
  function allocPageBlocks(count: number, orders: readonly number[], gfp: number): PfnArray | null {
    const pages = pfnArray(count, mm.maxPfn);
    // An order that fails is not tried again in this call (order_mask &= ~order_size).
    const left = [...orders];
    let got = 0;
    while (got < count) {
      let pfn: number | null = null;
      let order = 0;
      for (let k = 0; k < left.length;) {
        const o = left[k] as number;
        if (2 ** o > count - got) { k++; continue; }
        pfn = mm.alloc_pages(gfp | __GFP_NOWARN, o, 'pages');
        if (pfn !== null) { order = o; break; }
        left.splice(k, 1);
      }
      if (pfn === null) {
        for (let i = 0; i < got; i++) mm.__free_pages(pages[i] as number, 0);
        return null;
      }
      mm.split_page(pfn, order);
      for (let i = 0; i < 2 ** order; i++) pages[got++] = pfn + i;
    }
    return pages;
  }

  function mapPhys(dev: Device, physIn: number, size: number, dir: number, attrs: number): number {
    let phys = physIn;
    if (useSwiotlb(dev) && (ioffset(phys) !== 0 || ioffset(size) !== 0)) {
      // A bounce is neither possible for MMIO nor allowed for a mapping that must stay coherent.
      if (attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT)) return DMA_MAPPING_ERROR;
      phys = mapSwiotlb(dev, phys, size, dir, attrs);
      if (phys === DMA_MAPPING_ERROR) return DMA_MAPPING_ERROR;
    }
    const iova = dmaMap(dev, phys, size, dma_info_to_prot(dir, dev.dma_coherent, attrs), dma_get_mask(dev));
    if (iova === DMA_MAPPING_ERROR && phys !== physIn) bouncer(dev)?.unmap(dev, phys, size, dir, attrs);
    return iova;
  }

  function unmapPhys(dev: Device, handle: number, size: number, dir: number, attrs: number): void {
    const domain = state(dev).domain;
    const phys = domain.paging === null ? 0 : domain.paging.pgtable.iova_to_phys(handle);
    if (phys === 0) {
      dev.host.ctx.klog.warn('iommu_dma_unmap_phys', `WARN_ON(!phys): ${dev.name} unmapping 0x${handle.toString(16)}, which has no translation`);
      return;
    }
    dmaUnmap(dev, handle, size, 'dma_unmap_page', domain);
    const b = bouncer(dev);
    if (b !== null && b.isBuffer(phys)) b.unmap(dev, phys, size, dir, attrs);
  }

  function syncSingle(dev: Device, handle: number, size: number, dir: number, toCpu: boolean): void {
    if (!useSwiotlb(dev)) return;
    const domain = domainOf(dev);
    const phys = domain.paging?.pgtable.iova_to_phys(handle) ?? 0;
    const b = bouncer(dev);
    if (phys === 0 || b === null || !b.isBuffer(phys)) return;
    if (toCpu) b.syncForCpu(dev, phys, size, dir);
    else b.syncForDevice(dev, phys, size, dir);
  }

  function mapSg(dev: Device, sgl: Scatterlist, nents: number, dir: number, attrs: number): number {
    if (useSwiotlb(dev)) {
      // iommu_dma_map_sg_swiotlb: entry by entry through map_page, no merging.
      sg_dma_mark_swiotlb(sgl);
      const done = visitSg(sgl, nents, (s) => {
        s.dma_address = mapPhys(dev, sg_phys(s), s.length, dir, attrs);
        if (s.dma_address === DMA_MAPPING_ERROR) return false;
        s.dma_length = s.length;
        return true;
      });
      if (done === nents) return nents;
      visitSg(sgl, done, (s) => { unmapPhys(dev, s.dma_address, s.dma_length, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC); });
      return -5; // -EIO
    }
    const st = state(dev);
    if (st.domain.paging === null) return -22;
    // The call's device, domain and permissions where sgDom's functions read them, saved and put
    // back around the call: a fault or kernel-log listener run from inside it (an injected IOVA or
    // page-table failure, a WARN) may map another list before this one ends.
    const outer = sgCall.dev === null ? null : { dev: sgCall.dev, st: sgCall.st, prot: sgCall.prot };
    sgCall.dev = dev;
    sgCall.st = st;
    sgCall.prot = dma_info_to_prot(dir, dev.dma_coherent, attrs);
    const limits = { boundaryMask: dma_get_seg_boundary(dev), maxSegSize: dma_get_max_seg_size(dev) };
    let r: number;
    try {
      r = iommuDmaMapSg(sgDom, limits, sgl, nents, observer.mapSg === undefined ? undefined : noteReport);
    } finally {
      if (outer === null) sgCall.dev = sgCall.st = null;
      else Object.assign(sgCall, outer);
    }
    const rep = lastReport;
    lastReport = null;
    if (r > 0 && rep !== null) observer.mapSg?.(dev, rep, nents, r);
    return r;
  }
  let lastReport: IommuSgReport | null = null;
  const noteReport = (rep: IommuSgReport): void => { lastReport = rep; };
  // One IommuSgDomain for every mapSg of this backend, reading the call's state from sgCall: made
  // per call, its object and three closures were ~0.5 KB of garbage a map (bench/RESULTS.md,
  // session 12). sgCall holds nothing between calls.
  const sgCall: { dev: Device | null; st: DevState | null; prot: number } = { dev: null, st: null, prot: 0 };
  const sgDom: IommuSgDomain = {
    granule,
    allocIova: (size) => allocIova(sgCall.dev as Device, (sgCall.st as DevState).domain, size, dma_get_mask(sgCall.dev as Device), sgCall.st as DevState),
    freeIova: (iova, size) => freeIova((sgCall.st as DevState).domain, iova, size),
    mapSg: (iova, sg, n) => iommuMapSgTrusted((sgCall.st as DevState).domain.paging as PagingDomain, iova, sg, n, sgCall.prot, GFP_KERNEL),
  };

  function unmapSg(dev: Device, sgl: Scatterlist, nents: number, dir: number, attrs: number): void {
    if (sg_dma_is_swiotlb(sgl)) {
      visitSg(sgl, nents, (s) => { unmapPhys(dev, s.dma_address, s.dma_length, dir, attrs); });
      return;
    }
    const range = unmapSgRange(sgl, nents);
    if (range !== null) dmaUnmap(dev, range.start, range.size, 'dma_unmap_sg');
  }

  return {
    name: 'iommu',
    map_phys: mapPhys,
    unmap_phys: unmapPhys,
    map_sg: mapSg,
    unmap_sg: unmapSg,
    sync_single_for_cpu: (dev, addr, size, dir) => syncSingle(dev, addr, size, dir, true),
    sync_single_for_device: (dev, addr, size, dir) => syncSingle(dev, addr, size, dir, false),
    sync_sg_for_cpu: (dev, sgl, nents, dir) => { if (sg_dma_is_swiotlb(sgl)) visitSg(sgl, nents, (s) => { syncSingle(dev, s.dma_address, s.length, dir, true); }); },
    sync_sg_for_device: (dev, sgl, nents, dir) => { if (sg_dma_is_swiotlb(sgl)) visitSg(sgl, nents, (s) => { syncSingle(dev, s.dma_address, s.length, dir, false); }); },
    alloc(dev, size, gfp): CoherentBuffer | null {
      // iommu_dma_alloc_remap: pages from anywhere, mapped contiguously in IOVA space.
      if (dev.host.ctx.faults.shouldFail('coherent')) return null;
      const area = mm.vzalloc(size, gfp);
      if (area === null) return null;
      const domain = domainOf(dev);
      const paging = domain.paging;
      const len = area.nrPages * PAGE_SIZE;
      const iova = paging === null ? 0 : allocIova(dev, domain, len, dev.coherent_dma_mask);
      if (paging === null || iova === 0) {
        mm.vfree(area);
        return null;
      }
      const prot = dma_info_to_prot(DMA_BIDIRECTIONAL, dev.dma_coherent, 0);
      for (let i = 0; i < area.nrPages; i++) {
        if (iommu_map(paging, iova + i * PAGE_SIZE, (area.pages[i] as number) * PAGE_SIZE, PAGE_SIZE, prot, GFP_KERNEL) !== 0) {
          if (i > 0) iommu_unmap(paging, iova, i * PAGE_SIZE);
          freeIova(domain, iova, len);
          mm.vfree(area);
          return null;
        }
      }
      return { cpu_addr: area.addr, dma_handle: iova };
    },
    free(dev, size, buf) {
      dmaUnmap(dev, buf.dma_handle, size, 'dma_free_coherent');
      const area = mm.findVmArea(buf.cpu_addr);
      mm.vfree(area ?? null);
    },
    alloc_pages(dev, size, dir, gfp): DmaPages | null {
      // dma_common_alloc_pages: pages from anywhere, mapped for dir without a CPU sync, then zeroed.
      if (dev.host.ctx.faults.shouldFail('coherent')) return null;
      const order = getOrder(size);
      const pfn = mm.alloc_pages(gfp | __GFP_ZERO, order, 'pages');
      if (pfn === null) return null;
      const handle = mapPhys(dev, pfn * PAGE_SIZE, size, dir, DMA_ATTR_SKIP_CPU_SYNC);
      if (handle === DMA_MAPPING_ERROR) {
        mm.__free_pages(pfn, order);
        return null;
      }
      return { page: pfn, dma_handle: handle };
    },
    free_pages(dev, size, page, handle) {
      dmaUnmap(dev, handle, size, 'dma_free_pages');
      mm.__free_pages(page, getOrder(size));
    },
    alloc_noncontiguous(dev, sizeIn, gfp, attrs): NoncontiguousAlloc | null {
      const domain = domainOf(dev);
      const paging = domain.paging;
      if (paging === null) return null;
      // The smallest IOMMU page, and the block orders the IOMMU's page sizes allow (bits tested by
      // arithmetic: a pgsize bitmap can pass 2^32).
      const bitmap = paging.pgsize_bitmap;
      let minSize = granule;
      let size = sizeIn;
      if (minSize < PAGE_SIZE) minSize = PAGE_SIZE;
      else size = Math.ceil(size / minSize) * minSize;
      const orders: number[] = [];
      for (let o = MAX_PAGE_ORDER; o >= 0; o--) {
        const bytes = PAGE_SIZE * 2 ** o;
        if ((attrs & DMA_ATTR_ALLOC_SINGLE_PAGES) ? bytes === minSize : bytes === PAGE_SIZE || Math.floor(bitmap / bytes) % 2 === 1) orders.push(o);
      }
      const count = Math.ceil(size / PAGE_SIZE);
      const pages = allocPageBlocks(count, orders, gfp);
      if (pages === null) return null;
      const freePages = (): void => { for (let i = 0; i < count; i++) mm.__free_pages(pages[i] as number, 0); };
      const iovaSize = ialign(size);
      const iova = allocIova(dev, domain, iovaSize, dev.coherent_dma_mask);
      if (iova === 0) {
        freePages();
        return null;
      }
      const sgt = new SgTable(dev.host.ctx);
      if (sg_alloc_table_from_pages(sgt, pages, count, 0, iovaSize, gfp & ~(GFP_DMA | GFP_DMA32 | __GFP_HIGHMEM | __GFP_COMP)) !== 0) {
        freeIova(domain, iova, iovaSize);
        freePages();
        return null;
      }
      // The mapping is read-write whatever the direction (dma_info_to_prot(DMA_BIDIRECTIONAL, ...)).
      const prot = dma_info_to_prot(DMA_BIDIRECTIONAL, dev.dma_coherent, attrs);
      const mapped = iommu_map_sg(paging, iova, scatterlistAccessor(sgt.sgl as Scatterlist), sgt.orig_nents, prot, gfp & ~(GFP_DMA | GFP_DMA32 | __GFP_HIGHMEM | __GFP_COMP));
      if (mapped < iovaSize) {
        sg_free_table(sgt);
        freeIova(domain, iova, iovaSize);
        freePages();
        return null;
      }
      const first = sgt.sgl as Scatterlist;
      first.dma_address = iova;
      first.dma_length = iovaSize;
      return { sgt, pages };
    },
    free_noncontiguous(dev, size, a) {
      dmaUnmap(dev, (a.sgt.sgl as Scatterlist).dma_address, size, 'dma_free_noncontiguous');
      for (let i = 0; i < a.pages.length; i++) mm.__free_pages(a.pages[i] as number, 0);
      sg_free_table(a.sgt);
    },
    iova: {
      granule,
      alloc(dev, phys, size) {
        const domain = domainOf(dev);
        if (domain.paging === null) return 0;
        const off = ioffset(phys);
        const iova = allocIova(dev, domain, ialign(size + off), dma_get_mask(dev));
        return iova === 0 ? 0 : iova + off;
      },
      link: iovaLink,
      sync(dev, addr, offset, size) {
        const paging = domainOf(dev).paging;
        if (paging === null) return -EINVAL;
        const a = addr + offset;
        const pad = ioffset(a);
        return iommu_sync_map(paging, a - pad, ialign(size + pad));
      },
      unlink: iovaUnlink,
      free(dev, addr, size) {
        const pad = ioffset(addr);
        freeIova(domainOf(dev), addr - pad, ialign(size + pad));
      },
    },
    max_mapping_size: (dev) => {
      if (!dev.untrusted) return SIZE_MAX;
      return bouncer(dev)?.maxMappingSize(dev) ?? SIZE_MAX;
    },
    opt_mapping_size: () => iova_rcache_range(),
    merge_boundary: () => granule - 1,
  };
}
