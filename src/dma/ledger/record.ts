/**
 * @module dma/ledger/record
 * What the DMA API tells the ledger, at the kernel's points: after a backend mapped or allocated
 * (never for a failed call, so nothing is half-recorded), on unmap and free, and on each sync (which
 * moves ownership of the bytes between the CPU and the device).
 */
import type { Device } from '../../device/device.ts';
import type { Scatterlist } from '../../scatterlist/entry.ts';
import { W_DMA_LEN, W_LENGTH } from '../../scatterlist/slots.ts';
import { nextSlot, slotDmaAddress, slotPhys, slotWord } from '../../scatterlist/walk.ts';
import { DMA_BIDIRECTIONAL } from '../api/direction.ts';
import { appendMerged, mergeAdjacent, type AddrRange } from './entry.ts';
import type { DmaLedger } from './ledger.ts';

/** A streaming single mapping succeeded: [phys, phys+size) at bus address `addr`. */
export function ledgerMapSingle(ledger: DmaLedger, dev: Device, api: string, phys: number, size: number, dir: number, addr: number): void {
  ledger.mapSingle(dev, api, dir, size, addr, phys);
}

/** An unmap of the single mapping at `addr` (an unknown address is dma-debug's to report). */
export function ledgerUnmapSingle(ledger: DmaLedger, dev: Device, api: string, addr: number): void {
  ledger.unmapSingle(dev, addr, api);
}

// INVARIANT: scratchCpu and scratchDma hold the ranges one ledgerMapSg call is building, as
//   (start, end) pairs; nothing reads them after the call returns (recordPacked copies them).
const scratchCpu: number[] = [];
const scratchDma: number[] = [];
/** Numbers the scratch arrays keep between calls (4,096 ranges). */
const SCRATCH_KEEP = 8192;

/** A scatterlist mapping succeeded: `nents` CPU entries became `mapped` DMA segments. */
export function ledgerMapSg(ledger: DmaLedger, dev: Device, api: string, sgl: Scatterlist, nents: number, mapped: number, dir: number): void {
  const cpu = scratchCpu;
  const dma = scratchDma;
  let nCpu = 0;
  let nDma = 0;
  // One segment per entry (dma-direct, swiotlb, an IOMMU that merged nothing): keep which DMA range
  // is which buffer range, so a sync of part of the list hands over exactly those bytes.
  let segMap: Float64Array | null = mapped === nents ? new Float64Array(3 * nents) : null;
  let size = 0;
  const segs = sgl.arena.segs;
  for (let slot = sgl.slot, i = 0; slot >= 0 && i < nents; slot = nextSlot(segs, slot), i++) {
    const phys = slotPhys(segs, slot);
    const length = slotWord(segs, slot, W_LENGTH);
    const dmaAddress = slotDmaAddress(segs, slot);
    const dmaLength = slotWord(segs, slot, W_DMA_LEN);
    // Adjacent ranges merged and empty ones dropped as they come, into reused arrays of numbers
    // (no object per range: bench/RESULTS.md, session 12).
    nCpu = appendMerged(cpu, nCpu, phys, phys + length);
    size += length;
    if (i < mapped) nDma = appendMerged(dma, nDma, dmaAddress, dmaAddress + dmaLength);
    if (segMap !== null) {
      if (dmaLength !== length) segMap = null;
      else {
        segMap[3 * i] = dmaAddress;
        segMap[3 * i + 1] = phys;
        segMap[3 * i + 2] = length;
      }
    }
  }
  ledger.recordPacked('sg', dev, api, dir, size, dma, nDma, cpu, nCpu, sgl, segMap);
  // After a huge list, let its ranges go rather than keep them for the life of the process.
  if (cpu.length > SCRATCH_KEEP) cpu.length = 0;
  if (dma.length > SCRATCH_KEEP) dma.length = 0;
}

/** An unmap of the scatterlist mapped from `sgl`. */
export function ledgerUnmapSg(ledger: DmaLedger, dev: Device, api: string, sgl: Scatterlist): void {
  const e = ledger.findSg(dev, sgl);
  if (e !== undefined) ledger.release(e, api);
}

/**
 * dma_sync_single_*: the bytes behind DMA [addr, addr+size) change hands, in every live mapping
 * holding `addr` (a part of a single mapping, or of a scatterlist's; a list whose segments were
 * merged changes hands whole, since which buffer bytes a merged segment holds is not kept).
 */
export function ledgerSyncSingle(ledger: DmaLedger, dev: Device, addr: number, size: number, toCpu: boolean): void {
  for (const e of ledger.findContaining(dev, addr)) {
    const phys = e.dmaToPhys(addr, addr + size) ?? 'all';
    if (toCpu) e.giveCpu(phys);
    else e.giveDevice(phys);
  }
}

/** dma_sync_sg_*: a whole scatterlist mapping changes hands. */
export function ledgerSyncSg(ledger: DmaLedger, dev: Device, sgl: Scatterlist, toCpu: boolean): void {
  // A dma_alloc_noncontiguous table is recorded by its handle (entry 0's DMA address).
  const e = ledger.findSg(dev, sgl) ?? ledger.findNoncoherent(dev, sgl.dma_address);
  if (e === undefined) return;
  if (toCpu) e.giveCpu('all');
  else e.giveDevice('all');
}

/** A coherent allocation succeeded (its CPU side, physically, is `cpu`). */
export function ledgerAllocCoherent(ledger: DmaLedger, dev: Device, api: string, size: number, handle: number, cpu: AddrRange[]): void {
  ledger.record('coherent', dev, api, DMA_BIDIRECTIONAL, size, [{ start: handle, end: handle + size }], cpu, handle);
}

/**
 * A noncoherent allocation succeeded (dma_alloc_pages, _noncoherent, _noncontiguous): DMA ranges
 * `dma`, CPU side `cpu`. It starts owned by the CPU, which zeroed it: the device may touch it only
 * after dma_sync_*_for_device.
 */
export function ledgerAllocNoncoherent(ledger: DmaLedger, dev: Device, api: string, dir: number, size: number, dma: AddrRange[], cpu: AddrRange[], handle: number): void {
  ledger.record('noncoherent', dev, api, dir, size, dma, mergeAdjacent(cpu), handle).giveCpu('all');
}

/** A noncoherent free (of the allocation whose handle is `handle`). */
export function ledgerFreeNoncoherent(ledger: DmaLedger, dev: Device, api: string, handle: number): void {
  const e = ledger.findNoncoherent(dev, handle);
  if (e !== undefined) ledger.release(e, api);
}

/** A coherent free. */
export function ledgerFreeCoherent(ledger: DmaLedger, dev: Device, api: string, handle: number): void {
  const e = ledger.findCoherent(dev, handle);
  if (e !== undefined) ledger.release(e, api);
}
