"""Adds to chat/reference.json a greedy reference that is not one token repeated.

The chat fixture's main greedy reference repeats one token (a random tiny model); this tries a few
prompts, keeps the one whose 12-token greedy continuation (transformers, full passes, no cache)
has the most distinct tokens, and stores it as varied_prompt, varied_prompt_ids, varied_greedy_ids.

Run: python3 make_varied_greedy.py   (torch, transformers from pip; after make_model_fixtures.py)
"""
import json

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

model = LlamaForCausalLM.from_pretrained("chat").eval()
tok = PreTrainedTokenizerFast(tokenizer_file="chat/tokenizer.json")
best = None
for prompt in ["The court", "Interest rate", "The patient should", "def f(x):", "Привет, мир", "naïve café über",
               "I'm sure you're right", "Numbers: 1 12 123", "contract law court appeal", "$5 costs 100% more"]:
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    seq = list(ids)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    out = seq[len(ids):]
    if best is None or len(set(out)) > len(set(best[2])):
        best = (prompt, ids, out)
ref = json.load(open("chat/reference.json"))
ref["varied_prompt"], ref["varied_prompt_ids"], ref["varied_greedy_ids"] = best
json.dump(ref, open("chat/reference.json", "w"), indent=1)
print(best)
