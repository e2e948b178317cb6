#!/usr/bin/env python3
"""Checks of tools/flops.py on the zoo (needs onnx and onnxruntime):  python3 tools/test_flops.py

Half-precision models are probed through a float32 stand-in, so their counts must equal their float32
twins' exactly, with their weights kept or replaced by zeros of their shape; a KV-cache decoder is
probed as a prefill (an empty past)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flops  # noqa: E402

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onnx-models", "deploy")
SHAPES = [(1, 16), (4, 9)]


def totals(name):
    c = flops.count(os.path.join(DEPLOY, name))
    return [(c.at(b, s)["linear"], c.at(b, s)["attention"], c.at(b, s)["total"]) for b, s in SHAPES]


class HalfPrecision(unittest.TestCase):
    def test_half_precision_twins_count_the_same(self):
        for fp32, halves in (("llama-kv-ts17-eager.onnx", ("llama-kv-ts17-eager-fp16.onnx", "llama-kv-ts17-eager-bf16.onnx")),
                             ("bert-cls-ortfused.onnx", ("bert-cls-ortfused-fp16.onnx",))):
            expected = totals(fp32)
            self.assertGreater(expected[0][0], 0, fp32)
            for half in halves:
                self.assertEqual(expected, totals(half), half)

    def test_large_weights_replaced_by_zeros_count_the_same(self):
        expected = totals("llama-kv-ts17-eager-fp16.onnx")
        saved = flops.SMALL_CONSTANT
        flops.SMALL_CONSTANT = 0
        try:
            self.assertEqual(expected, totals("llama-kv-ts17-eager-fp16.onnx"))
        finally:
            flops.SMALL_CONSTANT = saved

    def test_kv_cache_decoder_is_probed_as_a_prefill(self):
        # Every linear weight is used once per token: 2 * batch * sequence * weights, from an empty past.
        c = flops.count(os.path.join(DEPLOY, "llama-kv-ts17-eager.onnx"))
        for b, s in SHAPES:
            r = c.at(b, s)
            self.assertEqual(2 * b * s * r["linear_weight_parameters"], r["linear"], (b, s))
            self.assertGreater(r["attention"], 0)

    def test_ort_fused_half_precision_llama_counts_as_unfused(self):
        # ORT's fusions (SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization, RotaryEmbedding)
        # and convert_float_to_float16 leave every matrix product in place; only the rotary frequency
        # product ("other") moves into RotaryEmbedding's cos/sin caches.
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        plain = flops.count(os.path.join(root, "onnx-models", "llama-ts17.onnx"))
        fused = flops.count(os.path.join(root, "src", "test", "resources", "llama-ts17-ortopt-fp16.onnx"))
        for b, s in SHAPES:
            p, f = plain.at(b, s), fused.at(b, s)
            self.assertGreater(p["linear"], 0)
            self.assertEqual((p["linear"], p["attention"]), (f["linear"], f["attention"]), (b, s))
            self.assertEqual([], f["uncounted"])


if __name__ == "__main__":
    unittest.main()
