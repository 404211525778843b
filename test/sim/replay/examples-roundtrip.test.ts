/**
 * Issue 21: round trips over the examples. The NVMe and RDMA ports run with tracing on, in each
 * backend, clean and with their planted bugs; their trace, written as the kernel's text, is
 * checked offline and replayed on a machine configured the same way: the check finds exactly the
 * machine's own dma-debug reports, and the replay gives the traced DMA addresses and segments.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onMachineCreated, type Machine } from '../../../src/sim/machine.ts';
import { traceFtrace } from '../../../src/sim/replay/write.ts';
import { replayTrace } from '../../../src/sim/replay/replay.ts';
import { runNvmeRead } from '../../../examples/nvme-pci.ts';
import { runUmem } from '../../../examples/rdma-umem.ts';
import type { MachineOptions } from '../../../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'dmasim-exrt-'));
const BACKENDS: Record<string, { traced: Partial<MachineOptions>; replay: { iommu?: 'strict' | 'lazy' | 'off'; swiotlbForce?: boolean } }> = {
  direct: { traced: { swiotlb: false }, replay: { iommu: 'off' } },
  strict: { traced: { iommu: { mode: 'strict' } }, replay: { iommu: 'strict' } },
  lazy: { traced: { iommu: { mode: 'lazy' } }, replay: { iommu: 'lazy' } },
  'swiotlb=force': { traced: { swiotlb: { force: true } }, replay: { swiotlbForce: true } },
};

/** Run `body`, returning the one machine it built (traced). */
function captured(body: () => void): Machine {
  const made: Machine[] = [];
  const stop = onMachineCreated((m) => { made.push(m as Machine); });
  try { body(); } finally { stop(); }
  expect(made.length).toBe(1);
  return made[0] as Machine;
}

const strip = (s: string) => s.replace(/^DMA-API: \S+ \S+: /, '');

async function roundTrip(m: Machine, name: string, replay: object) {
  const file = join(dir, `${name}.txt`);
  writeFileSync(file, traceFtrace(m));
  const r = await replayTrace(file, { ...replay, machine: { memory: '512M' } });
  // The offline check: exactly the machine's own dma-debug reports (less the driver label a trace lacks).
  const own = (m.dmaDebug?.errors ?? []).map((e) => strip(e.text.replace(/\n$/, '')));
  expect(r.findings.filter((f) => f.kind === 'dma-debug').map((f) => strip(f.message))).toEqual(own);
  expect(r.parse.malformed).toBe(0);
  return r;
}

describe('round trips over the examples: run -> ftrace -> check and replay', () => {
  for (const [backend, { traced, replay }] of Object.entries(BACKENDS)) {
    for (const bug of [false, true]) {
      it(`nvme-pci in ${backend}${bug ? ' with the metadata unmap-direction bug' : ''}`, async () => {
        const m = captured(() => { runNvmeRead({ ...traced, trace: true }, { metadataUnmapDir: bug }); });
        const r = await roundTrip(m, `nvme-${backend}-${bug}`, replay);
        if (bug) expect(r.findings.some((f) => /different direction/.test(f.message))).toBe(true);
        else expect(r.findings.filter((f) => f.kind === 'dma-debug')).toEqual([]);
        const rp = r.replay!;
        expect(rp.fidelity.singleMaps).toBeGreaterThan(0); // the metadata buffer
        expect(rp.fidelity.sgMaps).toBeGreaterThan(0); // the data, through blk_rq_map_sg
        expect(rp.stats.failed).toBe(0);
        expect(rp.stats.skipped).toEqual({});
        if (backend !== 'swiotlb=force') {
          expect(rp.fidelity.sameAddress).toBe(rp.fidelity.singleMaps);
          expect(rp.fidelity.sameSegmentAddresses).toBe(rp.fidelity.sgMaps);
        } else {
          // Bounce slots sit where each machine's pool was placed: the segments still match.
          expect(rp.fidelity.sameSegmentLengths).toBe(rp.fidelity.sgMaps);
          expect(rp.fidelity.replayBounces).toBeGreaterThan(0);
        }
      });
    }
    it(`rdma-umem (4 MiB of pinned huge pages) in ${backend}`, async () => {
      const m = captured(() => { runUmem({ ...traced, trace: true }); });
      const r = await roundTrip(m, `umem-${backend}`, replay);
      const rp = r.replay!;
      expect(rp.stats.failed).toBe(0);
      expect(rp.fidelity.sgMaps).toBeGreaterThan(0);
      expect(rp.fidelity.sameSegmentCount).toBe(rp.fidelity.sgMaps);
      expect(rp.fidelity.sameSegmentLengths).toBe(rp.fidelity.sgMaps);
      if (backend !== 'swiotlb=force') expect(rp.fidelity.sameSegmentAddresses).toBe(rp.fidelity.sgMaps);
    });
  }
});
