/**
 * @module device/device-options
 * The checks on {@link DeviceOptions} at Bus.addDevice: unknown keys and every field's type and
 * range, so a string or a fraction never reaches the DMA code as a mask or a segment size.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { DeviceOptions } from './device.ts';

const DEVICE_KEYS: ReadonlySet<string> = new Set<keyof DeviceOptions>([
  'name', 'dmaMask', 'coherentDmaMask', 'busDmaLimit', 'maxSegmentSize', 'segmentBoundaryMask', 'minAlignMask',
  'hasDmaParms', 'coherent', 'untrusted', 'iommu', 'iommuGroup',
]);

/**
 * Refuse unknown keys and bad values (the name is checked by the bus, with duplicates).
 * @throws KernelError EINVAL from Bus.addDevice naming the option.
 * @example checkDeviceOptions({ name: 'x', maxSegmentSize: 100.5 }) // throws: ... maxSegmentSize: ...
 */
export function checkDeviceOptions(opts: DeviceOptions): void {
  const bad = (arg: string, what: string): never => { throw new KernelError(EINVAL, 'Bus.addDevice', what, arg); };
  const o = opts as unknown as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!DEVICE_KEYS.has(k)) bad(k, `unknown device option (one of ${[...DEVICE_KEYS].join(', ')})`);
  const whole = (k: string, max: number, what: string): void => {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max)) bad(k, `${what}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  };
  whole('dmaMask', 64, 'a mask is a bit width in [0, 64]');
  whole('coherentDmaMask', 64, 'a mask is a bit width in [0, 64]');
  // dma_parms fields are unsigned int, except the boundary (unsigned long); bus_dma_limit is a u64.
  whole('maxSegmentSize', 0xffffffff, 'max_segment_size is an unsigned int');
  whole('minAlignMask', 0xffffffff, 'min_align_mask is an unsigned int');
  whole('segmentBoundaryMask', 2 ** 64, 'segment_boundary_mask is an unsigned long');
  whole('busDmaLimit', 2 ** 64, 'bus_dma_limit is a u64 address');
  whole('iommuGroup', 2 ** 31 - 1, 'an IOMMU group number is a whole number');
  for (const k of ['hasDmaParms', 'coherent', 'untrusted', 'iommu']) if (o[k] !== undefined && typeof o[k] !== 'boolean') bad(k, `${k} is true or false, got ${String(o[k])}`);
}
