#!/usr/bin/env python3
"""Build gatecut's zoo of tiny, randomly initialised transformer models and export them to ONNX.

Nothing is downloaded: every model is constructed from a HuggingFace config class with a fixed
torch seed, exported with the TorchScript exporter (opset 17) and the dynamo exporter (opset 18),
plus one ONNX-Runtime-fused BERT (com.microsoft contrib ops).  Each file is then checked with
onnx.checker, run with ONNX Runtime (CPU) on random inputs at two batch/sequence sizes and compared
with the torch model.  A manifest.json and README.md describing every file are written next to them.

Usage (on a machine with torch, transformers, onnx, onnxruntime, onnxscript):

    python3 tools/export_models.py --out onnx-models

Exports run on the CPU; they take well under a minute on a normal machine.
"""

import argparse
import collections
import datetime
import hashlib
import inspect
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_IR_VERSION = 10          # ONNX Runtime 1.24 loads IR <= 11; we keep <= 10 for safety
MAX_AI_ONNX_OPSET = 21
SEED = 1234
BATCH_DIM = "batch"
SEQ_DIM = "sequence"

# Shapes used to verify each file against torch: (batch, seq, padded?).  Padding is on the right
# (ones then zeros), so that every query row always has at least one visible key.
CHECK_SHAPES = [(2, 7, False), (3, 11, True)]
# Example shape used when tracing / exporting (with padding, so that no "no-padding" shortcut
# gets baked into a traced graph).
EXPORT_SHAPE = (2, 9, True)

TINY = dict(layers=2, hidden=64, heads=4, vocab=1000, max_pos=128)


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------------------------

def make_config(arch, attn_impl):
    import transformers as tf
    t = TINY
    if arch == "bert":
        cfg = tf.BertConfig(vocab_size=t["vocab"], hidden_size=t["hidden"],
                            num_hidden_layers=t["layers"], num_attention_heads=t["heads"],
                            intermediate_size=128, max_position_embeddings=t["max_pos"],
                            type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, pad_token_id=0)
    elif arch == "gpt2":
        cfg = tf.GPT2Config(vocab_size=t["vocab"], n_positions=t["max_pos"], n_embd=t["hidden"],
                            n_layer=t["layers"], n_head=t["heads"], n_inner=128,
                            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    elif arch == "llama":
        cfg = tf.LlamaConfig(vocab_size=t["vocab"], hidden_size=t["hidden"],
                             intermediate_size=176, num_hidden_layers=t["layers"],
                             num_attention_heads=t["heads"], num_key_value_heads=t["heads"],
                             max_position_embeddings=t["max_pos"], hidden_act="silu",
                             rms_norm_eps=1e-6, tie_word_embeddings=False,
                             bos_token_id=1, eos_token_id=2)
    elif arch == "qwen2":
        cfg = tf.Qwen2Config(vocab_size=t["vocab"], hidden_size=t["hidden"],
                             intermediate_size=176, num_hidden_layers=t["layers"],
                             num_attention_heads=t["heads"], num_key_value_heads=2,
                             max_position_embeddings=t["max_pos"], hidden_act="silu",
                             rms_norm_eps=1e-6, tie_word_embeddings=False,
                             use_sliding_window=False, max_window_layers=t["layers"],
                             bos_token_id=1, eos_token_id=2)
    else:
        raise ValueError(arch)
    cfg.use_cache = False
    try:
        cfg._attn_implementation = attn_impl
    except Exception:  # noqa: BLE001
        pass
    return cfg


def build_model(arch, attn_impl):
    """Random-initialised model (seeded) plus a wrapper with positional tensor inputs."""
    import torch
    import transformers as tf
    cfg = make_config(arch, attn_impl)
    torch.manual_seed(SEED)
    if arch == "bert":
        model = tf.BertModel(cfg, add_pooling_layer=False)
    elif arch == "gpt2":
        model = tf.GPT2LMHeadModel(cfg)
    elif arch == "llama":
        model = tf.LlamaForCausalLM(cfg)
    elif arch == "qwen2":
        model = tf.Qwen2ForCausalLM(cfg)
    perturb_vectors(model)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation(attn_impl)
        except Exception as e:  # noqa: BLE001
            log(f"  note: set_attn_implementation({attn_impl}) failed: {e}")
    model.eval()
    wrapper = EncoderWrapper(model) if arch == "bert" else CausalLMWrapper(model)
    wrapper.eval()
    return cfg, model, wrapper


VECTOR_NOISE = 0.1
WEIGHT_INIT_NOTE = ("transformers' own init (normal(0, 0.02) matrices and embeddings; biases 0, norm "
                    "weights 1) after torch.manual_seed(%d), then N(0, %g) noise added to every 1-D "
                    "parameter (biases, norm weights/biases) from a generator seeded %d, so that no "
                    "bias is all-zero, no norm weight all-one, and no two initializers are equal "
                    "(exporters would otherwise deduplicate them)" % (SEED, VECTOR_NOISE, SEED + 1))


def perturb_vectors(model):
    import torch
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * VECTOR_NOISE)


def _torch_classes():
    import torch

    class _EncoderWrapper(torch.nn.Module):
        input_names = ["input_ids", "attention_mask", "token_type_ids"]
        output_names = ["last_hidden_state"]

        def __init__(self, m, classic_mask=False):
            super().__init__()
            self.m = m
            self.classic_mask = classic_mask

        def forward(self, input_ids, attention_mask, token_type_ids):
            mask = attention_mask
            if self.classic_mask:
                # The classic BERT "extended" additive mask, [B, 1, 1, S]; a 4-D mask is handed
                # through unchanged by transformers, and ORT's fusion recognises this pattern.
                ext = attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)
                mask = (1.0 - ext) * torch.finfo(torch.float32).min
            out = self.m(input_ids=input_ids, attention_mask=mask, token_type_ids=token_type_ids,
                         return_dict=True)
            return out.last_hidden_state

    class _CausalLMWrapper(torch.nn.Module):
        input_names = ["input_ids", "attention_mask"]
        output_names = ["logits"]

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                         return_dict=True)
            return out.logits

    return _EncoderWrapper, _CausalLMWrapper


def EncoderWrapper(m, classic_mask=False):
    return _torch_classes()[0](m, classic_mask)


def CausalLMWrapper(m):
    return _torch_classes()[1](m)


def classic_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      **kwargs):
    """Plain scaled-dot-product attention written the way BERT was originally exported
    (MatMul -> Div -> Add(mask) -> Softmax -> MatMul), used only for the ORT-fusion source graph.
    query/key/value: [B, H, S, D]; returns ([B, S, H, D], probs)."""
    import torch
    d = query.shape[-1]
    scores = torch.matmul(query, key.transpose(-1, -2))
    scores = scores / math.sqrt(d) if scaling is None else scores / (1.0 / scaling)
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.nn.functional.softmax(scores, dim=-1)
    out = torch.matmul(probs, value)
    return out.transpose(1, 2).contiguous(), probs


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def make_inputs(arch, batch, seq, padded, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, TINY["vocab"], size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    if padded:
        for b in range(1, batch):
            length = max(1, seq - 2 * b - 1)
            mask[b, length:] = 0
            ids[b, length:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    if arch == "bert":
        tt = np.zeros((batch, seq), dtype=np.int64)
        tt[:, seq // 2:] = 1
        feeds["token_type_ids"] = tt
    return feeds


def torch_run(wrapper, feeds, names):
    import torch
    with torch.no_grad():
        args = tuple(torch.from_numpy(feeds[n]) for n in names)
        return wrapper(*args).detach().cpu().numpy()


def ort_run(path, feeds):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    want = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in want})[0]


# --------------------------------------------------------------------------------------------
# exporters
# --------------------------------------------------------------------------------------------

def export_torchscript(wrapper, arch, path, opset=17):
    import torch
    feeds = make_inputs(arch, *EXPORT_SHAPE, seed=7)
    names = wrapper.input_names
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    axes = {n: {0: BATCH_DIM, 1: SEQ_DIM} for n in names}
    for o in wrapper.output_names:
        axes[o] = {0: BATCH_DIM, 1: SEQ_DIM}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, path, dynamo=False, opset_version=opset,
                          input_names=names, output_names=wrapper.output_names,
                          dynamic_axes=axes, do_constant_folding=True)
    return {"exporter": "torchscript", "exporter_call": f"torch.onnx.export(dynamo=False, "
            f"opset_version={opset}, do_constant_folding=True)"}


def export_dynamo(wrapper, arch, path, opset=18):
    import onnx
    import torch
    feeds = make_inputs(arch, *EXPORT_SHAPE, seed=7)
    names = wrapper.input_names
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    params = inspect.signature(torch.onnx.export).parameters
    notes = []
    attempts = []
    Dim = torch.export.Dim
    attempts.append(("named Dim(batch, max=1024), Dim(sequence, max=128)",
                     lambda: tuple({0: Dim(BATCH_DIM, max=1024), 1: Dim(SEQ_DIM, max=TINY["max_pos"])}
                                   for _ in names)))
    if hasattr(Dim, "AUTO"):
        attempts.append(("Dim.AUTO", lambda: tuple({0: Dim.AUTO, 1: Dim.AUTO} for _ in names)))
    last_err = None
    prog = None
    for label, mk in attempts:
        kw = dict(dynamo=True, opset_version=opset, input_names=list(names),
                  output_names=list(wrapper.output_names), dynamic_shapes=mk())
        if "optimize" in params:
            kw["optimize"] = True
        if "external_data" in params:
            kw["external_data"] = False
        if "report" in params:
            kw["report"] = False
        if "fallback" in params:
            kw["fallback"] = False
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prog = torch.onnx.export(wrapper, args, None, **kw)
            notes.append(f"dynamic_shapes: {label}")
            break
        except Exception as e:  # noqa: BLE001
            last_err = e
            notes.append(f"dynamic_shapes {label} failed: {type(e).__name__}: {str(e)[:300]}")
            log(f"    dynamo attempt with {label} failed: {type(e).__name__}: {str(e)[:300]}")
    if prog is None:
        raise last_err
    if "optimize" not in params and hasattr(prog, "optimize"):
        prog.optimize()
        notes.append("ONNXProgram.optimize() (onnxscript optimizer)")
    else:
        notes.append("optimize=True (onnxscript optimizer, constant folding)")
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, "m.onnx")
        prog.save(tmp, external_data=False) if "external_data" in inspect.signature(prog.save).parameters \
            else prog.save(tmp)
        model = onnx.load(tmp, load_external_data=True)
    # run the onnxscript optimizer once more on the proto (idempotent if already optimized)
    try:
        import onnxscript.optimizer as oso
        model = oso.optimize(model)
        notes.append("onnxscript.optimizer.optimize(ModelProto) applied")
    except Exception as e:  # noqa: BLE001
        notes.append(f"onnxscript.optimizer.optimize on proto skipped: {type(e).__name__}: {e}")
    if len(model.functions) > 0:
        from onnx import inliner
        model = inliner.inline_local_functions(model)
        notes.append("local functions inlined")
    rename_dims(model, names, wrapper.output_names)
    onnx.save(model, path, save_as_external_data=False)
    return {"exporter": "dynamo", "exporter_call": f"torch.onnx.export(dynamo=True, "
            f"opset_version={opset}, optimize=True, external_data=False)", "notes": notes}


def rename_dims(model, in_names, out_names):
    """Give the symbolic batch / sequence dims of inputs and outputs the names batch/sequence,
    and apply the same renaming wherever that symbol appears in value_info."""
    g = model.graph
    mapping = {}
    for vi in g.input:
        if vi.name in in_names:
            dims = vi.type.tensor_type.shape.dim
            for i, new in ((0, BATCH_DIM), (1, SEQ_DIM)):
                if len(dims) > i and dims[i].dim_param and dims[i].dim_param not in mapping:
                    mapping[dims[i].dim_param] = new
    for coll in (g.input, g.output, g.value_info):
        for vi in coll:
            if not vi.type.HasField("tensor_type"):
                continue
            for d in vi.type.tensor_type.shape.dim:
                if d.dim_param in mapping:
                    d.dim_param = mapping[d.dim_param]
    for vi in g.output:
        if vi.name in out_names:
            dims = vi.type.tensor_type.shape.dim
            for i, new in ((0, BATCH_DIM), (1, SEQ_DIM)):
                if len(dims) > i and not dims[i].HasField("dim_value"):
                    dims[i].dim_param = new


def normalise_model(path):
    """Embed everything, clamp the IR version, drop unused opset imports; return a note list."""
    import onnx
    model = onnx.load(path, load_external_data=True)
    notes = []
    used = {n.domain or "" for n in model.graph.node}
    for f in model.functions:
        used.update(n.domain or "" for n in f.node)
    keep = [o for o in model.opset_import if (o.domain or "") in used or (o.domain or "") in ("", "ai.onnx")]
    if len(keep) != len(model.opset_import):
        dropped = [o.domain for o in model.opset_import if o not in keep]
        notes.append(f"dropped unused opset imports {dropped}")
        del model.opset_import[:]
        model.opset_import.extend(keep)
    if model.ir_version > MAX_IR_VERSION:
        notes.append(f"ir_version {model.ir_version} -> {MAX_IR_VERSION}")
        model.ir_version = MAX_IR_VERSION
    # leave producer_name alone (ORT's fusion checks it); say who wrote the file in metadata
    if not any(p.key == "gatecut.generator" for p in model.metadata_props):
        p = model.metadata_props.add()
        p.key, p.value = "gatecut.generator", "tools/export_models.py"
    onnx.save(model, path, save_as_external_data=False)
    extra = [f for f in os.listdir(os.path.dirname(path) or ".") if f.endswith(".data")]
    if extra:
        notes.append(f"stray external data files present: {extra}")
    return notes


# --------------------------------------------------------------------------------------------
# ORT fusion
# --------------------------------------------------------------------------------------------

FUSED_OPS = ("Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu",
             "FastGelu", "Gelu", "SkipSimplifiedLayerNormalization", "MultiHeadAttention")


def pin_head_reshapes(src, dst, num_heads, head_dim):
    """transformers 5 splits heads with reshape(B, S, -1, head_dim); ORT's attention fusion reads
    the head count from that shape and gives up on -1.  Replace the -1 by the (equal) constant
    num_heads in every Reshape whose shape is Concat(b, s, -1, head_dim).  Returns the count."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(src)
    prod = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name: i for i in m.graph.initializer}

    def const(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        n = prod.get(name)
        if n is not None and n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None
    pinned = "gatecut_num_heads"
    count = 0
    for n in m.graph.node:
        if n.op_type != "Reshape":
            continue
        c = prod.get(n.input[1])
        if c is None or c.op_type != "Concat" or len(c.input) != 4:
            continue
        a, b = const(c.input[2]), const(c.input[3])
        if a is not None and b is not None and a.size == 1 and b.size == 1 \
                and int(a.ravel()[0]) == -1 and int(b.ravel()[0]) == head_dim:
            c.input[2] = pinned
            count += 1
    if count:
        m.graph.initializer.append(numpy_helper.from_array(np.array([num_heads], dtype=np.int64), pinned))
    onnx.save(m, dst)
    return count


def ort_fuse(src, dst, cfg, opt_level):
    from onnxruntime.transformers.optimizer import optimize_model
    from onnxruntime.transformers.fusion_options import FusionOptions
    fo = FusionOptions("bert")
    fo.enable_gelu_approximation = False      # keep exact GELU (BiasGelu), fp32
    opt = optimize_model(src, model_type="bert", num_heads=cfg.num_attention_heads,
                         hidden_size=cfg.hidden_size, opt_level=opt_level, use_gpu=False,
                         optimization_options=fo, only_onnxruntime=False)
    opt.save_model_to_file(dst, use_external_data_format=False)
    return opt.get_fused_operator_statistics() if hasattr(opt, "get_fused_operator_statistics") else {}


def debug_graph_context(path, depth=7):
    """Print the ancestor chains of the first Softmax / LayerNormalization nodes (fusion debugging)."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    prod = {o: n for n in m.graph.node for o in n.output}

    def chain(name, d):
        n = prod.get(name)
        if n is None or d == 0:
            return name if n is None else "..."
        return n.op_type + "(" + ", ".join(chain(i, d - 1) for i in n.input if i) + ")"
    log(f"    --- {os.path.basename(path)}")
    for op in ("Softmax", "LayerNormalization"):
        first = next((n for n in m.graph.node if n.op_type == op), None)
        if first is not None:
            log(f"    {op}: {chain(first.output[0], depth)}"[:3000])


def op_histogram(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    c = collections.Counter()
    for n in m.graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
        c[key] += 1
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------

def describe_io(model):
    def one(vi):
        tt = vi.type.tensor_type
        import onnx
        dims = [d.dim_param if d.dim_param else d.dim_value for d in tt.shape.dim]
        return {"name": vi.name, "dtype": onnx.TensorProto.DataType.Name(tt.elem_type).lower(),
                "shape": dims}
    init = {i.name for i in model.graph.initializer}
    return ([one(v) for v in model.graph.input if v.name not in init],
            [one(v) for v in model.graph.output])


def verify(path, arch, wrapper):
    import onnx
    res = {}
    model = onnx.load(path, load_external_data=False)
    try:
        onnx.checker.check_model(model, full_check=False)
        res["onnx_checker"] = "ok"
    except Exception as e:  # noqa: BLE001
        res["onnx_checker"] = f"FAILED: {type(e).__name__}: {str(e)[:300]}"
    diffs = []
    for i, (b, s, padded) in enumerate(CHECK_SHAPES):
        feeds = make_inputs(arch, b, s, padded, seed=100 + i)
        ref = torch_run(wrapper, feeds, wrapper.input_names)
        got = ort_run(path, feeds)
        if got.shape != ref.shape:
            raise RuntimeError(f"shape mismatch at {b}x{s}: onnx {got.shape} vs torch {ref.shape}")
        d = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
        diffs.append({"batch": b, "sequence": s, "right_padded": padded,
                      "max_abs_diff": d, "ref_max_abs": float(np.max(np.abs(ref)))})
    res["checks"] = diffs
    res["max_abs_diff"] = max(x["max_abs_diff"] for x in diffs)
    ins, outs = describe_io(model)
    res["inputs"], res["outputs"] = ins, outs
    res["ir_version"] = model.ir_version
    res["opset_import"] = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    res["op_histogram"] = op_histogram(path)
    res["num_nodes"] = len(model.graph.node)
    res["num_initializers"] = len(model.graph.initializer)
    res["initializers"] = [{"name": i.name, "dtype": onnx.TensorProto.DataType.Name(i.data_type).lower(),
                            "shape": list(i.dims)} for i in model.graph.initializer]
    res["initializer_params"] = int(sum(int(np.prod(i.dims)) if len(i.dims) else 1
                                        for i in model.graph.initializer))
    res["size_bytes"] = os.path.getsize(path)
    with open(path, "rb") as fh:
        res["sha256"] = hashlib.sha256(fh.read()).hexdigest()
    problems = []
    if res["size_bytes"] >= MAX_FILE_BYTES:
        problems.append(f"file is {res['size_bytes']} bytes (>= 2 MiB)")
    if res["ir_version"] > MAX_IR_VERSION:
        problems.append(f"ir_version {res['ir_version']} > {MAX_IR_VERSION}")
    if res["opset_import"].get("ai.onnx", 0) > MAX_AI_ONNX_OPSET:
        problems.append("ai.onnx opset > 21")
    if res["max_abs_diff"] > 1e-3:
        problems.append(f"max abs diff {res['max_abs_diff']:.3g} > 1e-3")
    res["problems"] = problems
    return res


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def versions():
    import onnx
    import onnxruntime
    import torch
    import transformers
    v = {"python": platform.python_version(), "torch": torch.__version__,
         "transformers": transformers.__version__, "onnx": onnx.__version__,
         "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
    try:
        import onnxscript
        v["onnxscript"] = onnxscript.__version__
    except Exception:  # noqa: BLE001
        v["onnxscript"] = None
    try:
        import onnx_ir
        v["onnx_ir"] = onnx_ir.__version__
    except Exception:  # noqa: BLE001
        pass
    return v


def device_note():
    import torch
    parts = [f"{platform.system()} {platform.machine()}"]
    try:
        if torch.cuda.is_available():
            parts.append(f"GPU present: {torch.cuda.get_device_name(0)} (exports and checks ran on CPU)")
    except Exception:  # noqa: BLE001
        pass
    return "; ".join(parts)


def short_err(e):
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    tail = "".join(tb[-3:])
    return {"error": f"{type(e).__name__}: {str(e)[:1500]}", "traceback_tail": tail[-2500:]}


def config_summary(arch, cfg):
    g = lambda *ks: next((getattr(cfg, k) for k in ks if getattr(cfg, k, None) is not None), None)  # noqa: E731
    heads = g("num_attention_heads", "n_head")
    hidden = g("hidden_size", "n_embd")
    return {"layers": g("num_hidden_layers", "n_layer"), "hidden": hidden, "heads": heads,
            "kv_heads": g("num_key_value_heads") or heads, "head_dim": hidden // heads,
            "intermediate": g("intermediate_size", "n_inner"), "vocab": g("vocab_size"),
            "max_positions": g("max_position_embeddings", "n_positions"),
            "activation": g("hidden_act", "activation_function")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--only", default="", help="comma list of archs (bert,gpt2,llama,qwen2)")
    args = ap.parse_args()
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    import torch
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    vers = versions()
    log("versions:", json.dumps(vers))
    dev = device_note()
    log("device:", dev)
    import transformers
    transformers.logging.set_verbosity_error()

    archs = ["bert", "gpt2", "llama", "qwen2"]
    if args.only:
        archs = [a for a in archs if a in args.only.split(",")]
    entries, failures = [], []

    def record(fname, arch, cfg, wrapper, meta):
        path = os.path.join(args.out, fname)
        meta = dict(meta)
        meta["notes"] = list(meta.get("notes", [])) + normalise_model(path)
        v = verify(path, arch, wrapper)
        e = {"file": fname, "architecture": arch, "hf_class": type(wrapper.m).__name__}
        e.update(meta)
        e.update(v)
        e["config_summary"] = config_summary(arch, cfg)
        e["config"] = json.loads(json.dumps(cfg.to_dict(), default=str))
        e["versions"] = vers
        entries.append(e)
        log(f"  OK {fname}: {v['size_bytes']} B, ir {v['ir_version']}, opsets {v['opset_import']}, "
            f"max|diff| {v['max_abs_diff']:.3g}, problems {v['problems']}")
        log(f"     ops: {v['op_histogram']}")

    for arch in archs:
        # ---- TorchScript, opset 17, eager attention
        fname = f"{arch}-ts17.onnx"
        log(f"[{time.time()-t0:6.1f}s] {fname}")
        try:
            cfg, model, wrapper = build_model(arch, "eager")
            meta = export_torchscript(wrapper, arch, os.path.join(args.out, fname), 17)
            meta.update(opset=17, attn_implementation=model.config._attn_implementation)
            record(fname, arch, cfg, wrapper, meta)
        except Exception as e:  # noqa: BLE001
            log(f"  FAILED {fname}: {type(e).__name__}: {str(e)[:800]}")
            failures.append({"file": fname, "architecture": arch, "exporter": "torchscript",
                             "opset": 17, **short_err(e)})
        # ---- dynamo, opset 18: eager attention first, sdpa as fallback
        fname = f"{arch}-dynamo18.onnx"
        log(f"[{time.time()-t0:6.1f}s] {fname}")
        errs = []
        for impl in ("eager", "sdpa"):
            try:
                cfg, model, wrapper = build_model(arch, impl)
                meta = export_dynamo(wrapper, arch, os.path.join(args.out, fname), 18)
                meta.update(opset=18, attn_implementation=model.config._attn_implementation)
                if errs:
                    meta["notes"] = meta.get("notes", []) + [f"eager attempt failed: {errs[0]['error'][:300]}"]
                record(fname, arch, cfg, wrapper, meta)
                errs = []
                break
            except Exception as e:  # noqa: BLE001
                log(f"  FAILED {fname} with attn={impl}: {type(e).__name__}: {str(e)[:800]}")
                errs.append({"attn_implementation": impl, **short_err(e)})
                p = os.path.join(args.out, fname)
                if os.path.exists(p):
                    os.remove(p)
        if errs:
            failures.append({"file": fname, "architecture": arch, "exporter": "dynamo", "opset": 18,
                             "error": errs[-1]["error"], "attempts": errs})

    # ---- ORT-fused BERT
    if "bert" in archs:
        fname = "bert-ort-fused.onnx"
        log(f"[{time.time()-t0:6.1f}s] {fname}")
        try:
            fused_done = fuse_bert(args.out, fname, record)
            if not fused_done:
                failures.append({"file": fname, "architecture": "bert", "exporter": "ort-fusion",
                                 "opset": 17, "error": "no fusion strategy produced Attention ops"})
        except Exception as e:  # noqa: BLE001
            log(f"  FAILED {fname}: {type(e).__name__}: {str(e)[:800]}")
            failures.append({"file": fname, "architecture": "bert", "exporter": "ort-fusion",
                             "opset": 17, **short_err(e)})

    for f in os.listdir(args.out):
        if f.endswith(".data") or f.endswith(".onnx.data"):
            log(f"  removing stray external data file {f}")
            os.remove(os.path.join(args.out, f))

    manifest = {"generator": "tools/export_models.py",
                "command": "python3 tools/export_models.py --out onnx-models",
                "date": args.date, "device": dev, "seed": SEED, "weight_init": WEIGHT_INIT_NOTE,
                "versions": vers,
                "check_shapes": [{"batch": b, "sequence": s, "right_padded": p} for b, s, p in CHECK_SHAPES],
                "models": entries, "failures": failures}
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
    with open(os.path.join(args.out, "README.md"), "w") as fh:
        fh.write(render_readme(manifest))

    log("")
    log(f"{'file':28s} {'bytes':>9s} {'ir':>3s} {'opset':>6s} {'nodes':>6s} {'max|diff|':>10s}  problems")
    for e in entries:
        log(f"{e['file']:28s} {e['size_bytes']:9d} {e['ir_version']:3d} "
            f"{e['opset_import'].get('ai.onnx', 0):6d} {e['num_nodes']:6d} {e['max_abs_diff']:10.3g}  "
            f"{'; '.join(e['problems']) or '-'}")
    for f in failures:
        log(f"FAILED {f['file']}: {f['error'][:300]}")
    log(f"done in {time.time()-t0:.1f}s")


def fuse_bert(out, fname, record):
    """Try to produce a CPU-loadable, fp32 BERT with com.microsoft fused ops.

    Strategy A fuses the plain bert-ts17 export.  Strategy B re-exports the same weights through
    a wrapper that builds the classic additive [B,1,1,S] mask and a classic attention function
    (registered through transformers.AttentionInterface), the graph shape ORT's BERT fusion was
    written for.  The first strategy whose result has one Attention node per layer wins."""
    import onnx
    dst = os.path.join(out, fname)
    cfg0 = make_config("bert", "eager")
    want_attn = cfg0.num_hidden_layers
    tried = []
    with tempfile.TemporaryDirectory() as td:
        sources = []
        src_a = os.path.join(out, "bert-ts17.onnx")
        if os.path.exists(src_a):
            sources.append(("A: bert-ts17.onnx as exported", src_a, "eager", False))
        sources.append(("B: classic 4-D mask + classic attention re-export", None, "gatecut_classic", True))
        best = None
        for label, src, impl, classic in sources:
            try:
                if src is None:
                    from transformers import AttentionInterface
                    AttentionInterface.register("gatecut_classic", classic_attention)
                    cfg, model, _ = build_model("bert", "gatecut_classic")
                    wrapper = EncoderWrapper(model, classic_mask=True)
                    wrapper.eval()
                    src = os.path.join(td, "bert-classic-ts17.onnx")
                    export_torchscript(wrapper, "bert", src, 17)
                pinned_src = os.path.join(td, f"pinned-{len(sources)}-{len(tried)}.onnx")
                n_pin = pin_head_reshapes(src, pinned_src, cfg0.num_attention_heads,
                                          cfg0.hidden_size // cfg0.num_attention_heads)
                log(f"    {label}: pinned num_heads in {n_pin} head-split Concat shape(s)")
                src = pinned_src
            except Exception as e:  # noqa: BLE001
                log(f"    source {label} failed: {type(e).__name__}: {str(e)[:400]}")
                tried.append({"strategy": label, **short_err(e)})
                continue
            for level in (0, 1):
                tmp = os.path.join(td, f"fused-{len(tried)}-{level}.onnx")
                try:
                    stats = ort_fuse(src, tmp, cfg0, level)
                    hist = op_histogram(tmp)
                    n_attn = hist.get("com.microsoft:Attention", 0)
                    log(f"    {label}, opt_level {level}: fused {stats}")
                    tried.append({"strategy": label, "opt_level": level, "attention_nodes": n_attn,
                                  "pinned_head_reshapes": n_pin,
                                  "fused": {k: v for k, v in (stats or {}).items() if v}})
                    score = sum(v for k, v in hist.items() if k.startswith("com.microsoft:"))
                    if n_attn >= want_attn and (best is None or score > best[0]):
                        best = (score, tmp, label, level, stats)
                except Exception as e:  # noqa: BLE001
                    log(f"    {label}, opt_level {level} failed: {type(e).__name__}: {str(e)[:400]}")
                    tried.append({"strategy": label, "opt_level": level, **short_err(e)})
        if best is None:
            log("    no strategy gave Attention fusion; graph context of the sources:")
            for src in [os.path.join(out, "bert-ts17.onnx"), os.path.join(td, "bert-classic-ts17.onnx")] + \
                    sorted(os.path.join(td, f) for f in os.listdir(td) if f.startswith("fused-")):
                if os.path.exists(src):
                    debug_graph_context(src)
            return False
        _, tmp, label, level, stats = best
        m = onnx.load(tmp)
        onnx.save(m, dst, save_as_external_data=False)
    cfg, model, wrapper = build_model("bert", "eager")   # same seed -> same weights; torch reference
    meta = {"exporter": "torchscript+ort-fusion", "opset": 17, "attn_implementation": "eager (reference)",
            "exporter_call": f"onnxruntime.transformers.optimizer.optimize_model(model_type='bert', "
                             f"num_heads={cfg.num_attention_heads}, hidden_size={cfg.hidden_size}, "
                             f"opt_level={level}, use_gpu=False, enable_gelu_approximation=False)",
            "fusion_strategy": label, "fusion_attempts": tried,
            "fused_operator_statistics": {k: v for k, v in (stats or {}).items() if v}}
    record(fname, "bert", cfg, wrapper, meta)
    return True


def render_readme(m):
    v = m["versions"]
    L = []
    L.append("# onnx-models: gatecut's test zoo\n")
    L.append("Tiny transformer models with **random weights** (nothing was downloaded), built from "
             "HuggingFace `transformers` config classes with `torch.manual_seed(%d)` and exported to "
             "ONNX by `tools/export_models.py`. They are test fixtures for gatecut, not useful "
             "language models.\n" % m["seed"])
    L.append(f"Weights: {m['weight_init']}.\n")
    L.append("## Provenance\n")
    L.append(f"- generated: {m['date']}, on the lent GPU machine ({m['device']})")
    L.append(f"- versions: python {v['python']}, torch {v['torch']}, transformers {v['transformers']}, "
             f"onnx {v['onnx']}, onnxruntime {v['onnxruntime']}, onnxscript {v.get('onnxscript')}, "
             f"numpy {v['numpy']}")
    L.append(f"- regenerate: `{m['command']}` (run from the repo root on a machine with the packages "
             "above; the output is deterministic up to exporter versions)")
    L.append("- all inputs are int64 `[batch, sequence]` with dynamic axes named `batch` and `sequence`; "
             "no past key values (`use_cache=False`)")
    shapes = ", ".join(f"{c['batch']}x{c['sequence']}{' right-padded' if c['right_padded'] else ''}"
                       for c in m["check_shapes"])
    L.append(f"- every file was checked with `onnx.checker`, run with ONNX Runtime (CPUExecutionProvider) at "
             f"{shapes}, and compared with the torch model (max abs diff below); every file has "
             f"IR version <= {MAX_IR_VERSION} and ai.onnx opset <= {MAX_AI_ONNX_OPSET} so it loads in "
             "ONNX Runtime 1.24 (CPU), and all weights are inside the .onnx file (no external data)")
    L.append("- `manifest.json` holds the same facts machine-readably, plus full configs, op histograms, "
             "sha256 sums and per-shape diffs\n")
    L.append("## Files\n")
    L.append("| file | architecture (HF class) | exporter | opset | IR | attention | layers | hidden | heads | kv heads | intermediate | vocab | bytes | max abs diff vs torch |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in m["models"]:
        c = e["config_summary"]
        L.append(f"| `{e['file']}` | {e['architecture']} ({e['hf_class']}) | {e['exporter']} | "
                 f"{e['opset_import'].get('ai.onnx')}" +
                 (f" + com.microsoft {e['opset_import']['com.microsoft']}" if "com.microsoft" in e["opset_import"] else "") +
                 f" | {e['ir_version']} | {e['attn_implementation']} | {c['layers']} | {c['hidden']} | {c['heads']} | "
                 f"{c['kv_heads']} | {c['intermediate']} | {c['vocab']} | {e['size_bytes']} | {e['max_abs_diff']:.2e} |")
    L.append("")
    L.append("### Inputs, outputs and ops\n")
    for e in m["models"]:
        ins = ", ".join(f"`{i['name']}` {i['dtype']}{i['shape']}" for i in e["inputs"])
        outs = ", ".join(f"`{o['name']}` {o['dtype']}{o['shape']}" for o in e["outputs"])
        ops = ", ".join(f"{k} {v}" for k, v in e["op_histogram"].items())
        L.append(f"- **`{e['file']}`** — {e['exporter_call']}")
        L.append(f"  - inputs: {ins}; outputs: {outs}")
        L.append(f"  - {e['num_nodes']} nodes, {e['num_initializers']} initializers "
                 f"({e['initializer_params']} values); ops: {ops}")
        if e.get("fusion_strategy"):
            L.append(f"  - fusion strategy: {e['fusion_strategy']}; fused: {e.get('fused_operator_statistics')}")
        if e.get("notes"):
            L.append(f"  - notes: {'; '.join(e['notes'])}")
        if e.get("problems"):
            L.append(f"  - PROBLEMS: {'; '.join(e['problems'])}")
    L.append("")
    L.append("## Notes for users of these files\n")
    L.append("- TorchScript exports (`*-ts17`): `nn.Linear` weights appear pre-transposed ([in, out]) "
             "as MatMul operands under generated names (`onnx::MatMul_N`); embeddings, norms, biases "
             "and GPT-2's Conv1D weights (already [in, out], used by Gemm) keep their torch names "
             "(`m.` + parameter name); node names are `/m/...` paths; many small shape-computing "
             "Constant/Shape/Gather/Concat nodes. GPT-2's tied LM head is stored a second time, "
             "transposed (`onnx::MatMul_N` [64, 1000]), beside `m.transformer.wte.weight`.")
    L.append("- Dynamo exports (`*-dynamo18`) went through the onnxscript optimizer: constant folding "
             "leaves pre-transposed weights under generated names (`val_N`), so a weight's torch "
             "name is only kept where it is used untransposed (embeddings, norms, biases, GPT-2's "
             "Conv1D weights; GPT-2's tied embedding is one initializer, `m.lm_head.weight`). "
             "Nodes carry `pkg.torch.onnx.*` metadata (stack traces), which makes them somewhat "
             "larger.")
    L.append("- Attention is explicit (MatMul, scale, additive mask, Softmax, MatMul) in every file "
             "except `bert-ort-fused.onnx`; the causal/padding mask is computed inside the graph from "
             "the int64 `attention_mask`.  Qwen2 uses grouped-query attention (4 query heads, 2 KV "
             "heads: K/V projections are 64x32 and are expanded before the score MatMul); LLaMA and "
             "Qwen2 compute RoPE (Cos/Sin, Neg, Concat/Slice) and RMSNorm (Pow, ReduceMean, Sqrt, "
             "Div/Reciprocal) from primitives; SwiGLU is Sigmoid*x*up.")
    L.append("- `bert-ort-fused.onnx` is the same BERT (same seed, same weights) fused by "
             "`onnxruntime.transformers.optimizer` with CPU-only, fp32 settings: com.microsoft "
             "EmbedLayerNormalization, Attention (packed QKV weight [64,192]), SkipLayerNormalization "
             "and BiasGelu. ORT's BERT fusion does not recognise the attention graph that transformers "
             "5 emits, so its source is a re-export of the same weights in which the wrapper builds the "
             "classic additive mask `(1 - mask[:, None, None, :]) * finfo.min` and a classic attention "
             "function (MatMul, Div by sqrt(head_dim), Add, Softmax, MatMul) is registered through "
             "`transformers.AttentionInterface`, and in which the head-split Reshape shapes "
             "(`-1, head_dim`) get the equal constant head count; both are exact rewrites. "
             "EmbedLayerNormalization turns `attention_mask` into a per-row length (mask_index), so "
             "the fused model assumes right padding (ones then zeros), as the checks used.")
    L.append("")
    L.append("## Variants that failed\n")
    if not m["failures"]:
        L.append("None.")
    for f in m["failures"]:
        L.append(f"- `{f['file']}` ({f['exporter']}, opset {f['opset']}): {f['error'][:600]}")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
