#!/usr/bin/env python3
"""Pretrains a small GPT-2 on Jane Austen, exports it to ONNX, and measures the dense baselines.

Runs on the lent GPU machine (torch, transformers, tokenizers, peft, onnx, onnxruntime; nothing is
downloaded). Input: the JSONL files of ``tools/make_austen.py`` (``--data``). Steps:

1. tokenizer: byte-level BPE (``tokenizers``; special tokens ``<|endoftext|>`` = 0 and
   ``<|pad|>`` = 1, no template, so nothing is added to a text) trained on the pretraining text
   only, saved as a standard ``tokenizer.json`` (loads in HF tokenizers / transformers and DJL).
2. pretraining: GPT2LMHeadModel from scratch (eager attention, tied embeddings) on random 128-token
   windows of the five pretraining novels; the last ``--val-frac`` of each novel's tokens is held
   out as validation. AdamW, warm-up then cosine decay, bf16 autocast, as many steps as fit in
   ``--pretrain-seconds`` (at most ``--max-steps``); the weights with the best validation loss are
   kept. Reported: train and validation perplexity (fp32, eval mode, non-overlapping windows).
3. export: fp32, ``torch.onnx.export(dynamo=False, opset 17)``, inputs ``input_ids`` and
   ``attention_mask`` (int64, dynamic batch and sequence), output ``logits``, ``use_cache=False``;
   checked with onnx.checker and against torch with ONNX Runtime (CPU) at 2x7 and 3x11 (right-padded).
4. dense baselines on Persuasion, with gatecut's evaluation protocol (each row tokenised alone,
   cut at ``--max-len`` tokens, right-padded; exp of the mean next-token cross-entropy over every
   position whose next token is not padding): the un-tuned dense model (torch fp32 and the ONNX
   file through ONNX Runtime) and the dense model tuned with PEFT LoRA (r=8, alpha 16, on c_attn,
   c_proj, c_fc) on the tune rows for ``--lora-epochs`` epochs.

Writes into ``--out``: tokenizer.json, model.onnx, pretrain.json (every figure), curve.jsonl.
``--smoke`` runs a tiny configuration in well under a minute (for checking the pipeline).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np

EOS, PAD = "<|endoftext|>", "<|pad|>"


def log(*a):
    print(*a, flush=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------

def train_tokenizer(texts, vocab_size, path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id(EOS) == 0 and tok.token_to_id(PAD) == 1, "special token ids"
    tok.enable_padding(pad_id=1, pad_token=PAD)
    tok.save(path)
    return tok


def fresh(tok_path, max_len=None):
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(tok_path)
    t.no_padding()
    if max_len:
        t.enable_truncation(max_len)
    else:
        t.no_truncation()
    return t


def encode_rows(tok_path, texts, max_len, pad_id):
    """gatecut's rows: each text alone, no special tokens (the tokenizer has no template), cut at max_len."""
    full = [e.ids for e in fresh(tok_path).encode_batch(texts)]
    cut = [e.ids if e.ids else [pad_id] for e in fresh(tok_path, max_len).encode_batch(texts)]
    return cut, sum(1 for f in full if len(f) > max_len), sum(len(f) for f in full)


# ---------------------------------------------------------------------------------------------
# evaluation with gatecut's protocol
# ---------------------------------------------------------------------------------------------

def pad_batch(rows, pad_id):
    length = max(len(r) for r in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


def nll_of(logits, ids, mask):
    """(sum of next-token NLL, count) in float64 over positions whose next token is real."""
    import torch
    logits = torch.as_tensor(logits).double()
    ids = torch.as_tensor(ids, device=logits.device)
    mask = torch.as_tensor(mask, device=logits.device)
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    tgt = ids[:, 1:]
    w = mask[:, 1:].double()
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    return float((nll * w).sum()), float(w.sum())


def ppl_rows(forward, rows, pad_id, batch=32):
    total, count = 0.0, 0.0
    for i in range(0, len(rows), batch):
        ids, mask = pad_batch(rows[i:i + batch], pad_id)
        s, n = nll_of(forward(ids, mask), ids, mask)
        total += s
        count += n
    return math.exp(total / count), count


def torch_forward(model, device):
    import torch

    def fwd(ids, mask):
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(ids).to(device),
                        attention_mask=torch.from_numpy(mask).to(device), use_cache=False, return_dict=True)
            return out.logits.float()
    return fwd


def ort_session(path, threads=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_forward(sess):
    def fwd(ids, mask):
        return sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    return fwd


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------

def build_model(args, vocab):
    import transformers as tf
    cfg = tf.GPT2Config(vocab_size=vocab, n_positions=args.ctx, n_embd=args.hidden, n_layer=args.layers,
                        n_head=args.heads, n_inner=args.ffn, activation_function="gelu_new",
                        resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                        bos_token_id=0, eos_token_id=0, pad_token_id=1, use_cache=False,
                        tie_word_embeddings=True)
    try:
        cfg._attn_implementation = "eager"
    except Exception:  # noqa: BLE001
        pass
    model = tf.GPT2LMHeadModel(cfg)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception as e:  # noqa: BLE001
            log(f"  note: set_attn_implementation(eager) failed: {e}")
    return cfg, model


def unique_params(model):
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def window_ppl(model, stream, ctx, device, max_windows=None, batch=64):
    """fp32, eval mode: non-overlapping windows of ctx+1 tokens, loss on all ctx targets."""
    import torch
    n = (len(stream) - 1) // ctx
    if max_windows:
        n = min(n, max_windows)
    starts = torch.arange(n, device=device) * ctx
    offs = torch.arange(ctx + 1, device=device)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            blk = stream[starts[i:i + batch, None] + offs]
            logits = model(input_ids=blk[:, :-1], use_cache=False, return_dict=True).logits.float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), blk[:, 1:].reshape(-1),
                                                     reduction="sum")
            total += float(loss)
            count += blk[:, 1:].numel()
    return math.exp(total / count), count


def pretrain(args, model, train_stream, val_stream, device, report):
    import torch
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    ctx, bsz = args.ctx, args.batch
    offs = torch.arange(ctx + 1, device=device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    total_steps = args.max_steps
    best = (float("inf"), None, 0)
    curve = []
    t0 = time.time()
    running = [0.0, 0]
    step = 0
    t10 = t0
    model.train()

    def lr_at(s):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        frac = min(1.0, (s - args.warmup) / max(1, total_steps - args.warmup))
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def evaluate(s):
        nonlocal best
        v, _ = window_ppl(model, val_stream, ctx, device)
        model.train()
        tl = float(running[0] / max(1, running[1]))
        row = {"step": s, "seconds": round(time.time() - t0, 1), "train_loss": tl, "val_ppl": v, "lr": lr_at(s)}
        curve.append(row)
        log(f"  step {s}/{total_steps}: train loss {tl:.4f} (mean since last eval, dropout on), val ppl {v:.2f}, "
            f"{row['seconds']}s")
        running[0], running[1] = 0.0, 0
        if v < best[0]:
            best = (v, {k: t.detach().clone() for k, t in model.state_dict().items()}, s)

    while step < total_steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.randint(0, len(train_stream) - ctx - 1, (bsz,), device=device, generator=gen)
        blk = train_stream[starts[:, None] + offs]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=blk[:, :-1], use_cache=False, return_dict=True).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), blk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running[0] += loss.detach()
        running[1] += 1
        step += 1
        if step in (10, 30):
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step == 10:
                t10 = time.time()
            else:
                per_step = (time.time() - t10) / 20
                fit = step + int((args.pretrain_seconds - (time.time() - t0)) / per_step)
                total_steps = min(args.max_steps, max(step, fit))
                log(f"  {per_step * 1000:.1f} ms/step (steps 10-30) -> {total_steps} steps "
                    f"(max {args.max_steps}, {args.pretrain_seconds}s budget)")
        if step % args.eval_every == 0 or step == total_steps:
            evaluate(step)
        if time.time() - t0 > args.pretrain_seconds * 1.25:
            log(f"  stopping at step {step}: over the time budget")
            evaluate(step)
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - t0
    model.load_state_dict(best[1])
    report["pretrain"] = {"steps": step, "planned_steps": total_steps, "seconds": round(seconds, 1),
                          "tokens_seen": step * bsz * ctx, "best_step": best[2], "best_val_ppl": best[0],
                          "batch": bsz, "ctx": ctx, "lr": args.lr, "warmup": args.warmup,
                          "weight_decay": args.weight_decay, "dropout": args.dropout,
                          "schedule": "linear warm-up, cosine to 0.1 x lr", "optimizer": "AdamW(0.9, 0.95), fused",
                          "precision": "bf16 autocast (weights fp32)"}
    return curve


def export_onnx(model, path, pad_id, vocab):
    import onnx
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                          return_dict=True).logits

    w = Wrap(model).eval()
    rng = np.random.default_rng(7)

    def inputs(b, s, padded):
        ids = rng.integers(2, vocab, size=(b, s), dtype=np.int64)
        mask = np.ones((b, s), dtype=np.int64)
        if padded:
            for i in range(1, b):
                n = max(1, s - 2 * i - 1)
                mask[i, n:] = 0
                ids[i, n:] = pad_id
        return ids, mask

    ids, mask = inputs(2, 9, True)
    names = ["input_ids", "attention_mask"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["logits"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(w, (torch.from_numpy(ids), torch.from_numpy(mask)), path, dynamo=False, opset_version=17,
                          input_names=names, output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    sess = ort_session(path)
    checks = []
    for b, s, padded in [(2, 7, False), (3, 11, True)]:
        ids, mask = inputs(b, s, padded)
        ref = torch_forward(model, torch.device("cpu"))(ids, mask).numpy()
        got = ort_forward(sess)(ids, mask)
        valid = mask.astype(bool)
        checks.append({"shape": [b, s], "padded": padded,
                       "max_abs_diff_valid": float(np.abs(ref - got)[valid].max()),
                       "max_abs_diff_all": float(np.abs(ref - got).max()),
                       "max_abs_logit": float(np.abs(ref).max())})
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": sha256(path),
            "ir_version": m.ir_version, "opset": [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0],
            "nodes": len(m.graph.node), "initializers": len(m.graph.initializer),
            "op_histogram": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
            "exporter": "torch.onnx.export(dynamo=False, opset_version=17, do_constant_folding=True)",
            "ort_vs_torch": checks}


def lora_tune(args, base, tune_rows, test_rows, pad_id, device, seed):
    """One LoRA run from the dense model (its adapters' start, dropout and batch order from ``seed``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(seed)
    model = copy.deepcopy(base)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["c_attn", "c_proj", "c_fc"],
                     fan_in_fan_out=True, bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(model, cfg)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lora_lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    bsz = args.lora_batch
    steps_per_epoch = math.ceil(len(tune_rows) / bsz)
    total = steps_per_epoch * args.lora_epochs
    warm = max(1, total // 20)
    step = 0
    curve = []
    t0 = time.time()
    for epoch in range(args.lora_epochs):
        model.train()
        perm = rng.permutation(len(tune_rows))
        losses = []
        for i in range(0, len(perm), bsz):
            lr = args.lora_lr * min(1.0, (step + 1) / warm) * (0.5 * (1 + math.cos(math.pi * step / total)))
            for g in opt.param_groups:
                g["lr"] = lr
            ids, mask = pad_batch([tune_rows[j] for j in perm[i:i + bsz]], pad_id)
            ids_t = torch.from_numpy(ids).to(device)
            mask_t = torch.from_numpy(mask).to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(input_ids=ids_t, attention_mask=mask_t, use_cache=False, return_dict=True).logits
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                                    ids_t[:, 1:].reshape(-1), reduction="none")
            w = mask_t[:, 1:].reshape(-1).float()
            loss = (nll * w).sum() / w.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        model.eval()
        test_ppl, _ = ppl_rows(torch_forward(model, device), test_rows, pad_id)
        curve.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "test_ppl": test_ppl,
                      "seconds": round(time.time() - t0, 1)})
        log(f"  LoRA seed {seed} epoch {epoch + 1}: train loss {np.mean(losses):.4f}, test ppl {test_ppl:.3f}")
    return {"seed": seed, "r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["c_attn", "c_proj", "c_fc"],
                      "trainable_params": trainable, "epochs": args.lora_epochs, "batch": bsz, "lr": args.lora_lr,
                      "schedule": f"linear warm-up {warm} steps, cosine to 0", "steps": step,
                      "precision": "bf16 autocast", "seconds": round(time.time() - t0, 1),
                      "test_ppl_final": curve[-1]["test_ppl"], "curve": curve,
                      "loss": "same as gatecut's: next-token CE over positions whose next token is real"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder with austen-{pretrain,tune,test}.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=6144)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--ffn", type=int, default=1536)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--pretrain-seconds", type=float, default=120)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--val-frac", type=float, default=0.03)
    ap.add_argument("--max-len", type=int, default=128, help="gatecut's --max-len for the tune/test rows")
    ap.add_argument("--lora-epochs", type=int, default=8)
    ap.add_argument("--lora-lr", type=float, default=1e-3)
    ap.add_argument("--lora-batch", type=int, default=32)
    ap.add_argument("--lora-seeds", default="1", help="comma-separated seeds, one LoRA run each; pretrain.json's"
                    " 'lora' is the first run, 'lora_seeds' holds them all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="tiny model, a few steps: checks the pipeline")
    args = ap.parse_args(argv)
    if args.smoke:
        args.layers, args.hidden, args.heads, args.ffn = 2, 64, 2, 256
        args.max_steps, args.eval_every, args.warmup, args.lora_epochs = 40, 20, 10, 1
    import torch
    import transformers
    import tokenizers
    import peft
    import onnx
    import onnxruntime
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"args": vars(args), "versions": {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__, "peft": peft.__version__, "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__},
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"}
    log(f"versions: {report['versions']}; device {report['device']}")
    t_all = time.time()

    pre = read_jsonl(os.path.join(args.data, "austen-pretrain.jsonl"))
    tune = read_jsonl(os.path.join(args.data, "austen-tune.jsonl"))
    test = read_jsonl(os.path.join(args.data, "austen-test.jsonl"))
    report["data"] = {n: {"rows": len(r), "sha256": sha256(os.path.join(args.data, f"austen-{n}.jsonl"))}
                      for n, r in (("pretrain", pre), ("tune", tune), ("test", test))}

    # 1. tokenizer
    t = time.time()
    tok_path = os.path.join(args.out, "tokenizer.json")
    train_tokenizer([r["text"] for r in pre], args.vocab, tok_path)
    from tokenizers import Tokenizer
    tok = fresh(tok_path)
    vocab = tok.get_vocab_size()
    hf_check = None
    try:
        fast = transformers.PreTrainedTokenizerFast(tokenizer_file=tok_path, eos_token=EOS, pad_token=PAD)
        same_ids = all(fast(r["text"])["input_ids"] == tok.encode(r["text"]).ids for r in test[:50])
        same_text = all(tok.decode(tok.encode(r["text"]).ids) == r["text"] for r in test[:50])
        hf_check = {"ids_equal_50_rows": same_ids, "tokenizers_decode_roundtrip_50_rows": same_text}
    except Exception as e:  # noqa: BLE001
        hf_check = f"{type(e).__name__}: {e}"
    report["tokenizer"] = {"type": "byte-level BPE (tokenizers BpeTrainer, min_frequency 2)", "vocab": vocab,
                           "special": {EOS: 0, PAD: 1}, "trained_on": "austen-pretrain.jsonl only",
                           "seconds": round(time.time() - t, 1), "sha256": sha256(tok_path),
                           "transformers_fast_tokenizer_roundtrip": hf_check}
    log(f"tokenizer: vocab {vocab}, {report['tokenizer']['seconds']}s, transformers round trip: {hf_check}")

    # token streams: per book, rows joined by newlines; last val_frac of each book held out
    books = {}
    for r in pre:
        books.setdefault(r["book"], []).append(r["text"])
    train_ids, val_ids, words = [], [], 0
    per_book = {}
    for b, texts in books.items():
        ids = tok.encode("\n".join(texts)).ids
        words += sum(len(x.split()) for x in texts)
        cut = int(len(ids) * (1 - args.val_frac))
        train_ids += ids[:cut] + [0]
        val_ids += ids[cut:] + [0]
        per_book[b] = {"tokens": len(ids), "val_tokens": len(ids) - cut}
    report["tokenizer"]["pretrain_tokens_per_word"] = round((len(train_ids) + len(val_ids)) / words, 3)
    report["streams"] = {"train_tokens": len(train_ids), "val_tokens": len(val_ids), "books": per_book,
                         "val": f"the last {args.val_frac:.0%} of each novel's tokens"}
    tune_rows, tune_cut, tune_tok = encode_rows(tok_path, [r["text"] for r in tune], args.max_len, 1)
    test_rows, test_cut, test_tok = encode_rows(tok_path, [r["text"] for r in test], args.max_len, 1)
    report["rows"] = {"tune": {"rows": len(tune_rows), "tokens": tune_tok, "rows_over_max_len": tune_cut,
                               "tokens_kept": sum(map(len, tune_rows))},
                      "test": {"rows": len(test_rows), "tokens": test_tok, "rows_over_max_len": test_cut,
                               "tokens_kept": sum(map(len, test_rows))}}
    log(f"streams: train {len(train_ids)} tokens, val {len(val_ids)}; tune {report['rows']['tune']}, "
        f"test {report['rows']['test']}")
    if args.smoke:
        with open(os.path.join(args.out, "test_ids.json"), "w") as f:
            json.dump(test_rows, f)

    # 2. pretraining
    cfg, model = build_model(args, vocab)
    report["model"] = {"class": "GPT2LMHeadModel", "layers": args.layers, "hidden": args.hidden, "heads": args.heads,
                       "ffn": args.ffn, "ctx": args.ctx, "vocab": vocab, "activation": "gelu_new",
                       "attention": "eager", "tied_embeddings": True, "parameters": unique_params(model)}
    log(f"model: {report['model']}")
    train_stream = torch.tensor(train_ids, dtype=torch.long, device=device)
    val_stream = torch.tensor(val_ids, dtype=torch.long, device=device)
    curve = pretrain(args, model, train_stream, val_stream, device, report)
    with open(os.path.join(args.out, "curve.jsonl"), "w") as f:
        for row in curve:
            f.write(json.dumps(row) + "\n")
    model.eval()
    v, vn = window_ppl(model, val_stream, args.ctx, device)
    tr, tn = window_ppl(model, train_stream, args.ctx, device, max_windows=max(1, len(val_ids) // args.ctx))
    report["pretrain"].update({"val_ppl": v, "val_targets": vn, "train_ppl": tr, "train_targets": tn,
                               "ppl_note": "fp32, eval mode, non-overlapping 128-token windows; train on the "
                                           "first windows of the train stream (as many as val has)"})
    log(f"pretrained: {report['pretrain']['steps']} steps in {report['pretrain']['seconds']}s, best step "
        f"{report['pretrain']['best_step']}: train ppl {tr:.2f}, val ppl {v:.2f}")

    # 3. export (fp32, CPU)
    model_cpu = copy.deepcopy(model).to("cpu").float().eval()
    onnx_path = os.path.join(args.out, "model.onnx")
    t = time.time()
    report["onnx"] = export_onnx(model_cpu, onnx_path, 1, vocab)
    report["onnx"]["seconds"] = round(time.time() - t, 1)
    log(f"onnx: {report['onnx']['bytes']} bytes, {report['onnx']['nodes']} nodes, ORT vs torch "
        f"{report['onnx']['ort_vs_torch']}")

    # 4. dense baselines on Persuasion (gatecut's protocol)
    t = time.time()
    sess = ort_session(onnx_path)
    dense = {}
    for name, rows in (("tune", tune_rows), ("test", test_rows)):
        p_torch, n = ppl_rows(torch_forward(model, device), rows, 1)
        p_ort, _ = ppl_rows(ort_forward(sess), rows, 1)
        dense[name] = {"ppl_torch_fp32": p_torch, "ppl_onnx_ort_cpu": p_ort, "targets": n}
    dense["seconds"] = round(time.time() - t, 1)
    report["dense_untuned"] = dense
    log(f"dense un-tuned: {dense}")
    runs = []
    for seed in [int(x) for x in args.lora_seeds.split(",") if x.strip()]:
        try:
            runs.append(lora_tune(args, model, tune_rows, test_rows, 1, device, seed))
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            runs.append({"seed": seed, "error": f"{type(e).__name__}: {e}"})
    report["lora"] = runs[0] if runs else {"error": "no --lora-seeds"}
    report["lora_seeds"] = runs
    report["seconds_total"] = round(time.time() - t_all, 1)
    with open(os.path.join(args.out, "pretrain.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(f"pretrain_gpt: done in {report['seconds_total']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
