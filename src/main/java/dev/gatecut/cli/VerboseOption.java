package dev.gatecut.cli;

import picocli.CommandLine.Option;

/** The {@code -v/--verbose} flag every command shares. */
public final class VerboseOption {
    @Option(names = {"-v", "--verbose"}, description = "Show the stack trace of an error after its one-line message (bench: also each step it takes).")
    boolean verbose;
}
