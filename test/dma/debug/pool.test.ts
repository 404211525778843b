/** @module test/dma/debug/pool: §2 the entry pool (LIFO reuse, growth, out of memory) and fault injection. */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { BUS_NOTIFY_UNBOUND_DRIVER } from '../../../src/dma/debug/index.ts';
import { identitySg, mapChecked, rig, virt, type Rig } from './helpers.ts';

const OOM = 'DMA-API: debugging out of memory - disabling\n';

describe('dma-debug §2: the entry pool', () => {
  it('freed entries are reused newest first; never-used ones in order after them', () => {
    const r = rig({ entries: 64 });
    for (let i = 0; i < 4; i++) mapChecked(r, 0x100000 + i * 0x1000, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, 0x101000, 4096, DMA_TO_DEVICE); // slot 1
    r.dbg.debug_dma_unmap_phys(r.dev, 0x103000, 4096, DMA_TO_DEVICE); // slot 3
    for (let i = 0; i < 3; i++) mapChecked(r, 0x200000 + i * 0x1000, 4096, DMA_TO_DEVICE);
    const slotOf = new Map(r.dbg.entries().map((e) => [e.dev_addr, e.slot]));
    expect([slotOf.get(0x200000), slotOf.get(0x201000), slotOf.get(0x202000)]).toEqual([3, 1, 4]);
    expect([r.dbg.num_free_entries, r.dbg.min_free_entries, r.dbg.nr_total_entries]).toEqual([59, 59, 64]);
  });

  it('pool_growth_info', () => {
    const r = rig({ entries: 32 });
    for (let i = 0; i < 32; i++) mapChecked(r, i * 0x1000, 4096, DMA_TO_DEVICE);
    expect(r.lines()).toEqual([]);
    expect(r.dbg.num_free_entries).toBe(0);
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    for (let i = 0; i < 32; i++) mapChecked(r, 0x200000 + i * 0x1000, 4096, DMA_TO_DEVICE);
    expect(r.lines()).toEqual([
      'DMA-API: dma_debug_entry pool grown to 64 (200%)\n',
      'DMA-API: dma_debug_entry pool grown to 96 (300%)\n',
    ]);
    expect(r.dbg.reports.filter((x) => x.fn === '__dma_entry_alloc_check_leak').every((x) => x.kind === 'info')).toBe(true);
    expect([r.dbg.nr_total_entries, r.dbg.num_free_entries, r.dbg.min_free_entries]).toEqual([96, 31, 0]);
    expect(r.dbg.error_count).toBe(0);
  });

  it('pool_growth_quiet_between_multiples', () => {
    const r = rig({ entries: 100 });
    expect(r.dbg.nr_total_entries).toBe(128);
    for (let i = 0; i < 129 + 32 + 32; i++) mapChecked(r, i * 0x1000, 64, DMA_TO_DEVICE);
    expect(r.dbg.nr_total_entries).toBe(224);
    // 160 % 100 = 60 and 192 % 100 = 92 are quiet; 224 % 100 = 24 < 32 speaks.
    expect(r.lines()).toEqual(['DMA-API: dma_debug_entry pool grown to 224 (200%)\n']);
  });

  it('the default pool of 65536 grows quietly until 131072', () => {
    const r = rig();
    expect(r.dbg.nr_total_entries).toBe(65536);
    for (let i = 0; i < 65537; i++) r.dbg.debug_dma_map_phys(r.dev, i * 64, 64, DMA_TO_DEVICE, i * 64);
    expect(r.dbg.nr_total_entries).toBe(65568);
    expect(r.lines()).toEqual([]);
  });

  it('pool_grow_failure_disables', () => {
    const r = rig({ entries: 32 });
    r.ctx.faults.inject('dma-debug', { nth: 33 });
    for (let i = 0; i < 33; i++) mapChecked(r, i * 0x1000, 4096, DMA_TO_DEVICE);
    expect(r.lines()).toEqual([OOM]);
    expect(r.ctx.klog.messages.at(-1)).toMatchObject({ kind: 'printk', level: 'err', fn: 'dma_entry_alloc', message: OOM });
    expect(r.dbg.disabled).toBe(true);
    expect(r.dbg.entryCount()).toBe(32);
    expect(r.dbg.nr_total_entries).toBe(32);
  });

  it('pool_grow_failure_after_single_maps', () => {
    const r = rig({ entries: 32 });
    r.ctx.faults.inject('dma-debug', { nth: 33 });
    for (let i = 0; i < 32; i++) r.dbg.debug_dma_map_phys(r.dev, i * 0x1000, 4096, DMA_TO_DEVICE, i * 0x1000);
    r.dbg.debug_dma_map_phys(r.dev, 0x100000, 4096, DMA_TO_DEVICE, 0x100000);
    expect(r.dbg.disabled).toBe(true);
    // Nothing is checked or marked any more: the 32 unchecked mappings unmap silently and stay recorded.
    r.dbg.debug_dma_mapping_error(r.dev, 0);
    expect(r.dbg.entries().every((e) => e.map_err_type === 'not checked')).toBe(true);
    for (let i = 0; i < 32; i++) r.dbg.debug_dma_unmap_phys(r.dev, i * 0x1000, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, 0x100000, 4096, DMA_TO_DEVICE);
    r.dev.driver = null;
    r.dbg.dma_debug_device_change(r.dev, BUS_NOTIFY_UNBOUND_DRIVER);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(32);
    expect(r.lines()).toEqual([OOM]);
  });
});

/** A driver's life: every allocating hook once or more (8 entries in all), released cleanly. */
function workload(r: Rig): void {
  const d = r.dbg;
  mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
  d.debug_dma_map_sg(r.dev, identitySg([0x200000, 0x300000, 0x400000]), 3, 3, DMA_FROM_DEVICE);
  d.debug_dma_alloc_coherent(r.dev, 8192, 0x500000, virt(0x500000));
  d.debug_dma_alloc_pages(r.dev, 0x600, 4096, DMA_BIDIRECTIONAL, 0x600000);
  mapChecked(r, 0x700000, 512, DMA_FROM_DEVICE);
  mapChecked(r, 0x800000, 512, DMA_BIDIRECTIONAL);
  d.debug_dma_unmap_phys(r.dev, 0x100000, 4096, DMA_TO_DEVICE);
  d.debug_dma_unmap_sg(r.dev, identitySg([0x200000, 0x300000, 0x400000]), 3, DMA_FROM_DEVICE);
  d.debug_dma_free_coherent(r.dev, 8192, virt(0x500000), 0x500000);
  d.debug_dma_free_pages(r.dev, 0x600, 4096, DMA_BIDIRECTIONAL, 0x600000);
  d.debug_dma_unmap_phys(r.dev, 0x700000, 512, DMA_FROM_DEVICE);
  d.debug_dma_unmap_phys(r.dev, 0x800000, 512, DMA_BIDIRECTIONAL);
}

describe('dma-debug: fault injection', () => {
  it('the workload alone is clean and makes 8 entry allocations', () => {
    const r = rig();
    workload(r);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
    expect(r.ctx.faults.counts['dma-debug']).toBe(8);
    expect(r.dbg.audit()).toEqual([]);
  });

  it('failing each entry allocation in turn disables dma-debug there, with what came before still recorded', () => {
    for (let k = 1; k <= 8; k++) {
      const r = rig();
      r.ctx.faults.inject('dma-debug', { nth: k });
      workload(r);
      expect(r.lines(), `allocation ${k}`).toEqual([OOM]);
      expect(r.dbg.disabled).toBe(true);
      expect(r.dbg.error_count).toBe(0);
      // All allocations come before the first release, so exactly the k - 1 earlier entries remain.
      expect(r.dbg.entryCount(), `allocation ${k}`).toBe(k - 1);
      expect(r.dbg.audit()).toEqual([]);
    }
  });

  it('failing the cacheline insert of each tracked entry in turn disables dma-debug with the ENOMEM line', () => {
    for (let k = 1; k <= 7; k++) {
      const r = rig();
      r.ctx.faults.inject('kmalloc', { nth: k });
      workload(r);
      expect(r.lines(), `insert ${k}`).toEqual(['DMA-API: cacheline tracking ENOMEM, dma-debug disabled\n']);
      expect(r.dbg.disabled).toBe(true);
      expect(r.dbg.error_count).toBe(0);
      expect(r.dbg.audit()).toEqual([]);
    }
    // The TO_DEVICE mapping claims no line: there are 7 inserts, and an 8th failure is never reached.
    const r = rig();
    r.ctx.faults.inject('kmalloc', { nth: 8 });
    workload(r);
    expect(r.dbg.disabled).toBe(false);
  });
});
