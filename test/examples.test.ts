import { describe, expect, it } from 'vitest';
import { defaultScenario } from '../src/scenarios.ts';
import leakAtUnbind from '../examples/leak-at-unbind.ts';

describe('examples and the default scenario', () => {
  it('the default scenario merges segments, verifies the bytes and ends clean', () => {
    const r = defaultScenario(1);
    expect(r.bytesVerified).toBe(true);
    expect(r.dmaSegments).toBeLessThan(r.cpuEntries);
    expect(r.faults).toBe(0);
    expect(r.dmaDebugErrors).toBe(0);
    expect(r.leaks).toBe(0);
    expect(r.report).toContain('DMA segments after IOMMU merging');
  });

  it('leak-at-unbind: dma-debug names the bus in the leak report', () => {
    expect(leakAtUnbind()).toMatch(/^DMA-API: pci 0000:05:00\.0: device driver has pending DMA allocations while released from device \[count=1\]/);
  });
});
