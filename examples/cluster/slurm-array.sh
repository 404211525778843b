#!/bin/bash
# A dmasim sweep as a Slurm job array: each of the 4 tasks runs one shard of the 8 jobs (seeds 1..4
# x two fragmentation levels). `--shard auto` reads SLURM_ARRAY_TASK_ID within
# SLURM_ARRAY_TASK_MIN..MAX (this array is 1-based). `--resume` lets a requeued task keep its rows.
# Submit: sbatch examples/cluster/slurm-array.sh; afterwards: npx dmasim merge results/part-*.jsonl --out all.jsonl
# test/cli/cluster.test.ts runs these shard commands locally with the environment Slurm sets.
#SBATCH --job-name=dmasim-sweep
#SBATCH --array=1-4
#SBATCH --cpus-per-task=2
#SBATCH --time=00:30:00
mkdir -p results
npx dmasim sweep examples/fragmentation-sweep.ts --seeds 1..4 --param level=0.2,0.8 --shard auto --out results/part-${SLURM_ARRAY_TASK_ID}.jsonl --resume
