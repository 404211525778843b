/**
 * A port of RDMA's user memory registration (drivers/infiniband/core/umem.c): ib_umem_get pins
 * the user buffer 512 pages at a time with pin_user_pages_fast, charges mm->pinned_vm against
 * RLIMIT_MEMLOCK, appends each chunk with sg_alloc_append_table_from_pages at the device's
 * dma_get_max_seg_size, and maps the table; ib_umem_release undoes it; ib_umem_find_best_pgsz
 * picks the largest page size the mapping allows.
 *
 * Two bugs can be planted:
 * - `leakPinsOnError`: the error path after a failed append forgets to unpin the chunk it just
 *   pinned: leaked-pin findings once the driver is gone.
 * - `uintMaxSegment`: the table is built with UINT_MAX segments instead of the device's
 *   dma_get_max_seg_size: on a huge-page buffer the entries are longer than the device claims to
 *   support, which dma-debug reports ("mapping sg segment longer than device claims to support").
 * Run: npx dmasim run examples/rdma-umem.ts
 */
import {
  DMA_BIDIRECTIONAL, ENOMEM, FOLL_LONGTERM, FOLL_WRITE, GFP_KERNEL, Machine, SgAppendTable, dma_get_max_seg_size, dma_map_sgtable,
  dma_set_max_seg_size, dma_unmap_sgtable, pin_user_pages_fast, sg_alloc_append_table_from_pages, sg_dma_address, sg_dma_len,
  sg_free_append_table, sg_next, sg_page, unpin_user_page_range_dirty_lock, unpin_user_pages_dirty_lock, type Device,
  type MachineOptions, type Scatterlist, type UserMm,
} from '../src/index.ts';
import { dmaFindings, type DmaFinding } from '../src/testing/index.ts';

const PAGE_SIZE = 4096;
export const IB_ACCESS_LOCAL_WRITE = 1 << 0;

/** struct ib_umem. */
export interface IbUmem {
  readonly dev: Device;
  readonly user: UserMm;
  readonly address: number;
  readonly length: number;
  iova: number;
  readonly writable: boolean;
  readonly sgtAppend: SgAppendTable;
}

/** Planted bugs. */
export interface UmemBugs { readonly leakPinsOnError?: boolean; readonly uintMaxSegment?: boolean }

/** ib_umem_num_pages: pages spanned by [iova, iova + length). */
function numPages(u: { iova: number; length: number }): number {
  return (Math.ceil((u.iova + u.length) / PAGE_SIZE) - Math.floor(u.iova / PAGE_SIZE));
}

/** __ib_umem_release: unmap (when it was mapped), unpin each entry's pages, free the table. */
function releaseUmem(u: IbUmem, dirty: boolean): void {
  const makeDirty = u.writable && dirty;
  const sgt = u.sgtAppend.sgt;
  if (dirty) dma_unmap_sgtable(u.dev, sgt, DMA_BIDIRECTIONAL, 0);
  let sg: Scatterlist | null = sgt.sgl;
  for (let i = 0; sg !== null && i < sgt.orig_nents; i++, sg = sg_next(sg)) {
    unpin_user_page_range_dirty_lock(u.user, sg_page(sg), Math.ceil(sg.length / PAGE_SIZE), makeDirty);
  }
  sg_free_append_table(u.sgtAppend);
}

/**
 * ib_umem_get: pin and map [addr, addr + size) of `user` for `dev`.
 * @returns the umem, or a negative errno (-EINVAL, -ENOMEM past RLIMIT_MEMLOCK, the pin's or the map's).
 */
export function ib_umem_get(dev: Device, user: UserMm, addr: number, size: number, access: number, bugs: UmemBugs = {}): IbUmem | number {
  if (addr + size < addr || size === 0) return -22;
  const u: IbUmem = { dev, user, address: addr, length: size, iova: addr, writable: (access & IB_ACCESS_LOCAL_WRITE) !== 0, sgtAppend: new SgAppendTable(dev.host.ctx) };
  let npages = numPages(u);
  // The optimistic charge, rolled back past the limit (CAP_IPC_LOCK holders are counted, not limited).
  const lockLimit = Math.floor(user.rlimitMemlock / PAGE_SIZE);
  user.pinned_vm += npages;
  if (user.pinned_vm > lockLimit && !user.capIpcLock) {
    user.pinned_vm -= npages;
    return -ENOMEM;
  }
  let curBase = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  const gupFlags = FOLL_LONGTERM | (u.writable ? FOLL_WRITE : 0);
  const pageList: number[] = new Array(PAGE_SIZE / 8);
  const maxSeg = bugs.uintMaxSegment === true ? 0xffffffff : dma_get_max_seg_size(dev);
  let ret = 0;
  while (npages > 0) {
    const pinned = pin_user_pages_fast(user, curBase, Math.min(npages, PAGE_SIZE / 8), gupFlags, pageList);
    if (pinned < 0) { ret = pinned; break; }
    curBase += pinned * PAGE_SIZE;
    npages -= pinned;
    ret = sg_alloc_append_table_from_pages(u.sgtAppend, pageList, pinned, 0, pinned * PAGE_SIZE, maxSeg, npages, GFP_KERNEL);
    if (ret !== 0) {
      if (bugs.leakPinsOnError !== true) unpin_user_pages_dirty_lock(user, pageList, pinned, false);
      break;
    }
  }
  if (ret === 0) ret = dma_map_sgtable(dev, u.sgtAppend.sgt, DMA_BIDIRECTIONAL, 0);
  if (ret !== 0) {
    releaseUmem(u, false);
    user.pinned_vm -= numPages(u);
    return ret;
  }
  return u;
}

/** ib_umem_release: unmap, unpin (dirty when writable), give back the pinned_vm charge. */
export function ib_umem_release(u: IbUmem): void {
  releaseUmem(u, true);
  u.user.pinned_vm -= numPages(u);
}

/**
 * ib_umem_find_best_pgsz: the largest page size in `pgszBitmap` (whole-number bitmap of sizes)
 * that maps the umem at IOVA `virt`, or 0.
 */
export function ib_umem_find_best_pgsz(u: IbUmem, pgszBitmap: number, virt: number): number {
  u.iova = virt;
  let bitmap = BigInt(pgszBitmap);
  // bits_per(): the bits needed to write a value (1 for 0 and 1).
  const bitsPer = (x: bigint): number => (x < 2n ? 1 : x.toString(2).length);
  // Page sizes larger than one holding the whole VA range seed the mask: its trailing zeros then
  // cap the result at the smallest such size.
  let mask = bitmap & ~((1n << BigInt(bitsPer(BigInt(u.length - 1 + virt) ^ BigInt(virt)))) - 1n);
  let pgoff = BigInt(u.address % PAGE_SIZE);
  let va = BigInt(virt);
  let currBase = 0n;
  let currLen = 0n;
  let i = 0;
  for (let sg: Scatterlist | null = u.sgtAppend.sgt.sgl; sg !== null && i < u.sgtAppend.sgt.nents; sg = sg_next(sg), i++) {
    const dma = BigInt(sg_dma_address(sg));
    if (i === 0 || currBase + currLen !== dma) {
      currBase = dma;
      currLen = 0n;
      // Where the IOVA and the DMA address disagree, and a discontinuity's VA, limit the page size.
      mask |= (currBase + pgoff) ^ va;
      if (i !== 0) mask |= va;
    }
    const len = BigInt(sg_dma_len(sg));
    currLen += len;
    va += len - pgoff;
    pgoff = 0n;
  }
  if (mask !== 0n) {
    let tz = 0n;
    while (((mask >> tz) & 1n) === 0n) tz++;
    bitmap &= (1n << (tz + 1n)) - 1n;
  }
  return bitmap === 0n ? 0 : 2 ** (bitmap.toString(2).length - 1);
}

/** What one registration shows. */
export interface UmemRunResult { readonly ret: number; readonly entries: number; readonly bestPgsz: number; readonly findings: readonly DmaFinding[]; readonly pinnedVm: number }

/**
 * Register `size` bytes of a huge-page buffer for an RDMA device whose dma_parms say 64 KiB
 * segments (unless `maxSeg`), release it, unbind; optionally fail the `failAppend`-th sg chunk.
 */
export function runUmem(machineOpts: Partial<MachineOptions>, bugs: UmemBugs = {}, opts: { size?: number; failAppend?: number; maxSeg?: number; rlimit?: number } = {}): UmemRunResult {
  const machine = new Machine({ memory: '512M', ...machineOpts });
  const dev = machine.pci.addDevice({ name: '0000:03:00.0', dmaMask: 64, coherentDmaMask: 64 });
  const size = opts.size ?? 4 << 20;
  let result: UmemRunResult | null = null;
  machine.pci.bind(dev, {
    name: 'mlx5_ib',
    probe: (d) => {
      dma_set_max_seg_size(d, opts.maxSeg ?? 65536);
      machine.user.rlimitMemlock = opts.rlimit ?? 64 << 20;
      const buf = machine.user.mmap(size, { huge: true, populate: true });
      if (opts.failAppend !== undefined) machine.faults.inject('sg-chunk', { nth: opts.failAppend });
      const u = ib_umem_get(d, machine.user, buf, size, IB_ACCESS_LOCAL_WRITE, bugs);
      machine.faults.clear();
      if (typeof u === 'number') {
        result = { ret: u, entries: 0, bestPgsz: 0, findings: [], pinnedVm: 0 };
        return;
      }
      const bestPgsz = ib_umem_find_best_pgsz(u, 4096 + (2 << 20), buf);
      result = { ret: 0, entries: u.sgtAppend.sgt.orig_nents, bestPgsz, findings: [], pinnedVm: 0 };
      ib_umem_release(u);
    },
  });
  machine.pci.unbind(dev);
  const r = result as unknown as UmemRunResult;
  return { ...r, findings: dmaFindings(machine), pinnedVm: machine.user.pinned_vm };
}

/** `dmasim run examples/rdma-umem.ts`. */
export default function rdmaUmem(): string {
  const ok = runUmem({ iommu: { mode: 'strict' } });
  const leak = runUmem({}, { leakPinsOnError: true }, { failAppend: 3, size: 8 << 20, maxSeg: 4096 });
  const seg = runUmem({}, { uintMaxSegment: true });
  return [
    `4 MiB of huge pages registered: ${ok.entries} entries at 64 KiB segments, best page size ${ok.bestPgsz / 1024} KiB, ${ok.findings.length} findings`,
    `planted leak on the error path: ret ${leak.ret}, ${leak.findings.filter((f) => f.kind === 'leaked-pin').length} leaked-pin finding(s)`,
    `planted UINT_MAX segments: ${seg.findings.filter((f) => f.kind === 'dma-debug').length} dma-debug finding(s)`,
  ].join('\n');
}
