#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (Node 20 cannot run .ts by itself). `dmasim bench` runs the
// tsc build under plain node instead: tsx's module hooks make V8 add a check to every typed-array
// access (about 15% on the hot paths; see bench/RESULTS.md), which is tsx's cost, not dmasim's.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);

/** The tsc build in .build/, or null when TypeScript is not installed or the build fails. */
function build() {
  let tsc;
  try {
    tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
  } catch {
    return null;
  }
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  return r.status === 0 ? join(root, '.build', 'src', 'cli.js') : null;
}

let r;
const compiled = args[0] === 'bench' ? build() : null;
if (compiled !== null) {
  r = spawnSync(process.execPath, [compiled, ...args], { stdio: 'inherit' });
} else {
  if (args[0] === 'bench') process.stderr.write('dmasim: no tsc build; benchmarking under tsx (slower)\n');
  const tsxCli = join(dirname(require.resolve('tsx/package.json')), 'dist', 'cli.mjs');
  r = spawnSync(process.execPath, [tsxCli, join(root, 'src', 'cli.ts'), ...args], { stdio: 'inherit' });
}
process.exit(r.status ?? 1);
