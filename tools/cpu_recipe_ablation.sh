#!/usr/bin/env bash
# Gate-recipe ablation on the CPU (issue 11): MiniLM, two suite sets subsampled (1000 train / 400 test, seeded
# shuffle), max-len 64, batch 16, 2 epochs (126 steps), the last epoch's budget-projected model scored on the test
# rows (--no-select-best, so no selection on test). Each variant is one `gatecut train` run; the accuracy printed is
# the last evaluation row of its metrics.jsonl. 400 test rows: one row is 0.25 points, a binomial standard error
# about 1.6 points at 0.88.
#
#   bash tools/cpu_recipe_ablation.sh                       # every variant below on both sets, one at a time
#   VARIANTS="frozen taylor" SETS=sentences bash tools/cpu_recipe_ablation.sh
#   VARIANTS="default-0 lora-0 default lora" SETS=sentences bash tools/cpu_recipe_ablation.sh   # --adapter lora
#   VARIANTS="taylor-0 norms-0 taylor norms" SETS=sentences bash tools/cpu_recipe_ablation.sh   # --train-norms
#
#   MODEL=/tmp/bge/models/bge-small-en-v1.5.onnx TOKENIZER=/tmp/bge/models/bge-small-en-v1.5-tokenizer.json \
#     VARIANTS="frozen default distill" SETS=sentences bash tools/cpu_recipe_ablation.sh   # another encoder
#
# Needs target/classes (mvn -o -q compile) and target/models (mvn -o -q package -DskipTests). Output: $OUT
# (default target/recipe-ablation): one folder per run and results.txt. MODEL / TOKENIZER: the encoder (default
# all-MiniLM-L6-v2 from target/models; bge-small from the suite's bge payload, unpacked with tools/payload.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/recipe-ablation}
CLASSES=${CLASSES:-target/classes}   # a copy keeps the runs on one build while target/classes is rebuilt
SETS=${SETS:-"sentences fine-foods"}
VARIANTS=${VARIANTS:-"frozen paper-init init95 taylor taylor-0 progressive per-parameter"}
SEED=${SEED:-1}
MODEL=${MODEL:-target/models/all-minilm-l6-v2.onnx}
TOKENIZER=${TOKENIZER:-target/models/all-minilm-l6-v2-tokenizer.json}
CLASSES=${CLASSES:-target/classes}   # a copy keeps runs going while you rebuild
mkdir -p "$OUT/data"
mvn -q -o dependency:build-classpath -Dmdep.outputFile="$OUT/cp.txt" > /dev/null
python3 - "$OUT/data" $SETS <<'PY'
import gzip, json, random, sys
out = sys.argv[1]
for ds in sys.argv[2:]:
    rng = random.Random(7)   # one generator per set: train shuffled first, then test (the measured subsets)
    for split, n in (("train", 1000), ("test", 400)):
        rows = [json.loads(l) for l in gzip.open(f"datasets/suite/{ds}/{split}.jsonl.gz", "rt")]
        rng.shuffle(rows)
        with open(f"{out}/{ds}-{split}.jsonl", "w") as f:
            for r in rows[:n]:
                f.write(json.dumps(r) + "\n")
PY
# The recipe before issue 11's gate work: FineGates' start (θ ~ N(1, 0.1), gates clipped at 1), ranked by θ.
OLD="--recipe plain --head-lr 1e-2 --warmup 0.1 --dense-fraction 0.2 --ramp-fraction 0.4"
flags() {   # sparsity, then the flags of a variant
  case $1 in
    frozen)        echo "0 $OLD --lr 1e-9 --bias-lr 1e-9" ;;   # gates stay clipped at 1 and biases frozen: only the head trains
    paper-init)    echo "0.3 $OLD" ;;
    init95)        echo "0.3 --gate-init 0.95 --importance theta" ;;
    taylor)        echo "0.3 --gate-init 0.95 --importance taylor" ;;
    taylor-0)      echo "0 --gate-init 0.95 --importance taylor" ;;
    progressive)   echo "0.3 --gate-init 0.95 --importance taylor --progressive-cut" ;;
    per-parameter) echo "0.3 --gate-init 0.95 --importance taylor-per-parameter --progressive-cut" ;;
    default-0)     echo "0" ;;                                          # the default recipe, nothing closed
    default)       echo "0.3" ;;
    lora-0)        echo "0 --adapter lora --adapter-targets all" ;;     # + rank-8 adapters on every gated layer
    lora)          echo "0.3 --adapter lora --adapter-targets all" ;;   # (the suite's PEFT baseline targets all too)
    lora-qv)       echo "0.3 --adapter lora" ;;                          # adapters on query and value only
    lora-0-2e-3)   echo "0 --adapter lora --adapter-targets all --adapter-lr 2e-3" ;;
    lora-2e-3)     echo "0.3 --adapter lora --adapter-targets all --adapter-lr 2e-3" ;;
    # distillation of the final hidden states from the dense encoder (a new head: normalised MSE), on the default
    distill)       echo "0.3 --distill 1" ;;
    distill-0)     echo "0 --distill 1" ;;
    # --train-norms (LN-tuning on top of gates, biases and head): the default recipe with and without it.
    norms)         echo "0.3 --gate-init 0.95 --importance taylor --train-norms" ;;
    norms-0)       echo "0 --gate-init 0.95 --importance taylor --train-norms" ;;
    norms-lr1e-2)  echo "0.3 --gate-init 0.95 --importance taylor --train-norms --norm-lr 1e-2" ;;
    norms-0-lr1e-2) echo "0 --gate-init 0.95 --importance taylor --train-norms --norm-lr 1e-2" ;;
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}
for ds in $SETS; do
  for v in $VARIANTS; do
    read -r sparsity extra <<< "$(flags "$v")" || continue
    run="$OUT/$ds-$v-seed$SEED"
    start=$SECONDS
    java -cp "$CLASSES:$(cat "$OUT/cp.txt")" dev.gatecut.cli.GatecutCli train "$MODEL" \
      --tokenizer "$TOKENIZER" --train "$OUT/data/$ds-train.jsonl" \
      --eval "$OUT/data/$ds-test.jsonl" --max-len 64 --batch 16 --epochs 2 --seed "$SEED" --no-select-best \
      --target-sparsity "$sparsity" $extra --no-progress --force -o "$run" > "$run.log" 2>&1
    acc=$(grep '"accuracy"' "$run/metrics.jsonl" 2>/dev/null | tail -1 | python3 -c \
      "import sys, json; r = json.loads(sys.stdin.read()); print(round(100 * r['accuracy'], 2), round(100 * r['sparsity'], 1))")
    echo "$ds $v seed $SEED: accuracy, removed % = ${acc:-FAILED} ($((SECONDS - start)) s)" | tee -a "$OUT/results.txt"
  done
done
