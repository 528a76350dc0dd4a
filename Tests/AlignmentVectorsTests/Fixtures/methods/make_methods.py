"""Makes the merge-method fixtures: a tiny f32 Llama base, three fine-tunes of it with conflicting
signs, and mergekit's TIES and Model Breadcrumbs merges of them (mergekit-yaml, mergekit 0.1.5, dtype float32).

Run from this folder with torch, transformers, safetensors and mergekit installed (a venv outside
the repository); the tests read only the files it writes.
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)

config = LlamaConfig(
    hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
    vocab_size=64, max_position_embeddings=64, tie_word_embeddings=False, architectures=["LlamaForCausalLM"],
)


def save(path, tensors):
    os.makedirs(path, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(path, "config.json"), "w") as f:
        f.write(config.to_json_string())


base = {k: v.float().clone() for k, v in LlamaForCausalLM(config).state_dict().items()}
save(os.path.join(HERE, "base"), base)
# Three fine-tunes: dense changes of different scales; many elements disagree in sign.
for i, scale in enumerate([0.02, 0.03, 0.015]):
    tuned = {k: v + scale * torch.randn_like(v) for k, v in base.items()}
    save(os.path.join(HERE, f"tuned{i}"), tuned)

MERGES = {
    "ties": {"density": 0.5, "normalize": None},
    "ties-raw": {"density": 0.3, "normalize": False},
    "breadcrumbs": {"method": "breadcrumbs", "density": 0.6, "gamma": 0.05, "normalize": None},
    "breadcrumbs-ties": {"method": "breadcrumbs_ties", "density": 0.5, "gamma": 0.1, "normalize": None},
    "model-stock": {"method": "model_stock"},
    "sce": {"method": "sce", "params": {"select_topk": 0.5}},
    "nuslerp": {"method": "nuslerp", "models": [0, 1], "weighted": True},
    "slerp": {"method": "slerp", "models": [0], "params": {"t": 0.6}},
}
weights = [0.7, 1.0, 0.4]
for name, p in MERGES.items():
    params = {"normalize": p["normalize"]} if p.get("normalize") is not None else {}
    params.update(p.get("params", {}))
    models = [
        {"model": os.path.join(HERE, f"tuned{i}"),
         "parameters": {"weight": w, "density": p["density"], **({"gamma": p["gamma"]} if "gamma" in p else {})}}
        if "density" in p
        else {"model": os.path.join(HERE, f"tuned{i}"), "parameters": {"weight": w}} if p.get("weighted")
        else {"model": os.path.join(HERE, f"tuned{i}")}  # model_stock and sce take no weights
        for i, w in enumerate(weights) if i in p.get("models", range(len(weights)))
    ]
    cfg = {
        "merge_method": p.get("method", "ties"), "base_model": os.path.join(HERE, "base"), "models": models,
        "parameters": params, "dtype": "float32",
    }
    work = os.path.join(HERE, f"_{name}")
    with open(work + ".yml", "w") as f:
        json.dump(cfg, f)
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "mergekit-yaml"), work + ".yml", work],
                   check=True)
    merged = {}
    for fname in sorted(os.listdir(work)):
        if fname.endswith(".safetensors"):
            merged.update(load_file(os.path.join(work, fname)))
    save_file(merged, os.path.join(HERE, f"mergekit-{name}.safetensors"), metadata={"format": "pt"})
    shutil.rmtree(work)
    os.remove(work + ".yml")
# PEFT's magnitude_prune (peft.utils.merge_utils), the same weights, density 0.4, in f32.
from peft.utils.merge_utils import magnitude_prune  # noqa: E402

base_t = load_file(os.path.join(HERE, "base", "model.safetensors"))
tuned_t = [load_file(os.path.join(HERE, f"tuned{i}", "model.safetensors")) for i in range(3)]
pruned = {k: v + magnitude_prune([t[k] - v for t in tuned_t], torch.tensor(weights), 0.4) for k, v in base_t.items()}
save_file(pruned, os.path.join(HERE, "peft-magnitude-prune.safetensors"), metadata={"format": "pt"})
with open(os.path.join(HERE, "merges.json"), "w") as f:
    json.dump({"weights": weights, "merges": MERGES}, f, indent=1)
print("wrote", sorted(os.listdir(HERE)))
