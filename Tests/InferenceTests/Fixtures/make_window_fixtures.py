"""Fixtures for what make_model_fixtures.py left untested, with transformers' logits:

- mistral_window/: a tiny Mistral with sliding_window = 4, run on 12 tokens (eager attention, which
  applies the window), so positions past the window really attend to only 4 tokens;
- llama_bf16/reference_f32.json and llama_f16/reference_f32.json: transformers run in float32 on
  the half-precision weights (upcast), which is what av computes, so those logits can be compared
  as tightly as the f32 model's (1e-4 of the range) instead of within the half precision.

Run: python3 make_window_fixtures.py   (torch, transformers from pip; not needed by the tests)
"""
import json
import os
import shutil

import torch
from transformers import LlamaForCausalLM, MistralConfig, MistralForCausalLM

torch.manual_seed(4321)
IDS = [1, 17, 42, 5, 88, 23, 61, 9, 33, 70, 4, 55]

cfg = MistralConfig(vocab_size=96, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                    sliding_window=4, attn_implementation="eager")
model = MistralForCausalLM(cfg).eval()
with torch.no_grad():
    for p in model.parameters():
        p.mul_(4.0 if p.dim() > 1 else 1.0)
if os.path.exists("mistral_window"):
    shutil.rmtree("mistral_window")
model.save_pretrained("mistral_window", safe_serialization=True)
with torch.no_grad():
    logits = model(torch.tensor([IDS])).logits[0].float()
    # The same model without the window, to show the window changes the logits.
    cfg_full = MistralConfig(**{**cfg.to_dict(), "sliding_window": None})
    full = MistralForCausalLM(cfg_full).eval()
    full.load_state_dict(model.state_dict())
    unwindowed = full(torch.tensor([IDS])).logits[0].float()
    ids = list(IDS)
    for _ in range(12):  # greedy by full passes (no cache), the window applied each time
        ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
ref = {"ids": IDS, "vocab": cfg.vocab_size, "logits": [round(float(x), 7) for x in logits.reshape(-1)], "greedy": ids[len(IDS):]}
with open("mistral_window/reference.json", "w") as f:
    json.dump(ref, f)
if os.path.exists("mistral_window/generation_config.json"):
    os.remove("mistral_window/generation_config.json")
print("window changes the logits by", float((logits - unwindowed).abs().max()))

for name in ["llama_bf16", "llama_f16"]:
    half = LlamaForCausalLM.from_pretrained(name).float().eval()
    with torch.no_grad():
        logits = half(torch.tensor([IDS])).logits[0].float()
    with open(os.path.join(name, "reference_f32.json"), "w") as f:
        json.dump({"ids": IDS, "vocab": 96, "logits": [round(float(x), 7) for x in logits.reshape(-1)], "greedy": []}, f)
    print(name, "logit range", float(logits.min()), float(logits.max()))
