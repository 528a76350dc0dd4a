"""Tiny random-weight models of each supported architecture, with transformers' logits.

For each variant: a model directory <name>/ (config.json, model.safetensors) saved by
transformers, and <name>/reference.json with the input ids, the float32 logits of every position
(flattened, row-major), and the greedy continuation of 12 tokens. av's logits must match within
1e-4 of the logit range; its greedy continuation must be identical.

Run: python3 make_model_fixtures.py   (torch, transformers from pip; not needed by the tests)
"""
import json
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

torch.manual_seed(1234)
COMMON = dict(vocab_size=96, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
VARIANTS = {
    "llama": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=False)),
    "llama_tied": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=True, num_key_value_heads=4)),
    "llama3_rope": (LlamaConfig, LlamaForCausalLM, dict(rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16})),
    "mistral": (MistralConfig, MistralForCausalLM, dict(sliding_window=None)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True)),
}
IDS = [1, 17, 42, 5, 88, 23, 61, 9, 33, 70, 4, 55]

for name, (cfg_cls, model_cls, extra) in VARIANTS.items():
    cfg = cfg_cls(**{**COMMON, **extra})
    model = model_cls(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger weights than the default init, so logits spread out
            p.mul_(4.0 if p.dim() > 1 else 1.0)
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    if os.path.exists(name):
        shutil.rmtree(name)
    model.save_pretrained(name, safe_serialization=True)
    with torch.no_grad():
        ids = torch.tensor([IDS])
        logits = model(ids).logits[0].float()
        out = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    ref = {"ids": IDS, "vocab": cfg.vocab_size, "logits": [round(float(x), 7) for x in logits.reshape(-1)],
           "greedy": out[0, len(IDS):].tolist()}
    with open(os.path.join(name, "reference.json"), "w") as f:
        json.dump(ref, f)
    if os.path.exists(os.path.join(name, "generation_config.json")):
        os.remove(os.path.join(name, "generation_config.json"))
    print(name, "logit range", float(logits.min()), float(logits.max()))

# The llama variant in bf16 and f16, for the precision tests.
for half_name, half_dtype in (("llama_f16", torch.float16),):
    m = LlamaForCausalLM.from_pretrained("llama", torch_dtype=half_dtype)
    if os.path.exists(half_name):
        shutil.rmtree(half_name)
    m.save_pretrained(half_name, safe_serialization=True)
    shutil.copy("llama/reference.json", f"{half_name}/reference.json")
    if os.path.exists(f"{half_name}/generation_config.json"):
        os.remove(f"{half_name}/generation_config.json")
cfg = LlamaConfig(**{**COMMON, "tie_word_embeddings": False})
model = LlamaForCausalLM.from_pretrained("llama", torch_dtype=torch.bfloat16)
if os.path.exists("llama_bf16"):
    shutil.rmtree("llama_bf16")
model.save_pretrained("llama_bf16", safe_serialization=True)
shutil.copy("llama/reference.json", "llama_bf16/reference.json")
if os.path.exists("llama_bf16/generation_config.json"):
    os.remove("llama_bf16/generation_config.json")

# A small chat model with a real tokenizer (the gpt2-kind fixture tokenizer) and a ChatML template
# with a default system prompt, as SmolLM2 has; references for generation and log-probabilities.
from transformers import PreTrainedTokenizerFast

tok = PreTrainedTokenizerFast(tokenizer_file="tokenizer_gpt2.json", bos_token=None, eos_token="<|im_end|>")
TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}"
            "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
tok.chat_template = TEMPLATE
vocab = len(tok)
cfg = LlamaConfig(**{**COMMON, "vocab_size": vocab, "tie_word_embeddings": True, "bos_token_id": None,
                     "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"), "max_position_embeddings": 256})
torch.manual_seed(99)
model = LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    for p in model.parameters():
        p.mul_(4.0 if p.dim() > 1 else 1.0)
if os.path.exists("chat"):
    shutil.rmtree("chat")
model.save_pretrained("chat", safe_serialization=True)
tok.save_pretrained("chat")
for extra in ("generation_config.json", "special_tokens_map.json"):
    if os.path.exists(os.path.join("chat", extra)):
        os.remove(os.path.join("chat", extra))
prompt = "The patient should take"
ids = tok(prompt)["input_ids"]
chat_text = tok.apply_chat_template([{"role": "user", "content": "What is a contract?"}], tokenize=False, add_generation_prompt=True)
chat_system = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], tokenize=False,
                                      add_generation_prompt=True)
with torch.no_grad():
    out = model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
    pairs = []
    for p, c, r in [("The court", " ruled for the plaintiff", " ate the contract"), ("Interest rate", " risk", " café")]:
        pi, ci, ri = tok(p)["input_ids"], tok(c)["input_ids"], tok(r)["input_ids"]
        def lp(cont):
            full = torch.tensor([pi + cont])
            logp = torch.log_softmax(model(full).logits[0].double(), -1)
            return sum(float(logp[len(pi) - 1 + k, t]) for k, t in enumerate(cont))
        pairs.append({"prompt": p, "chosen": c, "rejected": r, "chosen_logp": lp(ci), "rejected_logp": lp(ri)})
ref = {"prompt": prompt, "prompt_ids": ids, "greedy_ids": out, "greedy_text": tok.decode(out), "chat_text": chat_text,
       "chat_system_text": chat_system, "pairs": pairs}
with open("chat/reference.json", "w") as f:
    json.dump(ref, f, ensure_ascii=False, indent=1)
print("chat", vocab, repr(tok.decode(out)))

# Llama 3 and Mistral chat templates (the published templates of Meta-Llama-3-8B-Instruct and
# Mistral-7B-Instruct-v0.1), rendered by transformers, for av's own renderings.
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
                   "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
MISTRAL_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
                    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
templates = {}
for name, template, bos in [("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>"), ("mistral", MISTRAL_TEMPLATE, "<s>")]:
    t = PreTrainedTokenizerFast(tokenizer_file="tokenizer_gpt2.json", bos_token=bos, eos_token="<|im_end|>")
    t.chat_template = template
    templates[name] = {"template": template,
                       "user": t.apply_chat_template([{"role": "user", "content": "What is a contract?"}], tokenize=False, add_generation_prompt=True)}
    if name == "llama3":
        templates[name]["system"] = t.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                                                          tokenize=False, add_generation_prompt=True)
with open("chat_templates.json", "w") as f:
    json.dump(templates, f, ensure_ascii=False, indent=1)
