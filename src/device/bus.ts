/**
 * @module device/bus
 * A bus (PCI-like or platform) with its devices and drivers, and binding in the kernel's order:
 * probe (devres released if it fails); unbind = remove() → bus dma_cleanup → devres released newest
 * first → the driver pointer cleared → BUS_NOTIFY_UNBOUND_DRIVER (where dma-debug's leak check runs).
 */
import type { KernelContext } from '../core/context.ts';
import { EBUSY, EINVAL, ENODEV } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import type { PhysMemory } from '../core/sparse-memory.ts';
import type { Core } from './context.ts';
import { Device, type DeviceOptions } from './device.ts';
import { ULONG_MAX } from './mask.ts';
import { checkDeviceOptions } from './device-options.ts';

/** A driver: probe and remove, as a bus callback sees them. */
export interface Driver {
  readonly name: string;
  /**
   * Set the device up. Return nothing or 0 for success, a negative errno to fail (or throw a
   * KernelError); what probe registered with devres is released on failure.
   */
  probe(dev: Device<Core>): number | void;
  /** Tear down before devres is released. */
  remove?(dev: Device<Core>): void;
}

/** The dma_parms a bus gives its devices before any driver sets them. */
export interface BusDmaDefaults {
  readonly maxSegmentSize: number;
  readonly segmentBoundaryMask: number;
}

/**
 * pci_device_add(): dma_set_max_seg_size(dev, 65536) and dma_set_seg_boundary(dev, 0xffffffff), so
 * a PCI device's segments may not cross a 4 GiB boundary unless its driver says otherwise.
 */
export const PCI_DMA_DEFAULTS: BusDmaDefaults = { maxSegmentSize: 65536, segmentBoundaryMask: 0xffffffff };

/**
 * Platform devices get zeroed dma_parms (setup_pdev_dma_masks), read as the kernel's defaults:
 * 64 KiB segments, no boundary (ULONG_MAX).
 */
export const PLATFORM_DMA_DEFAULTS: BusDmaDefaults = { maxSegmentSize: 65536, segmentBoundaryMask: ULONG_MAX };

/** What a bus needs from its machine. */
export interface BusHost {
  readonly ctx: KernelContext;
  /** RAM for device DMA: byte access and a RAM check. */
  /** `answers`: is [phys, phys+len) RAM or device memory, something a bus access reaches? */
  readonly memory: PhysMemory & {
    answers(phys: number, len?: number): boolean;
    /** The same bytes without the RAM check, for a device access the translation already checked. */
    readonly raw: PhysMemory;
  };
  /**
   * dma_supported(dev, mask): can the device's DMA path reach memory with this mask? (dma-iommu:
   * always; dma-direct: the mask covers ZONE_DMA or all of RAM.) Absent: x86's direct rule.
   */
  dmaSupported?(dev: Device, mask: number): boolean;
  /** iommu_probe_device when a device is added (group, default domain, translation). */
  deviceAdded?(dev: Device, opts: DeviceOptions): void;
  /** bus->dma_configure at probe (IOMMU default domain, dma ops). */
  dmaConfigure?(dev: Device): void;
  /** bus->dma_cleanup at unbind. */
  dmaCleanup?(dev: Device): void;
  /** BUS_NOTIFY_UNBOUND_DRIVER: the driver is gone (dma-debug checks for leaks here). */
  notifyUnbound?(dev: Device): void;
  /** BUS_NOTIFY_DRIVER_NOT_BOUND: probe failed (what it left mapped is leaked from here on). */
  notifyNotBound?(dev: Device): void;
}

/**
 * A bus.
 * @example
 * const dev = machine.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
 * machine.pci.bind(dev, { name: 'nvme', probe(d) { ... } }); // 0
 * machine.pci.unbind(dev);
 */
export class Bus {
  readonly name: string;
  readonly host: BusHost;
  /** dma_parms a device on this bus starts with (PCI: pci_device_add's 64 KiB and 4 GiB boundary). */
  readonly parmsDefaults: BusDmaDefaults;
  // INVARIANT: devices holds every device added, by name; a device's driver is non-null exactly
  //   while bound through this bus.
  readonly devices = new Map<string, Device>();
  // INVARIANT: _busy holds the devices whose probe or remove is running (the kernel holds
  //   device_lock then: binding or unbinding the same device from inside would deadlock).
  private readonly _busy = new Set<Device>();

  constructor(name: string, host: BusHost, parmsDefaults: BusDmaDefaults = PLATFORM_DMA_DEFAULTS) {
    this.name = name;
    this.host = host;
    this.parmsDefaults = parmsDefaults;
  }

  /**
   * Add a device to the bus.
   * @throws KernelError EINVAL for a duplicate name or bad options.
   */
  addDevice(opts: DeviceOptions): Device {
    if (typeof opts?.name !== 'string' || opts.name === '') throw new KernelError(EINVAL, 'Bus.addDevice', 'a device needs a name', 'name');
    if (this.devices.has(opts.name)) throw new KernelError(EINVAL, 'Bus.addDevice', `${this.name} already has a device ${opts.name}`, 'name');
    checkDeviceOptions(opts);
    const dev = new Device(this, opts);
    this.devices.set(opts.name, dev);
    this.host.deviceAdded?.(dev, opts);
    return dev;
  }

  /**
   * Bind `driver` to `dev` (really_probe). Returns 0, -EBUSY when already bound, or the probe's
   * error (everything probe registered with devres is released first).
   */
  bind(dev: Device, driver: Driver): number {
    if (!(dev instanceof Device)) throw new KernelError(EINVAL, 'Bus.bind', 'expected a device', 'dev');
    if (typeof driver !== 'object' || driver === null || typeof driver.probe !== 'function') throw new KernelError(EINVAL, 'Bus.bind', 'expected a driver with a probe()', 'driver');
    if (dev.bus !== this) throw new KernelError(EINVAL, 'Bus.bind', `${dev.name} is not on bus ${this.name}`, 'dev');
    this._notBusy(dev, 'Bus.bind');
    if (dev.driver !== null) return -EBUSY;
    dev.driver = driver;
    let ret = 0;
    this._busy.add(dev);
    try {
      this.host.dmaConfigure?.(dev);
      const r = driver.probe(dev as unknown as Device<Core>);
      ret = typeof r === 'number' ? r : 0;
    } catch (e) {
      if (!(e instanceof KernelError)) {
        this._busy.delete(dev);
        this._probeFailed(dev);
        throw e;
      }
      ret = -e.errno;
    } finally {
      this._busy.delete(dev);
    }
    if (ret !== 0) {
      this._probeFailed(dev);
      this.host.ctx.klog.printk('warn', 'really_probe', `${driver.name} ${dev.name}: probe with driver ${driver.name} failed with error ${ret}`);
    }
    return ret;
  }

  /** Unbind the driver (device_release_driver); nothing happens for an unbound device. */
  unbind(dev: Device): void {
    if (!(dev instanceof Device)) throw new KernelError(EINVAL, 'Bus.unbind', 'expected a device', 'dev');
    if (dev.bus !== this) throw new KernelError(EINVAL, 'Bus.unbind', `${dev.name} is not on bus ${this.name}`, 'dev');
    this._notBusy(dev, 'Bus.unbind');
    const driver = dev.driver;
    if (driver === null) return;
    this._busy.add(dev);
    try {
      driver.remove?.(dev as unknown as Device<Core>);
    } finally {
      this._busy.delete(dev);
      this.host.dmaCleanup?.(dev);
      dev.devres.releaseAll();
      dev.driver = null;
      this.host.notifyUnbound?.(dev);
    }
  }

  /** The device called `name`. */
  device(name: string): Device {
    const d = this.devices.get(name);
    if (d === undefined) throw new KernelError(ENODEV, 'Bus.device', `no device ${name} on ${this.name}`, 'name');
    return d;
  }

  /**
   * Binding or unbinding a device from its own probe or remove: the kernel would deadlock on
   * device_lock. Refused with a KernelBug; the outer call still finishes its work.
   */
  private _notBusy(dev: Device, fn: string): void {
    if (this._busy.has(dev)) throw new KernelBug(fn, `${dev.name}: bind or unbind from the device's own probe() or remove() (device_lock is held: a deadlock)`);
  }

  private _probeFailed(dev: Device): void {
    this.host.dmaCleanup?.(dev);
    dev.devres.releaseAll();
    dev.driver = null;
    this.host.notifyNotBound?.(dev);
  }
}
