#!/usr/bin/env python3
"""Checks of tools/decoder_study_report.py on a made-up raw folder:  python3 tools/test_decoder_study_report.py

The figures are invented inputs of the table code (not results): three seeds per row, so the 95% t-interval
is t(2) = 4.303 times the standard error; a skipped and a failed job are listed, not averaged."""
import json
import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decoder_study_report as r  # noqa: E402


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def job(raw, variant, s, seed, ppl, exit_code=0, curve=(), dense=None):
    tag = f"{variant}-s{s}-seed{seed}"
    write(os.path.join(raw, tag, "job.json"), {"tag": tag, "variant": variant, "flags": "--distill 1" if variant != "default" else "",
                                               "sparsity": s, "seed": seed, "exit": exit_code, "wall_seconds": 30})
    if exit_code == 0:
        summary = {"slim_eval_perplexity": ppl, "targeted_after": 70, "targeted_before": 100, "train_seconds": 12.0}
        if dense is not None:
            summary["dense_eval_perplexity"] = dense
        write(os.path.join(raw, tag, "summary.json"), summary)
        with open(os.path.join(raw, tag, "metrics.jsonl"), "w", encoding="utf-8") as f:
            f.write(json.dumps({"step": 1, "loss": 3.0}) + "\n")
            for e, p in enumerate(curve):
                f.write(json.dumps({"step": 10 * (e + 1), "epoch": e, "eval": True, "perplexity": p}) + "\n")


class ReportTest(unittest.TestCase):
    def test_mean_and_t_interval(self):
        m, h = r.mean_ci([10.0, 12.0, 14.0])
        self.assertAlmostEqual(m, 12.0)
        self.assertAlmostEqual(h, 4.303 * 2.0 / math.sqrt(3), places=6)
        m, h = r.mean_ci([5.0])
        self.assertEqual(m, 5.0)
        self.assertTrue(math.isnan(h))

    def test_table(self):
        with tempfile.TemporaryDirectory() as raw:
            write(os.path.join(raw, "pretrain.json"), {
                "model": {"parameters": 13056000},
                "pretrain": {"steps": 1500, "seconds": 44.0, "best_step": 1000, "val_ppl": 70.0, "train_ppl": 30.0},
                "dense_untuned": {"test": {"ppl_torch_fp32": 95.0, "ppl_onnx_ort_cpu": 95.01}},
                "lora": {"seed": 1, "test_ppl_final": 56.0},
                "lora_seeds": [{"seed": 1, "test_ppl_final": 56.0}, {"seed": 2, "test_ppl_final": 57.0},
                               {"seed": 3, "test_ppl_final": 58.0}, {"seed": 4, "error": "RuntimeError: boom"}]})
            for seed, p in ((1, 60.0), (2, 62.0), (3, 64.0)):
                job(raw, "default", 0.0, seed, p, curve=(70.0, p), dense=95.02 if seed == 1 else None)
                job(raw, "default", 0.3, seed, p + 10, curve=(80.0, p + 10))
            job(raw, "distill", 0.3, 1, 66.0)
            job(raw, "distill", 0.3, 2, 0, exit_code=1)
            write(os.path.join(raw, "distill-s0.3-seed3", "job.json"), {"tag": "distill-s0.3-seed3", "variant": "distill",
                                                                         "sparsity": 0.3, "seed": 3, "skipped": "10s left"})
            text = r.report(raw)
        rows = {line.split("|")[1].strip() + " @" + line.split("|")[2].strip(): line for line in text.splitlines()
                if line.startswith("| ") and not line.startswith("| model") and line.count("|") == 11}   # the main table
        lora = rows["dense + PEFT LoRA r=8 @0"]
        self.assertIn(f"57.00 ± {4.303 / math.sqrt(3):.2f}", lora)          # sd 1 over 3 seeds
        control = rows["gatecut, default recipe (control: nothing closed) @0"]
        self.assertIn(f"62.00 ± {4.303 * 2 / math.sqrt(3):.2f}", control)
        self.assertIn("| +5.00 | 1.088 | +0.00 |", control)                  # Δ and ratio against LoRA's 57
        cut = rows["gatecut, default recipe @0.3"]
        self.assertIn("| 70.0% | +15.00 | 1.263 | +10.00 | 12.0 |", cut)
        distill = rows["gatecut [distill] @0.3"]
        self.assertIn("| 1 | 66.00 | 1: 66.00 |", distill)                   # one seed: no interval
        self.assertIn("| 95.01 |", rows["dense, as pretrained (ONNX Runtime; torch 95.000) @0"])
        self.assertIn("| 95.02 |", rows["dense, as pretrained (gatecut's evaluator) @0"])
        self.assertIn("| gatecut, default recipe | 0.3 | 80.00 | 72.00 |", text)   # the per-epoch means
        self.assertIn("distill-s0.3-seed3: skipped (10s left)", text)
        self.assertIn("distill-s0.3-seed2: exit 1", text)
        self.assertIn("LoRA seed 4: RuntimeError: boom", text)


if __name__ == "__main__":
    unittest.main()
