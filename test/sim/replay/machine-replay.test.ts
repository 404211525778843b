/**
 * Issue 21: replaying a trace on a configured machine. A trace dmasim wrote replays on a machine
 * configured the same way with the same addresses and segments; planted configurations make the
 * traced mappings fail there (a 32-bit device with no swiotlb, a mapping over swiotlb's limit, IOVA
 * space a small mask exhausts) or make dma-debug complain (a device limited to shorter segments);
 * pressure over time follows the machine (strict invalidates per unmap, lazy queues). The command
 * prints it, writes JSON and HTML, and exits 1 when the replay machine finds something.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, GFP_KERNEL, Machine, SgTable, dma_alloc_coherent, dma_free_coherent, dma_map_sgtable,
  dma_map_single, dma_mapping_error, dma_sync_single_for_cpu, dma_sync_sgtable_for_cpu, dma_unmap_sgtable, dma_unmap_single,
  sg_alloc_table_from_pages_segment, sg_free_table, EINVAL, PRESETS, type MachineOptions,
} from '../../../src/index.ts';
import { traceFtrace } from '../../../src/sim/replay/write.ts';
import { replayTrace } from '../../../src/sim/replay/replay.ts';
import { TraceReplayer, entryLengths } from '../../../src/sim/replay/machine-replay.ts';
import { replayMachineConfig } from '../../../src/sim/replay/scan.ts';
import { parseFtraceLine } from '../../../src/sim/replay/parse.ts';
import type { DmaMapSgEvent } from '../../../src/sim/replay/events.ts';

const DEV = '0000:01:00.0';
const dir = mkdtempSync(join(tmpdir(), 'dmasim-mreplay-'));
let n = 0;
/** A trace file from event texts, 1 ms apart. */
function traceFile(...events: string[]): string {
  const p = join(dir, `t${n++}.txt`);
  writeFileSync(p, ['# tracer: nop', ...events.map((e, i) => `     kworker/0:1-42      [000] d..1.   ${(100 + i / 1000).toFixed(6)}: ${e}`)].join('\n') + '\n');
  return p;
}
const mapPhys = (addr: string, size: number, phys: string, dev = DEV) => `dma_map_phys: ${dev} dir=TO_DEVICE dma_addr=${addr} size=${size} phys_addr=${phys} attrs=`;
const unmapPhys = (addr: string, size: number, dev = DEV) => `dma_unmap_phys: ${dev} dir=TO_DEVICE dma_addr=${addr} size=${size} attrs=`;

/** A driver's traffic: single maps with syncs, a 300 KiB sg table, a coherent buffer, all undone. */
function workload(opts: Partial<MachineOptions>): string {
  const m = new Machine({ memory: '1G', trace: true, ...opts });
  const dev = m.pci.addDevice({ name: DEV, dmaMask: 64 });
  m.pci.bind(dev, { name: 'rt', probe() {} });
  for (let i = 0; i < 6; i++) {
    const size = 1024 * (i + 1);
    const v = m.mm.kmalloc(size) as number;
    const a = dma_map_single(dev, v, size, DMA_FROM_DEVICE);
    expect(dma_mapping_error(dev, a)).toBe(0);
    m.clock.advance(20_000);
    dma_sync_single_for_cpu(dev, a, size, DMA_FROM_DEVICE);
    dma_unmap_single(dev, a, size, DMA_FROM_DEVICE);
  }
  const area = m.mm.vmalloc(300 * 1024);
  if (area === null) throw new Error('vmalloc');
  const sgt = new SgTable(m);
  expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL)).toBe(0);
  expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL)).toBe(0);
  dma_sync_sgtable_for_cpu(dev, sgt, DMA_BIDIRECTIONAL);
  dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL);
  sg_free_table(sgt);
  const buf = dma_alloc_coherent(dev, 8192, GFP_KERNEL);
  if (buf === null) throw new Error('coherent');
  dma_free_coherent(dev, 8192, buf);
  const p = join(dir, `w${n++}.txt`);
  writeFileSync(p, traceFtrace(m));
  return p;
}

describe('replay on a configured machine', () => {
  for (const [name, traced, asked] of [
    ['strict', { iommu: { mode: 'strict' } }, { iommu: 'strict' }],
    ['lazy', { iommu: { mode: 'lazy' } }, { iommu: 'lazy' }],
    ['dma-direct', { swiotlb: false }, { replay: true }],
  ] as const) {
    it(`${name}: a trace replayed on a machine configured like the traced one gives its addresses and segments`, async () => {
      const r = await replayTrace(workload(traced as Partial<MachineOptions>), asked as object);
      const rp = r.replay!;
      expect(rp.stats.replayed).toBe(rp.stats.events - rp.stats.iommuEvents);
      if (name !== 'dma-direct') expect(rp.stats.iommuEvents).toBeGreaterThan(0);
      expect(rp.stats.skipped).toEqual({});
      expect(rp.findings).toEqual([]);
      expect(r.findings).toEqual([]);
      expect(rp.fidelity.singleMaps).toBe(6);
      expect(rp.fidelity.sameAddress).toBe(6);
      expect(rp.fidelity.sgMaps).toBe(1);
      expect(rp.fidelity.sameSegmentAddresses).toBe(1);
      expect(rp.fidelity.examples).toEqual([]);
    });
  }

  it('a trace from one machine shows its differences on another (IOMMU trace replayed with swiotlb=force)', async () => {
    const r = await replayTrace(workload({ iommu: { mode: 'strict' } }), { iommu: 'off', swiotlbForce: true });
    const rp = r.replay!;
    expect(rp.findings).toEqual([]);
    expect(rp.fidelity.sameAddress).toBe(0);
    // One bounce a buffer, as swiotlb_bounced counts: 6 single maps and the 5 entries (64 KiB each) of the 300 KiB table.
    expect(rp.fidelity.replayBounces).toBe(11);
    expect(rp.fidelity.examples.length).toBeGreaterThan(0);
    expect(rp.stats.swiotlbHiwater).toBeGreaterThan(0);
    expect(Math.max(...rp.samples.map((s) => s.swiotlbSlots))).toBeGreaterThan(0);
  });

  it('planted: a 32-bit device above 4 GiB with no swiotlb fails with dma-direct\'s WARN; with swiotlb it bounces', async () => {
    const machineFile = { memory: '8G', swiotlb: false as const };
    const t = traceFile(mapPhys('180000000', 8192, '180000000'), unmapPhys('180000000', 8192));
    const r = await replayTrace(t, { machine: machineFile, mask: 32 });
    const f = r.replay!.findings;
    expect(f.length).toBe(1);
    expect(f[0]).toMatchObject({ kind: 'map-failed', device: DEV, lines: [2] });
    expect(f[0]?.message).toContain('DMA addr 0x0000000180000000+8192 overflow (mask ffffffff, bus limit 0)');
    expect(r.replay!.stats.skipped).toEqual({ 'release of a mapping the replay does not hold': 1 });
    // The correct configuration for such a device: swiotlb there, the map bounces and nothing fails.
    const ok = await replayTrace(t, { machine: { memory: '8G' }, mask: 32 });
    expect(ok.replay!.findings).toEqual([]);
    expect(ok.replay!.fidelity.replayBounces).toBe(1);
  });

  it('planted: a mapping over swiotlb\'s 256 KiB limit fails under swiotlb=force with swiotlb\'s words', async () => {
    const t = traceFile(mapPhys('10000000', 512 * 1024, '10000000'), unmapPhys('10000000', 512 * 1024), mapPhys('10100000', 65536, '10100000'), unmapPhys('10100000', 65536));
    const r = await replayTrace(t, { swiotlbForce: true });
    const f = r.replay!.findings;
    expect(f.map((x) => x.kind)).toEqual(['map-failed']);
    expect(f[0]?.lines).toEqual([2]);
    expect(f[0]?.message).toMatch(/swiotlb/);
    // Both maps tried to bounce (the tracepoint fires before the slot search, so the failed one counts).
    expect(r.replay!.fidelity.replayBounces).toBe(2);
    const plain = await replayTrace(t, { replay: true });
    expect(plain.replay!.findings).toEqual([]);
  });

  it('planted: a small DMA mask runs out of IOVA space under the IOMMU; a 64-bit one does not', async () => {
    const ev: string[] = [];
    for (let i = 0; i < 40; i++) ev.push(mapPhys((0x20000000 + i * 0x100000).toString(16), 1 << 20, (0x20000000 + i * 0x100000).toString(16)));
    const t = traceFile(...ev);
    const r = await replayTrace(t, { iommu: 'strict', mask: 25 });
    const failed = r.replay!.findings.filter((f) => f.kind === 'map-failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThan(40);
    expect(r.replay!.stats.peakIovaBytes).toBeLessThanOrEqual(2 ** 25);
    const wide = await replayTrace(t, { iommu: 'strict' });
    expect(wide.replay!.findings).toEqual([]);
    expect(wide.replay!.stats.peakIovaBytes).toBe(40 << 20);
    // The trace itself leaks all 40: the offline check says so, whatever the machine.
    expect(r.findings.filter((f) => f.kind === 'leaked-mapping').length).toBe(40);
  });

  it('planted: a device limited to 4 KiB segments (machine file) makes dma-debug report the traced 16 KiB entry', async () => {
    const sg = `dma_map_sg: ${DEV} dir=TO_DEVICE nents=1/1 ents=1/1 dma_addrs={0x3000000} sizes={0x4000} phys_addrs={0x3000000} attrs=`;
    const unsg = `dma_unmap_sg: ${DEV} dir=TO_DEVICE phys_addrs={0x3000000} attrs=`;
    const t = traceFile(sg, unsg);
    const r = await replayTrace(t, { machine: { memory: '4G', devices: [{ name: DEV, dmaMask: 64, maxSegmentSize: 4096 }] } });
    const f = r.replay!.findings;
    expect(f.length).toBe(1);
    expect(f[0]?.kind).toBe('dma-debug');
    expect(f[0]?.message).toContain('mapping sg segment longer than device claims to support [len=16384] [max=4096]');
    expect(f[0]?.lines).toEqual([2]);
    const fine = await replayTrace(t, { machine: { memory: '4G', devices: [{ name: DEV, dmaMask: 64, maxSegmentSize: 65536 }] } });
    expect(fine.replay!.findings).toEqual([]);
  });

  it('a bug the trace check reports is not reported again by the replay machine', async () => {
    const t = traceFile(mapPhys('4000000', 4096, '4000000'), unmapPhys('4000000', 2048));
    const r = await replayTrace(t, { replay: true });
    expect(r.findings.map((f) => f.kind)).toEqual(['dma-debug']);
    expect(r.replay!.findings).toEqual([]);
  });

  it('pressure: strict invalidates the IOTLB on every unmap, lazy queues IOVAs and flushes in batches', async () => {
    const ev: string[] = [];
    for (let i = 0; i < 200; i++) {
      const a = (0x30000000 + (i % 8) * 0x10000).toString(16);
      ev.push(mapPhys(a, 4096, a), unmapPhys(a, 4096));
    }
    const t = traceFile(...ev);
    const strict = await replayTrace(t, { iommu: 'strict' });
    const lazy = await replayTrace(t, { iommu: 'lazy' });
    const inval = (r: typeof strict) => r.replay!.samples[r.replay!.samples.length - 1]!.iotlbInvalidations;
    expect(inval(strict)).toBeGreaterThanOrEqual(200);
    expect(inval(lazy)).toBeLessThan(inval(strict) / 4);
    expect(Math.max(...lazy.replay!.samples.map((s) => s.flushQueued))).toBeGreaterThan(0);
    expect(Math.max(...strict.replay!.samples.map((s) => s.flushQueued))).toBe(0);
  });

  it('a mapping the traced kernel failed is tried: it would succeed here', async () => {
    const t = traceFile(mapPhys('ffffffffffffffff', 4096, '5000000'));
    const r = await replayTrace(t, { iommu: 'strict' });
    expect(r.replay!.stats.tracedFailures).toBe(1);
    expect(r.replay!.stats.wouldSucceed).toBe(1);
    expect(r.replay!.stats.peakLive).toBe(0);
  });

  it('a trace from a stream (no sizing pass) makes its devices on first sight, with --mask applied', async () => {
    const text = ['# tracer: nop', `  k-1 [000] d..1.   1.000001: ${mapPhys('180000000', 8192, '180000000')}`].join('\n') + '\n';
    const r = await replayTrace((async function* () { yield text; })(), { machine: { memory: '8G', swiotlb: false }, mask: 32 });
    expect(r.plan!.notes.some((n) => n.startsWith(`${DEV}: pci, 32-bit DMA mask (as asked)`))).toBe(true);
    expect(r.replay!.findings.map((f) => f.kind)).toEqual(['map-failed']);
  });

  it('physical addresses the replay machine lacks are skipped and counted, not mapped', async () => {
    const t = traceFile(mapPhys('1000000000', 4096, '1000000000'), unmapPhys('1000000000', 4096));
    const r = await replayTrace(t, { machine: { memory: '4G' } });
    expect(r.replay!.stats.skipped['physical address not RAM on the replay machine']).toBe(1);
    expect(r.replay!.findings).toEqual([]);
    // Sized from the trace, the machine has the RAM.
    const sized = await replayTrace(t, { replay: true });
    expect(sized.replay!.stats.skipped).toEqual({});
    expect(sized.plan!.notes[0]).toContain('65 GiB');
  });

  it('the trace\'s pages are kept out of the machine\'s own allocations (IOMMU page tables of four devices)', async () => {
    const ev: string[] = [];
    for (let i = 0; i < 64; i++) {
      const dev = `0000:0${(i % 4) + 1}:00.0`;
      const a = (0x1000000 + i * 0x1000).toString(16);
      ev.push(mapPhys(a, 4096, a, dev), unmapPhys(a, 4096, dev));
    }
    const r = await replayTrace(traceFile(...ev), { iommu: 'lazy' });
    expect(r.replay!.stats.skipped).toEqual({});
    expect(r.replay!.stats.replayed).toBe(128);
  });

  it('on a fragmented machine (a preset), the trace\'s buffers may sit in pages the fragmenter holds: they are the trace\'s', async () => {
    const r = await replayTrace(workload({ iommu: { mode: 'lazy' } }), { machine: PRESETS['laptop-nvme-vtd']! });
    expect(Object.keys(r.replay!.stats.skipped)).toEqual([]);
    expect(r.replay!.findings).toEqual([]);
  });

  it('a free of the wrong size that BUGs the replay machine\'s page allocator is a finding, and the replay goes on', async () => {
    const t = traceFile(
      `dma_alloc: ${DEV} dir=BIDIRECTIONAL dma_addr=5000000 size=8192 virt_addr=00000000a1b2c3d4 flags=GFP_KERNEL attrs=`,
      `dma_free: ${DEV} dir=BIDIRECTIONAL dma_addr=5000000 size=4096 virt_addr=00000000a1b2c3d4 attrs=`,
      mapPhys('6000000', 4096, '6000000'), unmapPhys('6000000', 4096));
    const r = await replayTrace(t, { iommu: 'off' });
    // The trace check reports the size mismatch; the replay machine, the BUG the kernel would hit.
    expect(r.findings.map((f) => f.kind)).toEqual(['dma-debug']);
    const bug = r.replay!.findings.filter((f) => f.message.startsWith('BUG in'));
    expect(bug.length).toBe(1);
    expect(bug[0]).toMatchObject({ kind: 'warn', lines: [3] });
    expect(bug[0]?.message).toMatch(/Bad page state/);
    expect(r.replay!.stats.replayed).toBe(3);
  });

  it('an MMIO mapping at an address the replay machine has RAM at is not replayed (its dma-debug would call it RAM)', async () => {
    const t = traceFile(
      `dma_map_resource: ${DEV} dir=BIDIRECTIONAL dma_addr=f0000000 size=4096 phys_addr=f0000000 attrs=`,
      `dma_unmap_resource: ${DEV} dir=BIDIRECTIONAL dma_addr=f0000000 size=4096 attrs=`);
    const r = await replayTrace(t, { iommu: 'strict' });
    expect(r.findings).toEqual([]);
    expect(r.replay!.findings).toEqual([]);
    expect(r.replay!.stats.skipped['MMIO address that is RAM on the replay machine']).toBe(1);
    expect(r.plan!.notes[0]).toContain('the trace names no RAM address');
  });

  it('the last pressure sample is the machine as the trace leaves it: every strict unmap\'s invalidation counted', async () => {
    const ev: string[] = [];
    for (let i = 0; i < 1500; i++) { const a = (0x30000000 + (i % 8) * 0x10000).toString(16); ev.push(mapPhys(a, 4096, a), unmapPhys(a, 4096)); }
    const r = await replayTrace(traceFile(...ev), { iommu: 'strict' });
    const last = r.replay!.samples[r.replay!.samples.length - 1]!;
    const tlb = r.machine!.iommu!.iotlb;
    expect(last.iotlbInvalidations).toBe(tlb.invalidations + tlb.domainFlushes + tlb.globalFlushes);
    expect(last.line).toBe(3001);
  });

  it('rebuilds sg entry lengths: exact when nothing merged, granule-ended when entries merged, null when impossible', () => {
    const ev = (s: string) => (parseFtraceLine(`  k-1 [000] .....   1.000000: ${s}`, 1) as { event: DmaMapSgEvent }).event;
    expect(entryLengths(ev(`dma_map_sg: ${DEV} dir=TO_DEVICE nents=2/2 ents=2/2 dma_addrs={0x1000,0x9000} sizes={0x800,0x1000} phys_addrs={0x2000800,0x2008000} attrs=`), 4096)).toEqual([0x800, 0x1000]);
    expect(entryLengths(ev(`dma_map_sg: ${DEV} dir=TO_DEVICE nents=3/3 ents=2/2 dma_addrs={0xffff0000,0xffff3000} sizes={0x3000,0x1000} phys_addrs={0x2000000,0x2001000,0x2005000} attrs=`), 4096)).toEqual([0x1000, 0x2000, 0x1000]);
    expect(entryLengths(ev(`dma_map_sg: ${DEV} dir=TO_DEVICE nents=3/3 ents=1/1 dma_addrs={0xffff0200} sizes={0x2e00} phys_addrs={0x2000200,0x2007000,0x2009000} attrs=`), 4096)).toEqual([0xe00, 0x1000, 0x1000]);
    // Two entries cannot make one segment when the second does not start a granule.
    expect(entryLengths(ev(`dma_map_sg: ${DEV} dir=TO_DEVICE nents=2/2 ents=1/1 dma_addrs={0xffff0000} sizes={0x2000} phys_addrs={0x2000000,0x2007100} attrs=`), 4096)).toBeNull();
  });

  it('bad input is EINVAL naming the argument', () => {
    expect(() => replayMachineConfig(null, { mask: 65 })).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'opts.mask' }));
    expect(() => replayMachineConfig(null, { iommu: 'on' as 'strict' })).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'opts.iommu' }));
    expect(() => new TraceReplayer({} as Machine)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'machine' }));
    const rep = new TraceReplayer(new Machine({ memory: '1G' }));
    expect(() => rep.add({} as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'ev' }));
    rep.finish();
    const line = parseFtraceLine(`  k-1 [000] .....   1.000000: ${unmapPhys('1000', 4096)}`, 1);
    if (line.kind !== 'event') throw new Error('parse');
    expect(() => rep.add(line.event)).toThrow(/finished/);
  });

  it('the command: a summary, JSON findings marked with where they come from, an HTML page, exit 1 on a replay finding', () => {
    const t = traceFile(mapPhys('10000000', 512 * 1024, '10000000'), unmapPhys('10000000', 512 * 1024));
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'replay', ...args], { encoding: 'utf8' });
    const plain = cli(t);
    expect(plain.status).toBe(0);
    expect(plain.stdout).not.toMatch(/replay machine/);
    const html = join(dir, 'r.html');
    const forced = cli(t, '--swiotlb', 'force', '--html', html);
    expect(forced.status).toBe(1);
    expect(forced.stdout).toMatch(/replay machine: 4 GiB RAM, .*swiotlb .* forced/);
    expect(forced.stdout).toMatch(/mappings the traced kernel made that fail here: 1/);
    expect(forced.stdout).toMatch(/line 2: map-failed: dma_map_phys of 524288 bytes/);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('swiotlb slots in use');
    expect(page).toContain('map-failed');
    const json = cli(t, '--swiotlb', 'force', '--json');
    const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toEqual([expect.objectContaining({ kind: 'map-failed', device: DEV, lines: [2], where: 'replay' })]);
    const preset = cli(t, '--machine', 'confidential-vm');
    expect(preset.status).toBe(1);
    expect(preset.stdout).toMatch(/8 GiB RAM/);
    for (const bad of [['--iommu', 'on'], ['--swiotlb', 'yes'], ['--mask', '0'], ['--machine', 'no-such-preset']]) {
      const r = cli(t, ...bad);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(bad[0]);
    }
  });
});
