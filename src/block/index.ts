/** @module block: bios, requests, queue limits and blk_rq_map_sg (the block layer as a driver's DMA path sees it). */
export * from './limits.ts';
export * from './bio.ts';
export * from './request.ts';
export * from './map-sg.ts';
