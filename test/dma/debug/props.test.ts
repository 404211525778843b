/** @module test/dma/debug/props: properties over random sequences of DMA API calls. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { ARCH_MODEL, mapChecked, rig, sge, virt, type Rig } from './helpers.ts';

const DIRS = [DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE] as const;

/** One buffer's life: its kind, geometry, and the times of map, sync and release. */
interface Life {
  readonly kind: 'phy' | 'sg' | 'coherent' | 'pages';
  readonly dir: number;
  readonly size: number;
  readonly segs: number;
  readonly start: number;
  readonly syncAt: number;
  readonly end: number;
}

const life: fc.Arbitrary<Life> = fc.record({
  kind: fc.constantFrom('phy', 'sg', 'coherent', 'pages'),
  dir: fc.constantFrom(...DIRS),
  size: fc.integer({ min: 1, max: 16384 }),
  segs: fc.integer({ min: 1, max: 4 }),
  start: fc.nat(1000),
  len: fc.integer({ min: 2, max: 1000 }),
  syncFrac: fc.double({ min: 0, max: 1, noNaN: true }),
}).map((x) => ({ kind: x.kind, dir: x.dir, size: x.size, segs: x.segs, start: x.start, syncAt: x.start + 1 + Math.floor(x.syncFrac * (x.len - 2)), end: x.start + x.len }));

/** Buffer i lives at its own 1 MiB region; sg segment j at +j*64 KiB; DMA address = physical address. */
function base(i: number): number {
  return 0x1000000 + i * 0x100000;
}

function mapOf(r: Rig, b: Life, i: number): void {
  const p = base(i);
  const d = r.dbg;
  if (b.kind === 'phy') mapChecked(r, p, b.size, b.dir);
  else if (b.kind === 'sg') {
    const list = Array.from({ length: b.segs }, (_, j) => sge(p + j * 0x10000, b.size, p + j * 0x10000));
    d.debug_dma_map_sg(r.dev, list, b.segs, b.segs, b.dir);
  } else if (b.kind === 'coherent') d.debug_dma_alloc_coherent(r.dev, b.size, p, virt(p));
  else d.debug_dma_alloc_pages(r.dev, p / 4096, b.size, b.dir, p);
}

function syncOf(r: Rig, b: Life, i: number): void {
  const p = base(i);
  const dir = b.kind === 'coherent' ? DMA_BIDIRECTIONAL : b.dir;
  if (b.kind === 'sg') {
    const list = Array.from({ length: b.segs }, (_, j) => sge(p + j * 0x10000, b.size, p + j * 0x10000));
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, list, b.segs, dir);
    r.dbg.debug_dma_sync_sg_for_device(r.dev, list, b.segs, dir);
  } else {
    r.dbg.debug_dma_sync_single_for_cpu(r.dev, p, b.size, dir);
    r.dbg.debug_dma_sync_single_for_device(r.dev, p + Math.floor(b.size / 2), b.size - Math.floor(b.size / 2), dir);
  }
}

function releaseOf(r: Rig, b: Life, i: number): void {
  const p = base(i);
  const d = r.dbg;
  if (b.kind === 'phy') d.debug_dma_unmap_phys(r.dev, p, b.size, b.dir);
  else if (b.kind === 'sg') {
    const list = Array.from({ length: b.segs }, (_, j) => sge(p + j * 0x10000, b.size, p + j * 0x10000));
    d.debug_dma_unmap_sg(r.dev, list, b.segs, b.dir);
  } else if (b.kind === 'coherent') d.debug_dma_free_coherent(r.dev, b.size, virt(p), p);
  else d.debug_dma_free_pages(r.dev, p / 4096, b.size, b.dir, p);
}

describe('dma-debug properties', () => {
  it('correct lifecycles in any interleaving produce no report and leave no entry, line or lost pool slot', () => {
    fc.assert(fc.property(fc.array(life, { maxLength: 40 }), (lives) => {
      const r = rig({ arch: ARCH_MODEL, entries: 32 });
      const events: [number, number, number][] = []; // [time, phase, buffer]
      lives.forEach((b, i) => { events.push([b.start, 0, i], [b.syncAt, 1, i], [b.end, 2, i]); });
      events.sort((x, y) => x[0] - y[0] || x[2] - y[2] || x[1] - y[1]);
      for (const [, phase, i] of events) {
        const b = lives[i] as Life;
        if (phase === 0) mapOf(r, b, i);
        else if (phase === 1) syncOf(r, b, i);
        else releaseOf(r, b, i);
      }
      expect(r.dbg.errors.map((e) => e.text)).toEqual([]);
      expect(r.dbg.entryCount()).toBe(0);
      expect(r.dbg.cachelines()).toEqual([]);
      expect(r.dbg.num_free_entries).toBe(r.dbg.nr_total_entries);
      expect(r.dbg.audit()).toEqual([]);
    }), { numRuns: 150 });
  });

  it('phy map/unmap with arbitrary parameters matches a best-fit reference model', () => {
    interface Ent { addr: number; size: number; dir: number }
    const op = fc.record({
      map: fc.boolean(),
      addr: fc.constantFrom(0x1000, 0x3000, 0x8003000),
      size: fc.constantFrom(512, 4096),
      dir: fc.constantFrom(...DIRS),
    });
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const r = rig({ entries: 32 });
      const live: Ent[] = [];
      let errors = 0;
      for (const o of ops) {
        if (o.map) {
          mapChecked(r, o.addr, o.size, o.dir);
          live.push({ addr: o.addr, size: o.size, dir: o.dir });
        } else {
          r.dbg.debug_dma_unmap_phys(r.dev, o.addr, o.size, o.dir);
          const cands = live.filter((e) => e.addr === o.addr);
          const hit = cands.find((e) => e.size === o.size && e.dir === o.dir) ?? (cands.length === 1 ? cands[0] : undefined);
          if (hit === undefined) errors++;
          else {
            errors += (hit.size !== o.size ? 1 : 0) + (hit.dir !== o.dir ? 1 : 0);
            live.splice(live.indexOf(hit), 1);
          }
        }
        expect(r.dbg.error_count).toBe(errors);
        expect(r.dbg.entryCount()).toBe(live.length);
      }
      const key = (e: Ent): string => `${e.addr}/${e.size}/${e.dir}`;
      expect(r.dbg.entries().map((e) => key({ addr: e.dev_addr, size: e.size, dir: e.direction })).sort()).toEqual(live.map(key).sort());
      expect(r.dbg.audit()).toEqual([]);
    }), { numRuns: 200 });
  });

  it('the leak count at unbind equals the entries left, whatever was left', () => {
    fc.assert(fc.property(fc.array(life, { maxLength: 20 }), fc.array(fc.boolean(), { maxLength: 20 }), (lives, keep) => {
      const r = rig({ arch: ARCH_MODEL });
      lives.forEach((b, i) => mapOf(r, b, i));
      lives.forEach((b, i) => { if (keep[i] !== true) releaseOf(r, b, i); });
      const left = r.dbg.entryCount(r.dev);
      r.dev.driver = null;
      r.dbg.dma_debug_device_change(r.dev, 7);
      const leaks = r.dbg.errors.filter((e) => e.fn === 'dma_debug_device_change');
      if (left === 0) expect(leaks).toEqual([]);
      else expect(leaks.map((e) => /\[count=(\d+)\]/.exec(e.message)?.[1])).toEqual([String(left)]);
    }), { numRuns: 100 });
  });
});
