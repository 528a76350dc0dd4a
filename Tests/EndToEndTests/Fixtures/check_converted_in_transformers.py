"""Checks that a model directory written by `av convert` loads in transformers and gives the
same logits as transformers' own GGUF loader on the same file.

Run: av convert SmolLM2-135M-Instruct.Q4_1.gguf -o DIR
     python3 check_converted_in_transformers.py SmolLM2-135M-Instruct.Q4_1.gguf DIR   (torch, transformers, gguf, accelerate)
Prints the largest absolute logit difference over a few prompts; exits 1 above 1e-4. Records in
converted_in_transformers.json, beside this script, the SHA-256 of each file of DIR it checked and
the difference it found: SmolLM2Tests converts the GGUF again and requires the same bytes, so CI
(which has no torch) knows that what av convert writes today is what transformers loaded.
"""
import hashlib
import json
import os
import sys

import transformers

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf_path, converted = sys.argv[1], sys.argv[2]
folder, name = os.path.dirname(gguf_path) or ".", os.path.basename(gguf_path)
ref = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
ours = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()
tok_ref = AutoTokenizer.from_pretrained(folder, gguf_file=name)
tok_ours = AutoTokenizer.from_pretrained(converted)
worst = 0.0
for text in ["The capital of France is", "What is a contract?", "def add(a, b):\n    return"]:
    ids_ref, ids_ours = tok_ref(text)["input_ids"], tok_ours(text)["input_ids"]
    assert ids_ref == ids_ours, (text, ids_ref, ids_ours)
    with torch.no_grad():
        a = ref(torch.tensor([ids_ref])).logits
        b = ours(torch.tensor([ids_ours])).logits
    worst = max(worst, float((a - b).abs().max()))
print(f"converted model loads in transformers; token ids equal; max |logit difference| = {worst:.3g}")
files = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
record = {
    "gguf": name,
    "transformers": transformers.__version__,
    "max_logit_difference": worst,
    "sha256": {f: hashlib.sha256(open(os.path.join(converted, f), "rb").read()).hexdigest() for f in files},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "converted_in_transformers.json"), "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
sys.exit(0 if worst <= 1e-4 else 1)
