#!/usr/bin/env bash
# av against llama.cpp's llama-bench at Llama-2-7B's shapes (32 layers, hidden 4096, MLP 11008, vocab
# 32000), bf16 weights, 2 threads, in one window: prompts (pp64; av exact, its default, and with
# activations rounded to bf16 as llama.cpp rounds them), decode (tg16), and the first pass with the
# page cache dropped (cold) and right after (warm); then f32 weights on the same matrices with 8 layers
# (1.9B parameters: a 7B f32 model does not fit 24 GiB). A benchmark tool, never a dependency of av or
# its tests (Benchmarks/README.md, "7B").
#   LLAMA_CPP=/path/to/llama.cpp PYTHON=/path/to/venv/bin/python bash Benchmarks/llama_bench_7b.sh
# LLAMA_CPP is llama.cpp's source with llama-bench and llama-quantize built (see llama_bench.sh);
# PYTHON has numpy (gguf-py comes from LLAMA_CPP). The models (3.6 + 2 × 12.6 GiB) are made once in
# AV_BENCH_DIR (default /tmp/av-bench): synthetic Q4_0 weights (synthetic_gguf.py, seeded) turned into
# the same bf16 weights for both tools (llama-quantize BF16; av convert --dtype bf16). Cold runs
# need root (drop_caches). Both tools map 12.6 GiB on a 24 GiB machine, so each evicts the other's
# pages: every timed figure follows a warm-up in the same process (llama-bench's own; av-bench's
# first pass), and the cold figures are whole first passes.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${AV_BENCH_DIR:-/tmp/av-bench}
av=${AV:-.build/release/av}
bench=${AV_BENCH:-.build/release/av-bench}
llama=${LLAMA_CPP:?set LLAMA_CPP to llama.cpp source}
python=${PYTHON:-python3}
runs=${RUNS:-3}
mkdir -p "$dir"
[ -f "$dir/s7b.gguf" ] || PYTHONPATH="$llama/gguf-py" "$python" Benchmarks/synthetic_gguf.py "$dir/s7b.gguf"
[ -f "$dir/s7b-bf16.gguf" ] ||
  "$llama/build/bin/llama-quantize" --allow-requantize "$dir/s7b.gguf" "$dir/s7b-bf16.gguf" BF16 > /dev/null 2>&1
[ -f "$dir/s7b-bf16/config.json" ] || "$av" convert "$dir/s7b.gguf" -o "$dir/s7b-bf16" --dtype bf16 > /dev/null
[ -f "$dir/s2b.gguf" ] || PYTHONPATH="$llama/gguf-py" "$python" Benchmarks/synthetic_gguf.py "$dir/s2b.gguf" 8
[ -f "$dir/s2b-f32.gguf" ] ||
  "$llama/build/bin/llama-quantize" --allow-requantize "$dir/s2b.gguf" "$dir/s2b-f32.gguf" F32 > /dev/null 2>&1
[ -f "$dir/s2b-f32/config.json" ] || "$av" convert "$dir/s2b.gguf" -o "$dir/s2b-f32" --dtype f32 > /dev/null
gguf=$dir/s7b-bf16.gguf model=$dir/s7b-bf16

cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
llama_bench() { "$llama/build/bin/llama-bench" -m "$gguf" -t 2 -o csv "$@" 2> /dev/null; }

# First passes: llama-bench's whole run of one pp64 without warm-up (load and first pass), and av's
# load and first pass, each cold and then warm.
echo "first pass (s): tool, cold, warm"
for tool in llama av; do
  for state in cold warm; do
    [ "$state" = cold ] && cold
    start=$(date +%s%N)
    if [ "$tool" = llama ]; then
      llama_bench -p 64 -n 0 -r 1 --no-warmup > /dev/null
      echo "$tool $state $((($(date +%s%N) - start) / 1000000)) (ms, the whole run)"
    else
      "$bench" prefill "$model" 64 1 2 |
        sed -E "s/.*load ([0-9.]+) ms, first pass ([0-9.]+) ms.*/$tool $state \1 \2 (ms)/"
    fi
  done
done

# Alternate the tools, one run each per round, so both see the same moments of a noisy machine. The
# page cache is dropped before each run: otherwise the pages a tool faults in are evicted before the
# other tool's (read more often, so on the active list), and its timed passes still read the disk.
out=""
for _ in $(seq "$runs"); do
  cold
  out="$out$(llama_bench -p 64 -n 16 -r 2 | sed 's/^/llama,/')"$'\n'
  cold
  out="$out$("$bench" prefill "$model" 64 3 2 16 | sed 's/^/exact,/')"$'\n'
  out="$out$(AV_BF16_ACTIVATIONS=bf16 "$bench" prefill "$model" 64 3 2 | sed 's/^/rounded,/')"$'\n'
done
# f32 on 1.9B parameters: both tools' pages fit in the page cache together.
for _ in $(seq "$runs"); do
  out="$out$("$llama/build/bin/llama-bench" -m "$dir/s2b-f32.gguf" -t 2 -o csv -p 64 -n 16 -r 2 2> /dev/null \
    | sed 's/^/llama32,/')"$'\n'
  out="$out$("$bench" prefill "$dir/s2b-f32" 64 3 2 16 | sed 's/^/f32,/')"$'\n'
done
"$python" - "$out" <<'PY'
import csv, io, re, statistics, sys
lines = sys.argv[1].splitlines()
def bench(kind):
    text = "\n".join(l[len(kind) + 1:] for l in lines if l.startswith(kind + ","))
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("n_prompt", "").isdigit()]
    return ([float(r["avg_ts"]) for r in rows if int(r["n_prompt"]) > 0],
            [float(r["avg_ts"]) for r in rows if int(r["n_gen"]) > 0])
def rates(kind, pattern):
    return [float(m) for l in lines if l.startswith(kind + ",") for m in re.findall(pattern, l)]
prefill, decode = r"([\d.]+) tokens/s \(load", r"decode: .* ([\d.]+) tokens/s"
pp, tg = bench("llama")
pp32, tg32 = bench("llama32")
def span(v): return "%.1f–%.1f" % (min(v), max(v))
print("| 2 threads, medians of %d rounds | llama.cpp (t/s) | av (t/s) | av / llama.cpp |" % len(pp))
print("|---|---:|---:|---:|")
for name, ours, theirs in (("7B bf16, prefill pp64, exact (default)", rates("exact", prefill), pp),
                           ("7B bf16, prefill pp64, rounded activations", rates("rounded", prefill), pp),
                           ("7B bf16, decode tg16", rates("exact", decode), tg),
                           ("1.9B f32, prefill pp64", rates("f32", prefill), pp32),
                           ("1.9B f32, decode tg16", rates("f32", decode), tg32)):
    ratio = statistics.median(ours) / statistics.median(theirs)
    print("| %s | %s | %s | %.2f |" % (name, span(theirs), span(ours), ratio))
PY
