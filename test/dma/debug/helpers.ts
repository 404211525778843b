/**
 * @module test/dma/debug/helpers
 * Shared set-up for the dma-debug suites: a context, a DmaDebug, devices and drivers, sg lists, and
 * the DMA API call sequences the hooks sit in (map + dma_mapping_error, dma_map_single, ...).
 */
import { pino } from 'pino';
import { createContext, type KernelContext } from '../../../src/core/context.ts';
import { setRootLogger } from '../../../src/core/log.ts';
import { PAGE_OFFSET } from '../../../src/mm/constants.ts';
import {
  DmaDebug, type DebugArch, type DebugDevice, type DebugDmaParms, type DebugDriver, type DebugSgEntry, type DmaDebugOptions,
} from '../../../src/dma/debug/index.ts';

setRootLogger(pino({ level: 'silent' }));

export { PAGE_OFFSET };

/** The all-ones handle. */
export const ERR = -1;

export const PCI = { name: 'pci' };
export const E1000: DebugDriver = { name: 'e1000' };
export const NVME: DebugDriver = { name: 'nvme' };

/** The doc's model arch: cache alignment = L1 = 64, no unaligned-kmalloc bouncing. */
export const ARCH_MODEL: DebugArch = { name: 'model', cacheAlignment: 64, l1CacheBytes: 64, bounceUnalignedKmalloc: false };

/** A mutable device: tests bind and unbind by setting `driver`. */
export interface TestDevice extends DebugDevice {
  driver: DebugDriver | null;
  dma_parms?: DebugDmaParms | null;
}

/** A PCI device bound to `driver` (e1000 unless told). */
export function pciDev(name = '0000:00:04.0', driver: DebugDriver | null = E1000, dma_parms?: DebugDmaParms): TestDevice {
  return dma_parms === undefined ? { name, bus: PCI, driver } : { name, bus: PCI, driver, dma_parms };
}

/** `DMA-API: <driver> <device>: ` for a device label. */
export function P(driver = 'e1000', device = '0000:00:04.0'): string {
  return `DMA-API: ${driver} ${device}: `;
}

/** `0x%016llx`. */
export function A(x: number): string {
  return `0x${x.toString(16).padStart(16, '0')}`;
}

/** `%p` (16 hex digits, no 0x). */
export function ptr(x: number): string {
  return x.toString(16).padStart(16, '0');
}

export interface Rig {
  readonly ctx: KernelContext;
  readonly dbg: DmaDebug;
  readonly dev: TestDevice;
  /** Texts of the printed error reports (err_printk), in order. */
  errors(): string[];
  /** Texts of every line dma-debug printed after boot, in order. */
  lines(): string[];
}

/** A fresh world with dma-debug; `all_errors` is switched on unless `allErrors: false`. */
export function rig(opts: DmaDebugOptions & { readonly allErrors?: boolean } = {}): Rig {
  const ctx = createContext('dma-debug-test', 7);
  const dbg = new DmaDebug(ctx, opts);
  if (opts.allErrors !== false) dbg.all_errors = 1;
  const boot = dbg.reports.length;
  return {
    ctx,
    dbg,
    dev: pciDev(),
    errors: () => dbg.reports.filter((r) => r.kind === 'error').map((r) => r.text),
    lines: () => dbg.reports.slice(boot).map((r) => r.text),
  };
}

/** An sg entry from a physical address, CPU length, DMA address and DMA length (default: the CPU length). */
export function sge(phys: number, length: number, dma: number, dmaLen: number = length): DebugSgEntry {
  return { page: Math.floor(phys / 4096), offset: phys % 4096, length, dma_address: dma, dma_length: dmaLen };
}

/** An identity-mapped sg list: each entry at `phys`, DMA address = phys, lengths `len`. */
export function identitySg(physes: readonly number[], len = 4096): DebugSgEntry[] {
  return physes.map((p) => sge(p, len, p));
}

/** dma_map_page/phys as a careful driver does it: map, then dma_mapping_error(). */
export function mapChecked(r: Rig, phys: number, size: number, dir: number, dma: number = phys, attrs = 0, dev: DebugDevice = r.dev): number {
  r.dbg.debug_dma_map_phys(dev, phys, size, dir, dma, attrs);
  r.dbg.debug_dma_mapping_error(dev, dma);
  return dma;
}

/** The linear-map address of a physical address. */
export function virt(phys: number): number {
  return PAGE_OFFSET + phys;
}
