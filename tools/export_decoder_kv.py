#!/usr/bin/env python3
"""Export a full-size decoder with its KV cache, optimum-style I/O, random weights (nothing is
downloaded), for gatecut's decode benchmark (tools/gpu_decode_bench.sh):

    python3 tools/export_decoder_kv.py --shape qwen2.5-1.5b --dtype fp16 --out /opt/models

Inputs input_ids [batch, sequence], attention_mask [batch, total_sequence], position_ids
[batch, sequence], past_key_values.{i}.key/value [batch, kv_heads, past_sequence, head_dim];
outputs logits [batch, sequence, vocab] and present.{i}.key/value [batch, kv_heads, total_sequence,
head_dim] (the names and axes of tools/export_deploy_models.py's zoo cache models). Built with
transformers' config class on the GPU (seed 1234, transformers' own init), converted to the chosen
precision there, exported with the TorchScript exporter (opset 17, eager attention), then saved as
OUT/NAME.onnx + OUT/NAME.onnx.data (one external-data file). A quick ONNX-free check in torch
compares a prefill + decode step with the cache against the whole sequence without it.

Shapes:
  qwen2.5-1.5b  Qwen2ForCausalLM: 28 layers, hidden 1536, 12 heads / 2 KV heads (head 128), FFN 8960,
                vocab 151936, tied embeddings, rope theta 1e6
  llama2-7b     LlamaForCausalLM: 32 layers, hidden 4096, 32 heads (MHA), FFN 11008, vocab 32000
  llama-0.5b    LlamaForCausalLM: 24 layers, hidden 1024, 16 heads / 8 KV heads, FFN 5632, vocab 32000
                (tools/export_bench_models.py's llama-0.5b with an LM head and the cache)
  tiny          Qwen2ForCausalLM: 2 layers, hidden 64, 4 heads / 2 KV heads, FFN 176, vocab 256 (CPU check)
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

SEED = 1234

SHAPES = {
    "qwen2.5-1.5b": dict(arch="qwen2", layers=28, hidden=1536, heads=12, kv_heads=2, ffn=8960, vocab=151936,
                         tied=True, rope_theta=1e6, max_pos=32768),
    "llama2-7b": dict(arch="llama", layers=32, hidden=4096, heads=32, kv_heads=32, ffn=11008, vocab=32000,
                      tied=False, rope_theta=1e4, max_pos=4096),
    # tools/export_bench_models.py's llama-0.5b (24 layers, hidden 1024, 16 heads / 8 KV heads, FFN 5632,
    # vocab 32000) as a causal LM with its head and KV cache (~0.56B parameters).
    "llama-0.5b": dict(arch="llama", layers=24, hidden=1024, heads=16, kv_heads=8, ffn=5632, vocab=32000,
                       tied=False, rope_theta=1e4, max_pos=4096),
    "tiny": dict(arch="qwen2", layers=2, hidden=64, heads=4, kv_heads=2, ffn=176, vocab=256, tied=True,
                 rope_theta=1e6, max_pos=512),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(shape, dtype, device):
    import torch
    import transformers as tf
    s = SHAPES[shape]
    common = dict(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["ffn"],
                  num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
                  max_position_embeddings=s["max_pos"], hidden_act="silu", rms_norm_eps=1e-6,
                  rope_theta=s["rope_theta"], tie_word_embeddings=s["tied"], bos_token_id=1, eos_token_id=2)
    if s["arch"] == "qwen2":
        cfg = tf.Qwen2Config(use_sliding_window=False, max_window_layers=s["layers"], **common)
        cls = tf.Qwen2ForCausalLM
    else:
        cfg = tf.LlamaConfig(**common)
        cls = tf.LlamaForCausalLM
    cfg.use_cache = True
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED)
    with torch.device(device):
        model = cls(cfg)
    model = model.to(dtype={"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]).eval()
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception as e:  # noqa: BLE001
            log(f"note: set_attn_implementation(eager): {e}")
    return cfg, model


def cache_wrapper(model, layers):
    """optimum-style (ids, mask, positions, past...) -> (logits, present...), with one named parameter
    per past tensor (the exporters match input names and dynamic axes to parameters)."""
    import torch
    from transformers import DynamicCache

    past = [f"p{i}_{kv}" for i in range(layers) for kv in ("k", "v")]
    src = (f"def forward(self, input_ids, attention_mask, position_ids, {', '.join(past)}):\n"
           f"    return self.step(input_ids, attention_mask, position_ids, ({', '.join(past)},))\n")
    namespace = {}
    exec(src, namespace)  # noqa: S102  (a generated signature, no outside input)

    class CacheLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model
            self.input_names = ["input_ids", "attention_mask", "position_ids"] + [
                f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
            self.output_names = ["logits"] + [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]

        def step(self, input_ids, attention_mask, position_ids, past):
            try:
                cache = DynamicCache(config=self.m.config)
            except TypeError:
                cache = DynamicCache()
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, return_dict=True)
            pkv = out.past_key_values
            present = []
            for i in range(layers):
                if hasattr(pkv, "layers"):
                    present += [pkv.layers[i].keys, pkv.layers[i].values]
                elif hasattr(pkv, "key_cache"):
                    present += [pkv.key_cache[i], pkv.value_cache[i]]
                else:
                    present += [pkv[i][0], pkv[i][1]]
            return (out.logits, *present)

    CacheLM.forward = namespace["forward"]
    return CacheLM().eval()


def feeds(cfg, batch, past, seq, device, dtype, seed=7):
    import torch
    g = torch.Generator().manual_seed(seed)
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    total = past + seq
    f = [torch.randint(3, cfg.vocab_size, (batch, seq), generator=g),
         torch.ones(batch, total, dtype=torch.long),
         torch.arange(past, total).expand(batch, seq).contiguous()]
    for _ in range(cfg.num_hidden_layers * 2):
        f.append((torch.randn(batch, cfg.num_key_value_heads, past, head_dim, generator=g) * 0.5).to(dtype))
    return [t.to(device) for t in f]


def torch_cache_check(wrapper, cfg, device, dtype):
    """Prefill 5 tokens, one decode step with the cache, against the 6 tokens without: max |diff| of the
    last logits, relative to their scale."""
    import torch
    layers = cfg.num_hidden_layers
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    empty = [torch.zeros(1, cfg.num_key_value_heads, 0, head_dim, dtype=dtype, device=device)
             for _ in range(2 * layers)]
    ids = torch.randint(3, cfg.vocab_size, (1, 6), generator=torch.Generator().manual_seed(3)).to(device)
    pos = torch.arange(6, device=device)[None]
    ones = torch.ones(1, 6, dtype=torch.long, device=device)
    with torch.no_grad():
        full = wrapper(ids, ones, pos, *empty)[0][:, -1].float()
        pre = wrapper(ids[:, :5], ones[:, :5], pos[:, :5], *empty)
        step = wrapper(ids[:, 5:], ones, pos[:, 5:], *pre[1:])[0][:, -1].float()
    return float((full - step).abs().max() / full.abs().max().clamp_min(1e-6))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--shape", default="qwen2.5-1.5b", choices=sorted(SHAPES))
    ap.add_argument("--dtype", default="fp16", choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--out", default="/opt/models")
    ap.add_argument("--name", default=None, help="file name without .onnx (default SHAPE-kv-DTYPE)")
    args = ap.parse_args(argv)
    import onnx
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = args.name or f"{args.shape}-kv-{args.dtype}"
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    cfg, model = build(args.shape, args.dtype, device)
    params = sum(p.numel() for p in model.parameters())
    log(f"{name}: built {type(model).__name__} on {device} in {args.dtype}, {params:,} parameters "
        f"({time.time() - t0:.1f} s)")
    dtype = next(model.parameters()).dtype
    wrapper = cache_wrapper(model, cfg.num_hidden_layers)
    rel = torch_cache_check(wrapper, cfg, device, dtype)
    log(f"{name}: torch, prefill + 1 cached step vs the whole sequence: relative max diff of the last logits {rel:.3g}")
    example = feeds(cfg, 2, 3, 4, device, dtype)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"},
            "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    for i in range(cfg.num_hidden_layers):
        for kv in ("key", "value"):
            axes[f"past_key_values.{i}.{kv}"] = {0: "batch", 2: "past_sequence"}
            axes[f"present.{i}.{kv}"] = {0: "batch", 2: "total_sequence"}
    final = os.path.join(args.out, name + ".onnx")
    data = name + ".onnx.data"
    with tempfile.TemporaryDirectory(dir=args.out) as td:
        tmp = os.path.join(td, name + ".onnx")
        t1 = time.time()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, tuple(example), tmp, dynamo=False, opset_version=17,
                              input_names=wrapper.input_names, output_names=wrapper.output_names,
                              dynamic_axes=axes, do_constant_folding=True)
        log(f"{name}: exported (TorchScript, opset 17) in {time.time() - t1:.1f} s")
        del wrapper, model
        torch.cuda.empty_cache() if device == "cuda" else None
        t2 = time.time()
        m = onnx.load(tmp, load_external_data=True)
        for key, value in (("gatecut.generator", "tools/export_decoder_kv.py"), ("gatecut.shape", args.shape),
                           ("gatecut.weights", f"random: torch.manual_seed({SEED}), transformers init")):
            p = m.metadata_props.add()
            p.key, p.value = key, value
        for stale in (final, os.path.join(args.out, data)):
            if os.path.exists(stale):
                os.remove(stale)
        onnx.save_model(m, final, save_as_external_data=True, all_tensors_to_one_file=True, location=data,
                        size_threshold=1024)
        init_bytes = os.path.getsize(os.path.join(args.out, data))
        del m
        log(f"{name}: saved {final} + {data} ({init_bytes / 1e9:.2f} GB) in {time.time() - t2:.1f} s")
    info = dict(name=name, file=final, shape=args.shape, spec=SHAPES[args.shape], dtype=args.dtype,
                parameters=params, data_bytes=init_bytes, torch=torch.__version__, cache_check=rel,
                seconds=round(time.time() - t0, 1))
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(info, f, indent=1)
    shutil.disk_usage(args.out)
    log(f"{name}: done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
