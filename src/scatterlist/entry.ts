/**
 * @module scatterlist/entry
 * `struct scatterlist` handles and the header primitives (sg_set_page, sg_next, sg_chain, ...).
 * A handle is a light (arena, slot) pair; equal slots give `toEqual` handles.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { MAX_PFN_LIMIT } from '../core/page.ts';
import {
  DMA_FLAGS_MASK, DMA_FLAGS_SHIFT, FLAGS_LOW_MASK, PFN_HI_SHIFT, SEG_MASK, SG_CHAIN, SG_END, SLOT_WORDS, type SlotArena,
  W_DMA_LEN, W_FLAGS, W_LENGTH, W_OFFSET, W_PAGE,
} from './slots.ts';
import { notInstance } from '../core/args.ts';
import { nextSlot, setSlotDmaAddress, setSlotWord, slotDmaAddress, slotPfn, slotWord } from './walk.ts';

/** sg_dma_flags bit: the DMA address is a PCI bus address (P2PDMA). */
export const SG_DMA_BUS_ADDRESS = 1 << 0;
/** sg_dma_flags bit: the entry was bounced through swiotlb. */
export const SG_DMA_SWIOTLB = 1 << 1;

/**
 * dmasim's DMA_MAPPING_ERROR. The kernel's value is ~0 (the top u64), which a JavaScript number
 * cannot hold exactly; -1 is never a valid DMA address and stays exact.
 */
export const DMA_MAPPING_ERROR = -1;

const TWO32 = 2 ** 32;

/**
 * One `struct scatterlist` slot.
 * @example
 * sg_set_page(sg, pfn, 4096, 0); sg.length // 4096
 */
export class Scatterlist {
  readonly arena: SlotArena;
  /** Slot index in the arena. */
  readonly slot: number;

  constructor(arena: SlotArena, slot: number) {
    this.arena = arena;
    this.slot = slot;
  }

  // The words are read and written as the DMA passes read them (src/scatterlist/walk.ts): one
  // encoding of a slot, whether through a handle or by slot number.
  private _get(field: number): number {
    return slotWord(this.arena.segs, this.slot, field);
  }

  private _set(field: number, v: number): void {
    setSlotWord(this.arena.segs, this.slot, field, v);
  }

  /** Page frame of the entry (sg_page), or the chain target slot for a chain link. */
  get page(): number { return slotPfn(this.arena.segs, this.slot); }
  /** SG_CHAIN | SG_END bits. */
  get link_flags(): number { return this._get(W_FLAGS) & (SG_CHAIN | SG_END); }
  get offset(): number { return this._get(W_OFFSET); }
  set offset(v: number) { this._set(W_OFFSET, v >>> 0); }
  get length(): number { return this._get(W_LENGTH); }
  set length(v: number) { this._set(W_LENGTH, v >>> 0); }
  get dma_address(): number { return slotDmaAddress(this.arena.segs, this.slot); }
  set dma_address(v: number) { setSlotDmaAddress(this.arena.segs, this.slot, v); }
  get dma_length(): number { return this._get(W_DMA_LEN); }
  set dma_length(v: number) { this._set(W_DMA_LEN, v >>> 0); }
  get dma_flags(): number { return (this._get(W_FLAGS) >>> DMA_FLAGS_SHIFT) & DMA_FLAGS_MASK; }
  set dma_flags(v: number) {
    const keep = this._get(W_FLAGS) & ~(DMA_FLAGS_MASK << DMA_FLAGS_SHIFT);
    this._set(W_FLAGS, (keep | ((v & DMA_FLAGS_MASK) << DMA_FLAGS_SHIFT)) >>> 0);
  }

  /** @internal raw flags word */
  get flagsWord(): number { return this._get(W_FLAGS); }
  set flagsWord(v: number) { this._set(W_FLAGS, v >>> 0); }
  /** @internal raw page word: the low 32 bits of the pfn, or a chain link's target slot */
  get pageWord(): number { return this._get(W_PAGE); }
  set pageWord(v: number) { this._set(W_PAGE, v); }
  /** @internal write a page frame: its low word, and bits 32..39 into the flags word */
  setPfn(pfn: number): void {
    this._set(W_PAGE, pfn >>> 0);
    this._set(W_FLAGS, ((this._get(W_FLAGS) & FLAGS_LOW_MASK) | (Math.floor(pfn / TWO32) << PFN_HI_SHIFT)) >>> 0);
  }

  /** The entry `n` slots further in the same array (pointer arithmetic, `&sg[n]`). */
  at(n: number): Scatterlist {
    return new Scatterlist(this.arena, this.slot + n);
  }
}

function checkPfn(fn: string, pfn: number): void {
  if (typeof pfn !== 'number' || !Number.isInteger(pfn) || pfn < 0 || pfn >= MAX_PFN_LIMIT) {
    throw new KernelError(EINVAL, fn, `expected a page frame number in [0, 2^40), got ${String(pfn)}`, 'page');
  }
}

/** sg_assign_page: set the page, keeping the CHAIN/END bits. */
export function sg_assign_page(sg: Scatterlist, page: number): void {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_assign_page', 'sg');
  checkPfn('sg_assign_page', page);
  sg.setPfn(page);
}

/** sg_set_page: assign the page, then set offset and length. */
export function sg_set_page(sg: Scatterlist, page: number, len: number, offset: number): void {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_set_page', 'sg');
  sg_assign_page(sg, page);
  sg.offset = offset;
  sg.length = len;
}

/** sg_page: the entry's page frame. */
export function sg_page(sg: Scatterlist): number {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_page', 'sg');
  return sg.page;
}

/** sg_is_chain: is this slot a link to another chunk? */
export function sg_is_chain(sg: Scatterlist): boolean {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_is_chain', 'sg');
  return (sg.flagsWord & SG_CHAIN) !== 0;
}

/** sg_is_last: is this the END-marked entry? */
export function sg_is_last(sg: Scatterlist): boolean {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_is_last', 'sg');
  return (sg.flagsWord & SG_END) !== 0;
}

/** sg_chain_ptr: where a chain slot points. */
export function sg_chain_ptr(sg: Scatterlist): Scatterlist {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_chain_ptr', 'sg');
  return new Scatterlist(sg.arena, sg.pageWord);
}

/** sg_mark_end: set END and clear CHAIN. */
export function sg_mark_end(sg: Scatterlist): void {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_mark_end', 'sg');
  sg.flagsWord = (sg.flagsWord | SG_END) & ~SG_CHAIN;
}

/** sg_unmark_end: clear END. */
export function sg_unmark_end(sg: Scatterlist): void {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_unmark_end', 'sg');
  sg.flagsWord = sg.flagsWord & ~SG_END;
}

/**
 * Check that `nents` entries can be walked from `sgl` through live slots, before anything is done
 * with them: a list shorter than `nents`, or a freed table's entries, would have the kernel walk
 * into freed or foreign memory (an oops), so it is a KernelBug here with nothing changed.
 * @example sg_check_walk(sgt.sgl, sgt.orig_nents, 'dma_map_sg_attrs')
 */
export function sg_check_walk(sgl: Scatterlist, nents: number, fn: string): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'sg_check_walk', 'sgl');
  const arena = sgl.arena;
  const segs = arena.segs;
  let slot = sgl.slot;
  let prevSlot = -2;
  for (let i = 0; i < nents; i++) {
    if (slot < 0) throw new KernelBug(fn, `the scatterlist ends after ${i} entries, but nents is ${nents}`);
    // Liveness changes only where the walk jumps (a chunk's first slot, a chain target).
    if (slot !== prevSlot + 1 && !arena.isLive(slot)) throw new KernelBug(fn, `entry ${i} of the scatterlist lies in freed memory (use after sg_free_table?)`);
    prevSlot = slot;
    slot = i + 1 < nents ? nextSlot(segs, slot) : -1;
  }
}

/**
 * sg_next: the next data entry, following one chain link; null after the END entry.
 * @example for (let sg: Scatterlist | null = sgt.sgl; sg; sg = sg_next(sg)) total += sg.length;
 */
export function sg_next(sg: Scatterlist): Scatterlist | null {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_next', 'sg');
  if (sg_is_last(sg)) return null;
  const next = sg.at(1);
  return sg_is_chain(next) ? sg_chain_ptr(next) : next;
}

/** sg_init_table: zero `nents` slots from `sgl` and END-mark the last. */
export function sg_init_table(sgl: Scatterlist, nents: number): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'sg_init_table', 'sgl');
  if (!Number.isInteger(nents) || nents < 1) throw new KernelError(EINVAL, 'sg_init_table', `expected nents >= 1, got ${nents}`, 'nents');
  const seg = sgl.arena.seg(sgl.slot);
  const w = (sgl.slot & SEG_MASK) * SLOT_WORDS;
  if (seg === undefined || w + nents * SLOT_WORDS > seg.length) throw new KernelError(EINVAL, 'sg_init_table', 'the array is shorter than nents', 'nents');
  seg.fill(0, w, w + nents * SLOT_WORDS);
  sg_mark_end(sgl.at(nents - 1));
}

/** sg_init_marker: END-mark slot nents-1 without zeroing. */
export function sg_init_marker(sgl: Scatterlist, nents: number): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'sg_init_marker', 'sgl');
  sg_mark_end(sgl.at(nents - 1));
}

/** __sg_chain: turn `chain_sg` into a link to `next` (offset and length zeroed). */
export function __sg_chain(chain_sg: Scatterlist, next: Scatterlist): void {
  if (chain_sg.arena !== next.arena) throw new KernelError(EINVAL, '__sg_chain', 'cannot chain arrays of different machines', 'next');
  chain_sg.offset = 0;
  chain_sg.length = 0;
  chain_sg.pageWord = next.slot;
  // The link replaces page_link whole: no pfn bits survive in it.
  chain_sg.flagsWord = (chain_sg.flagsWord & FLAGS_LOW_MASK & ~(SG_CHAIN | SG_END)) | SG_CHAIN;
}

/** sg_chain: link slot prv[prv_nents - 1] to `sgl`; that slot stops being data. */
export function sg_chain(prv: Scatterlist, prv_nents: number, sgl: Scatterlist): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'sg_chain', 'sgl');
  if (!(prv instanceof Scatterlist)) throw notInstance(prv, Scatterlist, 'sg_chain', 'prv');
  // A chain link holds a slot number of its own machine's arena: another machine's list cannot be linked.
  if (sgl.arena !== prv.arena) throw new KernelError(EINVAL, 'sg_chain', `the lists belong to machines ${prv.arena.ctx.name} and ${sgl.arena.ctx.name}`, 'sgl');
  if (typeof prv_nents !== 'number' || !Number.isInteger(prv_nents) || prv_nents < 1) throw new KernelError(EINVAL, 'sg_chain', `expected an entry count, got ${String(prv_nents)}`, 'prv_nents');
  __sg_chain(prv.at(prv_nents - 1), sgl);
}

/** sg_phys: physical address of the entry's first byte. */
export function sg_phys(sg: Scatterlist): number {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_phys', 'sg');
  return sg.page * PAGE_SIZE + sg.offset;
}

/**
 * sg_dma_address: read it, or write it when `value` is given (the C macro is an lvalue).
 * @example sg_dma_address(sg, 0x1000); sg_dma_address(sg) // 0x1000
 */
export function sg_dma_address(sg: Scatterlist, value?: number): number {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_address', 'sg');
  if (value !== undefined) sg.dma_address = value;
  return sg.dma_address;
}

/** sg_dma_len: read it, or write it when `value` is given. */
export function sg_dma_len(sg: Scatterlist, value?: number): number {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_len', 'sg');
  if (value !== undefined) sg.dma_length = value;
  return sg.dma_length;
}

export function sg_dma_is_bus_address(sg: Scatterlist): boolean { if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_is_bus_address', 'sg'); return (sg.dma_flags & SG_DMA_BUS_ADDRESS) !== 0; }
export function sg_dma_mark_bus_address(sg: Scatterlist): void { if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_mark_bus_address', 'sg'); sg.dma_flags |= SG_DMA_BUS_ADDRESS; }
export function sg_dma_unmark_bus_address(sg: Scatterlist): void { if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_unmark_bus_address', 'sg'); sg.dma_flags &= ~SG_DMA_BUS_ADDRESS; }
export function sg_dma_is_swiotlb(sg: Scatterlist): boolean { if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_is_swiotlb', 'sg'); return (sg.dma_flags & SG_DMA_SWIOTLB) !== 0; }
export function sg_dma_mark_swiotlb(sg: Scatterlist): void { if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_dma_mark_swiotlb', 'sg'); sg.dma_flags |= SG_DMA_SWIOTLB; }

/** NULL dereference in the simulated kernel. */
export function oops(fn: string, what: string): never {
  throw new KernelBug(fn, `Unable to handle kernel NULL pointer dereference (${what})`);
}
