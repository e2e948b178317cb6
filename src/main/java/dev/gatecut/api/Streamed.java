package dev.gatecut.api;

import dev.gatecut.discover.Discovery;
import dev.gatecut.gates.GateValues;
import dev.gatecut.prune.StreamingCompile;

/**
 * A prune written straight to its file by the streaming compiler (models with external data or over
 * 1 GiB): what was compiled and how long each step took.
 *
 * @param discovery the groups found in the model
 * @param gates     the gate values compiled
 * @param result    the compile report, the check's line and the compile/save/check times
 */
public record Streamed(Discovery discovery, GateValues gates, StreamingCompile.Result result) {
}
