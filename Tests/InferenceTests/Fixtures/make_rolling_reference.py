"""Reference log-likelihoods of a token sequence longer than the model's context, for av's rolling
perplexity: the `llama` fixture model (context 128) run by transformers.

Rule (README, `av eval --text`): a forward pass sees at most W tokens. The first window scores
tokens 1..min(n − 1, W) (each from all the tokens before it); each later window scores the next S
tokens, each conditioned on the W tokens that end just before the window's last token: every
token is scored once, with between W − S + 1 and W tokens of context. Writes rolling_reference.json:
the ids and, for each (W, S), the summed negative log-likelihood and the number of tokens scored;
and the same for llama.cpp's llama-perplexity rule (`chunks`: chunks of N tokens, each's first token
replaced by BOS when it has one, the second half of each scored), which `av eval --chunks N` follows.

Run: python3 make_rolling_reference.py   (torch, transformers)
"""
import json
import os

import torch
from transformers import LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
model = LlamaForCausalLM.from_pretrained(os.path.join(HERE, "llama"), dtype=torch.float32).eval()
g = torch.Generator().manual_seed(3)
ids = torch.randint(3, 96, (300,), generator=g).tolist()


def nll(inputs, first_target):
    """Σ −log p(inputs[t] | inputs[:t]) for t ≥ first_target, from one forward over inputs[:-1]."""
    with torch.no_grad():
        logits = model(torch.tensor([inputs[:-1]])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return sum(-logp[t - 1, inputs[t]].item() for t in range(first_target, len(inputs))), len(inputs) - first_target


def rolling(tokens, window, stride):
    total, count = 0.0, 0
    end = min(len(tokens), window + 1)
    s, c = nll(tokens[:end], 1)
    total, count = total + s, count + c
    while end < len(tokens):
        new_end = min(len(tokens), end + stride)
        start = max(0, new_end - 1 - window)
        s, c = nll(tokens[start:new_end], end - start)
        total, count = total + s, count + c
        end = new_end
    return total, count


cases = []
for window, stride in [(128, 64), (128, 128), (32, 8), (128, 1)]:
    s, c = rolling(ids, window, stride)
    cases.append({"window": window, "stride": stride, "nll": s, "tokens": c})
short = ids[:100]
s, c = nll(short, 1)


def chunked(tokens, n, bos):
    """llama.cpp's llama-perplexity: chunks of n tokens, each's first replaced by BOS (when given),
    the second half of each scored (positions n/2 .. n-2 predict the next token)."""
    total, count = 0.0, 0
    for k in range(len(tokens) // n):
        chunk = tokens[k * n:(k + 1) * n]
        if bos is not None:
            chunk = [bos] + chunk[1:]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([chunk])).logits[0].double(), dim=-1)
        for p in range(n // 2, n - 1):
            total -= logp[p, chunk[p + 1]].item()
            count += 1
    return total, count


chunks = []
for n, bos in [(64, None), (64, 1), (100, 1)]:
    cs, cc = chunked(ids, n, bos)
    chunks.append({"chunk": n, "bos": bos, "nll": cs, "tokens": cc})
json.dump({"ids": ids, "cases": cases, "short": {"tokens": c, "nll": s}, "chunks": chunks},
          open(os.path.join(HERE, "rolling_reference.json"), "w"), indent=1)
print(cases, chunks)
