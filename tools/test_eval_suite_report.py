#!/usr/bin/env python3
"""Checks of tools/eval_suite.py's report on a made-up raw folder:  python3 tools/test_eval_suite_report.py

The figures are invented inputs of the table code (not results). --select picks, per seed, the gatecut variant
whose slim model scored best on the validation slice, and reports that run's test accuracy."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_suite  # noqa: E402


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def gc(raw, variant, seed, val, test):
    d = os.path.join(raw, "tweets", "minilm", f"gc{'-' + variant if variant else ''}-s0.3-seed{seed}")
    write(os.path.join(d, "gc.json"), {"dataset": "tweets", "model": "minilm", "source": "pretrained",
                                       "variant": variant, "sparsity": 0.3, "seed": seed, "exit": 0,
                                       "gatecut_eval": "val", "accuracy": test, "macro_f1": test - 0.05,
                                       "summary": {"slim_eval_accuracy": val}})


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


if __name__ == "__main__":
    unittest.main()
