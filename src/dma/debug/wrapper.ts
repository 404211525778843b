/**
 * @module dma/debug/wrapper
 * The one check `dma_map_single_attrs()` makes itself, before any dma-debug hook runs: vmalloc
 * memory is refused. It is not a dma-debug report (no `DMA-API:` prefix, never counted or
 * filtered), but its effect shows in dma-debug: the DMA_MAPPING_ERROR handle records nothing, so
 * unmapping it is "an invalid DMA memory address".
 */
import type { KernelLog } from '../../core/kernel-log.ts';
import { devDriverString, type DebugDevice } from './device.ts';

/**
 * `dev_WARN_ONCE(dev, is_vmalloc_addr(ptr), "rejecting DMA map of vmalloc memory\n")`: once per
 * boot (per kernel log), `<driver> <device>: rejecting DMA map of vmalloc memory`.
 * @returns true when the map must return DMA_MAPPING_ERROR (`isVmalloc`)
 * @example if (dma_map_single_rejects_vmalloc(m.klog, dev, mem.isVmallocAddr(ptr))) return DMA_MAPPING_ERROR;
 */
export function dma_map_single_rejects_vmalloc(klog: KernelLog, dev: DebugDevice, isVmalloc: boolean): boolean {
  if (!isVmalloc) return false;
  klog.warnOnce('dma_map_single_attrs:vmalloc', 'dma_map_single_attrs', `${devDriverString(dev)} ${dev.name}: rejecting DMA map of vmalloc memory\n`);
  return true;
}
