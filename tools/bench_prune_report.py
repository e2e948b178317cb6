#!/usr/bin/env python3
"""Turn the raw files of tools/gpu_bench_prune.sh into one markdown report.

    python3 tools/bench_prune_report.py RAW_DIR [--title TEXT] > bench-prune.md

RAW_DIR holds bench-NAME-bB-sS.json (`gatecut bench --json`: the dense model first, then compiled
models NAME-sSPARSITY.onnx), flops-NAME.json (tools/flops.py --json over the same files and shapes)
and optionally prune-NAME-sSPARSITY.log.  speedup = dense median / compiled median (ms);
ideal = dense FLOPs / compiled FLOPs (all MatMul/Gemm products at that batch and sequence).
"""

import argparse
import glob
import json
import os
import re
import sys


def load_json(path):
    with open(path) as f:
        return json.load(f)


def sparsity_of(path, dense_name):
    m = re.search(re.escape(dense_name) + r"-s([0-9.]+)\.onnx$", os.path.basename(path))
    return m.group(1) if m else None


KEPT_LINE = re.compile(r"^(?:attn|ffn)\S*\s+(\S+)\s+(\d+/\d+ (?:heads(?: \(\d+/\d+ KV groups\))?|channels))")


def kept_summary(log_path):
    """'FFN 2176/3072, 8/12 heads' from a `gatecut prune` log: the kept widths per group kind, each
    value once (with the number of groups when the layers differ)."""
    try:
        lines = open(log_path).read().splitlines()
    except OSError:
        return None
    by_kind = {}
    for line in lines:
        m = KEPT_LINE.match(line)
        if m:
            kind, kept = m.group(1), m.group(2).replace(" channels", "")
            by_kind.setdefault(kind, []).append(kept)
    if not by_kind:
        return None
    parts = []
    for kind in sorted(by_kind, key=lambda k: (not k.startswith("ffn"), k)):
        values = by_kind[kind]
        distinct = sorted(set(values), key=values.index)
        label = "FFN " if kind.startswith("ffn") else ""
        if len(distinct) == 1:
            parts.append(label + distinct[0])
        else:
            parts.append(label + " / ".join(f"{v} ({values.count(v)}x)" for v in distinct))
    return ", ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--title", default="gatecut prune: compiled vs dense latency on ONNX Runtime CUDA")
    args = ap.parse_args(argv)

    flops = {}    # (basename, batch, seq) -> row
    for f in sorted(glob.glob(os.path.join(args.raw, "flops-*.json"))):
        try:
            for r in load_json(f):
                flops[(os.path.basename(r["model"]), r["batch"], r["sequence"])] = r
        except (ValueError, OSError) as e:
            print(f"<!-- could not read {f}: {e} -->")

    rows, params, notes = [], {}, []
    for f in sorted(glob.glob(os.path.join(args.raw, "bench-*.json"))):
        m = re.match(r"bench-(.+)-b(\d+)-s(\d+)\.json$", os.path.basename(f))
        if not m:
            continue
        name, batch, seq = m.group(1), int(m.group(2)), int(m.group(3))
        try:
            report = load_json(f)
        except (ValueError, OSError) as e:
            notes.append(f"{os.path.basename(f)}: unreadable ({e})")
            continue
        models = report["models"]
        dense = models[0]
        dense_base = os.path.basename(dense["file"])
        params[dense_base] = dense["parameters"]
        for c in models[1:]:
            base = os.path.basename(c["file"])
            params[base] = c["parameters"]
            sp = sparsity_of(c["file"], name)
            fd = flops.get((dense_base, batch, seq))
            fc = flops.get((base, batch, seq))
            ideal = fd["total"] / fc["total"] if fd and fc and fc["total"] else None
            ideal_linear = fd["linear"] / fc["linear"] if fd and fc and fc["linear"] else None
            speedup = dense["medianMs"] / c["medianMs"]
            kept = kept_summary(os.path.join(args.raw, f"prune-{name}-s{sp}.log")) if sp else None
            rows.append(dict(model=name, sparsity=sp or base, kept=kept or "?", batch=batch, seq=seq,
                             dense=dense["medianMs"],
                             compiled=c["medianMs"], dense_p90=dense["p90Ms"], compiled_p90=c["p90Ms"],
                             speedup=speedup, ideal=ideal, ideal_linear=ideal_linear,
                             runs=report.get("runs"), device=report.get("device")))

    def key(r):
        return (r["model"], str(r["sparsity"]), r["batch"], r["seq"])

    rows.sort(key=key)
    out = [f"# {args.title}", ""]
    out.append("Median of `gatecut bench --device cuda` timed runs (session.run wall clock, inputs uploaded "
               "and outputs downloaded each run; ONNX Runtime CUDA EP defaults, so fp32 MatMuls run as TF32). "
               "ideal = dense FLOPs / compiled FLOPs over every MatMul/Gemm (tools/flops.py).")
    out.append("")
    out.append("| model | sparsity | kept (per layer) | batch | seq | dense ms | compiled ms | speedup | ideal | "
               "speedup/ideal |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ideal = f"{r['ideal']:.2f}x" if r["ideal"] else "n/a"
        frac = f"{r['speedup'] / r['ideal']:.2f}" if r["ideal"] else "n/a"
        out.append(f"| {r['model']} | {r['sparsity']} | {r['kept']} | {r['batch']} | {r['seq']} | {r['dense']:.3f} | "
                   f"{r['compiled']:.3f} | {r['speedup']:.2f}x | {ideal} | {frac} |")
    out.append("")
    out.append("Detail: p90 latencies, timed runs, and the ideal speedup of the linear layers alone.")
    out.append("")
    out.append("| model | sparsity | batch | seq | dense p90 ms | compiled p90 ms | runs | ideal (linear only) |")
    out.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        il = f"{r['ideal_linear']:.2f}x" if r["ideal_linear"] else "n/a"
        out.append(f"| {r['model']} | {r['sparsity']} | {r['batch']} | {r['seq']} | {r['dense_p90']:.3f} | "
                   f"{r['compiled_p90']:.3f} | {r['runs']} | {il} |")
    out.append("")
    if params:
        out.append("| file | parameters |")
        out.append("|---|---|")
        for base in sorted(params):
            out.append(f"| {base} | {params[base]:,} |")
        out.append("")
    prune_logs = sorted(glob.glob(os.path.join(args.raw, "prune-*.log")))
    failed = [os.path.basename(p) for p in prune_logs if os.path.exists(p + ".failed")]
    if failed:
        notes.append("prune failed: " + ", ".join(failed) + " (see the raw logs)")
    if not rows:
        notes.append("no benchmark results")
    for n in notes:
        out.append(f"- {n}")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
