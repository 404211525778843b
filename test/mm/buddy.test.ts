import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  GFP_DMA, GFP_DMA32, GFP_KERNEL, KernelBug, KernelError, Machine, MAX_PAGE_ORDER, PAGE_SIZE, __GFP_NOWARN,
} from '../../src/index.ts';

const small = (): Machine => new Machine({ memory: '64M', lowReserve: 0 });

/** Free-block snapshot of all zones: the canonical state of a buddy allocator. */
function freeState(m: Machine): string {
  return m.mm.zones.map((z) => [...z.blocks()].map(([p, o]) => `${p}/${o}`).join(',')).join('|');
}

describe('buddy allocator', () => {
  it('boots with all RAM free in maximal blocks, reserving the first MiB by default', () => {
    const m = new Machine({ memory: '64M' });
    expect(m.mm.totalPages).toBe(64 * 256);
    expect(m.mm.freePages).toBe(64 * 256 - 256);
    const z = small().mm.zoneStats();
    expect(z.map((s) => s.name)).toEqual(['DMA', 'DMA32']);
    expect(z[0]?.nrFree[MAX_PAGE_ORDER]).toBe(4); // 16 MiB of DMA = 4 blocks of 4 MiB
  });

  it('splits the lowest block and hands out ascending pages', () => {
    const m = small();
    const pfns = Array.from({ length: 5 }, () => m.mm.alloc_pages(GFP_KERNEL, 0));
    const first = pfns[0] as number;
    expect(pfns).toEqual([first, first + 1, first + 2, first + 3, first + 4]);
  });

  it('merges buddies back to the boot state', () => {
    const m = small();
    const boot = freeState(m);
    const a = m.mm.alloc_pages(GFP_KERNEL, 3) as number;
    const b = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    expect(a % 8).toBe(0);
    expect(freeState(m)).not.toBe(boot);
    m.mm.__free_pages(a, 3);
    m.mm.__free_pages(b, 0);
    expect(freeState(m)).toBe(boot);
    expect(m.mm.allocatedPages).toBe(0);
  });

  it('picks zones from the gfp flags and falls back downwards', () => {
    const m = new Machine({ memory: '8G' });
    const normal = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const dma32 = m.mm.alloc_pages(GFP_DMA32, 0) as number;
    const dma = m.mm.alloc_pages(GFP_DMA, 0) as number;
    expect(normal * PAGE_SIZE).toBeGreaterThanOrEqual(4 * 2 ** 30);
    expect(dma32 * PAGE_SIZE).toBeLessThan(4 * 2 ** 30);
    expect(dma32 * PAGE_SIZE).toBeGreaterThanOrEqual(16 * 2 ** 20);
    expect(dma * PAGE_SIZE).toBeLessThan(16 * 2 ** 20);
    const small32 = new Machine({ memory: '64M' });
    expect(small32.mm.alloc_pages(GFP_KERNEL, 0)).not.toBeNull(); // no Normal zone: falls back
  });

  it('returns null and prints the kernel failure report on exhaustion; NOWARN is quiet', () => {
    const m = new Machine({ memory: '16M', lowReserve: 0 });
    for (let i = 0; i < 4; i++) expect(m.mm.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER)).not.toBeNull();
    expect(m.mm.alloc_pages(GFP_KERNEL, 2)).toBeNull();
    expect(m.klog.messages.at(-1)?.message).toBe('dmasim: page allocation failure: order:2, mode:0xcc0(GFP_KERNEL), nodemask=(null)');
    const before = m.klog.messages.length;
    expect(m.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0)).toBeNull();
    expect(m.klog.messages.length).toBe(before);
  });

  it('order above MAX_PAGE_ORDER: WARN_ON_ONCE and NULL; a non-integer order is EINVAL', () => {
    const m = small();
    expect(m.mm.alloc_pages(GFP_KERNEL, 11)).toBeNull();
    expect(m.mm.alloc_pages(GFP_KERNEL, 12)).toBeNull();
    expect(m.klog.warnCount).toBe(1);
    expect(() => m.mm.alloc_pages(GFP_KERNEL, 1.5)).toThrow(KernelError);
    expect(() => m.mm.alloc_pages(GFP_KERNEL, -1)).toThrow(/order/);
  });

  it('a double free or a wrong order is a KernelBug and changes nothing', () => {
    const m = small();
    const p = m.mm.alloc_pages(GFP_KERNEL, 1) as number;
    expect(() => m.mm.__free_pages(p, 0)).toThrow(KernelBug);
    m.mm.__free_pages(p, 1);
    const snap = freeState(m);
    expect(() => m.mm.__free_pages(p, 1)).toThrow(/double free/);
    expect(() => m.mm.__free_pages(p + 1, 0)).toThrow(KernelBug);
    expect(freeState(m)).toBe(snap);
  });

  it('get_page keeps a block alive until the last reference goes', () => {
    const m = small();
    const p = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    m.mm.get_page(p);
    m.mm.__free_pages(p, 0);
    expect(m.mm.allocatedPages).toBe(1);
    m.mm.__free_pages(p, 0);
    expect(m.mm.allocatedPages).toBe(0);
  });

  it('fault injection fails the nth page allocation', () => {
    const m = small();
    m.faults.inject('page', { nth: 2 });
    expect(m.mm.alloc_pages(GFP_KERNEL, 0)).not.toBeNull();
    expect(m.mm.alloc_pages(GFP_KERNEL, 0)).toBeNull();
    expect(m.mm.alloc_pages(GFP_KERNEL, 0)).not.toBeNull();
  });

  it('buddyinfo renders a line per populated zone', () => {
    const info = small().mm.buddyinfo().split('\n');
    expect(info).toHaveLength(2);
    expect(info[0]).toMatch(/^Node 0, zone\s+DMA(\s+\d+){11}$/);
  });

  it('models holes: RAM ranges with a gap never hand out the gap', () => {
    const m = new Machine({ memory: [{ start: 0, size: '8M' }, { start: '32M', size: '8M' }], lowReserve: 0 });
    expect(m.mm.totalPages).toBe(4096);
    expect(m.mm.isRam(20 * 2 ** 20)).toBe(false);
    const got: number[] = [];
    for (let p = m.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0); p !== null; p = m.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0)) got.push(p);
    expect(got).toHaveLength(4096);
    expect(got.some((p) => p >= 2048 && p < 8192)).toBe(false);
  });

  it('property: random alloc/free never hands out a page twice, conserves pages, and merges back', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ order: fc.integer({ min: 0, max: 4 }), free: fc.boolean(), pick: fc.nat() }), { maxLength: 80 }),
      (ops) => {
        const m = new Machine({ memory: '8M', lowReserve: 0 });
        const boot = freeState(m);
        const total = m.mm.freePages;
        const live: Array<[number, number]> = [];
        const owned = new Set<number>();
        for (const op of ops) {
          if (op.free && live.length > 0) {
            const [pfn, order] = live.splice(op.pick % live.length, 1)[0] as [number, number];
            for (let i = 0; i < 2 ** order; i++) owned.delete(pfn + i);
            m.mm.__free_pages(pfn, order);
          } else {
            const pfn = m.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, op.order);
            if (pfn === null) continue;
            expect(pfn % 2 ** op.order).toBe(0);
            for (let i = 0; i < 2 ** op.order; i++) {
              expect(owned.has(pfn + i)).toBe(false);
              owned.add(pfn + i);
            }
            live.push([pfn, op.order]);
          }
          expect(m.mm.freePages + owned.size).toBe(total);
        }
        for (const [pfn, order] of live) m.mm.__free_pages(pfn, order);
        expect(freeState(m)).toBe(boot);
      },
    ), { numRuns: 60 });
  });

  it('same seed and config give the same pfns', () => {
    const run = (): number[] => {
      const m = new Machine({ memory: '1G', seed: 5, fragment: { run: [1, 8] } });
      const a = m.mm.vmalloc(2 ** 20);
      return Array.from(a?.pages ?? []);
    };
    expect(run()).toEqual(run());
  });
});
