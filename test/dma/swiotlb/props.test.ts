import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KernelBug } from '../../../src/core/index.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE, type DmaDirection } from '../../../src/dma/api/direction.ts';
import { DMA_MAPPING_ERROR, SwiotlbPool, swiotlbAudit, type SwiotlbDevice } from '../../../src/dma/swiotlb/index.ts';
import { Machine } from '../../../src/sim/machine.ts';
import { expectBytes, pattern } from './helpers.ts';

/**
 * A reference model of swiotlb slot allocation written from the text of swiotlb.md §2-§3 alone:
 * a free bitmap (the fit is counted by walking it to the segment end) and BigInt mask arithmetic,
 * so it shares neither the run-count bookkeeping nor the number tricks of the implementation.
 */
class RefPool {
  readonly busy: Uint8Array;
  readonly areaN: number;
  readonly areaIdx: number[];
  readonly areaUsed: number[];
  used = 0;
  hiwater = 0;
  readonly maps = new Map<number, { first: number; n: number }>();
  readonly start: number;
  readonly nslabs: number;
  readonly nareas: number;

  constructor(start: number, nslabs: number, nareas: number) {
    this.start = start;
    this.nslabs = nslabs;
    this.nareas = nareas;
    this.busy = new Uint8Array(nslabs);
    this.areaN = nslabs / nareas;
    this.areaIdx = new Array<number>(nareas).fill(0);
    this.areaUsed = new Array<number>(nareas).fill(0);
  }

  /** Returned address, -1 with the message it prints, or 'BUG'. */
  map(keep: number, boundary: number | undefined, orig: number, msize: number, align: number, cpu: number): { addr: number; msg?: string } | 'BUG' {
    const offset = Number(BigInt(orig) & BigInt(keep) & BigInt(align | 0x7ff));
    const unit = align + 1;
    const size = Math.ceil((msize + offset) / unit) * unit;
    const need = Math.ceil(size / 2048);
    if (need === 0) return 'BUG';
    let A = align;
    if (A === 0 && keep === 0 && size >= 4096) A = 0xfff;
    A |= 0x7ff;
    const K = Number(BigInt(keep) & ~BigInt(A));
    const step = Math.floor(Math.max(A, K) / 2048) + 1;
    const bnd = boundary === undefined || boundary === Infinity ? 2n ** 64n - 1n : BigInt(boundary);
    const base = BigInt(this.start) & bnd;
    const B = bnd / 2048n + 1n;
    const shift0 = (base + 2047n) / 2048n;
    const first = cpu & (this.nareas - 1);
    for (let k = 0; k < this.nareas; k++) {
      const area = (first + k) % this.nareas;
      let i = this.areaIdx[area] as number;
      for (let checked = 0; checked < this.areaN;) {
        const slot = area * this.areaN + i;
        const a = (base + BigInt(slot) * 2048n) & 0xffffffffn;
        const misaligned = (a & BigInt(A)) !== 0n || (orig !== 0 && (a & BigInt(K)) !== (BigInt(orig) & BigInt(K)));
        if (misaligned) {
          i++;
          checked++;
          if (i >= this.areaN) i = 0;
          continue;
        }
        const crosses = ((shift0 + BigInt(slot)) % B) + BigInt(need) > B;
        let free = 0;
        for (let s = slot; s < (Math.floor(slot / 128) + 1) * 128 && this.busy[s] === 0; s++) free++;
        if (!crosses && free >= need) {
          this.busy.fill(1, slot, slot + need);
          this.areaIdx[area] = i + need >= this.areaN ? 0 : i + need;
          this.areaUsed[area] = (this.areaUsed[area] as number) + need;
          this.used += need;
          this.hiwater = Math.max(this.hiwater, this.used);
          const addr = this.start + (slot + Math.floor(offset / 2048)) * 2048 + (offset % 2048);
          this.maps.set(addr, { first: slot, n: need });
          return { addr };
        }
        i += step;
        checked += step;
        if (i >= this.areaN) i = 0;
      }
    }
    return { addr: -1, msg: `swiotlb buffer is full (sz: ${size} bytes), total ${this.nslabs} (slots), used ${this.used} (slots)\n` };
  }

  unmap(addr: number): void {
    const m = this.maps.get(addr);
    if (m === undefined) throw new Error('ref: unknown mapping');
    this.maps.delete(addr);
    this.busy.fill(0, m.first, m.first + m.n);
    const area = Math.floor(m.first / this.areaN);
    this.areaUsed[area] = (this.areaUsed[area] as number) - m.n;
    this.used -= m.n;
  }
}

const mapOp = fc.record({
  kind: fc.constant('map' as const),
  keep: fc.constantFrom(0, 0, 3, 0x7ff, 0xfff, 0x3fff, 0x1ffff),
  boundary: fc.constantFrom<number | undefined>(undefined, undefined, 0xffff, 0x3ffff, 0xffffffff, Infinity),
  align: fc.constantFrom(0, 0, 0, 0x7ff, 0xfff, 0x1fff, 0xffff),
  page: fc.integer({ min: 0x100, max: 0x7fff }),
  off: fc.integer({ min: 0, max: 4095 }),
  size: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 200_000, max: 270_000 })),
  cpu: fc.nat(7),
});
const unmapOp = fc.record({ kind: fc.constant('unmap' as const), pick: fc.nat() });
const ops = fc.array(fc.oneof({ weight: 3, arbitrary: mapOp }, { weight: 2, arbitrary: unmapOp }), { maxLength: 60 });
const setup = fc.record({ start: fc.constantFrom(0x1003d000, 0x10000000, 0x10013000), areas: fc.constantFrom(1, 2, 4) });

const devOf = (keep: number, boundary: number | undefined): SwiotlbDevice =>
  boundary === undefined ? { min_align_mask: keep } : { min_align_mask: keep, segment_boundary_mask: boundary };

type Op = { kind: 'map'; keep: number; boundary: number | undefined; align: number; page: number; off: number; size: number; cpu: number } | { kind: 'unmap'; pick: number };

/**
 * Run `seq` on a pool and on the reference model side by side. Every map's result (and message)
 * is compared; with `thorough`, the whole state is compared and audited after every step, else
 * once at the end. Comparisons are plain `!==` with `expect` only on a mismatch: a property runs
 * tens of thousands of steps, and an `expect` call costs far more than the step.
 */
function runSeq(start: number, nslabs: number, areas: number, seq: readonly Op[], thorough = true): void {
  const m = new Machine({ memory: '512M' });
  m.klog.clear(); // only what swiotlb prints
  const pool = new SwiotlbPool({ start, size: nslabs * 2048, areas, memory: m.mm, klog: m.klog, faults: m.faults, verbose: false });
  const ref = new RefPool(start, nslabs, areas);
  const live: { dev: SwiotlbDevice; addr: number; size: number }[] = [];
  const fullMsgs = (): string[] => m.klog.messages.filter((x) => x.message.startsWith('swiotlb buffer')).map((x) => x.message);
  const checkState = (): void => {
    if (pool.io_tlb_used !== ref.used) expect(pool.io_tlb_used).toBe(ref.used);
    if (pool.io_tlb_used_hiwater !== ref.hiwater) expect(pool.io_tlb_used_hiwater).toBe(ref.hiwater);
    for (let a = 0; a < areas; a++) {
      const st = pool.areaState(a);
      if (st.index !== ref.areaIdx[a] || st.used !== ref.areaUsed[a]) expect(st).toEqual({ index: ref.areaIdx[a], used: ref.areaUsed[a] });
    }
    expectBytes(Uint8Array.from(pool.slots.list, (l) => (l === 0 ? 1 : 0)), ref.busy);
    // slots in use == sum of the live mappings' slots; no two live mappings overlap.
    const maps = pool.liveMappings();
    expect(maps.reduce((n, x) => n + x.nslots, 0)).toBe(pool.slotsInUse);
    for (let i = 1; i < maps.length; i++) {
      const prev = maps[i - 1] as { firstSlot: number; nslots: number };
      expect((maps[i] as { firstSlot: number }).firstSlot).toBeGreaterThanOrEqual(prev.firstSlot + prev.nslots);
    }
    const problems = swiotlbAudit(pool);
    if (problems.length > 0) expect(problems).toEqual([]);
  };
  for (const op of seq) {
    if (op.kind === 'map') {
      const dev = devOf(op.keep, op.boundary);
      const orig = op.page * 4096 + op.off;
      const want = ref.map(op.keep, op.boundary, orig, op.size, op.align, op.cpu);
      if (want === 'BUG') {
        expect(() => pool.swiotlb_tbl_map_single(dev, orig, op.size, op.align, DMA_TO_DEVICE, 0, op.cpu)).toThrow(KernelBug);
        continue;
      }
      const before = fullMsgs().length;
      const got = pool.swiotlb_tbl_map_single(dev, orig, op.size, op.align, DMA_TO_DEVICE, 0, op.cpu);
      if (got !== want.addr) expect(got).toBe(want.addr);
      if (got === DMA_MAPPING_ERROR) {
        expect(fullMsgs().slice(before)).toEqual([want.msg]);
      } else {
        live.push({ dev, addr: got, size: op.size });
        // keep is 2^k - 1 here: the preserved bits come through unless a boundary cut them off.
        if (op.boundary === undefined && got % (op.keep + 1) !== orig % (op.keep + 1)) expect(got % (op.keep + 1)).toBe(orig % (op.keep + 1));
      }
    } else if (live.length > 0) {
      const [victim] = live.splice(op.pick < 0 ? live.length - 1 : op.pick % live.length, 1);
      if (victim === undefined) continue;
      pool.swiotlb_tbl_unmap_single(victim.dev, victim.addr, victim.size, DMA_FROM_DEVICE, 0);
      ref.unmap(victim.addr);
    }
    if (thorough) checkState();
  }
  checkState();
  for (const v of live) pool.swiotlb_tbl_unmap_single(v.dev, v.addr, v.size, DMA_TO_DEVICE, 0);
  const fresh = new SwiotlbPool({ start, size: nslabs * 2048, areas, memory: m.mm, klog: m.klog, clear: false, verbose: false });
  expect(pool.io_tlb_used).toBe(0);
  expect(pool.liveMappings()).toEqual([]);
  expect(Array.from(pool.slots.list)).toEqual(Array.from(fresh.slots.list));
  expect(Array.from(pool.slots.orig)).toEqual(Array.from(fresh.slots.orig));
  expect(Array.from(pool.slots.room)).toEqual(Array.from(fresh.slots.room));
  expect(Array.from(pool.slots.pad)).toEqual(Array.from(fresh.slots.pad));
  for (let a = 0; a < areas; a++) expect(pool.areaState(a).used).toBe(0);
}

describe('swiotlb properties', () => {
  it('agrees with the reference model map by map; the accounting stays consistent; unmapping everything restores a fresh pool', () => {
    fc.assert(fc.property(setup, ops, ({ start, areas }, seq) => runSeq(start, 512, areas, seq)), { numRuns: 150 });
  });

  it('same, on a crowded one-segment pool where the next-fit walk wraps all the time', () => {
    const small = fc.record({
      kind: fc.constant('map' as const), keep: fc.constantFrom(0, 0xfff), boundary: fc.constant(undefined),
      align: fc.constantFrom(0, 0x1fff, 0xfff), page: fc.integer({ min: 0x100, max: 0x7fff }), off: fc.integer({ min: 0, max: 4095 }),
      size: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 2048 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20000 }) }),
      cpu: fc.constant(0),
    });
    // Unmapping the latest mapping leaves the index just past a free run: the case where the
    // reset-to-0 wrap (and its re-alignment cost) decides whether that run is found.
    const unmapRecent = fc.record({ kind: fc.constant('unmap' as const), pick: fc.oneof(fc.constant(-1), fc.nat()) });
    const crowded = fc.array(fc.oneof({ weight: 3, arbitrary: small }, { weight: 2, arbitrary: unmapRecent }), { minLength: 50, maxLength: 200 });
    fc.assert(fc.property(fc.constantFrom(0x1003d000, 0x1003c800), crowded, (start, seq) => runSeq(start, 128, 1, seq)), { numRuns: 100 });
  });

  it('next-fit wrap: a full pool but for one free run, the index inside it, any alignment: same as the reference', () => {
    const one = (size: number, align = 0, keep = 0): Op => ({ kind: 'map', keep, boundary: undefined, align, page: 0x100, off: 0, size, cpu: 0 });
    fc.assert(fc.property(
      fc.constantFrom(0x1003d000, 0x1003c800, 0x10000000), fc.nat(127), fc.integer({ min: 1, max: 16 }), fc.nat(16),
      fc.constantFrom(0, 0xfff, 0x1fff, 0x3fff), fc.constantFrom(0, 0xfff), fc.integer({ min: 1, max: 40000 }),
      (start, c0, k0, j0, align, keep, size) => {
        const k = Math.min(k0, 128 - c0);
        const j = j0 % (k + 1);
        const seq: Op[] = [];
        for (let i = 0; i < 128; i++) seq.push(one(2048)); // slots 0..127 in order; index back to 0
        for (let i = 0; i < k; i++) seq.push({ kind: 'unmap', pick: c0 }); // free c0 .. c0+k-1
        for (let i = 0; i < j; i++) seq.push(one(2048)); // refill c0 .. c0+j-1: index c0+j
        for (let i = 0; i < j; i++) seq.push({ kind: 'unmap', pick: -1 });
        seq.push(one(size, align, keep));
        runSeq(start, 128, 1, seq, false);
      },
    ), { numRuns: 500 });
  });

  it('bytes: map snapshots the original, a sync of any sub-range maps back exactly, unmap copies back per direction', () => {
    fc.assert(fc.property(
      fc.constantFrom(0, 3, 0x7ff, 0xfff, 0x3fff), fc.constantFrom(0, 0xfff, 0x1fff), fc.nat(4095), fc.integer({ min: 1, max: 20000 }),
      fc.constantFrom<DmaDirection>(DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE), fc.nat(), fc.nat(), fc.nat(250),
      (keep, align, off, len, dir, x, y, seed) => {
        const m = new Machine({ memory: '256M' });
        m.klog.clear(); // only what swiotlb prints
        const pool = new SwiotlbPool({ start: 0x4000000, size: '1M', memory: m.mm, klog: m.klog, verbose: false });
        const dev: SwiotlbDevice = { min_align_mask: keep };
        const orig = 0x300000 + off;
        const a = pattern(len + 128, seed);
        m.mm.writePhys(orig - 64, a);
        const tlb = pool.swiotlb_tbl_map_single(dev, orig, len, align, dir, 0);
        expect(tlb).not.toBe(DMA_MAPPING_ERROR);
        expectBytes(m.mm.readPhys(tlb, len), a.subarray(64, 64 + len));
        const s = x % len;
        const e = s + 1 + (y % (len - s));
        const d = pattern(e - s, seed + 100);
        m.mm.writePhys(tlb + s, d); // the device writes [s, e)
        pool.swiotlb_sync_single_for_cpu(dev, tlb + s, e - s, DMA_FROM_DEVICE);
        const want = a.slice();
        want.set(d, 64 + s);
        expectBytes(m.mm.readPhys(orig - 64, len + 128), want);
        m.mm.writePhys(orig, pattern(len, seed + 7)); // the CPU scribbles on the original
        pool.swiotlb_tbl_unmap_single(dev, tlb, len, dir, 0);
        const back = dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL;
        const after = back ? want.subarray(64, 64 + len) : pattern(len, seed + 7);
        expectBytes(m.mm.readPhys(orig, len), after);
        expect(m.klog.warnCount).toBe(align > 0xfff ? 1 : 0);
        expect(pool.io_tlb_used).toBe(0);
      },
    ), { numRuns: 150 });
  });
});
