#!/usr/bin/env python3
"""Checks of tools/eval_suite.py's report on a made-up raw folder:  python3 tools/test_eval_suite_report.py

The figures are invented inputs of the table code (not results). --select picks, per seed, the gatecut variant
whose slim model scored best on the validation slice, and reports that run's test accuracy."""
import json
import os
import sys
import tempfile
import unittest
from pathlib import Path
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_suite  # noqa: E402


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def gc(raw, variant, seed, val, test, loss=None, metrics=None, model="minilm"):
    """A gatecut run: loss goes into summary.json's gated_eval_loss; metrics (rows) into metrics.jsonl."""
    d = os.path.join(raw, "tweets", model, f"gc{'-' + variant if variant else ''}-s0.3-seed{seed}")
    summary = {"slim_eval_accuracy": val}
    if loss is not None:
        summary["gated_eval_loss"] = loss
    if metrics is not None:
        summary.update({k: v for k, v in metrics[-1].items() if k == "selected_step"})
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "metrics.jsonl"), "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in metrics))
    write(os.path.join(d, "gc.json"), {"dataset": "tweets", "model": model, "source": "pretrained",
                                       "variant": variant, "sparsity": 0.3, "seed": seed, "exit": 0,
                                       "gatecut_eval": "val", "accuracy": test, "macro_f1": test - 0.05,
                                       "summary": summary})


def split(raw):
    write(os.path.join(raw, "tweets", "split.json"), {"dataset": "tweets", "labels": ["a", "b", "c"],
                                                      "train": 1800, "val": 200, "test": 500,
                                                      "majority": 0.5, "unbalanced": True})


class SelectOnValidation(unittest.TestCase):
    def test_each_seed_takes_the_variant_best_on_validation(self):
        with tempfile.TemporaryDirectory() as raw:
            write(os.path.join(raw, "tweets", "split.json"), {"dataset": "tweets", "labels": ["a", "b", "c"],
                                                              "train": 1800, "val": 200, "test": 500,
                                                              "majority": 0.5, "unbalanced": True})
            # seed 1: lr3 best on val (test 0.70); seed 2: default best (test 0.80); seed 3: a tie -> default
            gc(raw, "", 1, 0.70, 0.74)
            gc(raw, "lr3", 1, 0.75, 0.70)
            gc(raw, "", 2, 0.80, 0.80)
            gc(raw, "lr3", 2, 0.78, 0.90)
            gc(raw, "", 3, 0.76, 0.76)
            gc(raw, "lr3", 3, 0.76, 0.60)
            gc(raw, "", 4, 0.90, 0.90)       # seed 4 lacks the lr3 run: left out of the chosen row
            cells, *_ = eval_suite.collect(__import__("pathlib").Path(raw))
            eval_suite.select_on_val(cells, ["default", "lr3"])
            row = cells[("tweets", "minilm", "gatecut 30% [best of default/lr3 on val]")]
            self.assertEqual([1, 2, 3], [r["seed"] for r in row])
            self.assertEqual(["lr3", "default", "default"], [r["chosen_variant"] for r in row])
            self.assertAlmostEqual((0.70 + 0.80 + 0.76) / 3, sum(r["accuracy"] for r in row) / 3)
            # the variants' own rows stay
            self.assertEqual(4, len(cells[("tweets", "minilm", "gatecut 30%")]))
            self.assertEqual(3, len(cells[("tweets", "minilm", "gatecut 30% [lr3]")]))

    def test_the_report_prints_the_row(self):
        with tempfile.TemporaryDirectory() as raw:
            for seed, (v0, t0, v1, t1) in enumerate([(0.7, 0.7, 0.8, 0.8), (0.9, 0.9, 0.6, 0.6)], start=1):
                gc(raw, "", seed, v0, t0)
                gc(raw, "lr3", seed, v1, t1)
            md = os.path.join(raw, "t.md")
            args = type("A", (), {"raw": raw, "md": md, "select": "default,lr3"})()
            eval_suite.cmd_report(args)
            text = open(md, encoding="utf-8").read()
            self.assertIn("gatecut 30% [best of default/lr3 on val] | 2 | 85.0", text)



class FailedRuns(unittest.TestCase):
    def test_a_non_zero_exit_is_failed_even_with_an_accuracy(self):
        # a repeated run that gatecut refused (exit 2) beside the summary.json of an earlier attempt
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            gc(raw, "", 1, 0.70, 0.74)
            gc(raw, "", 2, 0.80, 0.80)
            p = os.path.join(raw, "tweets", "minilm", "gc-s0.3-seed2", "gc.json")
            g = json.load(open(p, encoding="utf-8"))
            write(p, dict(g, exit=2))
            cells, *_ = eval_suite.collect(__import__("pathlib").Path(raw))
            self.assertEqual([1], [r["seed"] for r in cells[("tweets", "minilm", "gatecut 30%")]])
            md = os.path.join(raw, "t.md")
            eval_suite.cmd_report(type("A", (), {"raw": raw, "md": md, "select": ""})())
            self.assertIn("Failed (see raw.tgz): tweets/minilm/gc-s0.3-seed2 (exit 2)", open(md, encoding="utf-8").read())

    def test_a_skip_marker_beside_a_finished_run_is_not_listed(self):
        # a later call on the warm machine (label-free off) marks a run skipped that an earlier call finished
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            gc(raw, "", 1, 0.70, 0.74)
            d = os.path.join(raw, "tweets", "minilm")
            for name in ("gc-s0.3-seed1", "gc-s0.3-seed2"):
                with open(os.path.join(d, name + ".skipped"), "w", encoding="utf-8") as f:
                    f.write("label-free: skipped")
            md = os.path.join(raw, "t.md")
            eval_suite.cmd_report(type("A", (), {"raw": raw, "md": md, "select": ""})())
            text = open(md, encoding="utf-8").read()
            self.assertIn("Skipped (time budget or missing hook): tweets/minilm/gc-s0.3-seed2.skipped\n", text)
            self.assertNotIn("gc-s0.3-seed1.skipped", text)


class Merge(unittest.TestCase):
    def test_baseline_runs_of_two_calls_are_pooled_and_chosen_over(self):
        with tempfile.TemporaryDirectory() as tmp:
            def torch_file(call, schedule, runs):
                write(os.path.join(tmp, call, "tweets", "minilm", "torch-seed1.json"), {
                    "kind": "torch", "model": "minilm", "dataset": "tweets", "seed": 1, "schedules": [schedule],
                    "runs": [dict(method="lora", lr=lr, schedule=schedule, val_accuracy=va, val_loss=vl,
                                  test_accuracy=ta, test_macro_f1=ta) for lr, va, vl, ta in runs],
                    "chosen": {}, "finished": "x"})
            torch_file("a", "constant", [(1e-3, 0.80, 0.50, 0.79), (3e-3, 0.82, 0.45, 0.81)])
            torch_file("b", "linear", [(1e-3, 0.81, 0.40, 0.84), (3e-3, 0.79, 0.47, 0.78)])
            split(os.path.join(tmp, "a"))
            gc(os.path.join(tmp, "b"), "", 1, 0.8, 0.8)
            out = os.path.join(tmp, "m")
            self.assertEqual(0, eval_suite.main(["merge", out, os.path.join(tmp, "a"), os.path.join(tmp, "b")]))
            r = json.load(open(os.path.join(out, "tweets", "minilm", "torch-seed1.json"), encoding="utf-8"))
            self.assertEqual(4, len(r["runs"]))
            self.assertEqual(["constant", "linear"], r["schedules"])
            self.assertEqual((3e-3, "constant"), (r["chosen"]["lora"]["lr"], r["chosen"]["lora"]["schedule"]))
            path = __import__("pathlib").Path(out)
            by_loss, *_ = eval_suite.collect(path, "loss")
            self.assertEqual([0.84], [x["accuracy"] for x in by_loss[("tweets", "minilm", "LoRA r=8")]])
            self.assertEqual([0.81], [x["accuracy"] for x in eval_suite.collect(path)[0][("tweets", "minilm", "LoRA r=8")]])
            self.assertTrue(os.path.exists(os.path.join(out, "tweets", "minilm", "gc-s0.3-seed1", "gc.json")))
            self.assertEqual(2, eval_suite.main(["merge", out, os.path.join(tmp, "a")]))   # not empty: refused


class MergeAsDefault(unittest.TestCase):
    def test_a_variant_that_became_the_default_replaces_the_plain_run_of_its_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            def run(call, name, variant, mode, acc, seed=1, extra=None):
                d = os.path.join(tmp, call, "tweets", "minilm", f"post-seed{seed}", name)
                write(os.path.join(d, "gc.json"), {
                    "dataset": "tweets", "model": "minilm", "source": "finetuned", "precision": "fp16",
                    "labels_mode": mode, "variant": variant, "sparsity": 0.3, "seed": seed, "exit": 0,
                    "accuracy": acc, "macro_f1": acc, "summary": {"original_test_accuracy": 0.8}})
                if extra:
                    write(os.path.join(d, extra), {})
            run("a", "fp16-labels-s0.3", "", "labels", 0.70, extra="stale.json")   # the old default's run
            run("a", "fp16-labels-e5-s0.3", "e5", "labels", 0.79)                    # what is the default now
            run("a", "fp16-labels-s0.3", "", "labels", 0.71, seed=2)                 # no e5 run: stays
            run("b", "fp16-labelfree-s0.3", "", "label-free", 0.78)
            out = os.path.join(tmp, "m")
            self.assertEqual(0, eval_suite.main(["merge", "--as-default", "e5", out, os.path.join(tmp, "a"),
                                                 os.path.join(tmp, "b")]))
            seed1 = Path(out, "tweets", "minilm", "post-seed1")
            g = json.loads((seed1 / "fp16-labels-s0.3" / "gc.json").read_text())
            self.assertEqual((0.79, "", "e5"), (g["accuracy"], g["variant"], g["as_default_of"]))
            self.assertFalse((seed1 / "fp16-labels-s0.3" / "stale.json").exists(), "the plain run's files go with it")
            self.assertFalse((seed1 / "fp16-labels-e5-s0.3").exists())
            self.assertTrue((seed1 / "fp16-labelfree-s0.3" / "gc.json").exists())
            _, _, post, _ = eval_suite.collect(Path(out))
            self.assertEqual([0.79, 0.71], [g["accuracy"] for g in post[("tweets", "minilm", "fp16", "labels", 0.3)]])
            self.assertEqual("fp32-labelfree-s0.4", eval_suite.plain_run_dir("fp32-labelfree-avg3-s0.4", ["avg3"]))
            self.assertIsNone(eval_suite.plain_run_dir("fp32-labels-s0.3", ["e5"]))
            self.assertIsNone(eval_suite.plain_run_dir("fp16-labels-lfe5-s0.3", ["e5"]))
            self.assertEqual("fp32-labelfree-s0.3", eval_suite.plain_run_dir("fp32-labelfree-avg3-s0.3", ["labelfree-avg3"]))
            self.assertIsNone(eval_suite.plain_run_dir("fp32-labels-avg3-s0.3", ["labelfree-avg3"]))


class SelectOnValidationLoss(unittest.TestCase):
    def test_each_seed_takes_the_variant_with_the_lowest_validation_loss(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            # seed 1: equal accuracy, none has the lower loss; seed 2: default higher accuracy but higher loss
            gc(raw, "", 1, 0.85, 0.874, loss=0.387)
            gc(raw, "none", 1, 0.85, 0.880, loss=0.375)
            gc(raw, "", 2, 0.86, 0.850, loss=0.361)
            gc(raw, "none", 2, 0.855, 0.872, loss=0.345)
            # seed 3: no gated_eval_loss (an older run): the loss of the selected step's row in metrics.jsonl
            gc(raw, "", 3, 0.85, 0.874, metrics=[
                {"step": 57, "eval": True, "task_loss": 0.30, "accuracy": 0.85},
                {"step": 114, "eval": True, "task_loss": 0.50, "accuracy": 0.84},
                {"step": 114, "selected_step": 57, "accuracy": 0.85}])
            gc(raw, "none", 3, 0.85, 0.882, metrics=[
                {"step": 57, "eval": True, "task_loss": 0.40, "accuracy": 0.84},
                {"step": 114, "eval": True, "task_loss": 0.35, "accuracy": 0.85}])
            cells, *_ = eval_suite.collect(__import__("pathlib").Path(raw))
            eval_suite.select_on_val(cells, ["default", "none"], by="loss")
            row = cells[("tweets", "minilm", "gatecut 30% [best of default/none on val loss]")]
            self.assertEqual(["none", "none", "default"], [r["chosen_variant"] for r in row])
            self.assertEqual([0.375, 0.345, 0.30], [r["val_loss"] for r in row])
            # by accuracy, seed 2 goes the other way
            eval_suite.select_on_val(cells, ["default", "none"])
            row = cells[("tweets", "minilm", "gatecut 30% [best of default/none on val]")]
            self.assertEqual("default", row[1]["chosen_variant"])

    def test_baselines_rates_by_loss_where_every_run_has_one(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            runs = [dict(method="lora", lr=1e-4, val_accuracy=0.80, val_loss=0.50, test_accuracy=0.70, test_macro_f1=0.6),
                    dict(method="lora", lr=1e-3, val_accuracy=0.79, val_loss=0.40, test_accuracy=0.75, test_macro_f1=0.7),
                    dict(method="dense", lr=1e-2, val_accuracy=0.7, test_accuracy=0.6, test_macro_f1=0.5),
                    dict(method="dense", lr=1e-3, val_accuracy=0.6, val_loss=0.1, test_accuracy=0.5, test_macro_f1=0.4)]
            write(os.path.join(raw, "tweets", "minilm", "torch-seed1.json"), {
                "dataset": "tweets", "model": "minilm", "seed": 1, "runs": runs,
                "chosen": {"lora": runs[0], "dense": runs[2]}})
            by_acc, *_ = eval_suite.collect(__import__("pathlib").Path(raw))
            by_loss, *_ = eval_suite.collect(__import__("pathlib").Path(raw), "loss")
            self.assertEqual(0.70, by_acc[("tweets", "minilm", "LoRA r=8")][0]["accuracy"])
            self.assertEqual(0.75, by_loss[("tweets", "minilm", "LoRA r=8")][0]["accuracy"])
            # a dense run without a loss: the rate stays as the run chose it
            self.assertEqual(0.6, by_loss[("tweets", "minilm", "frozen + head")][0]["accuracy"])


    def test_a_rates_schedule_shows_beside_it(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            runs = [dict(method="lora", lr=1e-3, schedule="constant", val_accuracy=0.8, val_loss=0.50,
                         test_accuracy=0.70, test_macro_f1=0.6),
                    dict(method="lora", lr=1e-3, schedule="linear", val_accuracy=0.8, val_loss=0.40,
                         test_accuracy=0.75, test_macro_f1=0.7)]
            write(os.path.join(raw, "tweets", "minilm", "torch-seed1.json"), {
                "dataset": "tweets", "model": "minilm", "seed": 1, "runs": runs, "chosen": {"lora": runs[0]}})
            md = os.path.join(raw, "t.md")
            eval_suite.main(["report", raw, "--md", md, "--select-by", "loss"])
            row = [l for l in open(md, encoding="utf-8") if "LoRA r=8" in l][0]
            self.assertIn("75.0", row)
            self.assertIn("0.001/linear", row)


class LinearSchedule(unittest.TestCase):
    """The baselines' --schedules linear against gatecut's Schedule.at (ScheduleTest's figures, 100 steps)."""

    def test_warm_up_then_linear_decay_to_the_last_step(self):
        from lr_schedule import lr_factor
        self.assertAlmostEqual(0.1, lr_factor("linear", 0, 100))
        self.assertAlmostEqual(1.0, lr_factor("linear", 9, 100))
        self.assertAlmostEqual(1.0, lr_factor("linear", 10, 100))
        self.assertAlmostEqual(60 / 90, lr_factor("linear", 40, 100))
        self.assertAlmostEqual(1 / 90, lr_factor("linear", 99, 100))
        self.assertEqual([1.0] * 100, [lr_factor("constant", s, 100) for s in range(100)])
        with self.assertRaises(ValueError):
            lr_factor("cosine", 0, 100)


class CompressedClassifierRetained(unittest.TestCase):
    def test_the_original_scored_by_gatecut_is_the_yardstick(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            for seed, (orig_cpu, orig_gc, slim) in enumerate([(0.80, 0.81, 0.80), (0.92, 0.89, 0.89)], start=1):
                d = os.path.join(raw, "tweets", "minilm", f"post-seed{seed}")
                write(os.path.join(d, "export.json"), {"dataset": "tweets", "model": "minilm", "seed": seed,
                                                       "fp32": {"accuracy": orig_cpu}, "fp16": {"skipped": "x"}})
                for prec in ("fp32", "fp16"):
                    write(os.path.join(d, f"{prec}-labels-s0.3", "gc.json"), {
                        "dataset": "tweets", "model": "minilm", "source": "finetuned", "precision": prec,
                        "labels_mode": "labels", "sparsity": 0.3, "seed": seed, "accuracy": slim, "macro_f1": slim,
                        "summary": {"original_test_accuracy": orig_gc}})
            md = os.path.join(raw, "t.md")
            eval_suite.cmd_report(type("A", (), {"raw": raw, "md": md, "select": None})())
            with open(md, encoding="utf-8") as f:
                text = f.read()
            self.assertIn("| tweets | minilm | fp32 | original | — | 2 | 86.0", text)
            self.assertIn("| tweets | minilm | fp32 | original (gatecut) | — | 2 | 85.0", text)
            # retained against gatecut's original (0.85), not the CPU's (0.86): 0.845 / 0.85
            self.assertIn(f"| tweets | minilm | fp32 | labels | 30% | 2 | 84.5 ± 57.2 | {0.845 / 0.85 * 100:.1f}% |", text)
            # an fp16 original the CPU never scored still has gatecut's figure
            self.assertIn("| tweets | minilm | fp16 | original (gatecut) | — | 2 | 85.0", text)
            self.assertIn(f"| tweets | minilm | fp16 | labels | 30% | 2 | 84.5 ± 57.2 | {0.845 / 0.85 * 100:.1f}% |", text)


    def test_the_originals_fit_to_their_training_rows_is_reported_where_recorded(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            for seed, train in [(1, 0.95), (2, 0.97), (3, None)]:
                d = os.path.join(raw, "tweets", "minilm", f"post-seed{seed}")
                chosen = {"lr": 1e-4} if train is None else {"lr": 1e-4, "train_accuracy": train}
                write(os.path.join(d, "export.json"), {"dataset": "tweets", "model": "minilm", "seed": seed,
                                                       "chosen": chosen, "fp32": {"accuracy": 0.8}})
            lines = eval_suite.originals_on_training_rows(eval_suite.collect(Path(raw), "accuracy", None)[3])
            self.assertIn("| tweets | minilm | 2 | 96.0 ± 12.7 | 4.0 |", lines)
            self.assertEqual([], eval_suite.originals_on_training_rows({}))

    def test_a_row_over_more_seeds_is_retained_against_the_originals_of_its_own_seeds(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            # seeds 4 and 5 ran at 30% only: their originals must not move the 40% row's yardstick
            for seed, orig in [(1, 0.80), (2, 0.80), (3, 0.80), (4, 0.90), (5, 0.90)]:
                d = os.path.join(raw, "tweets", "minilm", f"post-seed{seed}")
                write(os.path.join(d, "export.json"), {"dataset": "tweets", "model": "minilm", "seed": seed,
                                                       "fp32": {"accuracy": orig}, "fp16": {"skipped": "x"}})
                runs = [("labels", 0.3, orig), ("label-free", 0.3, orig - (0.02 if seed <= 3 else 0.0))]
                if seed <= 3:
                    runs.append(("labels", 0.4, orig))
                for mode, sp, acc in runs:
                    write(os.path.join(d, f"fp32-{mode}-s{sp}", "gc.json"), {
                        "dataset": "tweets", "model": "minilm", "source": "finetuned", "precision": "fp32",
                        "labels_mode": mode, "sparsity": sp, "seed": seed, "accuracy": acc, "macro_f1": acc})
            md = os.path.join(raw, "t.md")
            eval_suite.main(["report", raw, "--md", md])
            with open(md, encoding="utf-8") as f:
                text = f.read()
            self.assertIn("| tweets | minilm | fp32 | labels | 40% | 3 | 80.0 ± 0.0 | 100.0% |", text)
            self.assertIn("| tweets | minilm | fp32 | labels | 30% | 5 | 84.0", text)
            self.assertIn("+1.2 (tweets minilm; 1 pairs) | ≤ 1: missed |", text)
            # the three seeds alone
            eval_suite.main(["report", raw, "--md", md, "--seeds", "1,2,3"])
            with open(md, encoding="utf-8") as f:
                text = f.read()
            self.assertIn("| tweets | minilm | fp32 | original | — | 3 | 80.0", text)
            self.assertIn("+2.0 (tweets minilm; 1 pairs) | ≤ 1: missed |", text)


class Estimate(unittest.TestCase):
    def test_a_chain_counts_its_precisions_and_five_epochs_from_thirty_percent(self):
        est = eval_suite.EST_S
        fp32, _ = eval_suite.estimate(["bge"], 1, ["0.2"], 1, post=True, precisions=("fp32",))
        self.assertEqual(est[("export", "bge")] + est[("post-gc", "bge")], fp32)
        both, _ = eval_suite.estimate(["bge"], 1, ["0.2"], 1, post=True)
        self.assertEqual(fp32 + est[("export-fp16", "bge")] + est[("post-gc", "bge")], both)
        # fp16 alone: the fine-tune and the fp16 export, not the fp32 file's export and scoring
        fp16, _ = eval_suite.estimate(["bge"], 1, ["0.2"], 1, post=True, precisions=("fp16",))
        self.assertEqual(both - est[("export-fp32", "bge")] - est[("post-gc", "bge")], fp16)
        at30, _ = eval_suite.estimate(["bge"], 1, ["0.3"], 1, post=True, precisions=("fp32",))
        self.assertAlmostEqual(est[("export", "bge")] + 5 / 3 * est[("post-gc", "bge")], at30)
        at40, _ = eval_suite.estimate(["bge"], 1, ["0.4"], 1, post=True, precisions=("fp32",), labelfree=True)
        self.assertAlmostEqual(est[("export", "bge")] + 2 * 5 / 3 * est[("post-gc", "bge")], at40)
        # three sets in one call, nine chains at once: part 3's figures were measured nine at once
        serial, wall = eval_suite.estimate(["bge"], 3, ["0.4"], 9, post=True, precisions=("fp32",), labelfree=True,
                                           sets=3)
        self.assertAlmostEqual(9 * at40, serial)
        self.assertAlmostEqual(at40 + 30, wall)

    def test_the_suite_scripts_run_weight_counts_folders_from_thirty_percent_as_five_thirds(self):
        import contextlib
        import io

        def weight(names, *flags):
            out = io.StringIO()
            with unittest.mock.patch("sys.stdin", io.StringIO("\n".join(names))), contextlib.redirect_stdout(out):
                eval_suite.main(["run-weight", *flags])
            return int(out.getvalue())
        runs = ["fp32-labels-s0.2", "fp32-labelfree-s0.2", "fp32-labels-e5-s0.3", "fp32-labelfree-soft-s0.4"]
        self.assertEqual(6, weight(runs))   # 2 + 2 x 5/3, rounded up
        self.assertEqual(4, weight(runs, "--fixed-epochs"))
        self.assertEqual(5, weight(["fp16-labels-s0.4"] * 3))
        self.assertEqual(0, weight([]))


class EpochSelection(unittest.TestCase):
    ROWS = [{"step": 10, "eval": True, "task_loss": 0.50, "accuracy": 0.80},
            {"step": 10, "watch": True, "task_loss": 0.55, "accuracy": 0.74},
            {"step": 20, "eval": True, "task_loss": 0.40, "accuracy": 0.82},
            {"step": 20, "watch": True, "task_loss": 0.45, "accuracy": 0.78},
            {"step": 30, "eval": True, "task_loss": 0.45, "accuracy": 0.82},   # ties on accuracy: the first kept
            {"step": 30, "watch": True, "task_loss": 0.50, "accuracy": 0.76},
            {"step": 40, "eval": True, "task_loss": 0.42, "accuracy": 0.81},
            {"step": 40, "watch": True, "task_loss": 0.47, "accuracy": 0.80}]

    def test_each_rule_picks_its_epoch_and_reads_the_watched_test_accuracy(self):
        c = eval_suite.epoch_choices(self.ROWS, 20)
        self.assertEqual({"kept": 0.78, "last": 0.80, "val accuracy": 0.78, "val accuracy, later ties": 0.76,
                          "val loss": 0.78, "best possible": 0.80}, c)
        self.assertEqual(0.80, eval_suite.epoch_choices(self.ROWS, None)["kept"], "no selected step: the last")
        self.assertIsNone(eval_suite.epoch_choices([r for r in self.ROWS if not r.get("watch")], 20))

    def test_a_run_averaging_its_last_epochs_kept_the_average(self):
        rows = self.ROWS + [{"step": 40, "average_eval": True, "averaged_epochs": 2, "accuracy": 0.83},
                            {"step": 40, "average_watch": True, "averaged_epochs": 2, "accuracy": 0.81}]
        c = eval_suite.epoch_choices(rows, None)
        self.assertEqual(0.81, c["kept"], "the averaged model's watched accuracy")
        self.assertEqual(0.80, c["last"], "the rules still read the epochs' rows")
        self.assertEqual(0.78, c["val accuracy"], "the average is no epoch to choose")

    def test_the_report_has_a_section_per_recipe(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            gc(raw, "", 1, 0.82, 0.78, metrics=[dict(r, selected_step=20) for r in self.ROWS])
            gc(raw, "", 2, 0.82, 0.80, metrics=self.ROWS)
            md = os.path.join(raw, "t.md")
            eval_suite.cmd_report(type("A", (), {"raw": raw, "md": md, "select": ""})())
            text = open(md, encoding="utf-8").read()
            self.assertIn("| fp32 | 30% pretrained | minilm | 2 | 79.00 | 80.00 (+1.00) | 78.00 (-1.00) | 76.00 (-3.00) |"
                          " 78.00 (-1.00) | 80.00 (+1.00) |", text)
            self.assertNotIn("| all |", text, "one model: no pooled row")

    def test_a_recipe_on_two_models_gets_a_row_each_and_one_pooled(self):
        with tempfile.TemporaryDirectory() as raw:
            split(raw)
            gc(raw, "", 1, 0.82, 0.78, metrics=[dict(r, selected_step=20) for r in self.ROWS])
            gc(raw, "", 2, 0.82, 0.80, metrics=self.ROWS, model="bge")
            lines = eval_suite.epoch_selection(Path(raw))
            rows = [l for l in lines if l.startswith("| fp32 ")]
            self.assertEqual(["bge", "minilm", "all"], [r.split(" | ")[2] for r in rows])
            self.assertIn("| bge | 1 | 80.00 | 80.00 (+0.00) |", rows[0])
            self.assertIn("| minilm | 1 | 78.00 | 80.00 (+2.00) |", rows[1])
            self.assertIn("| all | 2 | 79.00 | 80.00 (+1.00) |", rows[2])


class Part3Targets(unittest.TestCase):
    def test_lowest_retained_and_largest_label_free_gap_per_recipe(self):
        r = [("fp32", 0.3, "labels [dec]", "tweets", "bge", 0.80, 0.995),
             ("fp32", 0.3, "labels [dec]", "sotu", "bge", 0.80, 1.015),
             ("fp32", 0.3, "label-free [dec]", "tweets", "bge", 0.81, 1.005),
             ("fp32", 0.3, "label-free [dec]", "sotu", "bge", 0.788, 1.0),
             ("fp32", 0.4, "labels", "sotu", "minilm", 0.75, 0.978),
             ("fp32", 0.3, "label-free", "sotu", "bge", 0.70, 0.9)]   # no labelled partner: not a row
        rows = [l for l in eval_suite.part3_targets(r) if l.startswith("| fp32")]
        self.assertEqual(2, len(rows), rows)
        self.assertIn("| 30% | labels [dec] | 2 | 99.5% (tweets bge) | ≥ 99%: met | 100.0% (sotu bge) |", rows[0])
        self.assertIn("+1.2 (sotu bge; 2 pairs) | ≤ 1: missed |", rows[0])
        self.assertIn("| 40% | labels | 1 | 97.8% (sotu minilm) | ≥ 98%: missed | — | — | — |", rows[1])

    def test_the_label_free_gap_is_taken_over_the_seeds_both_runs_have(self):
        r = [("fp32", 0.3, "labels", "sotu", "bge", 0.804, 1.01, {1: 0.80, 2: 0.80, 3: 0.80, 4: 0.81, 5: 0.81}),
             ("fp32", 0.3, "label-free", "sotu", "bge", 0.79, 1.0, {1: 0.79, 2: 0.79, 3: 0.79})]
        rows = [l for l in eval_suite.part3_targets(r) if l.startswith("| fp32")]
        self.assertIn("+1.0 (sotu bge; 1 pairs) | ≤ 1: met |", rows[0])   # means alone would say +1.4

class VariantEffects(unittest.TestCase):
    @staticmethod
    def result(seed, acc):
        return {"seed": seed, "accuracy": acc}

    def test_a_variant_is_paired_with_the_plain_run_of_its_labels_mode_and_seed(self):
        r = self.result
        post = {("sotu", "bge", "fp32", "labels", 0.3): [r(1, 0.80), r(2, 0.82), r(3, 0.78)],
                ("sotu", "bge", "fp32", "labels [avg3]", 0.3): [r(1, 0.81), r(2, 0.82), r(4, 0.99)],   # seed 4: unpaired
                ("sotu", "minilm", "fp32", "labels", 0.3): [r(1, 0.70)],
                ("sotu", "minilm", "fp32", "labels [avg3]", 0.3): [r(1, 0.69)],
                ("sotu", "bge", "fp32", "label-free", 0.3): [r(1, 0.75)],
                ("sotu", "bge", "fp32", "label-free [avg3]", 0.3): [r(1, 0.78)],
                ("tweets", "bge", "fp32", "label-free [val-text]", 0.3): [r(1, 0.5)]}   # no plain run: no row
        rows = [l for l in eval_suite.variant_effects(post) if l.startswith("| fp32")]
        self.assertEqual(2, len(rows), rows)
        self.assertIn("| 30% | label-free [avg3] | 1 | +3.00 | 1 / 0 / 0 | bge +3.00 |", rows[0])
        # labels: bge +1 and 0 on seeds 1-2, MiniLM -1: mean 0, one up, one down, one equal
        self.assertIn("| 30% | labels [avg3] | 3 | +0.00 ± ", rows[1])
        self.assertIn("| 1 / 1 / 1 | bge +0.50; minilm -1.00 |", rows[1])
        self.assertEqual([], eval_suite.variant_effects({("a", "b", "fp32", "labels", 0.3): [r(1, 0.5)]}))


if __name__ == "__main__":
    unittest.main()
