"""References for `av export-lora` (run after make_adapters.py, with the av binary built):

    python make_export_reference.py PATH/TO/av

1. av diff of the chat test model and chat/adapter, then av export-lora --rank 4 --skip, into
   chat/exported (committed: the test checks that av writes the same bytes again);
2. PEFT loads chat/exported onto the chat model and merges it in f64: chat/exported-merged-f64.safetensors;
3. a 96 × 64 matrix with a decaying spectrum and numpy's singular values of it: svd.safetensors.
Needs torch, transformers, peft, numpy, safetensors; the tests need none of them.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from peft import PeftModel
from safetensors.numpy import save_file
from transformers import LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
av = os.path.abspath(sys.argv[1])
chat = os.path.join(HERE, "..", "..", "..", "InferenceTests", "Fixtures", "chat")
exported = os.path.join(HERE, "chat", "exported")
shutil.rmtree(exported, ignore_errors=True)
with tempfile.TemporaryDirectory() as tmp:
    vector = os.path.join(tmp, "style.av")
    subprocess.run([av, "diff", chat, os.path.join(HERE, "chat", "adapter"), "-o", vector, "-q"], check=True)
    subprocess.run([av, "export-lora", vector, "-o", exported, "--rank", "4", "--skip", "--threads", "1"], check=True)

base = LlamaForCausalLM.from_pretrained(chat, torch_dtype=torch.float64)
model = PeftModel.from_pretrained(base, exported)
for n, p in model.named_parameters():
    assert p.dtype == torch.float64, (n, p.dtype)
merged = model.merge_and_unload()
state = {k: v.contiguous().numpy() for k, v in merged.state_dict().items() if k != "lm_head.weight"}
save_file(state, os.path.join(HERE, "chat", "exported-merged-f64.safetensors"))

rng = np.random.default_rng(7)
u, _ = np.linalg.qr(rng.standard_normal((96, 64)))
v, _ = np.linalg.qr(rng.standard_normal((64, 64)))
sigma = 3.0 * 0.8 ** np.arange(64)
matrix = (u * sigma) @ v.T + 1e-6 * rng.standard_normal((96, 64))
save_file({"matrix": matrix, "singular_values": np.linalg.svd(matrix, compute_uv=False)},
          os.path.join(HERE, "svd.safetensors"))
print("exported and merged; svd reference written")
