#!/usr/bin/env python3
"""PEFT LoRA r=8 on q/v of an LLM-shaped decoder: training samples/s and peak GPU memory.

The yardstick for gatecut's gate training at LLM scale (issue 14): same architecture, same
precision, batch and sequence length, causal-LM loss on the same token file. Weights are random
from the transformers config class under a fixed seed (there is no model hub on the GPU machine):
memory and speed do not depend on their values, so the weights are not loaded from the ONNX file.

Prints one JSON line: {"method": "lora", "samples_per_s", "peak_allocated_gib",
"peak_reserved_gib", ...}.
"""
import argparse
import json
import sys
import time

SHAPES = {
    # Qwen2.5-1.5B: GQA 12 heads / 2 KV heads, tied embeddings
    "qwen2.5-1.5b": dict(arch="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                         tie_word_embeddings=True),
    # LLaMA-2-7B
    "llama2-7b": dict(arch="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                      tie_word_embeddings=False),
    # a small one for dry runs on a CPU
    "tiny": dict(arch="llama", hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=256, tie_word_embeddings=False),
}


def build(shape, dtype, device, seed=1234):
    import torch
    import transformers as tf
    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    common = dict(max_position_embeddings=4096, hidden_act="silu", rms_norm_eps=1e-6, use_cache=False,
                  bos_token_id=1, eos_token_id=2)
    if arch == "qwen2":
        cfg = tf.Qwen2Config(use_sliding_window=False, max_window_layers=spec["num_hidden_layers"], **spec, **common)
        cls = tf.Qwen2ForCausalLM
    else:
        cfg = tf.LlamaConfig(**spec, **common)
        cls = tf.LlamaForCausalLM
    torch.manual_seed(seed)
    with torch.device(device):
        m = cls(cfg).to(dtype)
    return cfg, m


def read_tokens(path, batch, seq, vocab, steps):
    """Rows of token ids (a JSONL with input_ids, as gatecut reads it), cut/padded to seq."""
    import torch
    rows = []
    with open(path) as f:
        for line in f:
            ids = json.loads(line)["input_ids"][:seq]
            if len(ids) == seq:
                rows.append([i % vocab for i in ids])
    if not rows:
        raise SystemExit(f"{path}: no row with {seq} tokens")
    need = batch * steps
    rows = (rows * (need // len(rows) + 1))[:need]
    return torch.tensor(rows, dtype=torch.long).view(steps, batch, seq)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b")
    ap.add_argument("--dtype", choices=["fp16", "bf16"], default="bf16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--tokens", help="JSONL with input_ids (default: random ids)")
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    cfg, model = build(a.shape, dtype, a.device)
    if a.checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                             lora_dropout=0.0, task_type="CAUSAL_LM"))
    # LoRA weights train in fp32 (what PEFT users do under autocast); the frozen model stays in dtype
    for n, p in model.named_parameters():
        if p.requires_grad:
            p.data = p.data.float()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr)
    steps = a.steps + a.warmup
    if a.tokens:
        data = read_tokens(a.tokens, a.batch, a.seq, cfg.vocab_size, steps)
    else:
        g = torch.Generator().manual_seed(7)
        data = torch.randint(3, cfg.vocab_size, (steps, a.batch, a.seq), generator=g)
    model.train()
    scaler = torch.amp.GradScaler(enabled=a.dtype == "fp16")
    losses = []
    t0 = None
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for s in range(steps):
        if s == a.warmup:
            if a.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        ids = data[s].to(a.device)
        with torch.autocast(device_type="cuda" if a.device == "cuda" else "cpu", dtype=dtype):
            out = model(input_ids=ids, labels=ids)
        scaler.scale(out.loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss))
    if a.device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    res = dict(method="lora-r8-qv" + ("-ckpt" if a.checkpointing else ""), shape=a.shape, dtype=a.dtype,
               batch=a.batch, seq=a.seq, steps=a.steps, trainable=trainable,
               samples_per_s=round(a.batch * a.steps / wall, 2), wall_s=round(wall, 2),
               first_loss=round(losses[0], 4), last_loss=round(losses[-1], 4))
    if a.device == "cuda":
        res["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        res["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    print(json.dumps(res))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
