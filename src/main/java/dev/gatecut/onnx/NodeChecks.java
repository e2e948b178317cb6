package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.FunctionProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Load-time checks of nodes: the domain is imported, attributes that ONNX Runtime 1.24 trusts
 * without checking (and crashes on: found by {@code ModelFuzzTest}) lie in the range the ONNX spec
 * gives them, and no integer division has a constant zero divisor.
 */
final class NodeChecks {
    private NodeChecks() {
    }

    /** An integer attribute of one op type (default domain) and its valid range from the ONNX spec. */
    record IntRange(String opType, String attribute, long min, long max) {
        void check(NodeProto n, String where) {
            if (!n.getOpType().equals(opType) || !(n.getDomain().isEmpty() || n.getDomain().equals("ai.onnx"))) {
                return;
            }
            for (AttributeProto a : n.getAttributeList()) {
                if (a.getName().equals(attribute) && (a.getType() != AttributeProto.AttributeType.INT
                        || a.getI() < min || a.getI() > max)) {
                    throw new ModelException(where + ": node '" + n.getName() + "' (" + opType + ") attribute '"
                            + attribute + "' is " + (a.getType() == AttributeProto.AttributeType.INT ? a.getI()
                            : "of type " + a.getType()) + "; the ONNX spec allows an integer in " + min + ".."
                            + max);
                }
            }
        }
    }

    static final List<IntRange> INT_RANGES = List.of(
            new IntRange("GatherND", "batch_dims", 0, 64));

    static void check(NodeProto n, Set<String> domains, String where) {
        checkDomain(n, domains, where);
        for (IntRange r : INT_RANGES) {
            r.check(n, where);
        }
    }

    /** Integer element types, whose division by zero ONNX Runtime's CPU kernels do not check. */
    private static final Set<DataType> INTEGERS = java.util.EnumSet.of(DataType.INT8, DataType.UINT8, DataType.INT16,
            DataType.UINT16, DataType.INT32, DataType.UINT32, DataType.INT64, DataType.UINT64);

    /** Constant divisors larger than this are not read (integer divisors are shape-sized). */
    private static final long DIVISOR_ELEMENTS_READ = 1 << 16;

    /**
     * Integer Div and Mod whose divisor is a constant with a zero in it: ONNX Runtime 1.24's CPU kernels divide
     * without checking and the process dies of SIGFPE (found by {@code ModelFuzzTest} on an MT5 encoder whose
     * Unsqueeze, axes [0], became a Div). A divisor computed at run time is not known here.
     */
    static void checkDivisors(Graph graph, String where) {
        for (Node n : graph.nodes()) {
            if (!(n.is("Div") || n.is("Mod")) || n.inputs().size() < 2 || !(n.domain().isEmpty()
                    || n.domain().equals("ai.onnx"))) {
                continue;
            }
            Value divisor = n.input(1);
            java.util.Optional<Tensor> c = Constants.of(divisor);
            if (c.isEmpty() || !INTEGERS.contains(c.get().dataType())
                    || c.get().elementCount() > DIVISOR_ELEMENTS_READ) {
                continue;
            }
            for (long d : c.get().longs()) {
                if (d == 0) {
                    throw new ModelException(where + ": node '" + n.name() + "' (" + n.opType() + ") divides by '"
                            + divisor.name() + "', an integer constant with a zero in it; ONNX Runtime would crash on"
                            + " the division by zero: fix the divisor");
                }
            }
        }
    }

    /** The domains a node may use: the imported opsets and the model's own functions. */
    static Set<String> importedDomains(ModelProto proto) {
        Set<String> domains = new HashSet<>();
        for (OperatorSetIdProto o : proto.getOpsetImportList()) {
            domains.add(canonical(o.getDomain()));
        }
        for (FunctionProto f : proto.getFunctionsList()) {
            domains.add(canonical(f.getDomain()));
        }
        return domains;
    }

    static void checkDomain(NodeProto n, Set<String> domains, String where) {
        String domain = canonical(n.getDomain());
        if (!domains.contains(domain)) {
            throw new ModelException(where + ": node '" + n.getName() + "' (" + n.getOpType() + ") is in domain '"
                    + (domain.isEmpty() ? "ai.onnx" : domain) + "', which the model's opset_import does not list"
                    + " (imported: " + domains.stream().map(d -> d.isEmpty() ? "ai.onnx" : d).sorted().toList() + ")");
        }
    }

    private static String canonical(String domain) {
        return domain.equals("ai.onnx") ? "" : domain;
    }
}
