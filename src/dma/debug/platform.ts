/**
 * @module dma/debug/platform
 * The machine facts dma-debug depends on, as plain data and callbacks: the architecture (cache
 * alignment, L1 line size, unaligned-kmalloc bouncing), the kernel's view of memory (linear map,
 * vmalloc space, valid and reserved pfns), the kernel image sections, the current task's stack and
 * whether swiotlb is active for a device.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { PAGE_SIZE } from '../../core/page.ts';
import { PAGE_OFFSET, VMALLOC_END, VMALLOC_START } from '../../mm/constants.ts';
import type { DebugDevice } from './device.ts';

/** Architecture facts. */
export interface DebugArch {
  readonly name: string;
  /** `dma_get_cache_alignment()`: the overlap report needs it at least `l1CacheBytes`. */
  readonly cacheAlignment: number;
  /** `L1_CACHE_BYTES`, a power of two: the size of a tracked cacheline. */
  readonly l1CacheBytes: number;
  /** `CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC`: overlaps are not reported when swiotlb is active for the device. */
  readonly bounceUnalignedKmalloc: boolean;
}

/**
 * x86_64: `dma_get_cache_alignment()` is 1, so the overlap report never appears (v7.0+).
 * @example new DmaDebug(machine, { arch: ARCH_X86_64 })
 */
export const ARCH_X86_64: DebugArch = Object.freeze({ name: 'x86_64', cacheAlignment: 1, l1CacheBytes: 64, bounceUnalignedKmalloc: false });

/**
 * arm64: ARCH_DMA_MINALIGN 128 against 64-byte L1 lines, and DMA_BOUNCE_UNALIGNED_KMALLOC on, so
 * overlaps are reported unless swiotlb is active for the device.
 * @example new DmaDebug(machine, { arch: ARCH_ARM64 })
 */
export const ARCH_ARM64: DebugArch = Object.freeze({ name: 'arm64', cacheAlignment: 128, l1CacheBytes: 64, bounceUnalignedKmalloc: true });

/** The kernel's view of memory, as far as dma-debug asks about it. */
export interface DebugMemory {
  /** `phys_to_virt()`: the linear-map address of a physical address. */
  physToVirt(phys: number): number;
  /** `virt_addr_valid()`: a linear-map address with a valid pfn behind it. */
  virtAddrValid(virt: number): boolean;
  /** `is_vmalloc_addr()`. */
  isVmallocAddr(virt: number): boolean;
  /**
   * The physical address behind a linear-map or vmalloc address (`virt_to_paddr()`, which goes
   * through `vmalloc_to_page()` for vmalloc). Undefined for a vmalloc address with no page.
   */
  virtToPhys(virt: number): number | undefined;
  /** `pfn_valid()`. */
  pfnValid(pfn: number): boolean;
  /** `PageReserved()` of a valid pfn. */
  pageReserved(pfn: number): boolean;
}

/** How to build a {@link linearDebugMemory}. */
export interface LinearMemoryOptions {
  /** Linear-map base (default dmasim's PAGE_OFFSET, 2^52). */
  readonly pageOffset?: number;
  /** vmalloc space [start, end) (default dmasim's VMALLOC_START/END). */
  readonly vmallocStart?: number;
  readonly vmallocEnd?: number;
  /** RAM ranges in pfns; pfn_valid is "inside one of them". Default: every pfn below 2^32. */
  readonly ram?: readonly { readonly startPfn: number; readonly endPfn: number }[];
  /** PageReserved (default: no page is). */
  readonly reserved?: (pfn: number) => boolean;
  /** vmalloc_to_page + offset (default: no vmalloc address has a page). */
  readonly vmallocToPhys?: (virt: number) => number | undefined;
}

/**
 * A {@link DebugMemory} with a linear map at `pageOffset` over the given RAM.
 * @example
 * linearDebugMemory({ ram: m.mm.ram, reserved: (pfn) => (m.mm.meta.stateOf(pfn) & PG_RESERVED) !== 0,
 *   vmallocToPhys: (v) => { const a = m.mm.findVmArea(v); return a && a.pages[Math.floor((v - a.addr) / 4096)]! * 4096 + (v % 4096); } })
 */
export function linearDebugMemory(opts: LinearMemoryOptions = {}): DebugMemory {
  const pageOffset = opts.pageOffset ?? PAGE_OFFSET;
  const vStart = opts.vmallocStart ?? VMALLOC_START;
  const vEnd = opts.vmallocEnd ?? VMALLOC_END;
  const ram = opts.ram;
  const reserved = opts.reserved;
  const vmallocToPhys = opts.vmallocToPhys;
  const pfnValid = ram === undefined
    ? (pfn: number): boolean => pfn >= 0 && pfn < 2 ** 32
    : (pfn: number): boolean => ram.some((r) => pfn >= r.startPfn && pfn < r.endPfn);
  const isVmallocAddr = (v: number): boolean => v >= vStart && v < vEnd;
  const isLinear = (v: number): boolean => v >= pageOffset && v < vStart;
  return {
    physToVirt: (phys) => pageOffset + phys,
    virtAddrValid: (v) => isLinear(v) && pfnValid(Math.floor((v - pageOffset) / PAGE_SIZE)),
    isVmallocAddr,
    virtToPhys: (v) => (isVmallocAddr(v) ? vmallocToPhys?.(v) : v - pageOffset),
    pfnValid,
    pageReserved: (pfn) => reserved?.(pfn) ?? false,
  };
}

/** The kernel text and rodata sections, as linear-map address ranges [start, end). */
export interface KernelImage {
  readonly text: readonly [number, number];
  readonly rodata: readonly [number, number];
}

/**
 * The current task's stack: direct-mapped (`THREAD_SIZE` bytes at `base`, checked by address) or
 * vmapped (`pages[i]` backs `base + i * PAGE_SIZE`, checked by pfn).
 */
export type TaskStack =
  | { readonly kind: 'direct'; readonly base: number; readonly size: number }
  | { readonly kind: 'vmap'; readonly base: number; readonly pages: ArrayLike<number> };

/** Every platform fact, resolved. */
export interface DebugPlatform {
  readonly arch: DebugArch;
  readonly memory: DebugMemory;
  /** Absent: the image is outside the linear map (x86-64), so the text/rodata check never fires. */
  readonly kernelImage: KernelImage | undefined;
  /** The stack of the task making the call; undefined skips the stack check. */
  currentStack(): TaskStack | undefined;
  /** `is_swiotlb_active(dev)`. */
  isSwiotlbActive(dev: DebugDevice): boolean;
}

/** Platform options: every field optional. */
export interface DebugPlatformOptions {
  /** Default {@link ARCH_X86_64}. */
  readonly arch?: DebugArch;
  /** Default `linearDebugMemory()`. */
  readonly memory?: DebugMemory;
  readonly kernelImage?: KernelImage;
  /** The current task's stack, or a function giving it at each call. Default: none. */
  readonly stack?: TaskStack | (() => TaskStack | undefined);
  /** `is_swiotlb_active(dev)`, for every device or per device. Default false. */
  readonly swiotlbActive?: boolean | ((dev: DebugDevice) => boolean);
}

/**
 * Fill the defaults and check the arch.
 * @throws KernelError EINVAL when `l1CacheBytes` is not a power of two or `cacheAlignment` is not ≥ 1.
 * @example resolvePlatform({ arch: ARCH_ARM64 }).arch.cacheAlignment // 128
 */
export function resolvePlatform(opts: DebugPlatformOptions = {}): DebugPlatform {
  const arch = opts.arch ?? ARCH_X86_64;
  const l1 = arch.l1CacheBytes;
  if (!(Number.isInteger(l1) && l1 >= 1 && l1 <= PAGE_SIZE && (l1 & (l1 - 1)) === 0)) {
    throw new KernelError(EINVAL, 'DmaDebug', `L1_CACHE_BYTES must be a power of two up to PAGE_SIZE, got ${l1}`, 'arch.l1CacheBytes');
  }
  if (!(Number.isInteger(arch.cacheAlignment) && arch.cacheAlignment >= 1)) {
    throw new KernelError(EINVAL, 'DmaDebug', `dma_get_cache_alignment() must be a whole number >= 1, got ${arch.cacheAlignment}`, 'arch.cacheAlignment');
  }
  const stack = opts.stack;
  const swiotlb = opts.swiotlbActive ?? false;
  return {
    arch,
    memory: opts.memory ?? linearDebugMemory(),
    kernelImage: opts.kernelImage,
    currentStack: typeof stack === 'function' ? stack : () => stack,
    isSwiotlbActive: typeof swiotlb === 'function' ? swiotlb : () => swiotlb,
  };
}
