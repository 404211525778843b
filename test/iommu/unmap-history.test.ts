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
      // Domain 3 only in the first few records: remembered, then overwritten (its count back to 0,
      // so a look-up there answers at once); domain 4 never.
      iommu.noteUnmap(`dev${n % 3}`, n < 10 ? 3 : 1 + (n % 2), rng.int(4096) * 4096, 4096 * (1 + rng.int(8)), n, 'dma_unmap_page', false);
      if (n % 997 === 0 || n === 5 || n === 4095 || n === 4096 || n === 4105 || n === 4106 || n === 8191 || n === 8192) {
        for (let q = 0; q < 40; q++) {
          const dom = 1 + rng.int(4);
          const iova = rng.int(4200) * 4096 + rng.int(4096);
          expect(iommu.unmapCovering(dom, iova)).toEqual(model(dom, iova));
        }
      }
    }
    // The first unmaps were overwritten: an IOVA only they covered is forgotten.
    expect(iommu.unmaps.length).toBe(4096);
  });

  it('names each record\'s device and unmap path, across snapshots that add names after the capture', () => {
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const iommu = m.iommu;
    if (iommu === null) throw new Error('no iommu');
    // Names alternate so the last-name shortcut is both hit and missed.
    const names = (n: number) => [`0000:0${n % 3}:00.0`, ['dma_unmap_page', 'dma_unmap_sg', 'dma_free_coherent'][n % 2] as string] as const;
    for (let n = 0; n < 10; n++) iommu.noteUnmap(names(n)[0], 1, n * 4096, 4096, n, names(n)[1], n % 4 === 0);
    const before = iommu.unmaps;
    expect(before.map((u) => [u.device, u.via, u.lazy])).toEqual(Array.from({ length: 10 }, (_, n) => [...names(n), n % 4 === 0]));
    const snap = m.snapshot();
    for (let n = 0; n < 5; n++) iommu.noteUnmap(`new${n}`, 2, n * 4096, 4096, 100 + n, 'dma_unmap_resource', false);
    expect(iommu.unmaps.slice(-5).map((u) => u.device)).toEqual(['new0', 'new1', 'new2', 'new3', 'new4']);
    m.restore(snap);
    expect(iommu.unmaps).toEqual(before);
    // Names made after the capture are gone with the records; new ones are named right.
    iommu.noteUnmap('new4', 2, 0, 4096, 200, 'dma_unmap_sg', true);
    iommu.noteUnmap('0000:00:00.0', 2, 4096, 4096, 201, 'dma_unmap_resource', false);
    expect(iommu.unmaps.slice(-2).map((u) => [u.device, u.via])).toEqual([['new4', 'dma_unmap_sg'], ['0000:00:00.0', 'dma_unmap_resource']]);
  });
});
