/**
 * @module iommu/iommu
 * The machine's IOMMU: one IOTLB shared by its domains, page-table pages from the machine's memory,
 * groups with default domains chosen by policy, a bounded fault log (with VT-d's overflow flag),
 * report_iommu_fault, and the record of recent unmaps that the use-after-unmap detector reads.
 */
import { TrackedArrays } from '../core/tracked-arrays.ts';
import { checkContext, checkFunction, checkObject } from '../core/args.ts';
import type { KernelContext } from '../core/context.ts';
import type { Trace } from '../core/trace.ts';
import { EBUSY, EINVAL, ENODEV, ENOSYS } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { GFP_KERNEL, __GFP_NOWARN } from '../mm/gfp.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import type { Mm } from '../mm/mm.ts';
import { FlushQueue } from './flush-queue.ts';
import { Iotlb, IOTLB_DEFAULT_CAPACITY } from './iotlb.ts';
import { IovaDomain, init_iova_domain, put_iova_domain } from './iova.ts';
import { free_iova_fast, iova_domain_init_rcaches } from './iova-rcache.ts';
import {
  IOMMU_DOMAIN_BLOCKED, IOMMU_DOMAIN_DMA, IOMMU_DOMAIN_DMA_FQ, IOMMU_DOMAIN_IDENTITY, IOMMU_DOMAIN_UNMANAGED, PagingDomain,
  __IOMMU_DOMAIN_DMA_API, __IOMMU_DOMAIN_PAGING,
} from './map-domain.ts';
import { IoPageTable } from './pgtable.ts';
import type { IoPgtableOps } from './pgtable-ops.ts';
import { pgtableGeometry } from './pgtable-geometry.ts';
import { POW2 } from '../core/bits.ts';
import { VtdPageTable } from './pgtable-vtd/table.ts';
import { vtdGeometry } from './pgtable-vtd/geometry.ts';
import type { TablePageAllocator } from './pgtable-alloc.ts';

/** The invalidation policy for DMA domains (iommu.strict / iommu.passthrough). */
export type IommuMode = 'strict' | 'lazy' | 'passthrough';

/**
 * The IO page-table format of the IOMMU's paging domains: `arm-lpae` (io-pgtable-arm's rules, the
 * default) or `vtd` (Intel VT-d second-stage tables, the PTEs bit for bit, generic_pt's rules).
 */
export type IommuPgtableFormat = 'arm-lpae' | 'vtd';

/** How to build the IOMMU. */
export interface IommuOptions {
  /** Default domain policy. Default 'lazy' (DMA_FQ). */
  readonly mode?: IommuMode;
  /** Input address width: 39, 48 (default) or 52 bits. */
  readonly addressWidth?: number;
  /** The page-table format: 'arm-lpae' (default) or 'vtd' (4 KiB granule; 39 or 48 bits). */
  readonly format?: IommuPgtableFormat;
  /** Smallest page size: 4096 (default), 16384 or 65536. */
  readonly granule?: number;
  /** IOTLB entries (QEMU VT-d: 1024). */
  readonly iotlbSize?: number;
  /** One shared flush queue of 32768 entries and 1 s (IOMMUs whose flushes trap, shadow_on_flush). */
  readonly singleQueue?: boolean;
  /** Fault records kept before the overflow flag is set. Default 256. */
  readonly faultLogSize?: number;
  /** iommu.forcedac: skip the PCI 32-bit-first IOVA policy. */
  readonly forcedac?: boolean;
  /**
   * Output (physical) address width of the page tables, 32..52 bits (the SMMU's OAS, VT-d's MGAW):
   * a leaf cannot point at or past 2^outputWidth. Default: arm-lpae 48, or 52 when the machine has
   * RAM or device memory past 2^48; vtd 52.
   */
  readonly outputWidth?: number;
}

/** One recorded translation fault. */
export interface IommuFaultRecord {
  readonly device: string;
  readonly iova: number;
  readonly access: 'read' | 'write';
  readonly reason: string;
  readonly time: number;
  readonly domain: number;
}

/** A recent unmap, kept so a later access through the range can be blamed on it. */
export interface UnmapRecord {
  readonly device: string;
  readonly domain: number;
  readonly iova: number;
  readonly size: number;
  readonly time: number;
  /** The DMA API call that unmapped it. */
  readonly via: string;
  /** Queued for a lazy flush (the IOTLB may still hold it). */
  readonly lazy: boolean;
}

/** IOMMU_FAULT_READ / IOMMU_FAULT_WRITE. */
export const IOMMU_FAULT_READ = 0;
export const IOMMU_FAULT_WRITE = 1;

/** A fault handler on an UNMANAGED domain (iommu_set_fault_handler). */
export type IommuFaultHandler = (domain: IommuDomain, device: string, iova: number, flags: number) => number;

/**
 * An IOMMU domain: its type, its page table (paging types), its IOVA allocator and flush queue
 * (DMA types).
 */
export class IommuDomain {
  readonly id: number;
  type: number;
  readonly paging: PagingDomain | null;
  readonly iovad: IovaDomain | null;
  readonly fq: FlushQueue | null;
  faultHandler: IommuFaultHandler | null = null;
  readonly iommu: Iommu;

  /** @internal Iommu.allocDomain builds domains */
  constructor(iommu: Iommu, id: number, type: number, paging: PagingDomain | null, iovad: IovaDomain | null, fq: FlushQueue | null) {
    this.iommu = iommu;
    this.id = id;
    this.type = type;
    this.paging = paging;
    this.iovad = iovad;
    this.fq = fq;
  }

  /** A DMA-API domain (DMA or DMA_FQ). */
  get isDma(): boolean {
    return (this.type & __IOMMU_DOMAIN_DMA_API) !== 0;
  }

  /** The name the kernel prints for the type. */
  get typeName(): string {
    return domainTypeName(this.type);
  }
}

/**
 * What the IOMMU knows a device by: the device object itself (a platform device and a PCI device may
 * share a name, never an object). A name string is accepted where it is unambiguous.
 */
export interface IommuClient {
  readonly name: string;
}

/** A device, or (when only one device behind this IOMMU has it) its name. */
export type IommuDeviceRef = IommuClient | string;

/** An IOMMU group: devices the IOMMU cannot tell apart, attached to one domain. */
export class IommuGroup {
  readonly id: number;
  readonly devices: string[] = [];
  readonly defaultDomain: IommuDomain;
  domain: IommuDomain;

  constructor(id: number, defaultDomain: IommuDomain) {
    this.id = id;
    this.defaultDomain = defaultDomain;
    this.domain = defaultDomain;
  }
}

/** The kernel's name for a domain type. */
export function domainTypeName(type: number): string {
  switch (type) {
    case IOMMU_DOMAIN_BLOCKED: return 'blocked';
    case IOMMU_DOMAIN_IDENTITY: return 'identity';
    case IOMMU_DOMAIN_UNMANAGED: return 'unmanaged';
    case IOMMU_DOMAIN_DMA: return 'DMA';
    case IOMMU_DOMAIN_DMA_FQ: return 'DMA-FQ';
    default: return `type ${type}`;
  }
}

/**
 * The IOMMU of one machine.
 * @example
 * const m = new Machine({ memory: '16G', iommu: { mode: 'lazy' } });
 * m.iommu?.groupOf(dev)?.domain.typeName // 'DMA-FQ'
 */
export class Iommu {
  readonly ctx: KernelContext;
  readonly mm: Mm;
  readonly mode: IommuMode;
  readonly addressWidth: number;
  /** Output (physical) address width of the page tables (see IommuOptions.outputWidth). */
  readonly outputWidth: number;
  /** The page-table format of its paging domains. */
  readonly format: IommuPgtableFormat;
  readonly granule: number;
  readonly iotlb: Iotlb;
  readonly singleQueue: boolean;
  readonly forcedac: boolean;
  readonly faultLogSize: number;
  // INVARIANT: faults.length <= faultLogSize; faultOverflow is set once a fault found the log full.
  readonly faults: IommuFaultRecord[] = [];
  faultOverflow = false;
  readonly groups: IommuGroup[] = [];
  readonly domains: IommuDomain[] = [];
  // INVARIANT: _groupOf maps every probed device object to its group; _byName maps each name to the
  //   groups of the devices probed under it (one entry unless two buses reuse a name).
  private readonly _groupOf = new Map<IommuClient, IommuGroup>();
  private readonly _byName = new Map<string, IommuGroup[]>();
  // INVARIANT: _devIommu holds, per device, what the DMA layer keeps in dev->iommu (made on first
  //   use by devIommu); a Map, so machine snapshots restore it.
  private readonly _devIommu = new Map<IommuClient, unknown>();
  // INVARIANT: the _u* arrays are a ring of the last UNMAP_HISTORY unmaps, one field per array
  //   (no object per unmap: it was garbage on every dma_unmap_*; map+unmap pair, standalone loop:
  //   559 -> 537 ns with checks, 424 -> 388 without); _unmapNext is where the next one goes,
  //   _unmapCount how many are held.
  //   Device names and unmap paths are kept as indices into _names (with strings there, a
  //   snapshot restore compared 8,192 array elements: a third of a failure point's restore on a
  //   1 GiB machine, bench/RESULTS.md, session 10).
  private readonly _uDevice = new Int32Array(UNMAP_HISTORY);
  private readonly _uVia = new Int32Array(UNMAP_HISTORY);
  // INVARIANT: _names[_nameIds.get(s)] === s for every string an unmap record names; _names[0] is ''.
  private readonly _names: string[] = [''];
  private readonly _nameIds = new Map<string, number>([['', 0]]);
  private _lastDevice = '';
  private _lastDeviceId = 0;
  private _lastVia = '';
  private _lastViaId = 0;
  private readonly _uDomain = new Float64Array(UNMAP_HISTORY);
  private readonly _uIova = new Float64Array(UNMAP_HISTORY);
  private readonly _uSize = new Float64Array(UNMAP_HISTORY);
  private readonly _uTime = new Float64Array(UNMAP_HISTORY);
  private readonly _uLazy = new Uint8Array(UNMAP_HISTORY);
  // The history's arrays, captured by snapshots copy on write: noteUnmap announces its slot.
  private readonly _uTracked = new TrackedArrays([this._uDevice, this._uVia, this._uDomain, this._uIova, this._uSize, this._uTime, this._uLazy]);
  private _unmapNext = 0;
  private _unmapCount = 0;
  // INVARIANT: _uDomainRecords[d] is the number of records of domain id d in the ring (0 past its
  //   end): unmapCovering answers at once for a domain with none (a misbehaving device, which
  //   never unmapped, scanned all 4,096 records at every fault: bench/RESULTS.md, session 10).
  private _uDomainRecords = new Int32Array(8);
  readonly tableAlloc: TablePageAllocator;
  /** The machine's event trace, if it records one. */
  trace: Trace | null = null;
  /** Pages the IOMMU took from the machine for page tables and not yet returned. */
  tablePagesInUse = 0;
  private _nextDomain = 1;
  /** A new page table of the IOMMU's format (chosen in the constructor). */
  private readonly _newPgtable: () => IoPgtableOps;

  constructor(ctx: KernelContext, mm: Mm, opts: IommuOptions = {}) {
    checkContext(ctx, 'Iommu', 'ctx');
    checkObject(opts, 'Iommu', 'opts');
    if (typeof mm !== 'object' || mm === null || typeof (mm as { alloc_pages?: unknown }).alloc_pages !== 'function') {
      throw new KernelError(EINVAL, 'Iommu', 'expected the machine\'s memory (an Mm)', 'mm');
    }
    this.ctx = ctx;
    this.mm = mm;
    this.mode = opts.mode ?? 'lazy';
    if (!['strict', 'lazy', 'passthrough'].includes(this.mode)) throw new KernelError(EINVAL, 'Iommu', `mode must be strict, lazy or passthrough, got ${String(this.mode)}`, 'mode');
    this.addressWidth = opts.addressWidth ?? 48;
    this.granule = opts.granule ?? 4096;
    this.format = opts.format ?? 'arm-lpae';
    // What the page tables must reach: the top of RAM or of device memory, whichever is higher.
    const physTop = Math.max(mm.maxPfn * PAGE_SIZE, ...(mm.deviceMemory ?? []).map((d) => d.end));
    this.outputWidth = opts.outputWidth ?? (this.format === 'vtd' || physTop > 2 ** 48 ? 52 : 48);
    if (!Number.isInteger(this.outputWidth) || this.outputWidth < 32 || this.outputWidth > 52) {
      throw new KernelError(EINVAL, 'Iommu', `outputWidth must be a whole number of bits in 32..52, got ${String(this.outputWidth)}`, 'outputWidth');
    }
    // The page-table maker is chosen once, here, and checks the width and granule now, not at the
    // first domain.
    const world = { faults: ctx.faults, klog: ctx.klog };
    if (this.format === 'vtd') {
      if (this.granule !== 4096) throw new KernelError(EINVAL, 'Iommu', `VT-d tables have a 4 KiB granule, got ${String(this.granule)}`, 'granule');
      const config = { addressWidth: this.addressWidth, oas: this.outputWidth };
      vtdGeometry(config);
      // 5-level (57-bit) tables work on their own (test/iommu/pgtable-vtd), but dma-iommu would hand
      // out IOVAs above 2^53, beyond the exact range of a JS number: refused until addresses are 64-bit.
      if (this.addressWidth > 48) throw new KernelError(EINVAL, 'Iommu', `a VT-d IOMMU here is 39 or 48 bits wide (57-bit IOVAs exceed 2^53), got ${this.addressWidth}`, 'addressWidth');
      this._newPgtable = () => new VtdPageTable(config, this.tableAlloc, world);
    } else if (this.format === 'arm-lpae') {
      const geometry = pgtableGeometry({ ias: this.addressWidth, oas: this.outputWidth, granule: this.granule });
      this._newPgtable = () => new IoPageTable(geometry, this.tableAlloc, world);
    } else {
      throw new KernelError(EINVAL, 'Iommu', `format must be arm-lpae or vtd, got ${String(this.format)}`, 'format');
    }
    this.singleQueue = opts.singleQueue === true;
    this.forcedac = opts.forcedac === true;
    this.faultLogSize = opts.faultLogSize ?? 256;
    this.iotlb = new Iotlb({ capacity: opts.iotlbSize ?? IOTLB_DEFAULT_CAPACITY });
    this.tableAlloc = {
      allocTablePage: (bytes) => {
        const order = Math.max(0, Math.ceil(Math.log2(bytes / PAGE_SIZE)));
        const pfn = mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, order, 'pgtable');
        if (pfn !== null) this.tablePagesInUse += POW2[order] as number;
        return pfn;
      },
      freeTablePage: (pfn, bytes) => {
        const order = Math.max(0, Math.ceil(Math.log2(bytes / PAGE_SIZE)));
        this.tablePagesInUse -= POW2[order] as number;
        mm.__free_pages(pfn, order);
      },
    };
    ctx.klog.printk('info', 'iommu_subsys_init', `iommu: Default domain type: ${this.mode === 'passthrough' ? 'Passthrough' : 'Translated'}`);
    if (this.mode !== 'passthrough') ctx.klog.printk('info', 'iommu_subsys_init', `iommu: DMA domain TLB invalidation policy: ${this.mode} mode`);
  }

  /**
   * A new domain of `type` (iommu_domain_alloc / the default-domain path). DMA types get an IOVA
   * domain with range caches (iommu_dma_init_domain); DMA_FQ a flush queue.
   */
  allocDomain(type: number): IommuDomain {
    const id = this._nextDomain++;
    let paging: PagingDomain | null = null;
    let iovad: IovaDomain | null = null;
    let fq: FlushQueue | null = null;
    if (type & __IOMMU_DOMAIN_PAGING) {
      paging = new PagingDomain({ pgtable: this._newPgtable(), iotlb: this.iotlb, asid: id, type, klog: this.ctx.klog });
      const trace = this.trace;
      if (trace?.enabled === true) {
        paging.onFlush = (what, start, end) => {
          trace.emit('flush', what, 'iommu', what === 'flush_iotlb_all' ? { domain: id } : { domain: id, start, end });
        };
        paging.onMap = (iova, paddr, size) => { trace.emit('iommu', 'iommu_map', 'iommu', { domain: id, iova, paddr, size }); };
        paging.onUnmap = (iova, size, unmapped) => { trace.emit('iommu', 'iommu_unmap', 'iommu', { domain: id, iova, size, unmapped_size: unmapped }); };
      }
    }
    const cpus = this.ctx.cpus ?? 2;
    if (type & __IOMMU_DOMAIN_DMA_API) {
      iovad = new IovaDomain({ faults: this.ctx.faults, klog: this.ctx.klog, clock: this.ctx.clock, nrCpus: cpus });
      // base_pfn = max(1, aperture_start >> order): IOVA 0 is never handed out.
      init_iova_domain(iovad, this.granule, 1);
      iova_domain_init_rcaches(iovad);
    }
    const domain = new IommuDomain(this, id, type, paging, iovad, null);
    if (type === IOMMU_DOMAIN_DMA_FQ && paging !== null && iovad !== null) {
      const pg = paging;
      const iv = iovad;
      fq = new FlushQueue(this.ctx.clock, {
        flushIotlbAll: () => pg.flush_iotlb_all(),
        release: (e, cpu) => {
          if (e.freelist.length > 0) pg.pgtable.free_table_pages([...e.freelist]);
          free_iova_fast(iv, e.iovaPfn, e.pages, Math.min(cpu, cpus - 1));
        },
      }, { cpus, single: this.singleQueue });
      (domain as { fq: FlushQueue | null }).fq = fq;
    }
    this.domains.push(domain);
    return domain;
  }

  /** Free a domain (after its devices left it): drain its queue, its IOVAs, its page table. */
  freeDomain(domain: IommuDomain): void {
    if (!(domain instanceof IommuDomain) || domain.iommu !== this) throw new KernelError(EINVAL, 'iommu_domain_free', 'expected a domain of this IOMMU', 'domain');
    domain.fq?.drain();
    if (domain.iovad !== null) put_iova_domain(domain.iovad);
    domain.paging?.flush_iotlb_all();
    domain.paging?.pgtable.free();
    const i = this.domains.indexOf(domain);
    if (i >= 0) this.domains.splice(i, 1);
  }

  /**
   * Probe a device: put it in a group (its own, or `groupId`'s) whose default domain follows the
   * policy: IDENTITY for passthrough, DMA for strict, DMA_FQ for lazy; an untrusted device forces a
   * strict DMA domain. A device probed already keeps its group (returned as it is).
   */
  probeDevice(dev: IommuClient, untrusted: boolean, groupId?: number): IommuGroup {
    // __iommu_probe_device: a device already in a group is probed already (nothing changes, and
    // dev->iommu, with the default domain the DMA layer keeps there, stays valid).
    const known = this._groupOf.get(dev);
    if (known !== undefined) return known;
    const name = dev.name;
    let group = groupId === undefined ? undefined : this.groups.find((g) => g.id === groupId);
    if (group === undefined) {
      let type = this.mode === 'passthrough' ? IOMMU_DOMAIN_IDENTITY : this.mode === 'strict' ? IOMMU_DOMAIN_DMA : IOMMU_DOMAIN_DMA_FQ;
      if (untrusted) type = IOMMU_DOMAIN_DMA;
      group = new IommuGroup(groupId ?? this.groups.length, this.allocDomain(type));
      this.groups.push(group);
    } else if (untrusted && group.defaultDomain.type !== IOMMU_DOMAIN_DMA) {
      this.ctx.klog.printk('warn', 'iommu_get_default_domain_type', `${name}: Device is not trusted, but driver is overriding group ${group.id} to ${group.defaultDomain.typeName}, refusing to probe.`);
    }
    group.devices.push(name);
    this._groupOf.set(dev, group);
    const named = this._byName.get(name);
    if (named === undefined) this._byName.set(name, [group]);
    else named.push(group);
    this.ctx.klog.printk('info', 'iommu_group_add_device', `${name}: Adding to iommu group ${group.id}`);
    return group;
  }

  /**
   * The per-device record the DMA layer keeps (the kernel's dev->iommu), made by `init(dev)` on first
   * use. `init` takes the device so callers can pass one function made once, not a closure per call.
   * @example const st = iommu.devIommu(dev, (d) => ({ pci32bitWorkaround: d.name.startsWith('0000:') }));
   */
  devIommu<T, D extends IommuClient = IommuClient>(dev: D, init: (dev: D) => T): T {
    let s = this._devIommu.get(dev) as T | undefined;
    if (s === undefined) {
      if (this._groupOf.get(dev) === undefined) throw new KernelError(EINVAL, 'Iommu.devIommu', 'expected a device probed behind this IOMMU', 'dev');
      checkFunction(init, 'Iommu.devIommu', 'init');
      s = init(dev);
      this._devIommu.set(dev, s);
    }
    return s;
  }

  /**
   * The group of a device (iommu_group_get), or undefined when the device is not behind this IOMMU.
   * By name only when one device behind this IOMMU has it.
   * @throws KernelError EINVAL for a name two devices share (pass the device).
   */
  groupOf(dev: IommuDeviceRef): IommuGroup | undefined {
    if (typeof dev !== 'string') return typeof dev === 'object' && dev !== null ? this._groupOf.get(dev) : undefined;
    const named = this._byName.get(dev);
    if (named !== undefined && named.length > 1) throw new KernelError(EINVAL, 'Iommu.groupOf', `${named.length} devices are named ${dev}: pass the device, not its name`, 'dev');
    return named?.[0];
  }

  /**
   * iommu_attach_device: move a device's group to `domain`. -EINVAL unless the group holds exactly
   * this one device; -EBUSY while the group sits on another non-default, non-blocking domain;
   * -ENODEV for a device not behind this IOMMU.
   */
  attachDevice(dev: IommuDeviceRef, domain: IommuDomain): number {
    if (!(domain instanceof IommuDomain) || domain.iommu !== this) throw new KernelError(EINVAL, 'iommu_attach_device', 'the domain belongs to another IOMMU (another machine)', 'domain');
    const group = this.groupOf(dev);
    if (group === undefined) return -ENODEV;
    if (group.devices.length !== 1) return -EINVAL;
    if (group.domain !== group.defaultDomain && group.domain.type !== IOMMU_DOMAIN_BLOCKED && group.domain !== domain) return -EBUSY;
    if (group.domain !== domain) this._switch(group, domain);
    return 0;
  }

  /** iommu_detach_device: put the group back on its default domain. */
  detachDevice(dev: IommuDeviceRef, domain: IommuDomain): void {
    if (!(domain instanceof IommuDomain)) throw new KernelError(EINVAL, 'iommu_detach_device', 'expected a domain', 'domain');
    if (typeof dev !== 'string' && (typeof dev !== 'object' || dev === null)) throw new KernelError(EINVAL, 'iommu_detach_device', 'expected a device', 'dev');
    const group = this.groupOf(dev);
    if (group === undefined || group.domain !== domain) {
      this.ctx.klog.warn('iommu_detach_device', `WARN_ON(${typeof dev === 'string' ? dev : dev.name} is not attached to domain ${domain.id})`);
      return;
    }
    this._switch(group, group.defaultDomain);
  }

  /** iommu_get_domain_for_dev: the domain the device's group is attached to now. */
  domainOf(dev: IommuDeviceRef): IommuDomain | undefined {
    return this.groupOf(dev)?.domain;
  }

  /**
   * iommu_get_dma_domain: the group's default domain, where the DMA API maps, whatever domain a
   * driver attached the group to meanwhile.
   */
  dmaDomainOf(dev: IommuDeviceRef): IommuDomain | undefined {
    return this.groupOf(dev)?.defaultDomain;
  }

  private _switch(group: IommuGroup, domain: IommuDomain): void {
    // The old domain's translations must not outlive the attach: invalidate them.
    group.domain.paging?.flush_iotlb_all();
    group.domain = domain;
  }

  /**
   * Record a translation fault (bounded, with the overflow flag) and report it: a handler on an
   * UNMANAGED domain decides; otherwise -ENOSYS (DMA-API domains never have a handler).
   */
  reportFault(domain: IommuDomain, device: string, iova: number, access: 'read' | 'write', reason: string): number {
    if (this.faults.length < this.faultLogSize) this.faults.push({ device, iova, access, reason, time: this.ctx.clock.now, domain: domain.id });
    else this.faultOverflow = true;
    this.ctx.logger.warn({ event: 'io_page_fault', device, iova, access, reason }, 'io_page_fault');
    const h = domain.type === IOMMU_DOMAIN_UNMANAGED ? domain.faultHandler : null;
    return h === null ? -ENOSYS : h(domain, device, iova, access === 'write' ? IOMMU_FAULT_WRITE : IOMMU_FAULT_READ);
  }

  /** Remember an unmap for the use-after-unmap detector. */
  recordUnmap(rec: UnmapRecord): void {
    this.noteUnmap(rec.device, rec.domain, rec.iova, rec.size, rec.time, rec.via, rec.lazy);
  }

  /** @internal recordUnmap without a record object (the DMA API's unmap paths). */
  noteUnmap(device: string, domain: number, iova: number, size: number, time: number, via: string, lazy: boolean): void {
    const k = this._unmapNext;
    if (this._unmapCount === UNMAP_HISTORY) this._countRecord(this._uDomain[k] as number, -1);
    this._countRecord(domain, 1);
    // The last device and path named, checked before the table (a string compare, mostly by
    // reference: every dma_unmap_* passes here).
    if (device !== this._lastDevice) { this._lastDevice = device; this._lastDeviceId = this._nameId(device); }
    if (via !== this._lastVia) { this._lastVia = via; this._lastViaId = this._nameId(via); }
    this._uTracked.touch(k, k + 1);
    this._uDevice[k] = this._lastDeviceId;
    this._uDomain[k] = domain;
    this._uIova[k] = iova;
    this._uSize[k] = size;
    this._uTime[k] = time;
    this._uVia[k] = this._lastViaId;
    this._uLazy[k] = lazy ? 1 : 0;
    this._unmapNext = (k + 1) % UNMAP_HISTORY;
    if (this._unmapCount < UNMAP_HISTORY) this._unmapCount++;
  }

  private _countRecord(domain: number, delta: number): void {
    // Domain ids are small whole numbers; anything else is simply not counted (never filtered).
    if (!(domain >= 0 && domain < 1 << 20) || domain !== Math.floor(domain)) return;
    let counts = this._uDomainRecords;
    if (domain >= counts.length) {
      const grown = new Int32Array(Math.max(domain + 1, 2 * counts.length));
      grown.set(counts);
      this._uDomainRecords = counts = grown;
    }
    counts[domain] = (counts[domain] as number) + delta;
  }

  private _nameId(name: string): number {
    const id = this._nameIds.get(name);
    if (id !== undefined) return id;
    this._names.push(name);
    this._nameIds.set(name, this._names.length - 1);
    return this._names.length - 1;
  }

  private _unmapAt(k: number): UnmapRecord {
    return {
      device: this._names[this._uDevice[k] as number] as string, domain: this._uDomain[k] as number, iova: this._uIova[k] as number, size: this._uSize[k] as number,
      time: this._uTime[k] as number, via: this._names[this._uVia[k] as number] as string, lazy: this._uLazy[k] === 1,
    };
  }

  /** The remembered unmaps, oldest first. */
  get unmaps(): UnmapRecord[] {
    const out: UnmapRecord[] = [];
    for (let k = this._unmapCount; k >= 1; k--) out.push(this._unmapAt((this._unmapNext - k + UNMAP_HISTORY) % UNMAP_HISTORY));
    return out;
  }

  /** The most recent unmap of `domain` covering `iova`, if remembered. */
  unmapCovering(domain: number, iova: number): UnmapRecord | undefined {
    const counts = this._uDomainRecords;
    if (domain >= 0 && domain < counts.length && domain === Math.floor(domain) && counts[domain] === 0) return undefined;
    // Newest first, in two straight runs of the ring with the arrays in locals (every fault of a
    // misbehaving device scans up to 4096 records: bench/RESULTS.md, session 9).
    const doms = this._uDomain;
    const iovas = this._uIova;
    const sizes = this._uSize;
    const next = this._unmapNext;
    const count = this._unmapCount;
    const lowest = Math.max(0, next - count);
    for (let i = next - 1; i >= lowest; i--) {
      if (doms[i] === domain && iova >= (iovas[i] as number) && iova < (iovas[i] as number) + (sizes[i] as number)) return this._unmapAt(i);
    }
    // The older part of a full ring wraps to its end.
    for (let i = UNMAP_HISTORY - 1, left = count - (next - lowest); left > 0; i--, left--) {
      if (doms[i] === domain && iova >= (iovas[i] as number) && iova < (iovas[i] as number) + (sizes[i] as number)) return this._unmapAt(i);
    }
    return undefined;
  }
}

/** Unmaps remembered for blame. */
export const UNMAP_HISTORY = 4096;
