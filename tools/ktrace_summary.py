#!/usr/bin/env python3
"""Where does the GPU time of one `gatecut bench` go? Summarises ktrace files (tools/ktrace/ktrace.c).

    python3 tools/ktrace_summary.py --runs 25 NAME=trace.tsv [NAME=trace.tsv ...] [--json OUT]

Each trace holds one model's warm-up and timed runs (one model per `gatecut bench` call), so per-run
figures are totals divided by --runs (warm-up + timed runs). Prints, per model: GPU kernel time and
kernel count per run by category (GEMM, attention products, softmax, normalisation, element-wise,
data movement, ...), memory copies per run by direction, and the busy time of the GPU per run (union of
all intervals). With several models, a side-by-side table gives each category's share and how much it
shrank against the first model.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict

# First match wins; patterns are matched against the demangled (or raw) kernel name, case-insensitively.
CATEGORIES = [
    ("gemm", r"gemm|xmma|cutlass|cublas|gemv|splitkreduce|sm90_|sm80_|ampere_|matmul"),
    ("softmax", r"softmax"),
    ("norm", r"layernorm|layer_norm|rmsnorm|skiplayernorm|simplifiedlayernorm"),
    ("rotary", r"rotary"),
    ("transpose", r"transpose"),
    ("reduce", r"reduce|reduction"),
    ("gather/slice/concat", r"gather|slice|concat|split|scatter|pad\b|_pad"),
    ("expand/where/cast", r"expand|where|cast|tile\b|range"),
    ("copy", r"copy|memcpy|identity"),
    ("elementwise", r"elementwise|binary|unary|_impl|fast_gelu|gelu|biasgelu|variadic|bias|erf|tanh|sigmoid|silu|mul|add|div|sub|pow|sqrt|neg|sin|cos"),
]
# Coarse kinds for "where does the time that does not shrink go" (--kinds table): matrix products,
# attention's own kernels (softmax; its Q.K^T and P.V products are GEMMs), norms, element-wise work,
# and data movement (transposes, gathers, casts, copies).
KINDS = {"gemm": "GEMM", "softmax": "attention softmax", "norm": "norm", "rotary": "element-wise",
         "elementwise": "element-wise", "reduce": "element-wise", "transpose": "data movement",
         "gather/slice/concat": "data movement", "expand/where/cast": "data movement", "copy": "data movement"}
COPY_KINDS = {1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA", 6: "AtoD", 7: "DtoA", 8: "DtoD", 9: "HtoH", 10: "PtoP"}


def demangle(names):
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    res = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True)
    out = res.stdout.split("\n")
    return {n: (out[i] if i < len(out) and out[i] else n) for i, n in enumerate(names)}


def category(name):
    low = name.lower()
    for cat, pattern in CATEGORIES:
        if re.search(pattern, low):
            return cat
    return "other"


def summarise(path, runs):
    kernels = defaultdict(lambda: [0, 0.0])  # raw name -> [count, ns]
    copy_records = []  # (start, end, bytes, kind)
    kernel_intervals = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "K" and len(parts) >= 4:
                s, e = int(parts[1]), int(parts[2])
                k = kernels[parts[3]]
                k[0] += 1
                k[1] += e - s
                kernel_intervals.append((s, e))
            elif parts[0] == "M" and len(parts) >= 5:
                copy_records.append((int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])))
    # Runs start with the first kernel: copies before it are the session start (initializer uploads).
    first = min((s for s, _ in kernel_intervals), default=0)
    copies = defaultdict(lambda: [0, 0.0, 0])  # kind -> [count, ns, bytes]
    intervals = list(kernel_intervals)
    for s, e, b, kind in copy_records:
        if s < first:
            continue
        c = copies[COPY_KINDS.get(kind, str(kind))]
        c[0] += 1
        c[1] += e - s
        c[2] += b
        intervals.append((s, e))
    names = demangle(list(kernels))
    cats = defaultdict(lambda: [0, 0.0])
    top = []
    for raw, (count, ns) in kernels.items():
        name = names[raw]
        cat = category(name)
        cats[cat][0] += count
        cats[cat][1] += ns
        top.append((ns, count, cat, name))
    top.sort(reverse=True)
    busy = 0  # union of all kernel and copy intervals of the runs
    end = -1
    for s, e in sorted(intervals):
        if e > end:
            busy += e - max(s, end)
            end = e
    return {
        "file": path,
        "runs": runs,
        "kernelMsPerRun": sum(v[1] for v in cats.values()) / runs / 1e6,
        "kernelsPerRun": sum(v[0] for v in cats.values()) / runs,
        "categories": {c: {"msPerRun": v[1] / runs / 1e6, "perRun": v[0] / runs} for c, v in
                       sorted(cats.items(), key=lambda kv: -kv[1][1])},
        "copies": {k: {"msPerRun": v[1] / runs / 1e6, "perRun": v[0] / runs, "mbPerRun": v[2] / runs / 1e6}
                   for k, v in copies.items()},
        "busyMsPerRun": busy / runs / 1e6,
        "top": [{"name": n[:160], "category": c, "perRun": cnt / runs, "usPerRun": ns / runs / 1e3}
                for ns, cnt, c, n in top[:25]],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+", help="NAME=trace.tsv (the first is the baseline)")
    ap.add_argument("--runs", type=int, required=True, help="session runs in each trace (warm-up + timed)")
    ap.add_argument("--json", help="also write the summaries as JSON here")
    args = ap.parse_args()
    results = []
    for t in args.traces:
        name, _, path = t.partition("=")
        if not path:
            name, path = t, t
        r = summarise(path, args.runs)
        r["name"] = name
        results.append(r)
        print(f"## {name}: {r['kernelsPerRun']:.0f} kernels/run, kernel time {r['kernelMsPerRun']:.3f} ms/run, "
              f"GPU busy {r['busyMsPerRun']:.3f} ms/run")
        for c, v in r["copies"].items():
            print(f"   copy {c}: {v['perRun']:.1f}/run, {v['msPerRun']:.3f} ms/run, {v['mbPerRun']:.1f} MB/run")
        for c, v in r["categories"].items():
            print(f"   {c:22s} {v['msPerRun']:8.3f} ms/run  {v['perRun']:6.0f} kernels/run")
        print("   top kernels (us/run, launches/run, category, name):")
        for k in r["top"][:12]:
            print(f"     {k['usPerRun']:9.1f}  {k['perRun']:5.0f}  {k['category']:12s} {k['name'][:110]}")
    if len(results) > 1:
        base = results[0]
        cats = list(base["categories"])
        for r in results[1:]:
            cats += [c for c in r["categories"] if c not in cats]
        print()
        print("| category | " + " | ".join(r["name"] + " ms/run" for r in results) + " | "
              + " | ".join(r["name"] + " / " + base["name"] for r in results[1:]) + " |")
        print("|---" * (1 + 2 * len(results) - 1) + "|")
        rows = cats + ["all kernels", "GPU busy"]
        for c in rows:
            def ms(r):
                if c == "all kernels":
                    return r["kernelMsPerRun"]
                if c == "GPU busy":
                    return r["busyMsPerRun"]
                return r["categories"].get(c, {}).get("msPerRun", 0.0)
            b = ms(base)
            print(f"| {c} | " + " | ".join(f"{ms(r):.3f}" for r in results) + " | "
                  + " | ".join((f"{ms(r) / b:.2f}" if b > 0 else "-") for r in results[1:]) + " |")
    if len(results) > 1:
        kinds = ["GEMM", "attention softmax", "norm", "element-wise", "data movement", "other", "memcpy"]
        print()
        print("| kind | " + " | ".join(r["name"] + " ms/run" for r in results) + " | "
              + " | ".join(r["name"] + " / " + base["name"] for r in results[1:]) + " | share of "
              + results[-1]["name"] + " |")
        print("|---" * (2 + 2 * len(results) - 1) + "|")

        def kind_ms(r, k):
            if k == "memcpy":   # cudaMemcpy records (not kernels) during the runs
                return sum(v["msPerRun"] for v in r["copies"].values())
            if k == "all":
                return r["kernelMsPerRun"] + kind_ms(r, "memcpy")
            return sum(v["msPerRun"] for c, v in r["categories"].items() if KINDS.get(c, "other") == k)
        last = results[-1]
        for k in kinds + ["all"]:
            b = kind_ms(base, k)
            total = kind_ms(last, "all")
            print(f"| {k} | " + " | ".join(f"{kind_ms(r, k):.3f}" for r in results) + " | "
                  + " | ".join((f"{kind_ms(r, k) / b:.2f}" if b > 0 else "-") for r in results[1:])
                  + f" | {kind_ms(last, k) / total if total > 0 else 0:.0%} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
