/**
 * @module sim/machine
 * The composition root: one Machine is one world (memory, kernel log, fault injection, clock, RNG).
 * Two machines in one process share nothing; the same seed and config give the same results.
 */
import { createServices, type KernelContext } from '../core/context.ts';
import type { PhysMemory } from '../core/sparse-memory.ts';
import type { Clock } from '../core/clock.ts';
import type { FaultInjector } from '../core/fault.ts';
import type { KernelLog } from '../core/kernel-log.ts';
import { Rng } from '../core/rng.ts';
import type { SlotArena } from '../scatterlist/slots.ts';
import { createTrace, type Trace } from '../core/trace.ts';
import type { Size } from '../core/size.ts';
import type { Logger } from 'pino';
import { fragment, type FragmentOptions, type FragmentResult } from '../mm/fragment.ts';
import type { DeviceMemorySpec, RamRangeSpec } from '../mm/layout.ts';
import { Mm } from '../mm/mm.ts';
import { UserMm } from '../mm/user.ts';
import { auditMm, auditMmSince, mmAuditBase } from '../mm/audit.ts';
import { swiotlbAudit } from '../dma/swiotlb/audit.ts';
import { Auditor, type AuditViolation } from './audit.ts';
import { auditDmaDebugVsMappings, auditStaleSwiotlbFlag } from './audit-dma.ts';
import { Bus, PCI_DMA_DEFAULTS, type BusHost } from '../device/bus.ts';
import type { Device } from '../device/device.ts';
import { directOps } from '../dma/direct/direct.ts';
import { initDmaSystem, type DmaSystem } from '../dma/api/ops.ts';
import { dmaDirectSupported } from '../dma/api/params.ts';
import { swiotlbBouncer } from '../dma/swiotlb/bouncer.ts';
import { attachDmaDebug } from '../dma/debug/hooks.ts';
import { Iommu, type IommuOptions } from '../iommu/iommu.ts';
import { iommuDmaOps } from '../dma/iommu/iommu-dma.ts';
import { iommuTranslator, type IommuTranslator } from '../dma/iommu/translator.ts';
import { auditIommu } from '../iommu/audit.ts';
import { ARCH_ARM64, ARCH_X86_64, type DmaDebug, type DmaDebugOptions } from '../dma/debug/index.ts';
import { SwiotlbPool } from '../dma/swiotlb/pool.ts';
import { parseSwiotlbParam, placeSwiotlb, swiotlbBootGeometry } from '../dma/swiotlb/boot.ts';
import { IO_TLB_SIZE } from '../dma/swiotlb/constants.ts';
import { checkInt } from '../core/args.ts';
import { parseSize } from '../core/size.ts';
import { EINVAL } from '../core/errno.ts';
import { pushBounded } from '../core/bounded.ts';
import { KernelError } from '../core/errors.ts';
import { checkMachineOptions } from './machine-options.ts';
import { sharedSet } from '../core/shared-registry.ts';
import { ARM64_ZONE_DMA_LIMIT, PAGE_SIZE, ZONE_DMA32_LIMIT, ZONE_DMA_LIMIT } from '../mm/constants.ts';
import { cpuOwnershipChecker, deviceAccessChecker, type AddrRange } from '../dma/ledger/index.ts';
import { markShared } from '../core/snapshot.ts';
import { MachineSnapshot } from './snapshot.ts';

/** How to build a machine. */
export interface MachineOptions {
  /** RAM: a size from address 0 (`'16G'`) or explicit ranges with holes between them. */
  readonly memory: Size | readonly RamRangeSpec[];
  /**
   * Device memory: physical ranges that are not RAM but answer bus accesses (PCI BARs for
   * peer-to-peer DMA through `dma_map_resource`, doorbells), e.g.
   * `[{ start: 2 ** 46, size: '256M', name: 'gpu-bar0' }]`. Anywhere below 2^52 outside RAM.
   */
  readonly deviceMemory?: readonly DeviceMemorySpec[];
  /** Seed for every random choice. Default 1. */
  readonly seed?: number;
  /** Name used in logs. Default `m<N>`. */
  readonly name?: string;
  /** Simulated CPUs (per-CPU caches, the current CPU of a call). Default 2. */
  readonly cpus?: number;
  /** Boot-time reservation at the bottom of RAM. Default 1 MiB. */
  readonly lowReserve?: Size;
  /** Fragment free memory right after boot. */
  readonly fragment?: FragmentOptions;
  /**
   * The swiotlb bounce pool, placed below 4 GiB at boot. Default: 64 MiB when RAM reaches above
   * 4 GiB (as x86's pci_swiotlb_detect), none otherwise; `force` bounces every streaming mapping
   * (swiotlb=force, confidential guests). `false` for none. Areas default to the CPU count rounded
   * up to a power of two (`area num N.`). A string is the kernel's `swiotlb=` parameter,
   * `'<slots>[,<areas>][,force|noforce]'`, with the kernel's rounding and messages.
   */
  readonly swiotlb?: false | { readonly size?: Size; readonly force?: boolean; readonly areas?: number; readonly at?: Size } | string;
  /**
   * The architecture: 'x86_64' (default: cache-coherent DMA, dma-debug's cache-line overlap check
   * silent) or 'arm64' (128-byte cache lines: the overlap check is active; devices are
   * non-coherent unless they say otherwise).
   */
  readonly arch?: 'x86_64' | 'arm64';
  /**
   * DMA-API debugging (CONFIG_DMA_API_DEBUG): on by default; `false` for off, or options
   * (`{ arch: ARCH_ARM64 }` for 128-byte cache lines, `driverFilter`, `entries`, ...).
   */
  readonly dmaDebug?: boolean | DmaDebugOptions;
  /**
   * An IOMMU in front of the devices: `{ mode: 'lazy' | 'strict' | 'passthrough', addressWidth,
   * granule, iotlbSize, singleQueue, faultLogSize }`. Default: none.
   */
  readonly iommu?: false | IommuOptions;
  /** Record an event trace (maps, unmaps, syncs, flushes, faults, WARNs, injected failures). Default off. */
  readonly trace?: boolean;
  /**
   * Check every device access against the device's live mappings and every CPU access against
   * DMA ownership (findings in `machine.dma.ledger.findings`). Default on; `false` for long
   * simulations that do not need them (the ledger of live mappings stays on either way).
   */
  readonly accessChecks?: boolean;
}

let machineCount = 0;

// INVARIANT: creationObservers holds the callbacks registered by onMachineCreated and not yet
//   removed; each is told of every Machine constructed meanwhile (the CLI judges the machines a
//   scenario made). It holds no machine. It lives on globalThis under a registered symbol so that
//   every copy of dmasim in the process shares it (a scenario importing another copy still has
//   its machines seen; see judgeMachine in findings.ts).
const creationObservers: Set<(m: Machine) => void> = sharedSet('dmasim.machineCreated');

/**
 * Be told of every Machine constructed from now on (until the returned function is called): how the
 * CLI finds the machines a scenario made, to check their findings.
 * @example const stop = onMachineCreated((m) => made.push(m)); await scenario(); stop();
 */
export function onMachineCreated(observer: (m: Machine) => void): () => void {
  if (typeof observer !== 'function') throw new KernelError(EINVAL, 'onMachineCreated', 'expected a function', 'observer');
  creationObservers.add(observer);
  return () => { creationObservers.delete(observer); };
}

// INVARIANT: traceDefaults holds one entry per caller of traceMachinesByDefault that has not
//   stopped; while it is non-empty, a Machine built without a `trace` option records its trace
//   (the CLI's --ftrace, --trace, --jsonl and --html on a scenario that builds its own machines).
//   Shared across copies of dmasim like creationObservers.
const traceDefaults: Set<object> = sharedSet('dmasim.traceByDefault') as Set<object>;

/**
 * Until the returned function is called, Machines built without a `trace` option record their
 * trace (`trace: false` still turns it off): how `dmasim run --ftrace` gets a trace from a
 * scenario that never asked for one.
 * @example const stop = traceMachinesByDefault(); await scenario(); stop();
 */
export function traceMachinesByDefault(): () => void {
  const token = {};
  traceDefaults.add(token);
  return () => { traceDefaults.delete(token); };
}

/**
 * A simulated machine.
 *
 * INVARIANT (snapshots): every piece of machine state lives in own properties, arrays, Maps, Sets
 * or typed arrays reachable from the Machine: no `#private` fields, WeakMaps or variables captured
 * by closures hold state that changes (closures may capture objects, which are restored in place).
 * test/sim/snapshot.test.ts replays random workloads after a restore to hold every layer to it.
 * @example
 * const m = new Machine({ memory: '16G', seed: 7, fragment: { level: 0.6 } });
 * const area = m.mm.vmalloc(64 * 2 ** 20);
 */
export class Machine implements KernelContext {
  readonly name: string;
  readonly seed: number;
  readonly cpus: number;
  readonly mm: Mm;
  readonly rng: Rng;
  readonly klog: KernelLog;
  readonly faults: FaultInjector;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Byte access to RAM (the memory model; holes are EFAULT). */
  /**
   * The user address space of the machine's process (current->mm), created on first use: mmap
   * buffers, touch them, pin them with pin_user_pages_fast for a driver.
   * @example const addr = machine.user.mmap(1 << 20); pin_user_pages_fast(machine.user, addr, 256, FOLL_WRITE, pages);
   */
  get user(): UserMm {
    return (this._user ??= new UserMm(this.mm));
  }
  private _user: UserMm | undefined;

  get memory(): PhysMemory {
    return this.mm;
  }
  /** The event trace (empty, and free, unless `trace: true`). */
  readonly trace: Trace;
  /** The architecture. */
  readonly arch: 'x86_64' | 'arm64';
  /** What the boot-time fragmentation did, if asked for. */
  readonly bootFragment: FragmentResult | undefined;
  /** The swiotlb pool, if any. */
  readonly swiotlb: SwiotlbPool | null;
  /** swiotlb=force: every streaming mapping bounces (confidential guests). */
  get swiotlbForce(): boolean {
    return this.dma.bouncer?.force ?? false;
  }
  /** The DMA state: backends, bouncer, debug hooks. */
  readonly dma: DmaSystem;
  /** The IOMMU, if the machine has one. */
  readonly iommu: Iommu | null;
  /** How devices behind the IOMMU reach memory, with the use-after-unmap reports. */
  readonly iommuTranslator: IommuTranslator | null;
  /**
   * What dma-iommu's scatterlist mappings did: entries in, segments out, and the extra physical
   * memory boundary padding exposed to devices (dma-iommu maps whatever follows the previous entry);
   * `paddedMaps` keeps the newest 1024.
   */
  readonly dmaStats = { sgMaps: 0, cpuEntries: 0, dmaSegments: 0, paddingBytes: 0, paddedMaps: [] as Array<{ device: string; iova: number; paddingBytes: number; time: number }> };
  /** Whether device and CPU accesses are checked against the ledger (MachineOptions.accessChecks). */
  readonly accessChecks: boolean;
  /** dma-debug, unless turned off. */
  readonly dmaDebug: DmaDebug | null;
  /** The consistency checks behind audit(). */
  readonly auditor = new Auditor();
  /** Simulated CPUs. */
  get nrCpus(): number {
    return this.cpus;
  }
  /** The CPU the current call runs on (per-CPU caches and swiotlb areas use it). */
  currentCpu = 0;
  /** The scatterlist slot arena (made on first use; declared here so every Machine has one shape). */
  sgArena: SlotArena | undefined = undefined;
  /** Every bus of the machine, in registration order (the bus registry: PCI, then platform). */
  readonly buses: readonly Bus[];
  /** The PCI bus. */
  readonly pci: Bus;
  /** The platform bus. */
  readonly platform: Bus;

  constructor(opts: MachineOptions) {
    if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'Machine', 'expected options ({ memory, ... })', 'opts');
    checkMachineOptions(opts);
    this.seed = opts.seed ?? 1;
    this.name = opts.name ?? `m${machineCount++}`;
    this.cpus = opts.cpus ?? 2;
    this.arch = opts.arch ?? 'x86_64';
    const ctx = createServices(this.name, this.seed);
    this.klog = ctx.klog;
    this.faults = ctx.faults;
    this.clock = ctx.clock;
    this.logger = markShared(ctx.logger);
    this.rng = new Rng(this.seed);
    this.mm = new Mm(this, {
      memory: opts.memory, zoneDmaLimit: this.arch === 'arm64' ? ARM64_ZONE_DMA_LIMIT : ZONE_DMA_LIMIT,
      ...(opts.lowReserve === undefined ? {} : { lowReserve: opts.lowReserve }),
      ...(opts.deviceMemory === undefined ? {} : { deviceMemory: opts.deviceMemory }),
    });
    this.dma = initDmaSystem(this, directOps(this.mm), (virt, size) => virtToPhysRanges(this.mm, virt, size), this.mm);
    this.accessChecks = opts.accessChecks ?? true;
    if (this.accessChecks) this.mm.onCpuAccess = cpuOwnershipChecker(this.dma.ledger, () => this.clock.now);
    this.trace = createTrace(() => this.clock.now, opts.trace ?? traceDefaults.size > 0, undefined, () => this.currentCpu);
    if (this.trace.enabled) {
      const tr = this.trace;
      this.dma.trace = tr;
      this.faults.onFault((kind, n) => tr.emit('inject', `failed ${kind} allocation #${n}`, 'faults', { kind, n }));
      this.klog.onMessage((msg) => { if (msg.kind === 'WARN') tr.emit('warn', msg.fn, 'kernel', { message: msg.message }); });
    }
    this.swiotlb = this._setupSwiotlb(opts.swiotlb);
    this.bootFragment = opts.fragment === undefined ? undefined : fragment(this.mm, { seed: this.seed, ...opts.fragment });
    let onUnbound: ((dev: Device) => void) | undefined;
    if (opts.dmaDebug === false) {
      this.dmaDebug = null;
    } else {
      const pool = this.swiotlb;
      const archOpts: DmaDebugOptions = { arch: this.arch === 'arm64' ? ARCH_ARM64 : ARCH_X86_64 };
      const att = attachDmaDebug(this, this.mm, { ...archOpts, ...(opts.dmaDebug === true || opts.dmaDebug === undefined ? {} : opts.dmaDebug) }, () => pool !== null && pool.is_swiotlb_active());
      this.dmaDebug = att.debug;
      this.dma.debug = att.hooks;
      onUnbound = att.onUnbound;
    }
    this.iommu = opts.iommu === undefined || opts.iommu === false ? null : new Iommu(this, this.mm, opts.iommu);
    this.iommuTranslator = this.iommu === null ? null : iommuTranslator(this.iommu);
    if (this.iommu !== null && this.trace.enabled) this.iommu.trace = this.trace;
    const iommu = this.iommu;
    const translator = this.iommuTranslator;
    const stats = this.dmaStats;
    const iommuOps = iommu === null ? null : iommuDmaOps(iommu, this.mm, {
      mapSg: (dev, r, entries, segments) => {
        stats.sgMaps++;
        stats.cpuEntries += entries;
        stats.dmaSegments += segments;
        stats.paddingBytes += r.paddingBytes;
        if (r.paddingBytes > 0) pushBounded(stats.paddedMaps, { device: dev.name, iova: r.iova, paddingBytes: r.paddingBytes, time: this.clock.now }, 1024);
      },
    });
    const ledger = this.dma.ledger;
    const host: BusHost = {
      ctx: this,
      memory: { ...this.mm.kernelMemory, answers: (phys, len) => this.mm.answers(phys, len), raw: this.mm.contents },
      notifyUnbound: (dev) => {
        ledger.deviceUnbound(dev);
        onUnbound?.(dev);
      },
      notifyNotBound: (dev) => ledger.deviceUnbound(dev),
      dmaSupported: (dev, mask) => (iommuOps !== null && dev.dma_ops === iommuOps) || dmaDirectSupported(this.mm, mask),
      deviceAdded: (dev, devOpts) => {
        if (this.accessChecks) dev.dma.checker = deviceAccessChecker(this.dma.ledger, dev, () => this.clock.now);
        if (this.trace.enabled) {
          const tr = this.trace;
          // `iommu`: a translation fault the IOMMU reports (report_iommu_fault, iommu:io_page_fault).
          dev.dma.onFault = (f) => tr.emit('fault', `DMA fault: ${f.reason}`, f.device, { iova: f.iova, length: f.length, access: f.access, iommu: iommu !== null && devOpts.iommu !== false, driver: dev.driver?.name ?? '' });
        }
        if (this.arch === 'arm64' && devOpts.coherent === undefined) dev.dma_coherent = false;
        if (iommu === null || translator === null || devOpts.iommu === false) return;
        iommu.probeDevice(dev, dev.untrusted, devOpts.iommuGroup);
        dev.dma.translator = translator;
        // iommu_setup_dma_ops: DMA domains use dma-iommu, identity domains dma-direct.
        if (iommuOps !== null && iommu.groupOf(dev)?.domain.isDma === true) dev.dma_ops = iommuOps;
      },
    };
    this.pci = new Bus('pci', host, PCI_DMA_DEFAULTS);
    this.platform = new Bus('platform', host);
    this.buses = [this.pci, this.platform];
    this.auditor.add({ name: 'mm', run: () => auditMm(this.mm) });
    if (this.swiotlb !== null) {
      const pool = this.swiotlb;
      this.auditor.add({ name: 'swiotlb', run: () => swiotlbAudit(pool) });
    }
    this.auditor.add({ name: 'devres', run: () => this._auditDevres() });
    if (this.iommu !== null) {
      const iommuRef = this.iommu;
      this.auditor.add({ name: 'iommu', run: () => auditIommu(iommuRef) });
      this.auditor.add({ name: 'sg swiotlb flag', run: () => auditStaleSwiotlbFlag(this) });
    }
    if (this.dmaDebug !== null) {
      const dbg = this.dmaDebug;
      this.auditor.add({ name: 'dma-debug', run: () => dbg.audit() });
      this.auditor.add({ name: 'dma-debug vs mappings', run: () => auditDmaDebugVsMappings(this) });
    }
    for (const observe of creationObservers) observe(this);
  }

  /**
   * Check every layer's accounting against the others: pages, swiotlb slots, devres of unbound
   * devices, and whatever later layers registered. Empty when the machine is sound.
   *
   * `since`: a snapshot taken with `{ audit: true }` that audited clean: the page allocator's
   * checks then look only at the pages whose metadata or buddy blocks changed since that snapshot
   * (or since its last restore), not at all of RAM; the result is the same. Any other snapshot
   * gives the full audit.
   * @example expect(machine.audit()).toEqual([])
   * @example
   * const snap = machine.snapshot({ audit: true });
   * for (const k of [1, 2, 3]) { machine.restore(snap); tryOne(k); expect(machine.audit({ since: snap })).toEqual([]); }
   */
  audit(opts: { readonly since?: MachineSnapshot } = {}): AuditViolation[] {
    if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'Machine.audit', 'expected options ({ since })', 'opts');
    for (const key of Object.keys(opts)) if (key !== 'since') throw new KernelError(EINVAL, 'Machine.audit', `unknown option ${key} (the one option is since)`, `opts.${key}`);
    const since = opts.since;
    if (since === undefined) return this.auditor.run();
    if (!(since instanceof MachineSnapshot)) throw new KernelError(EINVAL, 'Machine.audit', 'expected a snapshot from machine.snapshot()', 'opts.since');
    if (since.machine !== this) throw new KernelError(EINVAL, 'Machine.audit', `the snapshot belongs to machine ${(since.machine as Machine).name}, not ${this.name}`, 'opts.since');
    const base = since.auditBase;
    return base === null ? this.auditor.run() : this.auditor.run({ mm: () => auditMmSince(this.mm, base) });
  }

  /**
   * Capture the whole machine (every layer, every device and bound driver, and the objects in
   * `include`: driver state the machine does not reach) for {@link Machine.restore}. Memory contents
   * are shared copy-on-write, and metadata chunks unchanged since the last snapshot or restore are
   * shared too, so a snapshot costs what changed, not the machine's size (the first one copies the
   * metadata once). `audit: true` audits the machine at the capture so that
   * `audit({ since: snap })` can check only what changed (see {@link Machine.audit}).
   * @example
   * const snap = machine.snapshot();
   * const addr = dma_map_single(dev, buf, 4096, DMA_TO_DEVICE); // explore one way...
   * machine.restore(snap);                                    // ...and back, as often as you like
   */
  snapshot(opts: { readonly include?: readonly object[]; readonly audit?: boolean } = {}): MachineSnapshot {
    if (typeof opts !== 'object' || opts === null) throw new KernelError(EINVAL, 'Machine.snapshot', 'expected options ({ include, audit })', 'opts');
    for (const key of Object.keys(opts)) if (key !== 'include' && key !== 'audit') throw new KernelError(EINVAL, 'Machine.snapshot', `unknown option ${key} (include or audit)`, `opts.${key}`);
    const include = opts.include ?? [];
    if (!Array.isArray(include) || include.some((o) => typeof o !== 'object' || o === null)) {
      throw new KernelError(EINVAL, 'Machine.snapshot', 'expected an array of objects', 'opts.include');
    }
    if (opts.audit !== undefined && typeof opts.audit !== 'boolean') throw new KernelError(EINVAL, 'Machine.snapshot', `expected true or false, got ${String(opts.audit)}`, 'opts.audit');
    const snap = new MachineSnapshot(this, include, this.clock.now);
    // A full audit now makes the snapshot a base for audit({ since }) when it is clean.
    if (opts.audit === true && this.auditor.run().length === 0) snap.auditBase = mmAuditBase(this.mm);
    return snap;
  }

  /**
   * Put the machine back exactly as it was at `snap` (every object that existed then gets its state
   * back in place: references to devices, tables and buffers stay valid; objects made since drop out).
   * @throws KernelError EINVAL for a snapshot of another machine.
   * @example machine.restore(snap)
   */
  restore(snap: MachineSnapshot): void {
    if (!(snap instanceof MachineSnapshot)) throw new KernelError(EINVAL, 'Machine.restore', 'expected a snapshot from machine.snapshot()', 'snap');
    if (snap.machine !== this) throw new KernelError(EINVAL, 'Machine.restore', `the snapshot belongs to another machine (${(snap.machine as Machine).name}), not ${this.name}`, 'snap');
    snap.restoreGraph();
  }

  /**
   * A bus by name (bus_find_by_name), or undefined.
   * @example machine.bus('platform') === machine.platform // true
   */
  bus(name: string): Bus | undefined {
    return this.buses.find((b) => b.name === name);
  }

  /** Every device on every bus, bus by bus in registration order. */
  *devices(): Generator<Device, void, undefined> {
    for (const b of this.buses) yield* b.devices.values();
  }

  private _auditDevres(): string[] {
    const out: string[] = [];
    for (const dev of this.devices()) {
      if (!dev.isBound && dev.devres.size > 0) out.push(`${dev.name} is unbound but holds devres: ${dev.devres.names().join(', ')}`);
    }
    return out;
  }

  private _setupSwiotlb(cfg: MachineOptions['swiotlb']): SwiotlbPool | null {
    if (cfg === false) return null;
    const obj = typeof cfg === 'object' ? cfg : undefined;
    const geo = swiotlbBootGeometry({
      param: typeof cfg === 'string' ? parseSwiotlbParam(cfg) : null,
      ...(obj?.size === undefined ? {} : { sizeBytes: parseSize(obj.size, 'Machine', 'swiotlb.size') }),
      ...(obj?.areas === undefined ? {} : { areas: checkInt(obj.areas, 'Machine', 'swiotlb.areas', 0, 2 ** 16) }),
      force: obj?.force === true,
      cpus: this.cpus,
      // Options given ask for a pool; otherwise x86 sets one up when RAM reaches above 4 GiB.
      needed: obj !== undefined || this.mm.maxPfn * PAGE_SIZE > ZONE_DMA32_LIMIT,
      klog: this.klog,
    });
    if (geo === null) return null;
    const force = geo.force;
    let placed: { start: number; nslabs: number; nareas: number } | null;
    if (obj?.at !== undefined) {
      // A pool at a given address (a firmware reserved-memory region): it must be free RAM.
      const at = parseSize(obj.at, 'Machine', 'swiotlb.at');
      const bytes = geo.nslabs * IO_TLB_SIZE;
      if (!this.mm.memblockReserve(at, bytes, 'swiotlb')) {
        throw new KernelError(EINVAL, 'Machine', `[0x${at.toString(16)}, 0x${(at + bytes).toString(16)}) is not free, page-aligned RAM in one zone`, 'swiotlb.at');
      }
      placed = { start: at, nslabs: geo.nslabs, nareas: geo.nareas };
    } else {
      placed = placeSwiotlb(geo, (bytes) => this.mm.memblockAllocLow(bytes, ZONE_DMA32_LIMIT, 'swiotlb'), this.klog);
    }
    if (placed === null) return null;
    const { start } = placed;
    const size = placed.nslabs * IO_TLB_SIZE;
    const pool = new SwiotlbPool({ start, size, areas: placed.nareas, memory: this.mm.kernelMemory, klog: this.klog, faults: this.faults });
    const trace = this.trace;
    this.dma.bouncer = swiotlbBouncer(pool, {
      force, cpu: () => this.currentCpu,
      // swiotlb:swiotlb_bounced, with the tracepoint's fields (force prints as FORCE or NORMAL).
      ...(trace.enabled ? { onBounced: (dev: Device, devAddr: number, size: number) => trace.emit('bounce', 'swiotlb_bounced', dev.name, { dma_mask: dev.dma_mask ?? 0, dev_addr: devAddr, size, force: force ? 'FORCE' : 'NORMAL' }) } : {}),
    });
    return pool;
  }
}

/** The physical ranges behind a kernel virtual address: the direct map, or a vmalloc area's pages. */
function virtToPhysRanges(mm: Mm, virt: number, size: number): AddrRange[] {
  const out: AddrRange[] = [];
  mm.forEachVirtSpan(virt, size, 'virtToPhysRanges', (phys, _at, n) => {
    const last = out[out.length - 1];
    if (last !== undefined && last.end === phys) out[out.length - 1] = { start: last.start, end: phys + n };
    else out.push({ start: phys, end: phys + n });
  });
  return out;
}
