/**
 * @module dma/swiotlb/types
 * The records a pool takes and gives: its construction options, a live bounce mapping, an
 * area's state.
 */
import type { FaultInjector } from '../../core/fault.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import type { Size } from '../../core/size.ts';
import type { SwiotlbMemory } from './bounce.ts';

/**
 * How to build a pool.
 * @example { start: 0x4000000, size: '64M', areas: 2, memory: machine.mm, klog: machine.klog, faults: machine.faults }
 */
export interface SwiotlbPoolOptions {
  /** Physical start of the pool's memory; a multiple of 2048. */
  readonly start: number;
  /** Pool bytes: a multiple of 256 KiB (whole segments), or 0 for "no pool". Default 64 MiB. */
  readonly size?: Size;
  /** Areas: a power of two dividing the pool into whole segments. Default 1. */
  readonly areas?: number;
  /** Byte access to physical memory (a machine's `mm`). */
  readonly memory: SwiotlbMemory;
  /** Where messages and WARNs go. */
  readonly klog: KernelLog;
  /** Fault injection: `shouldFail('swiotlb')` is asked once per slot search. */
  readonly faults?: FaultInjector;
  /** Zero the pool memory, as boot does. Default true. */
  readonly clear?: boolean;
  /** Print `software IO TLB: mapped [mem ...] (<MB>MB)`. Default true. */
  readonly verbose?: boolean;
}

/**
 * A live bounce mapping, for auditors.
 * @example pool.liveMappings() // [{ orig: 0x100834, tlbAddr: 0x4000834, mappingSize: 4096, allocSize: 8192, firstSlot: 0, nslots: 4, padSlots: 1, area: 0 }]
 */
export interface SwiotlbMapping {
  /** Original physical address. */
  readonly orig: number;
  /** Bounce address returned to the caller. */
  readonly tlbAddr: number;
  /** `mapping_size` as asked. */
  readonly mappingSize: number;
  /** Rounded size: mapping_size + offset, aligned to alloc_align_mask + 1. */
  readonly allocSize: number;
  /** First allocated slot (padding slots included), pool-absolute. */
  readonly firstSlot: number;
  /** Allocated slots, padding included. */
  readonly nslots: number;
  /** Leading padding slots. */
  readonly padSlots: number;
  /** Area charged. */
  readonly area: number;
}

/**
 * The next-fit index (area-local) and used count of one area.
 * @example pool.areaState(1) // { index: 4, used: 4 }
 */
export interface SwiotlbAreaState {
  readonly index: number;
  readonly used: number;
}
