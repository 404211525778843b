#!/usr/bin/env node
// The dmasim command. In the published package it runs the compiled CLI (dist/) under plain node;
// in a checkout (src/ present, no DMASIM_DIST=1) it runs the TypeScript CLI through tsx, and
// `dmasim bench` runs the tsc build under plain node instead: tsx's module hooks make V8 add a
// check to every typed-array access (about 15% on the hot paths; see bench/RESULTS.md), which is
// tsx's cost, not dmasim's.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const dist = join(root, 'dist', 'src', 'cli', 'main.js');
const checkout = existsSync(join(root, 'src', 'cli', 'main.ts')) && process.env['DMASIM_DIST'] !== '1';

if (!checkout) {
  // The compiled CLI runs in this process: one module instance for the CLI and the scenarios it loads.
  await import(pathToFileURL(dist).href);
} else {
  /** The tsc build in .build/, or null when TypeScript is not installed or the build fails. */
  const build = () => {
    let tsc;
    try {
      tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
    } catch {
      return null;
    }
    const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
    return r.status === 0 ? join(root, '.build', 'src', 'cli', 'main.js') : null;
  };
  let r;
  const compiled = args[0] === 'bench' ? build() : null;
  if (compiled !== null) {
    r = spawnSync(process.execPath, [compiled, ...args], { stdio: 'inherit' });
  } else {
    if (args[0] === 'bench') process.stderr.write('dmasim: no tsc build; benchmarking under tsx (slower)\n');
    const tsxCli = join(dirname(require.resolve('tsx/package.json')), 'dist', 'cli.mjs');
    r = spawnSync(process.execPath, [tsxCli, join(root, 'src', 'cli', 'main.ts'), ...args], { stdio: 'inherit' });
  }
  process.exit(r.status ?? 1);
}
