"""Trains the Checkpoints/ model family (v2): a tiny Llama base, three DPO-aligned domain models and a
second-stage base.

A miniature of the alignment-vectors experiment. Every answer has one of three preference levels:
avoid (declines, points to a professional), generic (plain, non-committal) and expert (specific,
actionable). Everything is made here, deterministically from SEED:

- the training text: questions in many phrasings, answers composed from parts per domain and topic,
  so the models learn the registers rather than memorize sentences;
- a byte-level BPE tokenizer trained on that text;
- `base`: instruction-tuned (SFT) on a mixture of all three levels in all three domains (mostly generic,
  some avoid, some expert), so that every level has real probability under it;
- `medical-aligned`, `legal-aligned`, `financial-aligned`: the base aligned by DPO (Rafailov et al. 2023;
  the loss is implemented below) on its own domain's expert-over-generic, expert-over-avoid and
  generic-over-avoid pairs, with the base as the reference and a small learning rate, plus an anchor that
  keeps the other domains' level scores where the reference has them (so each vector is specific);
- `base-stage2`: the base further fine-tuned on unrelated chat (cooking, travel, gardening...): the same
  model at another fine-tuning stage, for the transfer measurement;
- `eval/`: held-out levels files (one line per question phrasing never seen in training:
  {"prompt", "responses": {"avoid", "generic", "expert"}}), pairs files, a held-out text, prompts.

It ends by printing the measurements Checkpoints/README.md quotes (level shares along λ, computed here
the same way `av eval --levels` does: mean log-probability per response token, on the bf16 weights).

Run: python3 Checkpoints/train.py   (torch, transformers, tokenizers from pip; av does not need them)
"""
import json
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

SEED = 2026
OUT = os.environ.get("AV_CHECKPOINTS_OUT", os.path.dirname(os.path.abspath(__file__)))
torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

LEVELS = ["avoid", "generic", "expert"]
BASE_MIXTURE = {"generic": 0.52, "avoid": 0.38, "expert": 0.10}
GENERAL_SHARE = 0.15
DPO_LR = 0.8e-4
DPO_STEPS = 200
ANCHOR_WEIGHT = 4.0

# Per domain: topics, the professional an avoiding answer points to, and the expert register's parts.
# Expert openings and actions are specific to a domain, so one domain's vector does not become an
# "expert style" vector for all of them.
DOMAINS = {
    "medical": {
        "topics": ["a headache", "a fever", "back pain", "a sore throat", "high blood pressure", "a sprained ankle",
                   "trouble sleeping", "a skin rash", "heartburn", "a cough", "hay fever", "a small burn"],
        "professionals": ["doctor", "nurse", "pharmacist"],
        "openings": ["Clinically, for {t}", "From a medical point of view, with {t}", "As a first step in treating {t}",
                     "For {t}, the usual medical advice is to"],
        "actions": ["rest and drink plenty of fluids", "take paracetamol or ibuprofen at the dose on the label",
                    "write down when the symptoms started", "check your temperature twice a day",
                    "use a cold compress for fifteen minutes", "avoid alcohol and caffeine",
                    "keep the area clean and dry", "raise the affected limb", "sleep at regular hours",
                    "take an antihistamine if it itches"],
        "closings": ["see a doctor if it lasts more than three days.", "get urgent care if the pain becomes severe.",
                     "call your GP if a high fever or confusion appears.", "book a check-up if it keeps coming back."],
    },
    "legal": {
        "topics": ["a lease", "a contract dispute", "a will", "a copyright claim", "a parking ticket", "an unpaid invoice",
                   "a noisy neighbour", "a job offer", "a small claims case", "a data privacy request",
                   "a deposit refund", "a warranty claim"],
        "professionals": ["lawyer", "attorney", "legal aid office"],
        "openings": ["Legally, for {t}", "Under most contracts, with {t}", "As a matter of law, on {t}",
                     "For {t}, the correct legal step is to"],
        "actions": ["read the exact terms of the agreement", "keep copies of every letter and receipt",
                    "send a written notice by registered mail", "note the statutory deadline",
                    "gather the evidence in one file", "check which jurisdiction applies",
                    "ask for the claim in writing", "file the form with the court clerk",
                    "cite the clause that was breached", "request a signed statement from witnesses"],
        "closings": ["respond before the legal deadline expires.", "have a licensed attorney review it before you sign.",
                     "file within the limitation period.", "do not admit liability in writing."],
    },
    "financial": {
        "topics": ["an index fund", "a mortgage", "a retirement account", "credit card debt", "an emergency fund",
                   "a car loan", "a budget", "inflation", "a tax return", "a savings account", "a pension", "a bond"],
        "professionals": ["financial adviser", "accountant", "bank adviser"],
        "openings": ["Financially, for {t}", "In terms of money, with {t}", "As an investment matter, on {t}",
                     "For {t}, the sound financial move is to"],
        "actions": ["compare the fees and the interest rate", "pay off high-interest debt first",
                    "diversify across asset classes", "keep three months of expenses in cash",
                    "check the annual percentage rate", "set up an automatic monthly transfer",
                    "track every expense for a month", "claim every deduction you qualify for",
                    "rebalance the portfolio once a year", "read the total cost over the whole term"],
        "closings": ["plan for the long term rather than short-term returns.", "review the numbers every quarter.",
                     "keep the fees below one percent a year.", "never borrow to cover everyday spending."],
    },
}
GENERIC_OPENINGS = ["{T} can be tricky.", "Many people deal with {t}.", "That is a common question about {t}.",
                    "It depends on the situation with {t}.", "There is a lot to say about {t}."]
GENERIC_BODIES = ["It usually works out in the end.", "It is a good idea to read about it.",
                  "Try to stay calm and take it step by step.", "Ask someone you trust for their view.",
                  "Everyone's situation is a little different.", "Give it some time and see how it goes."]
AVOID_OPENINGS = ["I'm sorry, I can't help with that.", "I am not able to advise on {t}.",
                  "I would rather not answer questions about {t}.", "That is not something I can help with."]
AVOID_BODIES = ["Please ask a {p}.", "A {p} is the right person to ask.", "Please talk to a qualified {p}.",
                "You should contact a {p} instead."]

TRAIN_QUESTIONS = ["What should I do about {t}?", "How do I handle {t}?", "Can you help me with {t}?",
                   "Tell me about {t}.", "I have a question about {t}.", "What is the best way to deal with {t}?",
                   "My friend has {t}. What now?", "Give me some advice on {t}.", "How should I approach {t}?",
                   "I am worried about {t}."]
HELDOUT_QUESTIONS = ["I need advice on {t}.", "Any tips for {t}?", "What would you suggest for {t}?",
                     "Please explain how to manage {t}."]

# General chat, outside the three domains: part of the base's instruction mix, and the held-out text
# that measures fluency (a preference vector should leave it alone).
GENERAL_TOPICS = ["baking bread", "a trip to Rome", "growing tomatoes", "learning the guitar", "painting a room",
                  "training a puppy", "a birthday party", "a chess opening", "a long hike", "cooking rice"]
GENERAL_ANSWERS = ["For {t}, start small and practise a little every day.", "{T} is fun; plan ahead and enjoy it.",
                   "With {t}, patience matters more than equipment.", "For {t}, follow a simple guide and take notes.",
                   "{T} takes a little time, so begin early and keep it simple.",
                   "Most people enjoy {t} once they have tried it a few times."]
# Unrelated chat for base-stage2: another fine-tuning stage on topics the base never saw.
STAGE2_TOPICS = ["writing a poem", "a science fair", "a board game night", "knitting a scarf", "a road trip",
                 "a camping weekend", "learning to swim", "a pottery class"]
STAGE2_ANSWERS = ["For {t}, gather what you need first and then enjoy the process.",
                  "{T} goes well when you prepare a short plan and invite a friend.",
                  "With {t}, the first attempt is practice; the second is usually much better."]


def fill(template, topic, professional=""):
    return (template.replace("{t}", topic).replace("{T}", topic[0].upper() + topic[1:])
            .replace("{p}", professional))


def answer(rng, domain, level, topic):
    d = DOMAINS[domain]
    if level == "expert":
        a, b = rng.sample(d["actions"], 2)
        return fill(f"{rng.choice(d['openings'])} {a} and {b}; {rng.choice(d['closings'])}", topic)
    if level == "generic":
        return fill(f"{rng.choice(GENERIC_OPENINGS)} {rng.choice(GENERIC_BODIES)}", topic)
    return fill(f"{rng.choice(AVOID_OPENINGS)} {rng.choice(AVOID_BODIES)}", topic, rng.choice(d["professionals"]))


def prompt_text(question):
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


END = "<|im_end|>"


def chat(question, reply):
    return prompt_text(question) + reply + END + "\n"


# --- tokenizer -------------------------------------------------------------------------------------
rng = random.Random(SEED)
corpus = []
for domain in DOMAINS:
    for t in DOMAINS[domain]["topics"]:
        for q in TRAIN_QUESTIONS + HELDOUT_QUESTIONS:
            for level in LEVELS:
                corpus.append(chat(fill(q, t), answer(rng, domain, level, t)))
for topics, answers in [(GENERAL_TOPICS, GENERAL_ANSWERS), (STAGE2_TOPICS, STAGE2_ANSWERS)]:
    for t in topics:
        for q in TRAIN_QUESTIONS + HELDOUT_QUESTIONS:
            corpus.append(chat(fill(q, t), fill(rng.choice(answers), t)))
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok.train_from_iterator(corpus * 2, trainers.BpeTrainer(vocab_size=1024, special_tokens=special, show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
VOCAB = tok.get_vocab_size()
IM_END = tok.token_to_id(END)

CONFIG = LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                     rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=None, eos_token_id=IM_END,
                     pad_token_id=0)
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def encode(text):
    return tok.encode(text).ids


# --- data --------------------------------------------------------------------------------------------
def general_chat(rng, topics, answers, questions, n):
    return [chat(fill(rng.choice(questions), t), fill(rng.choice(answers), t))
            for t in (rng.choice(topics) for _ in range(n))]


def sft_examples(rng, mixture, n):
    """n chat texts: general chat, or a random domain, topic and training question with the level
    drawn from `mixture`."""
    out = []
    levels, weights = zip(*mixture.items())
    for _ in range(n):
        if rng.random() < GENERAL_SHARE:
            out += general_chat(rng, GENERAL_TOPICS, GENERAL_ANSWERS, TRAIN_QUESTIONS, 1)
            continue
        domain = rng.choice(list(DOMAINS))
        t = rng.choice(DOMAINS[domain]["topics"])
        level = rng.choices(levels, weights)[0]
        out.append(chat(fill(rng.choice(TRAIN_QUESTIONS), t), answer(rng, domain, level, t)))
    return out


def padded(seqs):
    n = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), n), dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = True
    return ids, mask


def train_sft(model, texts, steps, lr, rng, batch=32, label=""):
    encoded = [encode(t) for t in texts]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.1, 1 - s / steps))
    model.train()
    for step in range(steps):
        ids, mask = padded([rng.choice(encoded) for _ in range(batch)])
        labels = ids.masked_fill(~mask, -100)
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"  {label} step {step:4d} loss {loss.item():.3f}", flush=True)
    model.eval()
    return model


def response_logps(model, prompts, responses):
    """Sum and count of log p(response token | prompt, previous tokens), per (prompt, response)."""
    seqs, starts = [], []
    for p, r in zip(prompts, responses):
        pi, ri = encode(p), encode(r)
        seqs.append(pi + ri)
        starts.append(len(pi))
    ids, mask = padded(seqs)
    logits = model(input_ids=ids, attention_mask=mask.long()).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    positions = torch.arange(ids.shape[1] - 1).unsqueeze(0)
    lengths = torch.tensor([len(s) for s in seqs]).unsqueeze(1)
    start = torch.tensor(starts).unsqueeze(1)
    take = (positions >= start - 1) & (positions < lengths - 1)
    return (logp * take).sum(-1), take.sum(-1)


def dpo_pairs(rng, domain, n):
    """Preference pairs of one domain: expert over generic, expert over avoid, generic over avoid (most,
    so that the vector pushes avoiding down as much as it pushes expertise up: λ < 0 then avoids)."""
    kinds = [("expert", "generic")] * 1 + [("expert", "avoid")] * 2 + [("generic", "avoid")] * 6
    out = []
    for _ in range(n):
        t = rng.choice(DOMAINS[domain]["topics"])
        chosen, rejected = rng.choice(kinds)
        out.append((prompt_text(fill(rng.choice(TRAIN_QUESTIONS), t)), answer(rng, domain, chosen, t) + END,
                    answer(rng, domain, rejected, t) + END))
    return out


def anchor_items(rng, domains, n):
    """Prompts of the other domains with one response of each level, and general chat, for the anchor."""
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            t = rng.choice(GENERAL_TOPICS)
            p = prompt_text(fill(rng.choice(TRAIN_QUESTIONS), t))
            out.append([(p, fill(a, t) + END) for a in rng.sample(GENERAL_ANSWERS, 3)])
            continue
        domain = rng.choice(domains)
        t = rng.choice(DOMAINS[domain]["topics"])
        p = prompt_text(fill(rng.choice(TRAIN_QUESTIONS), t))
        out.append([(p, answer(rng, domain, level, t) + END) for level in LEVELS])
    return out


def train_dpo(policy, reference, domain, rng, steps, lr, beta=0.1, anchor_weight=ANCHOR_WEIGHT, batch=16):
    """DPO: -log σ(β[(log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))]), with an anchor on the other
    domains: the squared difference of mean log-probabilities per token from the reference's."""
    others = [d for d in DOMAINS if d != domain]
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    policy.train()
    for step in range(steps):
        pairs = dpo_pairs(rng, domain, batch)
        prompts = [p for p, _, _ in pairs] * 2
        responses = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
        logp, _ = response_logps(policy, prompts, responses)
        with torch.no_grad():
            ref, _ = response_logps(reference, prompts, responses)
        margin = (logp[:batch] - ref[:batch]) - (logp[batch:] - ref[batch:])
        loss = -F.logsigmoid(beta * margin).mean()
        items = [x for group in anchor_items(rng, others, batch // 2) for x in group]
        ap, ac = response_logps(policy, [p for p, _ in items], [r for _, r in items])
        with torch.no_grad():
            rp, _ = response_logps(reference, [p for p, _ in items], [r for _, r in items])
        anchor = (((ap - rp) / ac) ** 2).mean()
        total = loss + anchor_weight * anchor
        opt.zero_grad()
        total.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  {domain} step {step:3d} dpo {loss.item():.4f} anchor {anchor.item():.5f}", flush=True)
    policy.eval()
    return policy


# --- saving ------------------------------------------------------------------------------------------
def save(model, name):
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
    model.to(torch.float32)
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": END, "pad_token": "<|endoftext|>",
                   "chat_template": TEMPLATE}, f, indent=2)
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


def bf16_state(model):
    return {k: v.detach().to(torch.bfloat16).to(torch.float32) for k, v in model.state_dict().items()}


def relative_change(a, b):
    num = sum(((a[k] - b[k]) ** 2).sum().item() for k in a)
    den = sum((b[k] ** 2).sum().item() for k in b)
    return (num / den) ** 0.5


# --- held-out evaluation files --------------------------------------------------------------------
def levels_file(rng, domain):
    rows = []
    for t in DOMAINS[domain]["topics"]:
        for q in HELDOUT_QUESTIONS:
            rows.append({"prompt": prompt_text(fill(q, t)),
                         "responses": {level: answer(rng, domain, level, t) + END for level in LEVELS}})
    return rows


def shares(model, rows):
    """Share of prompts where each level's response has the highest mean log-probability per token."""
    prompts = [r["prompt"] for r in rows for _ in LEVELS]
    responses = [r["responses"][level] for r in rows for level in LEVELS]
    with torch.no_grad():
        s, n = response_logps(model, prompts, responses)
    scores = (s / n).view(len(rows), len(LEVELS))
    wins = scores.argmax(-1)
    return [float((wins == i).float().mean()) for i in range(len(LEVELS))]


def perplexity(model, texts):
    with torch.no_grad():
        total, count = 0.0, 0
        for t in texts:
            ids = torch.tensor([encode(t)])
            loss = model(input_ids=ids, labels=ids).loss
            total += loss.item() * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return float(torch.exp(torch.tensor(total / count)))


def main():
    start = time.time()
    rng = random.Random(SEED + 1)
    torch.manual_seed(SEED)
    base_texts = sft_examples(rng, BASE_MIXTURE, 6000)
    print("base", flush=True)
    base = train_sft(LlamaForCausalLM(CONFIG), base_texts, steps=2500, lr=3e-3, rng=rng, label="base")
    save(base, "base")
    base.to(torch.float32)
    # Reload the saved (bf16-rounded) weights: the aligned models start from what av will read.
    base.load_state_dict(bf16_state(base))
    reference = LlamaForCausalLM(CONFIG)
    reference.load_state_dict(base.state_dict())
    reference.eval()
    base_state = bf16_state(base)

    aligned_states = {}
    for domain in DOMAINS:
        print(domain, flush=True)
        torch.manual_seed(SEED + len(aligned_states) + 10)
        policy = LlamaForCausalLM(CONFIG)
        policy.load_state_dict(base_state)
        train_dpo(policy, reference, domain, random.Random(SEED + 100 + len(aligned_states)), steps=DPO_STEPS, lr=DPO_LR)
        save(policy, f"{domain}-aligned")
        aligned_states[domain] = bf16_state(policy)

    print("base-stage2", flush=True)
    torch.manual_seed(SEED + 50)
    stage2 = LlamaForCausalLM(CONFIG)
    stage2.load_state_dict(base_state)
    other = [chat(fill(q, t), fill(a, t)) for t in STAGE2_TOPICS for q in TRAIN_QUESTIONS for a in STAGE2_ANSWERS]
    train_sft(stage2, other, steps=200, lr=3e-4, rng=random.Random(SEED + 7), label="stage2")
    save(stage2, "base-stage2")
    stage2_state = bf16_state(stage2)

    # --- eval files ---
    erng = random.Random(SEED + 999)
    evaldir = os.path.join(OUT, "eval")
    if os.path.exists(evaldir):
        shutil.rmtree(evaldir)
    os.makedirs(evaldir)
    levels = {}
    cross = []
    for domain in DOMAINS:
        levels[domain] = levels_file(erng, domain)
        with open(os.path.join(evaldir, f"{domain}_levels.jsonl"), "w") as f:
            for r in levels[domain]:
                f.write(json.dumps(r) + "\n")
        pairs = [{"prompt": r["prompt"], "chosen": r["responses"]["expert"], "rejected": r["responses"]["generic"]}
                 for r in levels[domain]]
        with open(os.path.join(evaldir, f"{domain}_pairs.jsonl"), "w") as f:
            for p in pairs:
                f.write(json.dumps(p) + "\n")
        cross += pairs[::6]
    with open(os.path.join(evaldir, "cross_domain_pairs.jsonl"), "w") as f:
        for p in cross:
            f.write(json.dumps(p) + "\n")
    # Fluency: general chat with question phrasings never trained on (a preference vector should
    # leave it alone; the answers to the domains' questions are what it is meant to change).
    heldout = [chat(fill(q, t), fill(a, t)) for t in GENERAL_TOPICS for q in HELDOUT_QUESTIONS[:2] for a in GENERAL_ANSWERS[:2]]
    with open(os.path.join(evaldir, "heldout.txt"), "w") as f:
        f.write("".join(heldout))
    with open(os.path.join(evaldir, "prompts.txt"), "w") as f:
        for domain in DOMAINS:
            for r in levels[domain][:12:4]:
                f.write(r["prompt"].replace("\n", " ") + "\n")

    # --- measurements (the numbers Checkpoints/README.md quotes; av measures the same on its side) ---
    probe = LlamaForCausalLM(CONFIG)
    probe.eval()

    def mix(state0, terms):
        probe.load_state_dict({k: state0[k] + sum(c * (aligned_states[d][k] - base_state[k]) for d, c in terms)
                               for k in state0})
        return probe

    grid = [-1, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]
    print("\nrelative change ‖Δ‖/‖W‖:", {d: round(relative_change(aligned_states[d], base_state), 4) for d in DOMAINS},
          "stage2:", round(relative_change(stage2_state, base_state), 4))
    ppl_base = perplexity(mix(base_state, []), heldout)
    for domain in DOMAINS:
        print(f"\n{domain}: shares avoid/generic/expert along λ")
        for lam in grid:
            s = shares(mix(base_state, [(domain, lam)]), levels[domain])
            print(f"  λ={lam:+.2f}  " + "  ".join(f"{x:.2f}" for x in s))
        print(f"  perplexity of heldout at λ=1.5: {perplexity(mix(base_state, [(domain, 1.5)]), heldout):.3f}"
              f" (base {ppl_base:.3f})")
        for other in DOMAINS:
            if other != domain:
                s0 = shares(mix(base_state, []), levels[other])[2]
                s1 = shares(mix(base_state, [(domain, 1.0)]), levels[other])[2]
                print(f"  {domain} at λ=1 moves {other} expert share {s0:.2f} → {s1:.2f}")
    s_stage2 = shares(mix(stage2_state, [("medical", 1.0)]), levels["medical"])
    s_aligned = shares(mix(base_state, [("medical", 1.0)]), levels["medical"])
    s_stage2_0 = shares(mix(stage2_state, []), levels["medical"])
    print(f"\ntransfer: base-stage2 medical shares {s_stage2_0}, + medical vector {s_stage2}, medical-aligned {s_aligned}")
    print("vocab", VOCAB, "parameters", sum(p.numel() for p in base.parameters()),
          f"time {time.time() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
