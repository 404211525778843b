#!/usr/bin/env node
// Build the published package into dist/: tsc (JS, .d.ts, source maps), then the declaration
// files' relative imports from '.ts' to '.js' (tsc rewrites them in JS only), so a consumer's tsc
// resolves them under any moduleResolution without allowImportingTsExtensions.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.dist.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

let files = 0;
(function walk(dir) {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.d.ts')) {
      const src = readFileSync(p, 'utf8');
      const out = src.replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+?)\.ts\2/g, '$1$2$3.js$2');
      if (out !== src) { writeFileSync(p, out); files++; }
    }
  }
})(dist);
// Files tsc does not emit: the sweep worker's boot module (it registers tsx for .ts scenarios, then
// loads the compiled worker) and the C source of the coalescing benchmark's native yardstick.
copyFileSync(join(root, 'bench', 'native', 'coalesce.c'), join(dist, 'bench', 'native', 'coalesce.c'));
writeFileSync(join(dist, 'src', 'cli', 'sweep-worker-boot.mjs'),
  readFileSync(join(root, 'src', 'cli', 'sweep-worker-boot.mjs'), 'utf8').replace("'./sweep-worker.ts'", "'./sweep-worker.js'"));
// The machine-file schema as a JSON file, for editors ("$schema") and other tools: written from the
// compiled module, so the published file and the check the CLI runs are the same document.
const { MACHINE_SCHEMA } = await import(new URL(`file://${join(dist, 'src', 'sim', 'machine-schema.js')}`).href);
writeFileSync(join(dist, 'machine.schema.json'), `${JSON.stringify(MACHINE_SCHEMA, null, 2)}\n`);
process.stdout.write(`dist: built; ${files} declaration files' imports rewritten to .js\n`);
