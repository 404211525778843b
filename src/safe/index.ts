/** @module safe: the Rust-style abstractions over the kernel layers (rust/kernel/): Revocable, Devres<T>, VVec and Pages, SGTable<Borrowed|Owned>. */
export * from './revocable.ts';
export * from './devres.ts';
export * from './vvec.ts';
export * from './sgtable.ts';
