#!/usr/bin/env bash
# Sparse and 1-bit AVs against the exact dense one: for each domain, the size against dense f32
# and bf16 AVs, the share of ‖Δ‖² kept, the KL of the encoded mix (base + Δ̂, λ = 1) to the exact
# mix on the prompts, and pairs accuracy and expert share against the exact mix's. Prints a
# Markdown table (Benchmarks/README.md).
#   AV=.build/release/av bash Benchmarks/encodings.sh
# Other models: bash Benchmarks/encodings.sh MODELS_DIR DOMAIN... (MODELS_DIR/base and
# MODELS_DIR/DOMAIN-aligned; eval files from Checkpoints/eval; PAIRS_FROM=N keeps pairs from line N on).
set -euo pipefail
cd "$(dirname "$0")/.."
av=${AV:-.build/release/av}
models=${1:-Checkpoints}
shift || true
domains=${*:-medical legal financial}
c=Checkpoints
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kib() { echo $(( $(stat -c %s "$1") / 1024 )); }
# "accuracy|expert share|KL mean|KL max" from `av eval --json` on stdin.
scores() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
kl = r.get("kl", {"mean": 0, "max": 0})
print("%.1f%%|%.0f%%|%.5f|%.5f" % (100 * r["pairs"]["accuracy"], 100 * r["levels"]["shares"]["expert"], kl["mean"],
      kl["max"]))'
}
echo "| domain | encoding | size | of f32 / bf16 AV | ‖Δ‖² kept | ‖Δ−Δ̂‖/‖Δ‖ | KL mean / max (nats) | pairs acc. \
| expert share |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for d in $domains; do
  tail -n +"${PAIRS_FROM:-1}" "$c/eval/${d}_pairs.jsonl" > "$work/${d}_pairs.jsonl"
  "$av" diff "$models/base" "$models/$d-aligned" -o "$work/$d.av" -q > /dev/null
  "$av" diff "$models/base" "$models/$d-aligned" -o "$work/$d-bf16.av" --dtype bf16 -q > /dev/null
  "$av" merge --base "$models/base" --vector "$work/$d.av=1" -o "$work/$d-exact" -q > /dev/null
  f32=$(kib "$work/$d.av")
  bf16=$(kib "$work/$d-bf16.av")
  IFS='|' read -r acc expert _ _ <<< "$("$av" eval --base "$models/base" --vector "$work/$d.av=1" \
    --pairs "$work/${d}_pairs.jsonl" --levels "$c/eval/${d}_levels.jsonl" --json | scores)"
  echo "| $d | dense f32 (exact) | $f32 KiB | 100% / $(( 100 * f32 / bf16 ))% | 100% | 0 | 0 | $acc | $expert |"
  for spec in "sparse --density 0.05" "sparse --density 0.1" "sparse --density 0.3" \
    "sparse --density 0.1 --rescale" "sparse --density 0.1 --dtype bf16" "1bit" "1bit --scale matrix"; do
    out="$work/$d-${spec// /}.av"
    kept=$("$av" compress "$work/$d.av" -o "$out" --encoding $spec --json \
      | python3 -c 'import json,sys; r = json.load(sys.stdin)
print("%.1f%% | %.3f" % (100 * r["kept"], r["relativeError"]))')
    size=$(kib "$out")
    IFS='|' read -r acc expert klmean klmax <<< "$("$av" eval --base "$models/base" --vector "$out=1" \
      --pairs "$work/${d}_pairs.jsonl" --levels "$c/eval/${d}_levels.jsonl" --kl-to "$work/$d-exact" \
      --prompts "$c/eval/prompts.txt" --json | scores)"
    echo "| $d | $spec | $size KiB | $(( 100 * size / f32 ))% / $(( 100 * size / bf16 ))% | $kept |" \
      "$klmean / $klmax | $acc | $expert |"
  done
done
