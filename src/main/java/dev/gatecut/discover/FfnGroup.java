package dev.gatecut.discover;

import java.util.List;
import java.util.Set;

/**
 * An FFN channel group: producer projections (up, and gate for SwiGLU) whose output channels pass
 * through element-wise ops only into the input columns of one consumer (down). Channel j is the
 * same across all of them: closing it removes a producer row and a consumer column.
 *
 * @param zeroKilling names of producer nodes whose zero row makes channel j exactly zero at the
 *                    consumer (the ops between map 0 to 0), so a zero row gate alone deletes it
 */
public record FfnGroup(String name, List<LinearLayer> producers, LinearLayer consumer, long width,
                       List<ChannelConstant> constants, List<ShapeEdit> shapeEdits,
                       Set<String> zeroKilling) implements ChannelGroup {
    public FfnGroup {
        producers = List.copyOf(producers);
        constants = List.copyOf(constants);
        shapeEdits = List.copyOf(shapeEdits);
        zeroKilling = Set.copyOf(zeroKilling);
    }

    @Override
    public String kind() {
        return producers.size() > 1 ? "ffn-glu" : "ffn";
    }
}
