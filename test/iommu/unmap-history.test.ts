/**
 * The IOMMU's ring of recent unmaps (the use-after-unmap detector's memory): unmapCovering names the
 * newest remembered unmap of a domain covering an IOVA, before and after the ring wraps, and forgets
 * what the ring overwrote. Checked against the `unmaps` list (oldest first) as a model.
 */
import { describe, expect, it } from 'vitest';
import { Machine, Rng } from '../../src/index.ts';

describe('unmapCovering', () => {
  it('agrees with the remembered list at every fill level, across the wrap', () => {
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const iommu = m.iommu;
    if (iommu === null) throw new Error('no iommu');
    const rng = new Rng(5);
    const model = (domain: number, iova: number) => [...iommu.unmaps].reverse().find((u) => u.domain === domain && iova >= u.iova && iova < u.iova + u.size);
    for (let n = 0; n < 9000; n++) {
      // Overlapping ranges on two domains, so the newest of several matches must win.
      iommu.noteUnmap(`dev${n % 3}`, 1 + (n % 2), rng.int(4096) * 4096, 4096 * (1 + rng.int(8)), n, 'dma_unmap_page', false);
      if (n % 997 === 0 || n === 4095 || n === 4096 || n === 8191 || n === 8192) {
        for (let q = 0; q < 40; q++) {
          const dom = 1 + rng.int(3);
          const iova = rng.int(4200) * 4096 + rng.int(4096);
          expect(iommu.unmapCovering(dom, iova)).toEqual(model(dom, iova));
        }
      }
    }
    // The first unmaps were overwritten: an IOVA only they covered is forgotten.
    expect(iommu.unmaps.length).toBe(4096);
  });
});
