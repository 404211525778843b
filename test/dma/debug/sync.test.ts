/** @module test/dma/debug/sync: §2 covering lookup and §3.2 sync checks. */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { A, identitySg, mapChecked, P, rig, sge, virt } from './helpers.ts';

const X = 0x100000;
const notAllocated = (addr: number, size: number): string =>
  `${P()}device driver tries to sync DMA memory it has not allocated [device address=${A(addr)}] [size=${size} bytes]\n`;
const tail = (addr: number, size: number, mapped: string, synced: string): string =>
  `[device address=${A(addr)}] [size=${size} bytes] [mapped with ${mapped}] [synced with ${synced}]\n`;
const diffDir = (addr: number, size: number, m: string, s: string): string => `${P()}device driver syncs DMA memory with different direction ${tail(addr, size, m, s)}`;
const readOnly = (addr: number, size: number, m: string, s: string): string => `${P()}device driver syncs device read-only DMA memory for cpu ${tail(addr, size, m, s)}`;
const writeOnly = (addr: number, size: number, m: string, s: string): string => `${P()}device driver syncs device write-only DMA memory to device ${tail(addr, size, m, s)}`;
const sgCount = (map: number, sync: number): string => `${P()}device driver syncs DMA sg list with different entry count [map count=${map}] [sync count=${sync}]\n`;

describe('dma-debug §2: the covering lookup', () => {
  it('sync_duplicate_mapping_ambiguous', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X, 4096)]);
  });

  it('sync_single_ambiguous_two_sg_lists', () => {
    const r = rig();
    const list = identitySg([X, 0x200000]);
    r.dbg.debug_dma_map_sg(r.dev, list, 2, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_map_sg(r.dev, list, 2, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X + 0x100, 0x100, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X + 0x100, 0x100)]);
  });

  it('sync_walks_back_buckets', () => {
    const r = rig();
    mapChecked(r, X, 0x10000, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X + 0x6000, 0x1000, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X + 0xf000, 0x1000, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([]);
    // Past the end: every bucket back to 0 is searched, and nothing covers it.
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X + 0xf000, 0x2000, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X + 0xf000, 0x2000)]);
  });

  it('the walk back wraps from bucket 0 to bucket 16383, and stops at bucket 0 for addresses below 8 KiB', () => {
    const r = rig();
    mapChecked(r, 0x7ffe000, 0x4000, DMA_FROM_DEVICE); // buckets 16383 and (wrapped) 0
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, 0x8001000, 0x100, DMA_FROM_DEVICE);
    // 0x8001000 is in bucket 0; the walk visits buckets 0, 16383, ... and finds the covering entry in 16383.
    expect(r.errors()).toEqual([]);
    // An address below 8 KiB visits its own bucket only.
    mapChecked(r, 0, 0x1000, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, 0x800, 0x100, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([]);
  });
});

describe('dma-debug §3.2: lookup fails', () => {
  it('sync_never_mapped', () => {
    const r = rig();
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X, 4096)]);
  });

  it('sync_after_unmap', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X, 4096, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X, 4096)]);
  });

  it('sync_past_end_reports_not_allocated', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4097, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X + 0x800, 0x900, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X, 4097), notAllocated(X + 0x800, 0x900)]);
  });
});

describe('dma-debug §3.2: outside the allocated range (only through 64-bit wrap)', () => {
  it('sync_outside_range_u64_wrap', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 2 ** 64 - X, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([
      `${P()}device driver syncs DMA memory outside allocated range [device address=${A(X)}] [allocation size=4096 bytes] [sync offset+size=18446744073708503040]\n`,
    ]);
  });

  it('sync_outside_range_wrap_offset', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    // dma_sync_single_range_for_device(dev, X, 0x800, size): the hook sees X + 0x800.
    r.dbg.debug_dma_sync_single_for_device(r.dev, X + 0x800, 2 ** 64 - (X + 0x800), DMA_TO_DEVICE);
    expect(r.errors()).toEqual([
      `${P()}device driver syncs DMA memory outside allocated range [device address=${A(X)}] [allocation size=4096 bytes] [sync offset+size=18446744073708500992]\n`,
    ]);
  });
});

describe('dma-debug §3.2: directions', () => {
  it('clean_bidirectional_any_sync_dir', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_BIDIRECTIONAL);
    for (const d of [DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE]) {
      r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, d);
      r.dbg.debug_dma_sync_single_for_device(r.dev, X, 4096, d);
    }
    expect(r.dbg.error_count).toBe(0);
  });

  it('sync_coherent_buffer', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_coherent(r.dev, 8192, X, virt(X));
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X + 0x1000, 0x1000, DMA_TO_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X, 8192, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sync_cpu_readonly_from_device_dir', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 512, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([
      diffDir(X, 4096, 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE'),
      readOnly(X, 4096, 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE'),
    ]);
  });

  it('sync_cpu_readonly_bidir_dir', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X + 0x200, 512, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([
      diffDir(X + 0x200, 4096, 'DMA_TO_DEVICE', 'DMA_BIDIRECTIONAL'),
      readOnly(X + 0x200, 4096, 'DMA_TO_DEVICE', 'DMA_BIDIRECTIONAL'),
    ]);
  });

  it('sync_cpu_to_device_mapping_legal', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sync_device_writeonly_to_device_dir', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([
      diffDir(X, 4096, 'DMA_FROM_DEVICE', 'DMA_TO_DEVICE'),
      writeOnly(X, 4096, 'DMA_FROM_DEVICE', 'DMA_TO_DEVICE'),
    ]);
  });

  it('sync_device_writeonly_bidir_dir', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X, 1024, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([
      diffDir(X, 4096, 'DMA_FROM_DEVICE', 'DMA_BIDIRECTIONAL'),
      writeOnly(X, 4096, 'DMA_FROM_DEVICE', 'DMA_BIDIRECTIONAL'),
    ]);
  });

  it('sync_device_from_device_mapping_legal', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_device(r.dev, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sync_cpu_dir_mismatch_from_device_mapping', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([diffDir(X, 4096, 'DMA_FROM_DEVICE', 'DMA_TO_DEVICE')]);
  });
});

describe('dma-debug §3.2: dma_sync_sg', () => {
  const list = (): ReturnType<typeof identitySg> => identitySg([X, 0x200000, 0x300000]);

  it('sg_sync_wrong_nents', () => {
    const r = rig();
    const l = list();
    r.dbg.debug_dma_map_sg(r.dev, l, 3, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, l, 2, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([sgCount(3, 2), sgCount(3, 2)]);
  });

  it('sg_sync_cpu_with_mapped_count', () => {
    const r = rig();
    const l = [sge(X, 4096, 0x8000_0000, 8192), sge(X + 4096, 4096, 0x8000_4000, 4096), sge(0x300000, 4096, 0, 0)];
    r.dbg.debug_dma_map_sg(r.dev, l, 3, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, l, 2, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([sgCount(3, 2), sgCount(3, 2)]);
    r.dbg.debug_dma_sync_sg_for_device(r.dev, l, 3, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(2);
  });

  it('sync_sg_wrong_nents_and_dir', () => {
    const r = rig();
    const l = list();
    r.dbg.debug_dma_map_sg(r.dev, l, 3, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, l, 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([diffDir(X, 4096, 'DMA_FROM_DEVICE', 'DMA_TO_DEVICE'), sgCount(3, 1)]);
  });

  it('sg_sync_unmapped_list_silent', () => {
    const r = rig();
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, list(), 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_sg_for_device(r.dev, list(), 3, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sg_sync_after_unmap_silent', () => {
    const r = rig();
    const l = list();
    r.dbg.debug_dma_map_sg(r.dev, l, 3, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, l, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, l, 3, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sync_single_on_sg_segment', () => {
    const r = rig();
    r.dbg.debug_dma_map_sg(r.dev, list(), 3, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, 0x200100, 0x100, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sync_single_dir_mismatch_on_sg_segment', () => {
    const r = rig();
    r.dbg.debug_dma_map_sg(r.dev, list(), 3, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, 0x200100, 0x100, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([diffDir(0x200100, 4096, 'DMA_FROM_DEVICE', 'DMA_TO_DEVICE')]);
  });

  it('a BIDIRECTIONAL sg mapping stops before the sg count check', () => {
    const r = rig();
    const l = list();
    r.dbg.debug_dma_map_sg(r.dev, l, 3, 3, DMA_BIDIRECTIONAL);
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, l, 2, DMA_BIDIRECTIONAL);
    expect(r.dbg.error_count).toBe(0);
  });
});
