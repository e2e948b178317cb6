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
 * Load-time checks of nodes: the domain is imported, and attributes that ONNX Runtime 1.24 trusts
 * without checking (and crashes on: found by {@code ModelFuzzTest}) lie in the range the ONNX spec
 * gives them.
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
