#!/usr/bin/env python3
"""Test fixture for the ORT-fused no-cache LLaMA that export_bench_models.py builds at full size
(llama-0.5b-fused-fp16), at the zoo's size: onnx-models/llama-ts17.onnx (2 layers, hidden 64, output
logits) fused by onnxruntime.transformers.optimizer (model_type gpt2, opt_level 0, CPU) and converted
with convert_float_to_float16(keep_io_types=True), as the full-size one is. The full-size source
passes position_ids = cumsum(ones) - 1 ([batch, sequence]); this zoo file computes [1, sequence]
positions, which ORT's fused RotaryEmbedding refuses at batch > 1, so the positions fed to every
RotaryEmbedding are expanded to [batch, sequence] here (Expand to Shape(input_ids)), which is exact.

    python3 tools/make_fused_llama_fixture.py --out src/test/resources/llama-ts17-ortopt-fp16.onnx
"""
import argparse
import os
import sys
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="onnx-models/llama-ts17.onnx")
    ap.add_argument("--out", default="src/test/resources/llama-ts17-ortopt-fp16.onnx")
    a = ap.parse_args()
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    fo = FusionOptions("gpt2")
    fo.enable_gelu_approximation = False
    opt = optimize_model(a.src, model_type="gpt2", num_heads=4, hidden_size=64, opt_level=0, use_gpu=False,
                         optimization_options=fo, only_onnxruntime=False)
    print("fused", {k: v for k, v in opt.get_fused_operator_statistics().items() if v})
    opt.convert_float_to_float16(keep_io_types=True)
    m = opt.model
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import export_deploy_models as deploy
    deploy.trim_rotary_caches_in(m, 128)
    g = m.graph
    extra = [helper.make_node("Shape", ["input_ids"], ["positions_shape"], name="positions_shape")]
    expanded = {}
    for n in g.node:
        if n.op_type == "RotaryEmbedding":
            p = n.input[1]
            if p not in expanded:
                expanded[p] = p + "_bs"
                extra.append(helper.make_node("Expand", [p, "positions_shape"], [expanded[p]],
                                              name=f"positions_expand_{len(expanded)}"))
            n.input[1] = expanded[p]
    avail = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    rest, ordered = list(g.node) + extra, []
    while rest:
        ready = [n for n in rest if all(i in avail for i in n.input)]
        if not ready:
            raise SystemExit("graph has a cycle")
        for n in ready:
            ordered.append(n)
            avail |= set(n.output)
        rest = [n for n in rest if n not in ready]
    del g.node[:]
    g.node.extend(ordered)
    if not any(o.domain == "com.microsoft" for o in m.opset_import):   # what OnnxModel.save adds
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    p = m.metadata_props.add()
    p.key, p.value = "gatecut.generator", "tools/make_fused_llama_fixture.py"
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, "m.onnx")
        onnx.save(m, tmp)
        ref = ort.InferenceSession(a.src, providers=["CPUExecutionProvider"])
        fused = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        ids = rng.integers(3, 200, size=(3, 11)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[1, 8:] = 0
        mask[2, 5:] = 0
        r = ref.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        f = fused.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        diff = float(np.abs(r - f).max())
        print(f"fused fp16 vs {a.src} at 3x11: max abs diff {diff:.3g}")
        if not diff < 5e-3:
            raise SystemExit(f"fused model differs by {diff}")
        os.replace(tmp, a.out)
    print("wrote", a.out, os.path.getsize(a.out), "bytes")


if __name__ == "__main__":
    main()
