package dev.gatecut.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What {@code --help} shows: examples that run as written, and options that say what they do. */
class HelpTextTest {

    /** Every command of ours (picocli's own {@code help} excluded), by name; "" is the top level. */
    private static Map<String, CommandLine> commands() {
        CommandLine root = GatecutCli.commandLine();
        Map<String, CommandLine> all = new LinkedHashMap<>();
        all.put("", root);
        root.getSubcommands().forEach((name, cl) -> {
            if (!(cl.getCommand() instanceof CommandLine.HelpCommand)) {
                all.put(name, cl);
            }
        });
        return all;
    }

    /** A command's options, then its positional parameters. */
    private static List<ArgSpec> argSpecs(CommandSpec spec) {
        List<ArgSpec> args = new ArrayList<>(spec.options());
        args.addAll(spec.positionalParameters());
        return args;
    }

    /** The example commands of a usage text: lines after the example prefix, joined over trailing backslashes. */
    static List<List<String>> examples(String usage) {
        List<List<String>> found = new ArrayList<>();
        String[] lines = usage.split("\\R");
        for (int i = 0; i < lines.length; i++) {
            if (!lines[i].startsWith(GatecutCli.EXAMPLE_RUN + " ")) {
                continue;
            }
            StringBuilder command = new StringBuilder(lines[i].substring(GatecutCli.EXAMPLE_RUN.length()));
            while (command.toString().endsWith("\\")) {
                command.setLength(command.length() - 1);
                command.append(' ').append(lines[++i].strip());
            }
            found.add(List.of(command.toString().strip().split("\\s+")));
        }
        return found;
    }

    @Test
    void everyCommandShowsAnExample() {
        commands().forEach((name, cl) -> {
            List<List<String>> examples = examples(cl.getUsageMessage());
            assertFalse(examples.isEmpty(), "gatecut " + name + " --help shows no example:\n" + cl.getUsageMessage());
            for (List<String> example : examples) {
                assertTrue(example.stream().noneMatch(a -> a.contains("\"") || a.contains("'")),
                        "examples are plain words (the test splits them on spaces): " + example);
            }
        });
    }

    /**
     * Runs every example of every {@code --help} as written, from the repository root; only the
     * outputs under {@code out/} (git-ignored) go to a fresh temp folder, so reruns start clean.
     */
    @Test
    void everyExampleRuns(@TempDir Path dir) throws Exception {
        int ran = 0;
        for (var command : commands().entrySet()) {
            for (List<String> example : examples(command.getValue().getUsageMessage())) {
                List<String> args = new ArrayList<>();
                for (String a : example) {
                    args.add(a.startsWith("out/") ? dir.resolve(a.substring(4)).toString() : a);
                }
                for (String a : example) {
                    if (a.startsWith("onnx-models/") || a.startsWith("datasets/")) {
                        assertTrue(Files.exists(Path.of(a)), "the example names a file the repository lacks: " + a);
                    }
                }
                InspectCommandTest.Run run = gatecut(args.toArray(String[]::new));
                assertEquals(0, run.exit(), "gatecut " + String.join(" ", example) + "\n" + run.err() + run.out());
                ran++;
            }
        }
        assertTrue(ran >= commands().size(), "ran " + ran + " examples");
        assertTrue(Files.exists(dir.resolve("compress-example/report.html")), "the compress example wrote its report");
        assertTrue(Files.exists(dir.resolve("llama-slim.onnx")), "the prune example wrote its model");
    }

    /** More than a few words once the "(default ...)" part is left out: a bare default says nothing. */
    @Test
    void everyOptionSaysWhatItDoes() {
        List<String> vague = new ArrayList<>();
        commands().forEach((name, cl) -> {
            for (ArgSpec arg : argSpecs(cl.getCommandSpec())) {
                String text = String.join(" ", arg.description())
                        .replaceAll("\\(?[Dd]efault:? \\$\\{DEFAULT-VALUE}\\)?\\.?", "")
                        .replaceAll("\\$\\{[^}]*}", "");
                long words = List.of(text.strip().split("[\\s;,]+")).stream().filter(w -> w.matches(".*\\w.*")).count();
                if (words < 5) {
                    vague.add("gatecut " + name + " " + (arg.isOption() ? ((CommandLine.Model.OptionSpec) arg).longestName()
                            : arg.paramLabel()) + ": \"" + String.join(" ", arg.description()) + "\"");
                }
            }
        });
        assertTrue(vague.isEmpty(), "options whose description says too little:\n" + String.join("\n", vague));
    }

    /**
     * picocli formats each description with String.format: a bare '%' (as in "40% removed") makes it print a warning
     * on every --help and the text unformatted. Every description as written in the annotations formats (the spec's
     * description() is already unescaped, so the annotations themselves are read).
     */
    @Test
    void everyDescriptionFormats() {
        List<String> broken = new ArrayList<>();
        java.util.concurrent.atomic.AtomicInteger read = new java.util.concurrent.atomic.AtomicInteger();
        commands().forEach((name, cl) -> {
            CommandSpec spec = cl.getCommandSpec();
            List<String> texts = new ArrayList<>();
            CommandLine.Command command = spec.userObject().getClass().getAnnotation(CommandLine.Command.class);
            if (command != null) {
                texts.addAll(List.of(command.description()));
            }
            for (ArgSpec arg : argSpecs(spec)) {
                if (arg.userObject() instanceof java.lang.reflect.AnnotatedElement element) {
                    CommandLine.Option option = element.getAnnotation(CommandLine.Option.class);
                    CommandLine.Parameters parameters = element.getAnnotation(CommandLine.Parameters.class);
                    texts.addAll(List.of(option != null ? option.description()
                            : parameters != null ? parameters.description() : new String[0]));
                }
            }
            read.addAndGet(texts.size());
            for (String text : texts) {
                try {
                    String.format(text.replaceAll("\\$\\{[^}]*}", "x"));
                } catch (java.util.IllegalFormatException e) {
                    broken.add("gatecut " + name + ": \"" + text + "\" (" + e.getMessage() + ")");
                }
            }
        });
        assertTrue(read.get() > 100, "the annotations were read: " + read);
        assertTrue(broken.isEmpty(), "descriptions picocli cannot format (write %% for %):\n" + String.join("\n", broken));
    }
}
