#!/usr/bin/env python3
"""How much does a pruned layer's width cost off a nice multiple?  An fp32 GEMM sweep on CUDA.

gatecut deletes channels, so compiled linear layers get widths like 2071 instead of 3072.  cuBLAS
is fastest when the dimensions are multiples of some power of two; this measures by how much, to
choose the default rounding multiple of kept widths (`--align`, e.g. 8, 16, 32, 64, 128).

For y[T, N] = x[T, K] @ W[K, N] (row-major, as ONNX Runtime's MatMul with a [in, out] weight; ORT
folds [B, S, K] to [B*S, K]):
  sweep N   (a producer's kept output rows: FFN up/gate, Q/K/V):  K = 768, N varies
  sweep K   (a consumer's kept input columns: FFN down, O-proj):   N = 768, K varies
each at T (tokens = batch x sequence) in {128, 4096, 16384}, in fp32 with TF32 on (what ONNX
Runtime's CUDA EP does by default: use_tf32 = 1) and off (IEEE fp32).  Widths: every value from
2048 to 2176 (fine) plus 1536..3072 in steps of 64 with offsets +0, +8, +16, +32 (coarse).

Timing: CUDA events around each product, the L2 cache flushed before each (a real model reads
each weight once per forward), median of several runs after a warm-up; random normal data, no
allocation inside the loop.

Reported: time per useful FLOP (2*T*K*N) relative to the best width of the same sweep; and, for
each rounding multiple m, the mean and worst time of a width rounded up to a multiple of m over
the time of the best width >= it ("slowdown vs oracle padding"): the smallest m whose mean is
~1.00 is the one to use.

    python3 tools/align_sweep.py [--out DIR] [--max-seconds 110] [--quick]

Prints the tables (markdown) and writes DIR/align-sweep.csv and DIR/align-sweep.md.
"""

import argparse
import csv
import math
import os
import statistics
import sys
import time

TOKENS = (128, 4096, 16384)
FIXED = 768
FINE = list(range(2048, 2177))
COARSE = sorted({base + off for base in range(1536, 3073, 64) for off in (0, 8, 16, 32) if base + off <= 3072})
MULTIPLES = (1, 2, 4, 8, 16, 32, 64, 128)


def set_tf32(torch, on):
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        m.fp32_precision = "tf32" if on else "ieee"
    else:
        m.allow_tf32 = on


class Bench:
    def __init__(self, torch, max_width, flush_mb=256):
        self.torch = torch
        dev = torch.device("cuda")
        g = torch.Generator(device=dev).manual_seed(0)
        max_t = max(TOKENS)
        self.x = torch.randn(max_t * max_width, device=dev, generator=g)
        self.w = torch.randn(max_width * max_width, device=dev, generator=g)
        self.y = torch.empty(max_t * max_width, device=dev)
        self.flush = torch.empty(flush_mb * 1024 * 1024 // 4, device=dev)

    def time(self, t, k, n, reps):
        torch = self.torch
        x = self.x[: t * k].view(t, k)
        w = self.w[: k * n].view(k, n)
        y = self.y[: t * n].view(t, n)
        for _ in range(2):
            torch.matmul(x, w, out=y)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self.flush.zero_()
            starts[i].record()
            torch.matmul(x, w, out=y)
            ends[i].record()
        torch.cuda.synchronize()
        return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))   # ms


def reps_for(t, k, n, tf32):
    flop = 2.0 * t * k * n
    est_ms = flop / ((300e12 if tf32 else 45e12)) * 1e3
    return 7 if est_ms > 0.5 else 11 if est_ms > 0.05 else 21


def run(args):
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not available")
    widths = FINE + [w for w in COARSE if w not in FINE]
    if args.quick:
        widths = sorted(set(range(2048, 2177, 4)) | {1536, 2048, 2560, 3072, 2055})
    bench = Bench(torch, max(widths))
    started = time.time()
    rows = []
    for tf32 in (True, False):
        set_tf32(torch, tf32)
        for sweep in ("N", "K"):
            for t in TOKENS:
                for width in widths:
                    if time.time() - started > args.max_seconds:
                        print(f"time budget of {args.max_seconds} s reached; results are partial", flush=True)
                        return rows, time.time() - started, True
                    k, n = (FIXED, width) if sweep == "N" else (width, FIXED)
                    ms = bench.time(t, k, n, reps_for(t, k, n, tf32))
                    rows.append(dict(tf32=tf32, sweep=sweep, tokens=t, width=width, k=k, n=n, ms=ms,
                                     tflops=2.0 * t * k * n / (ms * 1e-3) / 1e12))
                print(f"  tf32={'on' if tf32 else 'off'} sweep {sweep}: done ({time.time() - started:.0f} s)",
                      flush=True)
    # Noise: the same points again at the end.
    set_tf32(torch, True)
    for r in rows:
        if r["tf32"] and r["sweep"] == "N" and r["width"] in (2048, 2049, 2176):
            r["ms_again"] = bench.time(r["tokens"], r["k"], r["n"], reps_for(r["tokens"], r["k"], r["n"], True))
    return rows, time.time() - started, False


def group(rows, tf32, sweep, t):
    return {r["width"]: r for r in rows if r["tf32"] == tf32 and r["sweep"] == sweep and r["tokens"] == t}


def per_flop(r):
    return r["ms"] / r["width"]   # the other two dims are fixed inside a group


def tables(rows):
    out = []
    combos = [(tf32, sweep) for tf32 in (True, False) for sweep in ("N", "K")]
    # 1. Rounding-multiple summary.
    out.append("### Rounding a width up to a multiple of m: time over the best padding (fine sweep 2048..2176)\n")
    out.append("Each cell: mean / worst over widths w in 2049..2176 of t(ceil_m(w)) / min over w' >= w of t(w'); "
               "1.00 = as fast as the best width you could have padded to.\n")
    head = "| precision | sweep | T | " + " | ".join(f"m={m}" for m in MULTIPLES) + " |"
    out.append(head)
    out.append("|" + "---|" * (3 + len(MULTIPLES)))
    summary = {}
    for tf32, sweep in combos:
        for t in TOKENS:
            g = group(rows, tf32, sweep, t)
            fine = [w for w in FINE if w in g]
            if len(fine) < 2:
                continue
            top = max(fine)
            oracle = {w: min(g[v]["ms"] for v in fine if v >= w) for w in fine}
            cells = []
            for m in MULTIPLES:
                ratios = []
                for w in fine:
                    if w == fine[0]:
                        continue
                    up = math.ceil(w / m) * m
                    if up > top or up not in g:
                        continue
                    ratios.append(g[up]["ms"] / oracle[w])
                if ratios:
                    summary[(tf32, sweep, t, m)] = (statistics.mean(ratios), max(ratios))
                    cells.append(f"{statistics.mean(ratios):.3f} / {max(ratios):.2f}")
                else:
                    cells.append("-")
            out.append(f"| {'tf32' if tf32 else 'fp32'} | {sweep} | {t} | " + " | ".join(cells) + " |")
    out.append("")
    # 2. By residue class in the fine range: time per useful FLOP relative to the best width.
    out.append("### Time per useful FLOP relative to the best width, by alignment class (fine sweep 2048..2176)\n")
    out.append("Class = largest power of two (up to 128) dividing the width; cells: median (worst).\n")
    classes = [128, 64, 32, 16, 8, 4, 2, 1]
    out.append("| precision | sweep | T | best TFLOP/s | " + " | ".join(f"{c}" for c in classes) + " |")
    out.append("|" + "---|" * (4 + len(classes)))
    for tf32, sweep in combos:
        for t in TOKENS:
            g = group(rows, tf32, sweep, t)
            fine = [w for w in FINE if w in g]
            if not fine:
                continue
            best = min(per_flop(g[w]) for w in fine)
            cells = []
            for c in classes:
                ws = [w for w in fine if (w & -w if w & -w <= 128 else 128) == c]
                if not ws:
                    cells.append("-")
                    continue
                rel = [per_flop(g[w]) / best for w in ws]
                cells.append(f"{statistics.median(rel):.2f} ({max(rel):.2f})")
            out.append(f"| {'tf32' if tf32 else 'fp32'} | {sweep} | {t} | "
                       f"{max(g[w]['tflops'] for w in fine):.0f} | " + " | ".join(cells) + " |")
    out.append("")
    # 3. Coarse sweep: per-FLOP time relative to the best in each column.
    out.append("### Coarse sweep 1536..3072: time per useful FLOP relative to the column's best\n")
    cols = [(tf32, sweep, t) for tf32, sweep in combos for t in TOKENS]
    out.append("| width | " + " | ".join(f"{'tf32' if a else 'fp32'} {s} T={t}" for a, s, t in cols) + " |")
    out.append("|" + "---|" * (1 + len(cols)))
    bests = {}
    for col in cols:
        g = group(rows, *col)
        ws = [w for w in COARSE if w in g]
        bests[col] = min(per_flop(g[w]) for w in ws) if ws else None
    for w in COARSE:
        cells = []
        for col in cols:
            g = group(rows, *col)
            cells.append(f"{per_flop(g[w]) / bests[col]:.2f}" if w in g and bests[col] else "-")
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    out.append("")
    # 4. Noise.
    again = [r for r in rows if "ms_again" in r]
    if again:
        out.append("### Repeatability (tf32, sweep N, measured again at the end)\n")
        out.append("| T | width | ms | ms again |")
        out.append("|---|---|---|---|")
        for r in again:
            out.append(f"| {r['tokens']} | {r['width']} | {r['ms']:.4f} | {r['ms_again']:.4f} |")
        out.append("")
    return "\n".join(out), summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--max-seconds", type=float, default=110)
    ap.add_argument("--quick", action="store_true", help="every 4th width only")
    args = ap.parse_args(argv)
    import torch
    name = torch.cuda.get_device_name(0)
    print(f"device {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, cuBLAS via torch.matmul",
          flush=True)
    rows, seconds, partial = run(args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "align-sweep.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["tf32", "sweep", "tokens", "width", "k", "n", "ms", "tflops", "ms_again"])
        wr.writeheader()
        for r in rows:
            wr.writerow(r)
    text, _ = tables(rows)
    header = (f"device: {name}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
              f"{len(rows)} GEMMs timed in {seconds:.0f} s{' (PARTIAL: time budget reached)' if partial else ''}\n")
    with open(os.path.join(args.out, "align-sweep.md"), "w") as f:
        f.write(header + "\n" + text)
    print(header)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
