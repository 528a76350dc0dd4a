"""Reference conversions for every small float dtype, made with numpy and ml_dtypes.

Writes dtype_reference.json, read by Tests/TensorsTests/ConversionReferenceTests.swift.
For each dtype: how every code decodes to f32, and how f32 inputs encode, with the inputs
generated the same way in both languages: for each pair of neighbouring codes (h, h+1) of the
same sign, both finite, the value of h, their midpoint (exact in f32) and the f32 neighbours of
the midpoint; plus a list of special inputs written here as bit patterns.
8-bit and smaller dtypes store every output; 16-bit ones store FNV-1a-64 hashes of blocks of
4096 outputs (NaN outputs are hashed as one marker, since only NaN-ness is required of them).

Run: python3 make_dtype_reference.py   (numpy, ml_dtypes from pip)
"""
import json
import ml_dtypes
import numpy as np

TYPES = {
    "BF16": (ml_dtypes.bfloat16, 16),
    "F16": (np.float16, 16),
    "F8_E5M2": (ml_dtypes.float8_e5m2, 8),
    "F8_E4M3": (ml_dtypes.float8_e4m3fn, 8),
    "F8_E4M3FNUZ": (ml_dtypes.float8_e4m3fnuz, 8),
    "F8_E5M2FNUZ": (ml_dtypes.float8_e5m2fnuz, 8),
    "F8_E8M0": (ml_dtypes.float8_e8m0fnu, 8),
    "F4": (ml_dtypes.float4_e2m1fn, 4),
    "F6_E2M3": (ml_dtypes.float6_e2m3fn, 6),
    "F6_E3M2": (ml_dtypes.float6_e3m2fn, 6),
}
SIGNED = {k: k != "F8_E8M0" for k in TYPES}

SPECIALS = np.array(
    [0.0, -0.0, np.inf, -np.inf, 1e30, -1e30, 3.4028235e38, 1.1754944e-38, 1e-45, -1e-45, 1.0, -1.0,
     65504.0, 65519.0, 65520.0, 65536.0, 448.0, 464.0, 480.0, 57344.0, 61439.0, 61440.0, 240.0, 248.0,
     6.0, 7.0, 8.0, 7.5, 28.0, 30.0, 32.0, 1e-10, 2.0**-127, 2.0**-128, 1.5 * 2.0**-127, 3.0 * 2.0**100,
     0.25, 0.125, 5.960464477539063e-08, 2.9802322387695312e-08, 2.98023259e-08, 3e-39, -3e-39],
    dtype=np.float32,
)

FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv(data: bytes) -> str:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def decode(dt, width):
    n = 1 << width
    if width == 16:
        return np.arange(n, dtype=np.uint16).view(dt).astype(np.float32)
    return np.arange(n, dtype=np.uint8).view(dt).astype(np.float32)


def inputs(name, values):
    width = TYPES[name][1]
    n = 1 << width
    sign_bit = (n >> 1) if SIGNED[name] else 0
    h = np.arange(n - 1)
    a, b = values[:-1].astype(np.float64), values[1:].astype(np.float64)
    same_sign = (h & sign_bit) == ((h + 1) & sign_bit) if sign_bit else np.ones(n - 1, bool)
    ok = same_sign & np.isfinite(a) & np.isfinite(b)
    v = values[:-1][ok]
    mid = ((a[ok] + b[ok]) / 2).astype(np.float32)
    down = np.nextafter(mid, np.float32(-np.inf))
    up = np.nextafter(mid, np.float32(np.inf))
    grid = np.stack([v, mid, down, up], axis=1).reshape(-1)
    return np.concatenate([grid, SPECIALS]).astype(np.float32)


ref = {"specials": [int(x) for x in SPECIALS.view(np.uint32)], "types": {}}
for name, (dt, width) in TYPES.items():
    values = decode(dt, width)
    xs = inputs(name, values)
    with np.errstate(all="ignore"):
        enc = xs.astype(dt)
    codes = enc.view(np.uint16 if width == 16 else np.uint8).astype(np.uint32)
    if width < 8:
        codes &= (1 << width) - 1
    enc_nan = np.isnan(enc.astype(np.float32))
    codes[enc_nan] = 0xFFFFFFFF
    dec_bits = values.view(np.uint32).copy()
    dec_bits[np.isnan(values)] = 0x7FC00000
    entry = {"inputCount": int(len(xs))}
    if width == 16:
        entry["decodeBlocks"] = [fnv(dec_bits[i:i + 4096].astype("<u4").tobytes()) for i in range(0, len(dec_bits), 4096)]
        entry["encodeBlocks"] = [fnv(codes[i:i + 4096].astype("<u4").tobytes()) for i in range(0, len(codes), 4096)]
    else:
        entry["decode"] = [int(x) for x in dec_bits]
        entry["encode"] = [int(x) for x in codes]
    ref["types"][name] = entry

with open("dtype_reference.json", "w") as f:
    json.dump(ref, f, separators=(",", ":"))
    f.write("\n")
print({k: v["inputCount"] for k, v in ref["types"].items()})
