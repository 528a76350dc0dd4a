#!/usr/bin/env bash
# av search split over a Slurm job array: `sbatch --array=0-7 slurm-array.sh`, then, when every task
# has finished, `COLLECT=1 bash slurm-array.sh` combines the shards into the unsharded result.
#SBATCH --job-name=av-search
#SBATCH --cpus-per-task=8
#SBATCH --output=logs/av-search-%a.out
set -euo pipefail
flags=(--base models/base --vectors vectors
       --levels medical=eval/medical_levels.jsonl --levels legal=eval/legal_levels.jsonl
       --levels financial=eval/financial_levels.jsonl --all-profiles --strategy grid --range -2:2:9)
mkdir -p shards
if [ -n "${COLLECT:-}" ]; then
  av search "${flags[@]}" --collect shards --json > search.json
else
  count=$(( ${SLURM_ARRAY_TASK_MAX:-0} + 1 ))
  av search "${flags[@]}" --threads "${SLURM_CPUS_PER_TASK:-1}" \
    --shard "${SLURM_ARRAY_TASK_ID}/${count}" -o "shards/shard-${SLURM_ARRAY_TASK_ID}.json"
fi
