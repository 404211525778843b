/**
 * A port of NVMe PCI's data path (drivers/nvme/host/pci.c, v6.6 shape): nvme_map_data over
 * blk_rq_map_sg + dma_map_sgtable, nvme_pci_setup_prps / nvme_pci_setup_sgls with the PRP and SGL
 * lists from dma pools, nvme_unmap_data; and a controller model that executes the command by DMA
 * the way the hardware walks PRPs and SGLs.
 *
 * Two historical bugs can be planted:
 * - `noMinAlignMask`: the driver before 3d2d861eb03e ("nvme-pci: set min_align_mask"). Under
 *   swiotlb=force a bounce slot loses the buffer's offset in the 4 KiB controller page, the PRPs
 *   describe the wrong bytes, and the controller writes past the bounce slot: the driver-test
 *   checks report device accesses outside any mapping, and the data read is wrong.
 * - `metadataUnmapDir`: the driver before b8f6446b6853, which unmapped the metadata buffer with
 *   rq_data_dir() (READ = 0, i.e. DMA_BIDIRECTIONAL) instead of the direction it was mapped with:
 *   dma-debug's "frees DMA memory with different direction".
 * Run: npx dmasim run examples/nvme-pci.ts
 */
import {
  Bio, DMA_FROM_DEVICE, DMA_TO_DEVICE, GFP_KERNEL, Machine, REQ_OP_READ, REQ_OP_WRITE, SgTable, bio_add_page, blankLimits,
  blk_alloc_queue, blk_rq_map_sg, blk_rq_nr_phys_segments, blk_submit_bio, dma_map_page, dma_map_sgtable, dma_mapping_error,
  dma_pool_alloc, dma_pool_create, dma_pool_destroy, dma_pool_free, dma_set_max_seg_size, dma_set_min_align_mask, dma_unmap_page,
  dma_unmap_sgtable, sg_alloc_table, sg_dma_address, sg_dma_len, sg_free_table, sg_next, type Device, type DmaPool, type DmaPoolBlock,
  type MachineOptions, type Request, type RequestQueue, type Scatterlist,
} from '../src/index.ts';
import { dmaFindings, type DmaFinding } from '../src/testing/index.ts';

const NVME_CTRL_PAGE_SIZE = 4096;
const PS = NVME_CTRL_PAGE_SIZE;
const NVME_MAX_SEGS = 128;
const SGES_PER_BLOCK = 256 / 16;
const NVME_SGL_FMT_DATA_DESC = 0x0;
const NVME_SGL_FMT_LAST_SEG_DESC = 0x3;
const BLK_STS_OK = 0;
const BLK_STS_RESOURCE = 9;
const BLK_STS_IOERR = 10;

/** What the controller finds in the submission queue entry's data pointer. */
interface NvmeCommand { useSgl: boolean; prp1: number; prp2: number; sgl: { addr: number; length: number; type: number } }

/** The per-request driver data (struct nvme_iod). */
interface NvmeIod {
  nr_allocations: number;
  dma_len: number;
  first_dma: number;
  meta_dma: number;
  sgt: SgTable;
  list: DmaPoolBlock[];
}

/** The driver's per-controller state (struct nvme_dev). */
export interface NvmeDev {
  readonly machine: Machine;
  readonly dev: Device;
  readonly q: RequestQueue;
  prp_page_pool: DmaPool;
  prp_small_pool: DmaPool;
  sglSupported: boolean;
  sglThreshold: number;
}

/** Planted historical bugs. */
export interface NvmeBugs { readonly noMinAlignMask?: boolean; readonly metadataUnmapDir?: boolean }

/** probe: DMA parameters, queue limits and the PRP pools, as nvme_pci_probe / nvme_reset_work set them. */
export function nvme_probe(machine: Machine, dev: Device, bugs: NvmeBugs = {}): NvmeDev {
  dma_set_max_seg_size(dev, 0xffffffff);
  // 3d2d861eb03e: keep the offset in a controller page through swiotlb (PRPs depend on it).
  if (bugs.noMinAlignMask !== true) dma_set_min_align_mask(dev, NVME_CTRL_PAGE_SIZE - 1);
  const q = blk_alloc_queue(machine, { ...blankLimits(), virt_boundary_mask: NVME_CTRL_PAGE_SIZE - 1, max_segments: NVME_MAX_SEGS, max_hw_sectors: 2048 });
  if (typeof q === 'number') throw new Error(`queue limits refused: ${q}`);
  const page = dma_pool_create('prp list page', dev, NVME_CTRL_PAGE_SIZE, NVME_CTRL_PAGE_SIZE, 0);
  const small = dma_pool_create('prp list 256', dev, 256, 256, 0);
  if (page === null || small === null) throw new Error('dma_pool_create failed');
  return { machine, dev, q, prp_page_pool: page, prp_small_pool: small, sglSupported: false, sglThreshold: 32 * 1024 };
}

/** remove: the pools go. */
export function nvme_remove(nd: NvmeDev): void {
  dma_pool_destroy(nd.prp_page_pool);
  dma_pool_destroy(nd.prp_small_pool);
}

const rqDir = (rq: Request): number => (rq.bio.op === REQ_OP_READ ? DMA_FROM_DEVICE : DMA_TO_DEVICE);
const le64 = (nd: NvmeDev, vaddr: number, i: number, v: number): void => nd.machine.mm.writeLe64(vaddr + 8 * i, v);

function nvme_pci_setup_prps(nd: NvmeDev, rq: Request, iod: NvmeIod, cmd: NvmeCommand): number {
  let length = rq.bytes;
  let sg = iod.sgt.sgl as Scatterlist;
  let dmaLen = sg_dma_len(sg);
  let dmaAddr = sg_dma_address(sg);
  const offset = dmaAddr % PS;
  const done = (): number => { cmd.prp1 = sg_dma_address(iod.sgt.sgl as Scatterlist); cmd.prp2 = iod.first_dma; return BLK_STS_OK; };
  length -= PS - offset;
  if (length <= 0) { iod.first_dma = 0; return done(); }
  dmaLen -= PS - offset;
  if (dmaLen !== 0) dmaAddr += PS - offset;
  else { sg = sg_next(sg) as Scatterlist; dmaAddr = sg_dma_address(sg); dmaLen = sg_dma_len(sg); }
  if (length <= PS) { iod.first_dma = dmaAddr; return done(); }
  const nprps = Math.ceil(length / PS);
  let pool: DmaPool;
  if (nprps <= 256 / 8) { pool = nd.prp_small_pool; iod.nr_allocations = 0; } else { pool = nd.prp_page_pool; iod.nr_allocations = 1; }
  let list = dma_pool_alloc(pool, GFP_KERNEL);
  if (list === null) { iod.nr_allocations = -1; return BLK_STS_RESOURCE; }
  iod.list[0] = list;
  iod.first_dma = list.dma;
  let i = 0;
  for (;;) {
    if (i === PS >> 3) {
      const old = list;
      list = dma_pool_alloc(pool, GFP_KERNEL);
      if (list === null) { nvme_free_prps(nd, iod); return BLK_STS_RESOURCE; }
      iod.list[iod.nr_allocations++] = list;
      le64(nd, list.vaddr, 0, nd.machine.mm.readLe64(old.vaddr + 8 * (i - 1)));
      le64(nd, old.vaddr, i - 1, list.dma);
      i = 1;
    }
    le64(nd, list.vaddr, i++, dmaAddr);
    dmaLen -= PS;
    dmaAddr += PS;
    length -= PS;
    if (length <= 0) break;
    if (dmaLen > 0) continue;
    if (dmaLen < 0) {
      nd.machine.klog.warn('nvme_pci_setup_prps', `Invalid SGL for payload:${rq.bytes} nents:${iod.sgt.nents}`);
      return BLK_STS_IOERR;
    }
    sg = sg_next(sg) as Scatterlist;
    dmaAddr = sg_dma_address(sg);
    dmaLen = sg_dma_len(sg);
  }
  return done();
}

function nvme_free_prps(nd: NvmeDev, iod: NvmeIod): void {
  let dmaAddr = iod.first_dma;
  for (let i = 0; i < iod.nr_allocations; i++) {
    const list = iod.list[i] as DmaPoolBlock;
    const next = nd.machine.mm.readLe64(list.vaddr + 8 * (PS / 8 - 1));
    dma_pool_free(nd.prp_page_pool, list.vaddr, dmaAddr);
    dmaAddr = next;
  }
}

function nvme_pci_setup_sgls(nd: NvmeDev, iod: NvmeIod, cmd: NvmeCommand): number {
  let sg = iod.sgt.sgl as Scatterlist;
  let entries = iod.sgt.nents;
  cmd.useSgl = true;
  if (entries === 1) { cmd.sgl = { addr: sg_dma_address(sg), length: sg_dma_len(sg), type: NVME_SGL_FMT_DATA_DESC << 4 }; return BLK_STS_OK; }
  let pool: DmaPool;
  if (entries <= SGES_PER_BLOCK) { pool = nd.prp_small_pool; iod.nr_allocations = 0; } else { pool = nd.prp_page_pool; iod.nr_allocations = 1; }
  const list = dma_pool_alloc(pool, GFP_KERNEL);
  if (list === null) { iod.nr_allocations = -1; return BLK_STS_RESOURCE; }
  iod.list[0] = list;
  iod.first_dma = list.dma;
  cmd.sgl = { addr: list.dma, length: entries * 16, type: NVME_SGL_FMT_LAST_SEG_DESC << 4 };
  let i = 0;
  const mm = nd.machine.mm;
  do {
    mm.writeLe64(list.vaddr + 16 * i, sg_dma_address(sg));
    mm.writeLe32(list.vaddr + 16 * i + 8, sg_dma_len(sg));
    mm.writeLe32(list.vaddr + 16 * i + 12, (NVME_SGL_FMT_DATA_DESC << 4) << 24);
    i++;
    sg = sg_next(sg) as Scatterlist;
  } while (--entries > 0);
  return BLK_STS_OK;
}

/** nvme_map_data: the request's segments mapped and described by PRPs or an SGL. */
export function nvme_map_data(nd: NvmeDev, rq: Request, iod: NvmeIod, cmd: NvmeCommand): number {
  iod.dma_len = 0;
  const sgt = iod.sgt;
  if (sg_alloc_table(sgt, blk_rq_nr_phys_segments(rq), GFP_KERNEL) !== 0) return BLK_STS_RESOURCE;
  sgt.orig_nents = blk_rq_map_sg(rq, sgt.sgl as Scatterlist);
  if (sgt.orig_nents === 0) { sg_free_table(sgt); return BLK_STS_RESOURCE; }
  if (dma_map_sgtable(nd.dev, sgt, rqDir(rq), 0) !== 0) { sg_free_table(sgt); return BLK_STS_RESOURCE; }
  const avg = Math.ceil(rq.bytes / sgt.nents);
  const ret = nd.sglSupported && avg >= nd.sglThreshold ? nvme_pci_setup_sgls(nd, iod, cmd) : nvme_pci_setup_prps(nd, rq, iod, cmd);
  if (ret !== BLK_STS_OK) {
    dma_unmap_sgtable(nd.dev, sgt, rqDir(rq), 0);
    sg_free_table(sgt);
  }
  return ret;
}

/** nvme_unmap_data. */
export function nvme_unmap_data(nd: NvmeDev, rq: Request, iod: NvmeIod): void {
  dma_unmap_sgtable(nd.dev, iod.sgt, rqDir(rq), 0);
  if (iod.nr_allocations === 0) dma_pool_free(nd.prp_small_pool, (iod.list[0] as DmaPoolBlock).vaddr, iod.first_dma);
  else if (iod.nr_allocations === 1) dma_pool_free(nd.prp_page_pool, (iod.list[0] as DmaPoolBlock).vaddr, iod.first_dma);
  else nvme_free_prps(nd, iod);
  sg_free_table(iod.sgt);
}

/**
 * The controller: fetch the data pointer's descriptors by DMA and move `data` (a read: the
 * controller writes host memory) to where they point. A PRP entry past the first with an offset
 * in its page is "PRP Offset Invalid" (status 0x13), as a strict controller reports it.
 */
export function nvme_controller_read(dev: Device, cmd: NvmeCommand, data: Uint8Array): number {
  let at = 0;
  const put = (addr: number, n: number): void => { dev.dma.write(addr, data.subarray(at, at + n)); at += n; };
  if (cmd.useSgl) {
    const descs: Array<[number, number]> = [];
    if (cmd.sgl.type >> 4 === NVME_SGL_FMT_DATA_DESC) descs.push([cmd.sgl.addr, cmd.sgl.length]);
    else {
      for (let i = 0; i < cmd.sgl.length / 16; i++) {
        const a = dev.dma.readLe64(cmd.sgl.addr + 16 * i);
        const l = dev.dma.readLe32(cmd.sgl.addr + 16 * i + 8);
        if (!a.ok || !l.ok) return 0x6; // Internal Error: the descriptor fetch faulted
        descs.push([a.value, l.value]);
      }
    }
    for (const [a, l] of descs) put(a, Math.min(l, data.length - at));
    return 0;
  }
  const first = Math.min(data.length, PS - (cmd.prp1 % PS));
  put(cmd.prp1, first);
  if (at === data.length) return 0;
  if (data.length - at <= PS) {
    if (cmd.prp2 % PS !== 0) return 0x13;
    put(cmd.prp2, data.length - at);
    return 0;
  }
  let list = cmd.prp2;
  for (let i = 0; at < data.length; i++) {
    if (i === PS / 8 - 1 && data.length - at > PS) {
      const link = dev.dma.readLe64(list + 8 * i);
      if (!link.ok) return 0x6;
      list = link.value;
      i = -1;
      continue;
    }
    const e = dev.dma.readLe64(list + 8 * i);
    if (!e.ok) return 0x6;
    if (e.value % PS !== 0) return 0x13;
    put(e.value, Math.min(PS, data.length - at));
  }
  return 0;
}

/** What one run shows. */
export interface NvmeRunResult {
  /** Controller status (0: success, 0x13: PRP Offset Invalid). */
  readonly status: number;
  /** The host buffer holds exactly what the controller read from the media. */
  readonly dataCorrect: boolean;
  readonly findings: readonly DmaFinding[];
  readonly prp: readonly number[];
}

/**
 * One 8 KiB read in two segments that satisfy the virt boundary (the tail of page A from 0x800,
 * then 6 KiB of page B onward), plus a metadata buffer, through `opts`' machine.
 */
export function runNvmeRead(machineOpts: Partial<MachineOptions>, bugs: NvmeBugs = {}, sgl = false): NvmeRunResult {
  const machine = new Machine({ memory: '512M', ...machineOpts });
  const dev = machine.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
  let nd: NvmeDev | null = null;
  machine.pci.bind(dev, { name: 'nvme', probe: (d) => { nd = nvme_probe(machine, d, bugs); }, remove: () => { if (nd !== null) nvme_remove(nd); } });
  const n = nd as unknown as NvmeDev;
  n.sglSupported = sgl;
  n.sglThreshold = sgl ? 0 : n.sglThreshold;
  const a = machine.mm.alloc_pages(GFP_KERNEL, 0) as number;
  const b = machine.mm.alloc_pages(GFP_KERNEL, 1) as number;
  const bio = new Bio(machine, REQ_OP_READ);
  bio_add_page(bio, a, 0x800, 0x800);
  bio_add_page(bio, b, 0x1800, 0);
  const rqs = blk_submit_bio(n.q, bio) as Request[];
  const rq = rqs[0] as Request;
  const iod: NvmeIod = { nr_allocations: -1, dma_len: 0, first_dma: 0, meta_dma: 0, sgt: new SgTable(machine), list: [] };
  const cmd: NvmeCommand = { useSgl: false, prp1: 0, prp2: 0, sgl: { addr: 0, length: 0, type: 0 } };
  if (nvme_map_data(n, rq, iod, cmd) !== BLK_STS_OK) throw new Error('nvme_map_data failed');
  // Metadata: one small buffer mapped with the request's direction (nvme_map_metadata, after the data).
  const meta = machine.mm.alloc_pages(GFP_KERNEL, 0) as number;
  iod.meta_dma = dma_map_page(dev, meta, 0, 64, rqDir(rq));
  dma_mapping_error(dev, iod.meta_dma);
  const prp = [cmd.prp1, cmd.prp2];
  const media = Uint8Array.from({ length: 0x2000 }, (_, i) => (i * 7 + 3) & 0xff);
  const status = nvme_controller_read(dev, cmd, media);
  // Completion: nvme_pci_complete_rq.
  dma_unmap_page(dev, iod.meta_dma, 64, bugs.metadataUnmapDir === true ? (rq.bio.op === REQ_OP_WRITE ? 1 : 0) : rqDir(rq));
  nvme_unmap_data(n, rq, iod);
  const got = new Uint8Array(0x2000);
  got.set(machine.mm.readPhys(a * 4096 + 0x800, 0x800), 0);
  got.set(machine.mm.readPhys(b * 4096, 0x1800), 0x800);
  const dataCorrect = status === 0 && got.every((v, i) => v === media[i]);
  machine.pci.unbind(dev);
  return { status, dataCorrect, findings: dmaFindings(machine), prp };
}

/** `dmasim run examples/nvme-pci.ts`: the read with the fix and without it, under swiotlb=force. */
export default function nvmePci(): string {
  const out: string[] = [];
  for (const [label, bugs] of [['with dma_set_min_align_mask (3d2d861eb03e)', {}], ['without it (the bug)', { noMinAlignMask: true }]] as const) {
    const r = runNvmeRead({ swiotlb: { size: '16M', force: true } }, bugs);
    out.push(`swiotlb=force, ${label}: PRP1 0x${(r.prp[0] ?? 0).toString(16)}, PRP2 0x${(r.prp[1] ?? 0).toString(16)}, status 0x${r.status.toString(16)}, data ${r.dataCorrect ? 'correct' : 'WRONG'}, ${r.findings.length} finding(s)`);
    for (const f of r.findings.slice(0, 3)) out.push(`  [${f.kind}] ${f.message}`);
  }
  return out.join('\n');
}
