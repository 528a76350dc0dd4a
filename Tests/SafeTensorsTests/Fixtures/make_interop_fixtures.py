"""Safetensors files written by Python `safetensors` (0.8.0), for av's reader and writer tests.

Each file is described in interop_manifest.json: its tensors (name, dtype, shape, data as hex)
and metadata. av must read every file back exactly, and, given the same tensors and metadata,
write the same bytes. index_expected.json is what transformers writes for a shard index
(json.dumps(index, indent=2, sort_keys=True) + "\n"), for the sharded writer.

Run: python3 make_interop_fixtures.py   (safetensors from pip)
"""
import json

import numpy as np
from safetensors import TensorSpec, serialize

BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
        "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64}


# The Python binding's names for the codes (F6_E2M3 and F6_E3M2 have none, so no fixture holds them).
PY_NAMES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "I32": "int32",
            "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16", "F32": "float32", "F64": "float64",
            "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2": "float8_e5m2",
            "F8_E5M2FNUZ": "float8_e5m2fnuz", "F8_E8M0": "float8_e8m0fnu", "F4": "float4_e2m1fn_x2", "C64": "complex64"}


def data(n, seed):
    return bytes(((i * 37 + seed * 11 + 5) & 0xFF) for i in range(n))


def tensor(name, dtype, shape, seed):
    count = 1
    for d in shape:
        count *= d
    n = count * BITS[dtype] // 8
    if dtype == "BOOL":
        raw = bytes((i + seed) % 2 for i in range(n))
    else:
        raw = data(n, seed)
    return name, {"dtype": dtype, "shape": shape, "data": raw}


FILES = {
    "all_dtypes": ({"framework": "av-test"}, [
        tensor(f"t_{d}", d, [2, 4] if d == "F4" else [4], k) for k, d in enumerate(BITS) if d in PY_NAMES
    ] + [tensor("matrix.bf16", "BF16", [3, 5], 99), tensor("matrix.f32", "F32", [5, 3], 98)]),
    "empty": (None, []),
    "metadata_only": ({"format": "pt"}, []),
    "shapes": (None, [
        tensor("scalar", "F32", [], 1), tensor("zero_rows", "F16", [2, 0], 2), tensor("zero", "I32", [0], 3),
        tensor("odd", "BF16", [3, 5, 7], 4), tensor("one", "U8", [1], 5),
    ]),
    "unicode_names": ({"note": "naïve \"quoted\" \\ back\tslash\n"}, [
        tensor("naïve.权重", "F32", [2], 1), tensor("q\"uote", "F16", [3], 2), tensor("ctl\u0001\u001f", "I8", [1], 3),
        tensor("emoji🙂", "BF16", [2, 2], 4), tensor("", "U8", [2], 5),
    ]),
}

def specs(tensors, keep):
    out = {}
    for n, t in tensors:
        buf = np.frombuffer(t["data"], dtype=np.uint8).copy() if t["data"] else np.zeros(1, np.uint8)
        keep.append(buf)
        shape = list(t["shape"])
        if t["dtype"] == "F4" and shape:
            shape[-1] //= 2  # TensorSpec takes F4's storage shape and doubles the last dimension
        out[n] = TensorSpec(dtype=PY_NAMES[t["dtype"]], shape=shape, data_ptr=buf.ctypes.data, data_len=len(t["data"]))
    return out


manifest = {}
for name, (metadata, tensors) in FILES.items():
    keep = []
    blob = serialize(specs(tensors, keep), metadata=metadata)
    with open(f"{name}.safetensors", "wb") as f:
        f.write(blob)
    manifest[name] = {
        "metadata": metadata,
        "tensors": [{"name": n, "dtype": t["dtype"], "shape": t["shape"], "hex": t["data"].hex()} for n, t in tensors],
    }
with open("interop_manifest.json", "w") as f:
    json.dump(manifest, f, indent=1, ensure_ascii=False)
    f.write("\n")

weight_map = {"model.layers.0.mlp.weight": "model-00001-of-00002.safetensors",
              "lm_head.weight": "model-00002-of-00002.safetensors",
              "naïve": "model-00002-of-00002.safetensors",
              "model.embed_tokens.weight": "model-00001-of-00002.safetensors"}
with open("index_expected.json", "w") as f:
    f.write(json.dumps({"metadata": {"total_size": 1234}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n")
print(sorted(manifest))
