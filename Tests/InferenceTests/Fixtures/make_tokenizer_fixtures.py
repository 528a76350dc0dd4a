"""Tokenizers of each kind av reads, and the ids Hugging Face `tokenizers` gives on hard strings.

Trains small vocabularies with `tokenizers` on text generated here, in the configurations real
models use, and writes tokenizer_<kind>.json plus tokenizer_cases.json: for each kind and each
string of CORPUS, the ids of `encode(text, add_special_tokens=False)` and the decoded text.
- gpt2:   ByteLevel pre-tokenizer with the GPT-2 regex (GPT-2), ByteLevel decoder.
- smollm2: Digits(individual_digits) then ByteLevel with the GPT-2 regex (SmolLM2).
- llama3: Split on the Llama 3 regex, then ByteLevel without regex, `ignore_merges` (Llama 3).
- qwen2:  Split on the Qwen2 regex, NFC normalizer, then ByteLevel (Qwen2).
- sp:     SentencePiece-style BPE with byte fallback: Prepend + Replace normalizer, decoder
          Replace/ByteFallback/Fuse/Strip (Llama 2, Mistral's HF conversion).
Each has special tokens <|im_start|>, <|im_end|>, <|endoftext|> (and <s>, </s>, <unk> for sp).

Run: python3 make_tokenizer_fixtures.py   (tokenizers from pip)
"""
import json
import random

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

random.seed(7)
WORDS = ("the patient should take the medicine twice a day contract law court appeal financial market "
         "interest rate portfolio risk doctor symptoms diagnosis treatment plaintiff defendant liability "
         "équipe naïve café Straße über Привет мир 你好 世界 こんにちは 안녕하세요 مرحبا שלום नमस्ते "
         "def return print(x) for i in range(10): if x == 3 {} [] () 123 4567 89 3.14 1,000 $5 100% "
         "I'm you're it's we've they'll she'd don't CAN'T").split()
lines = []
for _ in range(3000):
    n = random.randint(3, 14)
    s = " ".join(random.choice(WORDS) for _ in range(n))
    if random.random() < 0.2:
        s = s.replace(" ", "  ", 1)
    if random.random() < 0.2:
        s += "\n" + " ".join(random.choice(WORDS) for _ in range(3))
    lines.append(s)

CORPUS = [
    "Hello world", " leading space", "trailing space ", "  two  spaces   three", "\ttab\tand\nnewline\n\n",
    "The patient's symptoms: fever (38.5°C) and cough.", "I'm sure you're right, it's fine; we've seen they'll go.",
    "CAN'T WON'T Don't", "Numbers: 1 12 123 1234 12345 3.14159 1,000,000", "naïve café über Straße",
    "Привет, мир! 你好，世界。こんにちは 안녕하세요 مرحبا بالعالم שלום नमस्ते", "emoji 🙂👍🏽🇫🇷 and ZWJ 👩‍💻",
    "def f(x):\n    return x * 2  # double\n", "if (a && b) { c[i] = d->e; }", "   ", "",
    "<|im_start|>user\nWhat is a contract?<|im_end|>\n<|im_start|>assistant\n", "text<|endoftext|>more",
    "rare: ǅ ǈ ẞ Ω Å ﬁ ℌ", "mixed\r\nline endings\rhere", "a" * 40, "x  \n  y", "$5 costs 100% more!!!",
]


def train(pre, normalizer=None, decoder=None, sp=False):
    if sp:
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    else:
        tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    if pre is not None:
        tok.pre_tokenizer = pre
    tok.decoder = decoder
    special = (["<unk>", "<s>", "</s>"] if sp else []) + SPECIAL
    alphabet = pre_tokenizers.ByteLevel.alphabet() if not sp else []
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=special, initial_alphabet=alphabet, show_progress=False,
                                  limit_alphabet=300 if sp else 1000)
    tok.train_from_iterator(lines, trainer)
    if sp:
        # Byte fallback needs the 256 byte tokens in the model's vocabulary (as Llama 2 has them).
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]
        for b in range(256):
            vocab.setdefault(f"<0x{b:02X}>", len(vocab))
        tok = Tokenizer.from_str(json.dumps(data))
    return tok


kinds = {
    "gpt2": train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), decoder=decoders.ByteLevel()),
    "smollm2": train(pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                              pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
                     decoder=decoders.ByteLevel()),
    "llama3": train(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                    decoder=decoders.ByteLevel()),
    "qwen2": train(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2), behavior="isolated"),
                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                   normalizer=normalizers.NFC(), decoder=decoders.ByteLevel()),
    "sp": train(None, normalizer=normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
                decoder=decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)]), sp=True),
}
cases = {}
for kind, tok in kinds.items():
    path = f"tokenizer_{kind}.json"
    tok.save(path)
    if kind == "llama3":  # Llama 3's tokenizer.json sets ignore_merges
        data = json.load(open(path))
        data["model"]["ignore_merges"] = True
        json.dump(data, open(path, "w"), ensure_ascii=False)
        tok = Tokenizer.from_file(path)
    cases[kind] = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids,
                    "decoded": tok.decode(tok.encode(t, add_special_tokens=False).ids, skip_special_tokens=False)} for t in CORPUS]
with open("tokenizer_cases.json", "w") as f:
    json.dump(cases, f, ensure_ascii=False, indent=0)
print({k: len(v.get_vocab()) for k, v in kinds.items()})
