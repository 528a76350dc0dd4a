"""Seeded random strings and the ids Hugging Face `tokenizers` gives them, for every fixture tokenizer.

The strings mix what breaks tokenizers: canonically equivalent spellings (U+037E GREEK QUESTION MARK
against ';', OHM SIGN against Ω, ANGSTROM SIGN, 'e' + U+0301 against 'é', Hangul jamo against
syllables), control characters between symbols, CR/LF/tabs, combining marks, ligatures, emoji with
ZWJ and skin tones, CJK, Arabic, digits, and the special tokens written inside text.
Writes tokenizer_fuzz.json: {kind: [[text, ids], ...]} with encode(text, add_special_tokens=False).

Run: python3 make_tokenizer_fuzz.py   (tokenizers from pip)
"""
import json
import os
import random

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ["gpt2", "smollm2", "llama3", "qwen2", "sp"]
PER_KIND = 600
PIECES = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3
          + list(" .,;:!?-'\"()[]{}<>/\\@#$%^&*_+=|~`") * 2
          + [" ", "  ", "\t", "\n", "\r\n", "\r", "\x00", "\x01", "\x07", "\x13", "\x1b", "\x7f", "\x85", "\xa0"]
          + ["\u037e", "\u2126", "\u03a9", "\u212b", "\u00c5", "e\u0301", "\u00e9", "\u1100\u1161", "\uac00",
             "\u0301", "\u0308", "\ufb01", "\uff21", "\u2028", "\u200b", "\u200d", "\ufeff", "\u00df", "\u1e9e",
             "\U0001F642", "\U0001F469\u200d\U0001F4BB", "\U0001F44D\U0001F3FD", "\U0001F1EB\U0001F1F7",
             "\u4f60\u597d", "\u3053\u3093", "\u0645\u0631\u062d\u0628\u0627", "\u05e9\u05dc\u05d5\u05dd",
             "\u0928\u092e", "\u041f\u0440\u0438", "\u00bd", "\u2163", "\u0663", "\uff11", "\u00b2",
             "the", " the", "ing", " and", "tion", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>",
             "I'm", "don't", "'s", "'ll", "123", "4567", "3.14"])


# Canonically equivalent spellings: each random string is followed by its twin with these swapped,
# so a tokenizer that compares text by canonical equivalence (a cache, a vocabulary) gets one wrong.
TWINS = [(";", "\u037e"), ("\u03a9", "\u2126"), ("\u00c5", "\u212b"), ("\u00e9", "e\u0301"), ("\uac00", "\u1100\u1161")]


def twin(text):
    out = text
    for a, b in TWINS:
        out = out.replace(a, "\0").replace(b, a).replace("\0", b)
    return out


def main():
    rng = random.Random(20261202)
    out = {}
    for kind in KINDS:
        tok = Tokenizer.from_file(os.path.join(HERE, f"tokenizer_{kind}.json"))
        cases = []
        while len(cases) < PER_KIND:
            text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))
            for t in ([text, twin(text)] if twin(text) != text else [text]):
                cases.append([t, tok.encode(t, add_special_tokens=False).ids])
        cases = cases[:PER_KIND]
        out[kind] = cases
    with open(os.path.join(HERE, "tokenizer_fuzz.json"), "w") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))


if __name__ == "__main__":
    main()
