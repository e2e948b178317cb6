#!/usr/bin/env python3
"""Exact dense FLOPs of an ONNX transformer's matrix products at a given batch and sequence length.

Counts 2*M*K*N for every MatMul and Gemm (a multiply-add is two FLOPs), split into
  linear     products with a constant 2-D operand (an initializer, or computed from initializers
             only): the model's linear layers, whatever layout the exporter chose;
  attention  products of two activations that both grow with batch or sequence (Q.K^T and P.V in
             explicit attention graphs);
  other      the rest (e.g. rotary-embedding frequency x position products; tiny).
"total" is the sum of all three.
Element-wise work (norms, softmax, activations, bias adds) is not counted.

Shapes are measured, not guessed: ONNX Runtime (CPU, no graph optimisation) runs the model at three
small (batch, sequence) sizes with every product's operands exposed as outputs, and each dimension
is fitted as c * batch^i * sequence^j (i in 0..1, j in 0..2).  That handles TorchScript, dynamo and
Optimum exports alike (reshapes computed through Shape/Gather/Concat, [B*S, K] Gemm inputs,
[B*H, S, D] attention) and models with external data.  The fit is then evaluated at any size, so one
probe answers for every (batch, sequence) asked.

    python3 tools/flops.py MODEL.onnx [MODEL2.onnx ...] --shapes 1x128,32x128,64x256 [--json] [--nodes]

As a library:  count(path) -> Counter;  counter.at(batch, seq) -> {"linear": .., "attention": .., ...}

Half-precision models (float16 / bfloat16) are probed through a float32 stand-in: the same graph with
float32 types, small half-precision constants converted and large ones replaced by zeros of their shape
(ConstantOfShape; shapes never depend on weight values). ONNX Runtime's CPU provider has few float16
and no bfloat16 kernels and inserts casts around them that clash with the exposed operands ("Type
(tensor(float)) of output arg (InsertedPrecisionFreeCast_...) does not match expected type
(tensor(float16))"); the stand-in has none, and the counts do not depend on the precision.
Decoders exported with a KV cache (past_key_values.* inputs) are probed as a prefill: empty past.

The ideal speedup of a compiled model over its dense model is dense total / compiled total.
com.microsoft Attention with an initializer weight (ORT's transformer optimizer) is counted: its
packed QKV projection as linear, Q.K^T and P.V as attention.  Other contrib ops with hidden products
(MatMulNBits, MultiHeadAttention, ...) are not counted; they are listed under "uncounted" so that a
ratio over them is not trusted blindly.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

PROBES = [(2, 7), (3, 11), (5, 13)]
PRODUCT_OPS = ("MatMul", "Gemm")
# Ops that hide matrix products this tool does not look into.
HIDDEN_PRODUCT_OPS = {"Attention", "MultiHeadAttention", "GroupQueryAttention", "MatMulNBits",
                      "MatMulInteger", "QLinearMatMul", "FusedMatMul", "Conv", "ConvTranspose", "Einsum",
                      "PackedAttention", "DecoderMaskedMultiHeadAttention", "GemmFastGelu", "QAttention"}


class Dim:
    """c * batch^i * seq^j."""

    def __init__(self, c, i, j):
        self.c, self.i, self.j = c, i, j

    def at(self, batch, seq):
        return self.c * batch ** self.i * seq ** self.j

    def __repr__(self):
        parts = [str(self.c)] if self.c != 1 or (self.i == 0 and self.j == 0) else []
        parts += ["B"] * self.i + ["S"] * self.j
        return "*".join(parts)


def fit_dim(values, probes=PROBES):
    for i in (0, 1):
        for j in (0, 1, 2):
            base = probes[0][0] ** i * probes[0][1] ** j
            if values[0] % base:
                continue
            c = values[0] // base
            if all(c * b ** i * s ** j == v for (b, s), v in zip(probes, values)):
                return Dim(c, i, j)
    raise ValueError(f"dimension {values} at probe sizes {probes} is not c*B^i*S^j")


class Product:
    def __init__(self, node, kind, a_dims, b_dims, trans_a=False, trans_b=False, gemm=False):
        self.node, self.kind = node, kind
        self.a, self.b = a_dims, b_dims
        self.trans_a, self.trans_b, self.gemm = trans_a, trans_b, gemm

    def operands(self, batch, seq):
        """(batch count, M, K, N, whether the second operand has batch dimensions of its own) at a size."""
        a = [d.at(batch, seq) for d in self.a]
        b = [d.at(batch, seq) for d in self.b]
        if self.gemm:
            m, k = (a[1], a[0]) if self.trans_a else (a[0], a[1])
            n = b[0] if self.trans_b else b[1]
            return 1, m, k, n, False
        if len(a) == 1:
            a = [1] + a
        if len(b) == 1:
            b = b + [1]
        m, k = a[-2], a[-1]
        n = b[-1]
        if b[-2] != k:
            raise ValueError(f"{self.node}: inner dimensions differ: {a} x {b}")
        lead_a, lead_b = a[:-2], b[:-2]
        width = max(len(lead_a), len(lead_b))
        lead_a = [1] * (width - len(lead_a)) + lead_a
        lead_b = [1] * (width - len(lead_b)) + lead_b
        batch_count = int(np.prod([max(x, y) for x, y in zip(lead_a, lead_b)], dtype=np.int64)) if width else 1
        return batch_count, m, k, n, any(x != 1 for x in lead_b)

    def flops(self, batch, seq):
        count, m, k, n, _ = self.operands(batch, seq)
        return 2 * count * m * k * n


class FusedAttention:
    """com.microsoft Attention: the packed QKV projection (a linear product) plus Q·Kᵀ and P·V over
    num_heads heads (attention products), from the input's probed [B, S, hidden] and the weight's
    [hidden, q + k + v] (qkv_hidden_sizes, or three equal parts)."""

    def __init__(self, node, x_dims, w_dims, qkv):
        self.node, self.x, self.w, self.qkv = node, x_dims, w_dims, qkv

    def parts(self, batch, seq):
        b, s, h = (d.at(batch, seq) for d in self.x)
        q, k, v = self.qkv
        return [("linear", 2 * b * s * h * (q + k + v)), ("attention", 2 * b * s * s * q),
                ("attention", 2 * b * s * s * v)]


class Counter:
    def __init__(self, path, products, uncounted, weight_params):
        self.path = path
        self.products = products
        self.uncounted = uncounted
        self.weight_params = weight_params

    def at(self, batch, seq, nodes=False):
        out = {"model": self.path, "batch": batch, "sequence": seq, "linear": 0, "attention": 0, "other": 0}
        per_node = []
        linear_products = attention_products = 0
        for p in self.products:
            if isinstance(p, FusedAttention):
                for kind, f in p.parts(batch, seq):
                    out[kind] += f
                    linear_products += kind == "linear"
                    attention_products += kind == "attention"
                    if nodes:
                        per_node.append({"node": p.node, "kind": kind, "flops": f, "fused": "Attention"})
                continue
            f = p.flops(batch, seq)
            out[p.kind] += f
            linear_products += p.kind == "linear"
            attention_products += p.kind == "attention"
            if nodes:
                per_node.append({"node": p.node, "kind": p.kind, "flops": f,
                                 "a": [repr(d) for d in p.a], "b": [repr(d) for d in p.b]})
        out["total"] = out["linear"] + out["attention"] + out["other"]
        out["linear_products"] = linear_products
        out["attention_products"] = attention_products
        out["linear_weight_parameters"] = self.weight_params
        out["uncounted"] = self.uncounted
        if nodes:
            out["nodes"] = per_node
        return out


def _feeds(model, batch, seq, rng):
    from onnx import TensorProto
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = []
        for idx, d in enumerate(tt.shape.dim):
            dims.append(d.dim_value if d.HasField("dim_value") else (batch if idx == 0 else seq))
        name = vi.name.lower()
        et = tt.elem_type
        if name.startswith("past") and len(dims) >= 3:
            # KV cache: an empty past (a prefill); the symbolic past length is 0, the batch stays.
            dims = [d.dim_value if d.HasField("dim_value") else (batch if idx == 0 else 0)
                    for idx, d in enumerate(tt.shape.dim)]
        if et in (TensorProto.INT64, TensorProto.INT32):
            dtype = np.int64 if et == TensorProto.INT64 else np.int32
            if "mask" in name:
                a = np.ones(dims, dtype=dtype)
            elif "input_ids" in name or name == "ids":
                a = rng.integers(0, 100, size=dims).astype(dtype)   # every vocabulary has 100 tokens
            elif "position" in name and len(dims) >= 1:
                a = np.broadcast_to(np.arange(dims[-1], dtype=dtype), dims).copy()
            else:
                a = np.zeros(dims, dtype=dtype)
        elif et == TensorProto.BOOL:
            a = np.ones(dims, dtype=bool)
        elif et == TensorProto.FLOAT:
            a = rng.standard_normal(dims).astype(np.float32)
        elif et == TensorProto.FLOAT16:
            a = rng.standard_normal(dims).astype(np.float16)
        else:
            raise ValueError(f"input {vi.name}: element type {et} not supported by the probe")
        feeds[vi.name] = a
    return feeds


HALF_TYPES = (10, 16)   # TensorProto.FLOAT16, TensorProto.BFLOAT16
SMALL_CONSTANT = 1 << 16   # half-precision constants up to this many elements keep their values


def _half_to_float32(tensor, base_dir):
    """A float32 numpy array of a FLOAT16 / BFLOAT16 TensorProto (inline or external)."""
    from onnx import external_data_helper
    if tensor.data_location == 1:   # EXTERNAL
        external_data_helper.load_external_data_for_tensor(tensor, base_dir)
    shape = list(tensor.dims)
    if tensor.raw_data:
        bits = np.frombuffer(tensor.raw_data, dtype=np.uint16)
    else:
        bits = np.array(tensor.int32_data, dtype=np.uint16)
    if tensor.data_type == 10:
        return bits.view(np.float16).astype(np.float32).reshape(shape)
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(shape)


def _float_tensor(name, values):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.ascontiguousarray(values, dtype=np.float32), name)


def float_stand_in(model, base_dir):
    """Rewrites `model` (in place) to float32 for shape probing; see the module docstring."""
    import onnx
    from onnx import helper, TensorProto
    g = model.graph
    fed = {i.name for i in g.input}
    kept, zero_nodes = [], []
    for t in g.initializer:
        if t.data_type not in HALF_TYPES:
            kept.append(t)
            continue
        count_ = int(np.prod(t.dims, dtype=np.int64)) if len(t.dims) else 1
        if count_ <= SMALL_CONSTANT:
            kept.append(_float_tensor(t.name, _half_to_float32(t, base_dir)))
        else:
            shape_name = t.name + "__flops_shape"
            kept.append(onnx.numpy_helper.from_array(np.array(list(t.dims), dtype=np.int64), shape_name))
            zero_nodes.append(helper.make_node("ConstantOfShape", [shape_name], [t.name],
                                               name=t.name + "__flops_zeros",
                                               value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.0])))
    del g.initializer[:]
    g.initializer.extend(kept)
    zeroed = {n.output[0] for n in zero_nodes}
    inputs = [i for i in g.input if i.name not in zeroed]
    del g.input[:]
    g.input.extend(inputs)
    nodes = zero_nodes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i in HALF_TYPES:
                a.i = TensorProto.FLOAT
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in HALF_TYPES:
                a.t.CopyFrom(_float_tensor(a.t.name, _half_to_float32(a.t, base_dir)))
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type in HALF_TYPES:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    g.ClearField("value_info")
    return fed


def _is_half(model):
    g = model.graph
    return (any(t.data_type in HALF_TYPES for t in g.initializer)
            or any(v.type.tensor_type.elem_type in HALF_TYPES for v in list(g.input) + list(g.output)))


def count(path, threads=4):
    """Probe a model and return a Counter (see the module docstring)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper  # noqa: F401  (import check)

    model = onnx.load(path, load_external_data=False)
    g = model.graph
    inits = {i.name: list(i.dims) for i in g.initializer}
    graph_inputs = {i.name for i in g.input if i.name not in inits}
    constant = set(inits)
    for n in g.node:
        if n.op_type == "Constant" or (n.input and all((x == "" or x in constant) for x in n.input)
                                       and n.op_type not in ("RandomNormal", "RandomUniform")):
            constant.update(o for o in n.output if o)
    # com.microsoft Attention with an initializer weight is counted (FusedAttention); other contrib ops
    # with products inside are not.
    fused = [n for n in g.node if n.op_type == "Attention" and n.domain == "com.microsoft"
             and len(n.input) > 1 and n.input[1] in inits]
    uncounted = sorted({f"{n.domain + ':' if n.domain else ''}{n.op_type}" for n in g.node
                        if n.op_type in HIDDEN_PRODUCT_OPS and n not in fused})
    products = [n for n in g.node if n.op_type in PRODUCT_OPS and (n.domain or "") in ("", "ai.onnx")]
    if not products and not fused:
        return Counter(path, [], uncounted, 0)

    # Expose every non-initializer operand; initializer shapes are read from the file.
    existing_outputs = {o.name for o in g.output}
    wanted = []
    for n in products + fused:
        for x in n.input[:(1 if n in fused else 2)]:
            if x not in inits and x not in graph_inputs and x not in existing_outputs and x not in wanted:
                wanted.append(x)
    for x in wanted:
        g.output.append(onnx.helper.make_empty_tensor_value_info(x))
    directory = os.path.dirname(os.path.abspath(path))
    if _is_half(model):
        model = onnx.load(path, load_external_data=False)   # the analysis above keeps the original
        for x in wanted:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(x))
        float_stand_in(model, directory)
    fd, probe_path = tempfile.mkstemp(suffix=".flops-probe.onnx", dir=directory)
    os.close(fd)
    try:
        onnx.save_model(model, probe_path)   # tensors stay external where they were (same folder)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        sess = ort.InferenceSession(probe_path, so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        rng = np.random.default_rng(0)
        observed = []   # per probe: name -> shape
        for batch, seq in PROBES:
            feeds = _feeds(model, batch, seq, rng)
            wanted_names = [x for x in names if x in set(wanted) | existing_outputs]
            values = sess.run(wanted_names, feeds)
            shapes = {k: list(v.shape) for k, v in zip(wanted_names, values)}
            for k, v in feeds.items():
                shapes[k] = list(v.shape)
            observed.append(shapes)
        del sess
    finally:
        os.unlink(probe_path)

    def dims_of(name):
        if name in inits:
            return [Dim(int(d), 0, 0) for d in inits[name]]
        per_probe = [o[name] for o in observed]
        if len({len(s) for s in per_probe}) != 1:
            raise ValueError(f"{name}: rank changes with the input size: {per_probe}")
        return [fit_dim([s[k] for s in per_probe]) for k in range(len(per_probe[0]))]

    result = []
    weight_params = 0
    seen_weights = set()
    for n in products:
        a, b = n.input[0], n.input[1]
        a_dims, b_dims = dims_of(a), dims_of(b)
        if a in constant or b in constant:
            w_dims = b_dims if b in constant else a_dims
            kind = "linear" if len(w_dims) == 2 and all(d.c > 1 for d in w_dims) else "other"
        else:
            grows = lambda dims: any(d.i or d.j for d in dims)  # noqa: E731
            kind = "attention" if grows(a_dims) and grows(b_dims) else "other"
        if kind == "linear":
            w = b if b in constant else a
            if w in inits and w not in seen_weights:
                seen_weights.add(w)
                weight_params += int(np.prod(inits[w], dtype=np.int64))
        attrs = {x.name: x for x in n.attribute}
        gemm = n.op_type == "Gemm"
        result.append(Product(n.name or n.output[0], kind, a_dims, b_dims,
                              trans_a=bool(attrs["transA"].i) if "transA" in attrs else False,
                              trans_b=bool(attrs["transB"].i) if "transB" in attrs else False, gemm=gemm))
    for n in fused:
        attrs = {x.name: x for x in n.attribute}
        w = inits[n.input[1]]
        if "qkv_hidden_sizes" in attrs:
            qkv = [int(x) for x in attrs["qkv_hidden_sizes"].ints]
        else:
            qkv = [w[1] // 3] * 3
        if n.input[1] not in seen_weights:
            seen_weights.add(n.input[1])
            weight_params += int(np.prod(w, dtype=np.int64))
        result.append(FusedAttention(n.name or n.output[0], dims_of(n.input[0]), [Dim(int(d), 0, 0) for d in w], qkv))
    return Counter(path, result, uncounted, weight_params)


def parse_shapes(text):
    shapes = []
    for part in text.split(","):
        b, s = part.lower().split("x")
        shapes.append((int(b), int(s)))
    return shapes


def human(f):
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if f >= scale:
            return f"{f / scale:.3f} {unit}"
    return f"{f} "


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--shapes", default=None, help="BxS list, e.g. 1x128,32x128 (default: --batch x --seq)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--json", action="store_true", help="one JSON list on stdout")
    ap.add_argument("--nodes", action="store_true", help="include every product (with --json) or print them")
    args = ap.parse_args(argv)
    shapes = parse_shapes(args.shapes) if args.shapes else [(args.batch, args.seq)]
    rows = []
    for path in args.models:
        c = count(path)
        for batch, seq in shapes:
            rows.append(c.at(batch, seq, nodes=args.nodes))
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return
    for r in rows:
        print(f"{r['model']}  batch {r['batch']} seq {r['sequence']}: linear {human(r['linear'])}FLOP "
              f"({r['linear_products']} products, {r['linear_weight_parameters']:,} weight parameters), "
              f"attention {human(r['attention'])}FLOP ({r['attention_products']} products), "
              f"other {human(r['other'])}FLOP, "
              f"total {human(r['total'])}FLOP = {r['total']}"
              + (f"; NOT counted: {', '.join(r['uncounted'])}" if r["uncounted"] else ""))
        if args.nodes:
            for p in r["nodes"]:
                shapes = f"{p['a']} x {p['b']}" if "a" in p else f"(inside {p['fused']})"
                print(f"    {p['kind']:9s} {p['flops']:>16d}  {p['node']}  {shapes}")


if __name__ == "__main__":
    main()
