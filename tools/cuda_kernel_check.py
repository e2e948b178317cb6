#!/usr/bin/env python3
"""Which nodes of an ONNX graph have no ONNX Runtime CUDA kernel for their types? — on the CPU, before a GPU call.

ONNX Runtime places a node without a CUDA kernel on the CPU and copies around it; CUDA graphs then refuse the
session ("all compute graph nodes have not been partitioned to the CUDAExecutionProvider"). The CUDA provider
library names every kernel it registers in its symbols (kCudaExecutionProvider_<Op>_<domain>_ver<from>[_<to>][_<type>]),
so the registry can be read off the library of the GPU kit without a GPU:

    xz -dc kit.tar.xz | tar -xf - lib/libonnxruntime_providers_cuda.so     # cat .gpu-kit*/k*/part.* > kit.tar.xz
    python3 tools/cuda_kernel_check.py lib/libonnxruntime_providers_cuda.so RUN/train_step.onnx

Prints one line per (op, reason) with a count and an example node; exit 1 if any. Types come from ONNX shape
inference (nodes of unknown type are not flagged); a node passes when one of its input or output types matches
a typed registration (index-typed kernels such as Slice's int64 starts included). Nodes ONNX Runtime moves to the
CPU for other reasons (shape computations it cannot fold) are not seen here: pin the input shapes to fold them.
"""
import collections
import re
import subprocess
import sys

import onnx
from onnx import defs, shape_inference

TYPE_NAMES = {1: "float", 10: "MLFloat16", 16: "BFloat16", 7: "int64", 6: "int32", 9: "bool", 11: "double",
              2: "uint8", 3: "int8", 5: "int16", 12: "uint32", 13: "uint64"}
FIRST_TYPE = re.compile(r"(MLFloat16|BFloat16|float|double|bool|u?int\d+)")
DOMAINS = {"": "kOnnxDomain", "ai.onnx": "kOnnxDomain", "com.microsoft": "kMSDomain"}
NAME = re.compile(r"kCudaExecutionProvider_(.+?)_(kOnnxDomain|kMSDomain)_ver(\d+)(?:_(\d+))?(?:_(.+?))?EEENS_16KernelCreateInfo")


def kernels(library):
    """(op, domain, first version, last version or None, type suffix or None) of every kernel the library registers."""
    out = subprocess.run(["strings", library], capture_output=True, text=True, check=True).stdout
    for m in NAME.finditer(out):
        op, dom, a, b, t = m.groups()
        yield op, dom, int(a), int(b) if b else None, t


def registry(library):
    reg = collections.defaultdict(set)
    for op, dom, a, b, t in kernels(library):
        reg[(op, dom)].add((a, b, t))
    return reg


def check(reg, model_path):
    m = onnx.load(model_path, load_external_data=False)
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    try:
        m = shape_inference.infer_shapes(m, strict_mode=False)
    except Exception:  # noqa: BLE001 — contrib ops stop inference early; what it found is still used
        pass
    types = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.value_info) + list(m.graph.input)
             + list(m.graph.output)}
    types.update({t.name: t.data_type for t in m.graph.initializer})
    found = collections.Counter()
    example = {}
    for n in m.graph.node:
        if n.op_type == "Constant":
            continue
        dom = n.domain or "ai.onnx"
        # ONNX Runtime registers its SimplifiedLayerNormalization in the ONNX domain
        regs = reg.get((n.op_type, DOMAINS.get(dom, dom))) or reg.get((n.op_type, "kOnnxDomain"))
        reason = None
        if not regs:
            reason = "no CUDA kernel"
        else:
            try:
                since = defs.get_schema(n.op_type, opsets.get(dom, 1), "" if dom == "ai.onnx" else dom).since_version
            except Exception:  # noqa: BLE001 — contrib schemas are not in onnx
                since = 1
            cover = [r for r in regs if r[0] <= since and (r[1] is None or since <= r[1])]
            if not cover:
                reason = f"no kernel for opset version {since}"
            elif all(r[2] for r in cover):
                seen = {TYPE_NAMES.get(types.get(v)) for v in list(n.input) + list(n.output) if v} - {None}
                kinds = {FIRST_TYPE.match(r[2]).group(1) for r in cover if FIRST_TYPE.match(r[2])}
                if seen and not seen & kinds:
                    reason = f"no kernel for {'/'.join(sorted(seen))} (has {', '.join(sorted(kinds))})"
        if reason:
            key = (n.op_type, reason)
            found[key] += 1
            example.setdefault(key, n.name)
    return found, example


def write_tsv(library, out):
    """The registry as the tab-separated table the CPU tests read (src/test/resources/ort-1.24.1-cuda-kernels.tsv)."""
    rows = set()
    for op, dom, a, b, t in kernels(library):
        first = FIRST_TYPE.match(t).group(1) if t and FIRST_TYPE.match(t) else "*"
        rows.add((op, "ai.onnx" if dom == "kOnnxDomain" else "com.microsoft", a, b if b is not None else "*", first))
    with open(out, "w") as f:
        f.write("# ONNX Runtime 1.24.1 CUDA provider (bytedeco onnxruntime 1.24.1-1.5.13 linux-x86_64-gpu, the GPU kit's\n")
        f.write("# libonnxruntime_providers_cuda.so): its registered kernels, read off the library's symbols by\n")
        f.write("# tools/cuda_kernel_check.py --tsv. op, domain, first and last opset version (* = open), first type constraint (* = any)\n")
        for r in sorted(rows):
            f.write("\t".join(map(str, r)) + "\n")
    return len(rows)


def main(argv):
    if len(argv) == 4 and argv[1] == "--tsv":
        print(f"{write_tsv(argv[2], argv[3])} kernels written to {argv[3]}")
        return 0
    if len(argv) < 3:
        print(__doc__.strip().split("\n")[0])
        print("usage: cuda_kernel_check.py LIBONNXRUNTIME_PROVIDERS_CUDA.so MODEL.onnx [MODEL.onnx ...]")
        print("       cuda_kernel_check.py --tsv LIBONNXRUNTIME_PROVIDERS_CUDA.so OUT.tsv   (the table the CPU tests read)")
        return 2
    reg = registry(argv[1])
    bad = 0
    for path in argv[2:]:
        found, example = check(reg, path)
        for (op, reason), count in found.most_common():
            print(f"{path}: {count} x {op}: {reason} (e.g. {example[(op, reason)]})")
        bad += sum(found.values())
        if not found:
            print(f"{path}: every node has a CUDA kernel for its types")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
