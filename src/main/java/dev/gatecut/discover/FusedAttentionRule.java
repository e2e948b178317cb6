package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.ArrayList;
import java.util.List;

import static dev.gatecut.discover.MatchFailure.check;

/**
 * ONNX Runtime's fused {@code com.microsoft:Attention}: one packed Q|K|V weight of equal parts,
 * {@code num_heads} heads, and the output projection that reads its output.
 */
final class FusedAttentionRule extends NodeRule {

    @Override
    public String name() {
        return "fused-attention";
    }

    @Override
    boolean anchors(MatchContext ctx, Node node) {
        return node.is("Attention", "com.microsoft");
    }

    @Override
    MatchOutcome match(MatchContext ctx, Node attention) {
        LinearLayer qkv = ctx.linearAt(attention);
        check(qkv != null, "its packed QKV weight is not an initializer", attention, "");
        check(attention.attribute("qkv_hidden_sizes").isEmpty() && attention.intAttribute("unidirectional", 0) == 0,
                "qkv_hidden_sizes / unidirectional attention are not supported yet", attention, "");
        int heads = (int) attention.intAttribute("num_heads", 0);
        long width = qkv.outFeatures() / 3;
        check(heads > 0 && width % heads == 0, "num_heads " + heads + " does not divide width " + width, attention,
                "heads");
        LinearLayer o = ctx.forwardToLinear(attention.output(0), new ArrayList<>());
        check(o.inFeatures() == width, "output projection takes " + o.inFeatures() + " inputs, not " + width,
                ctx.nodeOf(o), "output projection inputs");
        return new MatchOutcome.Matched(new AttentionGroup("attn:" + o.node(), new Projection(qkv, 0, width),
                new Projection(qkv, width, width), new Projection(qkv, 2 * width, width), o, heads, heads,
                width / heads, false, List.of(), List.of(), List.of(attention)));
    }
}
