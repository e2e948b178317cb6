package dev.gatecut.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.errors.FileAccessException;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;

/**
 * ONNX Runtime GenAI's model folder: beside a model its builder wrote lie {@code genai_config.json} (the decoder's
 * file, head counts, sizes) and the tokenizer files. When the compressed model came from such a folder, the slim
 * model's folder gets the config with the kept head counts and its file name, and the tokenizer files, so that
 * onnxruntime-genai loads it as it loaded the original. onnxruntime-genai sizes every layer's KV cache from one
 * {@code num_key_value_heads}: a slim model whose layers keep different counts gets no config (a line says to
 * compress with {@code --uniform-widths}).
 */
public final class GenaiFolder {
    /** The config's file name in a GenAI model folder. */
    public static final String CONFIG = "genai_config.json";
    /** The builder's processing files (tokenizer, generation settings), copied where present. */
    static final List<String> PROCESSING = List.of("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
            "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja",
            "generation_config.json");

    private GenaiFolder() {
    }

    /**
     * Writes {@code folder}/genai_config.json for {@code slim} (saved there as {@code fileName}) from the config
     * beside {@code source}, and copies the processing files. Returns the line to print; empty when {@code source}
     * has no GenAI config beside it. Nothing is written into the source's own folder (its config stays).
     */
    public static Optional<String> write(Path source, OnnxModel slim, String fileName, Path folder) {
        return write(source, slim, fileName, folder, true);
    }

    /** As {@link #write(Path, OnnxModel, String, Path)}; without {@code replace} a config already in {@code folder} stays. */
    public static Optional<String> write(Path source, OnnxModel slim, String fileName, Path folder, boolean replace) {
        Path from = source.toAbsolutePath().getParent();
        Path config = from.resolve(CONFIG);
        if (!Files.isRegularFile(config)) {
            return Optional.empty();
        }
        try {
            ObjectNode root = (ObjectNode) new ObjectMapper().readTree(config.toFile());
            JsonNode decoder = root.path("model").path("decoder");
            if (!(decoder instanceof ObjectNode d)) {
                return Optional.of(CONFIG + " beside " + source + " has no model.decoder: not written");
            }
            String named = d.path("filename").asText("");
            if (!named.equals(source.getFileName().toString())) {
                return Optional.of(CONFIG + " beside " + source + " describes '" + named + "', not this file: not written");
            }
            if (Files.isSameFile(from, folder.toAbsolutePath())) {
                return Optional.of(CONFIG + " not written: the output folder is the model's own (its config stays as it"
                        + " was); write the slim model into a folder of its own for onnxruntime-genai");
            }
            if (!replace && Files.exists(folder.resolve(CONFIG))) {
                return Optional.of(CONFIG + " not written: " + folder + " already has one");
            }
            TreeSet<String> counts = new TreeSet<>();
            long heads = -1;
            long kvHeads = -1;
            for (Node n : slim.graph().nodes()) {
                if (n.is("GroupQueryAttention", "com.microsoft")) {
                    heads = n.intAttribute("num_heads", 0);
                    kvHeads = n.intAttribute("kv_num_heads", 0);
                    counts.add(heads + "/" + kvHeads);
                }
            }
            if (counts.size() > 1) {
                return Optional.of(CONFIG + " not written: the layers keep different head counts (query/KV " + counts
                        + "), and onnxruntime-genai sizes its KV cache from one num_key_value_heads; compress with"
                        + " --uniform-widths for a model it can load");
            }
            d.put("filename", fileName);
            if (heads > 0) {
                d.put("num_attention_heads", heads);
                d.put("num_key_value_heads", kvHeads);
            }
            hiddenWidth(slim.graph()).ifPresent(w -> d.put("hidden_size", w));
            String json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(root);
            AtomicFiles.write(folder.resolve(CONFIG), tmp -> Files.writeString(tmp, json, StandardCharsets.UTF_8));
            int copied = 0;
            for (String f : PROCESSING) {
                if (Files.isRegularFile(from.resolve(f))) {
                    Files.copy(from.resolve(f), folder.resolve(f), StandardCopyOption.REPLACE_EXISTING);
                    copied++;
                }
            }
            return Optional.of("onnxruntime-genai: " + folder.resolve(CONFIG) + " (" + (heads > 0 ? heads
                    + " query / " + kvHeads + " KV heads per layer, " : "") + fileName + ")"
                    + (copied > 0 ? " and " + copied + " tokenizer file(s)" : ""));
        } catch (IOException e) {
            throw FileAccessException.of("write", folder.resolve(CONFIG), e);
        }
    }

    /** The width of the token embedding (the table input_ids index), which hidden gates may have narrowed. */
    private static Optional<Long> hiddenWidth(Graph g) {
        Optional<Value> ids = g.value("input_ids").filter(Value::isGraphInput);
        if (ids.isEmpty()) {
            return Optional.empty();
        }
        for (Value.Use u : ids.get().uses()) {
            Node n = u.node();
            if (n.is("Gather") && u.index() == 1 && n.input(0).isInitializer()
                    && n.input(0).initializer().dims().length == 2) {
                return Optional.of(n.input(0).initializer().dims()[1]);
            }
        }
        return Optional.empty();
    }
}
