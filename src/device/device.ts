/**
 * @module device/device
 * struct device for DMA purposes: masks, dma_parms, coherence, trust, the bound driver, the devres
 * list and the device-side DMA engine. `Device<C>` carries its context as a type-state.
 */
import { ENODEV } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Bound, DeviceContext, Normal } from './context.ts';
import { DevresList } from './devres.ts';
import { DmaEngine } from './dma-engine.ts';
import { DMA_BIT_MASK } from './mask.ts';
import type { Bus, Driver } from './bus.ts';

declare const CTX: unique symbol;

/** struct device_dma_parameters. */
export interface DmaParms {
  max_segment_size: number;
  segment_boundary_mask: number;
  min_align_mask: number;
}

/** What a device looks like to DMA. */
export interface DeviceOptions {
  /** dev_name(), e.g. '0000:01:00.0'. */
  readonly name: string;
  /** Streaming DMA mask in bits (default 32; 0 for a device with no dma_mask pointer). */
  readonly dmaMask?: number;
  /** Coherent DMA mask in bits (default 32). */
  readonly coherentDmaMask?: number;
  /** Bus addressing limit (bus_dma_limit), 0 for none. */
  readonly busDmaLimit?: number;
  /** dma_parms.max_segment_size (default 64 KiB). */
  readonly maxSegmentSize?: number;
  /** dma_parms.segment_boundary_mask (default: 0xffffffff on PCI, as pci_device_add; ULONG_MAX on platform). */
  readonly segmentBoundaryMask?: number;
  /** dma_parms.min_align_mask (default 0). */
  readonly minAlignMask?: number;
  /** False to model a device without dma_parms (setters then WARN). */
  readonly hasDmaParms?: boolean;
  /** Cache-coherent DMA (default true, as on x86). */
  readonly coherent?: boolean;
  /** An external-facing device the kernel does not trust (strict IOMMU, bouncing). */
  readonly untrusted?: boolean;
  /** Behind the machine's IOMMU (default true when the machine has one). */
  readonly iommu?: boolean;
  /** Share the IOMMU group with this number (devices the IOMMU cannot tell apart). */
  readonly iommuGroup?: number;
}

/**
 * A device. `C` is the context the reference is valid in: `Normal` for a stored reference, `Bound`
 * while bound to a driver, `Core` inside probe/remove.
 * @example
 * const dev = machine.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
 */
export class Device<C extends DeviceContext = Normal> {
  declare readonly [CTX]: C;
  readonly name: string;
  readonly bus: Bus;
  /** *dev->dma_mask, or null when the device has no mask pointer. */
  dma_mask: number | null;
  coherent_dma_mask: number;
  bus_dma_limit: number;
  dma_parms: DmaParms | null;
  dma_coherent: boolean;
  untrusted: boolean;
  /** The bound driver, or null. */
  driver: Driver | null = null;
  readonly devres = new DevresList();
  readonly dma: DmaEngine;

  /** @internal devices are created by Bus.addDevice */
  constructor(bus: Bus, opts: DeviceOptions) {
    this.bus = bus;
    this.name = opts.name;
    const bits = opts.dmaMask ?? 32;
    this.dma_mask = bits === 0 ? null : DMA_BIT_MASK(bits);
    this.coherent_dma_mask = DMA_BIT_MASK(opts.coherentDmaMask ?? 32);
    this.bus_dma_limit = opts.busDmaLimit ?? 0;
    this.dma_parms = opts.hasDmaParms === false ? null : {
      max_segment_size: opts.maxSegmentSize ?? bus.parmsDefaults.maxSegmentSize,
      segment_boundary_mask: opts.segmentBoundaryMask ?? bus.parmsDefaults.segmentBoundaryMask,
      min_align_mask: opts.minAlignMask ?? 0,
    };
    this.dma_coherent = opts.coherent ?? true;
    this.untrusted = opts.untrusted ?? false;
    this.dma = new DmaEngine(this);
  }

  /** True while a driver is bound. */
  get isBound(): boolean {
    return this.driver !== null;
  }

  /** The machine-level services of this device's bus. */
  get host(): Bus['host'] {
    return this.bus.host;
  }

  /**
   * Refuse an unbound device at run time (the type-state refuses it at compile time).
   * @throws KernelError ENODEV naming `fn`.
   */
  assertBound(fn: string): asserts this is Device<Bound> {
    if (!this.isBound) throw new KernelError(ENODEV, fn, `device ${this.name} is not bound to a driver`, 'dev');
  }

  /**
   * This reference as `Device<Bound>`, checked at run time: for code that stored a plain reference
   * and knows the device is bound.
   * @throws KernelError ENODEV when it is not.
   */
  asBound(fn = 'Device.asBound'): Device<Bound> {
    this.assertBound(fn);
    return this as unknown as Device<Bound>;
  }

  /** The same device as a plain (Normal) reference, safe to store. */
  get normal(): Device {
    return this as unknown as Device;
  }

  toString(): string {
    return `${this.bus.name} ${this.name}`;
  }
}
