#!/usr/bin/env bash
# --average-epochs K against best-epoch selection — MiniLM on this CPU, 30% with the own head's defaults (five epochs),
# labelled, seeds SEEDS (default "1 2 3"), on the original and settings of 2026-12-02-watch-cpu (gatecut-made, 0%, 3
# epochs, new-head defaults, seed 1; its run.sh there made it in /tmp/lfe-SET/teacher). Training on the CPU is
# deterministic and averaging changes nothing before the last step, so each run's epoch rows must equal that
# session's (checked below) and the two runs of a seed differ only in what is kept. usage: run.sh SET [K]
set -u
SET=$1; K=${2:-3}; SEEDS=${SEEDS:-"1 2 3"}; CLASSES=${CLASSES:-target/classes}; CP=${CP:-/tmp/cp-main.txt}
cd "$(dirname "$0")/../../.."
W=/tmp/lfe-$SET; S=$W/split; BASE=target/models/all-minilm-l6-v2; TD=$W/teacher
mkdir -p "$W"
[ -f "$S/split.json" ] || python3 tools/eval_suite.py split "datasets/suite/$SET" "$S" > /dev/null
L=$(python3 -c "import json;print(','.join(json.load(open('$S/split.json'))['labels']))")
GC=(java -cp "$CLASSES:$(cat "$CP")" dev.gatecut.cli.GatecutCli compress)
ARGS=(--tokenizer $BASE-tokenizer.json --labels "$L" --batch 32 --max-len 128 --latency-runs 0 --no-baseline
      --no-progress)
s0=$SECONDS
[ -f "$TD/classifier.onnx" ] || "${GC[@]}" $BASE.onnx "${ARGS[@]}" --test $S/test.jsonl --seed 1 --train $S/train.jsonl \
  --eval $S/val.jsonl --epochs 3 --target-sparsity 0 -o "$TD" > "$TD.log" 2>&1
echo "original: $(grep 'test accuracy' "$TD.log") ($((SECONDS - s0)) s)"
for seed in $SEEDS; do
  s0=$SECONDS
  "${GC[@]}" "$TD/classifier.onnx" "${ARGS[@]}" --train $S/train.jsonl --eval $S/val.jsonl --watch $S/test.jsonl \
    --test $S/test.jsonl --seed "$seed" --target-sparsity 0.3 --average-epochs "$K" -o "$W/avg$K-s$seed" \
    > "$W/avg$K-s$seed.log" 2>&1
  echo "seed $seed: $(grep 'test accuracy' "$W/avg$K-s$seed.log") ($((SECONDS - s0)) s)"
  grep -E "^averaged" "$W/avg$K-s$seed.log" | sed 's/^/    /'
done
python3 - "$W" "$SET" "$K" $SEEDS <<'PY'
import json, sys, pathlib
sys.path.insert(0, "tools")
import eval_suite
w, ds, k = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
then = pathlib.Path("bench/results/2026-12-02-watch-cpu/metrics")
for seed in sys.argv[4:]:
    rows = [json.loads(l) for l in (w / f"avg{k}-s{seed}" / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    old = [json.loads(l) for l in (then / f"{ds}-seed{seed}.jsonl").read_text().splitlines() if l.strip()]
    pick = lambda rs: [(r["step"], r.get("accuracy"), round(r.get("task_loss", 0), 6)) for r in rs if r.get("eval") or r.get("watch")]
    same = pick(rows) == pick(old)
    kept_then = json.loads((then / f"{ds}-seed{seed}-summary.json").read_text()).get("selected_step")
    print(f"seed {seed}: epochs as in 2026-12-02-watch-cpu: {same}; best-epoch selection then kept "
          f"{eval_suite.epoch_choices(old, kept_then)['kept']:.3f}; now",
          {r: round(v, 3) for r, v in eval_suite.epoch_choices(rows, None).items()})
PY
