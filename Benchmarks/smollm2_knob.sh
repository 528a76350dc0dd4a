#!/usr/bin/env bash
# The knob on a real pretrained model, measured with av (docs/knob.md, "The knob on a real pretrained
# model"): the three domain vectors of smollm2_dpo.py's models, then per domain the
# knob (sweep −1 … 4: the vectors are small and stay fluent far past λ = 1), specificity (one
# vector at λ = 1, every domain's shares), fluency (perplexity of the held-out text at λ = 1.5 and 4),
# the prompting baseline, the transfer to a second fine-tuning stage,
# and `search --all-profiles`. Every step prints its time (2 threads).
#   bash Benchmarks/smollm2_knob.sh SMOL OUT
# SMOL: `av convert SmolLM2-135M-Instruct.Q4_1.gguf -o SMOL --dtype f32`; OUT: smollm2_dpo.py's output.
set -euo pipefail
cd "$(dirname "$0")/.."
smol=$1 out=$2
av=${AV:-.build/release/av}
eval_dir=Checkpoints/eval
vectors=$out/vectors
domains="medical legal financial"
step() { echo; echo "\$ $*"; local t=$(date +%s); "$@"; echo "($(($(date +%s) - t)) s)"; }

mkdir -p "$vectors"
for d in $domains; do
  [ -f "$vectors/$d.av" ] || step "$av" diff "$smol" "$out/$d-aligned" -o "$vectors/$d.av"
done
for d in $domains; do
  step "$av" sweep --base "$smol" --vectors "$vectors" --"$d" -1:4:11 --levels "$eval_dir/${d}_levels.jsonl" \
    --threads 2
done
for d in $domains; do
  for other in $domains; do
    step "$av" eval --base "$smol" --vectors "$vectors" --"$d" 1 --levels "$eval_dir/${other}_levels.jsonl" -q
  done
  for lambda in 1.5 4; do
    step "$av" eval --base "$smol" --vectors "$vectors" --"$d" "$lambda" --text "$eval_dir/heldout.txt" -q
  done
done
step "$av" eval --model "$smol" --text "$eval_dir/heldout.txt" -q
for d in $domains; do
  step "$av" eval --model "$smol" --levels "$eval_dir/${d}_levels.jsonl" -q
  step "$av" eval --model "$smol" --levels "$eval_dir/${d}_levels.jsonl" --system "Answer as a $d expert." -q
  step "$av" eval --model "$out/$d-aligned" --levels "$eval_dir/${d}_levels.jsonl" -q
done
step "$av" eval --model "$out/stage2" --levels "$eval_dir/medical_levels.jsonl" -q
step "$av" eval --base "$out/stage2" --vectors "$vectors" --medical 1 --transfer \
  --levels "$eval_dir/medical_levels.jsonl" -q
step "$av" search --base "$smol" --vectors "$vectors" --levels "medical=$eval_dir/medical_levels.jsonl" \
  --levels "legal=$eval_dir/legal_levels.jsonl" --levels "financial=$eval_dir/financial_levels.jsonl" \
  --all-profiles --range -2:4:13 --threads 2 || true  # exit 1: a profile not reached (the table says which)
