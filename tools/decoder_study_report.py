#!/usr/bin/env python3
"""The decoder study's table (tools/gpu_decoder_study.sh): test perplexity per row, mean ± 95% t-interval over
seeds, beside the dense baselines (as pretrained; PEFT LoRA r=8), with the difference to LoRA and to the
sparsity-0 control. Standard library only; runs on the GPU machine and here on an unpacked raw.tgz:

    python3 tools/decoder_study_report.py RAW_FOLDER [--md tables.md]

RAW_FOLDER holds pretrain.json (tools/pretrain_gpt.py; optional) and one folder per gatecut job with
job.json (tag, variant, flags, sparsity, seed, exit, wall_seconds; or "skipped"), summary.json and
metrics.jsonl (gatecut's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

# Two-sided 95% quantiles of Student's t by degrees of freedom (1..30); above 30, 1.96 is close enough.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(xs):
    """(mean, half-width of the 95% t-interval; NaN for one value)."""
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    if n == 1:
        return m, math.nan
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return m, t * sd / math.sqrt(n)


def fmt_ci(xs, digits=2):
    m, h = mean_ci(xs)
    if math.isnan(m):
        return "—"
    return f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def eval_curve(path):
    """Test perplexity after each epoch (metrics.jsonl's eval rows, last one per epoch), by epoch."""
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r.get("eval") and "perplexity" in r:
                    out[r.get("epoch", len(out))] = r["perplexity"]
    except (OSError, ValueError):
        pass
    return [out[k] for k in sorted(out)]


def collect(raw):
    jobs, notes = [], []
    for name in sorted(os.listdir(raw)):
        d = os.path.join(raw, name)
        job = load_json(os.path.join(d, "job.json")) if os.path.isdir(d) else None
        if job is None:
            continue
        if "skipped" in job:
            notes.append(f"{job['tag']}: skipped ({job['skipped']})")
            continue
        s = load_json(os.path.join(d, "summary.json"))
        if job.get("exit") != 0 or not s or not isinstance(s.get("slim_eval_perplexity"), (int, float)):
            notes.append(f"{job['tag']}: exit {job.get('exit')}, no slim perplexity (see {name}/compress.log)")
            continue
        job["summary"] = s
        job["curve"] = eval_curve(os.path.join(d, "metrics.jsonl"))
        jobs.append(job)
    return jobs, notes


def rows_of(jobs):
    """[(label, sparsity, [jobs])]: the default recipe by sparsity, then each variant, in first-seen order."""
    groups = {}
    for j in jobs:
        groups.setdefault((j["variant"], j["sparsity"]), []).append(j)
    keys = sorted((k for k in groups if k[0] == "default"), key=lambda k: k[1])
    keys += [k for k in groups if k[0] != "default"]
    out = []
    for v, s in keys:
        label = "gatecut, default recipe" if v == "default" else f"gatecut [{v}]"
        if v == "default" and s == 0:
            label += " (control: nothing closed)"
        out.append((label, v, s, sorted(groups[(v, s)], key=lambda j: j["seed"])))
    return out


def report(raw):
    lines = []
    pre = load_json(os.path.join(raw, "pretrain.json"))
    jobs, notes = collect(raw)
    env = os.path.join(raw, "env.txt")
    if os.path.exists(env):
        lines += ["```", open(env, encoding="utf-8").read().strip(), "```", ""]

    lora = []
    dense_torch = dense_ort = math.nan
    if pre:
        d = pre.get("dense_untuned", {}).get("test", {})
        dense_torch, dense_ort = d.get("ppl_torch_fp32", math.nan), d.get("ppl_onnx_ort_cpu", math.nan)
        runs = pre.get("lora_seeds") or ([pre["lora"]] if "test_ppl_final" in pre.get("lora", {}) else [])
        lora = [r["test_ppl_final"] for r in runs if "test_ppl_final" in r]
        for r in runs:
            if "error" in r:
                notes.append(f"LoRA seed {r.get('seed')}: {r['error']}")
        p = pre.get("pretrain", {})
        lines.append(f"Base model: {pre.get('model', {}).get('parameters', '?')} parameters, pretrained "
                     f"{p.get('steps', '?')} steps in {p.get('seconds', '?')} s, kept step {p.get('best_step', '?')} "
                     f"(val ppl {p.get('val_ppl', math.nan):.2f}, train ppl {p.get('train_ppl', math.nan):.2f}).")
        lines.append("")
    else:
        notes.append("no pretrain.json: no dense / LoRA baselines from torch (pretraining skipped or failed)")
    gc_dense = [j["summary"]["dense_eval_perplexity"] for j in jobs
                if isinstance(j["summary"].get("dense_eval_perplexity"), (int, float))]
    lora_mean = mean_ci(lora)[0]
    control = [j["summary"]["slim_eval_perplexity"] for j in jobs if j["variant"] == "default" and j["sparsity"] == 0]
    control_mean = mean_ci(control)[0]

    lines.append("Test perplexity on *Persuasion* ch. 20–24 (lower is better): mean ± 95% t-interval over seeds "
                 "(one value: no interval). Δ: difference of the means.")
    lines.append("")
    lines.append("| model | S | seeds | test ppl | per seed | targeted kept | Δ vs LoRA | × LoRA | Δ vs control | train s |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")

    def delta(m, ref):
        return "—" if math.isnan(m) or math.isnan(ref) else f"{m - ref:+.2f}"

    def ratio(m, ref):
        return "—" if math.isnan(m) or math.isnan(ref) else f"{m / ref:.3f}"

    if not math.isnan(dense_ort):
        lines.append(f"| dense, as pretrained (ONNX Runtime; torch {dense_torch:.3f}) | 0 | — | {dense_ort:.2f} | — | 100% "
                     f"| {delta(dense_ort, lora_mean)} | {ratio(dense_ort, lora_mean)} | {delta(dense_ort, control_mean)} | — |")
    if gc_dense:
        m = mean_ci(gc_dense)[0]
        lines.append(f"| dense, as pretrained (gatecut's evaluator) | 0 | — | {m:.2f} | — | 100% | {delta(m, lora_mean)} "
                     f"| {ratio(m, lora_mean)} | {delta(m, control_mean)} | — |")
    if lora:
        lines.append(f"| dense + PEFT LoRA r=8 | 0 | {len(lora)} | {fmt_ci(lora)} | {', '.join(f'{x:.2f}' for x in lora)} "
                     f"| 100% | +0.00 | 1.000 | {delta(lora_mean, control_mean)} | — |")
    curves = []
    for label, v, s, js in rows_of(jobs):
        ppl = [j["summary"]["slim_eval_perplexity"] for j in js]
        kept = [j["summary"]["targeted_after"] / j["summary"]["targeted_before"] for j in js]
        train_s = [j["summary"].get("train_seconds", math.nan) for j in js]
        m = mean_ci(ppl)[0]
        seeds = ", ".join(f"{j['seed']}: {p:.2f}" for j, p in zip(js, ppl))
        lines.append(f"| {label} | {s:g} | {len(js)} | {fmt_ci(ppl)} | {seeds} | {100 * mean_ci(kept)[0]:.1f}% "
                     f"| {delta(m, lora_mean)} | {ratio(m, lora_mean)} | {delta(m, control_mean)} "
                     f"| {mean_ci(train_s)[0]:.1f} |")
        n = min((len(j["curve"]) for j in js), default=0)
        if n:
            curves.append((label, s, [mean_ci([j["curve"][e] for j in js])[0] for e in range(n)]))
    lines.append("")
    flags = sorted({(j["variant"], j.get("flags", "").strip()) for j in jobs if j["variant"] != "default"})
    if flags:
        lines.append("Variants (flags added to the default recipe): " + "; ".join(f"`{v}`: `{f}`" for v, f in flags) + ".")
        lines.append("")
    if curves:
        width = max(len(c[2]) for c in curves)
        lines.append("Test perplexity after each epoch (mean over seeds; watched, not used to choose):")
        lines.append("")
        lines.append("| model | S | " + " | ".join(f"ep {e + 1}" for e in range(width)) + " |")
        lines.append("|---|---|" + "---|" * width)
        for label, s, c in curves:
            lines.append(f"| {label} | {s:g} | " + " | ".join(f"{x:.2f}" for x in c) + " |" + " — |" * (width - len(c)))
        lines.append("")
    if notes:
        lines.append("Not in the table:")
        lines += [f"- {n}" for n in notes]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", help="the raw folder (tools/gpu_decoder_study.sh's $WORK/raw, or raw.tgz unpacked)")
    ap.add_argument("--md", help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.raw):
        print(f"decoder_study_report: error: {args.raw} is not a folder", file=sys.stderr)
        return 2
    text = report(args.raw)
    print(text)
    if args.md:
        tmp = args.md + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
