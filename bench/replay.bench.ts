/**
 * Trace replay throughput and memory: `npm run bench replay` (REPLAY_MB=1024 for the 1 GB
 * figure; default 128). Writes a clean synthetic kernel trace of that size to a temporary file
 * (four devices; single maps with syncs, 16-entry scatterlists that merge under an IOMMU, coherent
 * buffers; up to 64 mappings live at once), then streams it through the offline check alone and
 * through the check plus a replay on a strict-IOMMU machine, sampling the process's RSS.
 */
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replayTrace } from '../src/sim/replay/replay.ts';
import type { BenchResult } from './util.ts';

/** Write a synthetic trace of about `bytes` bytes; returns its event count. */
export async function writeTrace(path: string, bytes: number): Promise<number> {
  const out = createWriteStream(path);
  out.write('# tracer: nop\n#\n');
  let t = 0;
  let events = 0;
  let written = 0;
  const hex = (n: number): string => n.toString(16);
  const line = (e: string): string => {
    t++;
    events++;
    return `     kworker/${t % 4}:1-42      [00${t % 4}] d..1. ${(t / 1e6).toFixed(6).padStart(12)}: ${e}\n`;
  };
  // A ring of 64 slots per kind: a slot's mapping is released before it is mapped again.
  for (let i = 0; written < bytes; i++) {
    const dev = `0000:0${(i % 4) + 1}:00.0`;
    const slot = i % 64;
    const phys = 0x10000000 + slot * 0x100000 + (i % 4) * 0x40000;
    const dma = 0xff000000 + slot * 0x10000 + (i % 4) * 0x1000000;
    let text: string;
    if (i % 8 === 7) {
      // A 16-entry sg list of whole pages, merged by the traced IOMMU into one 64 KiB segment.
      const ph = Array.from({ length: 16 }, (_, k) => `0x${hex(phys + k * 0x1000)}`).join(',');
      text = line(`dma_map_sg: ${dev} dir=FROM_DEVICE nents=16/16 ents=1/1 dma_addrs={0x${hex(dma)}} sizes={0x10000} phys_addrs={${ph}} attrs=`)
        // A sync records every entry the driver passes (all 16); the merged ones carry no DMA address.
        + line(`dma_sync_sg_for_cpu: ${dev} dir=FROM_DEVICE dma_addrs={0x${hex(dma)}${',0x0'.repeat(15)}} sizes={0x10000${',0x0'.repeat(15)}}`)
        + line(`dma_unmap_sg: ${dev} dir=FROM_DEVICE phys_addrs={${ph}} attrs=`);
    } else if (i % 32 === 5) {
      text = line(`dma_alloc: ${dev} dir=BIDIRECTIONAL dma_addr=${hex(dma + 0x8000)} size=8192 virt_addr=00000000${hex(0x10000000 + slot)} flags=GFP_KERNEL attrs=`)
        + line(`dma_free: ${dev} dir=BIDIRECTIONAL dma_addr=${hex(dma + 0x8000)} size=8192 virt_addr=00000000${hex(0x10000000 + slot)} attrs=`);
    } else {
      text = line(`dma_map_phys: ${dev} dir=TO_DEVICE dma_addr=${hex(dma)} size=4096 phys_addr=${hex(phys)} attrs=`)
        + line(`dma_sync_single_for_device: ${dev} dir=TO_DEVICE dma_addr=${hex(dma)} size=4096`)
        + line(`dma_unmap_phys: ${dev} dir=TO_DEVICE dma_addr=${hex(dma)} size=4096 attrs=`);
    }
    written += text.length;
    if (!out.write(text)) await new Promise<void>((r) => { out.once('drain', () => r()); });
  }
  await new Promise<void>((r) => { out.end(() => r()); });
  return events;
}

/** Run `fn`, sampling RSS every 50 ms: [ms, peak RSS MiB]. */
async function measured(fn: () => Promise<unknown>): Promise<[number, number]> {
  globalThis.gc?.();
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  return [ms, peak / 2 ** 20];
}

export async function benchReplay(): Promise<BenchResult[]> {
  const mb = Number(process.env['REPLAY_MB'] ?? 128);
  const dir = mkdtempSync(join(tmpdir(), 'dmasim-replay-bench-'));
  const path = join(dir, 'trace.txt');
  try {
    const events = await writeTrace(path, mb * 2 ** 20);
    const size = statSync(path).size;
    const out: BenchResult[] = [{ name: 'trace', value: size / 2 ** 20, unit: 'MiB', note: `${events.toLocaleString('en-US')} events` }];
    let findings = -1;
    const [checkMs, checkRss] = await measured(async () => { findings = (await replayTrace(path)).findings.length; });
    out.push({ name: 'check: events/s', value: Math.round(events / (checkMs / 1000)), unit: 'events/s', note: `${(checkMs / 1000).toFixed(1)} s, ${findings} findings` });
    out.push({ name: 'check: peak RSS', value: Math.round(checkRss), unit: 'MiB' });
    let failed = -1;
    const [replayMs, replayRss] = await measured(async () => { failed = (await replayTrace(path, { iommu: 'strict' })).replay?.stats.failed ?? -1; });
    out.push({ name: 'check + replay on strict IOMMU: events/s', value: Math.round(events / (replayMs / 1000)), unit: 'events/s', note: `${(replayMs / 1000).toFixed(1)} s including the sizing pass, ${failed} failed maps` });
    out.push({ name: 'check + replay: peak RSS', value: Math.round(replayRss), unit: 'MiB' });
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
