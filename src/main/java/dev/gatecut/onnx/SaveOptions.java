package dev.gatecut.onnx;

/**
 * How {@link ModelIO#save} places tensor data.
 *
 * @param externalData      where initializer bytes go
 * @param dataFileName      side-file name, relative to the model's folder; null means
 *                          {@code <model file name>.data}
 * @param externalThreshold tensors smaller than this many bytes stay inline even when externalizing
 * @param sync              force the bytes to disk before the files are renamed into place; off only
 *                          for temporary files that are read at once and deleted (ONNX Runtime sessions)
 * @param zeroFloatsFrom    floating-point tensors of at least this many bytes that go to the side file are
 *                          left as holes in it, read back as zeros (a shape probe's copy: shapes do not depend
 *                          on weight values, and a 13 GB model then costs no copy); {@link Long#MAX_VALUE}: off
 */
public record SaveOptions(ExternalData externalData, String dataFileName, long externalThreshold, boolean sync,
                          long zeroFloatsFrom) {

    public enum ExternalData {
        /** External when the source model used it or the inline model would exceed protobuf's 2 GB. */
        AUTO,
        /** Always move tensors of at least {@code externalThreshold} bytes to the side file. */
        ALWAYS,
        /** Everything inline; a model over 2 GB is an error. */
        NEVER
    }

    public static SaveOptions defaults() {
        return new SaveOptions(ExternalData.AUTO, null, 1024, true, Long.MAX_VALUE);
    }

    public SaveOptions withExternalData(ExternalData mode) {
        return new SaveOptions(mode, dataFileName, externalThreshold, sync, zeroFloatsFrom);
    }

    public SaveOptions withDataFileName(String name) {
        return new SaveOptions(externalData, name, externalThreshold, sync, zeroFloatsFrom);
    }

    public SaveOptions withExternalThreshold(long bytes) {
        return new SaveOptions(externalData, dataFileName, bytes, sync, zeroFloatsFrom);
    }

    /** For a temporary file read at once and deleted: a crash cannot leave it half-written anywhere that matters. */
    public SaveOptions withoutSync() {
        return new SaveOptions(externalData, dataFileName, externalThreshold, false, zeroFloatsFrom);
    }

    /** For a shape probe's temporary copy only: see {@code zeroFloatsFrom}. */
    public SaveOptions withZeroFloatsFrom(long bytes) {
        return new SaveOptions(externalData, dataFileName, externalThreshold, sync, bytes);
    }
}
