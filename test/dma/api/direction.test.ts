import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE, dmaDirectionName, isDmaDirection, valid_dma_direction,
} from '../../../src/dma/api/direction.ts';

describe('dma_data_direction', () => {
  it('has the kernel values and names', () => {
    expect([DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE]).toEqual([0, 1, 2, 3]);
    expect([0, 1, 2, 3, 4].map(dmaDirectionName)).toEqual(['DMA_BIDIRECTIONAL', 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE', 'DMA_NONE', 'invalid direction 4']);
  });
  it('valid_dma_direction excludes DMA_NONE; isDmaDirection accepts the four values only', () => {
    expect([0, 1, 2, 3].map(valid_dma_direction)).toEqual([true, true, true, false]);
    expect([0, 3, 4, -1, 1.5, '1'].map(isDmaDirection)).toEqual([true, true, false, false, false, false]);
  });
});
