package dev.gatecut.cli;

import dev.gatecut.errors.ModelException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;
import java.io.UncheckedIOException;

/** {@code gatecut COMMAND ...}: the command-line front end over the library. */
@Command(name = "gatecut", mixinStandardHelpOptions = true, versionProvider = GatecutCli.Version.class,
        description = "Train structured sparsity into ONNX transformer models and compile slimmer ONNX files.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {GatecutCli.EXAMPLE_RUN + " inspect onnx-models/bert-ts17.onnx",
                "", "Each command's --help shows an example. The README's demo compresses the",
                "pretrained all-MiniLM-L6-v2 (target/models after mvn package)."},
        subcommands = {InspectCommand.class, TrainCommand.class, CompressCommand.class, PruneCommand.class, BenchCommand.class, ExportArtifactsCommand.class, CommandLine.HelpCommand.class})
public final class GatecutCli {

    /**
     * How every {@code --help} example starts: run from the repository root after {@code mvn package},
     * against files in the repository. {@code HelpExamplesTest} runs every example shown.
     */
    static final String EXAMPLE_RUN = "  java -jar target/gatecut.jar";
    static final String EXAMPLE_HEADING = "%nExample (from the repository root, after mvn package):%n";

    /** Exit code for bad input (unreadable model, invalid option values). */
    public static final int EXIT_BAD_INPUT = 2;
    /** Exit code for any other failure. */
    public static final int EXIT_FAILURE = 1;

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
        return cl;
    }

    /** One line on stderr per failure; the stack trace only with --verbose. */
    private static int handle(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        boolean verbose = parsed.hasMatchedOption("--verbose")
                || (parsed.subcommand() != null && parsed.subcommand().hasMatchedOption("--verbose"));
        String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        err.println("gatecut: error: " + message);
        if (verbose) {
            e.printStackTrace(err);
        } else if (!(e instanceof ModelException) && !(e instanceof UncheckedIOException)
                && !(e instanceof IllegalArgumentException)) {
            err.println("(run again with --verbose for the stack trace)");
        }
        err.flush();
        return e instanceof ModelException || e instanceof IllegalArgumentException
                ? EXIT_BAD_INPUT : EXIT_FAILURE;
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
