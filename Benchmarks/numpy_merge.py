"""The baseline av's merge is measured against: a streaming numpy-memmap merge.

    python3 numpy_merge.py BASE_DIR A.av COEF_A B.av COEF_B OUT_DIR

For each base shard, writes a shard with base + COEF_A * A + COEF_B * B for every tensor, in
f32 arithmetic, rounded back to the base dtype (bf16 by round to nearest even), tensor by tensor
through np.memmap. It is what a careful Python user would write: no torch, no full load; it does
not apply av's exact f64 remainders (av does more work than this script). numpy only.
"""
import json
import os
import struct
import sys

import numpy as np


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def view(path, meta, start, name):
    info = meta.get(name)
    if info is None:
        return None
    b, e = info["data_offsets"]
    dt = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}[info["dtype"]]
    return np.memmap(path, dtype=dt, mode="r", offset=start + b, shape=((e - b) // np.dtype(dt).itemsize,)), info["dtype"]


def to_f32(arr, dtype):
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32)


def from_f32(x, dtype):
    if dtype == "BF16":
        bits = x.view(np.uint32)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return x.astype({"F32": np.float32, "F16": np.float16}[dtype])


def main():
    base_dir, a_path, ca, b_path, cb, out_dir = sys.argv[1:7]
    ca, cb = float(ca), float(cb)
    os.makedirs(out_dir, exist_ok=True)
    (ma, sa), (mb, sb) = header(a_path), header(b_path)
    for shard in sorted(f for f in os.listdir(base_dir) if f.endswith(".safetensors")):
        path = os.path.join(base_dir, shard)
        meta, start = header(path)
        names = sorted((k for k in meta if k != "__metadata__"), key=lambda k: meta[k]["data_offsets"][0])
        head = json.dumps({k: meta[k] for k in meta}, separators=(",", ":")).encode()
        head += b" " * (-len(head) % 8)
        with open(os.path.join(out_dir, shard), "wb") as out:
            out.write(struct.pack("<Q", len(head)) + head)
            for name in names:
                base, dtype = view(path, meta, start, name)
                acc = to_f32(base, dtype)
                for (m, s, p, c) in ((ma, sa, a_path, ca), (mb, sb, b_path, cb)):
                    d = view(p, m, s, name)
                    if d is not None:
                        acc = acc + np.float32(c) * to_f32(*d)
                out.write(from_f32(acc, dtype).tobytes())
            out.flush()
            os.fsync(out.fileno())


main()
