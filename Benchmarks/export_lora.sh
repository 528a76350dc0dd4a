#!/usr/bin/env bash
# av export-lora on the Checkpoints/ vectors: for ranks 8/32/128 and retained energy 0.5/0.9, the
# adapter's size against the AV's, the share of ‖Δ‖² kept, the KL of the exact mix (base + AV) to
# the mix with the adapter on the held-out prompts, and the preference accuracy and expert share of
# the adapter mix against the exact mix. Prints a Markdown table (Benchmarks/README.md).
#   AV=.build/release/av bash Benchmarks/export_lora.sh
# Other models: bash Benchmarks/export_lora.sh MODELS_DIR DOMAIN... (MODELS_DIR/base and
# MODELS_DIR/DOMAIN-aligned; eval files from Checkpoints/eval; PAIRS_FROM=N keeps pairs from line N on).
set -euo pipefail
# Pairs accuracy and expert share from `av eval --json` on stdin.
accuracy() { python3 -c 'import json,sys; print("%.1f%%" % (100*json.load(sys.stdin)["pairs"]["accuracy"]))'; }
expert() { python3 -c 'import json,sys; print("%.0f%%" % (100*json.load(sys.stdin)["levels"]["shares"]["expert"]))'; }
cd "$(dirname "$0")/.."
av=${AV:-.build/release/av}
models=${1:-Checkpoints}
shift || true
domains=${*:-medical legal financial}
c=Checkpoints
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| domain | adapter | size (AV) | ‖Δ‖² kept | KL mean / max (nats) | pairs acc. (exact) \
| expert share (exact) |"
echo "|---|---|---:|---:|---:|---:|---:|"
for d in $domains; do
  tail -n +"${PAIRS_FROM:-1}" "$c/eval/${d}_pairs.jsonl" > "$work/${d}_pairs.jsonl"
  "$av" diff "$models/base" "$models/$d-aligned" -o "$work/$d.av" -q > /dev/null
  exact=$("$av" eval --base "$models/base" --vector "$work/$d.av=1" --pairs "$work/${d}_pairs.jsonl" \
    --levels "$c/eval/${d}_levels.jsonl" --json)
  exact_acc=$(echo "$exact" | accuracy)
  exact_expert=$(echo "$exact" | expert)
  for spec in "--rank 8" "--rank 32" "--rank 128" "--energy 0.5" "--energy 0.9"; do
    out="$work/$d-${spec// /}"
    report=$("$av" export-lora "$work/$d.av" -o "$out" $spec --base "$models/base" \
      --prompts "$c/eval/prompts.txt" --json)
    line=$(echo "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ranks = [t["rank"] for t in r["tensors"] if t["kind"] == "lora"]
print("%s|%.0f KiB (%.0f KiB)|%.1f%%|%.5f / %.5f" % ("%d–%d" % (min(ranks), max(ranks)), r["adapterBytes"] / 1024,
      r["vectorBytes"] / 1024, 100 * r["retainedEnergy"], r["kl"]["mean"], r["kl"]["max"]))')
    ev=$("$av" eval --model "$models/base" --adapter "$out" --pairs "$work/${d}_pairs.jsonl" \
      --levels "$c/eval/${d}_levels.jsonl" --json)
    acc=$(echo "$ev" | accuracy)
    expert=$(echo "$ev" | expert)
    IFS='|' read -r ranks size kept kl <<< "$line"
    echo "| $d | $spec (r $ranks) | $size | $kept | $kl | $acc ($exact_acc) | $expert ($exact_expert) |"
  done
done
