/** @module test/dma/debug/overlap: §3.5 overlapping cachelines. */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import {
  ARCH_ARM64, ARCH_X86_64, DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC,
  type DmaDebugOptions,
} from '../../../src/dma/debug/index.ts';
import { A, ARCH_MODEL, P, pciDev, rig, sge, virt, type Rig } from './helpers.ts';

const L = 0x100000; // a page; its first line is cacheline 0x4000
const EEXIST = `${P()}cacheline tracking EEXIST, overlapping mappings aren't supported\n`;
const OVERFLOW = (cln: number): string => `DMA-API: exceeded 7 overlapping mappings of cacheline ${A(cln)}\n`;
const IGNORE = DMA_ATTR_DEBUGGING_IGNORE_CACHELINES;

/** A rig on arm64 (cache alignment 128, swiotlb not active): overlaps are reported. */
function arm(opts: DmaDebugOptions & { readonly allErrors?: boolean } = {}): Rig {
  return rig({ arch: ARCH_ARM64, ...opts });
}

let nextDma = 0x4000_0000;
/** Map `phys` at a fresh DMA address (an IOMMU-like handle) and check it; returns the handle. */
function map(r: Rig, phys: number, dir: number = DMA_FROM_DEVICE, attrs = 0, size = 64): number {
  const dma = nextDma;
  nextDma += 0x10000;
  r.dbg.debug_dma_map_phys(r.dev, phys, size, dir, dma, attrs);
  r.dbg.debug_dma_mapping_error(r.dev, dma);
  return dma;
}
function unmap(r: Rig, dma: number, dir: number = DMA_FROM_DEVICE, size = 64): void {
  r.dbg.debug_dma_unmap_phys(r.dev, dma, size, dir);
}

describe('dma-debug §3.5: what is tracked', () => {
  it('overlap_first_cacheline_only', () => {
    const r = arm();
    map(r, L, DMA_FROM_DEVICE, 0, 256);
    map(r, L + 0x40);
    expect(r.errors()).toEqual([]);
    map(r, L + 0x3f);
    expect(r.errors()).toEqual([EEXIST]);
    expect(r.dbg.cachelines().map((c) => [c.cln, c.overlap])).toEqual([[0x4000, 1], [0x4001, 0]]);
  });

  it('sg_entries_share_cacheline', () => {
    const r = arm();
    r.dbg.debug_dma_map_sg(r.dev, [sge(L, 32, 0x8000_0000), sge(L + 32, 32, 0x8000_1000)], 2, 2, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_coherent_vs_streaming', () => {
    const r = arm();
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, 0x9000_0000, virt(L));
    map(r, L + 8);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_sg_vs_single', () => {
    const r = arm();
    map(r, L);
    r.dbg.debug_dma_map_sg(r.dev, [sge(L + 16, 16, 0x8000_0000)], 1, 1, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('the report is blamed on the new mapping\'s device', () => {
    const r = arm();
    map(r, L);
    r.dbg.debug_dma_map_phys(pciDev('0000:00:05.0', null), L, 64, DMA_FROM_DEVICE, 0x1234_0000);
    expect(r.errors()).toEqual([`${P('pci', '0000:00:05.0')}cacheline tracking EEXIST, overlapping mappings aren't supported\n`]);
  });
});

describe('dma-debug §3.5: the overlap counter', () => {
  it('overlap_counter_at_limit', () => {
    const r = arm();
    for (let i = 0; i < 8; i++) map(r, L);
    expect(r.errors()).toEqual(Array(7).fill(EEXIST));
    expect(r.dbg.reports.some((x) => x.kind === 'warn-once')).toBe(false);
    expect(r.dbg.cachelines()[0]?.overlap).toBe(7);
  });

  it('overlap_counter_overflow', () => {
    const r = arm();
    for (let i = 0; i < 9; i++) map(r, L);
    expect(r.lines()).toEqual([...Array(7).fill(EEXIST), OVERFLOW(0x4000), EEXIST]);
    expect(r.dbg.cachelines()[0]?.overlap).toBe(7);
    expect(r.dbg.error_count).toBe(8);
    expect(r.ctx.klog.warnings('active_cacheline_inc_overlap')).toHaveLength(1);
  });

  it('overlap_overflow_two_lines', () => {
    const r = arm();
    for (let i = 0; i < 10; i++) map(r, L);
    for (let i = 0; i < 10; i++) map(r, L + 0x1000);
    expect(r.dbg.reports.filter((x) => x.kind === 'warn-once').map((x) => x.text)).toEqual([OVERFLOW(0x4000)]);
    expect(r.dbg.error_count).toBe(18);
  });

  it('quota_not_used_by_warn_once', () => {
    const r = arm({ allErrors: false });
    for (let i = 0; i < 9; i++) map(r, L, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(r.lines()).toEqual([OVERFLOW(0x4000)]);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.num_errors).toBe(1);
    r.dbg.debug_dma_unmap_phys(r.dev, 0x1, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toHaveLength(1);
  });

  it('the WARN_ONCE is printed even for a device the driver filter hides', () => {
    const r = arm({ driverFilter: 'nvme' });
    for (let i = 0; i < 9; i++) map(r, L);
    expect(r.lines()).toEqual([OVERFLOW(0x4000)]);
    expect(r.dbg.error_count).toBe(8);
  });

  it('overlap_counter_overflow_unbalances', () => {
    const r = arm();
    const handles: number[] = [];
    for (let i = 0; i < 9; i++) handles.push(map(r, L, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC));
    for (const h of handles.slice(0, 8)) unmap(r, h);
    expect(r.dbg.entryCount()).toBe(1);
    expect(r.dbg.cachelines()).toEqual([]); // released one unmap early
    map(r, L);
    expect(r.errors()).toEqual([]);
    // Balanced below the limit: the line stays held while a claimant is live.
    const r2 = arm();
    const h2: number[] = [];
    for (let i = 0; i < 8; i++) h2.push(map(r2, L, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC));
    for (const h of h2.slice(0, 7)) unmap(r2, h);
    map(r2, L);
    expect(r2.errors()).toEqual([EEXIST]);
  });

  it('overlap_balanced_after_unmap', () => {
    const r = arm();
    const a = map(r, L);
    const b = map(r, L);
    unmap(r, a);
    unmap(r, b);
    expect(r.dbg.cachelines()).toEqual([]);
    map(r, L);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_persists_after_first_unmapped', () => {
    const r = arm();
    const a = map(r, L);
    map(r, L);
    unmap(r, a);
    map(r, L);
    expect(r.errors()).toEqual([EEXIST, EEXIST]);
  });
});

describe('dma-debug §3.5: exemptions', () => {
  it('overlap_to_device_first_no_report', () => {
    const r = arm();
    map(r, L, DMA_TO_DEVICE);
    map(r, L, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('overlap_to_device_second_no_report', () => {
    const r = arm();
    map(r, L, DMA_FROM_DEVICE);
    map(r, L, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.cachelines()[0]?.overlap).toBe(0);
  });

  it('clean_to_device_overlap', () => {
    const r = arm();
    for (let i = 0; i < 12; i++) map(r, L, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.cachelines()).toEqual([]);
  });

  it('sg_entries_share_cacheline_to_device', () => {
    const r = arm();
    r.dbg.debug_dma_map_sg(r.dev, [sge(L, 32, 0x8000_0000), sge(L + 32, 32, 0x8000_1000)], 2, 2, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('overlap_skip_cpu_sync_on_second', () => {
    const r = arm();
    map(r, L);
    map(r, L, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(r.dbg.error_count).toBe(0);
  });

  it('overlap_skip_cpu_sync_on_first_only', () => {
    const r = arm();
    map(r, L, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    map(r, L);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_sg_skip_cpu_sync', () => {
    const r = arm();
    r.dbg.debug_dma_map_sg(r.dev, [sge(L, 32, 0x8000_0000), sge(L + 32, 32, 0x8000_1000)], 2, 2, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(r.dbg.error_count).toBe(0);
  });

  it('overlap_ignore_cachelines_both', () => {
    const r = arm();
    map(r, L, DMA_FROM_DEVICE, IGNORE);
    map(r, L, DMA_FROM_DEVICE, IGNORE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('overlap_ignore_cachelines_first_only', () => {
    const r = arm();
    map(r, L, DMA_FROM_DEVICE, IGNORE);
    map(r, L);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_ignore_cachelines_second_only', () => {
    const r = arm();
    map(r, L);
    map(r, L, DMA_FROM_DEVICE, IGNORE);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_require_coherent_counts_as_clean', () => {
    const r = arm();
    map(r, L, DMA_FROM_DEVICE, DMA_ATTR_REQUIRE_COHERENT);
    map(r, L, DMA_FROM_DEVICE, IGNORE);
    r.dbg.debug_dma_map_sg(r.dev, [sge(L, 64, 0x8000_0000)], 1, 1, DMA_FROM_DEVICE, DMA_ATTR_REQUIRE_COHERENT);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entries().map((e) => e.cacheClean)).toEqual([true, true, true]);
  });

  it('overlap_x86_cache_alignment_1', () => {
    const r = rig({ arch: ARCH_X86_64 });
    map(r, L);
    map(r, L);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.cachelines()[0]?.overlap).toBe(1);
    expect(rig().dbg.platform.arch).toBe(ARCH_X86_64);
  });

  it('overlap_cache_alignment_32', () => {
    const r = rig({ arch: { ...ARCH_MODEL, cacheAlignment: 32 } });
    map(r, L);
    map(r, L);
    expect(r.dbg.error_count).toBe(0);
  });

  it('overlap_cache_alignment_64', () => {
    const r = rig({ arch: ARCH_MODEL });
    map(r, L);
    map(r, L);
    expect(r.errors()).toEqual([EEXIST]);
  });

  it('overlap_swiotlb_bounce', () => {
    const r = arm({ swiotlbActive: true });
    map(r, L);
    map(r, L);
    expect(r.dbg.error_count).toBe(0);
    // Without DMA_BOUNCE_UNALIGNED_KMALLOC an active swiotlb changes nothing.
    const r2 = rig({ arch: ARCH_MODEL, swiotlbActive: true });
    map(r2, L);
    map(r2, L);
    expect(r2.errors()).toEqual([EEXIST]);
  });

  it('overlap_swiotlb_bounce_sg', () => {
    const r = arm({ swiotlbActive: (dev) => dev.name === '0000:00:04.0' });
    r.dbg.debug_dma_map_sg(r.dev, [sge(L, 32, 0x8000_0000), sge(L + 32, 32, 0x8000_1000)], 2, 2, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    const other = pciDev('0000:00:05.0');
    r.dbg.debug_dma_map_sg(other, [sge(L + 0x1000, 32, 0x9000_0000), sge(L + 0x1020, 32, 0x9000_1000)], 2, 2, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([`${P('e1000', '0000:00:05.0')}cacheline tracking EEXIST, overlapping mappings aren't supported\n`]);
  });
});

describe('dma-debug §3.5: the stored slot is read, possibly reused', () => {
  it('overlap_stale_slot_reuse_suppresses', () => {
    const r = arm();
    const a = map(r, L, DMA_FROM_DEVICE, IGNORE); // clean, stored for the line
    map(r, L); // plain: reported (one side clean is not enough)
    unmap(r, a); // a's slot is free; the line still remembers it
    map(r, L, DMA_FROM_DEVICE, IGNORE); // clean, takes a's slot: reads itself as the stored entry
    expect(r.errors()).toEqual([EEXIST]); // the overlap with the plain mapping is hidden
    expect(r.dbg.entries().map((e) => e.slot).sort()).toEqual([0, 1]);
  });

  it('overlap_stale_slot_reuse_reports', () => {
    const r = arm();
    const a = map(r, L); // plain, stored for the line
    map(r, L, DMA_FROM_DEVICE, IGNORE); // clean vs plain: reported
    unmap(r, a);
    map(r, 0x900000); // another line takes a's slot (plain)
    map(r, L, DMA_FROM_DEVICE, IGNORE); // clean; the only live claimant of L is clean too, yet...
    expect(r.errors()).toEqual([EEXIST, EEXIST]);
  });

  it('overlap_stale_slot_lifo_order', () => {
    // Freed slots are reused newest first: the unmap order decides what the stored slot holds.
    const run = (unmapAFirst: boolean): string[] => {
      const r = arm();
      const a = map(r, L); // plain, slot 0, stored for L
      map(r, L, DMA_FROM_DEVICE, IGNORE); // slot 1: reported
      const x = map(r, 0x900000, DMA_FROM_DEVICE, IGNORE); // slot 2
      if (unmapAFirst) { unmap(r, a); unmap(r, x); } else { unmap(r, x); unmap(r, a); }
      map(r, L, DMA_FROM_DEVICE, IGNORE);
      return r.errors();
    };
    expect(run(false)).toEqual([EEXIST]); // the new mapping takes slot 0 and reads itself: clean
    expect(run(true)).toEqual([EEXIST, EEXIST]); // it takes slot 2; slot 0 still reads a's plain mapping
  });
});

describe('dma-debug §3.5: the line table runs out of memory', () => {
  it('overlap_enomem_disables', () => {
    const r = arm();
    map(r, L);
    r.ctx.faults.inject('kmalloc', { nth: 1 });
    map(r, L + 0x1000);
    expect(r.lines()).toEqual(['DMA-API: cacheline tracking ENOMEM, dma-debug disabled\n']);
    expect(r.ctx.klog.messages.at(-1)).toMatchObject({ kind: 'printk', level: 'err', fn: 'add_dma_entry' });
    expect(r.dbg.disabled).toBe(true);
    expect(r.dbg.entryCount()).toBe(2); // the entry was hashed before the line insert failed
    r.dbg.debug_dma_unmap_phys(r.dev, 0x1, 4096, DMA_TO_DEVICE);
    map(r, L);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(2);
  });

  it('overlap_enomem_first_insert', () => {
    const r = arm();
    r.ctx.faults.inject('kmalloc', { nth: 1 });
    map(r, L);
    expect(r.lines()).toEqual(['DMA-API: cacheline tracking ENOMEM, dma-debug disabled\n']);
    expect(r.dbg.disabled).toBe(true);
  });

  it('overlap_enomem_not_reached', () => {
    const r = arm();
    r.ctx.faults.inject('kmalloc', { nth: 2 });
    map(r, L); // allocation 1
    map(r, L); // held line: no allocation (EEXIST)
    map(r, L + 0x1000, DMA_TO_DEVICE); // not tracked: no allocation
    expect(r.dbg.disabled).toBe(false);
    expect(r.errors()).toEqual([EEXIST]);
    map(r, L + 0x2000); // allocation 2 fails
    expect(r.dbg.disabled).toBe(true);
  });

  it('an sg map keeps going after the ENOMEM, as the kernel\'s loop does', () => {
    const r = arm();
    r.ctx.faults.inject('kmalloc', { nth: 1 });
    r.dbg.debug_dma_map_sg(r.dev, [sge(L, 32, 0x8000_0000), sge(L + 32, 32, 0x8000_1000), sge(L + 0x1000, 32, 0x8000_2000)], 3, 3, DMA_FROM_DEVICE);
    expect(r.dbg.disabled).toBe(true);
    expect(r.dbg.entryCount()).toBe(3);
    expect(r.lines()).toEqual(['DMA-API: cacheline tracking ENOMEM, dma-debug disabled\n']);
  });
});
