#!/usr/bin/env python3
"""Where does the GPU wait? Idle gaps between the kernels and copies of a ktrace file (tools/ktrace/ktrace.c).

    python3 tools/ktrace_gaps.py trace.tsv [--from-ms T | --last-ms T] [--steps N] [--json OUT]

Merges every kernel and memory-copy interval into busy spans and prints, over the window after --from-ms
(milliseconds after the first record; use it to skip session start-up) or in the last --last-ms, the wall span, GPU-busy time and idle
time, the idle time by gap size, and the largest gaps with what ran before and after each (kernel name or copy
direction and size). With --steps, per-step figures (the window divided by N). A CUDA-graph train step shows its
host time here: the gaps between one replay's last kernel and the next's first.
"""
import argparse
import json

COPY = {1: "HtoD", 2: "DtoH", 8: "DtoD", 10: "PtoP"}
BUCKETS = [(0.01, "<10 us"), (0.1, "10-100 us"), (1.0, "0.1-1 ms"), (10.0, "1-10 ms"), (float("inf"), ">=10 ms")]


def records(path):
    out = []
    for line in open(path, errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "K" and len(parts) >= 4:
            out.append((int(parts[1]), int(parts[2]), parts[3][:90]))
        elif parts[0] == "M" and len(parts) >= 5:
            kind = COPY.get(int(parts[4]), parts[4])
            out.append((int(parts[1]), int(parts[2]), f"memcpy {kind} {int(parts[3])} B"))
    out.sort()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--from-ms", type=float, default=0.0)
    ap.add_argument("--last-ms", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--kernels", action="store_true", help="also the window's kernels: count per step and the --top by time")
    ap.add_argument("--json")
    a = ap.parse_args()
    recs = records(a.trace)
    if not recs:
        raise SystemExit(f"{a.trace}: no kernel or copy records")
    t0 = recs[0][0] + int(a.from_ms * 1e6)
    if a.last_ms:
        t0 = max(e for _, e, _ in recs) - int(a.last_ms * 1e6)
    recs = [r for r in recs if r[0] >= t0]
    busy = 0
    gaps = []   # (ms, before, after)
    end, last = recs[0][1], recs[0][2]
    start = recs[0][0]
    for s, e, name in recs[1:]:
        if s > end:
            busy += end - start
            gaps.append(((s - end) / 1e6, last, name))
            start = s
        if e >= end:
            end, last = e, name
    busy += end - start
    span = (end - recs[0][0]) / 1e6
    busy_ms = busy / 1e6
    by_bucket = {label: [0, 0.0] for _, label in BUCKETS}
    for ms, _, _ in gaps:
        label = next(l for bound, l in BUCKETS if ms < bound)
        by_bucket[label][0] += 1
        by_bucket[label][1] += ms
    per = a.steps or 1
    print(f"window: {span:.1f} ms, GPU busy {busy_ms:.1f} ms ({100 * busy_ms / span:.1f}%), idle {span - busy_ms:.1f} ms"
          + (f"; per step ({a.steps}): span {span / per:.1f}, busy {busy_ms / per:.1f}, idle {(span - busy_ms) / per:.1f} ms"
             if a.steps else ""))
    print("| gaps | count | idle ms | idle ms per step |")
    print("|---|---|---|---|")
    for _, label in BUCKETS:
        n, ms = by_bucket[label]
        print(f"| {label} | {n} | {ms:.1f} | {ms / per:.2f} |")
    print(f"\nlargest {a.top} gaps:")
    for ms, before, after in sorted(gaps, reverse=True)[:a.top]:
        print(f"  {ms:8.3f} ms  after [{before}]  before [{after}]")
    kernels = {}
    if a.kernels:
        for s, e, name in recs:
            if not name.startswith("memcpy "):
                k = kernels.setdefault(name, [0, 0.0])
                k[0] += 1
                k[1] += (e - s) / 1e6
        count = sum(k[0] for k in kernels.values())
        total = sum(k[1] for k in kernels.values())
        print(f"\nkernels: {count} ({count / per:.0f} per step), {total:.1f} ms ({total / per:.3f} ms per step), "
              f"mean {1e3 * total / max(count, 1):.2f} us; top {a.top} by time (ms per step, launches per step, name):")
        for name, (n, ms) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:a.top]:
            print(f"  {ms / per:8.3f}  {n / per:6.1f}  {name}")
    if a.json:
        json.dump({"span_ms": span, "busy_ms": busy_ms, "steps": a.steps,
                   "kernels": {k: {"count": v[0], "ms": v[1]} for k, v in kernels.items()},
                   "buckets": {k: {"count": v[0], "ms": v[1]} for k, v in by_bucket.items()},
                   "largest": [{"ms": g[0], "before": g[1], "after": g[2]} for g in sorted(gaps, reverse=True)[:a.top]]},
                  open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
