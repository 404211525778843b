/**
 * @module iommu/map
 * The IOMMU core's map and unmap calls (drivers/iommu/iommu.c), with the kernel's names, arguments
 * and return conventions:
 * - iommu_map / iommu_map_nosync: 0, -EINVAL (not a paging domain; odd GFP flags, WARN_ON_ONCE;
 *   iova, paddr or size not aligned to the smallest page: pr_err "unaligned: ..."), -ENODEV (no page
 *   table, WARN), or the page table's error (-EEXIST, -ENOMEM, -ERANGE). The range is mapped in pieces
 *   chosen by iommu_pgsize; a failure part-way unmaps everything this call mapped.
 *   Undo differs from the kernel in one respect, so that a failed call leaves the page table exactly
 *   as before: the kernel undoes with iommu_unmap over the range (whose page sizes follow the IOVA
 *   alone and may take out a whole table that was there, empty, before the call); here the undo
 *   unmaps exactly the leaves the call placed, at their sizes, syncs the IOTLB the same way, and then
 *   frees the table pages the call allocated. (A block that replaced a table, as io-pgtable-arm
 *   allows, cannot be undone: the old table is gone, as in the kernel.)
 * - iommu_unmap / iommu_unmap_fast: bytes unmapped; stops at a hole; a large page is never split
 *   (the page table WARNs and unmaps nothing of it); 0 for misaligned arguments (pr_err).
 * - iommu_map_sg: physically contiguous entries are merged into one iommu_map_nosync each, mapped
 *   back to back from `iova`, then one iommu_sync_map of the whole range; bytes mapped or a
 *   negative errno. On failure it does what the kernel does: iommu_unmap of [iova, iova + mapped)
 *   with its IOTLB sync, even when nothing was mapped (the runs already mapped go; a failing run
 *   has undone itself), then frees the table pages the call allocated that are left empty.
 * - iommu_iova_to_phys: identity → iova, blocked → 0, else the page-table walk (0: not mapped).
 */
import { EINVAL, ENODEV } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { __GFP_COMP, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM } from '../mm/gfp.ts';
import { IommuIotlbGather, giveGather, iommu_iotlb_sync, takeGather } from './gather.ts';
import { IOMMU_DOMAIN_BLOCKED, IOMMU_DOMAIN_IDENTITY, __IOMMU_DOMAIN_PAGING, type IommuDomainLike } from './map-domain.ts';
import { pgsizeFromShifts, pgsizeOut, pgsizeShiftsOf, pgsizesOf } from './map-pgsize.ts';
import { checkInt, notInstance } from '../core/args.ts';

// Local copies of imported bindings used on hot paths: when a script loads dmasim as CommonJS (tsx
// does so for a .ts file outside an ESM package), every read of an imported binding is a getter call.
const PAGING = __IOMMU_DOMAIN_PAGING;
const pickPgsize = pgsizeFromShifts;
const pickOut = pgsizeOut;
const shiftsOf = pgsizeShiftsOf;
const sizesOf = pgsizesOf;
const iotlbSync = iommu_iotlb_sync;

const PR_PREFIX = 'iommu: ';
/** Empty gathers for iommu_unmap (iommu_iotlb_sync leaves a gather empty). */
/** A domain as the IOMMU core hands it out (type, page sizes, page table), else EINVAL naming `domain`. */
function checkDomain(domain: unknown, fn: string): void {
  const d = domain as Partial<IommuDomainLike> | null;
  if (typeof d !== 'object' || d === null || typeof d.type !== 'number' || typeof d.pgsize_bitmap !== 'number' || !('pgtable' in d)) {
    throw new KernelError(EINVAL, fn, 'expected an IOMMU domain (a paging domain\'s page-table view)', 'domain');
  }
}

const BAD_GFP = __GFP_COMP | __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM;
const MAX_ADDR = Number.MAX_SAFE_INTEGER;

/** Is x a multiple of the power of two whose inverse is `inv`? (No fmod, no division: both are slow.) */
function aligned(x: number, inv: number): boolean {
  const q = x * inv;
  return Math.floor(q) === q;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** %pa: a phys_addr_t as 0x and 16 zero-padded hex digits. */
function hexPa(n: number): string {
  return `0x${n.toString(16).padStart(16, '0')}`;
}

function badAddr(fn: string, arg: string, v: unknown): never {
  throw new KernelError(EINVAL, fn, `expected a whole number in [0, 2^53), got ${String(v)}`, arg);
}

function isAddr(x: number): boolean {
  return typeof x === 'number' && x >= 0 && Math.floor(x) === x;
}

function checkRange(fn: string, iova: number, paddr: number, size: number): void {
  if (isAddr(iova) && isAddr(paddr) && isAddr(size) && iova + size <= MAX_ADDR) return;
  if (!isAddr(iova)) badAddr(fn, 'iova', iova);
  if (!isAddr(paddr)) badAddr(fn, 'paddr', paddr);
  if (!isAddr(size)) badAddr(fn, 'size', size);
  throw new KernelError(EINVAL, fn, `iova + size exceeds 2^53 - 1 (${iova} + ${size})`, 'size');
}

/**
 * iommu_map_nosync: map [iova, iova + size) to [paddr, paddr + size) with `prot`, no iotlb_sync_map.
 * @returns 0 or a negative errno (nothing left mapped, no table page left behind).
 * @example iommu_map_nosync(domain, 0x200000, 0x40200000, 0x400000, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL) // 0
 */
export function iommu_map_nosync(domain: IommuDomainLike, iova: number, paddr: number, size: number, prot: number, gfp: number): number {
  checkDomain(domain, 'iommu_map_nosync');
  checkRange('iommu_map_nosync', iova, paddr, size);
  return mapNosync(domain, iova, paddr, size, prot, gfp);
}

/** iommu_map_nosync's body, for callers inside the simulator whose arguments are already sound. */
function mapNosync(domain: IommuDomainLike, iova: number, paddr: number, size: number, prot: number, gfp: number): number {
  if ((domain.type & PAGING) === 0) return -EINVAL;
  const pt = domain.pgtable;
  const bitmap = domain.pgsize_bitmap;
  if (pt === null || !(bitmap > 0)) {
    domain.klog.warn('iommu_map_nosync', 'WARN_ON(!ops->map_pages || domain->pgsize_bitmap == 0UL)');
    return -ENODEV;
  }
  if ((gfp & BAD_GFP) !== 0) {
    domain.klog.warnOnce('iommu_map_nosync:gfp', 'iommu_map_nosync', 'WARN_ON_ONCE(gfp & (__GFP_COMP | __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM))');
    return -EINVAL;
  }
  const pg = sizesOf(bitmap);
  const shifts = pg.shifts;
  const minPagesz = pg.min;
  const minInv = pg.minInv;
  const second = pg.second;
  if (!aligned(iova, minInv) || !aligned(paddr, minInv) || !aligned(size, minInv)) {
    domain.klog.printk('err', 'iommu_map_nosync', `${PR_PREFIX}unaligned: iova ${hex(iova)} pa ${hexPa(paddr)} size ${hex(size)} min_pagesz ${hex(minPagesz)}\n`);
    return -EINVAL;
  }
  const origIova = iova;
  const origPaddr = paddr;
  const origSize = size;
  let ret = 0;
  const since = pt.tableAllocs;
  while (size !== 0) {
    // Below the second page size only the smallest fits (iova and paddr are aligned to it), and
    // no larger page can follow: iommu_pgsize's answer without the search.
    let pgsize = minPagesz;
    let count = size * minInv;
    if (size >= second) {
      pgsize = pickPgsize(shifts, iova, paddr, size);
      count = pickOut.count;
    }
    const r = pt.map_pages(iova, paddr, pgsize, count, prot, gfp);
    if (r < 0) {
      ret = r;
      break;
    }
    size -= r;
    iova += r;
    paddr += r;
  }
  if (ret !== 0) {
    if (origSize !== size) {
      const gather = new IommuIotlbGather();
      undoMap(domain, origIova, origPaddr, origSize - size, gather);
      iotlbSync(domain, gather);
    }
    pt.rollbackTablesSince(since);
  } else if (domain.onMap != null) domain.onMap(origIova, origPaddr, origSize);
  return ret;
}

/**
 * iommu_sync_map: the domain's iotlb_sync_map op, if it has one.
 * @example iommu_sync_map(domain, iova, size) // 0
 */
export function iommu_sync_map(domain: IommuDomainLike, iova: number, size: number): number {
  checkDomain(domain, 'iommu_sync_map');
  return domain.iotlb_sync_map === undefined ? 0 : domain.iotlb_sync_map(iova, size);
}

/**
 * iommu_map: iommu_map_nosync, then iommu_sync_map (on failure of the sync, the range is unmapped).
 * @returns 0, -EINVAL, -ENODEV, -EEXIST, -ENOMEM or -ERANGE; on failure nothing of it stays mapped.
 * @example
 * iommu_map(domain, 0x1000, 0x5000, 0x1000, IOMMU_READ, GFP_KERNEL) // 0
 * iommu_map(domain, 0x1001, 0x5000, 0x1000, IOMMU_READ, GFP_KERNEL) // -EINVAL, pr_err "unaligned: ..."
 */
export function iommu_map(domain: IommuDomainLike, iova: number, paddr: number, size: number, prot: number, gfp: number): number {
  checkDomain(domain, 'iommu_map');
  checkRange('iommu_map', iova, paddr, size);
  return iommuMapTrusted(domain, iova, paddr, size, prot, gfp);
}

/**
 * @internal iommu_map without the argument checks, for the DMA layer, whose domains, addresses and
 * sizes are the simulator's own (sound by construction). Same results, WARNs and side effects.
 * Why: the checks of iommu_map, iommu_map_nosync and iommu_sync_map ran three times per mapping.
 */
export function iommuMapTrusted(domain: IommuDomainLike, iova: number, paddr: number, size: number, prot: number, gfp: number): number {
  const pt = domain.pgtable;
  if (pt === null || domain.iotlb_sync_map === undefined) return mapNosync(domain, iova, paddr, size, prot, gfp);
  const since = pt.tableAllocs;
  let ret = mapNosync(domain, iova, paddr, size, prot, gfp);
  if (ret === 0) {
    ret = domain.iotlb_sync_map(iova, size);
    if (ret !== 0) {
      const gather = new IommuIotlbGather();
      undoMap(domain, iova, paddr, size, gather);
      iotlbSync(domain, gather);
      pt.rollbackTablesSince(since);
    }
  }
  return ret;
}

/** The unmap loop shared by iommu_unmap and iommu_unmap_fast. */
function __iommu_unmap(domain: IommuDomainLike, iova: number, size: number, gather: IommuIotlbGather): number {
  if ((domain.type & PAGING) === 0) return 0;
  const pt = domain.pgtable;
  const bitmap = domain.pgsize_bitmap;
  if (pt === null || !(bitmap > 0)) {
    domain.klog.warn('__iommu_unmap', 'WARN_ON(!ops->unmap_pages || domain->pgsize_bitmap == 0UL)');
    return 0;
  }
  const pg = sizesOf(bitmap);
  const shifts = pg.shifts;
  const minPagesz = pg.min;
  const minInv = pg.minInv;
  const second = pg.second;
  if (!aligned(iova, minInv) || !aligned(size, minInv)) {
    domain.klog.printk('err', '__iommu_unmap', `${PR_PREFIX}unaligned: iova ${hex(iova)} size ${hex(size)} min_pagesz ${hex(minPagesz)}\n`);
    return 0;
  }
  let unmapped = 0;
  while (unmapped < size) {
    const left = size - unmapped;
    let pgsize = minPagesz;
    let count = left * minInv;
    if (left >= second) {
      pgsize = pickPgsize(shifts, iova, iova, left);
      count = pickOut.count;
    }
    const done = pt.unmap_pages(iova, pgsize, count, gather);
    if (done === 0) break;
    iova += done;
    unmapped += done;
  }
  if (domain.onUnmap != null) domain.onUnmap(iova - unmapped, size, unmapped);
  return unmapped;
}

/**
 * Undo a map: unmap the leaves placed from (iova, paddr) over `size` bytes at the page sizes the map
 * chose (iommu_pgsize over iova and paddr picks the same sizes again), gathering into `gather`.
 */
function undoMap(domain: IommuDomainLike, iova: number, paddr: number, size: number, gather: IommuIotlbGather): void {
  const pt = domain.pgtable;
  if (pt === null) return;
  const shifts = shiftsOf(domain.pgsize_bitmap);
  let done = 0;
  while (done < size) {
    const pgsize = pickPgsize(shifts, iova, paddr, size - done);
    const n = pt.unmap_pages(iova, pgsize, pickOut.count, gather);
    if (n === 0) break;
    iova += n;
    paddr += n;
    done += n;
  }
}

/**
 * iommu_unmap: unmap [iova, iova + size) and sync the IOTLB (page-selective invalidation of what was
 * gathered; freed table pages released after it).
 * @returns bytes unmapped: less than `size` when it reached a hole or a large page it cannot split.
 * @example iommu_unmap(domain, 0x1000, 0x1000) // 4096
 */
export function iommu_unmap(domain: IommuDomainLike, iova: number, size: number): number {
  checkDomain(domain, 'iommu_unmap');
  checkRange('iommu_unmap', iova, 0, size);
  const gather = takeGather();
  const ret = __iommu_unmap(domain, iova, size, gather);
  iotlbSync(domain, gather);
  giveGather(gather);
  return ret;
}

/**
 * iommu_unmap_fast: unmap without syncing: the caller syncs `gather` (strict) or queues its range and
 * freelist on a flush queue (lazy; set `gather.queued` first).
 * @example
 * const g = new IommuIotlbGather();
 * iommu_unmap_fast(domain, iova, size, g); iommu_iotlb_sync(domain, g);
 */
export function iommu_unmap_fast(domain: IommuDomainLike, iova: number, size: number, gather: IommuIotlbGather): number {
  checkDomain(domain, 'iommu_unmap_fast');
  if (!(gather instanceof IommuIotlbGather)) throw notInstance(gather, IommuIotlbGather, 'iommu_unmap_fast', 'gather');
  checkRange('iommu_unmap_fast', iova, 0, size);
  return __iommu_unmap(domain, iova, size, gather);
}

/**
 * @internal iommu_unmap_fast without the argument checks, for the DMA layer (see
 * {@link iommuMapTrusted}).
 */
export function iommuUnmapFastTrusted(domain: IommuDomainLike, iova: number, size: number, gather: IommuIotlbGather): number {
  return __iommu_unmap(domain, iova, size, gather);
}

/**
 * iommu_iova_to_phys: identity domains return `iova`, blocked ones 0; otherwise the page-table walk
 * (0 when not mapped).
 * @example iommu_iova_to_phys(domain, 0x1234) // 0x5234
 */
export function iommu_iova_to_phys(domain: IommuDomainLike, iova: number): number {
  checkDomain(domain, 'iommu_iova_to_phys');
  if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova;
  if (domain.type === IOMMU_DOMAIN_BLOCKED) return 0;
  const pt = domain.pgtable;
  return pt === null ? 0 : pt.iova_to_phys(iova);
}

/**
 * One scatterlist entry as iommu_map_sg reads it: sg_phys, length, and sg_dma_is_bus_address.
 * @example const e: IommuSgEntry = { phys: 0x5000, length: 4096 };
 */
export interface IommuSgEntry {
  readonly phys: number;
  readonly length: number;
  /** A PCI peer-to-peer bus address: not mapped through the IOMMU (skipped). */
  readonly busAddress?: boolean;
}

/**
 * Entry accessors, for scatterlists kept in typed arrays (no object per entry).
 * @example const sg: IommuSgAccessor = { phys: (i) => phys[i], length: (i) => len[i] };
 */
export interface IommuSgAccessor {
  phys(i: number): number;
  length(i: number): number;
  isBusAddress?(i: number): boolean;
}

/**
 * What iommu_map_sg accepts: an array of entries, or accessors by index.
 * @example iommu_map_sg(domain, iova, [{ phys, length }], 1, IOMMU_READ, GFP_KERNEL)
 */
export type IommuSgList = readonly IommuSgEntry[] | IommuSgAccessor;

/**
 * iommu_map_sg: map `nents` entries back to back from `iova`, one iommu_map_nosync per run of
 * physically contiguous entries, bus-address entries skipped, then one iommu_sync_map.
 * @returns bytes mapped, or a negative errno with everything this call mapped undone (the kernel's
 *   iommu_unmap of the whole range; here run by run, see the module notes).
 * @example iommu_map_sg(domain, 0x100000, [{ phys: 0x5000, length: 0x1000 }, { phys: 0x6000, length: 0x2000 }], 2, IOMMU_READ, GFP_KERNEL) // 0x3000
 */
export function iommu_map_sg(domain: IommuDomainLike, iova: number, sg: IommuSgList, nents: number, prot: number, gfp: number): number {
  checkDomain(domain, 'iommu_map_sg');
  if (!Array.isArray(sg) && (typeof sg !== 'object' || sg === null || typeof (sg as IommuSgAccessor).phys !== 'function' || typeof (sg as IommuSgAccessor).length !== 'function')) {
    throw new KernelError(EINVAL, 'iommu_map_sg', 'expected an array of { phys, length } or accessors { phys(i), length(i) }', 'sg');
  }
  checkInt(prot, 'iommu_map_sg', 'prot', 0, 0xffffffff);
  checkInt(gfp, 'iommu_map_sg', 'gfp', 0, 0xffffffff);
  const fn = 'iommu_map_sg';
  checkRange(fn, iova, 0, 0);
  const isArray = Array.isArray(sg);
  const arr = sg as readonly IommuSgEntry[];
  const acc = sg as IommuSgAccessor;
  if (!Number.isInteger(nents) || nents < 0 || (isArray && nents > arr.length)) {
    throw new KernelError(EINVAL, fn, `expected a whole number in [0, ${isArray ? arr.length : '∞'}], got ${String(nents)}`, 'nents');
  }
  // Every entry checked before anything is mapped: a bad one found part-way would leave the runs
  // before it mapped.
  let total = 0;
  for (let i = 0; i < nents; i++) {
    const e: unknown = isArray ? arr[i] : undefined;
    if (isArray && (typeof e !== 'object' || e === null)) throw new KernelError(EINVAL, fn, `entry ${i}: expected { phys, length }, got ${String(e)}`, 'sg');
    // A bus-address entry is skipped unread, as the kernel does. A physical address past what the
    // page table can map is the page table's to refuse (-ERANGE, as iommu_map).
    if (isArray ? (e as IommuSgEntry).busAddress === true : acc.isBusAddress?.(i) === true) continue;
    const phys = isArray ? (e as IommuSgEntry).phys : acc.phys(i);
    const length = isArray ? (e as IommuSgEntry).length : acc.length(i);
    if (!isAddr(phys as number)) throw new KernelError(EINVAL, fn, `entry ${i}: expected a physical address (a whole number, 0 or more), got ${String(phys)}`, 'sg');
    if (!isAddr(length as number) || (length as number) > MAX_ADDR) throw new KernelError(EINVAL, fn, `entry ${i}: expected a length in [0, 2^53), got ${String(length)}`, 'sg');
    total += length as number;
  }
  if (iova + total > MAX_ADDR) throw new KernelError(EINVAL, fn, `iova + the entries' lengths exceed 2^53 - 1 (${iova} + ${total})`, 'sg');
  return mapSgRuns(domain, iova, sg, nents, prot, gfp);
}

/**
 * @internal iommu_map_sg without the argument checks, for dma-iommu, whose entries come from its
 * own scatterlist slots (sound by construction). Same results, WARNs and side effects.
 * Why: the checks, and each run's iommu_map_nosync checks, cost 16-entry map+unmap 7-9% (3.71 ->
 * 3.36-3.47 us, same-process A/B, .scratch/sgab2.mjs).
 */
export function iommuMapSgTrusted(domain: IommuDomainLike, iova: number, sg: IommuSgList, nents: number, prot: number, gfp: number): number {
  return mapSgRuns(domain, iova, sg, nents, prot, gfp);
}

/** iommu_map_sg's body, over entries already known sound. */
function mapSgRuns(domain: IommuDomainLike, iova: number, sg: IommuSgList, nents: number, prot: number, gfp: number): number {
  const isArray = Array.isArray(sg);
  const arr = sg as readonly IommuSgEntry[];
  const acc = sg as IommuSgAccessor;
  const pt = domain.pgtable;
  const since = pt === null ? 0 : pt.tableAllocs;
  let ret = 0;
  let mapped = 0;
  if (nents > 0) {
    let len = 0;
    let start = 0;
    let cur = 0;
    // The kernel's loop runs nents + 1 times, the last pass revisiting the last entry, so the final
    // run is mapped when its successor's address "breaks" the run.
    for (let i = 0; i <= nents;) {
      // The entry's fields read in place (closures made per call were garbage on every map).
      const sPhys = isArray ? (arr[cur] as IommuSgEntry).phys : acc.phys(cur);
      if (len !== 0 && sPhys !== start + len) {
        ret = mapNosync(domain, iova + mapped, start, len, prot, gfp);
        if (ret !== 0) break;
        mapped += len;
        len = 0;
      }
      if (!(isArray ? (arr[cur] as IommuSgEntry).busAddress === true : acc.isBusAddress?.(cur) === true)) {
        const sLen = isArray ? (arr[cur] as IommuSgEntry).length : acc.length(cur);
        if (len !== 0) {
          len += sLen;
        } else {
          len = sLen;
          start = sPhys;
        }
      }
      if (++i < nents) cur++;
    }
  }
  if (ret === 0 && domain.iotlb_sync_map !== undefined) ret = domain.iotlb_sync_map(iova, mapped);
  if (ret !== 0) {
    // out_err: iommu_unmap(domain, iova, mapped), whose iotlb_sync runs even for nothing.
    const gather = new IommuIotlbGather();
    __iommu_unmap(domain, iova, mapped, gather);
    iotlbSync(domain, gather);
  }
  if (ret !== 0) pt?.rollbackTablesSince(since);
  return ret !== 0 ? ret : mapped;
}
