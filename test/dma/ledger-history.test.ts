/**
 * The ledger's history of released mappings other than fast-lane singles (here coherent buffers):
 * releasedCovering names the newest release of the device covering an address, before and after
 * the history drops its oldest half (planted: dropping one more than half fails it at the trim's
 * edge), and a device with no release finds nothing. Held to a model of the same trimming rule.
 */
import { describe, expect, it } from 'vitest';
import { GFP_KERNEL, LEDGER_HISTORY, Machine, dma_alloc_coherent, dma_free_coherent, type CoherentBuffer } from '../../src/index.ts';

describe('ledger history of released mappings', () => {
  it('names the newest release per device across trims; a device with none, or only trimmed ones, finds nothing', () => {
    const m = new Machine({ memory: '1G', swiotlb: false });
    const devs = ['0000:01:00.0', '0000:02:00.0', '0000:03:00.0'].map((name) => {
      const d = m.pci.addDevice({ name, dmaMask: 64 });
      m.pci.bind(d, { name: `drv${name}`, probe() {} });
      return d;
    });
    const [a, b, quiet] = devs as [typeof devs[number], typeof devs[number], typeof devs[number]];
    // The model: released [dev, start, end, time], trimmed as the ledger trims.
    let model: Array<[typeof a, number, number, number]> = [];
    const seen: Array<[typeof a, number]> = [];
    let hits = 0;
    // Every buffer allocated first, so each release covers its own DMA address.
    const total = 2 * LEDGER_HISTORY + 300;
    // Device b only in the first 200 releases: remembered, then trimmed away.
    const owner = (n: number) => (n < 200 && n % 2 === 1 ? b : a);
    const bufs = Array.from({ length: total }, (_, n) => dma_alloc_coherent(owner(n), 4096, GFP_KERNEL) as CoherentBuffer);
    for (let n = 0; n < total; n++) {
      const dev = owner(n);
      const buf = bufs[n] as CoherentBuffer;
      dma_free_coherent(dev, 4096, buf);
      model.push([dev, buf.dma_handle, buf.dma_handle + 4096, m.clock.now]);
      if (model.length > LEDGER_HISTORY) model = model.slice(LEDGER_HISTORY / 2);
      seen.push([dev, buf.dma_handle]);
      m.clock.advance(10);
      if (n === 150 || n === LEDGER_HISTORY || n === LEDGER_HISTORY + 1 || n === total - 1) {
        // The last 300, the first 50, and the two on either side of the trim boundary.
        const edge = seen.slice(Math.max(0, seen.length - model.length - 1), seen.length - model.length + 1);
        for (const [d, h] of seen.slice(-300).concat(seen.slice(0, 50), edge)) {
          for (const q of [d, quiet]) {
            const want = [...model].reverse().find(([md, s, e]) => md === q && s < h + 2 && e > h + 1);
            const got = m.dma.ledger.releasedCovering(q, h + 1, h + 2);
            if (want === undefined) expect(got).toBeUndefined();
            else {
              expect([got?.dmaStart, got?.releasedTime]).toEqual([want[1], want[3]]);
              hits++;
            }
          }
        }
      }
    }
    expect(hits).toBeGreaterThan(1000); // the queries found releases: the test is not vacuous
    expect(m.dma.ledger.releasedCovering(b, 0, 2 ** 52)).toBeUndefined();
  });
});
