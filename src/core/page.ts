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
