"""The baseline of av's inference benchmark: transformers on the same machine, same shapes.

Builds a LlamaForCausalLM with SmolLM2-135M's config (random weights; speed does not depend on
them), float32, and times a 128-token prompt and 64 greedy tokens with 1 and 2 torch threads.
Run: python3 transformers_decode.py   (torch, transformers from pip)
"""
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, vocab_size=49152, rms_norm_eps=1e-5, rope_theta=100000.0,
                  max_position_embeddings=8192, tie_word_embeddings=True)
model = LlamaForCausalLM(cfg).eval()
prompt = torch.tensor([[(i * 7919) % 49152 for i in range(128)]])
for threads in (1, 2):
    torch.set_num_threads(threads)
    best_prefill = best_decode = float("inf")
    for _ in range(2):
        with torch.no_grad():
            t0 = time.perf_counter()
            out = model(prompt, use_cache=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            for _ in range(64):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            t2 = time.perf_counter()
        best_prefill = min(best_prefill, t1 - t0)
        best_decode = min(best_decode, t2 - t1)
    print(f"transformers F32, {threads} thread{'s' if threads > 1 else ''}: prefill {128 / best_prefill:.1f} tokens/s, "
          f"decode {64 / best_decode:.1f} tokens/s")
