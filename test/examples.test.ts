import { describe, expect, it } from 'vitest';
import { defaultScenario } from '../src/sim/scenarios.ts';
import leakAtUnbind from '../examples/leak-at-unbind.ts';
import rustSgtableFlow from '../examples/rust-sgtable-flow.ts';
import virtiofsSwiotlb from '../examples/virtiofs-swiotlb.ts';
import lazyUseAfterUnmap from '../examples/lazy-use-after-unmap.ts';
import bounce32bit from '../examples/bounce-32bit.ts';
import nvmePci, { runNvmeRead } from '../examples/nvme-pci.ts';
import rdmaUmem, { runUmem } from '../examples/rdma-umem.ts';
import { PRESETS, buildMachine } from '../src/index.ts';

describe('examples and the default scenario', () => {
  it('the default scenario merges segments, verifies the bytes and ends clean', () => {
    const r = defaultScenario(1);
    expect(r.bytesVerified).toBe(true);
    expect(r.dmaSegments).toBeLessThan(r.cpuEntries);
    expect(r.faults).toBe(0);
    expect(r.dmaDebugErrors).toBe(0);
    expect(r.leaks).toBe(0);
    expect(r.accessViolations).toBe(0);
    expect(r.report).toContain('DMA segments after IOMMU merging');
    expect(r.report).toContain('leak check after unbind: clean');
  });

  it('leak-at-unbind: dma-debug names the bus in the leak report; the ledger names the call', () => {
    const out = leakAtUnbind();
    expect(out).toMatch(/^DMA-API: pci 0000:05:00\.0: device driver has pending DMA allocations while released from device \[count=1\]/);
    expect(out).toMatch(/\n\[leaked-mapping\] mapping still live after 0000:05:00\.0 was unbound at t=0 ns: dma_map_sgtable\(DMA_TO_DEVICE\) of 65536 bytes/);
  });

  it('rust-sgtable-flow: segments, then unbind revokes the table', () => {
    const out = rustSgtableFlow();
    expect(out).toMatch(/\d+ CPU entries, \d+ DMA segments:/);
    expect(out).toContain('after unbind: SGTable::iter: the DMA mapping was revoked when the device was unbound');
    expect(out).toContain('audit: clean');
  });

  it('virtiofs-swiotlb: 1 MiB at once fails with the kernel message; 256 KiB pieces work', () => {
    const out = virtiofsSwiotlb();
    expect(out).toContain('map 1 MiB at once: DMA_MAPPING_ERROR');
    expect(out).toMatch(/swiotlb buffer is full \(sz: 1048576 bytes\)/);
    expect(out).toContain('4 of 4 pieces mapped');
  });

  it('lazy-use-after-unmap: the stale write goes through, the detector names the unmap', () => {
    const out = lazyUseAfterUnmap();
    expect(out).toContain('went through (stale IOTLB entry)');
    expect(out).toContain('faulted (unmapped)');
    expect(out).toMatch(/detector: stale-iotlb write by 0000:02:00\.0 .* unmapped by dma_unmap_page .*\(lazy\)/);
  });

  it('bounce-32bit: the device works on a bounce slot; copies at map and unmap', () => {
    const out = bounce32bit();
    expect(out).toContain('above 4 GiB: true');
    expect(out).toContain('a swiotlb bounce slot');
    expect(out).toContain('device read 42');
    expect(out).toContain('CPU sees 42 before unmap, 7 after');
  });

  describe('nvme-pci: the data path port over blk_rq_map_sg, dma_map_sgtable and dma pools', () => {
    const backends = [
      ['dma-direct', {}], ['IOMMU strict', { iommu: { mode: 'strict' as const } }], ['IOMMU lazy', { iommu: { mode: 'lazy' as const } }],
      ['swiotlb=force', { swiotlb: { size: '16M', force: true } }],
    ] as const;
    for (const [name, opts] of backends) {
      it(`${name}: the correct driver reads the right bytes with PRPs and with an SGL, no findings`, () => {
        for (const sgl of [false, true]) {
          const r = runNvmeRead(opts, {}, sgl);
          expect(r.status).toBe(0);
          expect(r.dataCorrect).toBe(true);
          expect(r.findings).toEqual([]);
        }
      });
      it(`${name}: planted b8f6446b6853 (metadata unmapped with rq_data_dir) is dma-debug's direction report`, () => {
        const r = runNvmeRead(opts, { metadataUnmapDir: true });
        expect(r.findings.map((f) => f.message).join('\n')).toContain('frees DMA memory with different direction');
      });
    }
    it('planted 3d2d861eb03e (no dma_set_min_align_mask) under swiotlb=force: wrong data and a device write outside the mapping', () => {
      const r = runNvmeRead({ swiotlb: { size: '16M', force: true } }, { noMinAlignMask: true });
      expect(r.dataCorrect).toBe(false);
      expect(r.findings.map((f) => f.kind)).toContain('access-unmapped');
      expect(nvmePci()).toContain('without it (the bug)');
    });
  });

  describe('rdma-umem: ib_umem_get on pinned user pages with the chunked append builder', () => {
    const backends = [
      ['dma-direct', {}], ['IOMMU strict', { iommu: { mode: 'strict' as const } }], ['IOMMU lazy', { iommu: { mode: 'lazy' as const } }],
      ['swiotlb=force', { swiotlb: { size: '16M', force: true } }],
    ] as const;
    for (const [name, opts] of backends) {
      it(`${name}: the correct driver registers and releases 4 MiB of huge pages clean, and its error path leaks nothing`, () => {
        const r = runUmem(opts);
        expect(r.ret).toBe(0);
        expect(r.entries).toBe(64); // 64 KiB segments over 2 MiB folios
        expect(r.findings).toEqual([]);
        expect(r.pinnedVm).toBe(0);
        const failed = runUmem(opts, {}, { failAppend: 3, size: 8 << 20, maxSeg: 4096 });
        expect(failed.ret).toBe(-12);
        expect(failed.findings).toEqual([]);
        expect(failed.pinnedVm).toBe(0);
      });
      it(`${name}: planted, the error path forgets the chunk it pinned: leaked-pin`, () => {
        const r = runUmem(opts, { leakPinsOnError: true }, { failAppend: 3, size: 8 << 20, maxSeg: 4096 });
        expect(r.findings.map((f) => f.kind)).toContain('leaked-pin');
      });
      it(`${name}: planted, UINT_MAX segments for a 64 KiB device: dma-debug's report, or a registration that fails`, () => {
        const r = runUmem(opts, { uintMaxSegment: true });
        const reported = r.findings.some((f) => f.message.includes('mapping sg segment longer than device claims to support'));
        expect(reported || r.ret !== 0).toBe(true);
      });
    }
    it('past RLIMIT_MEMLOCK: -ENOMEM with pinned_vm rolled back; ib_umem_find_best_pgsz picks 2 MiB for an aligned huge buffer', () => {
      const r = runUmem({}, {}, { rlimit: 1 << 20 });
      expect(r.ret).toBe(-12);
      expect(r.pinnedVm).toBe(0);
      expect(runUmem({ iommu: { mode: 'strict' } }).bestPgsz).toBe(2 << 20);
      expect(rdmaUmem()).toContain('leaked-pin finding(s)');
    });
  });

  it('every preset builds and audits clean', () => {
    for (const [name, cfg] of Object.entries(PRESETS)) {
      const { machine } = buildMachine(cfg);
      expect(machine.audit(), name).toEqual([]);
    }
  });
});

describe('dmasim run: exit codes', () => {
  const run = async (...args: string[]) => {
    const { spawnSync } = await import('node:child_process');
    return spawnSync(process.execPath, ['bin/dmasim.mjs', 'run', ...args], { encoding: 'utf8' });
  };

  it('a scenario whose machine ends with findings exits 1 and prints them; --allow-findings exits 0', async () => {
    const leak = await run('examples/leak-at-unbind.ts');
    expect(leak.status).toBe(1);
    expect(leak.stderr).toMatch(/machine m\d+ ends with 2 finding\(s\):\n {2}\[leaked-mapping\] mapping still live after 0000:05:00\.0/);
    expect((await run('examples/leak-at-unbind.ts', '--allow-findings')).status).toBe(0);
  }, 60_000);

  it('a clean scenario exits 0 and writes the pictures and traces of the machine it made', async () => {
    const { existsSync, mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-run-'));
    const r = await run('examples/bounce-32bit.ts', '--html', join(dir, 'r.html'), '--jsonl', join(dir, 't.jsonl'));
    // The example builds its machine without a trace option: for these outputs it records one.
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, 'r.html'), 'utf8')).toContain('examples/bounce-32bit.ts');
    expect(existsSync(join(dir, 't.jsonl'))).toBe(true);
    expect(readFileSync(join(dir, 't.jsonl'), 'utf8')).toMatch(/"msg":"dma_map_phys"/);
  }, 60_000);

  it('a scenario that is not one, or an output path that cannot be written, is bad usage (2) before anything runs', async () => {
    const { mkdtempSync, writeFileSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-usage-'));
    writeFileSync(join(dir, 'num.mjs'), 'export default 42;\n');
    const num = await run(join(dir, 'num.mjs'));
    expect(num.status).toBe(2);
    expect(num.stderr).toContain('is a number; a scenario exports a function');
    expect((await run(dir)).stderr).toContain('is not a scenario module');
    writeFileSync(join(dir, 'm.json'), '{}');
    expect((await run(join(dir, 'm.json'))).status).toBe(2);
    writeFileSync(join(dir, 'mark.mjs'), `import { writeFileSync } from 'node:fs';\nexport default () => { writeFileSync(${JSON.stringify(join(dir, 'ran'))}, '1'); return 'ran'; };\n`);
    const html = await run(join(dir, 'mark.mjs'), '--html', join(dir, 'no', 'such', 'x.html'));
    expect(html.status).toBe(2);
    expect(html.stderr).toMatch(/--html .*: no directory/);
    expect(html.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  }, 60_000);

  it('the HTML report of a scenario with findings lists them', async () => {
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-leakhtml-'));
    const r = await run('examples/leak-at-unbind.ts', '--html', join(dir, 'leak.html'), '--allow-findings');
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, 'leak.html'), 'utf8')).toMatch(/findings \(2\):[\s\S]*leaked-mapping/);
  }, 60_000);

  it('bad usage exits 2 with run\'s own usage', async () => {
    const r = await run('--bogus');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("Unknown option '--bogus'");
    expect(r.stderr).toContain('usage: dmasim run');
    const missing = await run('no-such-file.ts');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('no scenario file no-such-file.ts');
  }, 60_000);
});

describe('dmasim describe', () => {
  it('describes a preset and a JSON machine', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(process.execPath, ['bin/dmasim.mjs', 'describe', 'laptop-nvme-vtd'], { encoding: 'utf8' });
    expect(out).toContain('pci 0000:02:00.0: dma_mask 0xffffffffffffffff');
    expect(out).toContain('untrusted, iommu group 1 (DMA)');
    expect(out).toMatch(/lazy: unmapped memory stays reachable for up to 10 ms/);
  });
});

describe('dmasim bench coalesce', () => {
  it('builds with tsc and benchmarks the compiled code under plain node', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(process.execPath, [
      'bin/dmasim.mjs', 'bench', 'coalesce', '--n', '4096', '--layout', 'runs', '--max-segment', '65536', '--mode', 'oneshot', '--no-native', '--json',
    ], { encoding: 'utf8' });
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { n: number; layout: string; nents: number; nsPerPage: number });
    expect(rows).toHaveLength(1);
    // The anchor's runs layout: 469 entries from 4096 pages (bench/RESULTS.md, the native yardstick agrees).
    expect(rows[0]).toMatchObject({ n: 4096, layout: 'runs', nents: 469 });
    expect(rows[0]?.nsPerPage).toBeGreaterThan(0);
  }, 60_000);
});

describe('CLI details a new user tripped on', () => {
  const cli = async (...args: string[]) => {
    const { spawnSync } = await import('node:child_process');
    return spawnSync(process.execPath, ['bin/dmasim.mjs', ...args], { encoding: 'utf8' });
  };

  it('help <command> prints that command\'s usage; bench --help is help, not an unknown benchmark', async () => {
    expect((await cli('help', 'run')).stdout).toMatch(/^usage: dmasim run/);
    expect((await cli('help', 'describe')).stdout).toMatch(/^usage: dmasim describe/);
    const bench = await cli('bench', '--help');
    expect(bench.status).toBe(0);
    expect(bench.stdout).toMatch(/^usage: dmasim bench coalesce/);
    expect((await cli('help', 'nope')).status).toBe(2);
  }, 60_000);

  it('bench coalesce takes hex (as kernel people write it), refuses below PAGE_SIZE, and runs a repeated value once', async () => {
    const r = await cli('bench', 'coalesce', '--n', '0x1000', '--layout', 'runs', '--layout', 'runs', '--max-segment', '0x10000', '--mode', 'oneshot', '--no-native', '--json');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').length).toBe(1);
    const small = await cli('bench', 'coalesce', '--max-segment', '100');
    expect(small.status).toBe(2);
    expect(small.stderr).toContain('[4096 (PAGE_SIZE), UINT_MAX]');
  }, 60_000);
});
