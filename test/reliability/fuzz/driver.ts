/**
 * The bad-input fuzz driver (run by fuzz-exports.test.ts in a child process, so a hang can be
 * caught by a watchdog and named). Every exported function of the package is called once per
 * parameter per kind of garbage, the other parameters valid, on a fresh machine; the outcome must
 * be a kernel return, a KernelError (EINVAL naming the argument), or a KernelBug, with nothing
 * changed when it threw and a clean audit (dma-debug included) either way.
 *
 * Protocol (stdout, one JSON object a line): {"at": i, "name": ...} before call i, {"fail": ...}
 * for each bad outcome, {"skip": ...} for a function or parameter it cannot call, {"done": n}.
 * Arguments: --from i (start index), --shard k/n.
 */
import * as dmasim from '../../../src/index.ts';
import {
  DMA_BIT_MASK, DMA_TO_DEVICE, GFP_KERNEL, IOMMU_READ, IommuIotlbGather, KernelBug, KernelError, Machine, SgAppendTable,
  SgMappingIter, SgPageIter, SgTable, TranslateResult, __sg_page_iter_start, dma_map_page_attrs, parseRam,
  SimpleTablePageAllocator, runHistogram, sg_alloc_table_from_pages_segment, sg_free_table, sg_miter_start, type Core, type Device,
} from '../../../src/index.ts';

/** What one call may use. */
interface Rig {
  readonly m: Machine;
  readonly dev: Device<Core>;
  readonly sgt: SgTable;
  readonly pfn: number;
  readonly virt: number;
  readonly addr: number;
  readonly area: NonNullable<ReturnType<Machine['mm']['vmalloc']>>;
}

function rig(): Rig {
  const m = new Machine({ memory: '256M', iommu: { mode: 'strict' }, swiotlb: { size: '4M' } });
  const plain = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, coherentDmaMask: 64 });
  let dev: Device<Core> | undefined;
  m.pci.bind(plain, { name: 'fuzz', probe(d) { dev = d; } });
  const area = m.mm.vmalloc(4 * 4096)!;
  const sgt = new SgTable(m);
  // Pages in reverse order: four entries, none merged.
  sg_alloc_table_from_pages_segment(sgt, [...area.pages].reverse(), area.nrPages, 0, area.size, 65536, GFP_KERNEL);
  const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
  const virt = m.mm.kmalloc(4096)!;
  const addr = dma_map_page_attrs(dev as Device<Core>, pfn, 0, 4096, DMA_TO_DEVICE, 0);
  return { m, dev: dev as Device<Core>, sgt, pfn, virt, addr, area };
}

const domain = (r: Rig) => r.m.iommu!.dmaDomainOf(r.dev)!;

/** A valid value for a parameter, by its name (overridden per function below). */
const VALID: Record<string, (r: Rig) => unknown> = {
  dev: (r) => r.dev, mm: (r) => r.m.mm, m: (r) => r.m, machine: (r) => r.m, ctx: (r) => r.m,
  sgt: (r) => r.sgt, table: (r) => r.sgt, sgt_append: (r) => new SgAppendTable(r.m),
  sgl: (r) => r.sgt.sgl, sg: (r) => r.sgt.sgl, prv: (r) => r.sgt.sgl, chain_sg: (r) => r.sgt.sgl,
  nents: () => 4, prv_nents: () => 4, dma_nents: () => 4, num_ents: () => 4, nelems: () => 4, max_ents: () => 128,
  dir: () => DMA_TO_DEVICE, size: () => 4096, len: () => 4096, buflen: () => 4096, bytes: () => 4096, length: () => 4096,
  gfp: () => GFP_KERNEL, attrs: () => 0, flags: () => 0, page: (r) => r.pfn, pfn: (r) => r.pfn, offset: () => 0,
  skip: () => 0, pgoffset: () => 0, addr: (r) => r.addr, phys: (r) => r.pfn * 4096, paddr: (r) => r.pfn * 4096,
  cpu_addr: (r) => r.virt, pages: (r) => r.area.pages, n_pages: (r) => r.area.nrPages, max_segment: () => 65536,
  left_pages: () => 0, mask: () => DMA_BIT_MASK(64), n: () => 32, visit: () => () => {}, observer: () => () => {}, align: () => 8, boundary: () => 0, allocation: () => 4096, api: () => 'fuzz', vaddr: () => 0x1000, dma: () => 0x1000, json: () => ({ memory: '64M' }), alloc: () => new SimpleTablePageAllocator(), addressWidth: () => 48, lo: () => 0x1003, hi: () => 1, source: () => 'machine.json', zoneDmaLimit: () => 2 ** 24, fn: () => 'fuzz', arg: () => 'x',
  snap: (r) => r.m.snapshot(), init: () => () => ({}),
  name: () => 'fuzz', seed: () => 1, memory: () => '64M', ram: () => parseRam('64M'), maxPfn: () => 2 ** 20, specs: () => [{ start: 2 ** 40, size: 4096 }], nr: () => 3, l: () => 0,
  op: () => dmasim.REQ_OP_WRITE, maxVecs: () => 16, limits: () => dmasim.blankLimits(), lim: () => { const l = dmasim.blankLimits(); return l; },
  bio: (r) => rigBio(r), q: (r) => rigQueue(r), rq: (r) => rigRequest(r), sglist: (r) => r.sgt.sgl, nrPhysSegments: () => 1,
  bv: () => ({ page: 10, offset: 0, len: 4096 }), max_bytes: () => 65536, mark_dirty: () => false, user: (r) => r.m.user, inc: () => true, start: (r) => r.m.user.mmap(8192), nr_pages: () => 1, gup_flags: () => 0, npages: () => 1, make_dirty: () => false, state: (r) => { const st = new dmasim.DmaIovaState(); dmasim.dma_iova_try_alloc(r.dev, st, 0, 4096); return st; }, mapped_len: () => 0, v: () => 5, w: () => 1, buf: () => new Uint8Array(8), off: () => 0,
  iovad: (r) => domain(r).iovad, domain: (r) => domain(r).paging, iova: (r) => r.addr, cpu: () => 0, limit_pfn: () => 2 ** 20,
  size_aligned: () => true, flush_rcache: () => true, granule: () => 4096, start_pfn: () => 1, prot: () => IOMMU_READ,
  gather: () => new IommuIotlbGather(), out: () => new TranslateResult(), access: () => 'read', errno: () => 22,
  a: () => 1, b: () => 2, value: () => 50, h: (r) => runHistogram(r.area.pages), width: () => 40, findings: () => [], data: () => ({}),
  opts: () => ({}), config: () => ({}), cfg: () => ({}), min: () => 0, max: () => 100, to_buffer: () => true,
  piter: (r) => { const p = new SgPageIter(); __sg_page_iter_start(p, r.sgt.sgl, 4, 0); return p; },
  miter: (r) => { const it = new SgMappingIter(); sg_miter_start(it, r.sgt.sgl, 4, 0); return it; },
  pfn_lo: () => 100, pfn_hi: () => 110, count: () => 1, order: () => 0, type: () => 3, trace: (r) => r.m.trace,
  now: () => () => 0, enabled: () => false, pool: (r) => r.m.swiotlb, ledger: (r) => r.m.dma.ledger, iommu: (r) => r.m.iommu,
  coherent: () => true, chain: (r) => r.sgt.sgl, fallback: () => 'silent',
  owner: () => 'pages', virt: (r) => r.virt, dst: () => new Uint8Array(4096), dstOff: () => 0, src: () => new Uint8Array(4096),
  srcOff: () => 0, area: (r) => r.m.mm.vmalloc(8192), driver: () => ({ name: 'fuzz2', probe() {} }),
  segments: (r) => [{ addr: r.addr, length: 512 }], message: () => 'fuzz', site: () => 'fuzz', level: () => 'info',
  listener: () => () => {}, kind: () => 'page', rule: () => ({ nth: 1000 }), delayNs: () => 1000, fire: () => () => {},
};

/** A freed or disposed object of the parameter's kind: a freed table, its entries, an unbound device. */
const STALE: Record<string, (r: Rig) => unknown> = {
  sgt: (r) => freedTable(r), table: (r) => freedTable(r), sgl: (r) => freedTable(r).sgl ?? freedSgl.get(r), sg: (r) => freedSgl.get(r) ?? (freedTable(r), freedSgl.get(r)),
  dev: (r) => { const d = r.m.pci.addDevice({ name: `unbound${Math.random()}`, dmaMask: 64 }); return d; },
};
const freedSgl = new WeakMap<Rig, unknown>();
function freedTable(r: Rig): SgTable {
  const t = new SgTable(r.m);
  sg_alloc_table_from_pages_segment(t, [...r.area.pages].reverse(), r.area.nrPages, 0, r.area.size, 65536, GFP_KERNEL);
  freedSgl.set(r, t.sgl);
  sg_free_table(t);
  return t;
}

/** Per-function overrides where a name means something else. */
const FTRACE_LINE = '     kworker/0:1-42      [000] d..1.   100.000001: dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1000000 attrs=';
const ftraceEvent = () => (dmasim.parseFtraceLine(FTRACE_LINE, 1) as { event: unknown }).event;
/** A replayTrace result with a replay machine, made once (formatReplaySummary and replayHtml take one). */
let replayed: unknown = null;
const replayResult = () => replayed;
async function prepareReplayResult(): Promise<void> {
  replayed ??= await dmasim.replayTrace((async function* () { yield FTRACE_LINE; })(), { iommu: 'strict' });
}
const OVERRIDE: Record<string, Record<string, (r: Rig) => unknown>> = {
  parseFtraceLine: { text: () => FTRACE_LINE, lineNo: () => 1 },
  auditMmSince: { base: (r) => { r.m.snapshot(); return dmasim.mmAuditBase(r.m.mm); } },
  parseFtrace: { source: () => (async function* () { yield FTRACE_LINE; })(), options: () => ({}) },
  formatFtraceEvent: { ev: ftraceEvent }, formatFtraceLine: { ev: ftraceEvent },
  checkTrace: { events: () => [ftraceEvent()] }, 'traceChecker.add': { ev: ftraceEvent },
  toFtraceEvent: { e: () => ({ t: 0, kind: 'map', name: 'dma_map_phys', actor: '0000:01:00.0', args: { phys: 4096, size: 64, dir: 1, attrs: 0, addr: 4096 } }), line: () => 1 },
  traceFtrace: { machine: () => new dmasim.Machine({ memory: '64M', trace: true }) },
  replayTrace: { source: () => (async function* () { yield FTRACE_LINE; })(), opts: () => ({ replay: true }) },
  'traceReplayer.add': { ev: ftraceEvent, flagged: () => false }, 'traceScanner.add': { ev: ftraceEvent },
  'new TraceReplayer': { machine: () => new dmasim.Machine({ memory: '64M' }), notes: () => [], opts: () => ({}) },
  claimPages: { machine: () => new dmasim.Machine({ memory: '64M' }), pages: () => new dmasim.PageSet() },
  replayMachineConfig: { scan: () => null, opts: () => ({ replay: true }) },
  formatReplaySummary: { r: replayResult, file: () => 'trace.txt', shown: () => 10 }, replayHtml: { r: replayResult, file: () => 'trace.txt' },
  'pageSet.addRange': { phys: () => 4096, size: () => 4096 },
  sg_copy_buffer: { buf: () => new Uint8Array(4096) }, sg_copy_from_buffer: { buf: () => new Uint8Array(4096) },
  sg_copy_to_buffer: { buf: () => new Uint8Array(4096) }, sg_pcopy_from_buffer: { buf: () => new Uint8Array(4096) },
  sg_pcopy_to_buffer: { buf: () => new Uint8Array(4096) }, sg_init_one: { buf: (r) => r.virt }, sg_set_buf: { buf: (r) => r.virt },
  dma_free_coherent: { buf: (r) => rigCoherent(r), size: () => 8192 }, dma_free_attrs: { buf: (r) => rigCoherent(r), size: () => 8192 },
  dmam_free_coherent: { buf: (r) => rigCoherent(r), size: () => 8192 },
  sg_chain: { prv_nents: () => 2 },
  dma_free_pages: { page: (r) => rigPages(r).page, dma_handle: (r) => rigPages(r).dma_handle, dir: () => DMA_TO_DEVICE },
  dma_free_noncoherent: { vaddr: (r) => r.m.mm.phys_to_virt(rigPages(r).page * 4096), dma_handle: (r) => rigPages(r).dma_handle, dir: () => DMA_TO_DEVICE },
  dma_free_noncontiguous: { sgt: (r) => rigNoncontig(r) }, dma_vmap_noncontiguous: { sgt: (r) => rigNoncontig(r) },
  'mm.vunmap': { addr: (r) => r.m.mm.vmap([r.pfn], 1)!.addr },
  unpin_user_page: { page: (r) => rigPinned(r) }, unpin_user_pages: { pages: (r) => [rigPinned(r)] },
  unpin_user_pages_dirty_lock: { pages: (r) => [rigPinned(r)] }, unpin_user_page_range_dirty_lock: { page: (r) => rigPinned(r) },
  'mm.unpin': { pfn: (r) => rigPinned(r) }, pin_user_pages_fast: { pages: () => [] }, account_locked_vm: { pages: () => 4 },
  blk_rq_map_sg: { sglistOfOldForm: () => undefined },
  leBytes: { bytes: () => 4 }, leValue: { bytes: () => 4, where: () => '0x0' },
  GENMASK_ULL: { h: () => 7 }, and64: { mask: () => 0xfff }, getLe: { bytes: () => 4 }, putLe: { bytes: () => 4 },
  iommu_map_sg: { sg: (r) => [{ phys: r.pfn * 4096, length: 4096 }], nents: () => 1, iova: () => 0x40000000 },
  iommu_pgsize: { count: () => ({ value: 0 }) },
  iommuDmaOps: { observer: () => ({}) },
  dma_pool_alloc: { pool: (r) => dmasim.dma_pool_create('fuzz', r.dev, 64, 8, 0) },
  dma_pool_zalloc: { pool: (r) => dmasim.dma_pool_create('fuzz', r.dev, 64, 8, 0) },
  dma_pool_free: { pool: (r) => dmasim.dma_pool_create('fuzz', r.dev, 64, 8, 0) },
  dma_pool_destroy: { pool: (r) => dmasim.dma_pool_create('fuzz', r.dev, 64, 8, 0) },
  freeCoherentAs: { buf: (r) => dmasim.dma_alloc_coherent(r.dev, 4096, GFP_KERNEL) },
  'new Machine': { opts: () => ({ memory: '64M' }) }, 'new Mm': { opts: () => ({ memory: '64M' }) },
  'mm.adjustAllocated': { pages: () => 0 }, 'mm.kfree': { addr: (r) => r.virt }, 'mm.free_pages_exact': { virt: (r) => r.m.mm.alloc_pages_exact(8192), size: () => 8192 },
  'pci.addDevice': { opts: () => ({ name: `fuzz-${Math.random()}` }) }, 'pci.device': { name: () => '0000:01:00.0' },
  'pci.bind': { dev: (r) => r.m.pci.addDevice({ name: `fuzz-${Math.random()}` }) },
  'dev.dma.write': { bytes: () => new Uint8Array(64) }, 'area.write': { bytes: () => new Uint8Array(64) },
  'iommu.attachDevice': { domain: (r) => r.m.iommu!.allocDomain(1) }, 'iommu.detachDevice': { domain: (r) => r.m.iommu!.domainOf(r.dev) },
  'iommu.freeDomain': { domain: (r) => r.m.iommu!.allocDomain(1) }, 'swiotlb.areaState': { a: () => 0 }, 'dev.dma.writeSegments': { bytes: () => new Uint8Array(512) },
  __free_iova: { iova: (r) => freshIova(r) }, iova_dma_addr: { iova: (r) => freshIova(r) }, iova_size: { iova: (r) => freshIova(r) },
  buildMachine: { config: () => ({ memory: '64M' }), beforeDevices: () => () => {} }, preset: { name: () => 'laptop-nvme-vtd' },
  dma_direct_free: { buf: (r) => dmasim.dma_direct_alloc(r.dev, r.m.mm, 8192, GFP_KERNEL), size: () => 8192 },
  dma_set_min_align_mask: { mask: () => 0xfff }, sg_free_append_table: { table: (r) => new SgAppendTable(r.m) },
  swiotlbBouncer: { opts: () => ({ force: false, cpu: () => 0 }) },
  dma_unmap_sg: { sgl: (r) => mapSg(r) }, dma_unmap_sg_attrs: { sgl: (r) => mapSg(r) }, dma_sync_sg_for_cpu: { sgl: (r) => mapSg(r) },
  dma_sync_sg_for_device: { sgl: (r) => mapSg(r) },
};

function freshIova(r: Rig): unknown {
  return dmasim.alloc_iova(domain(r).iovad!, 1, 2 ** 20, true);
}

const coherentOf = new WeakMap<Rig, unknown>();
function rigCoherent(r: Rig): unknown {
  let b = coherentOf.get(r);
  if (b === undefined) { b = dmasim.dma_alloc_coherent(r.dev, 8192, GFP_KERNEL); coherentOf.set(r, b); }
  return b;
}
const pagesOf = new WeakMap<Rig, { page: number; dma_handle: number }>();
function rigPages(r: Rig): { page: number; dma_handle: number } {
  let p = pagesOf.get(r);
  if (p === undefined) { p = dmasim.dma_alloc_pages(r.dev, 4096, DMA_TO_DEVICE, GFP_KERNEL)!; pagesOf.set(r, p); }
  return p;
}
const noncontigOf = new WeakMap<Rig, unknown>();
function rigNoncontig(r: Rig): unknown {
  let t = noncontigOf.get(r);
  if (t === undefined) { t = dmasim.dma_alloc_noncontiguous(r.dev, 4096, DMA_TO_DEVICE, GFP_KERNEL, 0); noncontigOf.set(r, t); }
  return t;
}
const pinnedOf = new WeakMap<Rig, number>();
/** A page of the rig's user space, pinned once (each unpin call under test is a fresh rig). */
function rigPinned(r: Rig): number {
  let p = pinnedOf.get(r);
  if (p === undefined) {
    const pages: number[] = [];
    dmasim.pin_user_pages_fast(r.m.user, r.m.user.mmap(4096), 1, 0, pages);
    p = pages[0] as number;
    pinnedOf.set(r, p);
  }
  return p;
}
function rigQueue(r: Rig): dmasim.RequestQueue {
  return dmasim.blk_alloc_queue(r.m, dmasim.blankLimits()) as dmasim.RequestQueue;
}
function rigBio(r: Rig): dmasim.Bio {
  const bio = new dmasim.Bio(r.m, dmasim.REQ_OP_WRITE);
  dmasim.bio_add_page(bio, r.pfn, 4096, 0);
  return bio;
}
function rigRequest(r: Rig): dmasim.Request {
  return (dmasim.blk_submit_bio(rigQueue(r), rigBio(r)) as dmasim.Request[])[0] as dmasim.Request;
}
function mapSg(r: Rig): unknown {
  dmasim.dma_map_sgtable(r.dev, r.sgt, DMA_TO_DEVICE, 0);
  return r.sgt.sgl;
}

/**
 * Bugs planted for the test that checks this driver (FUZZ_PLANT=1): a TypeError from an unchecked
 * pointer, an EINVAL that names nothing, a page taken before a throw, and a page left without owner.
 */
const PLANTED: Array<[string, Function]> = [
  ['planted_typeerror', function planted_typeerror(dev: Device) { return dev.name.length; }],
  ['planted_unnamed', function planted_unnamed(size: number) { if (size !== 4096) throw new KernelError(22, 'planted_unnamed', 'bad size'); }],
  ['planted_state', function planted_state(mm: Machine['mm'], size: number) { mm.alloc_pages(GFP_KERNEL, 0); if (size !== 4096) throw new KernelError(22, 'planted_state', 'bad size', 'size'); }],
  ['planted_corrupt', function planted_corrupt(mm: Machine['mm'], size: number) {
    if (size !== 4096 && mm instanceof dmasim.Mm) { const pfn = mm.alloc_pages(GFP_KERNEL, 0) as number; mm.meta.owner[pfn] = 0; }
  }],
];

/** Functions the fuzz does not call, and why. */
const SKIP: Record<string, string> = {
  setRootLogger: 'replaces the process logger (checked by its own test)',
  oops: 'raises a KernelBug by design',
  defaultContext: 'no parameters', rootLogger: 'no parameters', iova_rcache_range: 'no parameters',
  checkInt: 'a validator: throws EINVAL naming the caller\'s argument by design', checkU32: 'a validator', checkObject: 'a validator',
  checkInstance: 'a validator', checkFunction: 'a validator', checkContext: 'a validator', notInstance: 'builds a validator\'s error', sg_check_walk: 'a validator: KernelBug by design',
  'new SwiotlbPool': 'built by the Machine from its swiotlb option (fuzzed there)', 'new PagingDomain': 'built by Iommu.allocDomain (fuzzed there)',
};

/** The kinds of garbage, per parameter. */
function garbage(name: string, other: Rig): Array<[string, unknown]> {
  const g: Array<[string, unknown]> = [
    ['NaN', NaN], ['-1', -1], ['1.5', 1.5], ['2^53', 2 ** 53], ['"12"', '12'], ['null', null], ['undefined', undefined], ['{}', {}],
  ];
  const foreign = VALID[name];
  if (foreign !== undefined) {
    const v = foreign(other);
    if (typeof v === 'object' && v !== null) g.push(['another machine\'s', v]);
  }
  const stale = STALE[name];
  if (stale !== undefined) g.push(['freed or unbound', stale(other)]);
  return g;
}

/** A class's constructor parameters, or null when it declares none of its own (nothing to fuzz). */
function ctorParams(cls: Function): string[] | null {
  const src = Function.prototype.toString.call(cls);
  const m = /\bconstructor\s*\(([^)]*)\)/.exec(src);
  if (m === null) return null;
  const names = (m[1] as string).split(',').map((p) => p.trim().replace(/=.*$/, '').replace(/^\.\.\./, '').trim()).filter((p) => p !== '');
  return names.length === 0 ? null : names;
}

function params(fn: Function): string[] {
  const src = Function.prototype.toString.call(fn);
  const m = /^[^(]*\(([^)]*)\)/.exec(src);
  if (m === null) return [];
  return (m[1] as string).split(',').map((p) => p.trim().replace(/=.*$/, '').replace(/^\.\.\./, '').trim()).filter((p) => p !== '');
}

/** What must not change when a call throws. */
function fingerprint(r: Rig): string {
  const m = r.m;
  return JSON.stringify([m.mm.freePages, m.mm.allocatedPages, m.dma.ledger.entries().length, r.sgt.sgl?.arena.liveSlots, m.iommu?.tablePagesInUse,
    r.dev.devres.size, r.dev.isBound, m.dmaDebug?.entryCount()]);
}

function out(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

interface Case { readonly name: string; readonly fn: Function; readonly param: number; readonly names: string[]; readonly what: string }

/**
 * The objects whose methods are fuzzed too (a method is called on the object of a fresh rig, so
 * `fn` here is a function of the rig returning the bound method).
 */
const INSTANCES: Record<string, (r: Rig) => object | null> = {
  'mm': (r) => r.m.mm, 'pci': (r) => r.m.pci, 'dev.dma': (r) => r.dev.dma, 'iommu': (r) => r.m.iommu, 'klog': (r) => r.m.klog,
  'faults': (r) => r.m.faults, 'clock': (r) => r.m.clock, 'area': (r) => r.area, 'ledger': (r) => r.m.dma.ledger,
  'swiotlb': (r) => r.m.swiotlb, 'dmaDebug': (r) => r.m.dmaDebug, 'machine': (r) => r.m, 'devres': (r) => r.dev.devres,
};

/** Methods not called, and why. */
const SKIP_METHOD: Record<string, string> = {
  'clock.advance': 'runs timers (checked by its own tests)',
  'mm.adjustAllocated': '@internal counter the fragmenter moves; any change desynchronises it from the pages by design',
  'ledger.mapSingle': '@internal fast lane the DMA API records into after its own argument checks (hot path: no second check)',
  'ledger.unmapSingle': '@internal fast lane the DMA API releases after its own argument checks (hot path: no second check)',
};

function methodNames(o: object): string[] {
  const out: string[] = [];
  for (let p = Object.getPrototypeOf(o); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) {
      const d = Object.getOwnPropertyDescriptor(p, k);
      // `_name` methods are TypeScript-private (the snapshot rule keeps state out of #private fields).
      if (k === 'constructor' || k.startsWith('_') || d === undefined || typeof d.value !== 'function' || out.includes(k)) continue;
      out.push(k);
    }
  }
  return out;
}

/** Build a function's valid arguments on `r`. */
function validArgs(name: string, names: string[], r: Rig): unknown[] {
  return names.map((p) => (OVERRIDE[name]?.[p] ?? VALID[p] as (r: Rig) => unknown)(r));
}

function drain(res: unknown): void {
  // Generators do their work when drained.
  if (res !== null && typeof res === 'object' && typeof (res as Iterator<unknown>).next === 'function' && Symbol.iterator in res) {
    let n = 0;
    for (const _ of res as Iterable<unknown>) if (++n > 1e5) break;
  }
}

/**
 * Does the all-valid call leave the machine auditing clean? Raw layers (alloc_iova, iommu_unmap on
 * dma-iommu's IOVAs) legitimately leave state the DMA-level audit calls a leak; for those only the
 * error kinds and the no-change-on-throw rule are judged.
 */
const cleanControl = new Map<string, boolean | string>();
/** true: clean; false: the valid call leaves audit findings; a string: the valid call threw that. */
function control(name: string, fn: Function, names: string[]): boolean | string {
  let clean = cleanControl.get(name);
  if (clean === undefined) {
    const r = rig();
    try {
      drain(invoke({ fn }, r, validArgs(name, names, r)));
      r.m.clock.advance(20e6);
      clean = r.m.audit().length === 0;
    } catch (e) {
      clean = `${(e as Error).name}: ${(e as Error).message}`;
    }
    cleanControl.set(name, clean);
  }
  return clean;
}

function cases(): { list: Case[]; skipped: Array<[string, string]> } {
  const list: Case[] = [];
  const skipped: Array<[string, string]> = [];
  const probe = rig();
  // FUZZ_PLANT=1: the planted bugs alone (the test of this driver).
  const exports: Array<[string, unknown]> = process.env['FUZZ_PLANT'] === '1' ? [...PLANTED] : Object.entries(dmasim);
  for (const [name, v] of exports.sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (typeof v !== 'function') continue;
    if (/^class\b/.test(Function.prototype.toString.call(v))) {
      // A class: its constructor, called with `new`.
      const ctorName = `new ${name}`;
      if (SKIP[ctorName] !== undefined) { skipped.push([ctorName, SKIP[ctorName] as string]); continue; }
      const names = ctorParams(v);
      if (names === null) continue;
      const missing = names.filter((p) => OVERRIDE[ctorName]?.[p] === undefined && VALID[p] === undefined);
      if (missing.length > 0) { skipped.push([ctorName, `no valid value for ${missing.join(', ')}`]); continue; }
      const C = v as new (...a: unknown[]) => unknown;
      const fn = function (...a: unknown[]) { return new C(...a); };
      for (let i = 0; i < names.length; i++) {
        for (const [what] of garbage(names[i] as string, probe)) list.push({ name: ctorName, fn, param: i, names, what });
      }
      continue;
    }
    if (SKIP[name] !== undefined) { skipped.push([name, SKIP[name] as string]); continue; }
    const names = params(v);
    const missing = names.filter((p) => OVERRIDE[name]?.[p] === undefined && VALID[p] === undefined);
    if (missing.length > 0) { skipped.push([name, `no valid value for ${missing.join(', ')}`]); continue; }
    for (let i = 0; i < names.length; i++) {
      for (const [what] of garbage(names[i] as string, probe)) list.push({ name, fn: v, param: i, names, what });
    }
  }
  for (const [iname, get] of Object.entries(INSTANCES)) {
    const inst = get(probe);
    if (inst === null) continue;
    for (const meth of methodNames(inst)) {
      const name = `${iname}.${meth}`;
      if (SKIP_METHOD[name] !== undefined) { skipped.push([name, SKIP_METHOD[name] as string]); continue; }
      const names = params((inst as Record<string, Function>)[meth] as Function);
      const missing = names.filter((p) => OVERRIDE[name]?.[p] === undefined && VALID[p] === undefined);
      if (missing.length > 0) { skipped.push([name, `no valid value for ${missing.join(', ')}`]); continue; }
      // A method case calls the method of the object on the call's own rig.
      const fn = Object.assign(function (this: unknown, ...a: unknown[]) { return a; }, { method: [iname, meth] as const });
      for (let i = 0; i < names.length; i++) {
        for (const [what] of garbage(names[i] as string, probe)) list.push({ name, fn, param: i, names, what });
      }
    }
  }
  return { list, skipped };
}

/** Call a case's function on rig `r` (a method: on r's own object). */
function invoke(c: { fn: Function }, r: Rig, argv: unknown[]): unknown {
  const m = (c.fn as { method?: readonly [string, string] }).method;
  if (m === undefined) return c.fn(...argv);
  const o = (INSTANCES[m[0]] as (r: Rig) => object | null)(r) as Record<string, Function>;
  return (o[m[1]] as Function).apply(o, argv);
}

function run(): void {
  const args = process.argv.slice(2);
  const from = Number(args[args.indexOf('--from') + 1] ?? 0) || 0;
  const shard = args.includes('--shard') ? (args[args.indexOf('--shard') + 1] as string).split('/').map(Number) : [0, 1];
  const { list, skipped } = cases();
  if (from === 0 && shard[0] === 0) for (const [name, why] of skipped) out({ skip: name, why });
  for (let i = from; i < list.length; i++) {
    if (i % (shard[1] as number) !== shard[0]) continue;
    const c = list[i] as Case;
    const pname = c.names[c.param] as string;
    // A function whose all-valid call fails tells nothing about garbage: listed, so it gets looked at.
    const ctl = control(c.name, c.fn, c.names);
    if (typeof ctl === 'string') {
      if (c.param === 0 && c.what === 'NaN') out({ skip: c.name, why: `the all-valid call throws ${ctl.slice(0, 200)}` });
      continue;
    }
    out({ at: i, name: `${c.name}(${pname}=${c.what})` });
    const r = rig();
    const other = rig();
    const bad = garbage(pname, other).find(([w]) => w === c.what)?.[1];
    let argv: unknown[];
    try {
      argv = validArgs(c.name, c.names, r);
      argv[c.param] = bad;
    } catch (e) {
      out({ skip: `${c.name}(${pname}=${c.what})`, why: `could not build valid arguments: ${(e as Error).message}` });
      continue;
    }
    const before = fingerprint(r);
    // Building valid arguments may itself leave audit findings (an IOVA to free): judge only new ones.
    const auditBefore = new Set(r.m.audit().map((v) => `[${v.check}] ${v.message}`));
    let verdict: string | null = null;
    try {
      drain(invoke(c, r, argv));
    } catch (e) {
      if (e instanceof KernelError) {
        if (e.errno === 22 && e.arg === undefined) verdict = `EINVAL without naming the argument: ${e.message}`;
      } else if (!(e instanceof KernelBug)) {
        verdict = `${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`;
      }
      if (verdict === null && fingerprint(r) !== before) verdict = `state changed although it threw ${(e as Error).name}: ${before} -> ${fingerprint(r)}`;
    }
    if (verdict === null && control(c.name, c.fn, c.names) === true) {
      let audit: string[] = [];
      try {
        r.m.clock.advance(20e6);
        audit = r.m.audit().map((v) => `[${v.check}] ${v.message}`).filter((v) => !auditBefore.has(v));
      } catch (e) {
        audit = [`audit threw ${(e as Error).name}: ${(e as Error).message}`];
      }
      if (audit.length > 0) verdict = `audit: ${audit.slice(0, 3).join('; ')}`;
    }
    if (verdict !== null) out({ fail: `${c.name}(${pname}=${c.what})`, why: verdict.slice(0, 400) });
  }
  out({ done: list.length });
}

await prepareReplayResult();
run();
