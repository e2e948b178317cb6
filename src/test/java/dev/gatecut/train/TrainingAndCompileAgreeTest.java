package dev.gatecut.train;

import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Training discovers gates on an unfused, cache-bound copy of the model; compiling discovers them on
 * the file itself. Both must find the same gates, or trained gates cannot be compiled (seen with
 * ORT's fused RotaryEmbedding before it was traced through).
 */
class TrainingAndCompileAgreeTest {

    static List<Path> models() throws IOException {
        try (Stream<Path> deploy = Files.list(Path.of("onnx-models", "deploy"))) {
            return deploy.filter(p -> p.toString().endsWith(".onnx") && !p.toString().contains("int8")).sorted().toList();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void trainingFindsTheGatesTheCompilerFinds(Path model) throws Exception {
        boolean classifier = model.getFileName().toString().contains("-cls-");
        boolean encoder = model.getFileName().toString().matches("(t5|mt5)-.*");
        TrainConfig config = classifier ? TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)
                : encoder ? TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2)
                : TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        List<String> trained = TrainingGraph.evaluation(model, config).plan().gates().stream()
                .map(g -> g.name() + "[" + g.size() + "]").toList();
        try (OnnxModel m = OnnxModel.load(model)) {
            List<String> compiled = GatePlan.of(GroupFinder.discover(m), GateMode.COUPLED).gates().stream()
                    .map(g -> g.name() + "[" + g.size() + "]").toList();
            assertEquals(compiled, trained, model + ": gates of the training graph vs of the compiler");
        }
    }
}
