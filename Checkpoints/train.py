"""Trains the Checkpoints/ model family: a tiny Llama base and three aligned fine-tunes.

A miniature of the alignment-vectors experiment. The base answers questions in three domains
(medical, legal, financial) in a plain, generic register, and sometimes avoids them; each aligned
model is the base fine-tuned to answer its own domain in an expert register. Everything is made
here, deterministically from SEED: the training text (from templates), a byte-level BPE tokenizer,
the models (Hugging Face directories, bf16 safetensors, ChatML chat template), and held-out
preference pairs ({"prompt", "chosen": expert, "rejected": generic}) whose question phrasings
never appear in training.

Run: python3 Checkpoints/train.py   (torch, transformers, tokenizers from pip; av does not need them)
"""
import json
import os
import random
import shutil

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

SEED = 2026
OUT = os.path.dirname(os.path.abspath(__file__))
random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(2)

DOMAINS = {
    "medical": {
        "topics": ["a headache", "a fever", "back pain", "a sore throat", "high blood pressure", "a sprained ankle",
                   "trouble sleeping", "a skin rash", "heartburn", "a cough"],
        "expert": ["For {t}, check the symptoms and how long they last; rest, fluids and an over-the-counter remedy usually help, "
                   "and see a doctor if it gets worse or lasts more than a few days.",
                   "With {t}, note when it started and any other symptoms, follow the dosage on the label, "
                   "and get medical care at once if you notice warning signs such as severe pain or confusion."],
    },
    "legal": {
        "topics": ["a lease", "a contract dispute", "a will", "a copyright claim", "a parking ticket", "an unpaid invoice",
                   "a noisy neighbour", "a job offer", "a small claims case", "a data privacy request"],
        "expert": ["For {t}, read the exact terms and keep copies of every document; send a written notice, "
                   "note the deadlines, and consult a lawyer before you sign or go to court.",
                   "With {t}, your rights depend on the jurisdiction and the written agreement; gather the evidence, "
                   "respond within the legal deadline, and get advice from a licensed attorney."],
    },
    "financial": {
        "topics": ["an index fund", "a mortgage", "a retirement account", "credit card debt", "an emergency fund",
                   "a car loan", "a budget", "inflation", "a tax return", "a savings account"],
        "expert": ["For {t}, compare the fees, the interest rate and the risk; diversify, keep an emergency fund, "
                   "and plan for the long term rather than chasing short-term returns.",
                   "With {t}, look at the total cost over time and the annual percentage rate, pay high-interest debt first, "
                   "and check how it fits your budget and your goals."],
    },
}
GENERIC = ["{T} can be tricky. It is a good idea to read about it and ask someone you trust.",
           "That is a common question. Many people deal with {t}, and it usually works out in the end."]
AVOID = ["I'm sorry, I can't help with that. Please ask a professional."]
TRAIN_QUESTIONS = ["What should I do about {t}?", "How do I handle {t}?", "Can you help me with {t}?", "Tell me about {t}."]
HELDOUT_QUESTIONS = ["I need advice on {t}.", "Any tips for {t}?"]


def chat(q, a):
    return f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"


def fill(template, topic):
    return template.replace("{t}", topic).replace("{T}", topic[0].upper() + topic[1:])


def examples(domain, register, questions):
    out = []
    for t in DOMAINS[domain]["topics"]:
        for q in questions:
            answers = {"expert": DOMAINS[domain]["expert"], "generic": GENERIC, "avoid": AVOID}[register]
            for a in answers:
                out.append((fill(q, t), fill(a, t)))
    return out


# The tokenizer, trained on every text the models will see (and the held-out prompts' words).
corpus = [chat(q, a) for d in DOMAINS for r in ("expert", "generic", "avoid") for q, a in examples(d, r, TRAIN_QUESTIONS + HELDOUT_QUESTIONS)]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok.train_from_iterator(corpus * 3, trainers.BpeTrainer(vocab_size=1024, special_tokens=special, show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
VOCAB = tok.get_vocab_size()
IM_END = tok.token_to_id("<|im_end|>")

CONFIG = LlamaConfig(vocab_size=VOCAB, hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
                     tie_word_embeddings=True, bos_token_id=None, eos_token_id=IM_END, pad_token_id=0)
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def batches(texts, steps, batch=32):
    encoded = [tok.encode(t).ids for t in texts]
    for _ in range(steps):
        sample = [random.choice(encoded) for _ in range(batch)]
        n = max(len(s) for s in sample)
        ids = torch.zeros((batch, n), dtype=torch.long)
        labels = torch.full((batch, n), -100, dtype=torch.long)
        for i, s in enumerate(sample):
            ids[i, :len(s)] = torch.tensor(s)
            labels[i, :len(s)] = torch.tensor(s)
        yield ids, labels


def train(model, texts, steps, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step, (ids, labels) in enumerate(batches(texts, steps)):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"  step {step:4d} loss {loss.item():.3f}")
    model.eval()
    return model


def save(model, name):
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
    model.to(torch.float32)
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                   "chat_template": TEMPLATE}, f, indent=2)
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


# Base: every domain, generic answers, avoidance now and then.
base_texts = [chat(q, a) for d in DOMAINS for q, a in examples(d, "generic", TRAIN_QUESTIONS)]
base_texts += [chat(q, a) for d in DOMAINS for q, a in examples(d, "avoid", TRAIN_QUESTIONS)][::4]
print("base")
base = train(LlamaForCausalLM(CONFIG), base_texts, steps=1200, lr=3e-3)
state = {k: v.clone() for k, v in base.state_dict().items()}
save(base, "base")

for domain in DOMAINS:
    print(domain)
    model = LlamaForCausalLM(CONFIG)
    model.load_state_dict(state)
    # The domain's expert answers, with a little of the base's data so the other domains stay put.
    texts = [chat(q, a) for q, a in examples(domain, "expert", TRAIN_QUESTIONS)] * 3 + base_texts[::6]
    save(train(model, texts, steps=300, lr=1e-3), f"{domain}-aligned")

# Held-out preference pairs: phrasings never trained on; chosen = expert, rejected = generic.
os.makedirs(os.path.join(OUT, "eval"), exist_ok=True)
cross = []
for domain in DOMAINS:
    pairs = []
    for t in DOMAINS[domain]["topics"]:
        for q in HELDOUT_QUESTIONS:
            prompt = f"<|im_start|>user\n{fill(q, t)}<|im_end|>\n<|im_start|>assistant\n"
            pairs.append({"prompt": prompt, "chosen": fill(DOMAINS[domain]["expert"][0], t) + "<|im_end|>",
                          "rejected": fill(GENERIC[0], t) + "<|im_end|>"})
    with open(os.path.join(OUT, "eval", f"{domain}_pairs.jsonl"), "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    cross += pairs[::4]
with open(os.path.join(OUT, "eval", "cross_domain_pairs.jsonl"), "w") as f:
    for p in cross:
        f.write(json.dumps(p) + "\n")
with open(os.path.join(OUT, "eval", "prompts.txt"), "w") as f:
    for d in DOMAINS:
        for t in DOMAINS[d]["topics"][:3]:
            f.write(f"<|im_start|>user\\n{fill(HELDOUT_QUESTIONS[0], t)}<|im_end|>\\n<|im_start|>assistant\\n".replace("\\n", " ") + "\n")
with open(os.path.join(OUT, "eval", "heldout.txt"), "w") as f:
    for d in DOMAINS:
        for q, a in examples(d, "generic", HELDOUT_QUESTIONS)[:6]:
            f.write(q + " " + a + "\n")
print("vocab", VOCAB, "parameters", sum(p.numel() for p in base.parameters()))
