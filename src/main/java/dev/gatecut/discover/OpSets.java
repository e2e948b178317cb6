package dev.gatecut.discover;

import java.util.Set;

/** The op families discovery rules walk through. */
final class OpSets {
    private OpSets() {
    }

    /** Element-wise ops of one input that keep channels where they are. */
    static final Set<String> UNARY = Set.of("Relu", "Gelu", "Erf", "Tanh", "Sigmoid", "Neg", "Identity", "Cast",
            "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "Abs", "Sqrt", "Exp", "HardSigmoid", "HardSwish",
            "Mish", "Sin", "Cos", "Dropout", "FastGelu", "QuickGelu");
    /** The subset with f(0) = 0: a zero channel stays zero through them. */
    static final Set<String> ZERO_PRESERVING_UNARY = Set.of("Relu", "Gelu", "Erf", "Tanh", "Neg", "Identity",
            "Cast", "Softsign", "LeakyRelu", "Elu", "Selu", "Abs", "Sqrt", "HardSwish", "Mish", "Sin", "Dropout",
            "FastGelu", "QuickGelu");
    /** Two-input ops that keep channels where they are; FastGelu with its optional bias (ORT's GPT-2 fusion) too. */
    static final Set<String> BINARY = Set.of("Add", "Sub", "Mul", "Div", "Pow", "BiasGelu", "FastGelu");
    /** Ops that only move data around on the way between a projection and the attention MatMuls. */
    static final Set<String> LAYOUT = Set.of("Transpose", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze",
            "Expand", "Dropout");
    /** Where a backward trace ends without finding a projection: positions, shapes, inputs. */
    static final Set<String> POSITIONAL = Set.of("Cos", "Sin", "Shape", "Range", "ConstantOfShape", "Gather",
            "Constant", "Where", "Equal", "Less", "Greater", "Not", "And", "Or", "GatherND", "Trilu", "CumSum");
}
