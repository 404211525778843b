/**
 * @module dma/debug/device
 * What dma-debug reads from a `struct device`, as a structural interface any device layer can
 * satisfy (field names follow the kernel's, so a device object with `name`, `driver`, `bus` and
 * `dma_parms` fits as it is), and the two helpers built on it: `dev_driver_string()` and the
 * dma_parms defaults.
 */
import { DEFAULT_MAX_SEGMENT_SIZE } from './constants.ts';

/**
 * A `struct device_driver`. Its **identity** matters: the driver filter remembers the first driver
 * object whose name matched and from then on matches only that object.
 */
export interface DebugDriver {
  readonly name: string;
}

/** `struct device_dma_parameters`, the two fields the sg checks read. */
export interface DebugDmaParms {
  /** `max_segment_size` (an unsigned int); 0 means "not set" (64 KiB is assumed). */
  readonly max_segment_size: number;
  /** `segment_boundary_mask`; 0 means "not set" (ULONG_MAX); values from 2^63 up (and Infinity) are ULONG_MAX. */
  readonly segment_boundary_mask: number;
}

/**
 * A device as dma-debug sees it. Entries belong to a device by object **identity**: pass the same
 * object to every hook for one device.
 * @example
 * const pci = { name: 'pci' };
 * const dev: DebugDevice = { name: '0000:00:04.0', bus: pci, driver: { name: 'e1000' } };
 */
export interface DebugDevice {
  /** `dev_name(dev)`. */
  readonly name: string;
  /** The bound driver; null or absent when none is bound. */
  readonly driver?: DebugDriver | null | undefined;
  /** The bus (`dev->bus`): its name labels reports when no driver is bound. */
  readonly bus?: { readonly name: string } | null | undefined;
  /** The class (`dev->class`): the label when there is neither driver nor bus. */
  readonly class?: { readonly name: string } | null | undefined;
  /** `dev->dma_parms`; null or absent for a device without them. */
  readonly dma_parms?: DebugDmaParms | null | undefined;
}

/**
 * `dev_driver_string()`: the driver's name, else the bus name, else the class name, else ''.
 * `driver` is the driver pointer as read at the time (the leak check reads it after it was cleared).
 * @example devDriverString({ name: '0000:00:04.0', bus: { name: 'pci' } }) // 'pci'
 */
export function devDriverString(dev: DebugDevice, driver: DebugDriver | null | undefined = dev.driver): string {
  if (driver !== null && driver !== undefined) return driver.name;
  if (dev.bus !== null && dev.bus !== undefined) return dev.bus.name;
  if (dev.class !== null && dev.class !== undefined) return dev.class.name;
  return '';
}

/**
 * `dma_get_max_seg_size()`: dma_parms' value when set and non-zero, else 64 KiB. An unsigned int,
 * so values are taken modulo 2^32 as C would truncate them.
 * @example dma_get_max_seg_size({ name: 'd' }) // 65536
 */
export function dma_get_max_seg_size(dev: DebugDevice): number {
  const p = dev.dma_parms;
  const v = p === null || p === undefined ? 0 : p.max_segment_size % 2 ** 32;
  return v > 0 ? v : DEFAULT_MAX_SEGMENT_SIZE;
}

/**
 * `dma_get_seg_boundary()`: dma_parms' mask when set and non-zero, else ULONG_MAX (returned as
 * Infinity).
 * @example dma_get_seg_boundary({ name: 'd', dma_parms: { max_segment_size: 0, segment_boundary_mask: 0xffff } }) // 0xffff
 */
export function dma_get_seg_boundary(dev: DebugDevice): number {
  const p = dev.dma_parms;
  const v = p === null || p === undefined ? 0 : p.segment_boundary_mask;
  return v !== 0 ? v : Infinity;
}
