#!/usr/bin/env python3
"""Export full-size, randomly initialised fp32 transformers to ONNX for gatecut's latency benchmarks.

Models (weights are random: nothing is downloaded; torch.manual_seed(1234), transformers' own init,
then N(0, 0.1) noise on every 1-D parameter so that no two initializers are equal and exporters
cannot deduplicate them; that matters to a pruner that edits one layer's bias):

  bert-base    BertModel (no pooler): 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522
               (109.5M parameters, ~438 MB, saved inline); inputs input_ids, attention_mask,
               token_type_ids
  llama-0.5b   LlamaModel (no LM head): 24 layers, hidden 1024, 16 heads of 64, 8 KV heads (GQA),
               SwiGLU intermediate 5632 (22 x 256), vocab 32000 (523.7M parameters, ~2.09 GB, over
               2 GB so saved with external data NAME.onnx.data); inputs input_ids, attention_mask
  bert-base-fused
               bert-base (same config, seed and weights) as ONNX Runtime users deploy it: fused by
               onnxruntime.transformers.optimizer.optimize_model(model_type='bert', num_heads=12,
               hidden_size=768, opt_level=0, or 1 if 0 falls short, use_gpu=False,
               FusionOptions('bert') with enable_gelu_approximation=False) into com.microsoft
               EmbedLayerNormalization, Attention (one per layer, packed QKV weight [768, 2304]),
               SkipLayerNormalization and BiasGelu; fp32, ai.onnx opset 17 + com.microsoft 1, inline
               (~0.44 GB).  Same inputs and output as bert-base (ORT keeps the int64 graph inputs and
               casts inside); the json's "io" and "io_changed" record what the file really has.
               EmbedLayerNormalization turns attention_mask into one length per row (mask_index), so
               the fused model is exact for right padding only (ones then zeros): left padding or
               holes in the mask give wrong results, unlike bert-base.

  bert-base-fused-fp16
               bert-base-fused, then ONNX Runtime's convert_float_to_float16(keep_io_types=True): int64
               inputs, float32 output, float16 inside (~0.22 GB); checked against fp32 torch within 0.1.
  llama-0.5b-fused, llama-0.5b-fused-fp16
               llama-0.5b (same config, seed and weights) as ONNX Runtime users deploy it: the fp32
               export, with position_ids = cumsum(ones) - 1 passed ([batch, sequence]; ORT's fused
               RotaryEmbedding refuses LlamaModel's own [1, sequence] positions at batch > 1), fused by
               onnxruntime.transformers.optimizer.optimize_model(model_type='gpt2', opt_level=0,
               use_gpu=False) into SimplifiedLayerNormalization, com.microsoft
               SkipSimplifiedLayerNormalization (norm + residual add) and com.microsoft RotaryEmbedding
               (attention stays MatMul/Softmax: ORT fuses LLaMA attention only in its GPU-side
               converter); -fp16 then convert_float_to_float16(keep_io_types=True) (float32 output).
               Checked against the fp32 torch model at 2x9 and 3x13 (fp16 within 0.1 abs).
               See export_fused_decoder().

All: TorchScript exporter (dynamo=False), opset 17, eager attention (bert-base-fused: see below), no
KV cache, int64 inputs
with dynamic axes 'batch' and 'sequence', one output last_hidden_state [batch, sequence, hidden].
Exporting runs on the CPU (about 20 s for bert-base, 30 s for bert-base-fused, 1-2 min for llama-0.5b);
each file is then checked against torch with ONNX Runtime (CPU) at batch 2 x sequence 9, right-padded.

bert-base-fused is exported the way tools/export_models.py exports its tiny bert-ort-fused.onnx
("strategy B", whose functions it imports): ORT's BERT fusion does not recognise the attention graph
that transformers 5 emits, so the source of the fusion is a re-export of the same weights through a
wrapper that builds the classic additive mask (1 - mask[:, None, None, :]) * finfo.min, with a
classic attention function (MatMul, Div by sqrt(head_dim), Add, Softmax, MatMul) registered through
transformers.AttentionInterface, and with the head-split Reshape shapes (-1, 64) pinned to (12, 64).
Both are exact rewrites (checked in torch); the ONNX Runtime check compares with the eager bert-base
model.  The script exits non-zero if fewer than 12 Attention nodes result.

Half precision: NAME-fp16 / NAME-bf16 (bert-base and llama-0.5b) is the same model, same seed and
weights, converted with .to(float16 / bfloat16) on the GPU (the CPU when there is none) and exported
there, as optimum does; inputs stay int64, the output is in the model's precision.  The ONNX Runtime
check against torch is float32-only (the CPU provider has no bfloat16 kernels and computes float16 in
float32): gatecut prune verifies compiled against gated models of any precision on CUDA.

    python3 tools/export_bench_models.py --out /tmp/bench [--models bert-base,llama-0.5b,bert-base-fused,llama-0.5b-fp16] [--no-check]
    python3 tools/export_bench_models.py --flops MODEL.onnx --batch 32 --seq 128    # = tools/flops.py

Writes OUT/NAME.onnx (+ OUT/NAME.onnx.data) and OUT/NAME.json (config, parameters, bytes, check,
matrix-product FLOPs at --flops-shapes; for bert-base-fused also the opt_level used, the fused
operator statistics, the op histogram and the FLOPs of the unfused equivalent, because tools/flops.py
cannot see the products hidden inside com.microsoft Attention).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SEED = 1234
VECTOR_NOISE = 0.1
OPSET = 17
EXTERNAL_DATA_OVER = 2_000_000_000   # bytes of initializers; protobuf's hard limit is 2 GiB
EXPORT_SHAPE = (2, 16)
CHECK_SHAPE = (2, 9)
SECOND_CHECK_SHAPE = (3, 13)     # bert-base-fused only

MODELS = {
    "bert-base": dict(arch="bert", layers=12, hidden=768, heads=12, kv_heads=12, intermediate=3072,
                      vocab=30522, max_pos=512),
    "llama-0.5b": dict(arch="llama", layers=24, hidden=1024, heads=16, kv_heads=8, intermediate=5632,
                       vocab=32000, max_pos=2048),
}
# The very same spec as bert-base (so build() gives the same weights); "fusion" routes it to
# export_fused().
MODELS["bert-base-fused"] = dict(MODELS["bert-base"], fusion="onnxruntime.transformers bert")
# The same fused model, then convert_float_to_float16(keep_io_types=True) (ORT's fp16 route for fused BERT).
MODELS["bert-base-fused-fp16"] = dict(MODELS["bert-base-fused"], fused_float16=True)

# LLaMA as ONNX Runtime users deploy it: the fp32 export fused by onnxruntime.transformers.optimizer
# (model_type gpt2: SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization, RotaryEmbedding),
# then, for -fp16, convert_float_to_float16(keep_io_types=True). "fusion" routes them to
# export_fused_decoder().
MODELS["llama-0.5b-fused"] = dict(MODELS["llama-0.5b"], fusion="onnxruntime.transformers gpt2")
MODELS["llama-0.5b-fused-fp16"] = dict(MODELS["llama-0.5b-fused"], fused_float16=True)

# Name under which export_models.classic_attention is registered with transformers.AttentionInterface
# (the same name the tiny zoo uses).
CLASSIC_ATTN = "gatecut_classic"
# opt_level 0 is tried first (pure python fusion, what the tiny zoo ended up with); 1 only if 0 does
# not give every fused op.
FUSION_OPT_LEVELS = (0, 1)
MAX_IR_VERSION = 11


def log(*a):
    print(*a, flush=True)


def make_config(spec, attn_impl="eager"):
    import transformers as tf
    if spec["arch"] == "bert":
        cfg = tf.BertConfig(vocab_size=spec["vocab"], hidden_size=spec["hidden"],
                            num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                            intermediate_size=spec["intermediate"], max_position_embeddings=spec["max_pos"],
                            type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, pad_token_id=0)
    else:
        cfg = tf.LlamaConfig(vocab_size=spec["vocab"], hidden_size=spec["hidden"],
                             intermediate_size=spec["intermediate"], num_hidden_layers=spec["layers"],
                             num_attention_heads=spec["heads"], num_key_value_heads=spec["kv_heads"],
                             head_dim=spec["hidden"] // spec["heads"],
                             max_position_embeddings=spec["max_pos"], hidden_act="silu", rms_norm_eps=1e-6,
                             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg.use_cache = False
    try:
        cfg._attn_implementation = attn_impl
    except Exception:  # noqa: BLE001
        pass
    return cfg


def build(spec, attn_impl="eager", explicit_positions=False):
    """attn_impl other than eager only for bert-base-fused's fusion source; the weights do not depend
    on it (same seed, same construction order). explicit_positions (LLaMA only): the wrapper passes
    position_ids = [0..S-1] for every row ([batch, sequence], what LlamaModel computes itself as
    [1, sequence]), so that ONNX Runtime's fused RotaryEmbedding gets the [batch, sequence] positions
    it requires (with the [1, sequence] ones it fails at batch > 1)."""
    import torch
    import transformers as tf
    cfg = make_config(spec, attn_impl)
    torch.manual_seed(SEED)
    if spec["arch"] == "bert":
        model = tf.BertModel(cfg, add_pooling_layer=False)
    else:
        model = tf.LlamaModel(cfg)
    model = model.float()
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * VECTOR_NOISE)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation(attn_impl)
        except Exception as e:  # noqa: BLE001
            log(f"  note: set_attn_implementation({attn_impl}) failed: {e}")
    model.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, m, bert):
            super().__init__()
            self.m = m
            self.bert = bert
            self.explicit_positions = explicit_positions

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            if self.bert:
                out = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             return_dict=True)
            elif self.explicit_positions:
                # Exact: LlamaModel's own positions are arange(S) for every row too (padding ignored).
                positions = torch.ones_like(input_ids).cumsum(-1) - 1
                out = self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                             use_cache=False, return_dict=True)
            else:
                out = self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=True)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if spec["arch"] == "bert" else [])
    return cfg, model, Wrapper(model, spec["arch"] == "bert").eval(), names


def make_inputs(names, vocab, batch, seq, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, vocab, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    for b in range(1, batch):            # right padding, so no "unpadded" shortcut is traced in
        length = max(1, seq - 2 * b - 1)
        mask[b, length:] = 0
        ids[b, length:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        tt = np.zeros((batch, seq), dtype=np.int64)
        tt[:, seq // 2:] = 1
        feeds["token_type_ids"] = tt
    return feeds


def export(name, spec, out_dir, check=True, flops_shapes=()):
    import onnx
    import torch
    t0 = time.time()
    cfg, model, wrapper, names = build(spec, explicit_positions=spec.get("explicit_positions", False))
    params = sum(p.numel() for p in model.parameters())
    log(f"{name}: built {type(model).__name__}, {params:,} parameters ({time.time() - t0:.1f} s)")
    feeds = make_inputs(names, spec["vocab"], *EXPORT_SHAPE, seed=7)
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    dtype = spec.get("dtype", "fp32")
    if dtype != "fp32":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        wrapper = wrapper.to(device=device, dtype=torch.float16 if dtype == "fp16" else torch.bfloat16)
        args = tuple(a.to(device) for a in args)
        log(f"{name}: converted to {dtype} on {device}")
        if check:
            log(f"{name}: ONNX Runtime check against torch skipped ({dtype}: the check is float32-only)")
            check = False
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    final = os.path.join(out_dir, name + ".onnx")
    data_name = name + ".onnx.data"
    for stale in (final, os.path.join(out_dir, data_name)):
        if os.path.exists(stale):
            os.remove(stale)
    with tempfile.TemporaryDirectory(dir=out_dir) as td:
        tmp = os.path.join(td, name + ".onnx")
        t1 = time.time()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, tmp, dynamo=False, opset_version=OPSET, input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, do_constant_folding=True)
        log(f"{name}: exported with the TorchScript exporter, opset {OPSET} ({time.time() - t1:.1f} s)")
        m = onnx.load(tmp, load_external_data=True)
        init_bytes = sum(len(i.raw_data) if i.raw_data else onnx.numpy_helper.to_array(i).nbytes
                         for i in m.graph.initializer)
        for key, value in (("gatecut.generator", "tools/export_bench_models.py"),
                           ("gatecut.bench_model", name),
                           ("gatecut.weights", f"random: torch.manual_seed({SEED}), transformers init, "
                                               f"N(0,{VECTOR_NOISE}) noise on 1-D parameters")):
            p = m.metadata_props.add()
            p.key, p.value = key, value
        external = init_bytes > EXTERNAL_DATA_OVER
        t2 = time.time()
        if external:
            onnx.save_model(m, final, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
        else:
            onnx.save_model(m, final)
        del m
    files = [final] + ([os.path.join(out_dir, data_name)] if external else [])
    size = sum(os.path.getsize(f) for f in files)
    log(f"{name}: saved {final}{' + ' + data_name if external else ''} ({size / 1e6:.1f} MB, "
        f"{'external data' if external else 'inline'}; {time.time() - t2:.1f} s)")
    info = {"name": name, "file": final, "external_data": data_name if external else None, "bytes": size,
            "parameters": params, "initializer_bytes": init_bytes, "opset": OPSET, "exporter":
            "torch.onnx.export(dynamo=False, opset_version=17, do_constant_folding=True)", "spec": spec,
            "inputs": names, "outputs": ["last_hidden_state"], "torch": torch.__version__}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception:  # noqa: BLE001
        pass
    if check:
        info["check"] = check_against_torch(final, wrapper, names, spec["vocab"])
        log(f"{name}: ONNX Runtime (CPU) vs torch at {CHECK_SHAPE[0]}x{CHECK_SHAPE[1]}, right-padded: "
            f"max abs diff {info['check']['max_abs_diff']:.3g}")
    del model, wrapper
    if flops_shapes:
        import flops
        counter = flops.count(final)
        info["flops"] = [counter.at(b, s) for b, s in flops_shapes]
        for r in info["flops"]:
            log(f"{name}: batch {r['batch']} x seq {r['sequence']}: linear {r['linear']:.4e}, attention "
                f"{r['attention']:.4e}, total {r['total']:.4e} FLOPs")
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    log(f"{name}: done in {time.time() - t0:.1f} s")
    return info


def export_fused(name, spec, out_dir, check=True, flops_shapes=()):
    """bert-base-fused (see the module docstring): tools/export_models.py's "strategy B" at full size.

    Reused from export_models: classic_attention, EncoderWrapper(classic_mask=True),
    export_torchscript, pin_head_reshapes, ort_fuse, op_histogram, describe_io, debug_graph_context.
    Not reused: its build_model/make_config, which are wired to the tiny zoo config; build() here
    gives the model instead, so that the weights are bert-base's."""
    import onnx
    import onnxruntime
    import torch
    from transformers import AttentionInterface
    import export_models as zoo
    t0 = time.time()
    layers, heads, hidden = spec["layers"], spec["heads"], spec["hidden"]
    head_dim = hidden // heads
    final = os.path.join(out_dir, name + ".onnx")
    # A failed run must not leave an old .onnx/.json pair that gpu_bench_prune.sh would reuse.
    for stale in (final, os.path.join(out_dir, name + ".json")):
        if os.path.exists(stale):
            os.remove(stale)

    # Torch reference: exactly bert-base's model and wrapper (eager attention, 2-D mask).
    cfg, model, wrapper, names = build(spec)
    params = sum(p.numel() for p in model.parameters())
    log(f"{name}: built {type(model).__name__}, {params:,} parameters ({time.time() - t0:.1f} s)")

    # Fusion source: the same weights once more, with the classic attention function, as in
    # export_models.fuse_bert (which sets it in the config before construction and again after).
    AttentionInterface.register(CLASSIC_ATTN, zoo.classic_attention)
    _, cmodel, _, _ = build(spec, attn_impl=CLASSIC_ATTN)
    used_impl = getattr(cmodel.config, "_attn_implementation", None)
    if used_impl != CLASSIC_ATTN:
        log(f"{name}: WARNING: the fusion source's attention implementation is {used_impl!r}, not "
            f"{CLASSIC_ATTN!r}; ORT will probably not fuse Attention")
    ref_sd, src_sd = model.state_dict(), cmodel.state_dict()
    if ref_sd.keys() != src_sd.keys() or any(not torch.equal(ref_sd[k], src_sd[k]) for k in ref_sd):
        raise SystemExit(f"{name}: the fusion source's weights differ from bert-base's (seeding changed?)")
    del ref_sd, src_sd
    classic = zoo.EncoderWrapper(cmodel, classic_mask=True).eval()
    if list(classic.input_names) != list(names):
        raise SystemExit(f"{name}: EncoderWrapper inputs {classic.input_names} != bert-base's {names}")

    # The two rewrites (4-D additive mask, classic attention) must be exact: compare in torch first,
    # so that an ONNX-side difference later is the fusion's, not the rewrite's.
    feeds = make_inputs(names, spec["vocab"], *CHECK_SHAPE, seed=11)
    with torch.no_grad():
        targs = tuple(torch.from_numpy(feeds[n]) for n in names)
        rewrite_diff = float((wrapper(*targs) - classic(*targs)).abs().max())
    log(f"{name}: torch, classic mask + attention vs eager bert-base at {CHECK_SHAPE[0]}x{CHECK_SHAPE[1]} "
        f"right-padded: max abs diff {rewrite_diff:.3g}")
    if not np.isfinite(rewrite_diff) or rewrite_diff > 1e-3:
        raise SystemExit(f"{name}: the classic-attention rewrite differs from bert-base in torch by {rewrite_diff}")

    attempts, best, flops_unfused = [], None, None
    with tempfile.TemporaryDirectory(dir=out_dir) as td:
        src = os.path.join(td, name + "-classic.onnx")
        t1 = time.time()
        zoo.export_torchscript(classic, "bert", src, OPSET)   # same torch.onnx.export call as export()
        log(f"{name}: exported the classic-attention source with the TorchScript exporter, opset {OPSET} "
            f"({time.time() - t1:.1f} s)")
        del classic, cmodel
        pinned = os.path.join(td, name + "-pinned.onnx")
        n_pin = zoo.pin_head_reshapes(src, pinned, heads, head_dim)
        os.remove(src)      # ~0.44 GB each; keep the temporary folder small
        # Q, K and V of every layer: 3 per layer.  Fewer means the fusion will miss layers.
        log(f"{name}: pinned the head count in {n_pin} head-split Reshape shape(s) (expected {3 * layers})")
        for level in FUSION_OPT_LEVELS:
            tmp = os.path.join(td, f"{name}-fused-{level}.onnx")
            t2 = time.time()
            try:
                stats = zoo.ort_fuse(pinned, tmp, cfg, level)
            except Exception as e:  # noqa: BLE001
                log(f"{name}: opt_level {level}: fusion failed: {type(e).__name__}: {str(e)[:400]}")
                attempts.append({"opt_level": level, "error": f"{type(e).__name__}: {str(e)[:1000]}"})
                continue
            hist = zoo.op_histogram(tmp)
            fused = {k: int(v) for k, v in (stats or {}).items() if v}
            n_attn = hist.get("com.microsoft:Attention", 0)
            attempts.append({"opt_level": level, "attention_nodes": n_attn, "fused": fused,
                             "seconds": round(time.time() - t2, 1)})
            log(f"{name}: opt_level {level}: {n_attn} Attention; fused {fused} ({time.time() - t2:.1f} s)")
            # As fuse_bert: among results with one Attention per layer, the most com.microsoft ops wins.
            score = sum(v for k, v in hist.items() if k.startswith("com.microsoft:"))
            if n_attn >= layers and (best is None or score > best[0]):
                best = (score, level, tmp, fused, hist)
            if n_attn >= layers and hist.get("com.microsoft:EmbedLayerNormalization", 0):
                break       # nothing left for a higher opt_level to add
        if best is None:
            log(f"{name}: graph context of the fusion source and results (for debugging the fusion):")
            for p in [pinned] + sorted(os.path.join(td, f) for f in os.listdir(td) if "-fused-" in f):
                zoo.debug_graph_context(p)
            most = max((a.get("attention_nodes", 0) for a in attempts), default=0)
            raise SystemExit(f"{name}: ONNX Runtime's BERT fusion gave at most {most} com.microsoft "
                             f"Attention node(s), need {layers} (one per layer); attempts: {json.dumps(attempts)}")
        _, level, tmp, fused, hist = best
        if hist.get("com.microsoft:EmbedLayerNormalization", 0) == 0:
            log(f"{name}: note: no EmbedLayerNormalization (embeddings stay Gather/Add/LayerNormalization)")
        if flops_shapes:
            # tools/flops.py cannot count inside com.microsoft Attention (QKV projection, Q.K^T, P.V);
            # the pinned source is the same computation unfused, so count that as well.
            import flops
            src_counter = flops.count(pinned)
            flops_unfused = [dict(src_counter.at(b, s), model="unfused equivalent (classic re-export)")
                             for b, s in flops_shapes]

        m = onnx.load(tmp, load_external_data=True)
        fp16 = spec.get("fused_float16", False)
        if fp16:
            from onnxruntime.transformers.onnx_model import OnnxModel as OrtOnnxModel
            t4 = time.time()
            ort_model = OrtOnnxModel(m)
            ort_model.convert_float_to_float16(keep_io_types=True)
            m = ort_model.model
            hist = {}
            for n in m.graph.node:
                key = (n.domain + ":" if n.domain else "") + n.op_type
                hist[key] = hist.get(key, 0) + 1
            log(f"{name}: convert_float_to_float16(keep_io_types=True) ({time.time() - t4:.1f} s)")
        notes = []
        for key, value in (("gatecut.generator", "tools/export_bench_models.py"),
                           ("gatecut.bench_model", name),
                           ("gatecut.weights", f"random: torch.manual_seed({SEED}), transformers init, "
                                               f"N(0,{VECTOR_NOISE}) noise on 1-D parameters (= bert-base)"),
                           ("gatecut.fusion", f"onnxruntime.transformers.optimizer, model_type bert, "
                                              f"opt_level {level}, use_gpu False, exact GELU"
                                              + (", then convert_float_to_float16(keep_io_types=True)" if fp16 else ""))):
            p = m.metadata_props.add()
            p.key, p.value = key, value
        opsets = {(o.domain or "ai.onnx"): o.version for o in m.opset_import}
        if opsets.get("ai.onnx") != OPSET or "com.microsoft" not in opsets:
            raise SystemExit(f"{name}: fused model has opset imports {opsets}; want ai.onnx {OPSET} + com.microsoft")
        if m.ir_version > MAX_IR_VERSION:
            # opset 17 needs IR 8; a newer writer's default says nothing about the content
            notes.append(f"ir_version {m.ir_version} -> {MAX_IR_VERSION}")
            m.ir_version = MAX_IR_VERSION
        not_fp32 = sorted({onnx.TensorProto.DataType.Name(i.data_type) for i in m.graph.initializer}
                          - {"FLOAT", "INT64", "INT32"} - ({"FLOAT16"} if fp16 else set()))
        if not_fp32:
            raise SystemExit(f"{name}: fused model has initializers of type {not_fp32}; want "
                             + ("fp16 (and fp32)" if fp16 else "fp32"))
        init_bytes = sum(len(i.raw_data) if i.raw_data else onnx.numpy_helper.to_array(i).nbytes
                         for i in m.graph.initializer)
        if init_bytes > EXTERNAL_DATA_OVER:
            raise SystemExit(f"{name}: {init_bytes} bytes of initializers; too large to save inline")
        io_in, io_out = zoo.describe_io(m)
        try:
            onnx.checker.check_model(m)
            checker = "ok"
        except Exception as e:  # noqa: BLE001
            checker = f"FAILED: {type(e).__name__}: {str(e)[:300]}"
        t3 = time.time()
        onnx.save_model(m, final)
        ir_version = m.ir_version
        del m
    size = os.path.getsize(final)
    log(f"{name}: saved {final} ({size / 1e6:.1f} MB, inline, opt_level {level}; {time.time() - t3:.1f} s)")

    # Say plainly if the fusion changed the interface (EmbedLayerNormalization could in principle).
    io_changed = []
    if [d["name"] for d in io_in] != list(names) or any(d["dtype"] != "int64" for d in io_in):
        io_changed.append("inputs are " + ", ".join(f"{d['name']} {d['dtype']}" for d in io_in)
                          + f" instead of int64 {', '.join(names)}")
    if [d["name"] for d in io_out] != ["last_hidden_state"] or io_out[0]["dtype"] != "float":
        io_changed.append("outputs are " + ", ".join(f"{d['name']} {d['dtype']}" for d in io_out)
                          + " instead of float last_hidden_state")
    elif io_out[0]["shape"] != ["batch", "sequence", hidden]:
        notes.append(f"last_hidden_state declared with shape {io_out[0]['shape']}")
    for c in io_changed:
        log(f"{name}: WARNING: the fusion changed the interface: {c}")

    fuse_call = (f"onnxruntime.transformers.optimizer.optimize_model(model_type='bert', num_heads={heads}, "
                 f"hidden_size={hidden}, opt_level={level}, use_gpu=False, optimization_options="
                 f"FusionOptions('bert') with enable_gelu_approximation=False)"
                 + (" + convert_float_to_float16(keep_io_types=True)" if fp16 else ""))
    info = {"name": name, "file": final, "external_data": None, "bytes": size, "parameters": params,
            "initializer_bytes": init_bytes, "opset": OPSET, "opset_import": opsets, "ir_version": ir_version,
            "exporter": "torch.onnx.export(dynamo=False, opset_version=17, do_constant_folding=True) of the "
                        "classic-attention re-export, then " + fuse_call,
            "opt_level": level, "fused_operator_statistics": fused, "op_histogram": hist,
            "fusion_attempts": attempts,
            "fusion_source": "bert-base's weights re-exported through export_models.EncoderWrapper("
                             "classic_mask=True) (additive [B,1,1,S] mask (1 - mask) * finfo(float32).min) "
                             f"with export_models.classic_attention registered as '{CLASSIC_ATTN}'; "
                             f"head-split Reshape shapes (-1, {head_dim}) pinned to ({heads}, {head_dim}) "
                             "by export_models.pin_head_reshapes",
            "source_attn_implementation": used_impl, "pinned_head_reshapes": n_pin,
            "torch_rewrite_check": {"batch": CHECK_SHAPE[0], "sequence": CHECK_SHAPE[1],
                                    "max_abs_diff_vs_eager": rewrite_diff},
            "spec": spec, "inputs": [d["name"] for d in io_in], "outputs": [d["name"] for d in io_out],
            "io": {"inputs": io_in, "outputs": io_out}, "io_changed": io_changed or None,
            "padding": "right padding only (ones then zeros): EmbedLayerNormalization reduces "
                       "attention_mask to one length per row (mask_index)"
                       if hist.get("com.microsoft:EmbedLayerNormalization", 0) else "any 0/1 mask",
            "onnx_checker": checker, "notes": notes, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception:  # noqa: BLE001
        pass
    if check:
        # make_inputs pads on the right, which is what EmbedLayerNormalization assumes.
        tol = 0.1 if fp16 else 1e-2
        info["check"] = check_against_torch(final, wrapper, names, spec["vocab"], tol=tol)
        # export_models.export_torchscript traces at sequence 9 = CHECK_SHAPE's; a second size shows
        # that no traced length was baked into the graph.
        info["check_second_shape"] = check_against_torch(final, wrapper, names, spec["vocab"],
                                                         shape=SECOND_CHECK_SHAPE, tol=tol)
        for c in (info["check"], info["check_second_shape"]):
            log(f"{name}: ONNX Runtime (CPU) vs torch (eager bert-base) at {c['batch']}x{c['sequence']}, "
                f"right-padded: max abs diff {c['max_abs_diff']:.3g}")
    del model, wrapper
    if flops_shapes:
        import flops
        counter = flops.count(final)
        info["flops"] = [counter.at(b, s) for b, s in flops_shapes]
        info["flops_unfused_equivalent"] = flops_unfused
        info["flops_note"] = ("'flops' counts this file's MatMuls only (attention output projection "
                              "and FFN); the QKV projection and attention products inside com.microsoft "
                              "Attention are uncounted. 'flops_unfused_equivalent' counts the same "
                              "computation before fusion (equal to bert-base's).")
        for r, u in zip(info["flops"], flops_unfused):
            log(f"{name}: batch {r['batch']} x seq {r['sequence']}: counted outside Attention: linear "
                f"{r['linear']:.4e}, total {r['total']:.4e} FLOPs (uncounted: {', '.join(r['uncounted'])}); "
                f"unfused equivalent total {u['total']:.4e} FLOPs")
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    log(f"{name}: done in {time.time() - t0:.1f} s")
    return info


def export_fused_decoder(name, spec, out_dir, check=True, flops_shapes=()):
    """llama-0.5b-fused(-fp16): the fp32 TorchScript export of llama-0.5b's model and weights (with
    explicit [batch, sequence] positions, see build()), fused by ONNX Runtime's transformer optimizer
    as tools/export_deploy_models.py fuses its *-ortopt decoders (model_type gpt2, opt_level 0,
    use_gpu False, exact GELU; ORT's only fusions for a LLaMA graph off its GPU-side converter:
    RMSNorm into SimplifiedLayerNormalization / com.microsoft SkipSimplifiedLayerNormalization with
    the residual add, rotary into com.microsoft RotaryEmbedding; attention stays MatMul/Softmax),
    then for -fp16 ORT's convert_float_to_float16(keep_io_types=True) (int64 inputs, float32 output,
    float16 inside), the route of ORT's own LLaMA fp16 recipe. The fp32 export is fused as a whole
    in memory (2.1 GB: symbolic shape inference works node by node, so the 2 GiB protobuf limit only
    matters when saving: fp32 goes to external data, fp16 inline)."""
    import onnx
    import onnxruntime
    import torch
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    import export_deploy_models as deploy
    t0 = time.time()
    fp16 = spec.get("fused_float16", False)
    layers = spec["layers"]
    final = os.path.join(out_dir, name + ".onnx")
    data_name = name + ".onnx.data"
    for stale in (final, os.path.join(out_dir, data_name), os.path.join(out_dir, name + ".json")):
        if os.path.exists(stale):
            os.remove(stale)
    source_spec = {k: v for k, v in spec.items() if k not in ("fusion", "fused_float16")}
    source_spec["explicit_positions"] = True
    with tempfile.TemporaryDirectory(dir=out_dir) as td:
        src_info = export(name + "-source", source_spec, td, check=False)
        src = src_info["file"]
        t1 = time.time()
        fo = FusionOptions("gpt2")
        fo.enable_gelu_approximation = False
        opt = optimize_model(src, model_type="gpt2", num_heads=spec["heads"], hidden_size=spec["hidden"],
                             opt_level=0, use_gpu=False, optimization_options=fo, only_onnxruntime=False)
        fused = {k: int(v) for k, v in (opt.get_fused_operator_statistics() or {}).items() if v}
        log(f"{name}: fused {fused} ({time.time() - t1:.1f} s)")
        # One RMSNorm fused per norm (2 per layer + the final one): the first alone, the others with the
        # residual add before them; one RotaryEmbedding per Q and K.
        want = {"SimplifiedLayerNormalization": 1, "SkipSimplifiedLayerNormalization": 2 * layers,
                "RotaryEmbedding": 2 * layers}
        short = {k: (fused.get(k, 0), v) for k, v in want.items() if fused.get(k, 0) < v}
        if short:
            raise SystemExit(f"{name}: ONNX Runtime's optimizer fused fewer ops than a {layers}-layer LLaMA has "
                             f"(got, want): {short}")
        if fp16:
            t2 = time.time()
            opt.convert_float_to_float16(keep_io_types=True)
            log(f"{name}: convert_float_to_float16(keep_io_types=True) ({time.time() - t2:.1f} s)")
        for key, value in (("gatecut.generator", "tools/export_bench_models.py"),
                           ("gatecut.bench_model", name),
                           ("gatecut.weights", f"random: torch.manual_seed({SEED}), transformers init, "
                                               f"N(0,{VECTOR_NOISE}) noise on 1-D parameters (= llama-0.5b)"),
                           ("gatecut.fusion", "onnxruntime.transformers.optimizer, model_type gpt2, opt_level 0, "
                                              "use_gpu False" + (", then convert_float_to_float16(keep_io_types=True)"
                                                                 if fp16 else ""))):
            p = opt.model.metadata_props.add()
            p.key, p.value = key, value
        cut = deploy.trim_rotary_caches_in(opt.model, spec["max_pos"])
        trimmed = f"RotaryEmbedding cos/sin caches {sorted(cut)} cut to the first {spec['max_pos']} positions" \
            if cut else None
        init_bytes = sum(len(i.raw_data) if i.raw_data else onnx.numpy_helper.to_array(i).nbytes
                         for i in opt.model.graph.initializer)
        external = init_bytes > EXTERNAL_DATA_OVER
        tmp = os.path.join(td, name + ".onnx")
        t3 = time.time()
        opt.save_model_to_file(tmp, use_external_data_format=external)
        hist = {(n.domain + ":" if n.domain else "") + n.op_type: 0 for n in opt.model.graph.node}
        for n in opt.model.graph.node:
            hist[(n.domain + ":" if n.domain else "") + n.op_type] += 1
        del opt
        if trimmed:
            log(f"{name}: {trimmed}")
        m = onnx.load(tmp, load_external_data=False)
        io_in = [(i.name, onnx.TensorProto.DataType.Name(i.type.tensor_type.elem_type)) for i in m.graph.input]
        io_out = [(o.name, onnx.TensorProto.DataType.Name(o.type.tensor_type.elem_type)) for o in m.graph.output]
        del m
        for f in os.listdir(td):     # the fused file (and its .data): into place, the source is dropped
            if f.startswith(name + ".onnx"):
                os.replace(os.path.join(td, f), os.path.join(out_dir, f))
    files = [final] + ([os.path.join(out_dir, data_name)] if external else [])
    size = sum(os.path.getsize(f) for f in files)
    log(f"{name}: saved {final}{' + ' + data_name if external else ''} ({size / 1e6:.1f} MB, "
        f"{'external data' if external else 'inline'}; {time.time() - t3:.1f} s)")
    if [n for n, _ in io_in] != ["input_ids", "attention_mask"] or [n for n, _ in io_out] != ["last_hidden_state"]:
        raise SystemExit(f"{name}: the fused model's interface is {io_in} -> {io_out}")
    info = {"name": name, "file": final, "external_data": data_name if external else None, "bytes": size,
            "parameters": src_info["parameters"], "initializer_bytes": init_bytes, "opset": OPSET,
            "exporter": src_info["exporter"] + " with position_ids = cumsum(ones) - 1 passed, then "
                        "onnxruntime.transformers.optimizer.optimize_model(model_type='gpt2', num_heads="
                        f"{spec['heads']}, hidden_size={spec['hidden']}, opt_level=0, use_gpu=False, "
                        "FusionOptions('gpt2') with enable_gelu_approximation=False)"
                        + (" + convert_float_to_float16(keep_io_types=True)" if fp16 else ""),
            "fused_operator_statistics": fused, "op_histogram": hist, "rotary_caches": trimmed,
            "spec": spec, "inputs": [n for n, _ in io_in], "outputs": [n for n, _ in io_out],
            "io": {"inputs": io_in, "outputs": io_out}, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}
    if check:
        # The fp32 llama-0.5b model is the reference (the fp16 row shows its precision error); two
        # batch sizes > 1 catch position_ids the fused RotaryEmbedding would refuse.
        _, model, wrapper, names = build(MODELS["llama-0.5b"])
        tol = 0.1 if fp16 else 1e-2
        info["check"] = check_against_torch(final, wrapper, names, spec["vocab"], tol=tol)
        info["check_second_shape"] = check_against_torch(final, wrapper, names, spec["vocab"],
                                                         shape=SECOND_CHECK_SHAPE, tol=tol)
        for c in (info["check"], info["check_second_shape"]):
            log(f"{name}: ONNX Runtime (CPU) vs torch (fp32 llama-0.5b) at {c['batch']}x{c['sequence']}, "
                f"right-padded: max abs diff {c['max_abs_diff']:.3g}")
        del model, wrapper
    if flops_shapes:
        import flops
        counter = flops.count(final)
        info["flops"] = [counter.at(b, s) for b, s in flops_shapes]
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    log(f"{name}: done in {time.time() - t0:.1f} s")
    return info


def check_against_torch(path, wrapper, names, vocab, shape=CHECK_SHAPE, tol=1e-2):
    import onnxruntime as ort
    import torch
    feeds = make_inputs(names, vocab, *shape, seed=11)
    with torch.no_grad():
        expected = wrapper(*(torch.from_numpy(feeds[n]) for n in names)).numpy()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    # Feed only what the file declares (a fused graph could in principle drop an unused input).
    want = {i.name for i in sess.get_inputs()}
    got = sess.run(None, {k: v for k, v in feeds.items() if k in want})[0]
    if got.shape != expected.shape:
        raise SystemExit(f"{path}: ONNX Runtime output shape {got.shape} != torch {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    if not np.isfinite(diff) or diff > tol:
        raise SystemExit(f"{path}: ONNX Runtime output differs from torch by {diff} (tolerance {tol})")
    return {"batch": shape[0], "sequence": shape[1], "max_abs_diff": diff,
            "onnxruntime": ort.__version__}


def model_spec(name):
    """MODELS[name], or for NAME-fp16 / NAME-bf16 that spec with its precision."""
    base, _, dtype = name.rpartition("-")
    if name not in MODELS and dtype in ("fp16", "bf16") and base in MODELS and not MODELS[base].get("fusion"):
        return dict(MODELS[base], dtype=dtype)
    if name not in MODELS:
        raise SystemExit(f"unknown model '{name}'; choose from {', '.join(MODELS)}, or bert-base / llama-0.5b"
                         " with -fp16 or -bf16")
    return MODELS[name]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", default="/tmp/bench")
    ap.add_argument("--models", default="bert-base,llama-0.5b", help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs torch check")
    ap.add_argument("--flops-shapes", default="", help="BxS list to print FLOPs for after export, e.g. 1x128")
    ap.add_argument("--flops", metavar="MODEL.onnx", nargs="+", help="only count FLOPs of these files")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--json", action="store_true", help="with --flops: JSON output")
    args = ap.parse_args(argv)
    import flops
    if args.flops:
        extra = ["--json"] if args.json else []
        shapes = ["--shapes", args.flops_shapes] if args.flops_shapes else ["--batch", str(args.batch),
                                                                             "--seq", str(args.seq)]
        flops.main(args.flops + shapes + extra)
        return
    os.makedirs(args.out, exist_ok=True)
    shapes = flops.parse_shapes(args.flops_shapes) if args.flops_shapes else []
    import torch
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        spec = model_spec(name)
        fusion = spec.get("fusion", "")
        run = export_fused_decoder if fusion.endswith("gpt2") else export_fused if fusion else export
        run(name, spec, args.out, check=not args.no_check, flops_shapes=shapes)
    shutil.disk_usage(args.out)


if __name__ == "__main__":
    main()
