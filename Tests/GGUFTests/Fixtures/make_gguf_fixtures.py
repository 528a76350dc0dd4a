"""A small GGUF file with a tensor of every type av dequantizes, and gguf-py's values for them.

types.gguf holds, for each type, a [rows, 256] tensor of random blocks (f16 scales kept finite)
plus metadata of every value type; types_reference.safetensors holds gguf.quants.dequantize's
f32 values under the same names. av must produce the same bits.

Run: python3 make_gguf_fixtures.py   (gguf, numpy, safetensors from pip)
"""
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file

rng = np.random.default_rng(5)
TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# Where each block's f16 scales sit (byte offsets), to keep them finite and modest.
F16_AT = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}

w = gguf.GGUFWriter("types.gguf", "llama")
w.add_uint8("test.u8", 200)
w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000)
w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000)
w.add_int32("test.i32", -2000000000)
w.add_float32("test.f32", 1.5)
w.add_bool("test.bool", True)
w.add_string("test.string", "naïve ✓")
w.add_array("test.array", [1, 2, 3])
w.add_uint64("test.u64", 2**63)
w.add_int64("test.i64", -(2**62))
w.add_float64("test.f64", 2.718281828459045)
ref = {}
for t in TYPES:
    rows, cols = 3, 256
    elems, nbytes = gguf.GGML_QUANT_SIZES[t]
    if t in (Q.F32, Q.F16, Q.BF16):
        values = rng.normal(0, 1, size=(rows, cols)).astype(np.float32)
        if t == Q.F32:
            raw = values
        elif t == Q.F16:
            raw = values.astype(np.float16)
        else:
            raw = (values.view(np.uint32) >> 16).astype(np.uint16)
        raw_bytes = np.ascontiguousarray(raw).view(np.uint8).reshape(rows, -1)
    else:
        raw_bytes = rng.integers(0, 256, size=(rows, cols // elems * nbytes), dtype=np.uint8)
        blocks = raw_bytes.reshape(-1, nbytes)
        for off in F16_AT[t]:
            scales = rng.uniform(0.001, 0.05, size=blocks.shape[0]).astype(np.float16)
            blocks[:, off:off + 2] = scales.view(np.uint8).reshape(-1, 2)
    name = f"t.{t.name.lower()}"
    w.add_tensor(name, raw_bytes, raw_dtype=t)
    ref[name] = np.ascontiguousarray(gguf.quants.dequantize(raw_bytes, t).astype(np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
save_file(ref, "types_reference.safetensors")
print({k: v.shape for k, v in ref.items()})
