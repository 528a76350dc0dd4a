"""mergekit's DARE and sign-count merges of the method fixtures (base, tuned0-2), for MergeMethodTests.

DARE drops entries at random, so mergekit's merge of the same models is another draw than av's. This
script makes mergekit draw av's: av's masks are read from av's own single-vector DARE merges without
rescaling (the entries av kept are those that moved), and mergekit's `bernoulli` sparsifier is replaced
by one that returns them, with mergekit's own rescaling (`rescaled_masked_tensor`, L1). Everything else
is mergekit's: the weighted deltas, the sign election, the sum, the divisor. `consensus: count` is not
a YAML option in mergekit (its methods fix the consensus), so the count variants are mergekit's
`GeneralizedTaskArithmeticMerge` constructed with `ConsensusMethod.count` and registered by name.

Writes mergekit-{dare-linear,dare-ties,dare-ties-count,ties-count}.safetensors and dare.json (weights,
densities, seed) beside this script.

Run from this folder with torch, safetensors and mergekit installed (a venv outside the repository),
after building av (`swift build -c release`; or set AV_BINARY):
    python3 make_dare.py
"""
import json
import os
import shutil
import subprocess
import tempfile

import torch
import mergekit.sparsify as sparsify_module
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.merge_methods import registry
from mergekit.merge_methods.generalized_task_arithmetic import ConsensusMethod, GeneralizedTaskArithmeticMerge
from mergekit.options import MergeOptions
from mergekit.sparsify import SparsificationMethod, rescaled_masked_tensor
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
AV = os.environ.get("AV_BINARY", os.path.join(ROOT, ".build", "release", "av"))
SEED, DENSITY, WEIGHTS = 42, 0.5, [0.7, 1.0, 0.4]

base_path = os.path.join(HERE, "base", "model.safetensors")
base = load_file(base_path)
tuned = [load_file(os.path.join(HERE, f"tuned{i}", "model.safetensors")) for i in range(3)]
work = tempfile.mkdtemp()

# av's masks: tuned{i}.av merged alone by DARE without rescaling keeps exactly the kept entries.
masks = []
for i in range(3):
    av = os.path.join(work, f"tuned{i}.av")
    subprocess.run([AV, "diff", base_path, os.path.join(HERE, f"tuned{i}", "model.safetensors"), "-o", av, "-q"],
                   check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(work, f"m{i}.safetensors")
    subprocess.run([AV, "merge", "--base", base_path, "--vector", f"{av}=1", "--method", "dare-linear",
                    "--density", str(DENSITY), "--seed", str(SEED), "--no-rescale", "-o", out, "-q"],
                   check=True, stdout=subprocess.DEVNULL)
    merged = load_file(out)
    for k in base:
        assert ((tuned[i][k] - base[k]) != 0).all(), "a zero delta would hide a kept entry"
    masks.append({k: (merged[k] != base[k]) for k in base})

deltas = [{k: t[k].float() - base[k].float() for k in base} for t in tuned]


def av_bernoulli(tensor, density, rescale_norm=None):
    """mergekit's random sparsifier with av's draw: the mask of the model and tensor `tensor` is the delta of."""
    for i in range(3):
        for k, d in deltas[i].items():
            if d.shape == tensor.shape and torch.equal(d, tensor):
                assert abs(density - DENSITY) < 1e-12
                return rescaled_masked_tensor(tensor, masks[i][k].to(tensor.dtype), rescale_norm)
    raise RuntimeError("a delta mergekit sparsified is none of the fixture's")


sparsify_module.bernoulli = av_bernoulli
for name, sparsification in [("dare_ties_count", SparsificationMethod.random),
                             ("ties_count", SparsificationMethod.magnitude)]:
    registry.register(GeneralizedTaskArithmeticMerge(
        consensus_method=ConsensusMethod.count, sparsification_method=sparsification,
        default_normalize=sparsification == SparsificationMethod.magnitude,
        default_rescale=sparsification == SparsificationMethod.random, method_name=name,
        method_pretty_name=name, method_reference_url=None))

MERGES = {"dare-linear": "dare_linear", "dare-ties": "dare_ties", "dare-ties-count": "dare_ties_count",
          "ties-count": "ties_count"}
for name, method in MERGES.items():
    config = MergeConfiguration.model_validate({
        "merge_method": method, "base_model": os.path.join(HERE, "base"), "dtype": "float32",
        "models": [{"model": os.path.join(HERE, f"tuned{i}"), "parameters": {"weight": w, "density": DENSITY}}
                   for i, w in enumerate(WEIGHTS)],
    })
    out = os.path.join(work, name)
    run_merge(config, out, options=MergeOptions())
    merged = {}
    for fname in sorted(os.listdir(out)):
        if fname.endswith(".safetensors"):
            merged.update(load_file(os.path.join(out, fname)))
    save_file(merged, os.path.join(HERE, f"mergekit-{name}.safetensors"), metadata={"format": "pt"})
shutil.rmtree(work)
with open(os.path.join(HERE, "dare.json"), "w") as f:
    json.dump({"seed": SEED, "density": DENSITY, "weights": WEIGHTS, "merges": MERGES}, f, indent=1)
    f.write("\n")
print("wrote", [f"mergekit-{n}.safetensors" for n in MERGES])
