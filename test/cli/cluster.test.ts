/**
 * The cluster examples stay true: their shard commands, run locally with the environment Kubernetes
 * and Slurm give each task, together produce exactly the unsharded sweep.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Run a command line's dmasim invocation here: `npx dmasim` becomes this checkout's CLI. */
function runDmasim(argv: string[], env: Record<string, string>, cwd = process.cwd()) {
  const i = argv.indexOf('dmasim');
  return spawnSync(process.execPath, [join(process.cwd(), 'bin/dmasim.mjs'), ...argv.slice(i + 1)], { encoding: 'utf8', cwd, env: { ...process.env, ...env } });
}

function rowsOf(files: string[]): Array<{ index: number; result: unknown }> {
  return files.flatMap((f) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; result: unknown }));
}

describe('examples/cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmasim-cluster-'));
  const whole = runDmasim(['npx', 'dmasim', 'sweep', 'examples/fragmentation-sweep.ts', '--seeds', '1..4', '--param', 'level=0.2,0.8', '--workers', '2'], {});
  const expected = whole.stdout.trim().split('\n').map((l) => JSON.parse(l) as { index: number; result: unknown }).sort((a, b) => a.index - b.index).map((r) => [r.index, r.result]);

  it('the Kubernetes Indexed Job: every index\'s command, merged, is the whole sweep', () => {
    const yaml = readFileSync('examples/cluster/k8s-indexed-job.yaml', 'utf8');
    const completions = Number(/^\s*completions:\s*(\d+)/m.exec(yaml)?.[1]);
    expect(yaml).toMatch(/completionMode:\s*Indexed/);
    expect(Number(/name:\s*JOB_COMPLETIONS\s*\n\s*value:\s*"(\d+)"/.exec(yaml)?.[1])).toBe(completions);
    const command = JSON.parse(/command:\s*(\[.*\])/.exec(yaml)?.[1] ?? '[]') as string[];
    const parts: string[] = [];
    for (let i = 0; i < completions; i++) {
      // Kubernetes expands $(VAR) from the container's environment; the results volume is a temp dir here.
      const argv = command.map((a) => a.replace('$(JOB_COMPLETION_INDEX)', String(i)).replace('/results', dir));
      const r = runDmasim(argv, { JOB_COMPLETION_INDEX: String(i), JOB_COMPLETIONS: String(completions) });
      expect(r.status, r.stderr).toBe(0);
      parts.push(join(dir, `part-${i}.jsonl`));
    }
    const merged = runDmasim(['npx', 'dmasim', 'merge', ...parts], {});
    expect(merged.status).toBe(0);
    expect(merged.stdout.trim().split('\n').map((l) => JSON.parse(l) as { index: number; result: unknown }).map((r) => [r.index, r.result])).toEqual(expected);
    expect(rowsOf(parts)).toHaveLength(expected.length); // the shards partition the jobs
  }, 120_000);

  it('the Slurm array: every task\'s command, merged, is the whole sweep', () => {
    const sh = readFileSync('examples/cluster/slurm-array.sh', 'utf8');
    const [lo, hi] = (/^#SBATCH --array=(\d+)-(\d+)/m.exec(sh) ?? []).slice(1).map(Number) as [number, number];
    const line = sh.split('\n').find((l) => l.startsWith('npx dmasim sweep')) as string;
    const work = mkdtempSync(join(tmpdir(), 'dmasim-slurm-'));
    spawnSync('mkdir', ['-p', join(work, 'results')]);
    const parts: string[] = [];
    for (let id = lo; id <= hi; id++) {
      const argv = line.replace('${SLURM_ARRAY_TASK_ID}', String(id)).replace('examples/', `${process.cwd()}/examples/`).split(/\s+/);
      const r = runDmasim(argv, { SLURM_ARRAY_TASK_ID: String(id), SLURM_ARRAY_TASK_MIN: String(lo), SLURM_ARRAY_TASK_MAX: String(hi), SLURM_ARRAY_TASK_COUNT: String(hi - lo + 1) }, work);
      expect(r.status, r.stderr).toBe(0);
      parts.push(join(work, 'results', `part-${id}.jsonl`));
    }
    const merged = runDmasim(['npx', 'dmasim', 'merge', ...parts], {});
    expect(merged.status).toBe(0);
    expect(merged.stdout.trim().split('\n').map((l) => JSON.parse(l) as { index: number; result: unknown }).map((r) => [r.index, r.result])).toEqual(expected);
  }, 120_000);
});
