package dev.gatecut.cli;

import picocli.CommandLine.Option;

/** The {@code -v/--verbose} flag every command shares. */
public final class VerboseOption {
    @Option(names = {"-v", "--verbose"}, description = "Show stack traces and extra detail.")
    boolean verbose;
}
