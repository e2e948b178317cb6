#!/usr/bin/env python3
"""How fast can a pruned model get if only its matrix products counted? (gatecut issue 15)

The ideal speedup that the benchmarks quote is a FLOP ratio (dense / slim matrix-product FLOPs). A GPU does
not turn FLOPs into time linearly: a narrower product fills fewer tiles and waves of the chip, and small ones
are bound by memory or by launch latency. This tool measures that ceiling directly: it takes every matrix
product of each model at a (batch, sequence) size — exactly the shapes tools/flops.py probes, the same
batch counts, M, K and N — and times that sequence of products alone with torch on the GPU in the model's
precision (cuBLAS, as ONNX Runtime's CUDA provider uses), replayed as one CUDA graph so that launch gaps do
not count. Dense / slim of those times is the GEMM ceiling: what a perfect runtime, whose only cost is the
matrix products, would reach. Non-GEMM work that does not shrink (full-width norms, residual adds,
activations over kept channels) can only pull the real ratio further below it.

    python3 tools/gemm_ceiling.py DENSE.onnx SLIM.onnx [SLIM2.onnx ...] --shapes 32x128,64x256,1x128 \
        [--dtype float16] [--json OUT.json]

Prints one markdown row per (model, shape): GEMM ms (graph replay), the FLOP ratio (ideal), the GEMM ratio,
and GEMM ratio / ideal. The first model is the reference. Needs torch with CUDA (the GPU machine).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flops  # noqa: E402


def products(counter, batch, seq):
    """(batch_count, M, K, N) of every counted matrix product, in graph order."""
    shapes = []
    for p in counter.products:
        if isinstance(p, flops.FusedAttention):
            b, s, h = (d.at(batch, seq) for d in p.x)
            q, k, v = p.qkv
            shapes.append((1, b * s, h, q + k + v))   # the packed projection
            heads = max(1, q // 64)                    # Q.K^T and P.V inside the op, timed as batched products
            shapes.append((b * heads, s, q // heads, s))   # of 64-wide heads (the op's own kernels may differ)
            shapes.append((b * heads, s, s, v // heads))
            continue
        count, m, k, n, batched_b = p.operands(batch, seq)
        if batched_b:
            shapes.append((count, m, k, n))
        else:   # a weight (or a broadcast operand): one [count*M, K] x [K, N] product
            shapes.append((1, count * m, k, n))
    return shapes


def time_products(shapes, dtype, reps, torch):
    """Milliseconds per pass over `shapes`, (eager, CUDA-graph replay)."""
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    operands = {}
    for shape in set(shapes):
        c, m, k, n = shape
        x = torch.randn((c, m, k) if c > 1 else (m, k), generator=gen, device=dev, dtype=dtype)
        w = torch.randn((c, k, n) if c > 1 else (k, n), generator=gen, device=dev, dtype=dtype)
        out = torch.empty((c, m, n) if c > 1 else (m, n), device=dev, dtype=dtype)
        operands[shape] = (x, w, out)

    def one_pass():
        for shape in shapes:
            x, w, out = operands[shape]
            torch.matmul(x, w, out=out)

    for _ in range(3):
        one_pass()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        one_pass()
    end.record()
    torch.cuda.synchronize()
    eager = start.elapsed_time(end) / reps

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            one_pass()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        one_pass()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    best = None
    for _ in range(3):   # best of three batches of replays: other work on the chip only adds time
        start.record()
        for _ in range(reps):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        t = start.elapsed_time(end) / reps
        best = t if best is None else min(best, t)
    del graph, operands
    torch.cuda.empty_cache()
    return eager, best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="dense model first, then compiled ones")
    ap.add_argument("--shapes", default="32x128,64x256,1x128")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("gemm_ceiling: needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    counters = [flops.count(m) for m in args.models]
    rows = []
    print("| model | batch x seq | products | linear GFLOP | GEMM ms (eager) | GEMM ms (graph) | ideal (FLOPs) |"
          " GEMM ratio | of ideal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, seq in flops.parse_shapes(args.shapes):
        ref = None
        for counter in counters:
            shapes = products(counter, batch, seq)
            total = counter.at(batch, seq)["total"]
            eager, graph = time_products(shapes, dtype, args.reps, torch)
            if ref is None:
                ref = (total, graph)
            ideal = ref[0] / total
            ratio = ref[1] / graph
            row = {"model": counter.path, "batch": batch, "sequence": seq, "products": len(shapes),
                   "flops": total, "eager_ms": eager, "graph_ms": graph, "ideal": ideal, "gemm_ratio": ratio,
                   "of_ideal": ratio / ideal}
            rows.append(row)
            print(f"| {os.path.basename(counter.path)} | {batch}x{seq} | {len(shapes)} | {total / 1e9:.1f} |"
                  f" {eager:.3f} | {graph:.3f} | {ideal:.2f} | {ratio:.2f} | {ratio / ideal:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
