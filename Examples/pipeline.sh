#!/usr/bin/env bash
# A release pipeline: compute the alignment vectors once, merge the mix a recipe pins, gate it
# with av check, and keep machine-readable reports. Usage:
#   bash Examples/pipeline.sh BASE MEDICAL_ALIGNED LEGAL_ALIGNED OUT_DIR
# BASE and the aligned models are safetensors files or Hugging Face model directories.
# Exit codes are av's: 0 success, 2 usage, 3 bad input, 4 I/O; the script stops at the first failure.
set -euo pipefail
base=$1 medical=$2 legal=$3 out=$4
av=${AV:-av}
mkdir -p "$out/vectors"

$av diff "$base" "$medical" -o "$out/vectors/medical.av" --json > "$out/diff-medical.json"
$av diff "$base" "$legal" -o "$out/vectors/legal.av" --json > "$out/diff-legal.json"

cat > "$out/release.json" <<JSON
{
  "base": "$(cd "$(dirname "$base")" && pwd)/$(basename "$base")",
  "vectors_dir": "vectors",
  "mix": {"medical": 0.5, "legal": 1.2},
  "output": "merged",
  "checks": [{"type": "finite"}]
}
JSON
$av merge --recipe "$out/release.json" --quiet --json > "$out/merge-report.json"
# The gate: exit 1 (and the script stops) if a check fails. Add pairs, perplexity and KL checks
# for models with a tokenizer (see Examples/ci/release.json).
$av check --recipe "$out/release.json" --model "$out/merged" --report "$out/check-report.json" --junit "$out/check-junit.xml"
$av inspect "$out/merged" --json > "$out/inspect.json"
echo "merged model: $out/merged (reports in $out: diff-*.json, merge-report.json, check-*.{json,xml}, inspect.json)"
