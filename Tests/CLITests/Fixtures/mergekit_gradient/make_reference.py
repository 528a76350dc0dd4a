"""What λ mergekit applies to each tensor for a gradient and a filter, for `--DOMAIN.gradient` and
`--DOMAIN.modules` to match.

mergekit-yaml merges Checkpoints/base + λ·(medical-aligned − base) by task arithmetic, with the weight
`[{filter: mlp, value: 0.25}, {value: [0, 0.5, 1.5]}]` (a filter, then a gradient over the 4 layers), in
f32. For each tensor this records λ = ⟨out − base, Δ⟩ / ‖Δ‖² of mergekit's output (f64), in
reference.json. The test merges with `--medical.modules mlp=0.25 --medical.gradient 0,0.5,1.5` and
compares its λ per tensor.

Run by hand (not in CI): python3 make_reference.py   (mergekit 0.1.5, torch, safetensors from pip)
"""
import json
import os
import subprocess
import tempfile

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINTS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "Checkpoints"))
CONFIG = f"""
merge_method: task_arithmetic
base_model: {CHECKPOINTS}/base
models:
  - model: {CHECKPOINTS}/medical-aligned
    parameters:
      weight:
        - filter: mlp
          value: 0.25
        - value: [0, 0.5, 1.5]
parameters:
  normalize: false
dtype: float32
out_dtype: float32
"""


def load(path):
    import torch  # bf16 safetensors: read through torch, widen to f64
    from safetensors.torch import load_file as load_torch
    return {k: v.to(torch.float64).numpy() for k, v in load_torch(os.path.join(path, "model.safetensors")).items()}


with tempfile.TemporaryDirectory() as tmp:
    config = os.path.join(tmp, "config.yaml")
    with open(config, "w") as f:
        f.write(CONFIG)
    out = os.path.join(tmp, "out")
    subprocess.run(["mergekit-yaml", config, out], check=True)
    base = load(os.path.join(CHECKPOINTS, "base"))
    aligned = load(os.path.join(CHECKPOINTS, "medical-aligned"))
    merged = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".safetensors"):
            merged.update({k: v.astype(np.float64) for k, v in load_file(os.path.join(out, name)).items()})
    lambdas = {}
    for name, w in base.items():
        delta = aligned[name] - w
        energy = float((delta * delta).sum())
        lambdas[name] = float(((merged[name] - w) * delta).sum() / energy) if energy > 0 else 0.0
with open(os.path.join(HERE, "reference.json"), "w") as f:
    json.dump({"config": CONFIG.strip().replace(CHECKPOINTS, "Checkpoints"), "lambdas": lambdas}, f, indent=1,
              sort_keys=True)
