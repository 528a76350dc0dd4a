"""Reference response scores from transformers for LevelsTests (the chat fixture model).

For each prompt and response of the test's levels file: the sum of log p(response token | prompt and
the response before it) and the response's token count, the prompt and the response tokenized apart
(the prompt with the tokenizer's special tokens, the response without), as av eval --levels scores
them. Writes levels_reference.json beside this script.

Run: python3 Tests/EvaluationTests/Fixtures/make_levels_reference.py   (torch, transformers from pip)
"""
import json
import os

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "InferenceTests", "Fixtures", "chat")
ITEMS = [
    ("The court", [" ruled", " ruled for the plaintiff in the end, as courts often do"]),
    ("Interest", [" rates", " rates rose again and again and again this year"]),
]

tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = LlamaForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32).eval()
out = []
for prompt, responses in ITEMS:
    context = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    scores = []
    for response in responses:
        continuation = tokenizer(response, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context + continuation])
        with torch.no_grad():
            logits = model(ids).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        total = sum(float(logp[len(context) - 1 + k, t]) for k, t in enumerate(continuation))
        scores.append({"sum": total, "tokens": len(continuation)})
    out.append({"prompt": prompt, "responses": responses, "scores": scores})
with open(os.path.join(HERE, "levels_reference.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
