/**
 * @module dma/api/direction
 * `enum dma_data_direction` with the kernel's values, shared by every DMA layer.
 */

/** Data moves both ways (kernel value 0). */
export const DMA_BIDIRECTIONAL = 0;
/** The device reads memory (kernel value 1). */
export const DMA_TO_DEVICE = 1;
/** The device writes memory (kernel value 2). */
export const DMA_FROM_DEVICE = 2;
/** No direction: invalid for streaming mappings at the DMA API level (kernel value 3). */
export const DMA_NONE = 3;

/** One of the four `enum dma_data_direction` values. */
export type DmaDirection = typeof DMA_BIDIRECTIONAL | typeof DMA_TO_DEVICE | typeof DMA_FROM_DEVICE | typeof DMA_NONE;

const NAMES = ['DMA_BIDIRECTIONAL', 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE', 'DMA_NONE'] as const;

/**
 * Is `value` one of the four enum values (DMA_NONE included)?
 * @example isDmaDirection(2) // true; isDmaDirection(7) // false
 */
export function isDmaDirection(value: unknown): value is DmaDirection {
  return value === 0 || value === 1 || value === 2 || value === 3;
}

/**
 * The kernel's `valid_dma_direction()`: BIDIRECTIONAL, TO_DEVICE or FROM_DEVICE (not DMA_NONE).
 * @example valid_dma_direction(DMA_NONE) // false
 */
export function valid_dma_direction(dir: number): boolean {
  return dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE || dir === DMA_FROM_DEVICE;
}

/**
 * The C name of a direction, as dma-debug prints it (`DMA_TO_DEVICE`, ...); anything else gives
 * `'invalid direction <n>'`.
 * @example dmaDirectionName(DMA_FROM_DEVICE) // 'DMA_FROM_DEVICE'
 */
export function dmaDirectionName(dir: number): string {
  return isDmaDirection(dir) ? NAMES[dir] : `invalid direction ${String(dir)}`;
}
