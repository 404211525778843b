/**
 * @module dma/ledger/record
 * What the DMA API tells the ledger, at the kernel's points: after a backend mapped or allocated
 * (never for a failed call, so nothing is half-recorded), on unmap and free, and on each sync (which
 * moves ownership of the bytes between the CPU and the device).
 */
import type { Device } from '../../device/device.ts';
import { sg_next, sg_phys, type Scatterlist } from '../../scatterlist/entry.ts';
import { DMA_BIDIRECTIONAL } from '../direction.ts';
import { mergeAdjacent, type AddrRange } from './entry.ts';
import type { DmaLedger } from './ledger.ts';

/** A streaming single mapping succeeded: [phys, phys+size) at bus address `addr`. */
export function ledgerMapSingle(ledger: DmaLedger, dev: Device, api: string, phys: number, size: number, dir: number, addr: number): void {
  ledger.mapSingle(dev, api, dir, size, addr, phys);
}

/** An unmap of the single mapping at `addr` (an unknown address is dma-debug's to report). */
export function ledgerUnmapSingle(ledger: DmaLedger, dev: Device, api: string, addr: number): void {
  ledger.unmapSingle(dev, addr, api);
}

/** A scatterlist mapping succeeded: `nents` CPU entries became `mapped` DMA segments. */
export function ledgerMapSg(ledger: DmaLedger, dev: Device, api: string, sgl: Scatterlist, nents: number, mapped: number, dir: number): void {
  const cpu: AddrRange[] = [];
  const dma: AddrRange[] = [];
  let size = 0;
  let i = 0;
  for (let sg: Scatterlist | null = sgl; sg !== null && i < nents; sg = sg_next(sg), i++) {
    const phys = sg_phys(sg);
    cpu.push({ start: phys, end: phys + sg.length });
    size += sg.length;
    if (i < mapped) dma.push({ start: sg.dma_address, end: sg.dma_address + sg.dma_length });
  }
  ledger.record('sg', dev, api, dir, size, mergeAdjacent(dma), mergeAdjacent(cpu), sgl);
}

/** An unmap of the scatterlist mapped from `sgl`. */
export function ledgerUnmapSg(ledger: DmaLedger, dev: Device, api: string, sgl: Scatterlist): void {
  const e = ledger.findSg(dev, sgl);
  if (e !== undefined) ledger.release(e, api);
}

/** dma_sync_single_*: the bytes [addr, addr+size) of a mapping change hands. */
export function ledgerSyncSingle(ledger: DmaLedger, dev: Device, addr: number, size: number, toCpu: boolean): void {
  const e = ledger.findContaining(dev, addr);
  if (e === undefined) return;
  const off = addr - e.dmaStart;
  if (toCpu) e.giveCpu(off, size);
  else e.giveDevice(off, size);
}

/** dma_sync_sg_*: a whole scatterlist mapping changes hands. */
export function ledgerSyncSg(ledger: DmaLedger, dev: Device, sgl: Scatterlist, toCpu: boolean): void {
  const e = ledger.findSg(dev, sgl);
  if (e === undefined) return;
  if (toCpu) e.giveCpu(0, e.size);
  else e.giveDevice(0, e.size);
}

/** A coherent allocation succeeded (its CPU side, physically, is `cpu`). */
export function ledgerAllocCoherent(ledger: DmaLedger, dev: Device, api: string, size: number, handle: number, cpu: AddrRange[]): void {
  ledger.record('coherent', dev, api, DMA_BIDIRECTIONAL, size, [{ start: handle, end: handle + size }], cpu, handle);
}

/** A coherent free. */
export function ledgerFreeCoherent(ledger: DmaLedger, dev: Device, api: string, handle: number): void {
  const e = ledger.findCoherent(dev, handle);
  if (e !== undefined) ledger.release(e, api);
}
