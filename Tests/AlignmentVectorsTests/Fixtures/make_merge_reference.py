"""Tiny base/aligned checkpoints and float64 reference merges, for av's exactness tests.

For each dtype (F32, BF16, F16): base_<D>.safetensors, medical_<D>.safetensors and
legal_<D>.safetensors (same tensors: a matrix, a vector, an odd-shaped matrix), and
reference_<D>.safetensors holding, for each coefficient set k of COEFFICIENTS and each tensor t,
the F64 tensor "k/t" = base + λ_medical·(medical − base) + λ_legal·(legal − base), computed in
float64 by numpy from the stored values, independently of av.

The aligned models change most values by a little, leave some alone, move some across zero and
some by more than a factor of two (where a rounded f32 difference does not give the aligned value
back and av must nudge it).

Run: python3 make_merge_reference.py   (numpy, ml_dtypes, safetensors from pip)
"""
import json

import ml_dtypes
import numpy as np
from safetensors import TensorSpec, serialize

COEFFICIENTS = [(0.5, 1.2), (-0.7, 0.3), (2.5, -1.5), (1.0, 0.0), (0.0, 0.0), (0.3, 0.3)]
SHAPES = {"model.layers.0.mlp.weight": (32, 24), "model.layers.0.norm.weight": (24,), "lm_head.weight": (7, 5)}
TYPES = {"F32": np.float32, "BF16": ml_dtypes.bfloat16, "F16": np.float16}
PY = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}

rng = np.random.default_rng(20261124)


def base_values(shape):
    x = rng.normal(0, 0.05, size=shape)
    flat = x.reshape(-1)
    flat[::11] = 0.0
    flat[1::13] *= 1e-3
    flat[2::17] = rng.normal(0, 3, size=flat[2::17].shape)
    return x


def aligned_values(b, scale):
    a = b + rng.normal(0, scale, size=b.shape)
    flat, fb = a.reshape(-1), b.reshape(-1)
    flat[::5] = fb[::5]                    # unchanged values
    flat[3::19] = -fb[3::19] * 0.3 + 0.0    # across zero (+ 0.0: no -0 where the base is 0)
    flat[4::23] = fb[4::23] * 5 + 1e-4      # more than doubled
    return a


def save(path, tensors, dtype_name):
    keep, specs = [], {}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        specs[name] = TensorSpec(dtype=PY[dtype_name], shape=list(arr.shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    with open(path, "wb") as f:
        f.write(serialize(specs, metadata={"format": "pt"}))


for dname, dt in TYPES.items():
    base = {n: base_values(s).astype(dt) for n, s in SHAPES.items()}
    med = {n: aligned_values(base[n].astype(np.float64), 0.01).astype(dt) for n in SHAPES}
    leg = {n: aligned_values(base[n].astype(np.float64), 0.02).astype(dt) for n in SHAPES}
    save(f"base_{dname}.safetensors", base, dname)
    save(f"medical_{dname}.safetensors", med, dname)
    save(f"legal_{dname}.safetensors", leg, dname)
    ref = {}
    for k, (lm, ll) in enumerate(COEFFICIENTS):
        for n in SHAPES:
            b = base[n].astype(np.float64)
            ref[f"{k}/{n}"] = b + lm * (med[n].astype(np.float64) - b) + ll * (leg[n].astype(np.float64) - b)
    save(f"reference_{dname}.safetensors", ref, "F64")

with open("coefficients.json", "w") as f:
    json.dump(COEFFICIENTS, f)
    f.write("\n")
print("ok")
