/**
 * @module dma/debug/record
 * The hooks that record: dma_map_single's pointer checks, then one entry per phys mapping, per
 * mapped sg segment, per coherent or noncoherent allocation, each with the checks that run when
 * mapping. `DmaDebug` exposes them under the kernel's names.
 */
import { PAGE_SIZE } from '../../core/page.ts';
import { DMA_BIDIRECTIONAL } from '../api/direction.ts';
import { DMA_ATTR_MMIO, dma_debug_coherent, dma_debug_noncoherent, dma_debug_phy, dma_debug_sg, MAP_ERR_NOT_CHECKED } from './constants.ts';
import type { DebugDevice } from './device.ts';
import { checkForIllegalArea, checkForStack, checkMmio, checkSgSegment } from './map-checks.ts';
import { forEachSg, sgPhys, type DebugSgList } from './sg.ts';
import type { DebugState } from './state.ts';
import { decU64, hex16 } from './u64.ts';

/** `debug_dma_map_single()`: the pointer is not a valid linear-map address; it is a vmalloc address. */
export function mapSingle(st: DebugState, dev: DebugDevice, addr: number, len: number): void {
  if (st.disabled()) return;
  const mem = st.platform.memory;
  if (!mem.virtAddrValid(addr)) {
    st.reporter.error(dev, dev.driver, 'debug_dma_map_single', `device driver maps memory from invalid area [addr=${hex16(addr)}] [len=${decU64(len)}]\n`);
  }
  if (mem.isVmallocAddr(addr)) {
    st.reporter.error(dev, dev.driver, 'debug_dma_map_single', `device driver maps memory from vmalloc area [addr=${hex16(addr)}] [len=${decU64(len)}]\n`);
  }
}

/** `debug_dma_map_phys()`: a `phy` entry, the MMIO or stack/image checks, then the cacheline claim. */
export function mapPhys(st: DebugState, dev: DebugDevice, phys: number, size: number, dir: number, dmaAddr: number, attrs: number): void {
  if (st.disabled()) return;
  if (st.dmaMappingError(dev, dmaAddr)) return;
  const s = st.entryAlloc();
  if (s < 0) return;
  const t = st.table;
  t.fill(s, dma_debug_phy, dev, phys, dmaAddr, size, dir);
  t.mapErr[s] = MAP_ERR_NOT_CHECKED;
  if ((attrs & DMA_ATTR_MMIO) !== 0) checkMmio(st, dev, phys);
  else {
    checkForStack(st, dev, phys);
    checkForIllegalArea(st, dev, st.platform.memory.physToVirt(phys), size);
  }
  st.addEntry(s, attrs);
}

/**
 * `debug_dma_map_sg()`: the stack and image checks over all `nents` entries, then for each of the
 * first `mappedEnts` an entry, the length and boundary checks and the cacheline claim. Stops at an
 * entry allocation failure; keeps going after a cacheline ENOMEM, as the kernel's loop does.
 */
export function mapSg(st: DebugState, dev: DebugDevice, sg: DebugSgList, nents: number, mappedEnts: number, dir: number, attrs: number): void {
  if (st.disabled()) return;
  const mem = st.platform.memory;
  forEachSg(sg, nents, (s) => {
    const phys = sgPhys(s);
    checkForStack(st, dev, phys);
    checkForIllegalArea(st, dev, mem.physToVirt(phys), s.length);
  });
  const t = st.table;
  forEachSg(sg, mappedEnts, (s) => {
    const e = st.entryAlloc();
    if (e < 0) return false;
    t.fill(e, dma_debug_sg, dev, sgPhys(s), s.dma_address, s.dma_length, dir);
    t.sgCallEnts[e] = nents;
    t.sgMappedEnts[e] = mappedEnts;
    checkSgSegment(st, dev, s);
    st.addEntry(e, attrs);
    return true;
  });
}

/** `debug_dma_alloc_coherent()`: a BIDIRECTIONAL `coherent` entry, for a linear or vmalloc CPU address only. */
export function allocCoherent(st: DebugState, dev: DebugDevice, size: number, dmaAddr: number, virt: number | null, attrs: number): void {
  if (st.disabled()) return;
  if (virt === null || virt === 0) return;
  const mem = st.platform.memory;
  if (!mem.isVmallocAddr(virt) && !mem.virtAddrValid(virt)) return;
  const paddr = mem.virtToPhys(virt);
  if (paddr === undefined) return;
  const s = st.entryAlloc();
  if (s < 0) return;
  st.table.fill(s, dma_debug_coherent, dev, paddr, dmaAddr, size, DMA_BIDIRECTIONAL);
  st.addEntry(s, attrs);
}

/** `debug_dma_alloc_pages()`: a `noncoherent` entry at the page's physical address. */
export function allocPages(st: DebugState, dev: DebugDevice, page: number, size: number, dir: number, dmaAddr: number, attrs: number): void {
  if (st.disabled()) return;
  const s = st.entryAlloc();
  if (s < 0) return;
  st.table.fill(s, dma_debug_noncoherent, dev, page * PAGE_SIZE, dmaAddr, size, dir);
  st.addEntry(s, attrs);
}
