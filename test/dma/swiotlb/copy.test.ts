import { describe, expect, it } from 'vitest';
import { KernelBug } from '../../../src/core/index.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE, type DmaDirection } from '../../../src/dma/api/direction.ts';
import {
  DMA_ATTR_SKIP_CPU_SYNC, DMA_MAPPING_ERROR, SwiotlbPool, swiotlbAudit, type SwiotlbDevice, type SwiotlbMemory,
} from '../../../src/dma/swiotlb/index.ts';
import { Machine } from '../../../src/sim/machine.ts';
import { pattern, rig } from './helpers.ts';

const S = 0x4000000;
const ORIG = 0x200000;
const NOMASK: SwiotlbDevice = {};
const NVME: SwiotlbDevice = { min_align_mask: 0xfff };
const DIRS: readonly DmaDirection[] = [DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE];
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

describe('swiotlb §4: map copies RAM → bounce', () => {
  it('always: every direction, DMA_NONE included, even with SKIP_CPU_SYNC; mapping_size bytes only', () => {
    for (const dir of DIRS) {
      for (const attrs of [0, DMA_ATTR_SKIP_CPU_SYNC]) {
        const r = rig({ size: '1M' });
        const a = pattern(5000, dir + 7);
        r.write(ORIG, a);
        const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 4000, 0, dir, attrs);
        expect(r.read(tlb, 5000)).toEqual(cat(a.subarray(0, 4000), new Uint8Array(1000)));
      }
    }
  });

  it('padding before the returned address and the tail after mapping_size keep their old bytes', () => {
    const r = rig({ size: '1M' });
    r.write(S, new Uint8Array(16384).fill(0x5a));
    const a = pattern(4096, 3);
    r.write(0x100834, a);
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, 0x100834, 4096, 0xfff, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(S + 0x834);
    expect(r.read(S, 8192)).toEqual(cat(new Uint8Array(0x834).fill(0x5a), a, new Uint8Array(8192 - 0x834 - 4096).fill(0x5a)));
    // Freed buffers are not cleared either.
    r.pool.swiotlb_tbl_unmap_single(NVME, tlb, 4096, DMA_TO_DEVICE, 0);
    expect(r.read(tlb, 4096)).toEqual(a);
  });
});

describe('swiotlb §4: unmap copies bounce → RAM', () => {
  it('only without SKIP_CPU_SYNC and for FROM_DEVICE or BIDIRECTIONAL; the map direction does not matter', () => {
    for (const mapDir of DIRS) {
      for (const dir of DIRS) {
        for (const attrs of [0, DMA_ATTR_SKIP_CPU_SYNC]) {
          const r = rig({ size: '1M' });
          const a = pattern(3000, 1);
          const d = pattern(3000, 100);
          r.write(ORIG, a);
          const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 3000, 0, mapDir, 0);
          r.write(tlb, d); // the device writes the whole buffer
          r.pool.swiotlb_tbl_unmap_single(NOMASK, tlb, 3000, dir, attrs);
          const back = attrs === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL);
          expect(r.read(ORIG, 3000)).toEqual(back ? d : a);
          expect(r.pool.io_tlb_used).toBe(0);
        }
      }
    }
  });

  it('fromdev-half-write: the unwritten half comes back as the map-time snapshot, over the CPU\'s later writes', () => {
    const r = rig({ size: '1M' });
    const a = pattern(4096, 1);
    const b = pattern(4096, 50);
    const d = pattern(2048, 200);
    r.write(ORIG, a);
    const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 4096, 0, DMA_FROM_DEVICE, 0);
    r.write(ORIG, b); // the CPU writes the buffer after mapping (a driver bug)
    r.write(tlb, d); // the device writes only the first half
    r.pool.swiotlb_tbl_unmap_single(NOMASK, tlb, 4096, DMA_FROM_DEVICE, 0);
    expect(r.read(ORIG, 4096)).toEqual(cat(d, a.subarray(2048)));
  });

  it('a different unmap size changes only the copy-back length', () => {
    const r = rig({ size: '1M' });
    const a = pattern(2000, 1);
    const d = pattern(2000, 9);
    r.write(ORIG, a);
    const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 2000, 0, DMA_FROM_DEVICE, 0);
    r.write(tlb, d);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, tlb, 100, DMA_FROM_DEVICE, 0);
    expect(r.read(ORIG, 2000)).toEqual(cat(d.subarray(0, 100), a.subarray(100)));
    expect(r.pool.io_tlb_used).toBe(0);
    expect(r.m.klog.warnCount).toBe(0);
  });
});

describe('swiotlb §4: syncs', () => {
  it('sync_for_device copies RAM → bounce for TO_DEVICE and BIDIRECTIONAL, nothing for FROM_DEVICE, BUGs on DMA_NONE', () => {
    for (const dir of DIRS) {
      const r = rig({ size: '1M' });
      const a = pattern(3000, 1);
      const n = pattern(3000, 77);
      r.write(ORIG, a);
      const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 3000, 0, DMA_BIDIRECTIONAL, 0);
      r.write(ORIG, n);
      if (dir === DMA_NONE) {
        expect(() => r.pool.swiotlb_sync_single_for_device(NOMASK, tlb, 3000, dir)).toThrow(KernelBug);
        expect(r.read(tlb, 3000)).toEqual(a);
        continue;
      }
      r.pool.swiotlb_sync_single_for_device(NOMASK, tlb, 3000, dir);
      expect(r.read(tlb, 3000)).toEqual(dir === DMA_FROM_DEVICE ? a : n);
    }
  });

  it('sync_for_cpu copies bounce → RAM for FROM_DEVICE and BIDIRECTIONAL, nothing for TO_DEVICE, BUGs on DMA_NONE', () => {
    for (const dir of DIRS) {
      const r = rig({ size: '1M' });
      const a = pattern(3000, 1);
      const d = pattern(3000, 33);
      r.write(ORIG, a);
      const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 3000, 0, DMA_TO_DEVICE, 0);
      r.write(tlb, d);
      if (dir === DMA_NONE) {
        expect(() => r.pool.swiotlb_sync_single_for_cpu(NOMASK, tlb, 3000, dir)).toThrow(/BUG_ON\(dir != DMA_TO_DEVICE\)/);
        expect(r.read(ORIG, 3000)).toEqual(a);
        continue;
      }
      r.pool.swiotlb_sync_single_for_cpu(NOMASK, tlb, 3000, dir);
      expect(r.read(ORIG, 3000)).toEqual(dir === DMA_TO_DEVICE ? a : d);
    }
  });

  it('a sync in the middle maps back exactly, also inside the first offset bytes of a later slot', () => {
    const r = rig({ size: '1M' });
    const orig = 0x100234;
    const a = pattern(6000, 1);
    const d = pattern(6000, 90);
    r.write(orig, a);
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, orig, 6000, 0, DMA_FROM_DEVICE, 0);
    expect(tlb).toBe(S + 0x234);
    r.write(tlb, d);
    const addr = S + 2048 + 10; // slot 1, 10 bytes in: before that slot's data start (0x234)
    r.pool.swiotlb_sync_single_for_cpu(NVME, addr, 50, DMA_FROM_DEVICE);
    const at = addr - tlb; // 1494
    expect(at).toBe(1494);
    expect(r.read(orig, 6000)).toEqual(cat(a.subarray(0, at), d.subarray(at, at + 50), a.subarray(at + 50)));
    r.pool.swiotlb_sync_single_for_cpu(NVME, tlb + 4500, 1500, DMA_FROM_DEVICE);
    expect(r.read(orig + 4500, 1500)).toEqual(d.subarray(4500));
    expect(r.m.klog.warnCount).toBe(0);
  });

  it('slots without an original address (padding, free) copy nothing', () => {
    const m = new Machine({ memory: '256M' });
    m.klog.clear(); // only what swiotlb prints
    let writes = 0;
    const memory: SwiotlbMemory = {
      readPhysInto: (p, d, o, l) => m.mm.readPhysInto(p, d, o, l),
      writePhys: (p, s, o, l) => { writes++; m.mm.writePhys(p, s, o, l); },
    };
    const pool = new SwiotlbPool({ start: S, size: '1M', memory, klog: m.klog, clear: false, verbose: false });
    pool.swiotlb_tbl_map_single(NVME, 0x100834, 4096, 0xfff, DMA_TO_DEVICE, 0);
    writes = 0;
    pool.swiotlb_sync_single_for_cpu(NVME, S + 0x10, 16, DMA_FROM_DEVICE); // padding slot 0
    pool.swiotlb_sync_single_for_device(NVME, S + 0x10, 16, DMA_TO_DEVICE);
    pool.swiotlb_sync_single_for_cpu(NVME, S + 100 * 2048, 16, DMA_FROM_DEVICE); // a free slot
    pool.swiotlb_tbl_unmap_single(NVME, S + 100 * 2048, 16, DMA_FROM_DEVICE, 0); // free slot, offset 0: copies nothing, frees 0 slots
    expect(writes).toBe(0);
    expect(pool.io_tlb_used).toBe(4);
    expect(swiotlbAudit(pool)).toEqual([]);
    expect(m.klog.messages).toEqual([]);
  });

  it('misuse: unmapping a free slot at a nonzero preserved offset "frees" 1 slot and the counters drift, as in the kernel', () => {
    const r = rig({ size: '1M' });
    r.pool.swiotlb_tbl_map_single(NVME, 0x100834, 4096, 0xfff, DMA_TO_DEVICE, 0);
    r.pool.swiotlb_tbl_unmap_single(NVME, S + 100 * 2048 + 0x10, 16, DMA_FROM_DEVICE, 0);
    expect(r.pool.io_tlb_used).toBe(3);
    expect(swiotlbAudit(r.pool)).toEqual(['area 0: used 3, but 4 slots are allocated', 'io_tlb_used 3, but 4 slots are allocated']);
  });
});

describe('swiotlb §4: the clamp', () => {
  it('measures against the allocation: 3000 bytes at align 0xfff sync 4000 unclamped (past the mapping in RAM), 5000 clamped to 4096 with one WARN', () => {
    const r = rig({ size: '1M' });
    const a = pattern(8192, 1);
    const d = pattern(4096, 60);
    r.write(ORIG, a);
    const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 3000, 0xfff, DMA_FROM_DEVICE, 0);
    r.write(tlb, d);
    r.pool.swiotlb_sync_single_for_cpu(NOMASK, tlb, 4000, DMA_FROM_DEVICE);
    expect(r.read(ORIG, 8192)).toEqual(cat(d.subarray(0, 4000), a.subarray(4000)));
    expect(r.m.klog.warnCount).toBe(0);
    r.pool.swiotlb_sync_single_for_cpu(NOMASK, tlb, 5000, DMA_FROM_DEVICE);
    expect(r.read(ORIG, 8192)).toEqual(cat(d, a.subarray(4096)));
    expect(r.m.klog.warnings().map((w) => [w.fn, w.message])).toEqual([
      ['swiotlb_bounce', 'Buffer overflow detected. Allocation size: 4096. Mapping size: 5000.\n'],
    ]);
    // Once per boot, but the clamp applies every time.
    r.write(ORIG, a);
    r.pool.swiotlb_tbl_unmap_single(NOMASK, tlb, 6000, DMA_FROM_DEVICE, 0);
    expect(r.read(ORIG, 8192)).toEqual(cat(d, a.subarray(4096)));
    expect(r.m.klog.warnCount).toBe(1);
  });

  it('the clamp room is counted from the sync address', () => {
    const r = rig({ size: '1M' });
    const tlb = r.pool.swiotlb_tbl_map_single(NOMASK, ORIG, 2000, 0, DMA_FROM_DEVICE, 0);
    r.pool.swiotlb_sync_single_for_cpu(NOMASK, tlb + 500, 1600, DMA_FROM_DEVICE);
    expect(r.m.klog.warnings()[0]?.message).toBe('Buffer overflow detected. Allocation size: 1500. Mapping size: 1600.\n');
  });

  it('misuse: an address past the mapping end inside the last slot has room < 0 and is not clamped', () => {
    const r = rig({ size: '1M' });
    const orig = 0x100234;
    const a = pattern(8192, 1);
    const d = pattern(2100, 70);
    r.write(orig, a);
    const tlb = r.pool.swiotlb_tbl_map_single(NVME, orig, 2000, 0, DMA_FROM_DEVICE, 0);
    r.write(tlb, d);
    r.pool.swiotlb_sync_single_for_cpu(NVME, tlb + 2010, 100, DMA_FROM_DEVICE);
    expect(r.read(orig, 8192)).toEqual(cat(a.subarray(0, 2010), d.subarray(2010, 2100), new Uint8Array(10), a.subarray(2110)));
    r.pool.swiotlb_sync_single_for_cpu(NVME, tlb + 2010, 5000, DMA_FROM_DEVICE);
    expect(r.read(orig + 2100, 4910)).toEqual(new Uint8Array(4910)); // bounce bytes past the buffer (zero) land in RAM
    expect(r.m.klog.warnCount).toBe(0);
  });
});

describe('swiotlb §5: swiotlb_map', () => {
  const start = 2 ** 32 - 131072; // one segment straddling 4 GiB
  it('a 32-bit device fails only for buffers above the limit; the slots go back, index and hiwater stay advanced', () => {
    const r = rig({ memory: '8G', start, size: '256K' });
    const dev: SwiotlbDevice = { dma_mask: 0xffffffff };
    const a = pattern(65536, 5);
    r.write(ORIG, a);
    expect(r.pool.swiotlb_map(dev, ORIG, 65536, DMA_TO_DEVICE, 0)).toBe(start);
    expect(r.pool.swiotlb_map(dev, ORIG, 65536, DMA_TO_DEVICE, 0)).toBe(2 ** 32 - 65536);
    expect(r.pool.swiotlb_map(dev, ORIG, 65536, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.m.klog.warnings().map((w) => [w.fn, w.message])).toEqual([
      ['swiotlb_map', 'swiotlb addr 0x0000000100000000+65536 overflow (mask ffffffff, bus limit 0).\n'],
    ]);
    expect(r.pool.io_tlb_used).toBe(64);
    expect(r.pool.io_tlb_used_hiwater).toBe(96);
    expect(r.pool.areaState(0).index).toBe(96);
    expect(r.read(2 ** 32, 65536)).toEqual(a); // the data was copied in before the check
    expect(swiotlbAudit(r.pool)).toEqual([]);
    expect(r.pool.swiotlb_map(dev, ORIG, 65536, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.m.klog.warnCount).toBe(1); // WARN_ONCE
    expect(r.pool.areaState(0).index).toBe(0);
  });

  it('the limit is min_not_zero(dma_mask, bus_dma_limit); mapping without limits returns the bounce address', () => {
    const r = rig({ memory: '8G', start, size: '256K' });
    const dev: SwiotlbDevice = { dma_mask: Infinity, bus_dma_limit: 0xffffffff };
    r.pool.swiotlb_map(dev, ORIG, 131072, DMA_TO_DEVICE, 0);
    expect(r.pool.swiotlb_map(dev, ORIG, 2048, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(r.m.klog.warnings()[0]?.message).toBe('swiotlb addr 0x0000000100000000+2048 overflow (mask ffffffffffffffff, bus limit ffffffff).\n');
    expect(r.pool.swiotlb_map({ dma_mask: Infinity }, ORIG, 2048, DMA_TO_DEVICE, 0)).toBe(2 ** 32 + 2048);
  });
});
