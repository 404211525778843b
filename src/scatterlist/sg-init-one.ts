/**
 * @module scatterlist/sg-init-one
 * Entries from kernel virtual addresses: sg_set_buf and sg_init_one.
 */
import { EFAULT } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { PAGE_OFFSET, PAGE_SIZE } from '../mm/constants.ts';
import { Scatterlist, sg_init_table, sg_set_page } from './entry.ts';
import { notInstance } from '../core/args.ts';

/**
 * sg_set_buf: point an entry at a direct-mapped buffer (virt_to_page + offset_in_page).
 * @example sg_set_buf(sg, mm.phys_to_virt(phys), 512)
 */
export function sg_set_buf(sg: Scatterlist, buf: number, buflen: number): void {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_set_buf', 'sg');
  if (!Number.isSafeInteger(buf) || buf < PAGE_OFFSET) {
    throw new KernelError(EFAULT, 'sg_set_buf', `0x${Number(buf).toString(16)} is not a direct-map address (vmalloc memory needs sg_set_page per page)`, 'buf');
  }
  const phys = buf - PAGE_OFFSET;
  const pfn = Math.floor(phys / PAGE_SIZE);
  sg_set_page(sg, pfn, buflen, phys - pfn * PAGE_SIZE);
}

/** sg_init_one: a one-entry list over a direct-mapped buffer. */
export function sg_init_one(sg: Scatterlist, buf: number, buflen: number): void {
  if (!(sg instanceof Scatterlist)) throw notInstance(sg, Scatterlist, 'sg_init_one', 'sg');
  sg_init_table(sg, 1);
  sg_set_buf(sg, buf, buflen);
}
