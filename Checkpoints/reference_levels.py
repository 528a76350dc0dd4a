"""Reference level scores from transformers for a mix of the committed checkpoints.

Mixes base + 0.5·(medical-aligned − base) the way av merge does (the sum in float64, rounded once
to bf16), runs transformers in float32 on those weights, and scores every response of
eval/medical_levels.jsonl as av eval --levels does (mean log-probability per response token, the
prompt and the response tokenized apart). Writes eval/reference_levels.json, which the release
test suite compares with av's in-memory mix and with av's merged model.

Run: python3 Checkpoints/reference_levels.py   (torch, transformers, numpy from pip)
"""
import json
import os

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
LAMBDA = 0.5


def bf16_to_f64(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def round_once_to_bf16(x):
    """float64 → bf16, rounded once to nearest even (round to odd in float32, then to bf16)."""
    f = x.astype(np.float32)
    back = f.astype(np.float64)
    bits = f.view(np.uint32).copy()
    inexact = back != x
    away = np.abs(back) > np.abs(x)
    bits[inexact & away] -= 1
    bits[inexact] |= 1
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def raw_bf16(path):
    """The tensors of a bf16 safetensors file as uint16 arrays (numpy has no bf16)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.uint16).reshape(info["shape"])
    return out


base = raw_bf16(os.path.join(HERE, "base", "model.safetensors"))
aligned = raw_bf16(os.path.join(HERE, "medical-aligned", "model.safetensors"))
model = LlamaForCausalLM.from_pretrained(os.path.join(HERE, "base"), torch_dtype=torch.float32).eval()
state = {}
for name, b in base.items():
    mixed = round_once_to_bf16(bf16_to_f64(b) + LAMBDA * (bf16_to_f64(aligned[name]) - bf16_to_f64(b)))
    state[name] = torch.from_numpy(bf16_to_f64(mixed).astype(np.float32))
if "lm_head.weight" not in state:
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
model.load_state_dict(state, strict=False)
tok = AutoTokenizer.from_pretrained(os.path.join(HERE, "base"))

rows = [json.loads(line) for line in open(os.path.join(HERE, "eval", "medical_levels.jsonl"))]
levels = list(rows[0]["responses"].keys())
scores = []
with torch.no_grad():
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=True)["input_ids"]
        row = []
        for level in levels:
            c = tok(r["responses"][level], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p + c])
            logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
            total = sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(c))
            row.append(total / len(c))
        scores.append(row)
winners = [max(range(len(levels)), key=lambda i: (row[i], -i)) for row in scores]
shares = {level: sum(1 for w in winners if w == i) / len(rows) for i, level in enumerate(levels)}
with open(os.path.join(HERE, "eval", "reference_levels.json"), "w") as f:
    json.dump({"lambda": LAMBDA, "domain": "medical", "levels": levels, "shares": shares, "scores": scores}, f, indent=1)
print("shares", shares)
