#!/usr/bin/env python3
"""Export decoders with ONNX Runtime GenAI's model builder, the route most people take to serve an LLM
with ONNX Runtime (`python -m onnxruntime_genai.models.builder`): GroupQueryAttention with rotary
embeddings inside it, a packed Q|K|V MatMul, SkipSimplifiedLayerNormalization, KV cache in
`past_key_values.{i}.key/value` -> `present.{i}.key/value`, no `position_ids` input.

    # the tiny zoo (onnx-models/genai), checked against torch on ONNX Runtime's CPU provider
    python3 tools/export_genai_models.py --zoo onnx-models/genai [--builder DIR]
    # a full-size model for the decode benchmark (tools/gpu_decode_bench.sh GENAI=1)
    python3 tools/export_genai_models.py --shape qwen2.5-1.5b --precision fp16 --out /opt/models [--builder DIR]

The builder is `onnxruntime_genai.models.builder` when onnxruntime-genai is installed; otherwise
`--builder DIR` names a checkout's `src/python/py/models` (the GPU machine has no pip access: the
directory is carried there). Weights are random (nothing is downloaded): the tiny models are the
deploy zoo's LLaMA/Qwen2 (tools/export_deploy_models.py: same configs, seed and perturbed vectors),
the full-size ones tools/export_decoder_kv.py's shapes. The HuggingFace model is saved to a temporary
directory and given to the builder as its input folder (`-i`); the builder's tokenizer step is
skipped (a random model has no tokenizer) and genai_config.json is kept beside the model.

Zoo checks: a prefill of 5 tokens (batch 2) with an empty past, then 3 greedy decode steps that feed
ONNX Runtime its own present.* and torch its own cache; logits and presents compared at every step.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models as base  # noqa: E402
import export_deploy_models as deploy  # noqa: E402

log = base.log


def load_builder(builder_dir):
    """The model builder module: the installed onnxruntime_genai one, else builder.py in builder_dir."""
    if builder_dir:
        sys.path.insert(0, os.path.abspath(builder_dir))
        import builder  # noqa: PLC0415
        stamp = os.path.join(builder_dir, "ORIGIN")   # e.g. "microsoft/onnxruntime-genai <commit>, src/python/py/models"
        origin = open(stamp).read().strip() if os.path.exists(stamp) else os.path.abspath(builder_dir)
    else:
        from onnxruntime_genai.models import builder  # noqa: PLC0415
        origin = "onnxruntime_genai " + getattr(__import__("onnxruntime_genai"), "__version__", "?")
    # A random model has no tokenizer to copy; the ONNX file and genai_config.json are all we need.
    for cls in _model_classes(builder):
        cls.save_processing = lambda self, *a, **k: None
    return builder, origin


def _model_classes(builder):
    seen = []
    for name in dir(builder):
        obj = getattr(builder, name)
        if isinstance(obj, type) and hasattr(obj, "save_processing") and obj not in seen:
            seen.append(obj)
    return seen


def run_builder(builder, hf_dir, out_dir, precision, ep, extra):
    """builder.py's own main: parse_extra_options, then create_model, as `-i hf_dir -o out_dir`."""
    cache = tempfile.mkdtemp(prefix="genai-cache-")
    opts = builder.parse_extra_options(None, hf_dir, out_dir, precision, ep, cache,
                                       [f"{k}={v}" for k, v in extra.items()])
    builder.create_model(None, hf_dir, out_dir, precision, ep, cache, **opts)
    shutil.rmtree(cache, ignore_errors=True)
    call = f"builder -i <hf dir> -p {precision} -e {ep}" + (
        " --extra_options " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")
    return call


def onnx_in(out_dir):
    names = [f for f in os.listdir(out_dir) if f.endswith(".onnx")]
    assert len(names) == 1, f"builder wrote {names}"
    return os.path.join(out_dir, names[0])


# --------------------------------------------------------------------------------------------
# zoo
# --------------------------------------------------------------------------------------------

ZOO = [
    # (file, arch, precision, execution provider, extra options)
    ("llama-genai-fp32.onnx", "llama", "fp32", "cpu", {}),
    ("qwen2-genai-fp32.onnx", "qwen2", "fp32", "cpu", {}),
    ("qwen2-genai-fp32-unpacked.onnx", "qwen2", "fp32", "cpu", {"disable_qkv_fusion": "1"}),
    ("llama-genai-fp16.onnx", "llama", "fp16", "cuda", {}),
    ("qwen2-genai-fp16.onnx", "qwen2", "fp16", "cuda", {}),
    # more families the builder serves, same sizes (not yet run: the next GPU session builds and checks them)
    ("phi3-genai-fp32.onnx", "phi3", "fp32", "cpu", {}),
    ("mistral-genai-fp32.onnx", "mistral", "fp32", "cpu", {}),
    ("gemma-genai-fp32.onnx", "gemma", "fp32", "cpu", {}),
]


def decoder(arch):
    """The deploy zoo's LLaMA/Qwen2, or a Phi-3 / Mistral / Gemma of the same sizes (seeded and perturbed alike)."""
    if arch in ("llama", "qwen2"):
        return deploy.decoder(arch, "eager")
    import transformers as tf
    common = dict(vocab_size=deploy.VOCAB, hidden_size=deploy.HIDDEN, intermediate_size=176,
                  num_hidden_layers=deploy.LAYERS, num_attention_heads=deploy.HEADS, max_position_embeddings=128,
                  rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch == "phi3":      # packed qkv_proj and gate_up_proj in torch; the builder unpacks gate_up
        cfg = tf.Phi3Config(num_key_value_heads=deploy.HEADS, original_max_position_embeddings=128,
                            tie_word_embeddings=False, **common)
        cls = tf.Phi3ForCausalLM
    elif arch == "mistral":
        cfg = tf.MistralConfig(num_key_value_heads=2, sliding_window=None, tie_word_embeddings=False, **common)
        cls = tf.MistralForCausalLM
    elif arch == "gemma":   # GeGLU (tanh GELU), RMSNorm of (1 + weight), embeddings scaled by sqrt(hidden), tied head
        cfg = tf.GemmaConfig(num_key_value_heads=1, head_dim=deploy.HIDDEN // deploy.HEADS,
                             hidden_activation="gelu_pytorch_tanh", **common)
        cls = tf.GemmaForCausalLM
    else:
        raise ValueError(arch)
    cfg.use_cache = True
    m = deploy.seeded(lambda: cls(cfg))
    deploy.set_attn(m, "eager")
    return cfg, m


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def genai_generation_check(path, reference, cfg, batch=2, prompt=5, steps=3, seed=11):
    sess = ort_session(path)
    in_types = {i.name: i.type for i in sess.get_inputs()}
    float_type = np.float16 if "float16" in in_types["past_key_values.0.key"] else np.float32
    rng = np.random.default_rng(seed)
    layers, kv, hd = cfg.num_hidden_layers, deploy.kv_heads(cfg), deploy.head_dim(cfg)
    ids = rng.integers(3, deploy.VOCAB, size=(batch, prompt), dtype=np.int64)
    ort_past = {f"past_key_values.{i}.{k}": np.zeros((batch, kv, 0, hd), dtype=float_type)
                for i in range(layers) for k in ("key", "value")}
    torch_past = {n: v.astype(np.float32) for n, v in ort_past.items()}
    total, out = 0, []
    names = [o.name for o in sess.get_outputs()]
    for step in range(steps + 1):
        seq = ids.shape[1]
        mask = np.ones((batch, total + seq), dtype=np.int64)
        pos = np.broadcast_to(np.arange(total, total + seq, dtype=np.int64), (batch, seq)).copy()
        feeds = {"input_ids": ids, "attention_mask": mask, **ort_past}
        got = [np.asarray(g, dtype=np.float32) for g in sess.run(names, {k: v for k, v in feeds.items()
                                                                        if k in in_types})]
        ref_list = deploy.torch_out(reference, {"input_ids": ids, "attention_mask": mask, "position_ids": pos,
                                                **torch_past})
        # the builder lists every key before every value; torch's wrapper goes layer by layer
        by_name = dict(zip(reference.output_names, ref_list))
        ref = [by_name[n] for n in names]
        out.append({"step": step, "past": total, "sequence": seq,
                    "outputs": [deploy.compare(n, g, r) for n, g, r in zip(names, got, ref)]})
        ort_past = {n.replace("present.", "past_key_values."): g.astype(float_type)
                    for n, g in zip(names[1:], got[1:])}
        torch_past = {n.replace("present.", "past_key_values."): r for n, r in zip(names[1:], ref[1:])}
        ids = np.argmax(ref[0][:, -1:, :], axis=-1).astype(np.int64)
        total += seq
    return out


def build_zoo_entry(builder, fname, arch, precision, ep, extra, out):
    import torch
    CacheLM, *_ = deploy.wrappers()
    cfg, m = decoder(arch)
    hf_dir = tempfile.mkdtemp(prefix="genai-hf-")
    m.save_pretrained(hf_dir)
    cfg.save_pretrained(hf_dir)
    work = tempfile.mkdtemp(prefix="genai-out-")
    call = run_builder(builder, hf_dir, work, precision, ep, extra)
    import onnx
    model = onnx.load(onnx_in(work), load_external_data=True)
    path = os.path.join(out, fname)
    onnx.save(model, path)                      # tiny: weights inline, one file per variant
    genai_cfg = os.path.join(work, "genai_config.json")
    config_copy = None
    if os.path.exists(genai_cfg):
        config_copy = fname.replace(".onnx", ".genai_config.json")
        shutil.copy(genai_cfg, os.path.join(out, config_copy))
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(hf_dir, ignore_errors=True)
    reference = CacheLM(m.float(), deploy.n_layers(cfg)).eval()
    entry = {"file": fname, "family": "decoder-kv-genai", "hf_class": type(m).__name__,
             "exporter_call": call, "genai_config": config_copy}
    entry.update(deploy.describe(path))
    try:
        with torch.no_grad():
            checks = genai_generation_check(path, reference, cfg)
        entry["check_provider"] = "CPUExecutionProvider"
    except Exception as ex:  # noqa: BLE001 (the file stays: gatecut's own tests say what runs it)
        log(f"  check did not run: {type(ex).__name__}: {str(ex)[:600]}")
        checks = []
        entry["check_provider"] = "none"
        entry["check_error"] = f"{type(ex).__name__}: {str(ex)[:1000]}"
    entry["checks"] = checks
    entry["max_abs_diff"] = max((o["max_abs_diff"] for c in checks for o in c["outputs"]), default=float("nan"))
    tol = deploy.CHECK_TOL_FP32 if precision == "fp32" else 0.05
    entry["check_tolerance"] = tol
    entry["problems"] = [] if entry["max_abs_diff"] <= tol else [f"max abs diff {entry['max_abs_diff']:.3g} > {tol}"]
    if "check_error" in entry:
        entry["problems"] = ["check did not run: " + entry["check_error"][:300]]
    entry["config"] = json.loads(json.dumps(cfg.to_dict(), default=str))
    return entry


def render_readme(m):
    L = ["# onnx-models/genai: ONNX Runtime GenAI model-builder exports\n",
         "Tiny random-weight decoders (the deploy zoo's LLaMA and Qwen2: seed %d, vocabulary %d, 2 layers, "
         "hidden 64, 4 heads, Qwen2 with 2 KV heads; Phi-3, Mistral and Gemma of the same sizes where listed) "
         "exported by ONNX Runtime GenAI's model builder (%s), "
         "the form `onnxruntime-genai` serves: com.microsoft GroupQueryAttention with rotary embeddings inside "
         "(no `position_ids` input), packed Q|K|V MatMul (unpacked with `disable_qkv_fusion=1`), "
         "SkipSimplifiedLayerNormalization, Sigmoid·Mul SiLU. Built by `%s` on %s, %s. Each file's "
         "`genai_config.json` is kept beside it.\n" % (deploy.SEED, deploy.VOCAB, m["builder"], m["command"],
                                                       m["device"], m["date"]),
         "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + "\n",
         "Checked on ONNX Runtime's CPU provider against the fp32 torch model: a prefill of 5 tokens (batch 2) "
         "with an empty past, then 3 greedy decode steps that feed each its own cache; logits and every "
         "present compared at each step.\n",
         "| file | builder call | weights | inputs → outputs | ops (top) | bytes | check on | max abs diff |",
         "|---|---|---|---|---|---|---|---|"]
    for e in m["models"]:
        io = ", ".join(i["name"] for i in e["inputs"][:3]) + " … → " + ", ".join(o["name"] for o in e["outputs"][:2]) + " …"
        ops = ", ".join(f"{k} {v}" for k, v in list(e["op_histogram"].items())[:7])
        L.append(f"| `{e['file']}` | {e['exporter_call']} | {'/'.join(e['weight_types'])} | {io} | {ops} | "
                 f"{e['size_bytes']} | {e['check_provider']} | {e['max_abs_diff']:.2e} |")
    L.append("\n## Variants that failed\n")
    L += [f"- `{f['file']}`: {f['error'][:500]}" for f in m["failures"]] or ["None."]
    return "\n".join(L) + "\n"


def zoo(args):
    builder, origin = load_builder(args.builder)
    os.makedirs(args.zoo, exist_ok=True)
    entries, failures = [], []
    t0 = time.time()
    only = {f.strip() for f in args.only.split(",") if f.strip()}
    for fname, arch, precision, ep, extra in ZOO:
        if only and fname not in only and fname.replace(".onnx", "") not in only:
            continue
        log(f"[{time.time() - t0:6.1f}s] {fname}")
        try:
            e = build_zoo_entry(builder, fname, arch, precision, ep, extra, args.zoo)
            entries.append(e)
            log(f"  OK {fname}: {e['size_bytes']} B, max|diff| {e['max_abs_diff']:.3g} "
                f"{'PROBLEMS ' + '; '.join(e['problems']) if e['problems'] else ''}")
        except Exception as ex:  # noqa: BLE001
            log(f"  FAILED {fname}: {type(ex).__name__}: {str(ex)[:1200]}")
            failures.append({"file": fname, **base.short_err(ex)})
    manifest = {"generator": "tools/export_genai_models.py", "builder": origin,
                "command": "python3 tools/export_genai_models.py --zoo onnx-models/genai",
                "date": args.date, "device": base.device_note(), "versions": base.versions(),
                "models": entries, "failures": failures}
    deploy.write_zoo_files(args.zoo, manifest, render_readme(manifest))
    log(f"done in {time.time() - t0:.1f}s: {len(entries)} ok, {len(failures)} failed")
    return 0 if not failures else 1


# --------------------------------------------------------------------------------------------
# full-size
# --------------------------------------------------------------------------------------------

def full_size(args):
    import export_decoder_kv as kv  # noqa: PLC0415
    import torch
    builder, origin = load_builder(args.builder)
    t0 = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg, model = kv.build(args.shape, args.precision, device)
    hf_dir = tempfile.mkdtemp(prefix="genai-hf-", dir=args.tmp)
    model.save_pretrained(hf_dir)
    del model
    torch.cuda.empty_cache()
    log(f"[{time.time() - t0:6.1f}s] random {args.shape} saved to {hf_dir}")
    name = args.name or f"{args.shape}-genai-{args.precision}"
    work = os.path.join(args.out, name)
    os.makedirs(work, exist_ok=True)
    call = run_builder(builder, hf_dir, work, args.precision, "cuda", {})
    shutil.rmtree(hf_dir, ignore_errors=True)
    path = onnx_in(work)
    info = dict(name=name, file=path, shape=args.shape, spec=kv.SHAPES[args.shape], precision=args.precision,
                builder=origin, call=call, seconds=round(time.time() - t0, 1),
                bytes=sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work)))
    log(json.dumps(info))
    with open(os.path.join(args.out, name + ".json"), "w") as fh:
        json.dump(info, fh, indent=1)
    print(path)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--builder", default=None, help="onnxruntime-genai's src/python/py/models (else the installed one)")
    ap.add_argument("--zoo", default=None, help="write the tiny zoo here")
    ap.add_argument("--only", default="", help="with --zoo: comma list of file names to build (the manifest then"
                    " holds only those)")
    ap.add_argument("--shape", default=None, help="full-size shape of tools/export_decoder_kv.py")
    ap.add_argument("--precision", default="fp16", choices=["fp16", "bf16"])
    ap.add_argument("--out", default="/opt/models")
    ap.add_argument("--name", default=None)
    ap.add_argument("--tmp", default=None, help="where the HuggingFace copy is written (default: system temp)")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    args = ap.parse_args(argv)
    if args.zoo:
        return zoo(args)
    if args.shape:
        return full_size(args)
    ap.error("give --zoo DIR or --shape NAME")


if __name__ == "__main__":
    sys.exit(main())
