/**
 * @module dma/debug/checks
 * The checks run when a mapping is released or synced: `check_unmap` (exact lookup, then size, kind
 * or CPU address, sg count, direction and map-error check, then the entry is freed) and `check_sync`
 * (containing lookup walking back through the buckets, then range, direction and sg count).
 */
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, dmaDirectionName } from '../api/direction.ts';
import { dma_debug_coherent, dma_debug_noncoherent, dma_debug_sg, dmaDebugTypeName, HASH_SIZE, MAP_ERR_NOT_CHECKED } from './constants.ts';
import type { EntryRef } from './entries.ts';
import type { DebugState } from './state.ts';
import { decU64, hashBucket, hexA, u64LessEq, walkLimit } from './u64.ts';

/** An unmap or free reference: a lookup reference plus the CPU address it frees. */
export interface UnmapRef extends EntryRef {
  /** Physical address behind the CPU address (coherent / noncoherent frees), else 0. */
  readonly paddr: number;
}

/**
 * `check_unmap()`: find the entry by exact lookup and report every way the release differs from
 * the mapping; the entry is freed whatever was reported. A failed lookup gives one report only.
 */
export function checkUnmap(st: DebugState, ref: UnmapRef): void {
  const t = st.table;
  const r = st.reporter;
  const dev = ref.dev;
  const s = t.find(hashBucket(ref.devAddr), ref, 'exact');
  // Formatted only for a report: on every clean unmap they were most of check_unmap's cost
  // (map + unmap pair with dma-debug: see bench/RESULTS.md session 6).
  const addr = (): string => hexA(ref.devAddr);
  const size = (): string => decU64(ref.size);
  if (s < 0) {
    if (st.dmaMappingError(dev, ref.devAddr)) {
      r.error(dev, dev.driver, 'check_unmap', 'device driver tries to free an invalid DMA memory address\n');
    } else {
      r.error(dev, dev.driver, 'check_unmap', `device driver tries to free DMA memory it has not allocated [device address=${addr()}] [size=${size()} bytes]\n`);
    }
    return;
  }
  const eType = t.type[s] as number;
  if (t.size[s] !== ref.size) {
    r.error(dev, dev.driver, 'check_unmap',
      `device driver frees DMA memory with different size [device address=${addr()}] [map size=${decU64(t.size[s] as number)} bytes] [unmap size=${size()} bytes]\n`);
  }
  if (eType !== ref.type) {
    r.error(dev, dev.driver, 'check_unmap',
      `device driver frees DMA memory with wrong function [device address=${addr()}] [size=${size()} bytes] [mapped as ${dmaDebugTypeName(eType)}] [unmapped as ${dmaDebugTypeName(ref.type)}]\n`);
  } else if ((eType === dma_debug_coherent || eType === dma_debug_noncoherent) && ref.paddr !== t.paddr[s]) {
    // %pa already prints 0x, and the format adds another; this line has no newline.
    r.error(dev, dev.driver, 'check_unmap',
      `device driver frees DMA memory with different CPU address [device address=${addr()}] [size=${size()} bytes] [cpu alloc address=0x${hexA(t.paddr[s] as number)}] [cpu free address=0x${hexA(ref.paddr)}]`);
  }
  if (ref.sgCallEnts !== 0 && ref.type === dma_debug_sg && ref.sgCallEnts !== t.sgCallEnts[s]) {
    r.error(dev, dev.driver, 'check_unmap',
      `device driver frees DMA sg list with different entry count [map count=${t.sgCallEnts[s] as number}] [unmap count=${ref.sgCallEnts}]\n`);
  }
  if (ref.dir !== t.dir[s]) {
    r.error(dev, dev.driver, 'check_unmap',
      `device driver frees DMA memory with different direction [device address=${addr()}] [size=${size()} bytes] [mapped with ${dmaDirectionName(t.dir[s] as number)}] [unmapped with ${dmaDirectionName(ref.dir)}]\n`);
  }
  if (t.mapErr[s] === MAP_ERR_NOT_CHECKED) {
    // No space before the first '[' and no newline, as the kernel prints it.
    r.error(dev, dev.driver, 'check_unmap',
      `device driver failed to check map error[device address=${addr()}] [size=${size()} bytes] [mapped as ${dmaDebugTypeName(eType)}]`);
  }
  st.entryRemove(s);
}

/**
 * `bucket_find_contain()`: the entry of `ref.dev` covering `[ref.devAddr, +ref.size)`, searching
 * the address's bucket and then up to `min(16384, (addr >> 13) + 1)` buckets in all, each 8 KiB lower.
 * @returns the slot, or -1
 */
export function findContaining(st: DebugState, ref: EntryRef): number {
  const limit = walkLimit(ref.devAddr);
  let b = hashBucket(ref.devAddr);
  for (let i = 0; i < limit; i++) {
    const s = st.table.find(b, ref, 'contain');
    if (s >= 0) return s;
    b = (b + HASH_SIZE - 1) % HASH_SIZE;
  }
  return -1;
}

/** `check_sync()`: the checks of one single or sg-segment sync, `toCpu` for the *_for_cpu calls. */
export function checkSync(st: DebugState, ref: EntryRef, toCpu: boolean): void {
  const t = st.table;
  const r = st.reporter;
  const dev = ref.dev;
  const s = findContaining(st, ref);
  const addr = (): string => hexA(ref.devAddr);
  if (s < 0) {
    r.error(dev, dev.driver, 'check_sync', `device driver tries to sync DMA memory it has not allocated [device address=${addr()}] [size=${decU64(ref.size)} bytes]\n`);
    return;
  }
  const eSize = t.size[s] as number;
  if (!u64LessEq(ref.size, eSize)) {
    r.error(dev, dev.driver, 'check_sync',
      `device driver syncs DMA memory outside allocated range [device address=${hexA(t.devAddr[s] as number)}] [allocation size=${decU64(eSize)} bytes] [sync offset+size=${decU64(ref.size)}]\n`);
  }
  const eDir = t.dir[s] as number;
  if (eDir === DMA_BIDIRECTIONAL) return;
  const tail = (): string => `[device address=${addr()}] [size=${decU64(eSize)} bytes] [mapped with ${dmaDirectionName(eDir)}] [synced with ${dmaDirectionName(ref.dir)}]\n`;
  if (ref.dir !== eDir) r.error(dev, dev.driver, 'check_sync', `device driver syncs DMA memory with different direction ${tail()}`);
  if (toCpu && eDir !== DMA_FROM_DEVICE && ref.dir !== DMA_TO_DEVICE) {
    r.error(dev, dev.driver, 'check_sync', `device driver syncs device read-only DMA memory for cpu ${tail()}`);
  }
  if (!toCpu && eDir !== DMA_TO_DEVICE && ref.dir !== DMA_FROM_DEVICE) {
    r.error(dev, dev.driver, 'check_sync', `device driver syncs device write-only DMA memory to device ${tail()}`);
  }
  if (ref.sgCallEnts !== 0 && ref.type === dma_debug_sg && ref.sgCallEnts !== t.sgCallEnts[s]) {
    r.error(dev, dev.driver, 'check_sync',
      `device driver syncs DMA sg list with different entry count [map count=${t.sgCallEnts[s] as number}] [sync count=${ref.sgCallEnts}]\n`);
  }
}

/** `get_nr_mapped_entries()`: the mapped count stored with the sg entry `ref` finds, else 0. */
export function nrMappedEntries(st: DebugState, ref: EntryRef): number {
  const s = st.table.find(hashBucket(ref.devAddr), ref, 'exact');
  return s < 0 ? 0 : (st.table.sgMappedEnts[s] as number);
}
