/**
 * @module dma/swiotlb/bounce
 * `swiotlb_bounce`: the one contiguous copy between a bounce address and the original memory,
 * located and clamped through the slot that contains the bounce address.
 */
import type { KernelLog } from '../../core/kernel-log.ts';
import { low32 } from './bits.ts';
import { INVALID_PHYS_ADDR, IO_TLB_SIZE } from './constants.ts';
import type { SlotTable } from './slots.ts';

/**
 * Byte access to the simulated machine's physical memory (class Mm provides it). `fillPhys` is
 * optional: with it, clearing the pool at boot costs nothing on sparse memory.
 * @example const memory: SwiotlbMemory = machine.mm;
 */
export interface SwiotlbMemory {
  readPhysInto(phys: number, dst: Uint8Array, dstOff: number, len: number): void;
  writePhys(phys: number, src: Uint8Array, srcOff: number, len: number): void;
  fillPhys?(phys: number, len: number, value: number): void;
  /** With it, a bounce is one copy, not a read into scratch and a write back. */
  copyPhys?(dst: number, src: number, len: number): void;
}

/** Largest piece copied at once: a huge misuse copy fails in the memory model, not in a host allocation. */
const CHUNK = 64 * 1024;

/**
 * What a copy needs from its pool.
 * @example const ctx: BounceContext = { slots, start, memory: machine.mm, klog: machine.klog, scratch: bounceScratch() };
 */
export interface BounceContext {
  readonly slots: SlotTable;
  /** Pool start (physical). */
  readonly start: number;
  readonly memory: SwiotlbMemory;
  readonly klog: KernelLog;
  /** Reusable buffer of CHUNK bytes. */
  readonly scratch: Uint8Array;
}

/**
 * Allocate the scratch buffer a {@link BounceContext} needs.
 * @example bounceScratch().length // 65536
 */
export function bounceScratch(): Uint8Array {
  return new Uint8Array(CHUNK);
}

/**
 * Copy `size` bytes between the bounce buffer at `tlbAddr` and the original memory: to the bounce
 * buffer when `toDevice`, back to the original otherwise. The original address and the room left
 * come from the slot containing `tlbAddr`, shifted by how far `tlbAddr` sits from that slot's data
 * start (negative inside a later slot's first `offset` bytes). A slot without an original address
 * copies nothing. `size` above the room WARNs once and is clamped; a negative room (an address past
 * the allocation end) is huge as a size_t and clamps nothing. A copy reaching memory the model
 * refuses (a hole, past RAM) throws its KernelError EFAULT, after the 64 KiB pieces before it were
 * copied: where the kernel would oops.
 * @param keep the device's min_align_mask.
 * @example swiotlbBounce(ctx, tlb, 512, false, 0) // bounce → RAM, 512 bytes
 */
export function swiotlbBounce(ctx: BounceContext, tlbAddr: number, size: number, toDevice: boolean, keep: number): void {
  const index = Math.floor((tlbAddr - ctx.start) / IO_TLB_SIZE);
  const slotOrig = ctx.slots.orig[index] as number;
  if (slotOrig === INVALID_PHYS_ADDR) return;
  const shift = (tlbAddr % IO_TLB_SIZE) - ((low32(slotOrig) & keep & (IO_TLB_SIZE - 1)) >>> 0);
  const origAddr = slotOrig + shift;
  const room = (ctx.slots.room[index] as number) - shift;
  let len = size;
  if (room >= 0 && len > room) {
    ctx.klog.warnOnce('swiotlb_bounce:overflow', 'swiotlb_bounce', `Buffer overflow detected. Allocation size: ${room}. Mapping size: ${len}.\n`);
    len = room;
  }
  const src = toDevice ? origAddr : tlbAddr;
  const dst = toDevice ? tlbAddr : origAddr;
  const memory = ctx.memory;
  if (memory.copyPhys !== undefined) {
    if (len > 0) memory.copyPhys(dst, src, len);
    return;
  }
  const buf = ctx.scratch;
  for (let done = 0; done < len;) {
    const n = Math.min(CHUNK, len - done);
    ctx.memory.readPhysInto(src + done, buf, 0, n);
    ctx.memory.writePhys(dst + done, buf, 0, n);
    done += n;
  }
}

/**
 * Zero `bytes` at `start` (the pool at boot): through `fillPhys` when the memory has it (free on
 * sparse memory), else by writing zeros.
 * @example clearRange(machine.mm, 0x4000000, 64 * 2 ** 20)
 */
export function clearRange(memory: SwiotlbMemory, start: number, bytes: number): void {
  if (memory.fillPhys !== undefined) {
    memory.fillPhys(start, bytes, 0);
    return;
  }
  const zeros = new Uint8Array(Math.min(bytes, CHUNK));
  for (let done = 0; done < bytes; done += zeros.length) memory.writePhys(start + done, zeros, 0, Math.min(zeros.length, bytes - done));
}
