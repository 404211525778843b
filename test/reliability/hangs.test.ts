/**
 * Issue 19, item 5: walks that could never end now end in a KernelBug or an EINVAL naming the
 * argument. Each case runs under a watchdog: a hang fails the test instead of stalling the suite.
 */
import { describe, expect, it } from 'vitest';
import {
  EINVAL, GFP_KERNEL, KernelBug, KernelError, Machine, PhysContents, SgTable, __sg_alloc_table, for_each_sg,
  for_each_sg_page, for_each_sgtable_dma_page, for_each_sgtable_page, forEachPageSpan, runHistogram, sg_alloc_table,
  sg_nents, sg_nents_for_len, sg_unmark_end,
} from '../../src/index.ts';

function outcome(f: () => unknown): unknown {
  try {
    const r = f();
    if (r !== null && typeof r === 'object' && Symbol.iterator in (r as object)) for (const _ of r as Iterable<unknown>) { /* drain */ }
  } catch (e) {
    return e;
  }
  return 'returned';
}

const expectEinval = (f: () => unknown, arg: string): void => {
  const e = outcome(f);
  expect(e).toBeInstanceOf(KernelError);
  expect((e as KernelError).errno).toBe(EINVAL);
  expect((e as KernelError).arg).toBe(arg);
};

describe('walks that cannot end', { timeout: 10_000 }, () => {
  it('sg_nents, sg_nents_for_len and for_each_sg over a table whose END mark was removed: KernelBug', () => {
    const m = new Machine({ memory: '64M' });
    const sgt = new SgTable(m);
    expect(sg_alloc_table(sgt, 3, GFP_KERNEL)).toBe(0);
    sg_unmark_end(sgt.sgl!.at(2));
    expect(outcome(() => sg_nents(sgt.sgl))).toBeInstanceOf(KernelBug);
    expect(outcome(() => sg_nents_for_len(sgt.sgl, 2 ** 40))).toBeInstanceOf(KernelBug);
    expect(outcome(() => for_each_sg(sgt.sgl, 2 ** 31))).toBeInstanceOf(KernelBug);
    expect(outcome(() => sg_nents(sgt.sgl!.at(500)))).toBeInstanceOf(KernelBug); // a handle past its chunk
  });

  it('page iterators with a bad pgoffset or nents: EINVAL naming it', () => {
    const m = new Machine({ memory: '64M' });
    const sgt = new SgTable(m);
    sg_alloc_table(sgt, 3, GFP_KERNEL);
    expectEinval(() => for_each_sg_page(sgt.sgl, 3, NaN), 'pgoffset');
    expectEinval(() => for_each_sg_page(sgt.sgl, 3, 0.5), 'pgoffset');
    expectEinval(() => for_each_sg_page(sgt.sgl, -1, 0), 'nents');
    expectEinval(() => for_each_sgtable_page(sgt, -3), 'pgoffset');
    expectEinval(() => for_each_sgtable_dma_page(sgt, Infinity), 'pgoffset');
  });

  it('__sg_alloc_table with one slot per chunk, or nents of 2^32 and more: EINVAL, nothing allocated', () => {
    const m = new Machine({ memory: '64M' });
    const sgt = new SgTable(m);
    expectEinval(() => __sg_alloc_table(sgt, 10, 1), 'max_ents');
    expectEinval(() => __sg_alloc_table(sgt, 10, 129), 'max_ents');
    expectEinval(() => __sg_alloc_table(sgt, 2 ** 32, 128), 'nents');
    expectEinval(() => sg_alloc_table(sgt, 2 ** 32 + 3, GFP_KERNEL), 'nents');
    expect(sgt.arena.liveSlots).toBe(0);
  });

  it('byte walks past 2^53 and fake huge arrays: EINVAL naming the argument', () => {
    expectEinval(() => forEachPageSpan(0, 2 ** 60, () => {}), 'len');
    expectEinval(() => forEachPageSpan(2 ** 53 - 4096, 8192, () => {}), 'len');
    expectEinval(() => new PhysContents().fill(0, Infinity, 0), 'len');
    expectEinval(() => new PhysContents().read(4096, 2 ** 55), 'len');
    expectEinval(() => runHistogram({ length: 2 ** 53 } as ArrayLike<number>), 'pfns');
    expectEinval(() => runHistogram(null as unknown as ArrayLike<number>), 'pfns');
  });
});
