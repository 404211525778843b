import { describe, expect, it } from 'vitest';
import { EINVAL, KernelBug, KernelError } from '../../../src/core/index.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import {
  DMA_ATTR_NO_WARN, DMA_MAPPING_ERROR, INVALID_PHYS_ADDR, IO_TLB_SIZE, SwiotlbPool, searchConstraints, swiotlbAudit,
  swiotlb_max_mapping_size, type SwiotlbDevice,
} from '../../../src/dma/swiotlb/index.ts';
import { Machine } from '../../../src/sim/machine.ts';
import { rig, snapshot, type Rig } from './helpers.ts';

const S = 0x4000000; // default pool start (64 MiB aligned)
const NOMASK: SwiotlbDevice = {};
const NVME: SwiotlbDevice = { min_align_mask: 0xfff };
const fulls = (r: Rig): string[] => r.msgs().filter((x) => x.startsWith('swiotlb buffer is full'));
const full = (sz: number, total: number, used: number): string => `swiotlb buffer is full (sz: ${sz} bytes), total ${total} (slots), used ${used} (slots)\n`;

describe('swiotlb §2.1-2.3: before the search', () => {
  it('without a pool: "Can not allocate ..." (no newline), failure, no WARN even for a big alignment', () => {
    const r = rig({ size: 0 });
    expect(r.pool.is_swiotlb_active()).toBe(false);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0x1fff, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.msgs()).toEqual(["Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer"]);
    expect(r.m.klog.warnCount).toBe(0);
  });

  it('align > 0xfff WARNs once, before the map fails', () => {
    const r = rig({ size: '1M' });
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 300_000, 0x1fff, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.m.klog.messages.map((x) => [x.kind, x.message])).toEqual([
      ['WARN', 'Alloc alignment may prevent fulfilling requests with max mapping_size\n'],
      ['printk', full(303104, 512, 0)],
    ]);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0x1fff, DMA_TO_DEVICE, 0)).toBe(S);
    expect(r.m.klog.warnCount).toBe(1);
    // 0xfff itself does not warn.
    const r2 = rig({ size: '1M' });
    r2.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0xfff, DMA_TO_DEVICE, 0);
    expect(r2.m.klog.warnCount).toBe(0);
  });

  it('align > 0xfff WARNs even when the map then BUGs', () => {
    const r = rig({ size: '1M' });
    expect(() => r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 0, 0x1fff, DMA_TO_DEVICE, 0)).toThrow(KernelBug);
    expect(r.m.klog.warnCount).toBe(1);
  });

  it('a zero-length mapping with offset 0 is BUG_ON(!nslots), and changes nothing', () => {
    const r = rig({ size: '1M' });
    const before = snapshot(r.pool);
    expect(() => r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 0, 0, DMA_TO_DEVICE, 0)).toThrow(/BUG_ON\(!nslots\)/);
    expect(() => r.pool.swiotlb_tbl_map_single(NVME, 0x101000, 0, 0, DMA_TO_DEVICE, 0)).toThrow(KernelBug);
    expect(snapshot(r.pool)).toEqual(before);
  });

  it('a zero-length mapping whose orig has bits under min_align_mask takes 1 slot and copies 0 bytes', () => {
    const r = rig({ size: '1M' });
    r.write(0x100234, new Uint8Array(16).fill(0xaa));
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, 0x100234, 0, 0, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(S + 0x234);
    expect(r.pool.io_tlb_used).toBe(1);
    expect(r.read(tlb, 16)).toEqual(new Uint8Array(16));
    r.pool.swiotlb_tbl_unmap_single(NVME, tlb, 0, DMA_FROM_DEVICE, 0);
    expect(r.pool.io_tlb_used).toBe(0);
    expect(swiotlbAudit(r.pool)).toEqual([]);
  });

  it('offset = orig & keep & (align | 0x7ff); size rounds up to align + 1', () => {
    const r = rig({ size: '1M' });
    // 3000 bytes at align 0xfff: one 4096-byte allocation, 2 slots.
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 3000, 0xfff, DMA_TO_DEVICE, 0);
    expect(r.pool.liveMappings()[0]).toMatchObject({ allocSize: 4096, nslots: 2, padSlots: 0, tlbAddr: S });
    // keep bits above align | 0x7ff are not part of the offset (they select the slot instead).
    const tlb = r.pool.swiotlb_tbl_map_single({ min_align_mask: 0x3fff }, 0x102a34, 100, 0, DMA_TO_DEVICE, 0);
    expect(r.pool.findMapping(tlb)).toMatchObject({ allocSize: 100 + 0x234, nslots: 1 });
    expect(tlb % 0x4000).toBe(0x2a34);
  });
});

describe('swiotlb §2.4: areas', () => {
  it('starts at area cpu & (nareas - 1), then the following areas, wrapping', () => {
    const r = rig({ size: '1M', areas: 4 });
    const seg = 128 * IO_TLB_SIZE;
    expect(r.pool.areaNslabs).toBe(128);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0, 6)).toBe(S + 2 * seg);
    expect(r.pool.areaState(2)).toEqual({ index: 1, used: 1 });
    r.pool.swiotlb_tbl_unmap_single(NOMASK, S + 2 * seg, 2048, DMA_TO_DEVICE, 0);
    // Area 2 is whole again; its walk starts at index 1 and finds local slot 0 after the wrap.
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0, 2)).toBe(S + 2 * seg);
    expect(r.pool.areaState(2)).toEqual({ index: 0, used: 128 });
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0, 2)).toBe(S + 3 * seg); // 2 full → 3
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0, 3)).toBe(S); // 3 full → 0
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0, 7)).toBe(S + seg); // 3, 0 full → 1
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0, 1)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toEqual([full(2048, 512, 512)]);
    expect([0, 1, 2, 3].map((a) => r.pool.areaState(a).used)).toEqual([128, 128, 128, 128]);
    expect(swiotlbAudit(r.pool)).toEqual([]);
  });
});

describe('swiotlb §2.5: constraints inside an area', () => {
  it('step: page alignment 2, NVMe keep 0xfff 2, keep 0x3fff 8, 64 KiB alignment 32', () => {
    expect(searchConstraints(0, 0, 4096)).toEqual({ align: 0xfff, keep: 0, step: 2 });
    expect(searchConstraints(0xfff, 0, 4096)).toEqual({ align: 0x7ff, keep: 0x800, step: 2 });
    expect(searchConstraints(0x3fff, 0, 100)).toEqual({ align: 0x7ff, keep: 0x3800, step: 8 });
    expect(searchConstraints(0, 0xffff, 65536)).toEqual({ align: 0xffff, keep: 0, step: 32 });
    expect(searchConstraints(0xfff, 0xfff, 8192)).toEqual({ align: 0xfff, keep: 0, step: 2 });
  });

  it('legacy page alignment: size >= 4096, no align and no min_align_mask', () => {
    const r = rig({ size: '1M' });
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2000, 0, DMA_TO_DEVICE, 0)).toBe(S);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(S + 4096);
  });

  it('no legacy page alignment under 4096 bytes, nor for a device with any min_align_mask (even 3)', () => {
    for (const [dev, size] of [[NOMASK, 3000], [{ min_align_mask: 3 }, 4096], [{ min_align_mask: 3 }, 65536]] as const) {
      const r = rig({ size: '1M' });
      r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2000, 0, DMA_TO_DEVICE, 0);
      expect(r.pool.swiotlb_tbl_map_single(dev, 0x100000, size, 0, DMA_TO_DEVICE, 0)).toBe(S + 2048);
    }
  });

  it('min_align_mask bits above the slot pick the slot: NVMe keeps bit 11, keep 0x3fff keeps bits 11-13', () => {
    const r = rig({ size: '1M' });
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2000, 0, DMA_TO_DEVICE, 0);
    expect(r.pool.swiotlb_tbl_map_single(NVME, 0x100000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(S + 4096);
    const tlb = r.pool.swiotlb_tbl_map_single({ min_align_mask: 0x3fff }, 0x102800, 100, 0, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(S + 0x2800); // first slot with bits 11-13 = 5 from index 4: slot 5
    expect(tlb % 0x4000).toBe(0x102800 % 0x4000);
  });

  it('the preserved-bits test is skipped when orig is 0', () => {
    const r = rig({ size: '1M' });
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2000, 0, DMA_TO_DEVICE, 0);
    // orig 0x800 would need an odd slot; orig 0 takes the next slot, whatever its bit 11.
    expect(r.pool.swiotlb_tbl_map_single(NVME, 0, 100, 0, DMA_TO_DEVICE, 0)).toBe(S + 2048);
    expect(r.pool.swiotlb_tbl_map_single(NVME, 0x800, 100, 0, DMA_TO_DEVICE, 0)).toBe(S + 3 * 2048);
  });

  it('64 KiB boundary: B = 32 slots; 33 slots never fit; 32 fit; runs do not cross a 64 KiB line', () => {
    const dev: SwiotlbDevice = { segment_boundary_mask: 0xffff };
    const r = rig({ size: '1M' });
    expect(r.pool.swiotlb_tbl_map_single(dev, 0x100000, 33 * 2048, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toEqual([full(67584, 512, 0)]);
    expect(r.pool.swiotlb_tbl_map_single(dev, 0x100000, 2048, 0, DMA_TO_DEVICE, 0)).toBe(S);
    expect(r.pool.swiotlb_tbl_map_single(dev, 0x100000, 65536, 0, DMA_TO_DEVICE, 0)).toBe(S + 65536);
    const r2 = rig({ size: '1M' });
    r2.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0);
    expect(r2.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 65536, 0, DMA_TO_DEVICE, 0)).toBe(S + 4096);
  });

  it('boundary arithmetic uses pool_start & boundary: a pool at 0x1013000 puts a 64 KiB run at slot 26', () => {
    const r = rig({ start: 0x1013000, size: '256K' });
    expect(r.pool.swiotlb_tbl_map_single({ segment_boundary_mask: 0xffff }, 0x100000, 65536, 0, DMA_TO_DEVICE, 0)).toBe(0x1020000);
    expect(r.pool.liveMappings()[0]?.firstSlot).toBe(26);
  });

  it('boundary masks above 32 bits, ULONG_MAX as Infinity or MAX_SAFE_INTEGER, and 0 all work', () => {
    for (const b of [0, Infinity, Number.MAX_SAFE_INTEGER, 2 ** 64, 2 ** 40 - 1, 0xffffffff]) {
      const r = rig({ size: '1M' });
      expect(r.pool.swiotlb_tbl_map_single({ segment_boundary_mask: b }, 0x100000, 262144, 0, DMA_TO_DEVICE, 0)).toBe(S);
    }
  });

  it('minalign-above-seg: min_align_mask bits above the boundary mask are not preserved', () => {
    const dev: SwiotlbDevice = { min_align_mask: 0x1ffff, segment_boundary_mask: 0xffff };
    const r = rig({ start: 0x1013000, size: '256K' });
    const tlb = r.pool.swiotlb_tbl_map_single(dev, 0x130000, 2048, 0, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(0x1020000);
    expect(tlb % 0x20000).not.toBe(0x130000 % 0x20000);
    const r2 = rig({ start: 0x1013000, size: '256K' });
    const tlb2 = r2.pool.swiotlb_tbl_map_single({ min_align_mask: 0x1ffff }, 0x130000, 2048, 0, DMA_TO_DEVICE, 0);
    expect(tlb2).toBe(0x1030000);
    expect(tlb2 % 0x20000).toBe(0x130000 % 0x20000);
  });

  it('alignment requests keep their real alignment despite the boundary base (the size is rounded first)', () => {
    const r = rig({ start: 0x1013000, size: '256K' });
    const tlb = r.pool.swiotlb_tbl_map_single({ segment_boundary_mask: 0xffff }, 0x100000, 8192, 0xffff, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(0x1020000);
    expect(tlb % 0x10000).toBe(0);
  });

  it('an align larger than the boundary always fails (sz 131072); an align equal to it fits', () => {
    const dev: SwiotlbDevice = { segment_boundary_mask: 0xffff };
    const r = rig({ size: '1M' });
    expect(r.pool.swiotlb_tbl_map_single(dev, 0x100000, 8192, 0x1ffff, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toEqual([full(131072, 512, 0)]);
    expect(r.pool.swiotlb_tbl_map_single(dev, 0x100000, 8192, 0xffff, DMA_TO_DEVICE, 0)).toBe(S);
    expect(r.pool.io_tlb_used).toBe(32);
  });

  it('a non-power-of-two boundary size BUGs in iommu_is_span_boundary', () => {
    const r = rig({ size: '1M' });
    expect(() => r.pool.swiotlb_tbl_map_single({ segment_boundary_mask: 0x17fff }, 0x100000, 2048, 0, DMA_TO_DEVICE, 0)).toThrow(/is_power_of_2/);
    expect(r.pool.io_tlb_used).toBe(0);
  });

  it('the free run counts only to the end of its 128-slot segment', () => {
    const r = rig({ size: '1M' });
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 100 * 2048, 0, DMA_TO_DEVICE, 0)).toBe(S);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 40 * 2048, 0, DMA_TO_DEVICE, 0)).toBe(S + 128 * 2048);
    expect(r.pool.slots.list[100]).toBe(28);
  });
});

describe('swiotlb §2.6-2.8: next-fit walk and counters', () => {
  it('nextfit-wrap-skips-candidate: slots 98-105 free, index 100, 8 KiB alignment, 8 slots: fails; index 101: slot 98', () => {
    const start = 0x103d000;
    const r = rig({ start, size: '256K' });
    const p = r.pool;
    for (let i = 0; i < 128; i++) expect(p.swiotlb_tbl_map_single(NOMASK, 0x200000 + i * 4096, 2048, 0, DMA_TO_DEVICE, 0)).toBe(start + i * 2048);
    expect(p.areaState(0).index).toBe(0);
    p.swiotlb_tbl_unmap_single(NOMASK, start + 98 * 2048, 2048, DMA_TO_DEVICE, 0);
    p.swiotlb_tbl_unmap_single(NOMASK, start + 99 * 2048, 2048, DMA_TO_DEVICE, 0);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x300000, 2048, 0, DMA_TO_DEVICE, 0)).toBe(start + 98 * 2048);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x300000, 2048, 0, DMA_TO_DEVICE, 0)).toBe(start + 99 * 2048);
    for (let s = 98; s <= 105; s++) p.swiotlb_tbl_unmap_single(NOMASK, start + s * 2048, 2048, DMA_TO_DEVICE, 0);
    expect(p.areaState(0)).toEqual({ index: 100, used: 120 });

    expect(p.swiotlb_tbl_map_single(NOMASK, 0x400000, 16384, 0x1fff, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toEqual([full(16384, 128, 120)]);
    expect(p.areaState(0)).toEqual({ index: 100, used: 120 });

    const one = p.swiotlb_tbl_map_single(NOMASK, 0x300000, 2048, 0, DMA_TO_DEVICE, 0);
    expect(one).toBe(start + 100 * 2048);
    p.swiotlb_tbl_unmap_single(NOMASK, one, 2048, DMA_TO_DEVICE, 0);
    expect(p.areaState(0).index).toBe(101);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x400000, 16384, 0x1fff, DMA_TO_DEVICE, 0)).toBe(0x106e000);
    expect(p.areaState(0)).toEqual({ index: 106, used: 128 });
  });

  it('success: index = i + need (reset to 0 at the end), used and hiwater rise; failure changes nothing', () => {
    const r = rig({ size: '256K' });
    const p = r.pool;
    for (let i = 0; i < 127; i++) p.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0);
    expect(p.areaState(0).index).toBe(127);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0)).toBe(S + 127 * 2048);
    expect(p.areaState(0)).toEqual({ index: 0, used: 128 });
    const before = snapshot(p);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(snapshot(p)).toEqual(before);
    p.swiotlb_tbl_unmap_single(NOMASK, S + 5 * 2048, 2048, DMA_TO_DEVICE, 0);
    expect(p.io_tlb_used).toBe(127);
    expect(p.io_tlb_used_hiwater).toBe(128);
    expect(p.areaState(0)).toEqual({ index: 0, used: 127 });
  });
});

describe('swiotlb §2.9-2.11: failures and size limits', () => {
  it('"buffer is full" prints the rounded size (256 KiB + 0x234 → 262708) every time; NO_WARN silences it', () => {
    const r = rig({ size: '1M' });
    for (let i = 0; i < 2; i++) expect(r.pool.swiotlb_tbl_map_single(NVME, 0x100234, 262144, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.pool.swiotlb_tbl_map_single(NVME, 0x100234, 262144, 0, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(DMA_MAPPING_ERROR);
    expect(r.msgs()).toEqual([full(262708, 512, 0), full(262708, 512, 0)]);
    expect(r.m.klog.messages[0]?.level).toBe('warn');
  });

  it('"used" in the message is the global count, not the area\'s', () => {
    const r = rig({ size: '1M', areas: 2 });
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0, 0);
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 6000, 0, DMA_TO_DEVICE, 0, 1);
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 300_000, 0, DMA_TO_DEVICE, 0, 1);
    expect(fulls(r)).toEqual([full(300_000, 512, 4)]);
  });

  it('exactly 256 KiB fits only on a wholly free segment', () => {
    const r = rig({ size: '1M' });
    const p = r.pool;
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0)).toBe(S);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0)).toBe(S + 262144);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0)).toBe(S + 2 * 262144);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0)).toBe(S + 3 * 262144);
    expect(p.swiotlb_tbl_map_single(NOMASK, 0x100000, 262144, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toEqual([full(262144, 512, 385)]);
    // Above 256 KiB never fits, even on an empty pool.
    const r2 = rig({ size: '1M' });
    expect(r2.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 262145, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r2)).toEqual([full(262145, 512, 0)]);
  });

  it('NVMe: 252 KiB with any offset fits a free segment; 256 KiB plus a nonzero offset does not', () => {
    const r = rig({ size: '1M' });
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, 0x100ffe, 258048, 0, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(S + 2048 + 0x7fe);
    expect(tlb % 4096).toBe(0xffe);
    expect(r.pool.io_tlb_used).toBe(127);
    expect(r.pool.swiotlb_tbl_map_single(NVME, 0x100001, 262144, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toEqual([full(262145, 512, 127)]);
  });

  it('NVMe: 252 KiB fits a free segment at every offset', () => {
    for (const off of [0, 1, 0x234, 0x7ff, 0x800, 0x801, 0xffe, 0xfff]) {
      const r = rig({ size: '1M' });
      const tlb = r.pool.swiotlb_tbl_map_single(NVME, 0x100000 + off, 258048, 0, DMA_TO_DEVICE, 0);
      expect(tlb).not.toBe(DMA_MAPPING_ERROR);
      expect(tlb % 4096).toBe(off);
    }
  });

  it('swiotlb_max_mapping_size = 262144 - roundup(min_align_mask, 2048)', () => {
    expect(swiotlb_max_mapping_size({})).toBe(262144);
    expect(swiotlb_max_mapping_size(NVME)).toBe(258048);
    expect(swiotlb_max_mapping_size({ min_align_mask: 3 })).toBe(260096);
    expect(swiotlb_max_mapping_size({ min_align_mask: 0x3fff })).toBe(245760);
    expect(swiotlb_max_mapping_size({ min_align_mask: 0x40000 })).toBe(0);
    expect(swiotlb_max_mapping_size({ min_align_mask: 0xffffffff })).toBe(262144); // int -1 rounds up to 0
    expect(swiotlb_max_mapping_size({ min_align_mask: 0x7ffff })).toBeGreaterThan(2 ** 63); // size_t wrap
  });
});

describe('swiotlb §2 "What the caller gets back"', () => {
  it('padding slots: NVMe with align 0xfff and orig & 0x800 → 1 padding slot, counted, with no orig', () => {
    const r = rig({ size: '1M' });
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, 0x100834, 4096, 0xfff, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(S + 0x834);
    expect(tlb % 4096).toBe(0x834);
    expect(r.pool.io_tlb_used).toBe(4);
    const { orig, room, pad } = r.pool.slots;
    expect(Array.from(orig.subarray(0, 5))).toEqual([INVALID_PHYS_ADDR, 0x100834, 0x101034, 0x101834, INVALID_PHYS_ADDR]);
    expect(Array.from(room.subarray(0, 4))).toEqual([8140, 6092, 4044, 1996]);
    expect(Array.from(pad.subarray(0, 4))).toEqual([0, 1, 0, 0]);
    expect(r.pool.liveMappings()).toEqual([{ orig: 0x100834, tlbAddr: S + 0x834, mappingSize: 4096, allocSize: 8192, firstSlot: 0, nslots: 4, padSlots: 1, area: 0 }]);
    r.pool.swiotlb_tbl_unmap_single(NVME, tlb, 4096, DMA_TO_DEVICE, 0);
    const fresh = snapshot(rig({ size: '1M' }).pool) as Record<string, unknown>;
    expect(snapshot(r.pool)).toEqual({ ...fresh, hiwater: 4, areas: [{ index: 4, used: 0 }] });
  });

  it('room wraps below zero: 2000 bytes at offset 0x234 → rooms [2000, -48]; the allocation ends at returned + 2000', () => {
    const r = rig({ size: '1M' });
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, 0x100234, 2000, 0, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(S + 0x234);
    expect(Array.from(r.pool.slots.room.subarray(0, 2))).toEqual([2000, -48]);
    expect(Array.from(r.pool.slots.orig.subarray(0, 2))).toEqual([0x100234, 0x100a34]);
    expect(r.pool.liveMappings()[0]).toMatchObject({ allocSize: 2564, nslots: 2, padSlots: 0 });
  });
});

describe('swiotlb §3: freeing', () => {
  it('an address outside the pool does nothing, even with DMA_NONE; so do syncs', () => {
    const r = rig({ size: '1M' });
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0);
    const before = snapshot(r.pool);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, S - 1, 2048, DMA_NONE, 0);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, S + 2 ** 20, 2048, DMA_FROM_DEVICE, 0);
    r.pool.swiotlb_sync_single_for_cpu(NOMASK, S + 2 ** 20, 2048, DMA_NONE);
    r.pool.swiotlb_sync_single_for_device(NOMASK, 0, 2048, DMA_NONE);
    expect(snapshot(r.pool)).toEqual(before);
    expect(() => r.pool.swiotlb_release_slots(NOMASK, S - 2048)).toThrow(KernelError);
  });

  it('release charges the area of the first slot; hiwater and the area index stay', () => {
    const r = rig({ size: '1M', areas: 2 });
    const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0, DMA_TO_DEVICE, 0, 1);
    expect(tlb).toBe(S + 256 * 2048);
    r.pool.swiotlb_release_slots(NOMASK, tlb);
    expect(r.pool.areaState(1)).toEqual({ index: 2, used: 0 });
    expect(r.pool.io_tlb_used_hiwater).toBe(2);
    expect(swiotlbAudit(r.pool)).toEqual([]);
  });

  it('free runs merge with free neighbours only inside the 128-slot segment', () => {
    const r = rig({ size: '1M' });
    const p = r.pool;
    const a = p.swiotlb_tbl_map_single(NOMASK, 0x100000, 131072, 0, DMA_TO_DEVICE, 0);
    const b = p.swiotlb_tbl_map_single(NOMASK, 0x100000, 131072, 0, DMA_TO_DEVICE, 0);
    const c = p.swiotlb_tbl_map_single(NOMASK, 0x100000, 131072, 0, DMA_TO_DEVICE, 0);
    expect([a, b, c]).toEqual([S, S + 131072, S + 262144]);
    p.swiotlb_tbl_unmap_single(NOMASK, b, 131072, DMA_TO_DEVICE, 0);
    expect([p.slots.list[63], p.slots.list[64], p.slots.list[127]]).toEqual([0, 64, 1]);
    p.swiotlb_tbl_unmap_single(NOMASK, c, 131072, DMA_TO_DEVICE, 0);
    expect([p.slots.list[127], p.slots.list[128]]).toEqual([1, 128]);
    p.swiotlb_tbl_unmap_single(NOMASK, a, 131072, DMA_TO_DEVICE, 0);
    expect(p.slots.list[0]).toBe(128);
    expect(Array.from(p.slots.list)).toEqual(Array.from(rig({ size: '1M' }).pool.slots.list));
  });

  it('the slots freed are those recorded at map time, whatever size unmap is given', () => {
    const r = rig({ size: '1M' });
    const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 6000, 0, DMA_TO_DEVICE, 0);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, tlb, 10, DMA_TO_DEVICE, 0);
    expect(r.pool.io_tlb_used).toBe(0);
    expect(swiotlbAudit(r.pool)).toEqual([]);
  });

  it('release finds the first slot through the padding slots', () => {
    const r = rig({ size: '1M' });
    const t1 = r.pool.swiotlb_tbl_map_single(NVME, 0x100834, 4096, 0xfff, DMA_TO_DEVICE, 0);
    const t2 = r.pool.swiotlb_tbl_map_single(NVME, 0x100834, 4096, 0xfff, DMA_TO_DEVICE, 0);
    expect(t2).toBe(S + 4 * 2048 + 0x834);
    r.pool.swiotlb_tbl_unmap_single(NVME, t1, 4096, DMA_TO_DEVICE, 0);
    expect(r.pool.liveMappings().map((x) => x.firstSlot)).toEqual([4]);
    expect(Array.from(r.pool.slots.list.subarray(0, 5))).toEqual([4, 3, 2, 1, 0]);
    expect(swiotlbAudit(r.pool)).toEqual([]);
  });
});

describe('swiotlb §6: counters', () => {
  it('hiwater is a running maximum; writing 0 resets it, anything else is -EINVAL', () => {
    const r = rig({ size: '1M' });
    const t = r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 8192, 0, DMA_TO_DEVICE, 0);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, t, 8192, DMA_TO_DEVICE, 0);
    expect([r.pool.io_tlb_used, r.pool.io_tlb_used_hiwater, r.pool.io_tlb_nslabs]).toEqual([0, 4, 512]);
    expect(r.pool.io_tlb_hiwater_set(5)).toBe(-EINVAL);
    expect(r.pool.io_tlb_used_hiwater).toBe(4);
    expect(r.pool.io_tlb_hiwater_set(0)).toBe(0);
    expect(r.pool.io_tlb_used_hiwater).toBe(0);
  });
});

describe('swiotlb §7: other surprises', () => {
  it('DMA_NONE is accepted by map and unmap', () => {
    const r = rig({ size: '1M' });
    const t = r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 100, 0, DMA_NONE, 0);
    expect(t).toBe(S);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, t, 100, DMA_NONE, 0);
    expect(r.pool.io_tlb_used).toBe(0);
  });
});

describe('swiotlb fault injection', () => {
  it('an injected failure is a full pool: the message, -1, and nothing changed; NO_WARN silences it', () => {
    const r = rig({ size: '1M' });
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0, DMA_TO_DEVICE, 0);
    r.m.faults.inject('swiotlb', { nth: 1 });
    const before = snapshot(r.pool);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0, DMA_BIDIRECTIONAL, 0)).toBe(DMA_MAPPING_ERROR);
    expect(snapshot(r.pool)).toEqual(before);
    expect(fulls(r)).toEqual([full(4096, 512, 2)]);
    expect(r.m.faults.injected.swiotlb).toBe(1);
    r.m.faults.inject('swiotlb', { nth: 1 });
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(DMA_MAPPING_ERROR);
    expect(fulls(r)).toHaveLength(1);
    expect(r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(S + 4096);
  });

  it('failing each map of a sequence in turn leaves no trace, and the rest still works', () => {
    const seq: [SwiotlbDevice, number, number, number][] = [
      [NOMASK, 0x100000, 4096, 0], [NVME, 0x100834, 6000, 0xfff], [NOMASK, 0x100000, 300, 0], [{ min_align_mask: 0x3fff }, 0x102a00, 70000, 0],
    ];
    for (let k = 1; k <= seq.length; k++) {
      const r = rig({ size: '1M' });
      r.m.faults.inject('swiotlb', { nth: k });
      const live: [SwiotlbDevice, number, number][] = [];
      seq.forEach(([dev, orig, len, align], i) => {
        const before = snapshot(r.pool);
        const t = r.pool.swiotlb_tbl_map_single(dev, orig, len, align, DMA_TO_DEVICE, 0);
        if (i + 1 === k) {
          expect(t).toBe(DMA_MAPPING_ERROR);
          expect(snapshot(r.pool)).toEqual(before);
        } else {
          expect(t).not.toBe(DMA_MAPPING_ERROR);
          live.push([dev, t, len]);
        }
        expect(swiotlbAudit(r.pool)).toEqual([]);
      });
      for (const [dev, t, len] of live) r.pool.swiotlb_tbl_unmap_single(dev, t, len, DMA_TO_DEVICE, 0);
      expect(r.pool.io_tlb_used).toBe(0);
      expect(Array.from(r.pool.slots.list)).toEqual(Array.from(rig({ size: '1M' }).pool.slots.list));
    }
  });

  it('a map whose original is not RAM throws EFAULT from the copy and leaves the pool as it was', () => {
    const r = rig({ size: '1M' });
    r.pool.swiotlb_tbl_map_single(NOMASK, 0x100000, 2048, 0, DMA_TO_DEVICE, 0);
    const before = snapshot(r.pool);
    expect(() => r.pool.swiotlb_tbl_map_single(NOMASK, 2 ** 40, 4096, 0, DMA_TO_DEVICE, 0)).toThrow(KernelError);
    expect(snapshot(r.pool)).toEqual(before);
  });
});

describe('swiotlb argument checks', () => {
  it('throws EINVAL naming the argument for values no C caller could pass', () => {
    const r = rig({ size: '1M' });
    const p = r.pool;
    const cases: [() => unknown, string][] = [
      [() => p.swiotlb_tbl_map_single(NOMASK, -1, 10, 0, DMA_TO_DEVICE, 0), 'orig_addr'],
      [() => p.swiotlb_tbl_map_single(NOMASK, 0x1000, 1.5, 0, DMA_TO_DEVICE, 0), 'mapping_size'],
      [() => p.swiotlb_tbl_map_single(NOMASK, 0x1000, 10, 2 ** 32, DMA_TO_DEVICE, 0), 'alloc_align_mask'],
      [() => p.swiotlb_tbl_map_single(NOMASK, 0x1000, 10, 0, 7 as never, 0), 'dir'],
      [() => p.swiotlb_tbl_map_single(NOMASK, 0x1000, 10, 0, DMA_TO_DEVICE, -1), 'attrs'],
      [() => p.swiotlb_tbl_map_single({ min_align_mask: 2 ** 32 }, 0x1000, 10, 0, DMA_TO_DEVICE, 0), 'dev.min_align_mask'],
      [() => p.swiotlb_tbl_map_single({ segment_boundary_mask: -1 }, 0x1000, 10, 0, DMA_TO_DEVICE, 0), 'dev.segment_boundary_mask'],
      [() => p.swiotlb_tbl_unmap_single(NOMASK, Number.NaN, 10, DMA_TO_DEVICE, 0), 'tlb_addr'],
      [() => p.swiotlb_sync_single_for_cpu(NOMASK, S, -3, DMA_FROM_DEVICE), 'size'],
      [() => new SwiotlbPool({ start: 0x1000400, memory: r.m.mm, klog: r.m.klog }), 'start'],
      [() => new SwiotlbPool({ start: S, size: 3 * 2048, memory: r.m.mm, klog: r.m.klog }), 'size'],
      [() => new SwiotlbPool({ start: S, size: '1M', areas: 3, memory: r.m.mm, klog: r.m.klog }), 'areas'],
      [() => new SwiotlbPool({ start: S, size: '256K', areas: 2, memory: r.m.mm, klog: r.m.klog }), 'areas'],
    ];
    for (const [f, arg] of cases) {
      try {
        f();
        expect.unreachable(arg);
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).errno).toBe(EINVAL);
        expect((e as KernelError).arg).toBe(arg);
      }
    }
    expect(p.io_tlb_used).toBe(0);
  });

  it('pools live in their own machine', () => {
    const m1 = new Machine({ memory: '256M' });
    m1.klog.clear(); // only what swiotlb prints
    const m2 = new Machine({ memory: '256M' });
    m2.klog.clear(); // only what swiotlb prints
    const p1 = new SwiotlbPool({ start: S, size: '1M', memory: m1.mm, klog: m1.klog, verbose: false });
    const p2 = new SwiotlbPool({ start: S, size: '1M', memory: m2.mm, klog: m2.klog, verbose: false });
    p1.swiotlb_tbl_map_single(NOMASK, 0x100000, 5000, 0, DMA_TO_DEVICE, 0);
    expect(p2.io_tlb_used).toBe(0);
    p1.swiotlb_tbl_map_single(NOMASK, 0x100000, 5000, 0x1fff, DMA_TO_DEVICE, 0);
    p2.swiotlb_tbl_map_single(NOMASK, 0x100000, 5000, 0x1fff, DMA_TO_DEVICE, 0);
    expect([m1.klog.warnCount, m2.klog.warnCount]).toEqual([1, 1]);
  });
});
