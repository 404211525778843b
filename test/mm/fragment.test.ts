/**
 * The fragmentation generator (mm/fragment.ts): levels give the documented run lengths, explicit
 * run/gap ranges are honoured, the same seed gives the same layout, unfragment gives it all back,
 * and runHistogram counts physically contiguous runs.
 */
import { describe, expect, it } from 'vitest';
import { GFP_KERNEL, Machine, formatRunHistogram, fragment, runHistogram, unfragment } from '../../src/index.ts';

/** The pfns the page allocator now hands out, page by page. */
function firstPfns(m: Machine, pages: number): number[] {
  return Array.from({ length: pages }, () => m.mm.alloc_pages(GFP_KERNEL, 0) as number);
}

describe('fragment', () => {
  it('level 1: no two free pages adjacent; level 0: nothing held', () => {
    const m = new Machine({ memory: '64M', fragment: { level: 1 } });
    const h = runHistogram(Array.from({ length: 64 }, () => m.mm.alloc_pages(GFP_KERNEL, 0) as number).sort((a, b) => a - b));
    expect(h.longestRun).toBe(1);
    const flat = new Machine({ memory: '64M' });
    expect(fragment(flat.mm, { level: 0 }).heldPages).toBe(0);
  });

  it('an explicit run range gives free runs of those (power-of-two) lengths; held gaps between', () => {
    const m = new Machine({ memory: '64M' });
    const r = fragment(m.mm, { run: [8, 8], gap: [1, 1], seed: 3 });
    expect(r.runs).toBeGreaterThan(0);
    expect(r.heldPages).toBeGreaterThan(0);
    const h = runHistogram(Array.from({ length: 256 }, () => m.mm.alloc_pages(GFP_KERNEL, 0) as number).sort((a, b) => a - b));
    expect(h.longestRun).toBe(8);
  });

  it('runs longer than the largest block are laid out as largest blocks (both ends of the range)', () => {
    // A run range past 2^MAX_PAGE_ORDER pages once threw half-way through, with the free blocks
    // already taken out of the allocator (pages lost); now both ends clamp.
    for (const run of [[4096, 4096], [2048, 8192]] as const) {
      const m = new Machine({ memory: '64M' });
      const before = m.mm.freePages;
      const r = fragment(m.mm, { run, gap: [1, 1], seed: 2 });
      expect(r.runs).toBeGreaterThan(0);
      expect(m.mm.freePages + r.heldPages).toBe(before);
      expect(m.audit()).toEqual([]);
      expect(unfragment(m.mm)).toBe(r.heldPages);
      expect(m.mm.freePages).toBe(before);
    }
  });

  it('the same seed gives the same layout; unfragment returns every held page', () => {
    const mixed = (seed: number) => new Machine({ memory: '64M', fragment: { run: [1, 64], gap: [1, 4] }, seed });
    expect(firstPfns(mixed(5), 200)).toEqual(firstPfns(mixed(5), 200));
    expect(firstPfns(mixed(6), 200)).not.toEqual(firstPfns(mixed(5), 200));
    const c = new Machine({ memory: '64M' });
    const free = c.mm.freePages;
    const held = fragment(c.mm, { level: 0.5 }).heldPages;
    expect(c.mm.freePages).toBe(free - held);
    expect(unfragment(c.mm)).toBe(held);
    expect(c.mm.freePages).toBe(free);
    expect(c.audit()).toEqual([]);
  });

  it('runHistogram counts contiguous runs and formats them', () => {
    const h = runHistogram([10, 11, 12, 20, 30, 31]);
    expect(h.longestRun).toBe(3);
    expect([h.runs, h.pages, h.meanRun]).toEqual([3, 6, 2]);
    expect(h.buckets.filter((b) => b.count > 0).map((b) => [b.min, b.max, b.count])).toEqual([[1, 1, 1], [2, 3, 2]]);
    expect(formatRunHistogram(h)).toMatch(/\d/);
  });
});

describe('fragment: bad options', () => {
  it('a level that is not a number in [0, 1], or a bad seed, is EINVAL naming it', async () => {
    const { EINVAL, KernelError } = await import('../../src/index.ts');
    for (const [opts, arg] of [[{ level: '' }, 'level'], [{ level: '0.5' }, 'level'], [{ level: null }, 'level'], [{ level: 2 }, 'level'], [{ level: 0.5, seed: 'x' }, 'seed']] as const) {
      try {
        new Machine({ memory: '64M', fragment: opts as never });
        expect.unreachable(JSON.stringify(opts));
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as InstanceType<typeof KernelError>).errno).toBe(EINVAL);
        expect((e as InstanceType<typeof KernelError>).arg).toBe(arg);
      }
    }
  });
});
