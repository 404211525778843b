/** @module scatterlist: struct scatterlist / sg_table, building from pages, iterators, copies. */
export * from './slots.ts';
export * from './entry.ts';
export * from './table.ts';
export * from './from-pages.ts';
export * from './iter.ts';
export * from './miter.ts';
export * from './sg-init-one.ts';
