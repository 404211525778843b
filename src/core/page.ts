/**
 * @module core/page
 * The page size, needed below mm by the sparse memory (x86_64: 4 KiB pages).
 */
import { EINVAL } from './errno.ts';
import { KernelError } from './errors.ts';

/** log2 of the page size. */
export const PAGE_SHIFT = 12;
/** Bytes per page frame. */
export const PAGE_SIZE = 4096;

/**
 * Page frames the simulated physical address space holds: 2^40, i.e. 52-bit physical addresses
 * (MAX_PHYSMEM_BITS of x86-64 with 5-level paging). Every physical address stays an exact
 * JavaScript number (below 2^53).
 */
export const MAX_PFN_LIMIT = 2 ** 40;

/**
 * An array of page frame numbers: a Uint32Array on machines whose RAM ends at or below pfn 2^32
 * (16 TiB), a Float64Array on machines with RAM above it (see {@link pfnArray}).
 */
export type PfnArray = Uint32Array | Float64Array;

/**
 * A zeroed array for `n` pfns below `maxPfn`: 4 bytes a pfn when they fit in 32 bits, else 8.
 * @example pfnArray(512, machine.mm.maxPfn)
 */
export function pfnArray(n: number, maxPfn: number): PfnArray {
  // 2^30 pfns already describe 4 TiB of pages; larger requests are mistakes, not machines.
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > 2 ** 30) throw new KernelError(EINVAL, 'pfnArray', `expected a page count in [0, 2^30], got ${String(n)}`, 'n');
  if (typeof maxPfn !== 'number' || !Number.isSafeInteger(maxPfn) || maxPfn < 0 || maxPfn > MAX_PFN_LIMIT) throw new KernelError(EINVAL, 'pfnArray', `expected a pfn limit in [0, 2^40], got ${String(maxPfn)}`, 'maxPfn');
  return maxPfn > 2 ** 32 ? new Float64Array(n) : new Uint32Array(n);
}

/**
 * Walk [addr, addr + len) page by page: `visit(page, offset, done, n)` gets the page index
 * (addr / PAGE_SIZE), the offset inside that page, the bytes visited before, and the bytes in it.
 * @example forEachPageSpan(0xff0, 32, (pfn, off, done, n) => ...) // (0, 0xff0, 0, 16), (1, 0, 16, 16)
 */
export function forEachPageSpan(addr: number, len: number, visit: (page: number, offset: number, done: number, n: number) => void): void {
  if (typeof visit !== 'function') throw new KernelError(EINVAL, 'forEachPageSpan', 'expected a function', 'visit');
  // Past 2^53 adding a page no longer moves the position: the walk would never end.
  if (typeof addr !== 'number' || !Number.isSafeInteger(addr) || addr < 0) throw new KernelError(EINVAL, 'forEachPageSpan', `expected an address, got ${String(addr)}`, 'addr');
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0 || !Number.isSafeInteger(addr + len)) {
    throw new KernelError(EINVAL, 'forEachPageSpan', `expected a length that ends below 2^53, got ${String(len)}`, 'len');
  }
  let done = 0;
  while (done < len) {
    const a = addr + done;
    const page = Math.floor(a / PAGE_SIZE);
    const off = a - page * PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, len - done);
    visit(page, off, done, n);
    done += n;
  }
}
