/**
 * @module dma/swiotlb/bouncer
 * The machine's swiotlb pool as dma-direct and dma-iommu see it: a Bouncer that passes each
 * device's min_align_mask, segment boundary and masks to the pool.
 */
import { Device } from '../../device/device.ts';
import type { DmaDirection } from '../api/direction.ts';
import type { Bouncer } from '../api/ops.ts';
import { dma_get_min_align_mask, dma_get_seg_boundary } from '../api/params.ts';
import { swiotlb_max_mapping_size, type SwiotlbDevice, type SwiotlbPool } from './index.ts';
import { checkObject, checkFunction, notInstance } from '../../core/args.ts';

/** What swiotlb reads from a device. */
export function swiotlbDeviceOf(dev: Device): SwiotlbDevice {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'swiotlbDeviceOf', 'dev');
  return {
    name: dev.name,
    min_align_mask: dma_get_min_align_mask(dev),
    segment_boundary_mask: dma_get_seg_boundary(dev),
    ...(dev.dma_mask === null ? {} : { dma_mask: dev.dma_mask }),
    bus_dma_limit: dev.bus_dma_limit,
  };
}

/**
 * Wrap a pool for the DMA backends. `onBounced` is the swiotlb:swiotlb_bounced tracepoint: told of
 * every bounce attempt before slots are searched (swiotlb_map and dma-iommu's bounce path), with the
 * original buffer's address.
 * @example dmaSystemOf(machine).bouncer = swiotlbBouncer(pool, { force: true, cpu: () => 0 })
 */
export function swiotlbBouncer(pool: SwiotlbPool, opts: { force: boolean; cpu: () => number; onBounced?: (dev: Device, devAddr: number, size: number) => void }): Bouncer {
  checkObject(opts, 'swiotlbBouncer', 'opts');
  checkFunction(opts.cpu, 'swiotlbBouncer', 'opts.cpu');
  if (opts.onBounced !== undefined) checkFunction(opts.onBounced, 'swiotlbBouncer', 'opts.onBounced');
  const bounced = opts.onBounced ?? null;
  return {
    get active() { return pool.is_swiotlb_active(); },
    force: opts.force,
    map: (dev, phys, size, dir, attrs) => {
      bounced?.(dev, phys, size);
      return pool.swiotlb_map(swiotlbDeviceOf(dev), phys, size, dir as DmaDirection, attrs, opts.cpu());
    },
    mapAligned: (dev, phys, size, alignMask, dir, attrs) => {
      bounced?.(dev, phys, size);
      return pool.swiotlb_tbl_map_single(swiotlbDeviceOf(dev), phys, size, alignMask, dir as DmaDirection, attrs, opts.cpu());
    },
    isBuffer: (phys) => pool.is_swiotlb_buffer(phys),
    unmap: (dev, tlb, size, dir, attrs) => pool.swiotlb_tbl_unmap_single(swiotlbDeviceOf(dev), tlb, size, dir as DmaDirection, attrs),
    syncForCpu: (dev, tlb, size, dir) => pool.swiotlb_sync_single_for_cpu(swiotlbDeviceOf(dev), tlb, size, dir as DmaDirection),
    syncForDevice: (dev, tlb, size, dir) => pool.swiotlb_sync_single_for_device(swiotlbDeviceOf(dev), tlb, size, dir as DmaDirection),
    maxMappingSize: (dev) => swiotlb_max_mapping_size(swiotlbDeviceOf(dev)),
    pool,
  };
}
