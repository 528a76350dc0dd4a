#!/usr/bin/env bash
# The library's three steps on the small test checkpoints, from the shell: compute two alignment
# vectors, mix them into the base, and look at the result. Run from the repository root:
#     bash Examples/quickstart.sh
# (`av demo` runs the fuller story on the trained model family in Checkpoints/.)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product av >/dev/null
av=.build/release/av
models=Tests/AlignmentVectorsTests/Fixtures
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== av diff: the medical and legal alignment vectors"
$av diff "$models/base_BF16.safetensors" "$models/medical_BF16.safetensors" -o "$out/medical.av" --top 3
echo
$av diff "$models/base_BF16.safetensors" "$models/legal_BF16.safetensors" -o "$out/legal.av" --top 3
echo
echo "== av merge: base + 0.5 medical + 1.2 legal"
$av merge --base "$models/base_BF16.safetensors" --vectors "$out" --medical 0.5 --legal 1.2 -o "$out/merged.safetensors"
echo
echo "== av inspect: the merged model and its provenance"
$av inspect "$out/merged.safetensors"
