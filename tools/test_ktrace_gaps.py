#!/usr/bin/env python3
"""Checks of tools/ktrace_gaps.py on a hand-made trace:  python3 tools/test_ktrace_gaps.py

Overlapping records merge into one busy span; idle gaps are bucketed by size and named by what ran
before and after; --last-ms keeps only the records of the trace's last milliseconds."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ktrace_gaps.py")
MS = 1_000_000   # ns

TRACE = "\n".join([
    f"K\t{0 * MS}\t{2 * MS}\tgemm_a",              # busy 0-2 ms
    f"K\t{1 * MS}\t{3 * MS}\tmul_overlapping",     # overlaps: busy 0-3 ms
    f"M\t{3 * MS + 5_000}\t{4 * MS}\t32768\t1",    # 5 us gap, then a copy to the device until 4 ms
    f"K\t{9 * MS}\t{10 * MS}\tgemm_b",             # 5 ms gap (between steps)
    f"K\t{10 * MS + 200_000}\t{11 * MS}\treduce",  # 0.2 ms gap
]) + "\n"


def run(*args):
    with tempfile.TemporaryDirectory() as d:
        trace = os.path.join(d, "t.tsv")
        out = os.path.join(d, "g.json")
        with open(trace, "w") as f:
            f.write(TRACE)
        text = subprocess.run([sys.executable, TOOL, trace, "--json", out, *args], check=True,
                              capture_output=True, text=True).stdout
        return text, json.load(open(out))


class GapsTest(unittest.TestCase):
    def test_spans_buckets_and_neighbours(self):
        text, g = run("--steps", "2")
        self.assertAlmostEqual(g["span_ms"], 11.0)
        self.assertAlmostEqual(g["busy_ms"], 3.0 + 0.995 + 1.0 + 0.8, places=6)   # spans: 0-3, copy, gemm_b, reduce
        self.assertEqual(g["buckets"]["<10 us"]["count"], 1)
        self.assertEqual(g["buckets"]["0.1-1 ms"]["count"], 1)
        self.assertEqual(g["buckets"]["1-10 ms"]["count"], 1)
        largest = g["largest"][0]
        self.assertAlmostEqual(largest["ms"], 5.0)
        self.assertEqual(largest["before"], "memcpy HtoD 32768 B")
        self.assertEqual(largest["after"], "gemm_b")
        self.assertIn("per step (2)", text)

    def test_kernels_per_step_without_copies(self):
        text, g = run("--steps", "2", "--kernels")
        self.assertEqual(set(g["kernels"]), {"gemm_a", "mul_overlapping", "gemm_b", "reduce"})
        self.assertAlmostEqual(g["kernels"]["mul_overlapping"]["ms"], 2.0)
        self.assertIn("kernels: 4 (2 per step)", text)
        self.assertEqual({}, run("--steps", "2")[1]["kernels"])

    def test_last_ms_window(self):
        _, g = run("--last-ms", "2")
        self.assertAlmostEqual(g["span_ms"], 2.0)   # gemm_b and reduce only
        self.assertEqual(sum(b["count"] for b in g["buckets"].values()), 1)


if __name__ == "__main__":
    unittest.main()
