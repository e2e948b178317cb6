/**
 * gatecut as a library: {@link dev.gatecut.api.Gatecut#load} a model, then
 * {@link dev.gatecut.api.GatecutModel#compress compress} (train gates, compile, check, evaluate, report),
 * {@link dev.gatecut.api.GatecutModel#train train} or {@link dev.gatecut.api.GatecutModel#prune prune} it
 * with options built by named setters, following progress through a
 * {@link dev.gatecut.api.ProgressListener}. The command-line tool is a thin layer over this package.
 */
package dev.gatecut.api;
