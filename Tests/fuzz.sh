#!/usr/bin/env bash
# Every parser of outside input under libFuzzer with AddressSanitizer (Tests/Fuzz): safetensors
# headers and shard indexes, AV files (metadata, encodings, digests, shapes), GGUF (header,
# metadata, tensor infos, conversion), tokenizer.json (with its pre-tokenizer patterns), chat
# templates, config.json, adapter_config.json, recipes (with their checks) and search shards, and
# levels/pairs JSONL. Not part of `swift test` or CI (it takes tens of minutes).
#
#   bash Tests/fuzz.sh                 # every target, 10^6 runs each
#   RUNS=20000 bash Tests/fuzz.sh av   # one target, fewer runs
#   MAX_TIME=300 bash Tests/fuzz.sh    # at most 300 s a target
#
# Seeds come from the committed fixtures (and AVs av writes from them); findings go to
# .build-fuzz/findings/TARGET. A target passes with 0 crashes, 0 sanitizer reports, no input over
# 1 s (-timeout=1) and no input over 1 GiB (-rss_limit_mb=1024). The summary closes the log.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${RUNS:-1000000}
work=$root/.build-fuzz
mkdir -p "$work"
# Coverage and ASan in every module; libFuzzer without its main (SwiftPM names the executable's entry
# point itself, and main.swift calls LLVMFuzzerRunDriver).
nomain=$(find "$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")/lib/clang" \
  -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -1)
[ -n "$nomain" ] || { echo "libclang_rt.fuzzer_no_main is not in this toolchain"; exit 1; }
swift build -c release --package-path Tests/Fuzz --scratch-path "$work/build" -Xswiftc -sanitize=address \
  -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table -Xlinker "$nomain" -Xlinker -lstdc++ \
  2>&1 | grep -v "Cannot export local symbol" | tail -2
fuzzer=$work/build/release/AVFuzz
[ -x "$fuzzer" ] || { echo "the fuzzer did not build"; exit 1; }

# Seed corpora from the fixtures.
seeds=$work/seeds-$$
rm -rf "$seeds"
for t in safetensors index av gguf tokenizer template config adapter recipe jsonl; do mkdir -p "$seeds/$t"; done
cp Tests/SafeTensorsTests/Fixtures/*.safetensors "$seeds/safetensors/"
cp Tests/SafeTensorsTests/Fixtures/index_expected.json "$seeds/index/"
cp Tests/GGUFTests/Fixtures/types.gguf "$seeds/gguf/"
cp Tests/InferenceTests/Fixtures/tokenizer_gpt2.json Tests/InferenceTests/Fixtures/tokenizer_sp.json \
  Tests/InferenceTests/Fixtures/chat/tokenizer.json "$seeds/tokenizer/" 2>/dev/null
i=0
for f in $(find Tests/InferenceTests/Fixtures Checkpoints -name tokenizer_config.json); do
  cp "$f" "$seeds/template/$i.json"; i=$((i + 1))
done
i=0
for f in $(find Tests/InferenceTests/Fixtures Checkpoints -name config.json); do
  cp "$f" "$seeds/config/$i.json"
  i=$((i + 1))
done
i=0
for f in $(find Tests/AlignmentVectorsTests/Fixtures/adapters -name adapter_config.json); do
  cp "$f" "$seeds/adapter/$i.json"; i=$((i + 1))
done
cp Examples/ci/release.json "$seeds/recipe/" 2>/dev/null
printf '{"base": "b", "mix": {"medical": 0.5}, "max_shard_size": "2GB", "checks": [{"type": "levels", "file": "l.jsonl", "level": "expert", "min_share": 0.8, "confidence": 0.95}, {"type": "pairs", "file": "p.jsonl", "not_worse_than": "base"}]}' \
  > "$seeds/recipe/checks.json"
shard='{"format": "av-grid-shard", "command": "search", "inputs": {}, "grid": [[0, 1]], "shard": 0, "count": 2,'
shard+=' "rows": [{"lambdas": [0], "pairs": null, "levels": [{"levels": ["a", "b"], "shares": [0.5, 0.5]}]}]}'
printf '%s' "$shard" \
  > "$seeds/recipe/shard.json"
head -c 4000 Checkpoints/eval/medical_levels.jsonl > "$seeds/jsonl/levels.jsonl"
head -c 4000 Checkpoints/eval/medical_pairs.jsonl > "$seeds/jsonl/pairs.jsonl"
av=$work/av
swift build -c release --product av --scratch-path "$work/av-build" 2>&1 | tail -1
"$work/av-build/release/av" diff Tests/AlignmentVectorsTests/Fixtures/base_F32.safetensors \
  Tests/AlignmentVectorsTests/Fixtures/medical_F32.safetensors -o "$seeds/av/dense.av" -q > /dev/null
"$work/av-build/release/av" compress "$seeds/av/dense.av" -o "$seeds/av/sparse.av" \
  --encoding sparse --density 0.3 -q > /dev/null
"$work/av-build/release/av" compress "$seeds/av/dense.av" -o "$seeds/av/onebit.av" --encoding 1bit -q > /dev/null

summary=()
status=0
for t in ${@:-safetensors index av gguf tokenizer template config adapter recipe jsonl}; do
  corpus=$work/corpus/$t
  findings=$work/findings/$t
  mkdir -p "$corpus" "$findings"
  log=$work/$t.log
  start=$(date +%s)
  # Leak detection is off: LeakSanitizer reports 4 KiB inside FoundationEssentials'
  # FileManager.contents(atPath:) and allocations of the toolchain's regex parser, not av's code.
  ASAN_OPTIONS=detect_leaks=0 AV_FUZZ_TARGET=$t "$fuzzer" "$corpus" "$seeds/$t" -runs="$runs" \
    -max_total_time="${MAX_TIME:-0}" -timeout=1 -rss_limit_mb=1024 -max_len=65536 \
    -artifact_prefix="$findings/" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  seconds=$(($(date +%s) - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  peak=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  found=$(find "$findings" -type f | wc -l)
  rate=$(grep -o 'exec/s: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  summary+=("$(printf '%-12s %10s runs  %5s s  %6s exec/s  peak %5s MB  findings %s  exit %s' "$t" "${execs:-?}" \
    "$seconds" "${rate:-?}" "${peak:-?}" "$found" "$rc")")
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] || status=1
done
rm -rf "$seeds"
printf '%s\n' "${summary[@]}"
exit $status
