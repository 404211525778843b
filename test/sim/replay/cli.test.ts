/**
 * Issue 21: what `dmasim replay` says about input that is not a trace, and `dmasim run --ftrace`
 * on a scenario that builds its own machines (they record their trace for it).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine, traceMachinesByDefault, dma_map_single, dma_unmap_single, dma_mapping_error, DMA_TO_DEVICE } from '../../../src/index.ts';
import { traceFtrace } from '../../../src/sim/replay/write.ts';
import { replayTrace } from '../../../src/sim/replay/replay.ts';

const dir = mkdtempSync(join(tmpdir(), 'dmasim-replay-cli-'));
const cli = (cmd: string, ...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', cmd, ...args], { encoding: 'utf8' });

describe('dmasim replay: input that is not a trace', () => {
  it('a binary trace.dat, random bytes, a directory, an --html path with no directory: exit 2 with what to do; an empty trace warns', () => {
    const dat = join(dir, 'trace.dat');
    writeFileSync(dat, Buffer.concat([Buffer.from([0x17, 0x08, 0x44]), Buffer.from('tracing6\0\0\0\0\0\0\0\0')]));
    const a = cli('replay', dat);
    expect(a.status).toBe(2);
    expect(a.stderr).toContain(`trace-cmd report -i ${dat}`);
    const junk = join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)));
    const b = cli('replay', junk);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/has no DMA events .*recorded with -e dma/);
    expect(cli('replay', dir).stderr).toContain('not a file (a directory?)');
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '# tracer: nop\n#\n');
    const c = cli('replay', empty, '--html', join(dir, 'no', 'such', 'r.html'));
    expect(c.status).toBe(2);
    expect(c.stderr).toContain('--html');
    const d = cli('replay', empty);
    expect(d.status).toBe(0);
    expect(d.stderr).toMatch(/has no DMA events/);
  }, 30_000);
});

describe('dmasim run --ftrace on a scenario that builds its own machines', () => {
  it('the machines record their trace for it; replaying it finds the device and its bounce', () => {
    const out = join(dir, 'b32.txt');
    const r = cli('run', 'examples/bounce-32bit.ts', '--ftrace', out);
    expect(r.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/dma_map_phys: dma-engine@ff000000 dir=/);
    expect(text).toMatch(/swiotlb_bounced: dev_name: dma-engine@ff000000 dma_mask=ffffffff/);
    const rep = cli('replay', out);
    expect(rep.status).toBe(0);
    expect(rep.stdout).toContain('devices: dma-engine@ff000000');
  }, 30_000);

  it('traceMachinesByDefault: machines built meanwhile trace unless they say trace: false; each event keeps its CPU', async () => {
    const stop = traceMachinesByDefault();
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const off = new Machine({ memory: '256M', trace: false });
    stop();
    const after = new Machine({ memory: '256M' });
    expect([m.trace.enabled, off.trace.enabled, after.trace.enabled]).toEqual([true, false, false]);
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'cpus', probe() {} });
    for (let cpu = 0; cpu < 2; cpu++) {
      m.currentCpu = cpu;
      const v = m.mm.kmalloc(4096) as number;
      const a = dma_map_single(dev, v, 4096, DMA_TO_DEVICE);
      expect(dma_mapping_error(dev, a)).toBe(0);
      dma_unmap_single(dev, a, 4096, DMA_TO_DEVICE);
    }
    const text = traceFtrace(m);
    expect(text).toMatch(/\[000\] \.{5} +[\d.]+: dma_map_phys/);
    expect(text).toMatch(/\[001\] \.{5} +[\d.]+: dma_map_phys/);
    // Replayed on the same configuration, each map comes from its CPU's IOVA cache: the same addresses.
    const file = join(dir, 'cpus.txt');
    writeFileSync(file, text);
    const r = await replayTrace(file, { iommu: 'strict', machine: { memory: '256M', cpus: 2, iommu: { mode: 'strict', format: 'arm-lpae' } } });
    expect(r.replay!.fidelity.sameAddress).toBe(2);
  });
});
