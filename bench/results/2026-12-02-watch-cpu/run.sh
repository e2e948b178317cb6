#!/usr/bin/env bash
# Epoch selection seen through --watch — MiniLM on this CPU, 30% with the own head's defaults (five epochs since
# 2026-12-02 session 24), labelled, seeds SEEDS (default "1 2 3"), the test rows watched at every epoch (never chosen
# on). The original is gatecut-made (0%, 3 epochs, new-head defaults, seed 1) as in 2026-12-02-labelfree-eval-cpu
# (run.sh there makes it in /tmp/lfe-SET/teacher). usage: run.sh SET. At the end, per seed, the test accuracy of the
# epoch each selection rule picks (eval_suite.epoch_choices on the run's metrics.jsonl).
set -u
SET=$1; SEEDS=${SEEDS:-"1 2 3"}; CLASSES=${CLASSES:-target/classes}; CP=${CP:-/tmp/cp-main.txt}
cd "$(dirname "$0")/../../.."
W=/tmp/lfe-$SET; S=$W/split; BASE=target/models/all-minilm-l6-v2; TD=$W/teacher
[ -f "$TD/classifier.onnx" ] || bash bench/results/2026-12-02-labelfree-eval-cpu/run.sh "$SET"
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
GC=(java -cp "$CLASSES:$(cat "$CP")" dev.gatecut.cli.GatecutCli compress)
for seed in $SEEDS; do
  s0=$SECONDS
  "${GC[@]}" "$TD/classifier.onnx" --tokenizer $BASE-tokenizer.json --train $S/train.jsonl --eval $S/val.jsonl \
    --watch $S/test.jsonl --test $S/test.jsonl --labels "$L" --batch 32 --max-len 128 --latency-runs 0 --no-baseline \
    --no-progress --seed "$seed" --target-sparsity 0.3 -o "$W/watch-s$seed" > "$W/watch-s$seed.log" 2>&1
  echo "seed $seed: $(grep 'test accuracy' "$W/watch-s$seed.log") ($((SECONDS - s0)) s)"
  grep -E "step [0-9]+: eval|^watch: step|^selected" "$W/watch-s$seed.log" | sed 's/^/    /'
done
python3 - "$W" $SEEDS <<'PY'
import json, sys, pathlib
sys.path.insert(0, "tools")
import eval_suite
w = pathlib.Path(sys.argv[1])
for seed in sys.argv[2:]:
    d = w / f"watch-s{seed}"
    rows = [json.loads(l) for l in (d / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    kept = json.loads((d / "summary.json").read_text()).get("selected_step")
    print(f"seed {seed}:", {k: round(v, 3) for k, v in eval_suite.epoch_choices(rows, kept).items()})
PY
