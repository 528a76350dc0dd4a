#!/usr/bin/env bash
# The measurements Checkpoints/README.md quotes, made by av itself (release build) on this folder.
# Usage: bash Checkpoints/measure.sh [AV] [CHECKPOINTS]   (defaults: .build/release/av, Checkpoints)
set -euo pipefail
av=${1:-.build/release/av}
root=${2:-Checkpoints}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
domains=(medical legal financial)
echo "## vectors"
for d in "${domains[@]}"; do
  "$av" diff "$root/base" "$root/$d-aligned" -o "$work/$d.av" -q | grep -E "change  |exact"
done
echo "## the knob, per domain (its own levels file)"
for d in "${domains[@]}"; do
  "$av" sweep --base "$root/base" --vectors "$work" "--$d" -1:1.5:11 --levels "$d=$root/eval/${d}_levels.jsonl" -q
done
echo "## specificity: each vector at λ = 1, every domain's shares"
for d in "${domains[@]}"; do
  for e in "${domains[@]}"; do
    printf '%s at 1 on %s: ' "$d" "$e"
    "$av" eval --base "$root/base" --vectors "$work" "--$d" 1 --levels "$root/eval/${e}_levels.jsonl" | head -1
  done
done
echo "## fluency: perplexity of the held-out text at λ = 0 and 1.5"
"$av" eval --model "$root/base" --text "$root/eval/heldout.txt"
for d in "${domains[@]}"; do
  printf '%s at 1.5: ' "$d"
  "$av" eval --base "$root/base" --vectors "$work" "--$d" 1.5 --text "$root/eval/heldout.txt"
done
echo "## transfer: the medical vector on base-stage2"
"$av" eval --model "$root/base-stage2" --levels "$root/eval/medical_levels.jsonl" | head -1
"$av" eval --base "$root/base-stage2" --vectors "$work" --medical 1 --transfer --levels "$root/eval/medical_levels.jsonl" | head -1
"$av" eval --model "$root/medical-aligned" --levels "$root/eval/medical_levels.jsonl" | head -1
echo "## prompting baseline: a system prompt instead of a vector"
"$av" eval --model "$root/base" --levels "$root/eval/medical_levels.jsonl" --system "Answer as a medical expert." | head -3
echo "## search: every three-domain profile"
time "$av" search --base "$root/base" --vectors "$work" --all-profiles \
  --levels "medical=$root/eval/medical_levels.jsonl" --levels "legal=$root/eval/legal_levels.jsonl" \
  --levels "financial=$root/eval/financial_levels.jsonl" || true
