/**
 * Issue 21: the offline check of a kernel DMA trace. Hand-written traces in the 6.18 format, one per
 * finding kind (each planted bug must be reported, with dma-debug's words and the lines of both
 * parties), a clean trace that must give nothing, and the command's exit codes.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTrace } from '../../../src/sim/replay/check.ts';
import { parseFtrace } from '../../../src/sim/replay/parse.ts';

const DEV = '0000:01:00.0';
/** A trace from event texts: `dma_map_phys: 0000:01:00.0 dir=...`, one line each, 1 us apart. */
function trace(...events: string[]): string {
  return ['# tracer: nop', '#', ...events.map((e, i) => `     kworker/0:1-42      [000] d..1.   100.${String(i + 1).padStart(6, '0')}: ${e}`)].join('\n') + '\n';
}
async function check(text: string) {
  return checkTrace(parseFtrace((async function* () { yield text; })()));
}
const mapPhys = (addr: string, size: number, dir: string, phys = '1000000', dev = DEV) => `dma_map_phys: ${dev} dir=${dir} dma_addr=${addr} size=${size} phys_addr=${phys} attrs=`;
const unmapPhys = (addr: string, size: number, dir: string, dev = DEV) => `dma_unmap_phys: ${dev} dir=${dir} dma_addr=${addr} size=${size} attrs=`;

describe('replay: the offline dma-debug check', () => {
  it('a correct driver gives no finding (maps, syncs, sg, coherent, alloc_pages, all undone)', async () => {
    const r = await check(trace(
      mapPhys('fffff000', 4096, 'FROM_DEVICE'),
      `dma_sync_single_for_cpu: ${DEV} dir=FROM_DEVICE dma_addr=fffff000 size=4096`,
      `dma_sync_single_for_device: ${DEV} dir=FROM_DEVICE dma_addr=fffff800 size=2048`,
      unmapPhys('fffff000', 4096, 'FROM_DEVICE'),
      `dma_map_sg: ${DEV} dir=TO_DEVICE nents=3/3 ents=2/2 dma_addrs={0xffff0000,0xffff3000} sizes={0x3000,0x1000} phys_addrs={0x2000000,0x2001000,0x2005000} attrs=`,
      `dma_sync_sg_for_cpu: ${DEV} dir=TO_DEVICE dma_addrs={0xffff0000,0xffff3000,0x0} sizes={0x3000,0x1000,0x0}`,
      `dma_unmap_sg: ${DEV} dir=TO_DEVICE phys_addrs={0x2000000,0x2001000,0x2005000} attrs=`,
      `dma_alloc: ${DEV} dir=BIDIRECTIONAL dma_addr=fffe0000 size=8192 virt_addr=000000003a1b2c3d flags=GFP_KERNEL attrs=`,
      `dma_free: ${DEV} dir=BIDIRECTIONAL dma_addr=fffe0000 size=8192 virt_addr=000000003a1b2c3d attrs=`,
      mapPhys('ffffffffffffffff', 4096, 'TO_DEVICE'),
      'sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b next_pid=2 next_prio=120',
    ));
    expect(r.findings).toEqual([]);
    expect(r.stats).toMatchObject({ maps: 3, unmaps: 2, syncs: 3, allocs: 1, frees: 1, failedMaps: 1, devices: [DEV] });
  });

  it('size and direction mismatches on unmap, with both lines', async () => {
    const r = await check(trace(mapPhys('fffff000', 4096, 'TO_DEVICE'), unmapPhys('fffff000', 2048, 'FROM_DEVICE')));
    expect(r.findings.map((f) => [f.kind, f.lines, f.message])).toEqual([
      ['dma-debug', [4, 3], `DMA-API: pci ${DEV}: device driver frees DMA memory with different size [device address=0x00000000fffff000] [map size=4096 bytes] [unmap size=2048 bytes]`],
      ['dma-debug', [4, 3], `DMA-API: pci ${DEV}: device driver frees DMA memory with different direction [device address=0x00000000fffff000] [size=2048 bytes] [mapped with DMA_TO_DEVICE] [unmapped with DMA_FROM_DEVICE]`],
    ]);
  });

  it('an unmap of an address never mapped, and a double unmap', async () => {
    const r = await check(trace(unmapPhys('abc000', 4096, 'TO_DEVICE'), mapPhys('fffff000', 4096, 'TO_DEVICE'), unmapPhys('fffff000', 4096, 'TO_DEVICE'), unmapPhys('fffff000', 4096, 'TO_DEVICE')));
    expect(r.findings.map((f) => [f.lines, f.message])).toEqual([
      [[3], `DMA-API: pci ${DEV}: device driver tries to free DMA memory it has not allocated [device address=0x0000000000abc000] [size=4096 bytes]`],
      // A double unmap names the first unmap's line.
      [[6, 5], `DMA-API: pci ${DEV}: device driver tries to free DMA memory it has not allocated [device address=0x00000000fffff000] [size=4096 bytes]`],
    ]);
  });

  it('syncs in the wrong direction, outside the mapping, and of nothing', async () => {
    const r = await check(trace(
      mapPhys('fffff000', 4096, 'TO_DEVICE'),
      `dma_sync_single_for_cpu: ${DEV} dir=FROM_DEVICE dma_addr=fffff000 size=4096`,
      `dma_sync_single_for_device: ${DEV} dir=TO_DEVICE dma_addr=fffff800 size=4096`,
      `dma_sync_single_for_cpu: ${DEV} dir=TO_DEVICE dma_addr=12345000 size=64`,
      unmapPhys('fffff000', 4096, 'TO_DEVICE'),
    ));
    expect(r.findings.map((f) => f.message)).toEqual([
      `DMA-API: pci ${DEV}: device driver syncs DMA memory with different direction [device address=0x00000000fffff000] [size=4096 bytes] [mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]`,
      // check_sync's second complaint for the same call, as the kernel prints it.
      `DMA-API: pci ${DEV}: device driver syncs device read-only DMA memory for cpu [device address=0x00000000fffff000] [size=4096 bytes] [mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]`,
      `DMA-API: pci ${DEV}: device driver tries to sync DMA memory it has not allocated [device address=0x00000000fffff800] [size=4096 bytes]`,
      `DMA-API: pci ${DEV}: device driver tries to sync DMA memory it has not allocated [device address=0x0000000012345000] [size=64 bytes]`,
    ]);
    expect(r.findings[0]?.lines).toEqual([4, 3]);
  });

  it('scatterlists: the unmap is matched by physical address; a different entry count and an unknown list are reported', async () => {
    const map = `dma_map_sg: ${DEV} dir=FROM_DEVICE nents=2/2 ents=1/1 dma_addrs={0xffff0000} sizes={0x2000} phys_addrs={0x2000000,0x2001000} attrs=`;
    const r = await check(trace(map, `dma_unmap_sg: ${DEV} dir=FROM_DEVICE phys_addrs={0x2000000} attrs=`, `dma_unmap_sg: ${DEV} dir=FROM_DEVICE phys_addrs={0x7000000,0x7001000} attrs=`));
    expect(r.findings.map((f) => [f.lines, f.message])).toEqual([
      [[4, 3], `DMA-API: pci ${DEV}: device driver frees DMA sg list with different entry count [map count=2] [unmap count=1]`],
      [[5], `DMA-API: pci ${DEV}: device driver tries to free DMA memory it has not allocated [physical address=0x0000000007000000] (dma_unmap_sg: no live dma_map_sg of this device starts there)`],
    ]);
  });

  it('coherent buffers: a free of the wrong size, an unknown free, and a leak at the end', async () => {
    const r = await check(trace(
      `dma_alloc: ${DEV} dir=BIDIRECTIONAL dma_addr=fffe0000 size=8192 virt_addr=000000003a1b2c3d flags=GFP_KERNEL attrs=`,
      `dma_free: ${DEV} dir=BIDIRECTIONAL dma_addr=fffe0000 size=4096 virt_addr=000000003a1b2c3d attrs=`,
      `dma_free: ${DEV} dir=BIDIRECTIONAL dma_addr=fffd0000 size=4096 virt_addr=000000003a1b2c3d attrs=`,
      `dma_alloc: ${DEV} dir=BIDIRECTIONAL dma_addr=fffc0000 size=4096 virt_addr=000000004a1b2c3d flags=GFP_KERNEL|__GFP_ZERO attrs=`,
    ));
    expect(r.findings.map((f) => [f.kind, f.lines])).toEqual([['dma-debug', [4, 3]], ['dma-debug', [5]], ['leaked-coherent', [6]]]);
    expect(r.findings[0]?.message).toMatch(/frees DMA memory with different size/);
    expect(r.findings[1]?.message).toMatch(/tries to free DMA memory it has not allocated \[device address=0x00000000fffd0000\]/);
  });

  it('mappings live at the end are leaks per device, with the line that made them', async () => {
    const r = await check(trace(mapPhys('fffff000', 4096, 'TO_DEVICE'), mapPhys('fffff000', 512, 'FROM_DEVICE', '3000000', '0000:02:00.0')));
    expect(r.findings.map((f) => [f.kind, f.device, f.lines])).toEqual([['leaked-mapping', DEV, [3]], ['leaked-mapping', '0000:02:00.0', [4]]]);
    expect(r.findings[1]?.message).toBe('0000:02:00.0: phy mapping [device address=0x00000000fffff000] [size=512 bytes] [DMA_FROM_DEVICE] never unmapped before the trace ended (mapped at line 4)');
  });

  it('the command: exit 0 clean, 1 with findings (JSON lines), 2 for bad usage; malformed lines on stderr', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-replay-'));
    const clean = join(dir, 'clean.txt');
    const bad = join(dir, 'bad.txt');
    writeFileSync(clean, trace(mapPhys('fffff000', 4096, 'TO_DEVICE'), unmapPhys('fffff000', 4096, 'TO_DEVICE'), 'dma_map_phys: this line is cut'));
    writeFileSync(bad, trace(mapPhys('fffff000', 4096, 'TO_DEVICE')));
    const cli = (...a: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../../src/cli/main.ts'), 'replay', ...a], { encoding: 'utf8' });
    const ok = cli(clean);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/findings: 0/);
    expect(ok.stderr).toMatch(/line 5: dma_map_phys/);
    const found = cli(bad, '--json');
    expect(found.status).toBe(1);
    expect(found.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; lines: number[] })).toEqual([expect.objectContaining({ kind: 'leaked-mapping', device: DEV, lines: [3] })]);
    expect(cli().status).toBe(2);
    expect(cli(join(dir, 'missing.txt')).status).toBe(2);
    expect(cli(clean, '--max-findings', 'x').status).toBe(2);
  }, 30_000);

  it('what a trace cannot tell is not reported: a device\'s segment limit, which addresses are RAM (MMIO mappings)', async () => {
    const r = await check(trace(
      `dma_map_sg: ${DEV} dir=TO_DEVICE nents=1/1 ents=1/1 dma_addrs={0x3000000} sizes={0x20000} phys_addrs={0x3000000} attrs=`,
      `dma_unmap_sg: ${DEV} dir=TO_DEVICE phys_addrs={0x3000000} attrs=`,
      mapPhys('f0000000', 4096, 'BIDIRECTIONAL', 'f0000000').replace('attrs=', 'attrs=MMIO'),
      unmapPhys('f0000000', 4096, 'BIDIRECTIONAL').replace('attrs=', 'attrs=MMIO'),
      `dma_map_resource: ${DEV} dir=BIDIRECTIONAL dma_addr=3800000000 size=4096 phys_addr=3800000000 attrs=`,
      `dma_unmap_resource: ${DEV} dir=BIDIRECTIONAL dma_addr=3800000000 size=4096 attrs=`,
    ));
    expect(r.findings).toEqual([]);
  });

  it('a failed coherent allocation behind an IOMMU (DMA_MAPPING_ERROR, NULL pointer) is no allocation', async () => {
    const r = await check(trace(`dma_alloc: ${DEV} dir=BIDIRECTIONAL dma_addr=ffffffffffffffff size=8192 virt_addr=0000000000000000 flags=GFP_KERNEL attrs=`));
    expect(r.findings).toEqual([]);
    expect(r.stats.failedMaps).toBe(1);
  });

  it('a free with another CPU pointer: dma-debug\'s words (its 0x0x included), with the pointers the trace printed', async () => {
    const r = await check(trace(
      `dma_alloc: ${DEV} dir=BIDIRECTIONAL dma_addr=fffe0000 size=8192 virt_addr=00000000a1b2c3d4 flags=GFP_KERNEL attrs=`,
      `dma_free: ${DEV} dir=BIDIRECTIONAL dma_addr=fffe0000 size=8192 virt_addr=00000000deadbeef attrs=`,
    ));
    expect(r.findings.map((f) => f.message)).toEqual([expect.stringContaining('frees DMA memory with different CPU address [device address=0x00000000fffe0000] [size=8192 bytes] [cpu alloc address=0x0x00000000a1b2c3d4] [cpu free address=0x0x00000000deadbeef]')]);
  });

  it('iommu:io_page_fault: after an unmap, outside any mapping, or against a mapping\'s direction, each with its lines', async () => {
    const r = await check(trace(
      mapPhys('fffff000', 8192, 'TO_DEVICE'),
      unmapPhys('fffff000', 8192, 'TO_DEVICE'),
      'io_page_fault: IOMMU:nvme 0000:01:00.0 iova=0x00000000fffff800 flags=0x0000',
      'io_page_fault: IOMMU:nvme 0000:01:00.0 iova=0x0000000012345000 flags=0x0001',
      mapPhys('ffffe000', 4096, 'TO_DEVICE'),
      'io_page_fault: IOMMU:nvme 0000:01:00.0 iova=0x00000000ffffe010 flags=0x0001',
      unmapPhys('ffffe000', 4096, 'TO_DEVICE'),
    ));
    expect(r.findings.map((f) => [f.kind, f.lines])).toEqual([['access-after-unmap', [5, 4]], ['access-unmapped', [6]], ['access-direction', [8, 7]]]);
    // A read of a live DMA_TO_DEVICE buffer is allowed: a fault there is no direction violation.
    const read = await check(trace(mapPhys('ffffe000', 4096, 'TO_DEVICE'), 'io_page_fault: IOMMU:nvme 0000:01:00.0 iova=0x00000000ffffe010 flags=0x0000'));
    expect(read.findings.filter((f) => f.kind.startsWith('access')).map((f) => f.kind)).toEqual(['access-unmapped']);
    expect(read.findings[0]?.message).toContain('which allows it');
    // A stray IOVA past 2^53 still parses and is a finding.
    const stray = await check(trace('io_page_fault: IOMMU:nvme 0000:01:00.0 iova=0xfffffffffffff000 flags=0x0001'));
    expect(stray.findings.map((f) => f.kind)).toEqual(['access-unmapped']);
    expect(stray.findings[0]?.message).toContain('iova 0xfffffffffffff000');
    expect(r.findings[0]?.message).toBe('nvme 0000:01:00.0: IOMMU fault on a device read at iova 0x00000000fffff800, which the driver unmapped at line 4 ([device address=0x00000000fffff000] [size=8192 bytes])');
    expect(r.findings[2]?.message).toContain('device write at iova 0x00000000ffffe010, inside the live DMA_TO_DEVICE mapping');
  });

  it('noncontiguous allocations go through dma-debug as the kernel\'s do; allocations leak as leaked-coherent, as dmaFindings names them', async () => {
    const r = await check(trace(
      `dma_alloc_sgt: ${DEV} dir=FROM_DEVICE dma_addr=ffff0000 size=12288 phys_addrs={0x4000000,0x4001000,0x4002000} flags=GFP_KERNEL attrs=`,
      `dma_free_sgt: ${DEV} dir=TO_DEVICE dma_addr=ffff0000 size=12288 phys_addrs={0x4000000,0x4001000,0x4002000}`,
      `dma_alloc_pages: ${DEV} dir=FROM_DEVICE dma_addr=fffe0000 size=8192 virt_addr=00000000a1b2c3d4 flags=GFP_KERNEL attrs=`,
      `dma_alloc_sgt: ${DEV} dir=FROM_DEVICE dma_addr=fffd0000 size=4096 phys_addrs={0x5000000} flags=GFP_KERNEL attrs=`,
    ));
    expect(r.findings.map((f) => [f.kind, f.lines])).toEqual([['dma-debug', [4, 3]], ['leaked-coherent', [5]], ['leaked-coherent', [6]]]);
    expect(r.findings[0]?.message).toContain('frees DMA memory with different direction');
  });

  it('a second dma_unmap_sg or dma_free_sgt names the first one\'s line', async () => {
    const sg = `dma_map_sg: ${DEV} dir=TO_DEVICE nents=1/1 ents=1/1 dma_addrs={0x3000000} sizes={0x1000} phys_addrs={0x3000000} attrs=`;
    const unsg = `dma_unmap_sg: ${DEV} dir=TO_DEVICE phys_addrs={0x3000000} attrs=`;
    const r = await check(trace(sg, unsg, unsg,
      `dma_alloc_sgt: ${DEV} dir=FROM_DEVICE dma_addr=ffff0000 size=8192 phys_addrs={0x4000000,0x4001000} flags=GFP_KERNEL attrs=`,
      `dma_free_sgt: ${DEV} dir=FROM_DEVICE dma_addr=ffff0000 size=8192 phys_addrs={0x4000000,0x4001000}`,
      `dma_free_sgt: ${DEV} dir=FROM_DEVICE dma_addr=ffff0000 size=8192 phys_addrs={0x4000000,0x4001000}`));
    expect(r.findings.map((f) => f.lines)).toEqual([[5, 4], [8, 7]]);
  });
});
