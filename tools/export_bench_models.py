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

Both: TorchScript exporter (dynamo=False), opset 17, eager attention, no KV cache, int64 inputs
with dynamic axes 'batch' and 'sequence', one output last_hidden_state [batch, sequence, hidden].
Exporting runs on the CPU (about 20 s for bert-base and 1-2 min for llama-0.5b); each file is then
checked against torch with ONNX Runtime (CPU) at batch 2 x sequence 9, right-padded.

    python3 tools/export_bench_models.py --out /tmp/bench [--models bert-base,llama-0.5b] [--no-check]
    python3 tools/export_bench_models.py --flops MODEL.onnx --batch 32 --seq 128    # = tools/flops.py

Writes OUT/NAME.onnx (+ OUT/NAME.onnx.data) and OUT/NAME.json (config, parameters, bytes, check,
matrix-product FLOPs at --flops-shapes).
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

MODELS = {
    "bert-base": dict(arch="bert", layers=12, hidden=768, heads=12, kv_heads=12, intermediate=3072,
                      vocab=30522, max_pos=512),
    "llama-0.5b": dict(arch="llama", layers=24, hidden=1024, heads=16, kv_heads=8, intermediate=5632,
                       vocab=32000, max_pos=2048),
}


def log(*a):
    print(*a, flush=True)


def make_config(spec):
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
        cfg._attn_implementation = "eager"
    except Exception:  # noqa: BLE001
        pass
    return cfg


def build(spec):
    import torch
    import transformers as tf
    cfg = make_config(spec)
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
            model.set_attn_implementation("eager")
        except Exception as e:  # noqa: BLE001
            log(f"  note: set_attn_implementation(eager) failed: {e}")
    model.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, m, bert):
            super().__init__()
            self.m = m
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            if self.bert:
                out = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             return_dict=True)
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
    cfg, model, wrapper, names = build(spec)
    params = sum(p.numel() for p in model.parameters())
    log(f"{name}: built {type(model).__name__}, {params:,} parameters ({time.time() - t0:.1f} s)")
    feeds = make_inputs(names, spec["vocab"], *EXPORT_SHAPE, seed=7)
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
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


def check_against_torch(path, wrapper, names, vocab):
    import onnxruntime as ort
    import torch
    feeds = make_inputs(names, vocab, *CHECK_SHAPE, seed=11)
    with torch.no_grad():
        expected = wrapper(*(torch.from_numpy(feeds[n]) for n in names)).numpy()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)[0]
    diff = float(np.max(np.abs(got - expected)))
    if not np.isfinite(diff) or diff > 1e-2:
        raise SystemExit(f"{path}: ONNX Runtime output differs from torch by {diff}")
    return {"batch": CHECK_SHAPE[0], "sequence": CHECK_SHAPE[1], "max_abs_diff": diff,
            "onnxruntime": ort.__version__}


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
        if name not in MODELS:
            raise SystemExit(f"unknown model '{name}'; choose from {', '.join(MODELS)}")
        export(name, MODELS[name], args.out, check=not args.no_check, flops_shapes=shapes)
    shutil.disk_usage(args.out)


if __name__ == "__main__":
    main()
