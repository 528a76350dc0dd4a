"""llama_bf16/reference_bf16_activations.json: the logits of transformers run in float32 on the bf16
weights (upcast) with every nn.Linear's input rounded to bf16 first, which is what
AV_BF16_ACTIVATIONS=bf16 promises of a prompt (activations rounded as llama.cpp rounds them; the
products of two bf16 values are exact in f32, so only the order of the sums differs).

Run from this folder: python3 make_bf16_activations_reference.py   (torch, transformers)
"""
import json

import torch
from transformers import LlamaForCausalLM

IDS = [1, 17, 42, 5, 88, 23, 61, 9, 33, 70, 4, 55]
model = LlamaForCausalLM.from_pretrained("llama_bf16").float().eval()
rounded = 0


def round_input(module, inputs):
    global rounded
    rounded += 1
    return (inputs[0].to(torch.bfloat16).to(torch.float32),) + inputs[1:]


for m in model.modules():
    if isinstance(m, torch.nn.Linear):
        m.register_forward_pre_hook(round_input)
with torch.no_grad():
    logits = model(torch.tensor([IDS])).logits[0].float()
with open("llama_bf16/reference_bf16_activations.json", "w") as f:
    json.dump({"ids": IDS, "vocab": 96, "logits": [round(float(x), 7) for x in logits.reshape(-1)], "greedy": []}, f)
print(rounded, "products rounded; logit range", float(logits.min()), float(logits.max()))
