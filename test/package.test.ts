/**
 * The package as users get it (issue 16): `npm pack`, unpacked into a scratch project whose
 * dependencies come from this checkout's node_modules (offline), then imported from plain .mjs,
 * typechecked under strict with nodenext and bundler resolution, and run as `dmasim`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
let scratch = '';
let files: string[] = [];

function node(args: string[], cwd = scratch) {
  const env = { ...process.env };
  delete env['LOG_LEVEL'];
  return spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env });
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'dmasim-consumer-'));
  const packs = join(scratch, 'packs');
  mkdirSync(packs);
  // prepack builds dist/ (tsc, declarations with .js imports).
  execFileSync('npm', ['pack', '--pack-destination', packs, '--silent'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const tgz = join(packs, readdirSync(packs)[0] as string);
  files = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  const nm = join(scratch, 'node_modules');
  mkdirSync(nm);
  execFileSync('tar', ['-xzf', tgz, '-C', scratch]);
  execFileSync('mv', [join(scratch, 'package'), join(nm, 'dmasim')]);
  for (const d of readdirSync(join(root, 'node_modules'))) if (d !== 'dmasim') symlinkSync(join(root, 'node_modules', d), join(nm, d));
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
}, 120_000);

afterAll(() => { if (scratch !== '') rmSync(scratch, { recursive: true, force: true }); });

describe('the published package', () => {
  it('carries the compiled library, its types, the CLI and the licence, and nothing of the workshop', () => {
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/index.d.ts');
    expect(files).toContain('dist/src/testing/index.d.ts');
    expect(files).toContain('bin/dmasim.mjs');
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/src/cli/sweep-worker-boot.mjs');
    expect(files).toContain('dist/bench/native/coalesce.c');
    expect(files).toContain('dist/machine.schema.json');
    expect(files.filter((f) => /^(test|\.ci|src|examples)\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('imports from plain .mjs under node (no tsx), dmasim and dmasim/testing', () => {
    writeFileSync(join(scratch, 'use.mjs'), `
import { Machine, DMA_ATTR_REQUIRE_COHERENT, DMA_TO_DEVICE, dma_map_single, dma_mapping_error } from 'dmasim';
import { testMachine, dmaFindings } from 'dmasim/testing';
const { machine, dev } = testMachine();
machine.pci.bind(dev, { name: 'leaky', probe(d) { dma_mapping_error(d, dma_map_single(d, machine.mm.kmalloc(4096), 4096, DMA_TO_DEVICE)); } });
machine.pci.unbind(dev);
console.log(JSON.stringify({ attr: DMA_ATTR_REQUIRE_COHERENT, machine: machine instanceof Machine, kinds: dmaFindings(machine).map((f) => f.kind) }));
`);
    const r = node(['use.mjs']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ attr: 4096, machine: true, kinds: ['leaked-mapping', 'dma-debug'] });
  });

  it('one module instance however it is loaded: require() from CommonJS gets the same Machine class', () => {
    writeFileSync(join(scratch, 'both.cjs'), `
const cjs = require('dmasim');
import('dmasim').then((esm) => console.log(JSON.stringify({ same: cjs.Machine === esm.Machine, testing: require('dmasim/testing').dmaFindings === esm.dmaFindings })));
`);
    const r = node(['both.cjs']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ same: true, testing: true });
  });

  it('publishes the machine-file schema, and the CLI enforces it (exit 2, the JSON path of the field)', () => {
    const { MACHINE_SCHEMA } = JSON.parse(node(['-e', "import('dmasim').then((m) => console.log(JSON.stringify({ MACHINE_SCHEMA: m.MACHINE_SCHEMA })))"]).stdout) as { MACHINE_SCHEMA: unknown };
    const published = JSON.parse(readFileSync(join(scratch, 'node_modules', 'dmasim', 'dist', 'machine.schema.json'), 'utf8')) as unknown;
    expect(published).toEqual(MACHINE_SCHEMA);
    writeFileSync(join(scratch, 'bad.json'), JSON.stringify({ memory: '1G', devices: [{ name: 'nvme', maxSegmentSize: '64K' }] }));
    const bad = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'describe', 'bad.json']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^dmasim: bad\.json: devices\[0\]\.maxSegmentSize: expected a whole number, got "64K" \(-EINVAL\)\n\nusage: dmasim describe/);
    writeFileSync(join(scratch, 'good.json'), JSON.stringify({ $schema: './node_modules/dmasim/dist/machine.schema.json', memory: '2G', iommu: { mode: 'strict' }, devices: [{ name: 'nvme', dmaMask: 64 }] }));
    const good = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'describe', 'good.json']);
    expect(good.stderr).toBe('');
    expect(good.stdout).toContain('iommu: strict (default domain DMA)');
  });

  it('benchmarks coalescing from the package (the compiled code; the native yardstick built in a temporary folder)', () => {
    const r = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'bench', 'coalesce', '--n', '4096', '--layout', 'runs', '--max-segment', '65536', '--mode', 'oneshot', '--json']);
    expect(r.status).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.length).toBe(1);
    expect(rows[0]?.['n']).toBe(4096);
    // Nothing was built or compiled inside the installed package.
    expect(readdirSync(join(scratch, 'node_modules', 'dmasim')).sort()).toEqual(['LICENSE', 'README.md', 'bin', 'dist', 'package.json']);
  }, 120_000);

  for (const [name, opts] of [['nodenext', { module: 'nodenext' }], ['bundler', { module: 'esnext', moduleResolution: 'bundler' }]] as const) {
    it(`typechecks in a consumer's strict tsc (${name} resolution, no allowImportingTsExtensions)`, () => {
      writeFileSync(join(scratch, 'use.ts'), `
import { Machine, DMA_TO_DEVICE, type Device, dma_map_single } from 'dmasim';
import { testMachine, dmaFindings, type DmaFinding } from 'dmasim/testing';
const { machine, dev }: { machine: Machine; dev: Device } = testMachine();
const addr: number = dma_map_single(dev, machine.mm.kmalloc(64)!, 64, DMA_TO_DEVICE);
const f: DmaFinding[] = dmaFindings(machine);
// @ts-expect-error a Machine needs its memory
new Machine({});
console.log(addr, f.length);
`);
      writeFileSync(join(scratch, `tsconfig.${name}.json`), JSON.stringify({
        compilerOptions: { strict: true, target: 'es2022', noEmit: true, lib: ['es2022', 'esnext.disposable'], types: ['node'], ...opts },
        files: ['use.ts'],
      }));
      const r = node([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', `tsconfig.${name}.json`]);
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    }, 120_000);
  }

  it('runs as dmasim: the default scenario, a TypeScript scenario (tsx loaded only then), a sweep of it, help', () => {
    const run = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'run']);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('leak check after unbind: clean');
    writeFileSync(join(scratch, 'scenario.ts'), `import { Machine } from 'dmasim';\nexport default (): string => \`pages \${new Machine({ memory: '64M' }).mm.totalPages}\`;\n`);
    const ts = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'run', 'scenario.ts']);
    expect(ts.stdout.trim()).toBe('pages 16384');
    expect(ts.status).toBe(0);
    const sweep = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'sweep', 'scenario.ts', '--seeds', '1..2', '--format', 'csv']);
    expect(sweep.stderr.includes('Error')).toBe(false);
    expect(sweep.status).toBe(0);
    expect(sweep.stdout.trim().split('\n').length).toBe(3);
    // A scenario whose machine ends with a leak fails the run (exit 1, the finding on stderr): the
    // scenario's dmasim is the CLI's own copy, so its Machines are seen; --allow-findings accepts it.
    writeFileSync(join(scratch, 'leaky.ts'), `import { dma_map_single, DMA_TO_DEVICE } from 'dmasim';\nimport { testMachine } from 'dmasim/testing';\nexport default (): string => { const { machine, dev } = testMachine(); dma_map_single(dev, machine.mm.kmalloc(64)!, 64, DMA_TO_DEVICE); machine.pci.unbind(dev); return 'mapped'; };\n`);
    const leaky = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'run', 'leaky.ts', '--html', 'leaky.html']);
    expect(leaky.status).toBe(1);
    expect(leaky.stdout.trim()).toBe('mapped');
    expect(leaky.stderr).toMatch(/\[leaked-mapping\] mapping still live .*dma_map_single\(DMA_TO_DEVICE\) of 64 bytes/);
    expect(readFileSync(join(scratch, 'leaky.html'), 'utf8')).toMatch(/^<!doctype html>/i);
    expect(node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'run', 'leaky.ts', '--allow-findings']).status).toBe(0);
    // A scenario that imports a second copy of dmasim (the checkout's TypeScript source, not the
    // package): its machines are still judged, so the leak still fails the run.
    writeFileSync(join(scratch, 'other-copy.ts'), `import { dma_map_single, DMA_TO_DEVICE, Machine } from ${JSON.stringify(join(root, 'src', 'index.ts'))};\nexport default (): string => { const m = new Machine({ memory: '64M' }); const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 }); m.pci.bind(dev, { name: 'x', probe() {} }); dma_map_single(dev, m.mm.kmalloc(64)!, 64, DMA_TO_DEVICE); m.pci.unbind(dev); return 'other copy'; };\n`);
    const other = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'run', 'other-copy.ts']);
    expect(other.stdout.trim()).toBe('other copy');
    expect(other.stderr).toContain('[leaked-mapping]');
    expect(other.status).toBe(1);
    const version = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), '--version']);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
    const help = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'help']);
    expect(help.stdout).toMatch(/^usage: dmasim <command>/);
    // A JavaScript scenario's sweep runs without tsx in its workers; a run's --ftrace replays.
    writeFileSync(join(scratch, 'js-scenario.mjs'), `import { Machine } from 'dmasim';\nexport default ({ seed }) => ({ pages: new Machine({ memory: '64M', seed }).mm.totalPages });\n`);
    const jsSweep = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'sweep', 'js-scenario.mjs', '--seeds', '1..2', '--format', 'csv', '--no-progress']);
    expect(jsSweep.status).toBe(0);
    expect(jsSweep.stdout.trim().split('\n').length).toBe(3);
    writeFileSync(join(scratch, 'traced.mjs'), `import { dma_map_single, dma_mapping_error, dma_unmap_single, DMA_TO_DEVICE } from 'dmasim';\nimport { testMachine } from 'dmasim/testing';\nexport default () => { const { machine, dev } = testMachine({ iommu: { mode: 'strict' } }); const v = machine.mm.kmalloc(64); const a = dma_map_single(dev, v, 64, DMA_TO_DEVICE); dma_mapping_error(dev, a); dma_unmap_single(dev, a, 64, DMA_TO_DEVICE); return 'ok'; };\n`);
    expect(node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'run', 'traced.mjs', '--ftrace', 'traced.txt']).status).toBe(0);
    const replayed = node([join('node_modules', 'dmasim', 'bin', 'dmasim.mjs'), 'replay', 'traced.txt', '--iommu', 'strict', '--html', 'replay.html']);
    expect(replayed.status).toBe(0);
    expect(replayed.stdout).toMatch(/single maps at the traced DMA address 1\/1 \(100%\)/);
    expect(readFileSync(join(scratch, 'replay.html'), 'utf8')).toContain('IOVA space taken by live mappings');
    // The library says nothing on its own, even while a driver keeps faulting.
    writeFileSync(join(scratch, 'quiet.mjs'), `import { testMachine } from 'dmasim/testing';\nconst { dev } = testMachine({ iommu: { mode: 'strict' } });\nfor (let i = 0; i < 100; i++) dev.dma.write(0x1000, new Uint8Array(4));\n`);
    const quiet = node(['quiet.mjs']);
    expect(quiet.stdout + quiet.stderr).toBe('');
  }, 120_000);
});
