/**
 * @module scatterlist/slots
 * Storage for `struct scatterlist` slots: one arena per machine, struct-of-arrays in typed arrays,
 * handing out chunks the way sg_kmalloc does (a page of 128 slots, or a smaller kmalloc'd array).
 *
 * A slot is 7 uint32 words (28 bytes, under the kernel's 32): page frame low 32 bits (or chain
 * target), flags (link bits, dma_flags, page frame bits 32..39), offset, length, dma_address low
 * and high halves, dma_length. Slots live in fixed segments of
 * 8192; a chunk never crosses a segment, so a hot loop looks its segment up once per chunk.
 */
import type { KernelContext } from '../core/context.ts';
import { KernelBug } from '../core/errors.ts';
import { checkContext } from '../core/args.ts';

/** Words per slot. */
export const SLOT_WORDS = 7;
export const W_PAGE = 0;
export const W_FLAGS = 1;
export const W_OFFSET = 2;
export const W_LENGTH = 3;
export const W_DMA_LO = 4;
export const W_DMA_HI = 5;
export const W_DMA_LEN = 6;

/** page_link bit 0: this slot links to another chunk. */
export const SG_CHAIN = 0x1;
/** page_link bit 1: this slot is the last entry. */
export const SG_END = 0x2;
/** dma_flags live in the flags word from this bit on (16 bits: 8..23). */
export const DMA_FLAGS_SHIFT = 8;
/** Mask of dma_flags after shifting down. */
export const DMA_FLAGS_MASK = 0xffff;
/**
 * Bits 32..39 of the page frame live in the flags word from this bit on (pfns below 2^40, 52-bit
 * physical addresses). Chain links keep them 0. A slot stays 28 bytes: a wider page word would
 * cost every slot 4 bytes for pages most machines never have.
 */
export const PFN_HI_SHIFT = 24;
/** The flags-word bits that are not the pfn's high byte. */
export const FLAGS_LOW_MASK = 0x00ffffff;

/** log2 of slots per segment. */
export const SEG_SHIFT = 13;
export const SEG_SLOTS = 1 << SEG_SHIFT;
export const SEG_MASK = SEG_SLOTS - 1;

/** Slots in one page-sized chunk: PAGE_SIZE / sizeof(struct scatterlist) on x86_64. */
export const SG_MAX_SINGLE_ALLOC = 128;

const CLASSES = 8; // 1, 2, 4, ..., 128 slots
/** chunkClass flag: the chunk came from __get_free_page (n == SG_MAX_SINGLE_ALLOC), not kmalloc. */
const AS_PAGE = 0x10;

function classOf(n: number): number {
  return 32 - Math.clz32(n - 1);
}

/**
 * The slot arena of one machine.
 * @example
 * const arena = arenaOf(machine); const base = arena.allocChunk(128); arena.freeChunk(base, 128);
 */
export class SlotArena {
  readonly ctx: KernelContext;
  // INVARIANT: segs[k] holds slots [k*SEG_SLOTS, (k+1)*SEG_SLOTS); slot s starts at word
  //   (s & SEG_MASK) * SLOT_WORDS of segs[s >>> SEG_SHIFT].
  readonly segs: Uint32Array[] = [];
  // INVARIANT: chunkClass[seg][s & SEG_MASK] = class + 1 (+ AS_PAGE when it was allocated as a
  //   full page of SG_MAX_SINGLE_ALLOC slots) at the first slot of every live chunk (1 << class
  //   slots), 0 elsewhere; live chunks never overlap and never cross a segment.
  private readonly _chunkClass: Uint8Array[] = [];
  // INVARIANT: freeLists[c] holds first slots of free, class-aligned runs of 1 << c slots.
  private readonly _freeLists: number[][] = Array.from({ length: CLASSES }, () => []);
  /** Next never-used slot; the tail of the last segment. */
  private _bump = 0;
  /** Live chunks and the slots they span (for leak checks). */
  liveChunks = 0;
  liveSlots = 0;

  constructor(ctx: KernelContext) {
    this.ctx = ctx;
  }

  /** The segment holding slot `s`. */
  seg(s: number): Uint32Array {
    return this.segs[s >>> SEG_SHIFT] as Uint32Array;
  }

  /**
   * Allocate `n` (1..128) zeroed slots with the last one END-marked (sg_kmalloc + sg_init_table).
   * Returns the first slot, or -1 on (injected) allocation failure. `injectable` false: a
   * re-allocation standing for one the kernel already made (fault injection counts kernel calls).
   */
  allocChunk(n: number, injectable = true): number {
    if (injectable && this.ctx.faults.shouldFail('sg-chunk')) return -1;
    const c = classOf(n);
    const size = 1 << c;
    let base = this._freeLists[c]?.pop();
    if (base === undefined) base = this._carve(c);
    const seg = this.seg(base);
    const w = (base & SEG_MASK) * SLOT_WORDS;
    // Zero what sg_init_table zeroes: reused chunks hold old entries.
    seg.fill(0, w, w + n * SLOT_WORDS);
    seg[w + (n - 1) * SLOT_WORDS + W_FLAGS] = SG_END;
    (this._chunkClass[base >>> SEG_SHIFT] as Uint8Array)[base & SEG_MASK] = c + 1 + (n === SG_MAX_SINGLE_ALLOC ? AS_PAGE : 0);
    this.liveChunks++;
    this.liveSlots += size;
    return base;
  }

  /**
   * Free a chunk (sg_kfree). `n` is what the caller believes the chunk holds: as in the kernel, only
   * whether it is a full page (128) matters; the whole allocation is released.
   * @throws KernelBug for a slot that is not a live chunk, or a page freed as kmalloc memory (or
   *   the reverse): the kernel would corrupt its heap.
   */
  freeChunk(base: number, n: number): void {
    const c = this.chunkClassOf(base);
    if (c < 0) throw new KernelBug('sg_kfree', `slot ${base} is not a live scatterlist chunk (double free?)`);
    const asPage = (((this._chunkClass[base >>> SEG_SHIFT] as Uint8Array)[base & SEG_MASK] as number) & AS_PAGE) !== 0;
    if ((n === SG_MAX_SINGLE_ALLOC) !== asPage) {
      throw new KernelBug('sg_kfree', `chunk of ${1 << c} slots freed as ${n} slots: ${n === SG_MAX_SINGLE_ALLOC ? 'free_page on kmalloc memory' : 'kfree on a page'}`);
    }
    (this._chunkClass[base >>> SEG_SHIFT] as Uint8Array)[base & SEG_MASK] = 0;
    (this._freeLists[c] as number[]).push(base);
    this.liveChunks--;
    this.liveSlots -= 1 << c;
  }

  /** Is slot `s` inside a live chunk? (A freed table's entries are not.) */
  isLive(s: number): boolean {
    for (let c = 0; c < CLASSES; c++) {
      const base = s - (s % (1 << c));
      if (this.chunkClassOf(base) === c) return true;
    }
    return false;
  }

  /** Class of the live chunk starting at `base`, or -1. */
  chunkClassOf(base: number): number {
    const cls = this._chunkClass[base >>> SEG_SHIFT];
    if (cls === undefined || !Number.isInteger(base) || base < 0) return -1;
    return ((cls[base & SEG_MASK] ?? 0) & ~AS_PAGE) - 1;
  }

  /** Take a class-aligned run of 1 << c slots from the bump region, opening a segment if needed. */
  private _carve(c: number): number {
    const size = 1 << c;
    let base = Math.ceil(this._bump / size) * size;
    if (base + size > this.segs.length * SEG_SLOTS) {
      this._spill(this._bump, this.segs.length * SEG_SLOTS);
      this.segs.push(new Uint32Array(SEG_SLOTS * SLOT_WORDS));
      this._chunkClass.push(new Uint8Array(SEG_SLOTS));
      base = (this.segs.length - 1) * SEG_SLOTS;
    } else {
      this._spill(this._bump, base);
    }
    this._bump = base + size;
    return base;
  }

  /** Put the unused slots [from, to) on the free lists as aligned power-of-two runs. */
  private _spill(from: number, to: number): void {
    let s = from;
    while (s < to) {
      let c = CLASSES - 1;
      while (c > 0 && (s % (1 << c) !== 0 || s + (1 << c) > to)) c--;
      (this._freeLists[c] as number[]).push(s);
      s += 1 << c;
    }
  }
}

// The arena is the context's own state, declared by the layer that owns it (scatterlist/) rather
// than in core/, which knows nothing of scatterlists; no module-level map of machines.
declare module '../core/context.ts' {
  interface KernelContext {
    /** The scatterlist slot arena of this machine (created on first use by {@link arenaOf}). */
    sgArena?: SlotArena | undefined;
  }
}

/** The slot arena of a machine (or any kernel context), created on first use. */
export function arenaOf(ctx: KernelContext): SlotArena {
  checkContext(ctx, 'arenaOf', 'ctx');
  return (ctx.sgArena ??= new SlotArena(ctx));
}
