package dev.gatecut.runtime;

import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.HalfFloats;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.testing.Protos;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The half-precision compile check on a classifier with few outputs (logits [batch, 2]) whose roundoff, relative
 * to the logits, is over float16's fixed bound (rounded to sixteenths, as values near 100 are): the compiled
 * model is held to twice the gated model's own error. Over the four logits of one draw of 2 rows the two maxima
 * are a noisy pair, and a correct compile that rounds on another grid is refused on some draws; over 128 logits
 * it passes on every draw, and a wrong model still fails.
 */
class HalfPrecisionCheckTest {
    @Test
    void fewOutputsAreComparedOverEnoughRowsToTrustTheirMaxima() throws Exception {
        OnnxModel gated = logits(DataType.FLOAT16, 1, 0);
        try (OrtSession exact = session(logits(DataType.FLOAT, 0, 0));
             OrtSession gatedSession = session(gated);
             OrtSession roundsElsewhere = session(logits(DataType.FLOAT16, 1.375f, 0));
             OrtSession wrong = session(logits(DataType.FLOAT16, 1, 0.25f))) {
            int refusedOnFour = 0;
            for (long seed = 1; seed <= 40; seed++) {
                Equivalence.AgainstReference four = Equivalence.againstReference(exact, gatedSession, roundsElsewhere,
                        gated.graph(), 2, 8, seed, 0);
                if (four.candidate() > four.bound(Equivalence.tolerance(gated.graph()))) {
                    refusedOnFour++;
                }
                Equivalence.Comparison c = Equivalence.compiledAgainstGated(exact, gatedSession, roundsElsewhere,
                        gated.graph(), 2, 8, seed);
                assertTrue(c.passed(), "seed " + seed + ": " + c);
                assertTrue(c.gatedError() > Equivalence.tolerance(gated.graph()), "over the fixed bound: " + c);
                Equivalence.Comparison miscompiled = Equivalence.compiledAgainstGated(exact, gatedSession, wrong,
                        gated.graph(), 2, 8, seed);
                assertFalse(miscompiled.passed(), "seed " + seed + ": " + miscompiled);
            }
            assertTrue(refusedOnFour > 0, "four logits alone refuse the correct model on some draw");
        }
    }

    private static OrtSession session(OnnxModel model) throws Exception {
        return OrtSessions.environment().createSession(model.toByteArray(), new OrtSession.SessionOptions());
    }

    /**
     * logits [batch, 2] = x[:, 0, :] (the float32 reference: {@code grid} 0), or rounded to multiples of 1/16 as
     * a float16 model near 100 rounds, on a grid offset by {@code grid} − 1 sixteenths; plus {@code shift}.
     * The rounding is explicit (Round), as ONNX Runtime's CPU provider runs float16 arithmetic in float32.
     */
    private static OnnxModel logits(DataType type, float grid, float shift) {
        GraphProto.Builder g = GraphProto.newBuilder().setName("classifier")
                .addInput(valueOf("x", type, 3))
                .addInitializer(TensorProto.newBuilder().setName("first").setDataType(DataType.INT64.code())
                        .addInt64Data(0))
                .addInitializer(scalar("sixteen", type, 16))
                .addInitializer(scalar("offset", type, grid - 1))
                .addInitializer(scalar("shift", type, shift))
                .addNode(Protos.node("Gather", "cls", List.of("x", "first"), List.of("h"),
                        AttributeProto.newBuilder().setName("axis").setType(AttributeProto.AttributeType.INT)
                                .setI(1).build()));
        String last = "h";
        if (grid != 0) {
            g.addNode(Protos.node("Mul", "up", List.of("h", "sixteen"), List.of("h16")))
                    .addNode(Protos.node("Add", "move", List.of("h16", "offset"), List.of("moved")))
                    .addNode(Protos.node("Round", "round", List.of("moved"), List.of("rounded")))
                    .addNode(Protos.node("Sub", "back", List.of("rounded", "offset"), List.of("r16")))
                    .addNode(Protos.node("Div", "down", List.of("r16", "sixteen"), List.of("r")));
            last = "r";
        }
        g.addNode(Protos.node("Add", "head", List.of(last, "shift"), List.of("logits")))
                .addOutput(valueOf("logits", type, 2));
        return OnnxModel.of(ModelProto.newBuilder().setIrVersion(8).setGraph(g)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17)).build());
    }

    private static TensorProto scalar(String name, DataType type, float value) {
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(type.code());
        if (type == DataType.FLOAT16) {
            ByteBuffer b = ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN)
                    .putShort(HalfFloats.floatToFloat16(value));
            return t.setRawData(ByteString.copyFrom(b.array())).build();
        }
        return t.addFloatData(value).build();
    }

    /** [batch, sequence, 2] (rank 3) or [batch, 2]. */
    private static ValueInfoProto valueOf(String name, DataType type, int rank) {
        List<TensorShapeProto.Dimension> dims = new ArrayList<>();
        dims.add(TensorShapeProto.Dimension.newBuilder().setDimParam("batch").build());
        if (rank == 3) {
            dims.add(TensorShapeProto.Dimension.newBuilder().setDimParam("sequence").build());
        }
        dims.add(TensorShapeProto.Dimension.newBuilder().setDimValue(2).build());
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(type.code())
                        .setShape(TensorShapeProto.newBuilder().addAllDim(dims)))).build();
    }
}
