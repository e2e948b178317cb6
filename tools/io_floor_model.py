#!/usr/bin/env python3
"""Write a transformer-shaped ONNX model that does almost no work, to measure the fixed cost of one
`gatecut bench` run (session.run overhead, input upload, output download) at a given hidden size.

    python3 tools/io_floor_model.py OUT.onnx --hidden 768

Inputs input_ids, attention_mask [batch, sequence] int64 (and token_type_ids with --token-types);
output last_hidden_state [batch, sequence, hidden] float32 = Embedding(input_ids) * attention_mask.
Two GPU kernels (Gather, Mul) plus a Cast; the output has the size of a real model's.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--token-types", action="store_true")
    a = ap.parse_args()
    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims)]
    emb = np.random.default_rng(0).standard_normal((a.vocab, a.hidden)).astype(np.float32)
    inits = [numpy_helper.from_array(emb, "E"), numpy_helper.from_array(np.array([-1], np.int64), "axes")]
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["g"]),
             helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["mf", "axes"], ["mu"])]
    if a.token_types:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, dims))
        inits.append(numpy_helper.from_array(np.random.default_rng(1).standard_normal((2, a.hidden))
                                             .astype(np.float32), "T"))
        nodes += [helper.make_node("Gather", ["T", "token_type_ids"], ["t"]),
                  helper.make_node("Add", ["g", "t"], ["gt"]),
                  helper.make_node("Mul", ["gt", "mu"], ["last_hidden_state"])]
    else:
        nodes.append(helper.make_node("Mul", ["g", "mu"], ["last_hidden_state"]))
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [a.hidden])
    m = helper.make_model(helper.make_graph(nodes, "io_floor", inputs, [out], inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8   # what opset 17 needs; gatecut reads IR versions up to 11
    onnx.checker.check_model(m)
    onnx.save(m, a.out)
    print(f"wrote {a.out}: hidden {a.hidden}")


if __name__ == "__main__":
    main()
