import { describe, expect, it } from 'vitest';
import { Machine, htmlReport, iovaRangesNow } from '../../src/index.ts';

describe('HTML report', () => {
  it('is a self-contained page with the five pictures', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'lazy' }, fragment: { level: 0.5 }, trace: true });
    const html = htmlReport(m, { entryLengths: [4096, 8192], segmentLengths: [12288], iovaRanges: iovaRangesNow(m), text: 'hello <world>' });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg /g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    for (const h of ['Physical memory by owner', 'Segment lengths before and after IOMMU merging', 'IOVA space', 'swiotlb occupancy', 'Timeline']) expect(html).toContain(h);
    expect(html).toContain('hello &lt;world&gt;');
    expect(html).not.toMatch(/<script|https?:\/\//); // nothing external
  });
});
