/**
 * @module dma/api/checks
 * Argument checks and the per-machine hooks (dma-debug, ledger, trace) the DMA API entry points share.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelBug, KernelError } from '../../core/errors.ts';
import { DMA_MAPPING_ERROR, Scatterlist, sg_check_walk, sg_dma_address, sg_dma_len, sg_next, sg_phys } from '../../scatterlist/entry.ts';
import type { Trace } from '../../core/trace.ts';
import { Device } from '../../device/device.ts';
import { SgTable } from '../../scatterlist/table.ts';
import { valid_dma_direction } from './direction.ts';
import { W_DMA_LEN } from '../../scatterlist/slots.ts';
import { nextSlot, slotDmaAddress, slotWord } from '../../scatterlist/walk.ts';
import { dmaSystemOf } from './ops.ts';

export function checkAttrs(attrs: unknown, fn: string): void {
  if (typeof attrs !== 'number' || !Number.isInteger(attrs) || attrs < 0 || attrs > 0xffffffff) throw new KernelError(EINVAL, fn, `expected DMA_ATTR_* flags, got ${String(attrs)}`, 'attrs');
}

export function checkDir(dir: number, fn: string): void {
  if (!valid_dma_direction(dir)) {
    throw new KernelBug(fn, `BUG_ON(!valid_dma_direction(dir)): dir ${String(dir)}`);
  }
}

export function checkSize(size: unknown, fn: string): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new KernelError(EINVAL, fn, `expected a size in bytes, got ${String(size)}`, 'size');
  return size;
}

/** A DMA address argument: a number below 2^53, or DMA_MAPPING_ERROR. */
export function checkAddr(addr: unknown, fn: string): number {
  if (typeof addr !== 'number' || !(addr === DMA_MAPPING_ERROR || (Number.isSafeInteger(addr) && addr >= 0))) {
    throw new KernelError(EINVAL, fn, `expected a DMA address, got ${typeof addr === 'number' ? addr : typeof addr}`, 'addr');
  }
  return addr;
}

/**
 * Where a released DMA range may end at most: the backends round a range up to their granule (64
 * KiB at most) and must still hold its end exactly in a number.
 */
const DMA_RANGE_END_MAX = Number.MAX_SAFE_INTEGER - 0xffff;

/**
 * An unmap or free of [addr, addr + size): refused (EINVAL naming `arg`) when its end reaches past
 * what a number holds exactly, before dma-debug, the trace or the backend sees the call, so a
 * refused release changes nothing. DMA_MAPPING_ERROR passes (dma-debug reports it).
 */
export function checkDmaRange(addr: number, size: number, fn: string, arg = 'size'): void {
  if (addr !== DMA_MAPPING_ERROR && !(addr + size <= DMA_RANGE_END_MAX)) {
    throw new KernelError(EINVAL, fn, `0x${addr.toString(16)} + ${size} ends past 2^53 - 64 KiB, beyond any DMA address`, arg);
  }
}

/**
 * checkDmaRange of every DMA segment of a list about to be unmapped: the entries up to the first
 * with no DMA length (where dma-iommu's unmap and dma-debug's count of mapped segments end too; a
 * merged list then costs a step or two, not a walk of all its entries).
 */
export function checkSgDmaRanges(sgl: Scatterlist, nents: number, fn: string): void {
  const segs = sgl.arena.segs;
  for (let slot = sgl.slot, i = 0; slot >= 0 && i < nents; slot = nextSlot(segs, slot), i++) {
    const len = slotWord(segs, slot, W_DMA_LEN);
    if (len === 0) return;
    checkDmaRange(slotDmaAddress(segs, slot), len, fn, 'sgl');
  }
}

/** A device of this simulator (a plain object or null is no device). */
export function checkDev(dev: unknown, fn: string): void {
  if (!(dev instanceof Device)) throw new KernelError(EINVAL, fn, `expected a device, got ${dev === null ? 'null' : typeof dev}`, 'dev');
}

/** `nents`: a count a C caller could pass (an int). */
export function checkNents(nents: unknown, fn: string): number {
  if (typeof nents !== 'number' || !Number.isInteger(nents) || nents < 0 || nents > 0x7fffffff) throw new KernelError(EINVAL, fn, `expected an entry count, got ${String(nents)}`, 'nents');
  return nents;
}

/**
 * The scatterlist must be one of the device's machine, and walkable for `nents` entries: another
 * machine's list would be mapped with this machine's memory.
 */
export function checkSg(dev: Device, sgl: unknown, nents: number, fn: string, arg = 'sgl'): void {
  if (!(sgl instanceof Scatterlist)) throw new KernelError(EINVAL, fn, `expected a scatterlist, got ${sgl === null ? 'null' : typeof sgl}`, arg);
  if (sgl.arena.ctx !== dev.host.ctx) throw new KernelError(EINVAL, fn, `the scatterlist belongs to machine ${sgl.arena.ctx.name}, ${dev.name} to ${dev.host.ctx.name}`, arg);
  sg_check_walk(sgl, nents, fn);
}

/** An sg_table of the device's machine. */
export function checkSgt(dev: Device, sgt: unknown, fn: string): void {
  checkDev(dev, fn);
  if (!(sgt instanceof SgTable)) throw new KernelError(EINVAL, fn, `expected an sg_table, got ${sgt === null ? 'null' : typeof sgt}`, 'sgt');
  if (sgt.ctx !== dev.host.ctx) throw new KernelError(EINVAL, fn, `the table belongs to machine ${sgt.ctx.name}, ${dev.name} to ${dev.host.ctx.name}`, 'sgt');
}

/** A page frame number or an offset: a non-negative integer. */
export function checkIndex(v: unknown, fn: string, arg: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new KernelError(EINVAL, fn, `expected a non-negative integer, got ${String(v)}`, arg);
  return v;
}

export function debug(dev: Device) {
  return dmaSystemOf(dev.host.ctx).debug;
}

export function ledger(dev: Device) {
  return dmaSystemOf(dev.host.ctx).ledger;
}

export function trace(dev: Device, kind: string, name: string, args: Record<string, unknown>): void {
  const t = dmaSystemOf(dev.host.ctx).trace;
  if (t !== null && t.enabled) t.emit(kind, name, dev.name, args);
}

/** The machine's trace when it records, else null: build costly event fields only then. */
export function tracing(dev: Device): Trace | null {
  const t = dmaSystemOf(dev.host.ctx).trace;
  return t !== null && t.enabled ? t : null;
}

/** sg_phys of the first `n` entries (what the kernel's dma:* events record as phys_addrs). */
export function sgPhysAddrs(sgl: Scatterlist | null, n: number): number[] {
  const out: number[] = [];
  for (let sg = sgl; sg !== null && out.length < n; sg = sg_next(sg)) out.push(sg_phys(sg));
  return out;
}

/** sg_dma_address and sg_dma_len of the first `n` entries (dma_addrs and lengths). */
export function sgDmaArrays(sgl: Scatterlist | null, n: number): { dma_addrs: number[]; lengths: number[] } {
  const dma_addrs: number[] = [];
  const lengths: number[] = [];
  for (let sg = sgl; sg !== null && dma_addrs.length < n; sg = sg_next(sg)) {
    dma_addrs.push(sg_dma_address(sg));
    lengths.push(sg_dma_len(sg));
  }
  return { dma_addrs, lengths };
}
