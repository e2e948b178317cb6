#!/usr/bin/env python3
"""PyTorch side of the evaluation harness (tools/gpu_eval_harness.sh runs it on the GPU machine).

Loads all-MiniLM-L6-v2's weights from its ONNX file into a PyTorch BERT, checks that the PyTorch
model reproduces the ONNX model's last_hidden_state (ONNX Runtime, CPU), then trains on one labelled
JSONL data set, with the same data, batch, sequence length and epochs as `gatecut compress`:

  dense   frozen encoder (no gradient) + linear head on masked-mean pooling
  lora    PEFT LoRA (r=8, alpha 16, dropout 0.1) on every query/key/value/dense linear + head
  fgref   a PyTorch FineGates reference (DESIGN.md section 1): row and column gates on all 36
          Q/K/V/O/intermediate/output linears, theta ~ N(1, 0.1), mu = tanh(theta), training gates
          clamp(mu + eps + 0.5, 0, 1) with eps ~ N(0, 0.1^2) fresh every step, inference gates
          clamp(mu + 0.5, 0, 1), sparsity loss lambda * mean_l 0.5(|mean_rows P - (1-t)| +
          |mean_cols P - (1-t)|) with P = Phi((mu + 0.5) / 0.5); trainable: gates, biases of the
          gated layers, head

Every method: AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.01), constant learning rate, batches
shuffled each epoch and padded to their longest row (as gatecut does), cross-entropy.  Reported per
run: test accuracy after each epoch, trainable and inference parameters, training samples/s (windows
of 10 steps timed with torch.cuda.synchronize at their ends; the statistic is the median of the
windows after the first, as for gatecut's metrics.jsonl), peak GPU memory (torch max allocated and
reserved, and NVML memory.used sampled every 50 ms, CUDA context included).

    python3 tools/eval_harness.py --onnx MODEL.onnx --tokenizer tokenizer.json \
        --train TRAIN.jsonl --eval TEST.jsonl --dataset NAME --out RESULT.json \
        [--runs "dense:1e-3,lora:1e-3,fgref:1e-2:0.3"] [--epochs 3] [--batch 32] [--max-len 128]
    python3 tools/eval_harness.py --selftest --out SELFTEST.json    # random weights, no files needed

A run spec is METHOD:LR[:TARGET] (TARGET only for fgref).  --impl hf (default; transformers'
BertModel, falls back to the built-in implementation if it cannot be built) or own (built-in BERT
with the same parameter names, used when transformers is absent).  Each run is guarded: a failing
run is recorded with its traceback and the next one starts.
"""

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
import traceback
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MIB = 1024 * 1024


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ----------------------------------------------------------------------------------------------
# Model configuration and weights from the ONNX file
# ----------------------------------------------------------------------------------------------

def onnx_state(path):
    """(config dict, state dict of numpy arrays in torch layout) from a BERT ONNX export."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    sd = {}
    extra = 0  # initializers that are no parameters of the torch model (position_ids), counted as gatecut counts
    for name, arr in inits.items():
        if name.startswith("embeddings.") or name.startswith("encoder."):
            if name == "embeddings.position_ids":
                extra += int(arr.size)
                continue
            sd[name] = np.array(arr, dtype=np.float32)
    unmapped = []
    for node in g.node:
        if node.op_type != "MatMul":
            continue
        w = [i for i in node.input if i in inits]
        if not w:
            continue
        if len(w) != 1 or node.input[1] != w[0] or not node.name.endswith("/MatMul"):
            unmapped.append(node.name)
            continue
        key = node.name.strip("/")[: -len("/MatMul")].replace("/", ".") + ".weight"
        sd[key] = np.ascontiguousarray(np.array(inits[w[0]], dtype=np.float32).T)  # [in,out] -> [out,in]
    if unmapped:
        raise ValueError(f"MatMul nodes with weights not mapped: {unmapped}")

    def const_of(node_name_prefix, op):
        for n in g.node:
            if n.op_type == op and n.name.startswith(node_name_prefix):
                for i in n.input:
                    p = producers.get(i)
                    if p is not None and p.op_type == "Constant":
                        return float(numpy_helper.to_array(p.attribute[0].t))
        return None

    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer."))
    hidden = sd["embeddings.word_embeddings.weight"].shape[1]
    scale = const_of("/encoder/layer.0/attention/self/Div", "Div")
    head_dim = int(round(scale * scale)) if scale else 32
    eps = const_of("/embeddings/LayerNorm/Add", "Add") or 1e-12
    cfg = dict(vocab=sd["embeddings.word_embeddings.weight"].shape[0], hidden=hidden, layers=layers,
               heads=hidden // head_dim, ffn=sd["encoder.layer.0.intermediate.dense.bias"].shape[0],
               max_pos=sd["embeddings.position_embeddings.weight"].shape[0],
               type_vocab=sd["embeddings.token_type_embeddings.weight"].shape[0], eps=eps, onnx_extra_params=extra)
    return cfg, sd


MINILM = dict(vocab=30522, hidden=384, layers=6, heads=12, ffn=1536, max_pos=512, type_vocab=2, eps=1e-12)


# ----------------------------------------------------------------------------------------------
# Encoders: transformers' BertModel, or a built-in BERT with the same parameter names
# ----------------------------------------------------------------------------------------------

class _SelfAttention(nn.Module):
    def __init__(self, c, p):
        super().__init__()
        self.h, self.d = c["heads"], c["hidden"] // c["heads"]
        self.query = nn.Linear(c["hidden"], c["hidden"])
        self.key = nn.Linear(c["hidden"], c["hidden"])
        self.value = nn.Linear(c["hidden"], c["hidden"])
        self.dropout = nn.Dropout(p)

    def forward(self, x, bias):
        b, s, _ = x.shape
        q = self.query(x).view(b, s, self.h, self.d).transpose(1, 2)
        k = self.key(x).view(b, s, self.h, self.d).transpose(1, 2)
        v = self.value(x).view(b, s, self.h, self.d).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d) + bias, dim=-1)
        return (self.dropout(att) @ v).transpose(1, 2).reshape(b, s, self.h * self.d)


class _DenseNorm(nn.Module):
    def __init__(self, n_in, n_out, eps, p):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.LayerNorm = nn.LayerNorm(n_out, eps=eps)
        self.dropout = nn.Dropout(p)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, c, p):
        super().__init__()
        self.self = _SelfAttention(c, p)
        self.output = _DenseNorm(c["hidden"], c["hidden"], c["eps"], p)

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class _Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["ffn"])

    def forward(self, x):
        return F.gelu(self.dense(x))  # erf GELU, as the export


class _Layer(nn.Module):
    def __init__(self, c, p):
        super().__init__()
        self.attention = _Attention(c, p)
        self.intermediate = _Intermediate(c)
        self.output = _DenseNorm(c["ffn"], c["hidden"], c["eps"], p)

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(self.intermediate(a), a)


class _Embeddings(nn.Module):
    def __init__(self, c, p):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab"], c["hidden"])
        self.position_embeddings = nn.Embedding(c["max_pos"], c["hidden"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=c["eps"])
        self.dropout = nn.Dropout(p)

    def forward(self, ids, tt):
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        e = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(tt)
        return self.dropout(self.LayerNorm(e))


class _Encoder(nn.Module):
    def __init__(self, c, p):
        super().__init__()
        self.layer = nn.ModuleList([_Layer(c, p) for _ in range(c["layers"])])


class OwnBert(nn.Module):
    """BERT encoder without pooler; parameter names as transformers' BertModel(add_pooling_layer=False)."""

    def __init__(self, c, dropout=0.0):
        super().__init__()
        self.embeddings = _Embeddings(c, dropout)
        self.encoder = _Encoder(c, dropout)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return types.SimpleNamespace(last_hidden_state=x)


def build_encoder(impl, c, dropout):
    """(encoder, impl actually used, note)."""
    if impl == "hf":
        try:
            from transformers import BertConfig, BertModel
            hc = BertConfig(vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
                            num_attention_heads=c["heads"], intermediate_size=c["ffn"],
                            max_position_embeddings=c["max_pos"], type_vocab_size=c["type_vocab"],
                            layer_norm_eps=c["eps"], hidden_act="gelu", hidden_dropout_prob=dropout,
                            attention_probs_dropout_prob=dropout)
            m = BertModel(hc, add_pooling_layer=False)
            return m, "hf", f"transformers BertModel, attn_implementation={getattr(m.config, '_attn_implementation', '?')}"
        except Exception as e:  # noqa: BLE001
            log(f"transformers BertModel unavailable ({type(e).__name__}: {e}); using the built-in BERT")
            return OwnBert(c, dropout), "own", f"built-in BERT (transformers failed: {type(e).__name__}: {e})"
    return OwnBert(c, dropout), "own", "built-in BERT"


def load_weights(enc, sd):
    tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
    res = enc.load_state_dict(tensors, strict=False)
    missing = [k for k in res.missing_keys if not k.endswith("position_ids")]
    unexpected = list(res.unexpected_keys)
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing[:8]} unexpected {unexpected[:8]}")


def hidden_states(enc, ids, mask, tt):
    out = enc(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


class Classifier(nn.Module):
    def __init__(self, enc, hidden, labels, frozen_no_grad=False):
        super().__init__()
        self.enc = enc
        self.head = nn.Linear(hidden, labels)
        self.frozen_no_grad = frozen_no_grad

    def forward(self, ids, mask, tt):
        if self.frozen_no_grad:
            with torch.no_grad():
                h = hidden_states(self.enc, ids, mask, tt)
        else:
            h = hidden_states(self.enc, ids, mask, tt)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled)


# ----------------------------------------------------------------------------------------------
# FineGates reference
# ----------------------------------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)


class GatedLinear(nn.Module):
    """y = ((x * g_c) W^T + b) * g_r with FineGates gates; W frozen, b and theta trainable."""

    def __init__(self, lin, noise_sigma=0.1, theta_mean=1.0, theta_std=0.1):
        super().__init__()
        self.weight = nn.Parameter(lin.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=True)
        n_out, n_in = self.weight.shape
        self.theta_r = nn.Parameter(torch.randn(n_out, device=lin.weight.device) * theta_std + theta_mean)
        self.theta_c = nn.Parameter(torch.randn(n_in, device=lin.weight.device) * theta_std + theta_mean)
        self.noise_sigma = noise_sigma
        self.keep_r = self.keep_c = None  # budget projection: inference gates forced to 0 where False

    def gate(self, theta, keep=None):
        mu = torch.tanh(theta)
        if self.training:
            return torch.clamp(mu + 0.5 + self.noise_sigma * torch.randn_like(mu), 0.0, 1.0)
        g = torch.clamp(mu + 0.5, 0.0, 1.0)
        return g if keep is None else g * keep.to(g.dtype)

    def forward(self, x):
        return (F.linear(x * self.gate(self.theta_c, self.keep_c), self.weight, self.bias)
                * self.gate(self.theta_r, self.keep_r))

    def sparsity_term(self, target):
        p_r = 0.5 * (1.0 + torch.erf((torch.tanh(self.theta_r) + 0.5) / 0.5 / SQRT2))
        p_c = 0.5 * (1.0 + torch.erf((torch.tanh(self.theta_c) + 0.5) / 0.5 / SQRT2))
        return 0.5 * ((p_r.mean() - (1.0 - target)).abs() + (p_c.mean() - (1.0 - target)).abs())

    @torch.no_grad()
    def closed(self):
        r = (torch.clamp(torch.tanh(self.theta_r) + 0.5, 0, 1) == 0)
        c = (torch.clamp(torch.tanh(self.theta_c) + 0.5, 0, 1) == 0)
        if self.keep_r is not None:
            r, c = r | ~self.keep_r, c | ~self.keep_c
        return r, c


@torch.no_grad()
def project_budget(gated, target):
    """Closes every gate whose mu is below one global threshold tau, the smallest tau at which the
    fraction of targeted parameters removed (gate_report's counting) reaches `target`."""
    for g in gated.values():
        g.keep_r = g.keep_c = None
    mus = [(torch.tanh(g.theta_r), torch.tanh(g.theta_c)) for g in gated.values()]

    def removed_at(tau):
        rem = tot = 0
        for g, (mr, mc) in zip(gated.values(), mus):
            n_out, n_in = g.weight.shape
            kr = int(((mr >= tau) & (mr > -0.5)).sum())
            kc = int(((mc >= tau) & (mc > -0.5)).sum())
            tot += n_out * n_in + n_out
            rem += n_out * n_in - kr * kc + (n_out - kr)
        return rem / tot

    lo, hi = -1.0, 1.0
    if removed_at(lo) >= target:
        tau = lo
    else:
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if removed_at(mid) >= target:
                hi = mid
            else:
                lo = mid
        tau = hi
    for g, (mr, mc) in zip(gated.values(), mus):
        g.keep_r, g.keep_c = mr >= tau, mc >= tau
    return tau


class LoraLinear(nn.Module):
    """Built-in LoRA (fallback when PEFT cannot be used): base(x) + B(A(dropout(x))) * alpha / r."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.drop = nn.Dropout(dropout)
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(self.drop(x))) * self.scale


def lora_encoder(enc, r, alpha, dropout):
    n = 0
    for name, mod in list(enc.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.Linear) and child_name in ("query", "key", "value", "dense"):
                setattr(mod, child_name, LoraLinear(child, r, alpha, dropout))
                n += 1
    return n


TARGET_SUFFIXES = ("attention.self.query", "attention.self.key", "attention.self.value",
                   "attention.output.dense", "intermediate.dense", "output.dense")


def gate_encoder(enc):
    """Replaces the 36 targeted linears in place; returns {name: GatedLinear}."""
    gated = {}
    for name, mod in list(enc.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full.endswith(TARGET_SUFFIXES) and ".layer." in f".{full}":
                g = GatedLinear(child)
                setattr(mod, child_name, g)
                gated[full] = g
    return gated


def gate_report(gated):
    """Parameters removed under the paper's counting: an entry of W goes when its row or column gate
    is 0 (b[r] with a closed row). Targeted = all W and b of the gated layers."""
    targeted = removed = 0
    rows_closed = cols_closed = rows = cols = 0
    for g in gated.values():
        r, c = g.closed()
        n_out, n_in = g.weight.shape
        kr, kc = n_out - int(r.sum()), n_in - int(c.sum())
        targeted += n_out * n_in + n_out
        removed += n_out * n_in - kr * kc + (n_out - kr)
        rows_closed += n_out - kr
        cols_closed += n_in - kc
        rows += n_out
        cols += n_in
    return dict(targeted=targeted, removed=removed, fraction_removed=removed / max(targeted, 1),
                rows_closed=rows_closed, rows=rows, cols_closed=cols_closed, cols=cols)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

class Data:
    def __init__(self, ids, lengths, labels, device):
        self.n = len(labels)
        self.lengths = torch.tensor(lengths)
        self.ids = ids.to(device)
        self.mask = (torch.arange(ids.shape[1])[None, :] < self.lengths[:, None]).long().to(device)
        self.tt = torch.zeros_like(self.ids)
        self.y = torch.tensor(labels).to(device)
        self.device = device

    def batch(self, idx):
        length = int(self.lengths[idx].max())
        i = idx.to(self.device)
        return self.ids[i, :length], self.mask[i, :length], self.tt[i, :length], self.y[i]


def read_jsonl(path, text_field="text", label_field="label"):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                texts.append(r[text_field])
                labels.append(str(r[label_field]))
    return texts, labels


def tokenize(tok_path, texts, max_len):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    pad = tok.token_to_id("[PAD]")
    pad = 0 if pad is None else pad
    enc = tok.encode_batch(texts)
    ids = torch.full((len(texts), max_len), pad, dtype=torch.long)
    lengths = []
    for i, e in enumerate(enc):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids, dtype=torch.long)
        lengths.append(n)
    return ids, lengths


# ----------------------------------------------------------------------------------------------
# GPU memory sampling
# ----------------------------------------------------------------------------------------------

class MemSampler:
    """NVML memory.used of GPU 0 every `period` s (falls back to nothing when NVML is missing)."""

    def __init__(self, period=0.05):
        self.period = period
        self.peak = None
        self.ok = False
        try:
            import pynvml
            pynvml.nvmlInit()
            self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.nv = pynvml
            self.ok = True
        except Exception as e:  # noqa: BLE001
            log(f"NVML unavailable: {e}")

    def used_mib(self):
        return self.nv.nvmlDeviceGetMemoryInfo(self.h).used / MIB if self.ok else None

    def __enter__(self):
        self.peak = self.first = self.used_mib()
        self.stop = threading.Event()
        if self.ok:
            self.t = threading.Thread(target=self._run, daemon=True)
            self.t.start()
        return self

    def _run(self):
        while not self.stop.is_set():
            u = self.used_mib()
            if u > self.peak:
                self.peak = u
            time.sleep(self.period)

    def __exit__(self, *a):
        self.stop.set()
        if self.ok:
            self.t.join()
            self.peak = max(self.peak, self.used_mib())


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def evaluate(model, data, device, batch=128):
    return evaluate_with_loss(model, data, device, batch)[0]


def evaluate_with_loss(model, data, device, batch=128):
    """(accuracy, mean cross-entropy) on data: the loss is the smoother yardstick on a small validation slice."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for s in range(0, data.n, batch):
            idx = torch.arange(s, min(s + batch, data.n))
            ids, mask, tt, y = data.batch(idx)
            logits = model(ids, mask, tt)
            logits = logits.logits if hasattr(logits, "logits") else logits
            correct += int((logits.argmax(-1) == y).sum())
            loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
    return correct / data.n, loss / data.n


def train_run(model, params, train, test, device, epochs, batch, lr, seed, extra_loss=None, train_mode=None,
              window=10, max_steps=None, schedule="constant"):
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(train.n / batch)
    total_steps = epochs * steps_per_epoch if not max_steps else min(max_steps, epochs * steps_per_epoch)
    from lr_schedule import lr_factor   # beside this file; torch-free, so the suite's report tests check it
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(schedule, s, total_steps))
    windows, accs, losses, val_losses = [], [], [], []
    step = 0
    train_time = 0.0
    total_samples = 0
    for epoch in range(epochs):
        (train_mode or (lambda: model.train()))()
        perm = torch.randperm(train.n, generator=gen)
        sync(device)
        t_win = time.perf_counter()
        t_epoch = t_win
        n_win = 0
        k_win = 0
        for b in range(steps_per_epoch):
            idx = perm[b * batch:(b + 1) * batch]
            ids, mask, tt, y = train.batch(idx)
            logits = model(ids, mask, tt)
            task = F.cross_entropy(logits, y)
            loss = task + extra_loss() if extra_loss is not None else task
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            n_win += len(idx)
            k_win += 1
            stop = bool(max_steps and step >= max_steps)
            if k_win == window or b == steps_per_epoch - 1 or stop:
                sync(device)
                now = time.perf_counter()
                windows.append(dict(step=step, epoch=epoch, steps=k_win, samples=n_win, seconds=now - t_win,
                                    samples_per_s=n_win / (now - t_win), loss=loss.item(), task_loss=task.item()))
                t_win, n_win, k_win = now, 0, 0
            if stop:
                break
        sync(device)
        train_time += time.perf_counter() - t_epoch
        total_samples += min(train.n, (b + 1) * batch)
        acc, val_loss = evaluate_with_loss(model, test, device)
        accs.append(acc)
        val_losses.append(val_loss)
        losses.append(loss.item())
        log(f"    epoch {epoch + 1}: accuracy {acc:.4f}, last loss {loss.item():.4f}, "
            f"{sum(w['samples'] for w in windows if w['epoch'] == epoch) / max(1e-9, sum(w['seconds'] for w in windows if w['epoch'] == epoch)):.0f} samples/s")
        if max_steps and step >= max_steps:
            break
    rates = [w["samples_per_s"] for w in windows[1:]] or [w["samples_per_s"] for w in windows]
    after_first = windows[1:] or windows
    return dict(accuracy=accs[-1], accuracy_per_epoch=accs, eval_loss=val_losses[-1], eval_loss_per_epoch=val_losses,
                final_loss=losses[-1], steps=step,
                train_seconds=train_time, samples_per_s_all=total_samples / train_time,
                samples_per_s_median=statistics.median(rates), samples_per_s_min=min(rates),
                samples_per_s_max=max(rates),
                samples_per_s_after_first=sum(w["samples"] for w in after_first) / sum(w["seconds"] for w in after_first),
                first_window_samples_per_s=windows[0]["samples_per_s"], windows=windows)


def count(params):
    return sum(p.numel() for p in params)


def run_method(spec, cfg, sd, impl, train, test, n_labels, device, args):
    parts = spec.split(":")
    method, lr = parts[0], float(parts[1])
    target = float(parts[2]) if len(parts) > 2 else None
    torch.manual_seed(args.seed)
    dropout = args.lora_dropout if method == "lora" else 0.0
    enc, used_impl, note = build_encoder(impl, cfg, dropout)
    if sd is not None:
        load_weights(enc, sd)
    enc.to(device)
    for p in enc.parameters():
        p.requires_grad_(False)
    info = dict(method=method, lr=lr, impl=used_impl, impl_note=note, dropout=dropout)
    extra_loss = None
    train_mode = None
    if method == "dense":
        model = Classifier(enc, cfg["hidden"], n_labels, frozen_no_grad=True).to(device)

        def train_mode():
            model.eval()
            model.head.train()
        trainable = list(model.head.parameters())
        total_inference = count(enc.parameters()) + count(model.head.parameters())
    elif method == "lora":
        targets = ["query", "key", "value", "dense"]
        lcfg_kw = dict(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                       target_modules=targets, bias="none")
        try:
            if args.lora_impl != "peft":
                raise RuntimeError("--lora-impl own")
            import peft
            from peft import LoraConfig, get_peft_model
            lcfg = LoraConfig(**lcfg_kw)
            if used_impl == "hf":
                enc = get_peft_model(enc, lcfg)
                info["peft"] = "get_peft_model"
            else:
                from peft import inject_adapter_in_model
                enc = inject_adapter_in_model(lcfg, enc)
                info["peft"] = "inject_adapter_in_model"
            info["peft_version"] = peft.__version__
        except Exception as e:  # noqa: BLE001
            if args.lora_impl == "peft" and not args.lora_fallback:
                raise
            log(f"    PEFT not used ({type(e).__name__}: {e}); built-in LoRA instead")
            info["peft"] = f"built-in LoRA (PEFT failed: {type(e).__name__}: {e})"
            n_wrapped = lora_encoder(enc, args.lora_r, args.lora_alpha, args.lora_dropout)
            info["peft_version"] = None
            if n_wrapped != 6 * cfg["layers"]:
                raise RuntimeError(f"built-in LoRA wrapped {n_wrapped} linears, expected {6 * cfg['layers']}")
        enc.to(device)
        model = Classifier(enc, cfg["hidden"], n_labels).to(device)
        trainable = [p for n, p in model.named_parameters() if p.requires_grad]
        lora_params = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
        info["lora_modules"] = len({n.rsplit(".lora_", 1)[0] for n in lora_params})
        info["lora"] = lcfg_kw
        total_inference = count(p for n, p in model.named_parameters() if "lora_" not in n)  # after merging
    elif method == "fgref":
        gated = gate_encoder(enc)
        if len(gated) != 6 * cfg["layers"]:
            raise RuntimeError(f"gated {len(gated)} linears, expected {6 * cfg['layers']}")
        enc.to(device)
        model = Classifier(enc, cfg["hidden"], n_labels).to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        lam = args.fg_lambda
        gl = list(gated.values())

        def extra_loss():
            return lam * torch.stack([g.sparsity_term(target) for g in gl]).mean()
        info.update(target_sparsity=target, fg_lambda=lam, gated_layers=len(gated),
                    gates=sum(g.theta_r.numel() + g.theta_c.numel() for g in gl))
        gate_params = set(id(g.theta_r) for g in gl) | set(id(g.theta_c) for g in gl)
        total_inference = count(p for p in model.parameters() if id(p) not in gate_params)  # before removal
    else:
        raise ValueError(f"unknown method {method}")
    info["head_params"] = count(model.head.parameters())
    info["trainable_params"] = count(trainable)
    info["inference_params"] = total_inference
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with MemSampler() as mem:
        r = train_run(model, trainable, train, test, device, args.epochs, args.batch, lr, args.seed,
                      extra_loss=extra_loss, train_mode=train_mode, max_steps=args.max_steps)
    info.update(r)
    if device.type == "cuda":
        info["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
        info["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
    info["nvml_peak_mib"] = mem.peak
    info["nvml_first_mib"] = mem.first
    if method == "fgref":
        info["gates_report"] = gate_report(gated)
        info["inference_params_dense"] = total_inference
        info["inference_params"] = total_inference - info["gates_report"]["removed"]  # paper's counting
        # The same gates projected onto the budget (as gatecut projects its gates before compiling).
        tau = project_budget(gated, target)
        info["projected"] = dict(tau=tau, accuracy=evaluate(model, test, device), **gate_report(gated))
        info["projected"]["inference_params"] = total_inference - info["projected"]["removed"]
        for g in gated.values():
            g.keep_r = g.keep_c = None
        info["final_sparsity_loss"] = float(extra_loss()) / lam
    del model, enc, trainable
    return info


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def check_against_onnx(onnx_path, cfg, sd, impl, ids, lengths, device, rows=4):
    """Max |torch - ORT| of last_hidden_state over the real tokens of `rows` rows (ORT on CPU)."""
    import onnxruntime as ort
    enc, used, note = build_encoder(impl, cfg, 0.0)
    load_weights(enc, sd)
    enc.to(device).eval()
    sel = list(range(rows))
    L = max(lengths[i] for i in sel)
    x = ids[sel, :L]
    mask = (torch.arange(L)[None, :] < torch.tensor([lengths[i] for i in sel])[:, None]).long()
    tt = torch.zeros_like(x)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 4
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    ref = sess.run(["last_hidden_state"], {"input_ids": x.numpy(), "attention_mask": mask.numpy(),
                                           "token_type_ids": tt.numpy()})[0]
    prec = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # strict fp32 for the check
    try:
        got = hidden_states(enc, x.to(device), mask.to(device), tt.to(device)).float().cpu().numpy()
    finally:
        torch.set_float32_matmul_precision(prec)
    m = mask.numpy().astype(bool)
    diff = np.abs(got - ref)[m]
    return dict(impl=used, impl_note=note, rows=rows, seq=L, max_abs_diff=float(diff.max()),
                mean_abs_diff=float(diff.mean()), max_abs_ref=float(np.abs(ref[m]).max()),
                max_abs_diff_all_positions=float(np.abs(got - ref).max()), ort_version=ort.__version__)


@torch.no_grad()
def check_hf_vs_own(cfg, device):
    """transformers' BertModel and the built-in BERT on the same random weights (selftest)."""
    hf, used, note = build_encoder("hf", cfg, 0.0)
    if used != "hf":
        return dict(skipped=note)
    own = OwnBert(cfg, 0.0)
    res = own.load_state_dict(hf.state_dict(), strict=False)
    hf.to(device).eval()
    own.to(device).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg["vocab"], (3, 40), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    tt = torch.zeros_like(ids)
    a = hidden_states(hf, ids.to(device), mask.to(device), tt.to(device))
    b = hidden_states(own, ids.to(device), mask.to(device), tt.to(device))
    m = mask.bool().to(device)
    return dict(missing=list(res.missing_keys), unexpected=list(res.unexpected_keys),
                max_abs_diff=float((a - b).abs()[m].max()), note=note)


def versions():
    v = dict(python=sys.version.split()[0], torch=torch.__version__,
             cuda=torch.version.cuda if torch.cuda.is_available() else None,
             gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    for name in ("transformers", "peft", "onnx", "onnxruntime", "tokenizers", "numpy"):
        try:
            v[name] = __import__(name).__version__
        except Exception as e:  # noqa: BLE001
            v[name] = f"unavailable: {type(e).__name__}: {e}"
    return v


# ----------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx")
    ap.add_argument("--tokenizer")
    ap.add_argument("--train")
    ap.add_argument("--eval")
    ap.add_argument("--dataset", default="data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", default="dense:1e-3,lora:1e-3,fgref:1e-2:0.3")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=None, help="stop each run after this many steps (dry runs)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N train / N//4 test rows (dry runs)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--impl", choices=["hf", "own"], default="hf")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tf32", type=int, default=1, help="1: TF32 matmuls (ONNX Runtime CUDA's default), 0: strict fp32")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--lora-alpha", type=int, default=16)
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--lora-impl", choices=["peft", "own"], default="peft")
    ap.add_argument("--lora-fallback", type=int, default=1, help="1: built-in LoRA when PEFT fails")
    ap.add_argument("--fg-lambda", type=float, default=50.0)
    ap.add_argument("--check-tol", type=float, default=1e-3, help="abort when torch vs ORT differs by more")
    ap.add_argument("--deadline", type=float, default=None, help="unix time after which no new run starts")
    ap.add_argument("--selftest", action="store_true", help="random weights and random tokens; no files")
    args = ap.parse_args(argv)

    device = torch.device(args.device if (args.device != "cuda" or torch.cuda.is_available()) else "cpu")
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")  # "high": TF32 matmuls
    result = dict(dataset=args.dataset, epochs=args.epochs, batch=args.batch, max_len=args.max_len,
                  seed=args.seed, tf32=bool(args.tf32),
                  float32_matmul_precision=torch.get_float32_matmul_precision(), device=str(device), versions=versions(), runs=[],
                  started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    log("versions:", json.dumps(result["versions"]))

    def save():
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, args.out)

    if args.selftest:
        cfg, sd = dict(MINILM), None
        result["hf_vs_own"] = check_hf_vs_own(cfg, device)
        log("hf vs own:", json.dumps(result["hf_vs_own"]))
        g = torch.Generator().manual_seed(0)
        n = args.limit or 640
        lengths = torch.randint(8, args.max_len + 1, (n,), generator=g).tolist()
        ids = torch.randint(1000, cfg["vocab"], (n, args.max_len), generator=g)
        labels = [int(ids[i, 0]) % 2 for i in range(n)]
        train = Data(ids, lengths, labels, device)
        test = Data(ids[: n // 4], lengths[: n // 4], labels[: n // 4], device)
        n_labels = 2
    else:
        t0 = time.time()
        cfg, sd = onnx_state(args.onnx)
        result["config"] = cfg
        log(f"config from ONNX: {cfg} ({len(sd)} tensors, {sum(v.size for v in sd.values()):,} parameters)")
        tr_texts, tr_labels = read_jsonl(args.train)
        te_texts, te_labels = read_jsonl(args.eval)
        if args.limit:
            tr_texts, tr_labels = tr_texts[: args.limit], tr_labels[: args.limit]
            te_texts, te_labels = te_texts[: max(8, args.limit // 4)], te_labels[: max(8, args.limit // 4)]
        names = sorted(set(tr_labels) | set(te_labels))
        tr_ids, tr_len = tokenize(args.tokenizer, tr_texts, args.max_len)
        te_ids, te_len = tokenize(args.tokenizer, te_texts, args.max_len)
        result["data"] = dict(train_rows=len(tr_labels), test_rows=len(te_labels), labels=names,
                              train_label_counts={k: tr_labels.count(k) for k in names},
                              test_label_counts={k: te_labels.count(k) for k in names},
                              majority_accuracy=max(te_labels.count(k) for k in names) / len(te_labels),
                              train_rows_at_max_len=sum(1 for n in tr_len if n >= args.max_len),
                              mean_train_tokens=float(np.mean(tr_len)))
        log(f"data: {json.dumps(result['data'])} (loaded and tokenised in {time.time() - t0:.1f}s)")
        check = check_against_onnx(args.onnx, cfg, sd, args.impl, te_ids, te_len, device)
        result["onnx_check"] = check
        log("torch vs ONNX Runtime (CPU), last_hidden_state:", json.dumps(check))
        save()
        if not check["max_abs_diff"] <= args.check_tol:
            log(f"FAIL: torch differs from the ONNX model by {check['max_abs_diff']:.3g} > {args.check_tol}")
            return 3
        idx = {k: i for i, k in enumerate(names)}
        train = Data(tr_ids, tr_len, [idx[k] for k in tr_labels], device)
        test = Data(te_ids, te_len, [idx[k] for k in te_labels], device)
        n_labels = len(names)

    for spec in [s.strip() for s in args.runs.split(",") if s.strip()]:
        if args.deadline and time.time() > args.deadline:
            log(f"SKIP {spec}: past the deadline")
            result["runs"].append(dict(spec=spec, skipped="deadline"))
            continue
        log(f"=== {args.dataset} {spec}")
        t0 = time.time()
        try:
            info = run_method(spec, cfg, sd, args.impl, train, test, n_labels, device, args)
            info["spec"] = spec
            info["wall_seconds"] = time.time() - t0
            w = info.pop("windows")
            info["windows"] = [dict(step=x["step"], samples_per_s=round(x["samples_per_s"], 1),
                                    loss=round(x["loss"], 4)) for x in w]
            log(f"    {spec}: accuracy {info['accuracy']:.4f}, trainable {info['trainable_params']:,}, "
                f"{info['samples_per_s_median']:.0f} samples/s (median of windows after the first), "
                f"peak allocated {info.get('peak_allocated_mib', 0):.0f} MiB, NVML peak {info['nvml_peak_mib']} MiB"
                + (f", gates: {json.dumps(info['gates_report'])}; projected: {json.dumps(info['projected'])}"
                   if "gates_report" in info else ""))
        except Exception as e:  # noqa: BLE001
            tb = traceback.format_exc()
            log(f"    {spec} FAILED: {type(e).__name__}: {e}\n{tb}")
            info = dict(spec=spec, error=f"{type(e).__name__}: {e}", traceback=tb, wall_seconds=time.time() - t0)
        result["runs"].append(info)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        save()
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
