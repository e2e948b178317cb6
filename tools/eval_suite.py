#!/usr/bin/env python3
"""Evaluation suite (gatecut issue 11): the Python side of tools/gpu_eval_suite.sh.

Subcommands (torch is imported only by `train` and `export`, so `split`, `predict`, `report` and
`estimate` also run where torch is missing):

  split    DATASET_DIR WORKDIR [--val-fraction 0.1]
           Reads DATASET_DIR/{train,test}.jsonl[.gz] (tools/make_suite_datasets.py) and writes plain
           WORKDIR/{train,val,test}.jsonl: val is a stratified, seeded slice of train (fixed per data
           set, the same for every method and seed), train is the rest. Every method trains on
           train, chooses among its learning rates on val, and is scored once on test.
  train    --model NAME --onnx F --tokenizer F --work WORKDIR --seed S --out RUN.json
           [--methods dense,lora,full] [--lrs "dense=1e-3,1e-2 lora=3e-4,1e-3,3e-3 full=3e-5,1e-4"]
           PyTorch baselines on one data set and seed, the encoder's weights rebuilt from the ONNX
           initializers (tools/eval_harness.py, checked against ONNX Runtime): dense (frozen encoder
           + linear head), lora (PEFT LoRA r=8 + head), full (every weight + head). Each method runs
           at every learning rate of its list; the one with the best val accuracy is the method's
           result (its test accuracy and macro-F1 are the ones reported; the others are kept too).
  export   --model NAME --onnx F --tokenizer F --work WORKDIR --seed S --out DIR
           Part 3 of the issue: fully fine-tunes a transformers BertForSequenceClassification (the
           ONNX encoder's weights, a new pooler + classifier; learning rate chosen on val among
           --lrs full=...), and exports DIR/cls-fp32.onnx (TorchScript, opset 17, inputs input_ids /
           attention_mask / token_type_ids, output logits) and DIR/cls-fp16.onnx (ONNX Runtime's BERT
           optimizer, then convert_float_to_float16(keep_io_types=True): the fused float16 BERT
           gatecut supports), DIR/labels.txt (logit order) and DIR/export.json (torch and ONNX test
           accuracy: the yardstick of the compressed models).
  predict  --onnx F --tokenizer F --data TEST.jsonl --labels a,b,... --out PRED.json
           Test accuracy and macro-F1 of a classifier ONNX file (gatecut's classifier.onnx or
           model.onnx), ONNX Runtime (SUITE_ORT_DEVICE: CUDA without TF32 where present, else CPU); logits in --labels order.
  report   RAWDIR [--md OUT.md] [--select V1,V2,...] [--select-by accuracy|loss]
           One table: per data set, model and method, mean accuracy over seeds with a 95% t-interval
           (mean ± t(0.975, n-1)·s/√n), macro-F1 likewise (shown for unbalanced sets, where it matters),
           and gaps to LoRA and to the frozen encoder; then the compressed-classifier runs (part 3).
           --select: gatecut variants (GC_VARIANTS names; "default" for the unnamed one) among which each
           seed's run is chosen by its validation accuracy (gatecut's --eval on the val slice), as LoRA's
           learning rate is: a row "gatecut S% [best of V1/V2/... on val]" beside the variants' own rows.
           --select-by loss: the lowest validation loss chooses instead, for gatecut's variants and for the
           baselines' rates (runs from before 2026-12-01 afternoon recorded no baseline loss: chosen as they were).
  estimate [--sets ...] Prints the GPU minutes per data set that tools/gpu_eval_suite.sh plans for.
  run-weight            The part-3 run folders on stdin in 3-epoch runs (5/3 from 30%), for the script's estimate.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_LRS = {"dense": [1e-3, 1e-2], "lora": [3e-4, 1e-3, 3e-3], "full": [3e-5, 1e-4]}
SPLIT_SEED = 20261130
# t(0.975, df) for df = 1..30 (two-sided 95%); df > 30 uses 1.96.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


class SuiteError(Exception):
    """Bad input; printed as one line, exit 2."""


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def open_text(path):
    path = str(path)
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def read_rows(path):
    rows = []
    with open_text(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                rows.append({"text": r["text"], "label": str(r["label"])})
            except (ValueError, KeyError, TypeError) as e:
                raise SuiteError(f"{path}:{i}: not a {{\"text\", \"label\"}} JSON line ({type(e).__name__}: {e})")
    if not rows:
        raise SuiteError(f"{path}: no rows")
    return rows


def find_split(d: Path, name):
    for ext in (".jsonl", ".jsonl.gz"):
        if (d / f"{name}{ext}").exists():
            return d / f"{name}{ext}"
    raise SuiteError(f"{d}: no {name}.jsonl or {name}.jsonl.gz (build with tools/make_suite_datasets.py)")


def write_rows(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def stratified_val(rows, fraction, seed):
    rng = random.Random(seed)
    by = collections.defaultdict(list)
    for i, r in enumerate(rows):
        by[r["label"]].append(i)
    val = set()
    for label in sorted(by):
        idx = by[label]
        rng.shuffle(idx)
        val.update(idx[: max(1, round(len(idx) * fraction))])
    return [r for i, r in enumerate(rows) if i not in val], [r for i, r in enumerate(rows) if i in val]


def cmd_split(args):
    src, work = Path(args.dataset_dir), Path(args.work)
    train = read_rows(find_split(src, "train"))
    test = read_rows(find_split(src, "test"))
    tr, val = stratified_val(train, args.val_fraction, args.seed)
    labels = sorted({r["label"] for r in train})
    missing = sorted({r["label"] for r in test} - set(labels))
    if missing:
        raise SuiteError(f"{src}: test labels {missing} never occur in train")
    for name, rows in (("train", tr), ("val", val), ("test", test)):
        write_rows(work / f"{name}.jsonl", rows)
    c = collections.Counter(r["label"] for r in test)
    info = dict(dataset=src.name, labels=labels, train=len(tr), val=len(val), test=len(test),
                test_counts={k: c[k] for k in labels}, majority=max(c.values()) / len(test),
                unbalanced=max(c.values()) / len(test) > 1.2 / len(labels), split_seed=args.seed,
                val_fraction=args.val_fraction)
    (work / "split.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

def scores(pred, gold, n_labels):
    """accuracy, macro-F1 (F1 of a class with no gold and no predicted rows is left out)."""
    n = len(gold)
    acc = sum(int(p == g) for p, g in zip(pred, gold)) / n
    f1s = []
    for k in range(n_labels):
        tp = sum(1 for p, g in zip(pred, gold) if p == k and g == k)
        fp = sum(1 for p, g in zip(pred, gold) if p == k and g != k)
        fn = sum(1 for p, g in zip(pred, gold) if p != k and g == k)
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return acc, sum(f1s) / len(f1s)


def t_interval(values):
    """(mean, half-width of the 95% t-interval, n); half-width None for a single value."""
    n = len(values)
    m = statistics.fmean(values)
    if n < 2:
        return m, None, n
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return m, t * statistics.stdev(values) / math.sqrt(n), n


# ----------------------------------------------------------------------------------------------
# PyTorch: baselines and the fine-tuned classifier export
# ----------------------------------------------------------------------------------------------

def parse_schedules(spec):
    """--schedules "constant,linear": the learning-rate schedules each rate is tried with (the choice on validation is
    over rates × schedules)."""
    out = [s.strip() for s in (spec or "constant").split(",") if s.strip()]
    bad = [s for s in out if s not in ("constant", "linear")]
    if bad or not out:
        raise SuiteError(f"--schedules: {','.join(bad) or 'nothing'} given; each must be constant or linear")
    return out


def parse_lrs(spec):
    lrs = {k: list(v) for k, v in DEFAULT_LRS.items()}
    for part in (spec or "").split():
        k, _, v = part.partition("=")
        if k not in lrs or not v:
            raise SuiteError(f"--lrs: '{part}' is not METHOD=LR[,LR...] with METHOD one of {', '.join(lrs)}")
        lrs[k] = [float(x) for x in v.split(",")]
    return lrs


class Prepared:
    """Tokenised train / val / test of one data set on the device, and the encoder's weights."""

    def __init__(self, args, device):
        import eval_harness as eh
        self.eh = eh
        work = Path(args.work)
        self.split = json.loads((work / "split.json").read_text())
        self.labels = self.split["labels"]
        idx = {k: i for i, k in enumerate(self.labels)}
        t0 = time.time()
        self.cfg, self.sd = eh.onnx_state(args.onnx)
        self.data = {}
        for name in ("train", "val", "test"):
            rows = read_rows(work / f"{name}.jsonl")
            if args.limit:
                rows = rows[: args.limit if name == "train" else max(16, args.limit // 4)]
            ids, lengths = tokenize(args.tokenizer, [r["text"] for r in rows], args.max_len)
            self.data[name] = eh.Data(ids, lengths, [idx[r["label"]] for r in rows], device)
        log(f"{args.model}: {self.cfg['layers']} layers, {sum(v.size for v in self.sd.values()):,} parameters; "
            f"data {', '.join(f'{k} {v.n}' for k, v in self.data.items())} ({time.time() - t0:.1f}s)")
        test = self.data["test"]
        if args.no_onnx_check:  # dry runs where onnxruntime is missing
            self.check = dict(skipped="--no-onnx-check")
            return
        self.check = eh.check_against_onnx(args.onnx, self.cfg, self.sd, args.impl, test.ids.cpu(),
                                           test.lengths.tolist(), device)
        log("torch vs ONNX Runtime:", json.dumps(self.check))
        if not self.check["max_abs_diff"] <= args.check_tol:
            raise SuiteError(f"{args.onnx}: the PyTorch rebuild differs from the ONNX model by "
                             f"{self.check['max_abs_diff']:.3g} > {args.check_tol}")


def tokenize(tok_path, texts, max_len):
    """(ids [n, max_len] padded, lengths) as tools/eval_harness.py's, with the WordPiece fallback."""
    import torch
    try:
        import tokenizers  # noqa: F401
        import eval_harness as eh
        return eh.tokenize(tok_path, texts, max_len)
    except ImportError:
        tok = WordPiece(tok_path)
        encs = [tok.encode(t, max_len).ids for t in texts]
        ids = torch.full((len(texts), max_len), tok.vocab.get("[PAD]", 0), dtype=torch.long)
        for i, e in enumerate(encs):
            ids[i, :len(e)] = torch.tensor(e, dtype=torch.long)
        return ids, [len(e) for e in encs]


def predictions(model, data, device, batch=128):
    import torch
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, data.n, batch):
            idx = torch.arange(s, min(s + batch, data.n))
            ids, mask, tt, _ = data.batch(idx)
            logits = model(ids, mask, tt)
            logits = logits.logits if hasattr(logits, "logits") else logits
            out.extend(logits.argmax(-1).tolist())
    return out


def build_model(method, prep, args, device):
    """(model, trainable parameters, train-mode function) for dense / lora / full."""
    import torch.nn as nn
    eh = prep.eh
    dropout = 0.0 if method == "dense" else args.dropout
    enc, used, note = eh.build_encoder(args.impl, prep.cfg, dropout)
    eh.load_weights(enc, prep.sd)
    n_labels = len(prep.labels)
    train_mode = None
    if method == "dense":
        for p in enc.parameters():
            p.requires_grad_(False)
        model = eh.Classifier(enc, prep.cfg["hidden"], n_labels, frozen_no_grad=True).to(device)

        def train_mode():
            model.eval()
            model.head.train()
        trainable = list(model.head.parameters())
    elif method == "lora":
        for p in enc.parameters():
            p.requires_grad_(False)
        try:  # PEFT, as the issue asks; the harness's built-in LoRA only where peft is missing (dry runs)
            from peft import LoraConfig, get_peft_model
            lcfg = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.1,
                              target_modules=["query", "key", "value", "dense"], bias="none")
            if used != "hf":
                from peft import inject_adapter_in_model
                enc = inject_adapter_in_model(lcfg, enc)
            else:
                enc = get_peft_model(enc, lcfg)
            info_lora = "peft"
        except ImportError:
            n = eh.lora_encoder(enc, args.lora_r, 2 * args.lora_r, 0.1)
            if n != 6 * prep.cfg["layers"]:
                raise RuntimeError(f"built-in LoRA wrapped {n} linears, expected {6 * prep.cfg['layers']}")
            info_lora = "built-in (peft missing)"
        model = eh.Classifier(enc.to(device), prep.cfg["hidden"], n_labels).to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
    elif method == "full":
        model = eh.Classifier(enc.to(device), prep.cfg["hidden"], n_labels).to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
    else:
        raise SuiteError(f"unknown method {method!r} (dense, lora, full)")
    assert all(isinstance(p, nn.Parameter) for p in trainable)
    info = dict(impl=used, impl_note=note, dropout=dropout)
    if method == "lora":
        info["lora"] = info_lora
    return model, trainable, train_mode, info


def one_run(method, lr, prep, args, device, schedule="constant"):
    import torch
    eh = prep.eh
    torch.manual_seed(args.seed)
    model, trainable, train_mode, info = build_model(method, prep, args, device)
    t0 = time.time()
    r = eh.train_run(model, trainable, prep.data["train"], prep.data["val"], device, args.epochs, args.batch, lr,
                     args.seed, train_mode=train_mode, max_steps=args.max_steps, schedule=schedule)
    res = dict(method=method, lr=lr, schedule=schedule, seed=args.seed, steps=r["steps"],
               train_seconds=r["train_seconds"],
               samples_per_s=r["samples_per_s_median"], val_accuracy_per_epoch=r["accuracy_per_epoch"],
               val_loss=r["eval_loss"], val_loss_per_epoch=r["eval_loss_per_epoch"],
               trainable_params=sum(p.numel() for p in trainable), **info)
    n = len(prep.labels)
    for split in ("val", "test"):
        data = prep.data[split]
        acc, f1 = scores(predictions(model, data, device), data.y.tolist(), n)
        res[f"{split}_accuracy"], res[f"{split}_macro_f1"] = acc, f1
    res["wall_seconds"] = time.time() - t0
    del model, trainable
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


def torch_setup(args):
    import torch
    sys.path.insert(0, str(HERE))
    device = torch.device(args.device if (args.device != "cuda" or torch.cuda.is_available()) else "cpu")
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    # several jobs share the GPU machine's cores; each torch process otherwise takes all of them for its CPU work
    # (the exports: bge-small's fp32 export took 95 s with nine at once, 27 s with two, 2026-12-02)
    threads = os.environ.get("SUITE_TORCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    return device


def save_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def best_on_val_accuracy(runs):
    """{method: its run of the highest validation accuracy} over the runs that did not fail (ties keep the first)."""
    best = {}
    for x in runs:
        if "error" not in x and (x["method"] not in best or x["val_accuracy"] > best[x["method"]]["val_accuracy"]):
            best[x["method"]] = x
    return best


def cmd_train(args):
    device = torch_setup(args)
    lrs = parse_lrs(args.lrs)
    prep = Prepared(args, device)
    out = dict(kind="torch", model=args.model, dataset=prep.split["dataset"], seed=args.seed, epochs=args.epochs,
               batch=args.batch, max_len=args.max_len, labels=prep.labels, onnx_check=prep.check,
               device=str(device), versions=prep.eh.versions(), runs=[], chosen={},
               started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    schedules = out["schedules"] = parse_schedules(args.schedules)
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for schedule, lr in [(s, lr) for s in schedules for lr in lrs[method]]:
            log(f"=== {args.model} {prep.split['dataset']} seed {args.seed}: {method} lr {lr:g}"
                + ("" if schedule == "constant" else f" ({schedule} schedule)"))
            try:
                r = one_run(method, lr, prep, args, device, schedule)
                log(f"    val {r['val_accuracy']:.4f}, test {r['test_accuracy']:.4f} (macro-F1 {r['test_macro_f1']:.4f}), "
                    f"{r['samples_per_s']:.0f} samples/s, {r['wall_seconds']:.1f}s")
            except Exception as e:  # noqa: BLE001  (one failed run must not lose the others)
                r = dict(method=method, lr=lr, schedule=schedule, seed=args.seed, error=f"{type(e).__name__}: {e}",
                         traceback=traceback.format_exc())
                log(f"    FAILED: {r['error']}")
            out["runs"].append(r)
            save_json(args.out, out)
        best = best_on_val_accuracy(out["runs"]).get(method)
        if best is not None:
            out["chosen"][method] = dict(best, chosen_from=lrs[method], schedules=schedules)
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save_json(args.out, out)
    return 0


def hf_classifier(prep, n_labels, dropout, seed):
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    c = prep.cfg
    torch.manual_seed(seed)
    hc = BertConfig(vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
                    num_attention_heads=c["heads"], intermediate_size=c["ffn"], max_position_embeddings=c["max_pos"],
                    type_vocab_size=c["type_vocab"], layer_norm_eps=c["eps"], hidden_act="gelu",
                    hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, num_labels=n_labels,
                    classifier_dropout=dropout)
    m = BertForSequenceClassification(hc)
    res = m.bert.load_state_dict({k: torch.from_numpy(v) for k, v in prep.sd.items()}, strict=False)
    missing = [k for k in res.missing_keys if not k.startswith("pooler.") and not k.endswith("position_ids")]
    if missing or res.unexpected_keys:
        raise RuntimeError(f"weights do not fit BertForSequenceClassification: missing {missing[:6]}, "
                           f"unexpected {list(res.unexpected_keys)[:6]}")
    return m


class _Logits:
    """Calls a transformers classifier as (ids, mask, tt) -> logits, for train_run."""

    def __init__(self, m):
        self.m = m

    def __getattr__(self, k):
        return getattr(self.m, k)

    def __call__(self, ids, mask, tt):
        return self.m(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits


class WordPiece:
    """BERT uncased WordPiece from a tokenizer.json, for dry runs without the `tokenizers` package
    (lower-cased, accents stripped, split at whitespace and punctuation, greedy longest match)."""

    def __init__(self, path):
        import types
        import unicodedata
        self.ud = unicodedata
        t = json.loads(Path(path).read_text())
        if t["model"]["type"] != "WordPiece" or not t["normalizer"].get("lowercase", False):
            raise SuiteError(f"{path}: the fallback tokenizer reads only uncased BERT WordPiece")
        self.vocab = t["model"]["vocab"]
        self.unk = self.vocab[t["model"].get("unk_token", "[UNK]")]
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.types = types

    def words(self, text):
        ud = self.ud
        text = "".join(c for c in ud.normalize("NFD", text.lower()) if ud.category(c) != "Mn")
        out, cur = [], []
        for c in text:
            cat = ud.category(c)
            if c.isspace() or cat.startswith("C"):
                if cur:
                    out.append("".join(cur))
                cur = []
            elif cat.startswith("P") or (33 <= ord(c) <= 47 or 58 <= ord(c) <= 64 or 91 <= ord(c) <= 96
                                         or 123 <= ord(c) <= 126):
                if cur:
                    out.append("".join(cur))
                cur = []
                out.append(c)
            else:
                cur.append(c)
        if cur:
            out.append("".join(cur))
        return out

    def encode(self, text, max_len):
        ids = [self.cls]
        for w in self.words(text):
            if len(w) > 100:
                ids.append(self.unk)
                continue
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                while end > start and (w[start:end] if start == 0 else "##" + w[start:end]) not in self.vocab:
                    end -= 1
                if end == start:
                    pieces = [self.unk]
                    break
                pieces.append(self.vocab[w[start:end] if start == 0 else "##" + w[start:end]])
                start = end
            ids.extend(pieces)
        ids = ids[: max_len - 1] + [self.sep]
        return self.types.SimpleNamespace(ids=ids)


def ort_providers(ort):
    """SUITE_ORT_DEVICE: auto (CUDA where this onnxruntime has it, else CPU), cuda or cpu. CUDA runs without TF32
    (ONNX Runtime's CUDA provider rounds fp32 GEMMs to TF32 by default): the scores stay those of exact fp32."""
    want = os.environ.get("SUITE_ORT_DEVICE", "auto")
    if want not in ("auto", "cuda", "cpu"):
        raise SuiteError(f"SUITE_ORT_DEVICE must be auto, cuda or cpu, got {want!r}")
    if want != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    if want == "cuda":
        raise SuiteError(f"SUITE_ORT_DEVICE=cuda, but onnxruntime {ort.__version__} has no CUDA provider")
    return ["CPUExecutionProvider"]


def ort_scores(path, tokenizer, rows, labels, max_len, batch=64, threads=None):
    """Test accuracy and macro-F1 of a classifier ONNX file (ONNX Runtime: CUDA where available, else CPU with
    SUITE_ORT_THREADS threads, default 8: several scorings run at once on the GPU machine)."""
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or int(os.environ.get("SUITE_ORT_THREADS", "8"))
    sess = ort.InferenceSession(str(path), so, providers=ort_providers(ort))
    names = [i.name for i in sess.get_inputs()]
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(str(tokenizer))
        tok.no_padding()
        tok.enable_truncation(max_length=max_len)
        pad = tok.token_to_id("[PAD]") or 0
        encs = tok.encode_batch([r["text"] for r in rows])
    except ImportError:  # only where `tokenizers` is missing (CPU dry runs); the GPU machine has it
        tok = WordPiece(tokenizer)
        pad = tok.vocab.get("[PAD]", 0)
        encs = [tok.encode(r["text"], max_len) for r in rows]
    idx = {k: i for i, k in enumerate(labels)}
    pred, gold = [], [idx[r["label"]] for r in rows]
    for s in range(0, len(rows), batch):
        part = encs[s:s + batch]
        L = max(len(e.ids) for e in part)
        ids = np.full((len(part), L), pad, dtype=np.int64)
        mask = np.zeros((len(part), L), dtype=np.int64)
        for i, e in enumerate(part):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = sess.run(None, {k: v for k, v in feeds.items() if k in names})[0]
        if logits.ndim != 2 or logits.shape[1] != len(labels):
            raise SuiteError(f"{path}: first output has shape {logits.shape}, expected [batch, {len(labels)}]")
        pred.extend(np.asarray(logits, dtype=np.float32).argmax(-1).tolist())
    acc, f1 = scores(pred, gold, len(labels))
    return dict(accuracy=acc, macro_f1=f1, rows=len(rows), file=str(path), ort_provider=sess.get_providers()[0])


class SkippedPrecision(Exception):
    """A precision the export was not asked for (--precisions)."""


def cmd_export(args):
    t_start = time.time()
    import torch
    device = torch_setup(args)
    lrs = parse_lrs(args.lrs)["full"]
    prep = Prepared(args, device)
    seconds = {"prepare": time.time() - t_start}   # where an export's wall time goes (several run at once)
    n = len(prep.labels)
    eh = prep.eh
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = dict(kind="export", model=args.model, dataset=prep.split["dataset"], seed=args.seed, labels=prep.labels,
               epochs=args.epochs, batch=args.batch, max_len=args.max_len, candidates=[])
    best, best_state = None, None
    for schedule, lr in [(s, lr) for s in parse_schedules(args.schedules) for lr in lrs]:
        m = hf_classifier(prep, n, args.dropout, args.seed).to(device)
        wrapped = _Logits(m)
        t0 = time.time()
        r = eh.train_run(wrapped, list(m.parameters()), prep.data["train"], prep.data["val"], device, args.epochs,
                         args.batch, lr, args.seed, max_steps=args.max_steps, schedule=schedule)
        cand = dict(lr=lr, schedule=schedule, val_accuracy=r["accuracy"], seconds=time.time() - t0)
        cand["test_accuracy"], cand["test_macro_f1"] = scores(predictions(wrapped, prep.data["test"], device),
                                                              prep.data["test"].y.tolist(), n)
        # how well the original fits its own training rows: where it does not, its answers (the labels of a
        # label-free compression) differ from the true labels a labelled compression trains on
        cand["train_accuracy"], _ = scores(predictions(wrapped, prep.data["train"], device),
                                           prep.data["train"].y.tolist(), n)
        log(f"export fine-tune lr {lr:g} ({schedule}): val {cand['val_accuracy']:.4f} test {cand['test_accuracy']:.4f}"
            f" train {cand['train_accuracy']:.4f}")
        res["candidates"].append(cand)
        if best is None or cand["val_accuracy"] > best["val_accuracy"]:
            best, best_state = cand, {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
        del m, wrapped
    res["chosen"] = best
    seconds["fine_tune"] = sum(c["seconds"] for c in res["candidates"])
    t0 = time.time()
    # The exports as tools/export_deploy_models.py makes the zoo's classifier files (the styles gatecut
    # is tested on): fp32 with eager attention, TorchScript opset 17; fp16 from a source graph with the
    # classic attention and mask (the shape ORT's BERT fusion reads), fused, then float16.
    import export_deploy_models as ed
    from transformers import AttentionInterface
    _, Cls, _ = ed.wrappers()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = ed.text_axes(names, ["logits"])
    example = ed.text_feeds(names, 2, 16, True, seed=7)

    def exported(impl, classic):
        m = hf_classifier(prep, n, 0.0, args.seed)
        m.load_state_dict(best_state)
        ed.set_attn(m, impl)
        return Cls(m.cpu().eval(), names, classic_mask=classic).eval()

    if "fp32" in args.precisions.split():
        fp32 = out_dir / "cls-fp32.onnx"
        res["fp32"] = dict(file=fp32.name, how=ed.export_ts(exported("eager", False), example, axes, str(fp32)))
    else:   # an fp16-only call: its yardstick is gatecut's score of the fp16 file (--test), not the fp32 one
        res["fp32"] = dict(skipped="fp32 not in --precisions")
    seconds["export_fp32"] = time.time() - t0
    t0 = time.time()
    try:
        if "fp16" not in args.precisions.split():
            raise SkippedPrecision("fp16 not in --precisions")
        AttentionInterface.register("gatecut_classic", ed.base.classic_attention)
        w16 = exported("gatecut_classic", True)
        src = out_dir / "cls-fp16.src.onnx"
        call = ed.export_ts(w16, example, axes, str(src))
        ed.base.pin_head_reshapes(str(src), str(src), prep.cfg["heads"], prep.cfg["hidden"] // prep.cfg["heads"])
        fp16 = out_dir / "cls-fp16.onnx"
        fused = ed.ort_optimizer(str(src), str(fp16), "bert", w16.m.config, float16=True)
        src.unlink()
        res["fp16"] = dict(file=fp16.name, fused=fused, how=call + " -> optimize_model(model_type='bert', opt_level=0)"
                           " + convert_float_to_float16(keep_io_types=True)")
    except SkippedPrecision as e:   # not asked for: neither exported nor scored (its CPU scoring is slow)
        res["fp16"] = dict(skipped=str(e))
    except Exception as e:  # noqa: BLE001  (the fp32 file is still worth compressing)
        res["fp16"] = dict(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    seconds["export_fp16"] = time.time() - t0
    (out_dir / "labels.txt").write_text(",".join(prep.labels) + "\n")
    test_rows = read_rows(Path(args.work) / "test.jsonl")
    if args.limit:
        test_rows = test_rows[: max(16, args.limit // 4)]
    for key in ("fp32", "fp16"):
        if "file" in res[key]:
            t0 = time.time()
            try:
                res[key].update(ort_scores(out_dir / res[key]["file"], args.tokenizer, test_rows, prep.labels,
                                           args.max_len))
            except Exception as e:  # noqa: BLE001  (fp16 fused ops may lack CPU kernels)
                res[key]["ort_cpu_error"] = f"{type(e).__name__}: {e}"
            seconds[f"score_{key}"] = time.time() - t0
            log(f"export {key}: {json.dumps(res[key])}")
    seconds["total"] = time.time() - t_start
    res["seconds"] = seconds
    log(f"export seconds: {json.dumps({k: round(v, 1) for k, v in seconds.items()})}")
    save_json(out_dir / "export.json", res)
    return 0


def cmd_predict(args):
    rows = read_rows(args.data)
    labels = args.labels.split(",")
    r = ort_scores(args.onnx, args.tokenizer, rows, labels, args.max_len)
    save_json(args.out, r)
    print(json.dumps(r))
    return 0


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def fmt(m, hw, scale=100):
    if m is None:
        return "—"
    return f"{m * scale:.1f}" + (f" ± {hw * scale:.1f}" if hw is not None else "")


def scored(g):
    """A gatecut run the tables count: it has an accuracy and gatecut exited 0 (4: it did, and only the CPU scoring
    of a float16 file failed). A non-zero exit with an accuracy is a stale summary.json from an earlier attempt."""
    return "accuracy" in g and g.get("exit", 0) in (0, 4)


def gc_val_loss(g, run_dir: Path):
    """The validation loss of the parameters a gatecut run kept: summary.json's gated_eval_loss (since 2026-12-01,
    afternoon), else its metrics.jsonl's evaluation row at the selected step (the last evaluation without one)."""
    s = g.get("summary", {})
    if isinstance(s.get("gated_eval_loss"), (int, float)):
        return s["gated_eval_loss"]
    try:
        rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    except OSError:
        return None
    rows = [r for r in rows if r.get("eval") and isinstance(r.get("task_loss"), (int, float))]
    if not rows:
        return None
    want = s.get("selected_step", rows[-1]["step"])
    hit = [r for r in rows if r["step"] == want]
    return hit[-1]["task_loss"] if hit else None


def chosen_runs(r, select_by):
    """{method: the chosen run} of a torch results file: as chosen there (the best validation accuracy), or with
    select_by="loss" the lowest validation loss where every run of the method has one."""
    chosen = dict(r.get("chosen", {}))
    if select_by == "loss":
        by_method = collections.defaultdict(list)
        for run in r.get("runs", []):
            if "error" not in run:
                by_method[run["method"]].append(run)
        for method, runs in by_method.items():
            if runs and all(isinstance(x.get("val_loss"), (int, float)) for x in runs):
                chosen[method] = min(runs, key=lambda x: x["val_loss"])
    return chosen


def collect(raw: Path, select_by="accuracy", seeds=None):
    """{(dataset, model, method label): [run dicts with accuracy, macro_f1]}, split infos, part-3 rows.
    select_by: how the baselines' learning rates are chosen on validation ("accuracy", as the runs chose, or "loss").
    seeds: a set of seeds to keep (None: every seed the folder holds)."""
    keep = (lambda d: True) if seeds is None else (lambda d: d.get("seed") in seeds)
    cells = collections.defaultdict(list)
    splits, post = {}, collections.defaultdict(list)
    for p in sorted(raw.rglob("split.json")):
        s = json.loads(p.read_text())
        splits[s["dataset"]] = s
    for p in sorted(raw.rglob("torch-*.json")):
        r = json.loads(p.read_text())
        if not keep(r):
            continue
        for method, c in chosen_runs(r, select_by).items():
            label = {"dense": "frozen + head", "lora": "LoRA r=8", "full": "full FT"}[method]
            cells[(r["dataset"], r["model"], label)].append(
                dict(accuracy=c["test_accuracy"], macro_f1=c["test_macro_f1"], seed=r["seed"], lr=c["lr"],
                     schedule=c.get("schedule", "constant")))
    for p in sorted(raw.rglob("gc.json")):
        g = json.loads(p.read_text())
        if not scored(g) or not keep(g):
            continue
        g["val_loss"] = gc_val_loss(g, p.parent)
        if g.get("source") == "finetuned":
            mode = g["labels_mode"] + (f" [{g['variant']}]" if g.get("variant") else "")
            post[(g["dataset"], g["model"], g["precision"], mode, g["sparsity"])].append(g)
        else:
            variant = f" [{g['variant']}]" if g.get("variant") else ""
            cells[(g["dataset"], g["model"], f"gatecut {round(g['sparsity'] * 100)}%{variant}")].append(g)
    exports = collections.defaultdict(list)
    for p in sorted(raw.rglob("export.json")):
        e = json.loads(p.read_text())
        if keep(e):
            exports[(e["dataset"], e["model"])].append(e)
    return cells, splits, post, exports


def select_on_val(cells, names, by="accuracy"):
    """Adds, per (data set, model, sparsity), a row of each seed's gatecut run among the variants {@code names}
    with the best validation figure: by="accuracy", the slim model's accuracy on --eval val (ties: the first
    name); by="loss", the lowest validation loss of the kept parameters (ties: the higher accuracy, then the first
    name). Seeds missing a variant or its validation figure are left out of that row."""
    if not names:
        return
    if by not in ("accuracy", "loss"):
        raise SuiteError(f"--select-by must be accuracy or loss, got {by!r}")
    wanted = ["" if n == "default" else n for n in names]
    label_of = lambda v: "default" if v == "" else v
    val_acc = lambda g: g.get("summary", {}).get("slim_eval_accuracy")
    groups = collections.defaultdict(dict)   # (ds, model, sparsity) -> seed -> variant -> run
    for (ds, model, _), runs in list(cells.items()):
        for g in runs:
            if "sparsity" not in g or g.get("gatecut_eval") != "val" or g.get("variant", "") not in wanted:
                continue
            if isinstance(val_acc(g), (int, float)) and (by == "accuracy" or isinstance(g.get("val_loss"), (int, float))):
                groups[(ds, model, g["sparsity"])].setdefault(g["seed"], {})[g.get("variant", "")] = g
    for (ds, model, s), seeds in groups.items():
        chosen = []
        for seed in sorted(seeds):
            runs = seeds[seed]
            if any(v not in runs for v in wanted):
                continue
            if by == "accuracy":
                key = lambda v: (val_acc(runs[v]), -wanted.index(v))
            else:
                key = lambda v: (-runs[v]["val_loss"], val_acc(runs[v]), -wanted.index(v))
            best = max(wanted, key=key)
            chosen.append(dict(runs[best], chosen_variant=label_of(best)))
        if chosen:
            how = "on val" if by == "accuracy" else "on val loss"
            label = f"gatecut {round(s * 100)}% [best of {'/'.join(label_of(v) for v in wanted)} {how}]"
            cells[(ds, model, label)] = chosen


METHOD_ORDER = ["frozen + head", "LoRA r=8", "full FT", "gatecut 0%", "gatecut 20%", "gatecut 30%", "gatecut 40%"]


def seed_gap(labelled, free):
    """Labelled minus label-free mean accuracy over the seeds both rows ran (their means when either lacks seeds)."""
    common = sorted(set(labelled[2]) & set(free[2]))
    if not common:
        return labelled[0] - free[0]
    return statistics.fmean(labelled[2][k] - free[2][k] for k in common)


def part3_targets(retained):
    """Issue 11's part-3 targets per precision, sparsity and labelled recipe: the lowest share of its original any
    set × model keeps (>= 99%, >= 98% from 40% removed) and the largest gap, in points, from the labelled run down to
    its label-free partner (the row named with label-free for labels, the same [variant], on the seeds both ran;
    <= 1). retained: (precision, sparsity, row, set, model, mean accuracy, retained fraction[, {seed: accuracy}])."""
    rows = {}
    for prec, sp, lab, ds, model, m, frac, *per_seed in retained:
        rows.setdefault((prec, sp, lab), {})[(ds, model)] = (m, frac, per_seed[0] if per_seed else {})
    out = []
    for (prec, sp, lab), cells in sorted(rows.items()):
        if not lab.startswith("labels"):
            continue
        need = 98 if sp >= 0.4 - 1e-9 else 99
        (ds, model), (_, low, _) = min(cells.items(), key=lambda kv: kv[1][1])
        free = rows.get((prec, sp, "label-free" + lab[len("labels"):]), {})
        pairs = [(k, seed_gap(cells[k], free[k])) for k in cells if k in free]
        lf = min(free.items(), key=lambda kv: kv[1][1]) if free else None
        gap = max(pairs, key=lambda p: p[1]) if pairs else None
        out.append(f"| {prec} | {round(sp * 100)}% | {lab} | {len(cells)} | {low * 100:.1f}% ({ds} {model}) | ≥ {need}%: "
                   f"{'met' if low * 100 >= need - 1e-9 else 'missed'} | "
                   + (f"{lf[1][1] * 100:.1f}% ({lf[0][0]} {lf[0][1]}) | " if lf else "— | ")
                   + (f"{gap[1] * 100:+.1f} ({gap[0][0]} {gap[0][1]}; {len(pairs)} pairs) | ≤ 1: "
                      f"{'met' if gap[1] * 100 <= 1 + 1e-9 else 'missed'} |" if gap else "— | — |"))
    if not out:
        return []
    return ["## Part 3 against issue 11's targets", "",
            "Per labelled recipe: the lowest share of its original that any set × model keeps, and the largest",
            "gap from that run down to the label-free run of the same recipe (points; negative: label-free higher).", "",
            "| precision | sparsity | recipe | pairs | lowest retained | target | lowest label-free | largest gap | target |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"] + out + [""]


def variant_effects(post):
    """Each part-3 variant against the plain run of its labels mode ("labels [avg3]" against "labels", "label-free
    [avg3]" against "label-free"), paired by set, model and seed (the originals of a seed are the same file: its
    fine-tuning is deterministic). post: {(set, model, precision, mode, sparsity): [gc.json]}. One row per precision,
    sparsity and variant: the mean paired difference in points with its 95% t-interval, how many runs it raised,
    lowered or left, and the mean per model (a change of default has to hold on both encoders)."""
    diffs = collections.defaultdict(list)   # (prec, sp, mode) -> [(model, diff)]
    for (ds, model, prec, mode, sp), runs in post.items():
        if " [" not in mode:
            continue
        plain = {g["seed"]: g["accuracy"] for g in post.get((ds, model, prec, mode.split(" [")[0], sp), [])}
        for g in runs:
            if g["seed"] in plain:
                diffs[(prec, sp, mode)].append((model, g["accuracy"] - plain[g["seed"]]))
    out = []
    for (prec, sp, mode), d in sorted(diffs.items()):
        m, hw, n = t_interval([x for _, x in d])
        per_model = "; ".join(f"{model} {statistics.fmean(x for mm, x in d if mm == model) * 100:+.2f}"
                              for model in sorted({mm for mm, _ in d}))
        up, down = sum(x > 1e-9 for _, x in d), sum(x < -1e-9 for _, x in d)
        delta = f"{m * 100:+.2f}" + (f" ± {hw * 100:.2f}" if hw is not None else "")
        out.append(f"| {prec} | {round(sp * 100)}% | {mode} | {n} | {delta} | {up} / {down} / {n - up - down} | "
                   f"{per_model} |")
    if not out:
        return []
    return ["## Variants against the plain recipe (paired by set, model and seed)", "",
            "Test accuracy of each variant's run minus the plain run of the same labels mode on the same original",
            "(points; ± the 95% t-interval over the pairs of runs), the runs it raised / lowered / left, and the mean",
            "per model.", "",
            "| precision | sparsity | variant | runs | Δ | up / down / equal | per model |",
            "| --- | --- | --- | --- | --- | --- | --- |"] + out + [""]


SELECTION_RULES = ("kept", "last", "val accuracy", "val accuracy, later ties", "val loss", "best possible")


def originals_on_training_rows(exports):
    """How well each original fits its own training rows (exports from 2026-12-02 on record it): where it does not,
    a label-free compression trains on its answers there and a labelled one on the true labels, so the labelled run
    can pass the original by what the labels teach and the label-free one cannot."""
    rows = []
    for (ds, model), es in sorted(exports.items()):
        accs = [e["chosen"]["train_accuracy"] for e in es if "train_accuracy" in e.get("chosen", {})]
        if accs:
            m, hw, n = t_interval(accs)
            rows.append(f"| {ds} | {model} | {n} | {fmt(m, hw)} | {100 - m * 100:.1f} |")
    if not rows:
        return []
    return ["## The originals on their own training rows", "",
            "Accuracy (%) of each seed's fine-tuned original on the rows it was trained on, and the share of them",
            "(%) where its answer — a label-free compression's label — is not the true label.", "",
            "| set | model | n | train accuracy | answers ≠ labels |", "| --- | --- | --- | --- | --- |"] + rows + [""]


def epoch_choices(metrics_rows, kept_step):
    """{rule: the test accuracy of the epoch it picks} from one run's metrics.jsonl rows: each evaluation's --eval
    row beside its --watch row (the test rows, scored at every evaluation and never chosen on). kept: the epoch the
    run kept (kept_step; None: its last; a run with --average-epochs: its averaged model, the average_watch row,
    against the rules' single epochs of the same trajectory); val accuracy: the first best (gatecut's tie rule),
    later ties: the last best (on 200 rows one row is half a point, so ties are common); val loss: the lowest; best
    possible: the best test accuracy of any epoch (what no rule can beat). None without watch rows."""
    evals = {r["step"]: r for r in metrics_rows if r.get("eval") and "accuracy" in r}
    watch = {r["step"]: r["accuracy"] for r in metrics_rows if r.get("watch") and "accuracy" in r}
    steps = [s for s in sorted(evals) if s in watch]
    if not steps:
        return None
    by_acc = max(steps, key=lambda s: (evals[s]["accuracy"], -s))
    by_acc_later = max(steps, key=lambda s: (evals[s]["accuracy"], s))
    by_loss = min(steps, key=lambda s: (evals[s].get("task_loss", float("inf")), s))
    kept = kept_step if kept_step in watch else steps[-1]
    averaged = [r["accuracy"] for r in metrics_rows if r.get("average_watch") and "accuracy" in r]
    return {"kept": averaged[-1] if averaged else watch[kept], "last": watch[steps[-1]], "val accuracy": watch[by_acc],
            "val accuracy, later ties": watch[by_acc_later], "val loss": watch[by_loss],
            "best possible": max(watch[s] for s in steps)}


def epoch_selection(raw: Path, seeds=None):
    """The section on epoch selection: per recipe, each rule's mean test accuracy over the runs that watched their
    test rows (--watch), to tell whether choosing on 200 validation rows beats the last epoch or the loss."""
    groups = collections.defaultdict(list)
    for p in sorted(raw.rglob("gc.json")):
        g = json.loads(p.read_text())
        if not scored(g) or (seeds and g.get("seed") not in seeds):
            continue
        try:
            rows = [json.loads(l) for l in (p.parent / "metrics.jsonl").read_text().splitlines() if l.strip()]
        except OSError:
            continue
        choice = epoch_choices(rows, g.get("summary", {}).get("selected_step"))
        if choice:
            mode = g.get("labels_mode") or g.get("source", "pretrained")
            name = mode + (f" [{g['variant']}]" if g.get("variant") else "")
            # per model too: a rule is worth adopting only if it wins on both encoders
            key = (g.get("precision", "fp32"), g.get("sparsity", 0), name)
            groups[key + (g.get("model", "?"),)].append(choice)
            groups[key + ("all",)].append(choice)
    if not groups:
        return []
    lines = ["## Epoch selection (the test rows watched at every epoch, never chosen on)", "",
             "Mean test accuracy (%) over the runs of each recipe (every set, model and seed) of the epoch each rule",
             "picks: the one the run kept (a run with --average-epochs: the mean of its last epochs), its last, the",
             "best on the validation rows' accuracy (the first of ties) or loss, and the best any epoch reached. Δ:",
             "the rule minus kept, points. One row per model, and their runs pooled (all) where a recipe ran on more",
             "than one.", "",
             "| precision | recipe | model | runs | " + " | ".join(SELECTION_RULES) + " |",
             "|---|---|---|---|" + "---|" * len(SELECTION_RULES)]
    models = collections.defaultdict(set)
    for (prec, sp, name, model) in groups:
        models[(prec, sp, name)].add(model)
    # the pooled row after its recipe's models, and only where it pools more than one
    for (prec, sp, name, model), runs in sorted(groups.items(), key=lambda kv: (kv[0][:3], kv[0][3] == "all", kv[0][3])):
        if model == "all" and len(models[(prec, sp, name)] - {"all"}) < 2:
            continue
        mean = {rule: statistics.fmean(c[rule] for c in runs) * 100 for rule in SELECTION_RULES}
        cells = [f"{mean['kept']:.2f}"] + [f"{mean[r]:.2f} ({mean[r] - mean['kept']:+.2f})" for r in SELECTION_RULES[1:]]
        lines.append(f"| {prec} | {round(sp * 100)}% {name} | {model} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def cmd_report(args):
    raw = Path(args.raw)
    by = getattr(args, "select_by", None) or "accuracy"
    seeds = {int(x) for x in args.seeds.split(",")} if getattr(args, "seeds", None) else None
    cells, splits, post, exports = collect(raw, by, seeds)
    select_on_val(cells, [n for n in (args.select or "").split(",") if n], by)
    lines = ["# Evaluation suite", "",
             "Test accuracy (%) as mean ± the 95% t-interval half-width over seeds (n = seeds; no ± for one seed);",
             "macro-F1 (%) likewise, for unbalanced sets. Learning rates of the baselines chosen on a validation",
             f"slice of train (its {by}), never on test. Δ LoRA / Δ frozen: gatecut's mean minus theirs, in points.", ""]
    datasets = sorted({k[0] for k in cells} | {k[0] for k in post})
    for ds in datasets:
        s = splits.get(ds, {})
        unb = s.get("unbalanced", False)
        lines += [f"## {ds}" + (f" ({s['train']} train / {s['val']} val / {s['test']} test, {len(s['labels'])} labels, "
                                f"majority {s['majority']:.3f}{', unbalanced' if unb else ''})" if s else ""), ""]
        if not any(k[0] == ds for k in cells):
            lines += ["Part 3 only (below).", ""]   # no fine-tuning-from-pretrained rows to tabulate
            continue
        head = "| model | method | n | accuracy |" + (" macro-F1 |" if unb else "") + " Δ LoRA | Δ frozen | lr |"
        lines += [head, "|" + " --- |" * (head.count("|") - 1)]
        for model in sorted({k[1] for k in cells if k[0] == ds}):
            ref = {}
            for lab in ("LoRA r=8", "frozen + head"):
                runs = cells.get((ds, model, lab))
                ref[lab] = statistics.fmean(r["accuracy"] for r in runs) if runs else None
            for lab in METHOD_ORDER + sorted({k[2] for k in cells if k[:2] == (ds, model)} - set(METHOD_ORDER)):
                runs = cells.get((ds, model, lab))
                if not runs:
                    continue
                m, hw, n = t_interval([r["accuracy"] for r in runs])
                fm, fhw, _ = t_interval([r["macro_f1"] for r in runs])
                d = lambda k: "" if ref[k] is None or not lab.startswith("gatecut") else f"{(m - ref[k]) * 100:+.1f}"
                lrs = ",".join(sorted({f"{r['lr']:g}" + ("" if r.get("schedule", "constant") == "constant"
                                                          else f"/{r['schedule']}")
                                       for r in runs if r.get("lr") is not None}
                                      | {r["chosen_variant"] for r in runs if r.get("chosen_variant")}))
                lines.append(f"| {model} | {lab} | {n} | {fmt(m, hw)} |" + (f" {fmt(fm, fhw)} |" if unb else "")
                             + f" {d('LoRA r=8')} | {d('frozen + head')} | {lrs} |")
        lines.append("")
    if exports or post:
        retained = []   # (precision, sparsity, labels row, set, model, mean accuracy, retained fraction)
        lines += ["# Compressing a fine-tuned classifier (part 3)", "",
                  "Original: the fully fine-tuned BertForSequenceClassification export, scored on test with ONNX",
                  "Runtime (CPU) after the export; \"original (gatecut)\": the same file scored by each compress run's",
                  "--test (ONNX Runtime, exact fp32 on CUDA, the engine that scores the compressed model; fp16 files",
                  "too), the yardstick wherever it is there. Retained: the compressed model's mean accuracy / the",
                  "original's mean over the same seeds.", "",
                  "| set | model | precision | labels | sparsity | n | accuracy | retained |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for (ds, model), es in sorted(exports.items()):
            orig32 = None
            for prec in ("fp32", "fp16"):
                accs = [e[prec]["accuracy"] for e in es if "accuracy" in e.get(prec, {})]
                orig = statistics.fmean(accs) if accs else None
                if accs:
                    m, hw, n = t_interval(accs)
                    lines.append(f"| {ds} | {model} | {prec} | original | — | {n} | {fmt(m, hw)} | 100% |")
                elif prec == "fp16" and orig32 is not None and any("file" in e.get("fp16", {}) for e in es):
                    # exported, but no CPU kernels for the fused fp16 file
                    orig = orig32
                    lines.append(f"| {ds} | {model} | fp16 | original: not scored on the CPU; retained vs fp32 | — | — | — | — |")
                by_seed = {r["seed"]: r["summary"]["original_test_accuracy"] for k in post if k[:3] == (ds, model, prec)
                           for r in post[k] if isinstance(r.get("summary", {}).get("original_test_accuracy"), (int, float))}
                if by_seed:
                    m, hw, n = t_interval([by_seed[k] for k in sorted(by_seed)])
                    lines.append(f"| {ds} | {model} | {prec} | original (gatecut) | — | {n} | {fmt(m, hw)} | 100% |")
                    orig = m
                # each seed's yardstick: gatecut's score of that seed's original, else the CPU's (fp16: fp32's)
                seed_orig = {e["seed"]: e[p]["accuracy"] for p in (("fp32", prec) if prec == "fp16" else (prec,))
                             for e in es if "seed" in e and "accuracy" in e.get(p, {})}
                seed_orig.update(by_seed)
                if prec == "fp32":
                    orig32 = orig
                for key in sorted(k for k in post if k[:3] == (ds, model, prec)):
                    runs = post[key]
                    m, hw, n = t_interval([r["accuracy"] for r in runs])
                    # against the originals of the same seeds: a row over seeds 1-5 beside one over 1-3 would
                    # otherwise be divided by another mean than its own
                    seeds = [r["seed"] for r in runs]
                    row_orig = statistics.fmean(seed_orig[k] for k in seeds) if all(k in seed_orig for k in seeds) else orig
                    ret = f"{m / row_orig * 100:.1f}%" if row_orig else "—"
                    lines.append(f"| {ds} | {model} | {prec} | {key[3]} | {round(key[4] * 100)}% | {n} | {fmt(m, hw)} | {ret} |")
                    if row_orig:
                        retained.append((prec, key[4], key[3], ds, model, m, m / row_orig,
                                         {r["seed"]: r["accuracy"] for r in runs}))
        lines.append("")
        lines += originals_on_training_rows(exports)
        lines += part3_targets(retained)
        lines += variant_effects(post)
    lines += epoch_selection(raw, seeds)
    failed = [f"{p.parent.relative_to(raw)} (exit {json.loads(p.read_text()).get('exit')})"
              for p in sorted(raw.rglob("gc.json")) if not scored(json.loads(p.read_text()))]
    failed += [str(p.relative_to(raw)) for p in sorted(raw.rglob("torch-seed*.log"))
               if not p.with_suffix(".json").exists()]
    failed += [f"{p.relative_to(raw)}: {r['method']} lr {r['lr']:g}: {r['error']}" for p in sorted(raw.rglob("torch-*.json"))
               for r in json.loads(p.read_text()).get("runs", []) if "error" in r]
    if failed:
        lines += ["Failed (see raw.tgz): " + "; ".join(failed), ""]
    # a marker beside a run that another call on the warm machine finished is stale, not a skip
    skipped = sorted(str(p.relative_to(raw)) for p in raw.rglob("*.skipped")
                     if not (p.with_suffix("") / "gc.json").exists())
    if skipped:
        lines += ["Skipped (time budget or missing hook): " + ", ".join(skipped), ""]
    text = "\n".join(lines)
    if args.md:
        Path(args.md).write_text(text)
    print(text)
    return 0


# ----------------------------------------------------------------------------------------------
# Time estimate (used by the runner's scheduling too)
# ----------------------------------------------------------------------------------------------

# Seconds per job on one H200, for 1800 train rows x 3 epochs at batch 32 and max-len 128, one job
# alone on the GPU (first guesses from bench/results/2026-11-22-eval-harness-h100.md: gatecut coupled
# ~2200 samples/s, LoRA ~1300, MiniLM; bge-small has twice the layers). Jobs run PARALLEL at a time.
EST_S = {
    ("torch", "minilm"): 60, ("torch", "bge"): 110,     # load + check + dense x2 + lora x3 + full x2
    ("gc", "minilm"): 35, ("gc", "bge"): 55,           # JVM + graph + train + compile + predict
    # Part 3, per chain and per fine-tuning schedule (one since the linear schedule alone), measured nine chains at
    # once on one H200 with SUITE_TORCH_THREADS=2 (2026-12-02, session 25: bench/results/2026-12-02-part3-fp32-five-
    # epochs-h200.md), about 10% added so a job is not cut at the deadline: prepare + fine-tune + fp32 export + its
    # ORT scoring took bge 81-87 s, MiniLM 48-50 s (the first guesses, 200 / 100 from two schedules and no thread
    # cap, planned calls ~1.6x too long and skipped jobs that would have fit)
    ("export", "minilm"): 55, ("export", "bge"): 95,
    # the fp16 file's export and ORT scoring on top (2026-12-02: bge 6-10 + 12-32 s, MiniLM about half)
    ("export-fp16", "minilm"): 20, ("export-fp16", "bge"): 35,
    # of "export", the fp32 file's export and scoring, left out when only fp16 is asked for (bge 3 + 23-31 s,
    # MiniLM 2-3 + 10-14 s)
    ("export-fp32", "minilm"): 15, ("export-fp32", "bge"): 30,
    # a compression of three epochs (five count 5/3), the seed's runs one after another: bge 96-123 s for five
    # epochs with labels, 86-105 label-free (9 chains at once), MiniLM 40-63 / 47-59 s
    ("post-gc", "minilm"): 35, ("post-gc", "bge"): 65,
}


# gatecut's TrainOptions.LONGER_FROM_SPARSITY: an own head trains 5 epochs from here (40% until session 24)
LONGER_FROM_SPARSITY = 0.3


def post_run_weight(sparsity, fixed_epochs=False):
    """A part-3 compression's length in 3-epoch runs: an own head trains 5 epochs from 30% removed (gatecut's
    TrainOptions.epochs), unless the call fixes gatecut's --epochs (the suite's GC_EPOCHS)."""
    return 5 / 3 if not fixed_epochs and float(sparsity) >= LONGER_FROM_SPARSITY - 1e-9 else 1


def cmd_run_weight(args):
    """The part-3 run folders named on stdin (…-s0.4), in 3-epoch runs, rounded up: the suite script's estimate."""
    names = sys.stdin.read().split()
    print(int(sum(post_run_weight(n.rsplit("-s", 1)[1], args.fixed_epochs) for n in names) + 0.999))
    return 0


def estimate(models, seeds, sparsities, parallel, post=False, rows=1800, labelfree=False,
             precisions=("fp32", "fp16"), sets=1):
    """(serial seconds, planned wall seconds of one call) for `sets` data sets of `rows` train rows."""
    scale = rows / 1800
    jobs = []
    for m in models:
        for _ in range(seeds * sets):
            if post:
                runs = len(precisions) * (1 + int(labelfree)) * sum(post_run_weight(s) for s in sparsities)
                chain = (EST_S[("export", m)] + ("fp16" in precisions) * EST_S[("export-fp16", m)]
                         - ("fp32" not in precisions) * EST_S[("export-fp32", m)]
                         + runs * EST_S[("post-gc", m)])
                jobs.append(chain * scale)
            else:
                jobs.append(EST_S[("torch", m)] * scale)
                jobs += [EST_S[("gc", m)] * scale] * len(sparsities)
    serial = sum(jobs)
    # parallel jobs on one GPU: part 1's figures are of one job alone, assumed to share the GPU at 60% efficiency
    # beyond the first; part 3's were measured nine chains at once (2026-12-02: nine bge chains at 40%, 3,744 s
    # serial by these figures, took 426 s)
    eff = parallel if post else 1 + 0.6 * (parallel - 1)
    return serial, max(max(jobs), serial / eff) + 30


def plain_run_dir(name, variants):
    """The plain run folder a part-3 run folder of one of {@code variants} stands for, or None. A variant named alone
    stands in both labels modes ("e5": "fp16-labels-e5-s0.3" -> "fp16-labels-s0.3"), one named with its mode in that
    one alone ("labelfree-avg3": "fp32-labelfree-avg3-s0.4" -> "fp32-labelfree-s0.4", not "fp32-labels-avg3-s0.4")."""
    m = re.fullmatch(r"(fp32|fp16|bf16)-(labels|labelfree)-(.+)-s([0-9.]+)", name)
    return f"{m[1]}-{m[2]}-s{m[4]}" if m and (m[3] in variants or f"{m[2]}-{m[3]}" in variants) else None


def cmd_merge(args):
    """Several calls' raw folders into one (later folders win): files are copied by their path under the folder,
    except the baselines' torch-seed*.json of the same set, model and seed, whose runs are pooled (a call with
    --schedules linear beside one with constant: the choice on validation is then over rates x schedules; a run
    of the same method, rate and schedule in a later folder replaces the earlier one). `report` reads the result."""
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SuiteError(f"{out}: not empty; merge writes a new folder")
    as_default = list(getattr(args, "as_default", None) or [])
    torch_files = {}
    for src in map(Path, args.raw):
        if not src.is_dir():
            raise SuiteError(f"{src}: not a folder (a raw folder of the suite, e.g. raw.tgz unpacked)")
        files = sorted(p for p in src.rglob("*") if p.is_file())
        # --as-default V: a part-3 run of variant V stands for the plain run of its folder (V's flags became the
        # defaults since), copied after the folder's other files so it replaces the plain run, whole
        aliased = {f: plain for f in files if (plain := plain_run_dir(f.parent.name, as_default))}
        for f in files:
            if f in aliased:
                continue
            rel = f.relative_to(src)
            if f.name.startswith("torch-") and f.suffix == ".json":
                r = json.loads(f.read_text())
                key = (r["dataset"], r["model"], r["seed"])
                if key in torch_files:
                    base, path = torch_files[key]
                    runs = {(x["method"], x["lr"], x.get("schedule", "constant")): x for x in base["runs"]}
                    runs.update({(x["method"], x["lr"], x.get("schedule", "constant")): x for x in r["runs"]})
                    schedules = list(dict.fromkeys(base.get("schedules", ["constant"]) + r.get("schedules", ["constant"])))
                    r = dict(base, runs=list(runs.values()), schedules=schedules,
                             merged_from=base["merged_from"] + [str(f)])
                    rel = path
                else:
                    r["merged_from"] = [str(f)]
                # as `train` chooses, now over the pooled runs
                r["chosen"] = {m: dict(x, schedules=r.get("schedules", ["constant"]))
                               for m, x in best_on_val_accuracy(r["runs"]).items()}
                torch_files[key] = (r, rel)
                continue
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out / rel)
        # the plain runs go first, whole: none of their files may outlive them
        for d in {out / f.parent.relative_to(src).with_name(plain) for f, plain in aliased.items()}:
            shutil.rmtree(d, ignore_errors=True)
        for f, plain in aliased.items():
            rel = f.relative_to(src).parent.with_name(plain) / f.name
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if f.name == "gc.json":
                g = json.loads(f.read_text())
                g.update(as_default_of=g.get("variant", ""), variant="")
                save_json(out / rel, g)
            else:
                shutil.copyfile(f, out / rel)
    for r, rel in torch_files.values():
        save_json(out / rel, r)
    print(f"merged {len(args.raw)} folders into {out} ({len(torch_files)} baseline files)")
    return 0


def cmd_estimate(args):
    models = args.models.split()
    sparsities = args.sparsities.split()
    print("| part | models | seeds | sparsities | parallel | serial min | planned min (one call, --sets sets) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for post in (False, True):
        for ms in ([models] + ([[m] for m in models] if len(models) > 1 else [])):
            serial, wall = estimate(ms, args.seeds, sparsities, args.parallel, post=post,
                                    precisions=args.precisions.split(), labelfree=args.label_free,
                                    sets=args.sets)
            print(f"| {'3 (fine-tuned)' if post else '1 (suite)'} | {' '.join(ms)} | {args.seeds} | {' '.join(sparsities)} "
                  f"| {args.parallel} | {serial / 60:.1f} | {wall / 60:.1f} |")
    return 0


# ----------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("split")
    p.add_argument("dataset_dir")
    p.add_argument("work")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=SPLIT_SEED)

    def torch_args(p):
        p.add_argument("--model", required=True, help="a short name for tables (minilm, bge)")
        p.add_argument("--onnx", required=True)
        p.add_argument("--tokenizer", required=True)
        p.add_argument("--work", required=True, help="folder written by `split`")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--out", required=True)
        p.add_argument("--lrs", default="", help='e.g. "lora=3e-4,1e-3,3e-3 full=1e-4"')
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--max-len", type=int, default=128)
        p.add_argument("--dropout", type=float, default=0.1, help="encoder dropout for lora and full")
        p.add_argument("--lora-r", type=int, default=8)
        p.add_argument("--impl", choices=["hf", "own"], default="hf")
        p.add_argument("--device", default="cuda")
        p.add_argument("--tf32", type=int, default=1)
        p.add_argument("--check-tol", type=float, default=1e-3)
        p.add_argument("--no-onnx-check", action="store_true", help="skip the torch-vs-ONNX Runtime check (dry runs)")
        p.add_argument("--limit", type=int, default=None, help="first N train rows (dry runs)")
        p.add_argument("--max-steps", type=int, default=None, help="steps per run (dry runs)")
        p.add_argument("--schedules", default="constant",
                       help='learning-rate schedules tried with each rate: "constant" (AdamW as is), "linear" (10%% '
                            'warm-up, then linear decay to the end: gatecut --lr-decay\'s), or both, comma-separated')

    p = sub.add_parser("train")
    torch_args(p)
    p.add_argument("--methods", default="dense,lora,full")
    p = sub.add_parser("export")
    torch_args(p)
    p.add_argument("--precisions", default="fp32 fp16",
                   help="the exports to write and score (fp32, fp16; the fine-tune runs either way)")

    p = sub.add_parser("predict")
    p.add_argument("--onnx", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--out", required=True)

    p = sub.add_parser("report")
    p.add_argument("raw")
    p.add_argument("--md")
    p.add_argument("--select", help="gatecut variants chosen among per seed on validation accuracy (comma-separated)")
    p.add_argument("--select-by", choices=["accuracy", "loss"], default="accuracy",
                   help="the validation figure that chooses gatecut's variant (--select) and the baselines' rates "
                        "(loss: where every run recorded one, else as the runs chose)")
    p.add_argument("--seeds", help="only these seeds (comma-separated, e.g. 1,2,3: the issue's three where a set ran more)")

    p = sub.add_parser("merge", help="several calls' raw folders into one (the baselines' runs pooled)")
    p.add_argument("out")
    p.add_argument("raw", nargs="+")
    p.add_argument("--as-default", action="append", metavar="VARIANT",
                   help="part-3 runs of this variant stand for the plain runs of their folder (its flags became the "
                        "defaults since): e5 in both labels modes, labelfree-avg3 in one; repeatable")

    p = sub.add_parser("estimate")
    p.add_argument("--models", default="minilm bge")
    p.add_argument("--sets", type=int, default=1, help="data sets in one call (part 3 queues them together)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--sparsities", default="0 0.2 0.3 0.4")
    p.add_argument("--parallel", type=int, default=6)
    p.add_argument("--precisions", default="fp32 fp16", help="part 3's exports (fp16 adds its export and runs)")
    p.add_argument("--label-free", action=argparse.BooleanOptionalAction, default=True,
                   help="part 3's label-free runs beside the labelled ones (the suite script's default)")

    p = sub.add_parser("run-weight", help="part-3 run folders on stdin, in 3-epoch runs (the suite script's estimate)")
    p.add_argument("--fixed-epochs", action="store_true", help="gatecut's --epochs set by the call (GC_EPOCHS)")

    args = ap.parse_args(argv)
    try:
        return {"split": cmd_split, "train": cmd_train, "export": cmd_export, "predict": cmd_predict,
                "report": cmd_report, "merge": cmd_merge, "estimate": cmd_estimate,
                "run-weight": cmd_run_weight}[args.cmd](args)
    except SuiteError as e:
        print(f"eval_suite: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
