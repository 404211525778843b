/** @module test/dma/debug/leak: §3.3 the leak report at unbind (BUS_NOTIFY_UNBOUND_DRIVER), with devres ordering. */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { BUS_NOTIFY_UNBOUND_DRIVER } from '../../../src/dma/debug/index.ts';
import { A, E1000, identitySg, mapChecked, P, pciDev, rig, virt, type Rig, type TestDevice } from './helpers.ts';

const leak = (count: number, addr: number, size: number, dir: string, kind: string, dev = '0000:00:04.0'): string =>
  `${P('pci', dev)}device driver has pending DMA allocations while released from device [count=${count}]\n`
  + `One of leaked entries details: [device address=${A(addr)}] [size=${size} bytes] [mapped with ${dir}] [mapped as ${kind}]\n`;

/** A driver's managed resources: released newest first, while the driver is still bound. */
class Devres {
  readonly #actions: (() => void)[] = [];
  add(release: () => void): void { this.#actions.push(release); }
  releaseAll(): void { while (this.#actions.length > 0) this.#actions.pop()?.(); }
}

/** The kernel's unbind order: devres release (driver still bound), driver pointer cleared, notifier. */
function unbind(r: Rig, dev: TestDevice = r.dev, devres?: Devres): void {
  devres?.releaseAll();
  dev.driver = null;
  r.dbg.dma_debug_device_change(dev, BUS_NOTIFY_UNBOUND_DRIVER);
}

/** dmam_alloc_coherent: the buffer is freed by devres at unbind. */
function dmamAlloc(r: Rig, devres: Devres, phys: number, size: number, dma: number): void {
  r.dbg.debug_dma_alloc_coherent(r.dev, size, dma, virt(phys));
  devres.add(() => r.dbg.debug_dma_free_coherent(r.dev, size, virt(phys), dma));
}

describe('dma-debug §3.3: the report', () => {
  it('leak_single_mapping', () => {
    const r = rig();
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    unbind(r);
    expect(r.errors()).toEqual([leak(1, 0x100000, 4096, 'DMA_TO_DEVICE', 'phy')]);
    expect(r.ctx.klog.warnings('dma_debug_device_change')).toHaveLength(1);
  });

  it('leak_sg_counts_segments', () => {
    const r = rig();
    r.dbg.debug_dma_map_sg(r.dev, identitySg([0x100000, 0x200000, 0x300000]), 3, 3, DMA_FROM_DEVICE);
    unbind(r);
    expect(r.errors()).toEqual([leak(3, 0x300000, 4096, 'DMA_FROM_DEVICE', 'scatter-gather')]);
  });

  it('leak_per_device', () => {
    const r = rig();
    const other = pciDev('0000:00:05.0');
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    mapChecked(r, 0x200000, 4096, DMA_TO_DEVICE, 0x200000, 0, other);
    mapChecked(r, 0x300000, 4096, DMA_TO_DEVICE, 0x300000, 0, other);
    unbind(r, other);
    expect(r.errors()).toEqual([leak(2, 0x300000, 4096, 'DMA_TO_DEVICE', 'phy', '0000:00:05.0')]);
    unbind(r);
    expect(r.errors()[1]).toBe(leak(1, 0x100000, 4096, 'DMA_TO_DEVICE', 'phy'));
  });

  it('clean_other_device_unbind', () => {
    const r = rig();
    const other = pciDev('0000:00:05.0');
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    unbind(r, other);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(1);
  });

  it('other notifier actions do nothing', () => {
    const r = rig();
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    expect(r.dbg.dma_debug_device_change(r.dev, 6)).toBe(0);
    expect(r.dbg.error_count).toBe(0);
  });
});

describe('dma-debug §3.3: the sample entry', () => {
  it('leak_sample_highest_bucket', () => {
    const r = rig();
    mapChecked(r, 0x7fe000, 4096, DMA_TO_DEVICE); // bucket 1023
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE); // bucket 128
    unbind(r);
    expect(r.errors()).toEqual([leak(2, 0x7fe000, 4096, 'DMA_TO_DEVICE', 'phy')]);
  });

  it('leak_sample_same_bucket_latest', () => {
    const r = rig();
    mapChecked(r, 0x100000, 512, DMA_TO_DEVICE);
    mapChecked(r, 0x101000, 1024, DMA_TO_DEVICE);
    unbind(r);
    expect(r.errors()).toEqual([leak(2, 0x101000, 1024, 'DMA_TO_DEVICE', 'phy')]);
  });

  it('leak_sample_same_bucket_order', () => {
    const r = rig();
    mapChecked(r, 0x101000, 1024, DMA_TO_DEVICE);
    mapChecked(r, 0x100000, 512, DMA_TO_DEVICE);
    unbind(r);
    expect(r.errors()).toEqual([leak(2, 0x100000, 512, 'DMA_TO_DEVICE', 'phy')]);
  });

  it('leak_sample_bucket_wraps', () => {
    const r = rig();
    mapChecked(r, 0x7ffe000, 4096, DMA_TO_DEVICE); // bucket 16383
    mapChecked(r, 0x8000000, 4096, DMA_TO_DEVICE); // 128 MiB: bucket 0 again
    mapChecked(r, 0x10004000, 4096, DMA_TO_DEVICE); // 256 MiB + 16 KiB: bucket 2
    unbind(r);
    expect(r.errors()).toEqual([leak(3, 0x7ffe000, 4096, 'DMA_TO_DEVICE', 'phy')]);
  });
});

describe('dma-debug §3.3: devres runs first, while the driver is bound', () => {
  it('clean_managed_coherent_unbind', () => {
    const r = rig();
    const devres = new Devres();
    dmamAlloc(r, devres, 0x100000, 8192, 0x100000);
    unbind(r, r.dev, devres);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('leak_managed_freed_unmanaged_reported', () => {
    const r = rig();
    const devres = new Devres();
    dmamAlloc(r, devres, 0x100000, 8192, 0x100000);
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, 0x200000, virt(0x200000));
    unbind(r, r.dev, devres);
    expect(r.errors()).toEqual([leak(1, 0x200000, 4096, 'DMA_BIDIRECTIONAL', 'coherent')]);
  });

  it('managed_free_then_unbind', () => {
    const r = rig();
    const devres = new Devres();
    // dmam_free_coherent: frees now and drops the devres action.
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, 0x100000, virt(0x100000));
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(0x100000), 0x100000);
    unbind(r, r.dev, devres);
    expect(r.dbg.error_count).toBe(0);
  });

  it('leak_devres_double_free', () => {
    const r = rig();
    const devres = new Devres();
    dmamAlloc(r, devres, 0x100000, 8192, 0x100000);
    r.dbg.debug_dma_free_coherent(r.dev, 8192, virt(0x100000), 0x100000); // dma_free_coherent on a managed buffer
    unbind(r, r.dev, devres);
    expect(r.errors()).toEqual([
      `${P()}device driver tries to free DMA memory it has not allocated [device address=${A(0x100000)}] [size=8192 bytes]\n`,
    ]);
  });

  it('devres_release_order', () => {
    const r = rig();
    const devres = new Devres();
    dmamAlloc(r, devres, 0x100000, 4096, 0x100000);
    dmamAlloc(r, devres, 0x200000, 4096, 0x200000);
    dmamAlloc(r, devres, 0x300000, 4096, 0x300000);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(0x100000), 0x100000);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(0x300000), 0x300000);
    unbind(r, r.dev, devres);
    // Newest first: 0x300000 (double free), 0x200000 (fine), 0x100000 (double free); named after the driver.
    expect(r.errors()).toEqual([
      `${P()}device driver tries to free DMA memory it has not allocated [device address=${A(0x300000)}] [size=4096 bytes]\n`,
      `${P()}device driver tries to free DMA memory it has not allocated [device address=${A(0x100000)}] [size=4096 bytes]\n`,
    ]);
  });
});

describe('dma-debug §3.3: entries survive; quota and filter apply', () => {
  it('leak_reported_again_after_rebind', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_pages(r.dev, 0x100, 4096, DMA_BIDIRECTIONAL, 0x100000);
    unbind(r);
    r.dev.driver = E1000;
    unbind(r);
    const one = leak(1, 0x100000, 4096, 'DMA_BIDIRECTIONAL', 'noncoherent');
    expect(r.errors()).toEqual([one, one]);
    expect(r.dbg.entryCount()).toBe(1);
  });

  it('leak_report_suppressed_by_quota', () => {
    const r = rig({ allErrors: false });
    r.dbg.debug_dma_unmap_phys(r.dev, 0x900000, 4096, DMA_TO_DEVICE);
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    unbind(r);
    expect(r.errors()).toHaveLength(1);
    expect(r.dbg.error_count).toBe(2);
    expect(r.dbg.errors[1]?.printed).toBe(false);
    expect(r.dbg.errors[1]?.text).toBe(leak(1, 0x100000, 4096, 'DMA_TO_DEVICE', 'phy'));
  });

  it('leak_with_driver_filter_hidden', () => {
    const r = rig({ driverFilter: 'e1000' });
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, 0x900000, 4096, DMA_TO_DEVICE); // shown: the driver matches (and is remembered)
    unbind(r);
    expect(r.errors()).toEqual([
      `${P()}device driver tries to free DMA memory it has not allocated [device address=${A(0x900000)}] [size=4096 bytes]\n`,
    ]);
    expect(r.dbg.error_count).toBe(2);
  });

  it('the leak report names the bus even if the notifier is called with the driver still set', () => {
    const r = rig();
    mapChecked(r, 0x100000, 4096, DMA_TO_DEVICE);
    r.dbg.dma_debug_device_change(r.dev, BUS_NOTIFY_UNBOUND_DRIVER);
    expect(r.errors()).toEqual([leak(1, 0x100000, 4096, 'DMA_TO_DEVICE', 'phy')]);
  });
});
