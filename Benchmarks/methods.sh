#!/usr/bin/env bash
# Merge methods on the Checkpoints family: the all-domain mix (medical, legal, financial at one λ)
# merged linearly, with TIES and with DARE, in memory; for each, the share of answers at each level
# (avoid / generic / expert) per domain and the perplexity of the held-out text. Prints a Markdown
# table (Benchmarks/README.md).
#   AV=.build/release/av bash Benchmarks/methods.sh
set -euo pipefail
cd "$(dirname "$0")/.."
av=${AV:-.build/release/av}
c=Checkpoints
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in medical legal financial; do
  "$av" diff "$c/base" "$c/$d-aligned" -o "$work/$d.av" -q > /dev/null
done
shares() {
  python3 -c '
import json, sys
s = json.load(sys.stdin)["levels"]["shares"]
print("%.0f / %.0f / %.0f" % (100 * s["avoid"], 100 * s["generic"], 100 * s["expert"]))'
}
echo "| method | λ each | medical avoid / generic / expert % | legal | financial | perplexity |"
echo "|---|---:|---|---|---|---:|"
for lambda in 0.5 1; do
  for spec in "linear" "ties --density 0.5" "ties --density 0.5 --no-normalize" "ties --density 0.2 --no-normalize" \
    "dare-ties --density 0.5" "dare-linear --density 0.5"; do
    mix=(--base "$c/base" --vectors "$work" --medical "$lambda" --legal "$lambda" --financial "$lambda" --method $spec)
    row="| $spec | $lambda"
    for d in medical legal financial; do
      row="$row | $("$av" eval "${mix[@]}" --levels "$c/eval/${d}_levels.jsonl" --json | shares)"
    done
    ppl=$("$av" eval "${mix[@]}" --text "$c/eval/heldout.txt" --json \
      | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["text"]["perplexity"])')
    echo "$row | $ppl |"
  done
done
