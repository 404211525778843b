/** @module mm: physical memory, zones, the buddy allocator, sparse contents, vmalloc, fragmentation. */
export * from './constants.ts';
export * from './gfp.ts';
export * from './layout.ts';
export * from './page-meta.ts';
export { FreeArea } from './buddy.ts';
export * from './vmalloc.ts';
export * from './user.ts';
export * from './mm.ts';
export * from './fragment.ts';
export * from './slab.ts';
export * from './audit.ts';
