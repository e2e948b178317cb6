#!/usr/bin/env python3
"""Tables of the evaluation harness (tools/gpu_eval_harness.sh) from its raw folder.

    python3 tools/eval_harness_report.py RAW [--json SUMMARY.json]

RAW holds env.txt and one folder per data set with py.json (tools/eval_harness.py),
gc-s<S>-<mode>/{summary.json, metrics.jsonl, gpumem.log, trainable.json, compress.log},
flops.json (tools/flops.py --json) and bench-b<B>-s<Q>.json (gatecut bench --json).
Prints one markdown table per data set and the verdict against the targets at 30% removed:
accuracy >= LoRA - 0.5 points, compiled speedup >= 0.85 x ideal, training samples/s >= LoRA's.
Standard library only.
"""

import glob
import json
import os
import statistics
import sys


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def gc_runs(d):
    runs = []
    for sub in sorted(glob.glob(os.path.join(d, "gc-s*"))):
        name = os.path.basename(sub)
        if name.endswith("-failed-auto"):
            continue
        s = load(os.path.join(sub, "summary.json"))
        r = dict(tag=name, dir=sub, summary=s)
        parts = name[len("gc-s"):].split("-", 1)
        r["target"], r["mode"] = float(parts[0]), parts[1]
        rows = []
        try:
            rows = [json.loads(l) for l in open(os.path.join(sub, "metrics.jsonl")) if l.strip()]
        except OSError:
            pass
        steps = [x for x in rows if "samples_per_s" in x]   # not the evaluation (or --watch) rows
        rates = [x["samples_per_s"] for x in steps[1:]] or [x["samples_per_s"] for x in steps]
        if rates:
            r["sps_median"], r["sps_min"], r["sps_max"] = statistics.median(rates), min(rates), max(rates)
        r["evals"] = [x for x in rows if x.get("eval")]
        mem = []
        try:
            mem = [int(l.strip()) for l in open(os.path.join(sub, "gpumem.log")) if l.strip().isdigit()]
        except OSError:
            pass
        if mem:
            r["mem_peak"], r["mem_first"] = max(mem), mem[0]
        t = load(os.path.join(sub, "trainable.json"), {}) or {}
        pj, gj, ck = t.get("run/params.json"), t.get("run/gates.raw.json"), t.get("run/checkpoint.json")
        if isinstance(pj, dict) and isinstance(gj, dict):
            r["trainable"] = pj["values"] + gj["values"]   # biases of gated layers + head, and the gates
        elif isinstance(ck, dict):
            r["trainable"] = ck["values"]
        log = ""
        try:
            log = open(os.path.join(sub, "compress.log")).read()
        except OSError:
            pass
        r["backend"] = next((l.split(":", 1)[1].strip() for l in log.splitlines() if l.startswith("backend:")), "?")
        r["exit"] = next((l for l in log.splitlines() if l.startswith("# exit:")), "# exit: ?")[2:]
        r["kept"] = [l for l in log.splitlines() if l.startswith(("attn:", "ffn:", "rows:", "cols:", "layer"))]
        runs.append(r)
    return runs


def bench(d):
    """{basename: {batch: (median ms, speedup vs first)}} and the A/A ratio per batch."""
    out, aa = {}, {}
    for f in sorted(glob.glob(os.path.join(d, "bench-b*-s*.json"))):
        b = load(f)
        if not b:
            continue
        batch = b["batch"]
        models = b["models"]
        base = models[0]["medianMs"]
        seen = set()
        for i, m in enumerate(models):
            name = os.path.basename(m["file"])
            if name in seen:
                aa[batch] = base / m["medianMs"]
                continue
            seen.add(name)
            out.setdefault(name, {})[batch] = (m["medianMs"], base / m["medianMs"], m.get("p90Ms"))
    return out, aa


def flops(d):
    rows = load(os.path.join(d, "flops.json"), []) or []
    res = {}
    for r in rows:
        res.setdefault(os.path.basename(r["model"]), {})[r["batch"]] = r["total"]
    return res


def fmt_int(n):
    return "–" if n is None else f"{n:,}"


def pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def f1(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def dataset_table(ds, d, lines, verdicts):
    py = load(os.path.join(d, "py.json"), {}) or {}
    gcs = gc_runs(d)
    lat, aa = bench(d)
    fl = flops(d)
    dense_name = "all-minilm-l6-v2.onnx"
    dense_lat = lat.get(dense_name, {})
    data = py.get("data", {})
    lines.append(f"### {ds}")
    lines.append("")
    if data:
        lines.append(f"- data: {data.get('train_rows')} train / {data.get('test_rows')} test rows, labels "
                     f"{data.get('test_label_counts')} in test (majority-class accuracy "
                     f"{data.get('majority_accuracy', 0):.3f}); mean {data.get('mean_train_tokens', 0):.1f} tokens per "
                     f"training row, {data.get('train_rows_at_max_len')} rows at the {py.get('max_len')}-token cap")
    chk = py.get("onnx_check")
    if chk:
        lines.append(f"- PyTorch ({chk['impl']}) vs ONNX Runtime {chk.get('ort_version')} (CPU), last_hidden_state on "
                     f"{chk['rows']} test rows x {chk['seq']} tokens: max |diff| {chk['max_abs_diff']:.2e} over real "
                     f"tokens (values up to {chk['max_abs_ref']:.2f})")
    if aa:
        lines.append("- batch-1 A/A control (dense timed twice): " + ", ".join(f"b{b}: {v:.3f}x" for b, v in aa.items()))
    lines.append("")
    hdr = ("| method | lr | target | mode | accuracy | encoder params (inference) | removed of targeted | trainable | "
           "train samples/s median (min–max) | peak GPU MiB (NVML/nvidia-smi; torch alloc) | ORT CUDA b1 ms (speedup) | "
           "b32 ms (speedup) | ideal b1 / b32 | speedup/ideal b32 |")
    lines.append(hdr)
    lines.append("|" + "---|" * hdr.count(" | ") + "---|")
    d_b1 = dense_lat.get(1, (None, None, None))[0]
    d_b32 = dense_lat.get(32, (None, None, None))[0]
    lat_dense = f"{f1(d_b1, 3)} (1.00x)" if d_b1 else "–"
    lat_dense32 = f"{f1(d_b32, 3)} (1.00x)" if d_b32 else "–"
    extra = (py.get("config") or {}).get("onnx_extra_params", 0)

    def enc_params(r, n):  # encoder parameters as gatecut counts them (ONNX initializers, no head)
        return None if n is None else n - r.get("head_params", 0) + extra
    lora_ref = None
    lora_best = None
    for r in py.get("runs", []):
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['spec']} | | | | {'FAILED: ' + r['error'] if 'error' in r else 'skipped (' + r['skipped'] + ')'} |"
                         + " |" * 9)
            continue
        m = r["method"]
        if m == "lora":
            if lora_ref is None and abs(r["lr"] - 1e-3) < 1e-12:
                lora_ref = r
            if lora_best is None or r["accuracy"] > lora_best["accuracy"]:
                lora_best = r
        mem = f"{f1(r.get('nvml_peak_mib'), 0)}; {f1(r.get('peak_allocated_mib'), 0)}"
        sps = f"{r['samples_per_s_median']:.0f} ({r['samples_per_s_min']:.0f}–{r['samples_per_s_max']:.0f})"
        name = {"dense": "dense frozen + head", "lora": f"LoRA r=8 + head{'' if r.get('peft_version') else ' (built-in)'}",
                "fgref": "FineGates PyTorch ref."}[m]
        if m == "fgref":
            gr, pr = r["gates_report"], r["projected"]
            lines.append(f"| {name} (gates as trained) | {r['lr']:g} | {r['target_sparsity']} | independent | "
                         f"{r['accuracy']:.3f} | {fmt_int(enc_params(r, r['inference_params']))} | {pct(gr['fraction_removed'])} | "
                         f"{fmt_int(r['trainable_params'])} | {sps} | {mem} | not compiled | not compiled | – | – |")
            lines.append(f"| {name} (projected on the budget) | {r['lr']:g} | {r['target_sparsity']} | independent | "
                         f"{pr['accuracy']:.3f} | {fmt_int(enc_params(r, pr['inference_params']))} | {pct(pr['fraction_removed'])} | "
                         f"″ | ″ | ″ | not compiled | not compiled | – | – |")
        else:
            latx = "= dense (merged)" if m == "lora" else lat_dense
            latx32 = "= dense (merged)" if m == "lora" else lat_dense32
            lines.append(f"| {name} | {r['lr']:g} | – | – | {r['accuracy']:.3f} | {fmt_int(enc_params(r, r['inference_params']))} | 0 | "
                         f"{fmt_int(r['trainable_params'])} | {sps} | {mem} | {latx} | {latx32} | 1.00 / 1.00 | – |")
    for g in gcs:
        s = g["summary"] or {}
        slim = f"{os.path.basename(os.path.dirname(g['dir']))}-{g['tag']}.onnx"
        lb = lat.get(slim, {})
        ideal = {}
        if dense_name in fl and slim in fl:
            for b in (1, 32):
                if b in fl[dense_name] and b in fl[slim]:
                    ideal[b] = fl[dense_name][b] / fl[slim][b]
        acc = s.get("slim_eval_accuracy")
        removed = None
        if s.get("targeted_before"):
            removed = 1 - s["targeted_after"] / s["targeted_before"]
        b1 = lb.get(1)
        b32 = lb.get(32)
        sps = f"{g['sps_median']:.0f} ({g['sps_min']:.0f}–{g['sps_max']:.0f})" if "sps_median" in g else "–"
        eff = b32[1] / ideal[32] if b32 and 32 in ideal else None
        status = "" if g["exit"].startswith("exit: 0") else f" ({g['exit']})"
        lines.append(f"| gatecut{status} | {os.environ.get('GC_LR', '1e-2')} | {g['target']} | {g['mode']} ({g['backend']}) | "
                     f"{f1(acc, 3)} | {fmt_int(s.get('parameters_after'))} | {pct(removed)} | {fmt_int(g.get('trainable'))} | "
                     f"{sps} | {g.get('mem_peak', '–')} (nvidia-smi) | "
                     f"{f1(b1[0], 3) + ' (' + f1(b1[1], 2) + 'x)' if b1 else '–'} | "
                     f"{f1(b32[0], 3) + ' (' + f1(b32[1], 2) + 'x)' if b32 else '–'} | "
                     f"{f1(ideal.get(1), 2)} / {f1(ideal.get(32), 2)} | {f1(eff, 2)} |")
        g.update(acc=acc, removed=removed, ideal=ideal, b1=b1, b32=b32, eff=eff)
    lines.append("")
    # verdict at 30%
    for g in gcs:
        if abs(g["target"] - 0.3) > 1e-9 or g.get("acc") is None:
            continue
        v = dict(dataset=ds, mode=g["mode"], accuracy=g["acc"], removed=g["removed"])
        if lora_ref:
            v["lora_accuracy"] = lora_ref["accuracy"]
            v["accuracy_ok"] = g["acc"] >= lora_ref["accuracy"] - 0.005
            v["lora_sps"] = lora_ref["samples_per_s_median"]
            v["sps"] = g.get("sps_median")
            v["sps_ok"] = g.get("sps_median") is not None and g["sps_median"] >= lora_ref["samples_per_s_median"]
        if lora_best:
            v["lora_best_accuracy"] = lora_best["accuracy"]
            v["lora_best_lr"] = lora_best["lr"]
            v["accuracy_ok_vs_best"] = g["acc"] >= lora_best["accuracy"] - 0.005
        for b in (1, 32):
            lb = g.get("b1" if b == 1 else "b32")
            if lb and b in g["ideal"]:
                v[f"speedup_b{b}"] = lb[1]
                v[f"ideal_b{b}"] = g["ideal"][b]
                v[f"latency_ok_b{b}"] = lb[1] >= 0.85 * g["ideal"][b]
        verdicts.append(v)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    raw = argv[0]
    js = argv[argv.index("--json") + 1] if "--json" in argv else None
    lines = []
    env = ""
    try:
        env = open(os.path.join(raw, "env.txt")).read()
    except OSError:
        pass
    if env:
        lines.append("```")
        lines.append(env.strip())
        lines.append("```")
        lines.append("")
    verdicts = []
    for d in sorted(glob.glob(os.path.join(raw, "*/"))):
        dataset_table(os.path.basename(os.path.dirname(d)), d, lines, verdicts)
    if verdicts:
        lines.append("### Targets at 30% removed")
        lines.append("")
        lines.append("| data set | mode | removed | accuracy | LoRA (lr 1e-3) | ≥ LoRA − 0.5 pt | LoRA best of sweep | ≥ best − 0.5 pt | "
                     "speedup b1 / ideal | ≥ 0.85 ideal b1 | speedup b32 / ideal | ≥ 0.85 ideal b32 | samples/s vs LoRA | ≥ LoRA |")
        lines.append("|" + "---|" * 14)
        yn = {True: "yes", False: "**no**", None: "–"}
        for v in verdicts:
            lines.append(
                f"| {v['dataset']} | {v['mode']} | {pct(v['removed'])} | {v['accuracy']:.3f} | {f1(v.get('lora_accuracy'), 3)} | "
                f"{yn[v.get('accuracy_ok')]} | {f1(v.get('lora_best_accuracy'), 3)} (lr {v.get('lora_best_lr', '–')}) | "
                f"{yn[v.get('accuracy_ok_vs_best')]} | {f1(v.get('speedup_b1'), 2)}x / {f1(v.get('ideal_b1'), 2)}x | "
                f"{yn[v.get('latency_ok_b1')]} | {f1(v.get('speedup_b32'), 2)}x / {f1(v.get('ideal_b32'), 2)}x | "
                f"{yn[v.get('latency_ok_b32')]} | {f1(v.get('sps'), 0)} vs {f1(v.get('lora_sps'), 0)} | {yn[v.get('sps_ok')]} |")
        lines.append("")
    print("\n".join(lines))
    if js:
        with open(js, "w") as f:
            json.dump(verdicts, f, indent=1)


if __name__ == "__main__":
    main()
