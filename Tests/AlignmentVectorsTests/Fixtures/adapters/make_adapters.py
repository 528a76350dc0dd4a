"""PEFT LoRA adapters on tiny random models, and what PEFT's merge_and_unload() makes of them.

Run with torch, transformers, safetensors and peft from pip (not needed by the tests):
    python make_adapters.py
Writes, per case, CASE/base (a model directory in f32), CASE/base-bf16 (the same weights rounded
to bf16), CASE/adapter (adapter_config.json + adapter_model.safetensors) and CASE/merged.safetensors
(PEFT's merged weights, computed in f32 from the f32 base) and CASE/merged-f64.safetensors (PEFT's
merge of the same weights in f64: the reference av's f64 arithmetic is held to). Deterministic
from the seeds below.
"""
import json
import os
import shutil

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))


def llama():
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False))


def gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64))


def qwen2():
    return Qwen2ForCausalLM(Qwen2Config(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False))


CASES = {
    # Plain LoRA on two projections.
    "lora": (llama, dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])),
    # rsLoRA, rank and alpha patterns (a regex key and a suffix key), embedding LoRA, modules_to_save.
    "patterns": (llama, dict(
        r=4, lora_alpha=16, use_rslora=True,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens"],
        rank_pattern={"v_proj": 2, "layers.1.mlp.down_proj": 6}, alpha_pattern={r"layers\.\d\.self_attn\.o_proj": 3},
        modules_to_save=["lm_head"])),
    # DoRA: a magnitude vector per output row.
    "dora": (llama, dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "o_proj", "down_proj"])),
    # GPT-2's Conv1D layers store weights transposed: fan_in_fan_out; and LoRA on their biases.
    "fan_in_fan_out": (gpt2, dict(
        r=4, lora_alpha=4, fan_in_fan_out=True, lora_bias=True, target_modules=["c_attn", "c_proj"])),
    # LoRA on Qwen2's biased projections.
    "bias": (qwen2, dict(r=2, lora_alpha=6, lora_bias=True, target_modules=["q_proj", "k_proj"])),
}


def save_adapter(model, path):
    """save_pretrained, with target_modules sorted: PEFT keeps them in a set, whose order changes
    from run to run (string hashing), and the fixtures should not."""
    model.save_pretrained(path)
    os.remove(os.path.join(path, "README.md"))
    config_path = os.path.join(path, "adapter_config.json")
    config = json.load(open(config_path))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config["base_model_name_or_path"] = None  # not a path of the machine that made it
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name and "magnitude" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "lora_magnitude_vector" in name:
                p.mul_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "modules_to_save" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def main():
    for i, (case, (make, kwargs)) in enumerate(CASES.items()):
        out = os.path.join(HERE, case)
        shutil.rmtree(out, ignore_errors=True)
        torch.manual_seed(100 + i)
        base = make().float().eval()
        base.save_pretrained(os.path.join(out, "base"), safe_serialization=True)
        base.to(torch.bfloat16).save_pretrained(os.path.join(out, "base-bf16"), safe_serialization=True)
        base = base.float()
        model = get_peft_model(base, LoraConfig(**kwargs))
        perturb(model, 200 + i)
        save_adapter(model, os.path.join(out, "adapter"))
        # Merge from what was saved, as a user would: the f32 base and the adapter directory.
        for dtype, name in [(torch.float32, "merged.safetensors"), (torch.float64, "merged-f64.safetensors")]:
            reloaded = PeftModel.from_pretrained(
                type(base).from_pretrained(os.path.join(out, "base"), torch_dtype=dtype), os.path.join(out, "adapter"))
            for n, p in reloaded.named_parameters():
                assert p.dtype == dtype, (case, n, p.dtype)
            merged = reloaded.merge_and_unload()
            state = {k: v.contiguous() for k, v in merged.state_dict().items()}
            if "lm_head.weight" in state and merged.config.tie_word_embeddings:
                del state["lm_head.weight"]
            save_file(state, os.path.join(out, name))
        cfg = json.load(open(os.path.join(out, "adapter", "adapter_config.json")))
        print(case, "r", cfg["r"], "alpha", cfg["lora_alpha"], "tensors", len(state))


def chat():
    """An adapter on the chat test model (it has a tokenizer), with transformers' greedy text of
    the adapted model (PEFT's forward, unmerged) for the CLI test of `av generate --adapter`."""
    from transformers import AutoTokenizer
    source = os.path.join(HERE, "..", "..", "..", "InferenceTests", "Fixtures", "chat")
    out = os.path.join(HERE, "chat")
    shutil.rmtree(out, ignore_errors=True)
    base = LlamaForCausalLM.from_pretrained(source, torch_dtype=torch.float32).eval()
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    perturb(model, 300)
    save_adapter(model, os.path.join(out, "adapter"))
    tok = AutoTokenizer.from_pretrained(source)
    prompt = "The court said"
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=10, do_sample=False)
    json.dump({"prompt": prompt, "ids": gen[0].tolist(), "new_text": tok.decode(gen[0][ids.shape[1]:])},
              open(os.path.join(out, "reference.json"), "w"), indent=1)
    print("chat", tok.decode(gen[0][ids.shape[1]:]))




def semantics():
    """Two cases where PEFT's behaviour is not what the config says (`python make_adapters.py semantics`;
    the other fixtures are left as they are):
    - linear_fan_in_fan_out: fan_in_fan_out=True on Llama's nn.Linear modules, which PEFT resets to
      False with a warning (square modules, so a transposed ΔW would fit and go unnoticed);
    - dora_no_magnitude: a DoRA adapter saved without its lora_magnitude_vector tensors, which PEFT
      loads with the magnitude it initializes from the base (the row norms of W, B being zero then).
    """
    specs = {
        "linear_fan_in_fan_out": dict(r=4, lora_alpha=8, fan_in_fan_out=True, target_modules=["q_proj", "o_proj"]),
        "dora_no_magnitude": dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "o_proj", "down_proj"]),
    }
    for i, (case, kwargs) in enumerate(specs.items()):
        out = os.path.join(HERE, case)
        shutil.rmtree(out, ignore_errors=True)
        torch.manual_seed(500 + i)
        base = llama().float().eval()
        base.save_pretrained(os.path.join(out, "base"), safe_serialization=True)
        model = get_peft_model(base, LoraConfig(**kwargs))
        perturb(model, 600 + i)
        save_adapter(model, os.path.join(out, "adapter"))
        if case == "dora_no_magnitude":
            from safetensors.torch import load_file
            path = os.path.join(out, "adapter", "adapter_model.safetensors")
            tensors = {k: v for k, v in load_file(path).items() if "magnitude" not in k}
            save_file(tensors, path)
        else:
            # The config keeps what the user wrote; PEFT resets it only on the live model.
            path = os.path.join(out, "adapter", "adapter_config.json")
            config = json.load(open(path))
            config["fan_in_fan_out"] = True
            with open(path, "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
                f.write("\n")
        reloaded = PeftModel.from_pretrained(
            LlamaForCausalLM.from_pretrained(os.path.join(out, "base"), torch_dtype=torch.float64),
            os.path.join(out, "adapter"))
        merged = reloaded.merge_and_unload()
        state = {k: v.contiguous() for k, v in merged.state_dict().items()}
        save_file(state, os.path.join(out, "merged-f64.safetensors"))
        print(case, "tensors", len(state))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["semantics"]:
        semantics()
    else:
        main()
        chat()
        semantics()
