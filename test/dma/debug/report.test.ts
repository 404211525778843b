/** @module test/dma/debug/report: §1, how errors are printed and counted: quota, driver filter, labels, disabled. */
import { describe, expect, it } from 'vitest';
import { DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { BUS_NOTIFY_UNBOUND_DRIVER, DmaDebug, DriverFilter } from '../../../src/dma/debug/index.ts';
import { A, E1000, mapChecked, NVME, P, pciDev, rig } from './helpers.ts';

const X = 0x100000;
const notAllocated = (addr: number, size = 4096): string =>
  `device driver tries to free DMA memory it has not allocated [device address=${A(addr)}] [size=${size} bytes]\n`;

describe('dma-debug §1: the quota', () => {
  it('quota_default_first_only', () => {
    const r = rig({ allErrors: false });
    expect(r.dbg.num_errors).toBe(1);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X + 0x1000, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([P() + notAllocated(X)]);
    expect(r.dbg.error_count).toBe(2);
    expect(r.dbg.num_errors).toBe(0);
    expect(r.dbg.errors.map((e) => e.printed)).toEqual([true, false]);
  });

  it('quota_all_errors_toggle', () => {
    const r = rig({ allErrors: false });
    r.dbg.all_errors = 1;
    for (let i = 0; i < 3; i++) r.dbg.debug_dma_unmap_phys(r.dev, X + i * 0x1000, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toHaveLength(3);
    expect(r.dbg.num_errors).toBe(1);
    r.dbg.all_errors = 0;
    r.dbg.debug_dma_unmap_phys(r.dev, 0x200000, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, 0x201000, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toHaveLength(4);
    expect(r.errors()[3]).toBe(P() + notAllocated(0x200000));
    expect(r.dbg.error_count).toBe(5);
    expect(r.dbg.num_errors).toBe(0);
  });

  it('quota_reset_via_debugfs', () => {
    const r = rig({ allErrors: false });
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X + 0x1000, 4096, DMA_TO_DEVICE);
    r.dbg.num_errors = 2;
    for (let i = 2; i < 5; i++) r.dbg.debug_dma_unmap_phys(r.dev, X + i * 0x1000, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([P() + notAllocated(X), P() + notAllocated(X + 0x2000), P() + notAllocated(X + 0x3000)]);
    expect(r.dbg.error_count).toBe(5);
  });

  it('quota_zero', () => {
    const r = rig({ allErrors: false });
    r.dbg.num_errors = 0;
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([]);
    expect(r.dbg.error_count).toBe(2);
    expect(r.dbg.num_errors).toBe(0);
    expect(r.ctx.klog.warnCount).toBe(0);
  });

  it('debugfs writes must be u32', () => {
    const r = rig();
    expect(() => { r.dbg.num_errors = -1; }).toThrow(/u32/);
    expect(() => { r.dbg.all_errors = 1.5; }).toThrow(/u32/);
  });
});

describe('dma-debug §1: the printed form', () => {
  it('a report is a WARN on the kernel log: DMA-API: <driver> <device>: <message>', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.ctx.klog.warnings().map((m) => [m.fn, m.message])).toEqual([['check_unmap', P() + notAllocated(X)]]);
    expect(r.dbg.errors[0]).toMatchObject({ fn: 'check_unmap', device: '0000:00:04.0', driver: 'e1000', message: notAllocated(X), printed: true });
  });

  it('without a driver the label is the bus name, then the class name, then empty', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_phys(pciDev('0000:00:04.0', null), X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys({ name: 'eth0', class: { name: 'net' } }, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys({ name: 'lonely' }, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([
      P('pci') + notAllocated(X),
      'DMA-API: net eth0: ' + notAllocated(X),
      'DMA-API:  lonely: ' + notAllocated(X),
    ]);
  });

  it('two messages lack the trailing newline; the leak report holds an embedded one', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    const [unchecked] = r.errors();
    expect(unchecked?.endsWith('[mapped as phy]')).toBe(true);
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dev.driver = null;
    r.dbg.dma_debug_device_change(r.dev, BUS_NOTIFY_UNBOUND_DRIVER);
    const leak = r.errors()[1] as string;
    expect(leak.split('\n')).toHaveLength(3);
    expect(leak.endsWith('\n')).toBe(true);
  });
});

describe('dma-debug §1: the driver filter', () => {
  it('filter_other_driver_consumes_quota', () => {
    const r = rig({ allErrors: false, driverFilter: 'e1000' });
    const nvme = pciDev('0000:00:05.0', NVME);
    r.dbg.debug_dma_unmap_phys(nvme, X, 4096, DMA_TO_DEVICE);
    expect(r.dbg.num_errors).toBe(0);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([]);
    expect(r.dbg.error_count).toBe(2);
  });

  it('filter_hidden_errors_use_quota_2', () => {
    const r = rig({ allErrors: false, driverFilter: 'e1000' });
    r.dbg.num_errors = 2;
    const nvme = pciDev('0000:00:05.0', NVME);
    r.dbg.debug_dma_unmap_phys(nvme, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X + 0x1000, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X + 0x2000, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([P() + notAllocated(X + 0x1000)]);
    expect(r.dbg.error_count).toBe(3);
    expect(r.dbg.errors.map((e) => e.printed)).toEqual([false, true, false]);
  });

  it('filter_caches_first_driver', () => {
    const r = rig({ driverFilter: 'e1000' });
    const other = { name: 'e1000' };
    const dev2 = pciDev('0000:00:06.0', other);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(dev2, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([P() + notAllocated(X), P() + notAllocated(X)]);
    expect(r.dbg.error_count).toBe(3);
  });

  it('the driver object that matched first is the one remembered, even when another with the name came later', () => {
    const f = new DriverFilter();
    f.setFromBoot('e1000');
    const late = { name: 'e1000' };
    expect(f.passes(NVME)).toBe(false);
    expect(f.current).toBeNull();
    expect(f.passes(late)).toBe(true);
    expect(f.passes(E1000)).toBe(false);
    expect(f.current).toBe(late);
  });

  it('filter_debugfs_write_and_off', () => {
    const r = rig();
    r.dbg.driver_filter = 'e1000 trailing words\n';
    expect(r.dbg.driver_filter).toBe('e1000');
    r.dbg.driver_filter = '\n';
    r.dbg.driver_filter = '-';
    expect(r.dbg.driver_filter).toBe('');
    expect(r.lines()).toEqual([
      'DMA-API: enable driver filter for driver [e1000]\n',
      'DMA-API: switching off dma-debug driver filter\n',
    ]);
    expect(r.ctx.klog.messages.filter((m) => m.fn === 'filter_write').map((m) => m.level)).toEqual(['info', 'info']);
    expect(r.dbg.error_count).toBe(0);
  });

  it('filter_off_from_boot_silent', () => {
    const r = rig();
    r.dbg.driver_filter = ' e1000';
    r.dbg.driver_filter = '';
    expect(r.lines()).toEqual([]);
    expect(r.dbg.driver_filter).toBe('');
  });

  it('a boot filter prints its info line; names keep at most 63 characters; tokens end at whitespace', () => {
    const r = rig({ driverFilter: 'e1000' });
    expect(r.dbg.reports.map((x) => x.text)).toContain('DMA-API: enable driver filter for driver [e1000]\n');
    const long = 'd'.repeat(70);
    r.dbg.driver_filter = long;
    expect(r.dbg.driver_filter).toBe('d'.repeat(63));
    r.dbg.driver_filter = 'ab\tcd';
    expect(r.dbg.driver_filter).toBe('ab');
    const f = new DriverFilter();
    f.write('d'.repeat(63));
    expect(f.passes({ name: 'd'.repeat(80) })).toBe(true);
  });
});

describe('dma-debug §1: disabled', () => {
  it('boot_disabled', () => {
    const r = rig({ off: true });
    expect(r.dbg.reports.map((x) => x.text)).toEqual(['DMA-API: debugging disabled on kernel command line\n']);
    expect(r.dbg.disabled).toBe(true);
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_unmap_phys(r.dev, X + 0x1000, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dev.driver = null;
    r.dbg.dma_debug_device_change(r.dev, BUS_NOTIFY_UNBOUND_DRIVER);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
    expect(r.dbg.nr_total_entries).toBe(0);
  });

  it('a normal boot prints the preallocation and enable lines', () => {
    const dbg = new DmaDebug(rig().ctx, { entries: 100 });
    expect(dbg.reports.map((x) => [x.kind, x.text])).toEqual([
      ['info', 'DMA-API: preallocated 128 debug entries\n'],
      ['info', 'DMA-API: debugging enabled by kernel config\n'],
    ]);
    expect(dbg.disabled).toBe(false);
    expect([dbg.nr_total_entries, dbg.num_free_entries, dbg.min_free_entries]).toEqual([128, 128, 128]);
  });

  it('the boot options are checked', () => {
    const ctx = rig().ctx;
    expect(() => new DmaDebug(ctx, { entries: 0 })).toThrow(/dma_debug_entries/);
    expect(() => new DmaDebug(ctx, { arch: { name: 'x', cacheAlignment: 1, l1CacheBytes: 48, bounceUnalignedKmalloc: false } })).toThrow(/L1_CACHE_BYTES/);
    expect(() => new DmaDebug(ctx, { arch: { name: 'x', cacheAlignment: 0, l1CacheBytes: 64, bounceUnalignedKmalloc: false } })).toThrow(/cache_alignment/);
  });

  it('checked mappings leave no report and no entry', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
  });
});
