/** @module device: buses, devices and drivers, type-states, Devres/Revocable, the device DMA engine. */
export * from './context.ts';
export * from './mask.ts';
export * from './devres.ts';
export * from './device.ts';
export * from './bus.ts';
export * from './dma-engine.ts';
