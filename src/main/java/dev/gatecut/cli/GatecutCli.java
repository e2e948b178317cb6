package dev.gatecut.cli;

import ai.onnxruntime.OrtException;
import dev.gatecut.errors.BadInputException;
import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.GatecutException;
import dev.gatecut.errors.InternalException;
import dev.gatecut.runtime.OrtSessions;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** {@code gatecut COMMAND ...}: the command-line front end over the library. */
@Command(name = "gatecut", mixinStandardHelpOptions = true, versionProvider = GatecutCli.Version.class,
        description = "Train structured sparsity into ONNX transformer models and compile slimmer ONNX files.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {GatecutCli.EXAMPLE_RUN + " inspect onnx-models/bert-ts17.onnx",
                "", "Each command's --help shows an example. The README's demo compresses the",
                "pretrained all-MiniLM-L6-v2 (target/models after mvn package)."},
        subcommands = {InspectCommand.class, TrainCommand.class, CompressCommand.class, PruneCommand.class, UnmergeCommand.class, BenchCommand.class, BenchCompileCommand.class, BenchMemoryCommand.class, ExportArtifactsCommand.class, CommandLine.HelpCommand.class})
public final class GatecutCli {

    /**
     * How every {@code --help} example starts: run from the repository root after {@code mvn package},
     * against files in the repository. {@code HelpExamplesTest} runs every example shown.
     */
    static final String EXAMPLE_RUN = "  java -jar target/gatecut.jar";
    static final String EXAMPLE_HEADING = "%nExample (from the repository root, after mvn package):%n";

    /** Exit code for bad input: every {@link BadInputException} and picocli's option errors. */
    public static final int EXIT_BAD_INPUT = BadInputException.EXIT_CODE;
    /** Exit code for any other failure. */
    public static final int EXIT_FAILURE = InternalException.EXIT_CODE;

    public static void main(String[] args) {
        dev.gatecut.runtime.OrtTempFolder.cleanUpAtExit();
        System.exit(run(args));
    }

    public static int run(String... args) {
        return commandLine().execute(args);
    }

    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new GatecutCli());
        cl.setExecutionExceptionHandler(GatecutCli::handle);
        cl.setParameterExceptionHandler(GatecutCli::handleParameter);
        return cl;
    }

    /**
     * The exit code of a failure: a {@link GatecutException} carries its own; anything else that
     * reaches the command line (an OrtException, an IllegalStateException) is gatecut's failure.
     */
    static int exitCode(Exception e) {
        return e instanceof GatecutException g ? g.exitCode() : EXIT_FAILURE;
    }

    /** The one line shown for a failure. */
    static String message(Exception e) {
        if (e instanceof OrtException) {
            return "ONNX Runtime failed: " + OrtSessions.describe(e);
        }
        if (e instanceof java.io.IOException io) {
            return FileAccessException.reason(io);
        }
        if (e instanceof java.io.UncheckedIOException io) {
            return FileAccessException.reason(io.getCause());
        }
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    /**
     * {@code message} with its control and line-separator characters escaped (a newline as backslash-n, U+2028 as
     * backslash-u2028, ...): names read from a damaged file can hold them, and the error must stay one line.
     */
    static String oneLine(String message) {
        if (message == null) {
            return "";
        }
        StringBuilder b = new StringBuilder(message.length());
        for (int i = 0; i < message.length(); i++) {
            char c = message.charAt(i);
            switch (c) {
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20 || c == 0x7f || c == 0x85 || c == 0x2028 || c == 0x2029) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.toString();
    }

    /** One line on stderr per failure; the stack trace only with --verbose. */
    private static int handle(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        boolean verbose = parsed.hasMatchedOption("--verbose")
                || (parsed.subcommand() != null && parsed.subcommand().hasMatchedOption("--verbose"));
        err.println("gatecut: error: " + oneLine(message(e)));
        if (verbose) {
            e.printStackTrace(err);
        } else if (!(e instanceof BadInputException)) {
            err.println("(run again with --verbose for the stack trace)");
        }
        err.flush();
        return exitCode(e);
    }

    /** An option picocli cannot parse is bad input like any other: the same one-line form, exit 2. */
    private static int handleParameter(CommandLine.ParameterException e, String[] args) {
        CommandLine cl = e.getCommandLine();
        PrintWriter err = cl.getErr();
        err.println("gatecut: error: " + oneLine(e.getMessage()));
        if (!CommandLine.UnmatchedArgumentException.printSuggestions(e, err)) {
            err.println("(see " + cl.getCommandSpec().qualifiedName() + " --help)");
        }
        err.flush();
        return EXIT_BAD_INPUT;
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() throws java.io.IOException {
            java.util.Properties p = new java.util.Properties();
            try (var in = GatecutCli.class.getResourceAsStream("/dev/gatecut/version.properties")) {
                if (in != null) {
                    p.load(in);
                }
            }
            String v = p.getProperty("version", "unknown (built without Maven)");
            return new String[] {"gatecut " + v + ", ONNX Runtime 1.24.1"};
        }
    }
}
