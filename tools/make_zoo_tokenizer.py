#!/usr/bin/env python3
"""Writes datasets/demo/zoo-tokenizer.json: a WordPiece tokenizer.json whose ids fit the test zoo.

The zoo models (onnx-models/) have random weights and a vocabulary of 1000 ids, so a real tokenizer
(MiniLM's has 30522) would index past their embedding tables. This one keeps the demo texts usable
with them, for the `--help` examples and quick smoke runs: BERT's normaliser (lower case) and
pre-tokeniser, [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, every printable ASCII character alone
and as a `##` continuation, then the most frequent words of the demo training files until the
vocabulary holds 1000 entries (ties broken alphabetically). Standard-library Python 3; run from
the repository root:

    python3 tools/make_zoo_tokenizer.py
"""
import collections
import json
import re
import string

VOCAB_SIZE = 1000
SOURCES = ["datasets/demo/fine-foods-train.jsonl", "datasets/demo/spam-train.jsonl"]
OUT = "datasets/demo/zoo-tokenizer.json"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def words(text):
    # Close to BertPreTokenizer on lower-cased text: runs of letters/digits, single punctuation marks.
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def main():
    counts = collections.Counter()
    for path in SOURCES:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(w for w in words(json.loads(line)["text"]) if len(w) > 1 and w.isascii())
    chars = [c for c in string.printable if not c.isspace()]
    vocab = SPECIALS + chars + ["##" + c for c in chars]
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) == VOCAB_SIZE:
            break
        if word not in vocab:
            vocab.append(word)
    special = lambda i, t: {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(i, t) for i, t in enumerate(SPECIALS)],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [SPECIALS.index(t)], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": {t: i for i, t in enumerate(vocab)}},
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{OUT}: {len(vocab)} entries")


if __name__ == "__main__":
    main()
