/**
 * Machine snapshots (issue 20): after machine.restore(snap) every layer behaves exactly as it did at
 * the capture. A seeded random workload (correct and buggy driver operations, injected allocation
 * failures, unbind/rebind, clock advances, pinned user pages, DMA pools, device and CPU accesses) is
 * run after a snapshot, the machine restored, and the same workload run again: every result and the
 * whole observable state (findings, dma-debug, kernel log, audit, page counts, IOMMU, swiotlb,
 * trace) must match, in every backend. A layer that kept state where the snapshot cannot see it
 * (a #private field, a WeakMap, a closure variable) makes the second run differ.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, FOLL_WRITE, GFP_KERNEL, Machine, Rng, SgTable, dma_alloc_coherent,
  dma_free_coherent, dma_map_sgtable, dma_map_single, dma_mapping_error, dma_pool_alloc, dma_pool_create, dma_pool_free,
  dma_sync_single_for_cpu, dma_sync_single_for_device, dma_unmap_sgtable, dma_unmap_single, for_each_sgtable_dma_sg,
  pin_user_pages_fast, sg_alloc_table_from_pages_segment, sg_free_table, unpin_user_pages,
  type CoherentBuffer, type Device, type DmaPool, type MachineOptions,
} from '../../src/index.ts';
import { captureGraph, markShared } from '../../src/core/snapshot.ts';
import { dmaFindings } from '../../src/testing/index.ts';
import { forEachFailurePoint, testMachine } from '../../src/testing/index.ts';

const BACKENDS: Record<string, Partial<MachineOptions>> = {
  direct: { swiotlb: false },
  swiotlb: { swiotlb: { force: true, size: '8M' } },
  strict: { iommu: { mode: 'strict' }, swiotlb: { size: '8M' } },
  lazy: { iommu: { mode: 'lazy' }, swiotlb: { size: '8M' } },
  'lazy-vtd': { iommu: { mode: 'lazy', format: 'vtd' }, swiotlb: { size: '8M' } },
  passthrough: { iommu: { mode: 'passthrough' }, swiotlb: { size: '8M' } },
};
const DIRS = [DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL];

type Live =
  | { kind: 'single'; dev: number; virt: number; addr: number; size: number; dir: number }
  | { kind: 'sg'; dev: number; sgt: SgTable; area: NonNullable<ReturnType<Machine['mm']['vmalloc']>>; dir: number }
  | { kind: 'coherent'; dev: number; buf: CoherentBuffer; size: number }
  | { kind: 'pool'; dev: number; vaddr: number; dma: number }
  | { kind: 'pin'; pages: number[] };

/** The world a workload runs in; `live` is driver state the machine does not reach (snapshot include). */
interface World { m: Machine; devs: Device[]; live: Live[]; pools: DmaPool[]; user: number }

function build(opts: Partial<MachineOptions>): World {
  const m = new Machine({ memory: '1G', seed: 5, trace: true, ...opts });
  const devs = [0, 1, 2].map((i) => {
    const d = m.pci.addDevice({ name: `0000:0${i + 1}:00.0`, dmaMask: i === 1 ? 32 : 64, untrusted: i === 2 && opts.iommu !== undefined, maxSegmentSize: 65536 });
    m.pci.bind(d, { name: `drv${i}`, probe() {} });
    return d;
  });
  const pools = devs.map((d, i) => dma_pool_create(`pool${i}`, d, 64, 64, 0) as DmaPool);
  return { m, devs, live: [], pools, user: m.user.mmap(1 << 20) };
}

function release(w: World, l: Live): void {
  if (l.kind === 'pin') { unpin_user_pages(w.m.user, l.pages, l.pages.length); return; }
  const dev = w.devs[l.dev] as Device;
  if (l.kind === 'single') { dma_unmap_single(dev, l.addr, l.size, l.dir); w.m.mm.kfree(l.virt); }
  else if (l.kind === 'sg') { dma_unmap_sgtable(dev, l.sgt, l.dir); sg_free_table(l.sgt); w.m.mm.vfree(l.area); }
  else if (l.kind === 'coherent') dma_free_coherent(dev, l.size, l.buf);
  else dma_pool_free(w.pools[l.dev] as DmaPool, l.vaddr, l.dma);
}

/** `steps` seeded operations; returns what each did, as text. */
function workload(w: World, seed: number, steps: number): string[] {
  const rng = new Rng(seed);
  const out: string[] = [];
  const { m, devs, live } = w;
  for (let i = 0; i < steps; i++) {
    const r = rng.int(100);
    const d = rng.int(devs.length);
    const dev = devs[d] as Device;
    m.currentCpu = rng.int(2);
    try {
      if (r < 3) {
        m.faults.inject((['page', 'iova', 'swiotlb', 'kmalloc'] as const)[rng.int(4)] as 'page', { nth: 1 + rng.int(3) });
        out.push('inject');
      } else if (r < 20) {
        const size = 64 + rng.int(9000);
        const dir = DIRS[rng.int(3)] as number;
        const virt = m.mm.kmalloc(size);
        if (virt === null) { out.push('kmalloc null'); continue; }
        m.mm.writePhys(m.mm.virt_to_phys(virt), new Uint8Array(Math.min(size, 64)).fill(i & 0xff));
        const addr = dma_map_single(dev, virt, size, dir);
        if (dma_mapping_error(dev, addr) !== 0) { m.mm.kfree(virt); out.push('map error'); continue; }
        live.push({ kind: 'single', dev: d, virt, addr, size, dir });
        out.push(`single ${addr}`);
      } else if (r < 30) {
        const area = m.mm.vmalloc((1 + rng.int(24)) * 4096);
        if (area === null) { out.push('vmalloc null'); continue; }
        const sgt = new SgTable(m);
        const dir = DIRS[rng.int(3)] as number;
        if (sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL) !== 0) { m.mm.vfree(area); out.push('sg alloc failed'); continue; }
        const ret = dma_map_sgtable(dev, sgt, dir);
        if (ret !== 0) { sg_free_table(sgt); m.mm.vfree(area); out.push(`sg map ${ret}`); continue; }
        live.push({ kind: 'sg', dev: d, sgt, area, dir });
        out.push(`sg ${[...for_each_sgtable_dma_sg(sgt)].map((s) => `${s.dma_address}+${s.dma_length}`).join(',')}`);
      } else if (r < 36) {
        const size = 4096 * (1 + rng.int(4));
        const buf = dma_alloc_coherent(dev, size, GFP_KERNEL);
        if (buf === null) { out.push('coherent null'); continue; }
        live.push({ kind: 'coherent', dev: d, buf, size });
        out.push(`coherent ${buf.dma_handle} ${buf.cpu_addr}`);
      } else if (r < 42) {
        const blk = dma_pool_alloc(w.pools[d] as DmaPool, GFP_KERNEL);
        if (blk === null) { out.push('pool null'); continue; }
        live.push({ kind: 'pool', dev: d, vaddr: blk.vaddr, dma: blk.dma });
        out.push(`pool ${blk.dma}`);
      } else if (r < 46) {
        const pages: number[] = [];
        const n = pin_user_pages_fast(m.user, w.user + rng.int(200) * 4096, 1 + rng.int(8), FOLL_WRITE, pages);
        if (n > 0) live.push({ kind: 'pin', pages: pages.slice(0, n) });
        out.push(`pin ${n} ${pages.join(',')}`);
      } else if (r < 62 && live.length > 0) {
        const [l] = live.splice(rng.int(live.length), 1);
        release(w, l as Live);
        out.push(`release ${(l as Live).kind}`);
      } else if (r < 80 && live.length > 0) {
        // The device does its part, then the CPU (correctly), or at random the CPU too early.
        const l = live[rng.int(live.length)] as Live;
        if (l.kind === 'single') {
          const ld = w.devs[l.dev] as Device;
          const res = l.dir === DMA_TO_DEVICE ? ld.dma.read(l.addr, Math.min(l.size, 256)) : ld.dma.write(l.addr, new Uint8Array(Math.min(l.size, 256)).fill(i & 0xff));
          if (rng.int(4) !== 0) dma_sync_single_for_cpu(ld, l.addr, l.size, l.dir);
          const got = m.mm.readPhys(m.mm.virt_to_phys(l.virt), 16);
          dma_sync_single_for_device(ld, l.addr, l.size, l.dir);
          out.push(`xfer ${res.ok} ${got.join('.')}`);
        } else if (l.kind === 'sg') {
          const ld = w.devs[l.dev] as Device;
          const segs = [...for_each_sgtable_dma_sg(l.sgt)].map((s) => ({ addr: s.dma_address, length: s.dma_length }));
          const res = l.dir === DMA_TO_DEVICE ? ld.dma.readSegments(segs) : ld.dma.writeSegments(segs, new Uint8Array(l.area.size).fill(i & 0xff));
          out.push(`xfer sg ${res.ok} ${l.area.read(0, 8).join('.')}`);
        } else if (l.kind === 'coherent') {
          out.push(`xfer coherent ${(w.devs[l.dev] as Device).dma.write(l.buf.dma_handle, new Uint8Array(16).fill(7)).ok}`);
        } else out.push('noop');
      } else if (r < 84 && live.length > 0) {
        // Driver bugs: a device access after unmap, a double unmap.
        const idx = live.findIndex((l) => l.kind === 'single');
        if (idx < 0) { out.push('no single'); continue; }
        const [l] = live.splice(idx, 1) as [Extract<Live, { kind: 'single' }>];
        const ld = w.devs[l.dev] as Device;
        release(w, l);
        const res = ld.dma.write(l.addr, new Uint8Array(8));
        if (rng.int(3) === 0) dma_unmap_single(ld, l.addr, l.size, l.dir);
        out.push(`bug ${res.ok}`);
      } else if (r < 88) {
        m.clock.advance(rng.int(20_000_000));
        out.push(`advance ${m.clock.now}`);
      } else if (r < 90) {
        // Unbind with a remove() that releases what the device holds, then bind again.
        for (let k = live.length - 1; k >= 0; k--) {
          const l = live[k] as Live;
          if (l.kind !== 'pin' && l.dev === d) { release(w, l); live.splice(k, 1); }
        }
        m.pci.unbind(dev);
        out.push(`rebind ${m.pci.bind(dev, { name: `drv${d}`, probe() {} })}`);
      } else {
        out.push(`rng ${m.rng.int(1000)}`);
      }
    } catch (e) {
      out.push(`threw ${(e as Error).message}`);
    }
  }
  return out;
}

/** Everything a user can observe of the machine, as text. */
function observe(w: World): string[] {
  const { m } = w;
  const out = [
    `t ${m.clock.now} rng ${m.rng.int(1 << 30)}`,
    `pages ${m.mm.allocatedPages} written ${m.mm.contents.residentPages}`,
    `findings ${JSON.stringify(dmaFindings(m, { live: true }).map((f) => f.message))}`,
    `debug ${m.dmaDebug?.error_count ?? 0} ${JSON.stringify(m.dmaDebug?.errors.map((e) => e.text) ?? [])}`,
    `klog ${m.klog.messages.length} ${JSON.stringify(m.klog.messages.slice(-20))}`,
    `audit ${JSON.stringify(m.audit())}`,
    `ledger ${m.dma.ledger.entries().map((e) => e.describe()).join('|')}`,
    `trace ${m.trace.events.length} ${JSON.stringify(m.trace.events.slice(-10))}`,
    `faults ${JSON.stringify(m.faults.injected)}`,
    `swiotlb ${JSON.stringify(m.swiotlb === null ? null : [m.swiotlb.io_tlb_used, m.swiotlb.io_tlb_used_hiwater])}`,
    `iommu ${JSON.stringify(m.iommu?.faults ?? [])} ${m.iommu?.tablePagesInUse ?? '-'}`,
  ];
  for (const d of w.devs) out.push(`${d.name} bound=${d.isBound} faults=${d.dma.faults.length}`);
  return out;
}

describe('machine snapshots restore every layer', () => {
  for (const [name, opts] of Object.entries(BACKENDS)) {
    it(`${name}: the same workload after a restore does exactly the same`, () => {
      const w = build(opts);
      workload(w, 1, 150);
      const liveAtSnap = w.live.slice();
      const snap = w.m.snapshot({ include: [w.live] });
      const first = [...workload(w, 2, 250), ...observe(w)];
      w.m.restore(snap);
      expect(w.live).toEqual(liveAtSnap);
      const second = [...workload(w, 2, 250), ...observe(w)];
      expect(second).toEqual(first);
      // Reusable: a different branch, then back again.
      w.m.restore(snap);
      workload(w, 3, 200);
      w.m.restore(snap);
      expect([...workload(w, 2, 250), ...observe(w)]).toEqual(first);
      // And the world stays sound: release everything, nothing is left.
      for (const l of w.live.splice(0)) release(w, l);
      expect(w.m.audit()).toEqual([]);
    });
  }

  it('memory contents come back exactly (copy on write both ways)', () => {
    const { machine: m } = testMachine();
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 2) as number;
    const at = pfn * 4096 + 100;
    m.mm.writePhys(at, new Uint8Array([1, 2, 3]));
    const snap = m.snapshot();
    m.mm.writePhys(at, new Uint8Array([9, 9, 9]));
    m.mm.writePhys(at + 8192, new Uint8Array([4]));
    expect([...m.mm.readPhys(at, 3)]).toEqual([9, 9, 9]);
    m.restore(snap);
    expect([...m.mm.readPhys(at, 3)]).toEqual([1, 2, 3]);
    expect([...m.mm.readPhys(at + 8192, 1)]).toEqual([0]);
    // A write after the restore must not reach into the snapshot's copy.
    m.mm.writePhys(at, new Uint8Array([7]));
    m.mm.fillPhys(pfn * 4096, 4096, 0);
    m.restore(snap);
    expect([...m.mm.readPhys(at, 3)]).toEqual([1, 2, 3]);
    m.mm.__free_pages(pfn, 2);
    expect(m.audit()).toEqual([]);
  });

  it('many snapshots, restored in any order: page metadata, buddy bitmaps and contents come back byte for byte', () => {
    // Snapshots share what did not change since the previous one (metadata chunks, bitmap chunks,
    // page groups): a write path that forgot to mark its chunk would restore the wrong bytes here.
    const m = new Machine({ memory: '2G', fragment: { level: 0.4 }, seed: 3 });
    const rng = new Rng(11);
    const held: Array<{ pfn: number; order: number } | NonNullable<ReturnType<Machine['mm']['vmalloc']>>> = [];
    // Large arrays as digests: a deep equality over 2 GiB of page metadata takes minutes.
    const digest = (a: Uint8Array | Uint32Array) => createHash('sha1').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
    // The metadata as it reads: the fragmenter's deferred held pages written in (a capture's
    // deferred chunk may come back written or not; it reads the same either way).
    const state = () => ({
      meta: (m.mm.meta.resolveAll(), [m.mm.meta.state, m.mm.meta.owner, m.mm.meta.refcount].map(digest)),
      bitmaps: m.mm.zones.map((z) => z.bitmaps.map(digest)),
      written: m.mm.contents.residentPages,
      bytes: held.slice(0, 6).map((h) => [...m.mm.readPhys(('pfn' in h ? h.pfn : h.pages[0] as number) * 4096, 64)].join('.')),
      counters: [m.mm.allocatedPages, m.mm.freePages],
    });
    const snaps: Array<{ snap: ReturnType<Machine['snapshot']>; seen: ReturnType<typeof state>; held: typeof held }> = [];
    for (let round = 0; round < 24; round++) {
      for (let op = 0; op < 20; op++) {
        const r = rng.int(10);
        if (r < 3) {
          const order = rng.int(4);
          const pfn = m.mm.alloc_pages(GFP_KERNEL, order);
          if (pfn !== null) {
            if (rng.int(3) === 0) { m.mm.split_page(pfn, order); for (let i = 0; i < 2 ** order; i++) held.push({ pfn: pfn + i, order: 0 }); }
            else held.push({ pfn, order });
            m.mm.writePhys(pfn * 4096 + rng.int(4000), new Uint8Array([round, op, 7]));
          }
        } else if (r < 5) {
          const area = m.mm.vmalloc((1 + rng.int(40)) * 4096);
          if (area !== null) { held.push(area); area.write(0, new Uint8Array(64).fill(round + 1)); }
        } else if (r < 8 && held.length > 0) {
          const [h] = held.splice(rng.int(held.length), 1);
          if (h === undefined) continue;
          if ('pfn' in h) { m.mm.fillPhys(h.pfn * 4096, 4096 * 2 ** h.order, 0); m.mm.__free_pages(h.pfn, h.order); }
          else m.mm.vfree(h);
        } else if (r < 9 && held.length > 0) {
          // Metadata-only changes to a block allocated in an earlier round: a reference taken and
          // dropped (the count goes back, the bytes must too), or the block split into pages.
          const at = rng.int(held.length);
          const h = held[at];
          if (h === undefined || !('pfn' in h)) continue;
          if (h.order > 0 && rng.int(2) === 0) {
            m.mm.split_page(h.pfn, h.order);
            held.splice(at, 1, ...Array.from({ length: 2 ** h.order }, (_, i) => ({ pfn: h.pfn + i, order: 0 })));
          } else m.mm.get_page(h.pfn);
        } else {
          const v = m.mm.kmalloc(32 + rng.int(5000));
          if (v !== null && rng.int(2) === 0) m.mm.kfree(v);
        }
      }
      if (round % 4 === 3) {
        const pick = snaps[rng.int(snaps.length)] as (typeof snaps)[number];
        m.restore(pick.snap);
        held.length = 0;
        held.push(...pick.held);
        expect(state()).toEqual(pick.seen);
      } else snaps.push({ snap: m.snapshot(), seen: state(), held: held.slice() });
    }
    for (const s of snaps) {
      m.restore(s.snap);
      held.length = 0;
      held.push(...s.held);
      expect(state()).toEqual(s.seen);
      expect(m.audit()).toEqual([]);
    }
  });

  it('a metadata-only change alone between two snapshots is captured (refcount, split, owner, bulk free)', () => {
    const m = new Machine({ memory: '1G' });
    const digest = () => [m.mm.meta.state, m.mm.meta.owner, m.mm.meta.refcount].map((a) => createHash('sha1').update(a).digest('hex')).join();
    const block = m.mm.alloc_pages(GFP_KERNEL, 3) as number;
    const area = m.mm.vmalloc(16 * 4096);
    if (area === null) throw new Error('vmalloc');
    for (const p of area.pages) m.mm.get_page(p);
    const changes: Array<[string, () => void]> = [
      ['get_page', () => m.mm.get_page(block)],
      ['split_page', () => m.mm.split_page(block, 3)],
      // Every page still has a second reference: vfree only drops counts, the buddy allocator never hears of it.
      ['vfree of referenced pages', () => m.mm.vfree(area)],
    ];
    for (const [what, change] of changes) {
      const snap = m.snapshot();
      const before = digest();
      change();
      expect(digest(), what).not.toBe(before);
      m.restore(snap);
      expect(digest(), what).toBe(before);
      m.snapshot();
    }
  });

  it('swiotlb slots claimed before a snapshot and released after it come back claimed', () => {
    const { machine: m, dev } = testMachine({ swiotlb: { force: true, size: '8M' } });
    m.pci.bind(dev, { name: 'd', probe() {} });
    const slots = () => { const t = (m.swiotlb as NonNullable<typeof m.swiotlb>).slots; return [t.list, t.orig, t.room, t.pad].map((a) => createHash('sha1').update(new Uint8Array(a.buffer)).digest('hex')).join(); };
    const bufs = [0, 1, 2].map(() => m.mm.kmalloc(6000) as number);
    const addrs = bufs.map((v) => dma_map_single(dev, v, 6000, DMA_TO_DEVICE));
    for (const a of addrs) expect(dma_mapping_error(dev, a)).toBe(0);
    const snap = m.snapshot();
    const before = slots();
    const used = m.swiotlb?.io_tlb_used;
    addrs.forEach((a) => dma_unmap_single(dev, a, 6000, DMA_TO_DEVICE));
    expect(slots()).not.toBe(before);
    m.restore(snap);
    expect(slots()).toBe(before);
    expect(m.swiotlb?.io_tlb_used).toBe(used);
    addrs.forEach((a) => dma_unmap_single(dev, a, 6000, DMA_TO_DEVICE));
    expect(m.dmaDebug?.error_count).toBe(0);
  });

  it('a vmalloc area freed after a snapshot comes back whole; its pfn array is shared, not copied', () => {
    const m = new Machine({ memory: '256M' });
    const area = m.mm.vmalloc(2 ** 20) as NonNullable<ReturnType<typeof m.mm.vmalloc>>;
    const pfns = area.pages.slice();
    area.write(0, new Uint8Array(4096).fill(0x3c));
    const snap = m.snapshot();
    // The pfn array is never written, so no snapshot copies it, not even the first (planted:
    // without markShared the twin machine's first snapshot copies its second area's 1 KiB).
    const twin = new Machine({ memory: '256M' });
    twin.mm.vmalloc(2 ** 20)?.write(0, new Uint8Array(4096).fill(0x3c));
    const twinBase = twin.snapshot().bytes;
    const twin2 = new Machine({ memory: '256M' });
    twin2.mm.vmalloc(2 ** 20)?.write(0, new Uint8Array(4096).fill(0x3c));
    twin2.mm.vmalloc(2 ** 20);
    expect(twin2.snapshot().bytes).toBe(twinBase);
    m.mm.vfree(area);
    const other = m.mm.vmalloc(2 ** 20) as NonNullable<ReturnType<typeof m.mm.vmalloc>>;
    other.write(0, new Uint8Array(4096).fill(0x11));
    m.restore(snap);
    expect(area.pages).toEqual(pfns);
    expect(area.read(0, 4)).toEqual(new Uint8Array(4).fill(0x3c));
    m.mm.vfree(area);
    expect(m.audit()).toEqual([]);
  });

  it('references made before the snapshot stay valid; objects made after drop out', () => {
    const { machine: m, dev } = testMachine({ iommu: { mode: 'strict' } });
    m.pci.bind(dev, { name: 'd', probe() {} });
    const virt = m.mm.kmalloc(4096) as number;
    const snap = m.snapshot();
    const addr = dma_map_single(dev, virt, 4096, DMA_TO_DEVICE);
    // The device reads it: the access checker remembers the mapping as its fast path.
    expect(dev.dma.read(addr, 4).ok).toBe(true);
    const other = m.pci.addDevice({ name: '0000:02:00.0' });
    m.restore(snap);
    expect([...m.devices()]).toEqual([dev]);
    expect(other.name).toBe('0000:02:00.0');
    // The mapping is gone: the IOVA is unmapped again, and a device access there is a finding.
    expect(dev.dma.read(addr, 4).ok).toBe(false);
    expect(dmaFindings(m).map((f) => f.kind)).toContain('access-unmapped');
    // Same in dma-direct, where the access itself succeeds: only the checker can tell.
    const d = testMachine({ swiotlb: false });
    d.machine.pci.bind(d.dev, { name: 'd', probe() {} });
    const buf = d.machine.mm.kmalloc(4096) as number;
    const s2 = d.machine.snapshot();
    const a2 = dma_map_single(d.dev, buf, 4096, DMA_TO_DEVICE);
    expect(d.dev.dma.read(a2, 4).ok).toBe(true);
    expect(dmaFindings(d.machine)).toEqual([]);
    d.machine.restore(s2);
    d.dev.dma.read(a2, 4);
    expect(dmaFindings(d.machine).map((f) => f.kind)).toEqual(['access-unmapped']);
    expect(dma_map_single(dev, virt, 4096, DMA_TO_DEVICE)).toBe(addr);
  });

  it('refuses a snapshot of another machine, bad options, and state it cannot see', () => {
    const a = testMachine().machine;
    const b = testMachine().machine;
    const snap = a.snapshot();
    expect(() => b.restore(snap)).toThrow(/Machine.restore: snap: the snapshot belongs to another machine.*EINVAL/);
    expect(() => b.restore({} as never)).toThrow(/snap: expected a snapshot/);
    expect(() => a.snapshot(null as never)).toThrow(/opts/);
    expect(() => a.snapshot({ include: [1] as never })).toThrow(/opts.include/);
    // The planted bug the refusal exists for: state in a WeakMap would silently not come back.
    expect(() => a.snapshot({ include: [{ cache: new WeakMap() }] })).toThrow(/WeakMap holds state a snapshot cannot see.*EINVAL/);
    // Marked shared: not captured, not refused.
    expect(() => a.snapshot({ include: [markShared({ cache: new WeakMap() })] })).not.toThrow();
  });

  it('captureGraph restores fields, arrays, maps, sets, typed arrays and shapes in place', () => {
    const inner = { n: 1 };
    const world = { inner, list: [inner, 2], map: new Map([[1, inner]]), set: new Set([inner]), bytes: new Uint8Array([1, 2]), extra: undefined as unknown };
    const snap = captureGraph(world);
    inner.n = 5; world.list.push(3); world.map.set(2, { n: 2 }); world.set.clear(); world.bytes[0] = 9;
    (world as Record<string, unknown>).added = true;
    world.extra = { x: 1 };
    snap.restore();
    expect(world).toEqual({ inner: { n: 1 }, list: [inner, 2], map: new Map([[1, inner]]), set: new Set([inner]), bytes: new Uint8Array([1, 2]), extra: undefined });
    expect(world.inner).toBe(inner);
    expect('added' in world).toBe(false);
  });

  it('captureGraph restores fields whose keys need quoting, same keys in other orders, and past the writer cache', () => {
    // Fields are written back by a function made per key list with the keys as string literals: a
    // key with quotes, a backslash, a newline or a line separator must stay one key (planted: keys
    // spliced into the code unquoted fail to compile or write the wrong field).
    const odd = ['a"b', "c'd", 'e\\f', 'g\nh', 'i\u2028j', '0', '${x}', 'k l'];
    const o: Record<string, unknown> = {};
    odd.forEach((k, i) => { o[k] = i; });
    const ab = { a: 1, b: 2 };
    const ba = { b: 3, a: 4 };
    const snap = captureGraph({ o, ab, ba });
    // The first restore loops over the keys; the writers are made and used from the second on.
    for (let round = 0; round < 3; round++) {
      for (const k of odd) o[k] = 'changed';
      ab.a = 9; ba.a = 9;
      snap.restore();
      expect(Object.keys(o)).toEqual(['0', ...odd.filter((k) => k !== '0')]);
      odd.forEach((k, i) => { expect(o[k]).toBe(i); });
      expect(ab).toEqual({ a: 1, b: 2 });
      expect(ba).toEqual({ b: 3, a: 4 });
    }
    // 5000 key lists: past the cache of writers the generic loop restores them just as well.
    const many = Array.from({ length: 5000 }, (_, i) => ({ [`f${i}`]: i, shared: i }));
    const snapMany = captureGraph({ many });
    for (let round = 0; round < 2; round++) {
      many.forEach((m) => { m.shared = -1; });
      snapMany.restore();
      many.forEach((m, i) => { expect(m).toEqual({ [`f${i}`]: i, shared: i }); });
    }
  });

  it('captureGraph: compiled writers fail as loudly as the loop, and never mix up key lists', () => {
    // A read-only field or a non-extensible object throws on every restore, as a strict store does
    // (planted: a sloppy-mode writer drops the store silently from the second restore on).
    class D { x = 1; y = 2; }
    const d = new D();
    const s = captureGraph({ d });
    s.restore();
    s.restore();
    d.x = 5;
    Object.defineProperty(d, 'x', { writable: false });
    expect(() => s.restore()).toThrow(TypeError);
    // An object closed after the snapshot: the restore throws the engine's TypeError (checking
    // every object first would cost each restore ~15%; README says so).
    const e = new D();
    const se = captureGraph({ e });
    se.restore();
    se.restore();
    delete (e as Partial<D>).y;
    Object.preventExtensions(e);
    expect(() => se.restore()).toThrow(TypeError);
    // An array closed before the snapshot is refused there (planted: no check, and its restore fails).
    expect(() => captureGraph({ sealed: Object.seal([1]) })).toThrow(/array is sealed or closed.*EINVAL/);
    // Key lists that join to the same string with a separator are still different lists (planted:
    // a NUL-joined cache key hands ['a', 'b'] the writer of ['a\u0000b']).
    const nul: Record<string, number> = { ['a\u0000b']: 1 };
    const sn = captureGraph({ nul });
    sn.restore();
    sn.restore();
    class B { a = 1; b = 2; }
    const b = new B();
    const sb = captureGraph({ b });
    sb.restore();
    b.a = 10; b.b = 20;
    sb.restore();
    expect({ ...b }).toEqual({ a: 1, b: 2 });
  });

  it('captureGraph: what a frozen object holds comes back; what a restore could not put back is refused at capture', () => {
    // A frozen object's own fields never change, but what they hold does (planted: skipping a
    // frozen object with what it reaches leaves the ring at 42).
    const ring = { head: 0 };
    const list = [{ n: 1 }];
    const m = Object.freeze(new Map([[1, 'a']]));
    const world = { cfg: Object.freeze({ ring, list: Object.freeze(list) }), m };
    const snap = captureGraph(world);
    ring.head = 42;
    (list[0] as { n: number }).n = 7;
    m.set(2, 'b'); // freezing a Map does not stop it changing
    snap.restore();
    expect(ring.head).toBe(0);
    expect(list[0]?.n).toBe(1);
    expect([...m.keys()]).toEqual([1]);
    // Refused with EINVAL, naming what: a symbol-keyed property (Object.keys does not list it), a
    // non-enumerable one on a class instance, an object that takes no new properties.
    const S = Symbol('s');
    class C { a = 1; }
    const withSymbol = new C() as C & { [S]?: number };
    withSymbol[S] = 1;
    const hidden = new C();
    Object.defineProperty(hidden, 'h', { value: 1, writable: true, enumerable: false });
    const closed = Object.preventExtensions(new C());
    const sealedLiteral = Object.preventExtensions({ a: 1, b: 2 });
    for (const [bad, why] of [[withSymbol, /C has a property keyed by a symbol or not enumerable/], [{ [S]: 1 }, /keyed by a symbol/],
      [hidden, /C has a property keyed by a symbol or not enumerable/], [closed, /C is not extensible/], [sealedLiteral, /object is not extensible/]] as const) {
      expect(() => captureGraph({ bad })).toThrow(why);
      expect(() => captureGraph({ bad })).toThrow(/EINVAL/);
    }
  });

  it('captureGraph: an object literal\'s accessors are never called; its hidden and read-only properties are seen', () => {
    // The literal path reads each property's descriptor: a getter is neither called at capture nor
    // overwritten at restore (planted: reading every key as a value calls it and stores its result
    // as a field); a non-enumerable data property is state too (planted: Object.keys misses it); a
    // read-only one is refused at capture (planted: skipping the writable check throws only at restore).
    let calls = 0;
    const inner = { n: 1 };
    const lit = { a: 1, get live() { calls++; return inner; }, set live(_v) { throw new Error('setter called'); } };
    Object.defineProperty(lit, 'hid', { value: { m: 2 }, writable: true, enumerable: false, configurable: true });
    const snap = captureGraph({ lit, frozen: Object.freeze({ get g() { calls++; return 1; }, held: inner }) });
    expect(calls).toBe(0);
    lit.a = 9;
    (lit as unknown as { hid: unknown }).hid = null;
    (lit as Record<string, unknown>)['extra'] = 1;
    inner.n = 5;
    for (let r = 0; r < 3; r++) {
      snap.restore();
      expect(calls).toBe(0);
      expect(lit.a).toBe(1);
      expect((lit as unknown as { hid: { m: number } }).hid).toEqual({ m: 2 });
      expect(Object.keys(lit)).toEqual(['a', 'live']);
      // Reached only through the frozen literal's data property.
      expect(inner.n).toBe(1);
      lit.a = 7;
      inner.n = 6;
    }
    const ro = { a: 1 };
    Object.defineProperty(ro, 'fixed', { value: 3, writable: false, enumerable: true });
    expect(() => captureGraph({ ro })).toThrow(/property fixed of an object is read-only at run time.*EINVAL|EINVAL.*property fixed/);
    const sym = { a: 1 };
    Object.defineProperty(sym, Symbol('hidden'), { value: 1, writable: true, enumerable: false });
    expect(() => captureGraph({ sym })).toThrow(/keyed by a symbol/);
  });

  it('captureGraph restores fields where code generation from strings is refused (the generic loop)', () => {
    // node --disallow-code-generation-from-strings makes new Function throw an EvalError: the
    // snapshot must fall back, not fail (planted: rethrowing every error fails the child).
    const script = `const { captureGraph } = await import(${JSON.stringify(new URL('../../src/core/snapshot.ts', import.meta.url).pathname)});
const w = { a: { x: 1, 'q"k': 2 }, m: new Map([[1, 2]]) };
const s = captureGraph(w); for (let r = 0; r < 2; r++) { w.a.x = 5; w.a['q"k'] = 7; w.a.z = 1; w.m.set(3, 4); s.restore(); }
console.log(JSON.stringify([w.a, [...w.m]]));`;
    const r = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(JSON.stringify([{ x: 1, 'q"k': 2 }, [[1, 2]]]));
  });

  it('captureGraph: shapes come back for class instances and objects with enumerable inherited keys; containers reordered come back in order', () => {
    class Node { a = 1; b: unknown = null; }
    const proto = { inherited: 1 };
    const odd = Object.assign(Object.create(proto) as Record<string, unknown>, { own: 1 });
    const m = new Map([[1, 'a'], [2, 'b']]);
    const arr = [1, 2, 3];
    const world = { node: new Node(), odd, m, arr, bytes: new Uint8Array(70_000) };
    const snap = captureGraph(world);
    for (let round = 0; round < 3; round++) {
      (world.node as unknown as Record<string, unknown>).c = round;
      odd.late = round;
      // The same entries in another order is another state (iteration order is observable).
      m.delete(1); m.set(1, 'a');
      arr[1] = 9;
      world.bytes[69_999] = round + 1;
      snap.restore();
      expect(Object.keys(world.node)).toEqual(['a', 'b']);
      expect(Object.keys(odd)).toEqual(['own']);
      expect([...m.keys()]).toEqual([1, 2]);
      expect(arr).toEqual([1, 2, 3]);
      expect(world.bytes[69_999]).toBe(0);
    }
    // -0 is not 0, and an element present at the capture (even undefined) is not a hole.
    const edge = { arr: [-0, undefined, 3] as unknown[], map: new Map([['k', -0]]) };
    const s2 = captureGraph(edge);
    edge.arr[0] = 0;
    delete edge.arr[1];
    edge.map.set('k', 0);
    s2.restore();
    expect(Object.is(edge.arr[0], -0)).toBe(true);
    expect(1 in edge.arr).toBe(true);
    expect(Object.is(edge.map.get('k'), -0)).toBe(true);
  });

  it('forEachFailurePoint gives the same records from a snapshot as from fresh machines', () => {
    let config: Partial<MachineOptions> = { iommu: { mode: 'lazy' } };
    const make = () => {
      const t = testMachine(config);
      t.machine.pci.bind(t.dev, { name: 'd', probe() {} });
      return t;
    };
    const op = ({ machine, dev }: ReturnType<typeof make>) => {
      const hdr = machine.mm.kmalloc(512) as number;
      const h = dma_map_single(dev, hdr, 512, DMA_TO_DEVICE);
      if (dma_mapping_error(dev, h) !== 0) { machine.mm.kfree(hdr); return -12; }
      const area = machine.mm.vmalloc(16 * 4096);
      if (area === null) { dma_unmap_single(dev, h, 512, DMA_TO_DEVICE); machine.mm.kfree(hdr); return -12; }
      const sgt = new SgTable(machine);
      if (sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL) !== 0) { machine.mm.vfree(area); return -12; }
      const r = dma_map_sgtable(dev, sgt, DMA_TO_DEVICE);
      // Planted: this error path forgets the header mapping.
      if (r !== 0) { sg_free_table(sgt); machine.mm.vfree(area); return r; }
      dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE);
      sg_free_table(sgt);
      machine.mm.vfree(area);
      dma_unmap_single(dev, h, 512, DMA_TO_DEVICE);
      machine.mm.kfree(hdr);
      return 0;
    };
    const strip = (rs: ReturnType<typeof forEachFailurePoint>) => rs.map((r) => ({ k: r.k, result: r.result, error: String(r.error), violations: r.violations }));
    for (const [kind, cfg] of [['page', config], ['iova', config], ['pgtable', config], ['swiotlb', { swiotlb: { force: true, size: '8M' } }]] as const) {
      config = cfg;
      const viaSnapshot = forEachFailurePoint(kind, make, op);
      const fresh = forEachFailurePoint(kind, make, op, undefined, { snapshot: false });
      expect(strip(viaSnapshot)).toEqual(strip(fresh));
      // The planted leak is seen from the snapshot runs too (the header mapping left live).
      if (kind === 'swiotlb') expect(viaSnapshot.some((r) => r.violations.some((v) => /left live: .*dma_map_single/.test(v.message)))).toBe(true);
    }
  });
});

describe('the snapshot rule holds in the source', () => {
  it('no machine state in #private fields (a snapshot cannot see them)', async () => {
    const { readdirSync, readFileSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) { if (name !== 'cli') walk(p); continue; }
        if (!p.endsWith('.ts')) continue;
        readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
          if (/^\s+(static |readonly |async |\*)*#[A-Za-z_]/.test(line) || /\.#[A-Za-z_]/.test(line)) offenders.push(`${p}:${i + 1}: ${line.trim()}`);
        });
      }
    };
    walk(join(import.meta.dirname, '../../src'));
    expect(offenders).toEqual([]);
  });
});
