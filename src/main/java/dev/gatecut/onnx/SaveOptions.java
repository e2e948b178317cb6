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
 */
public record SaveOptions(ExternalData externalData, String dataFileName, long externalThreshold, boolean sync) {

    public enum ExternalData {
        /** External when the source model used it or the inline model would exceed protobuf's 2 GB. */
        AUTO,
        /** Always move tensors of at least {@code externalThreshold} bytes to the side file. */
        ALWAYS,
        /** Everything inline; a model over 2 GB is an error. */
        NEVER
    }

    public static SaveOptions defaults() {
        return new SaveOptions(ExternalData.AUTO, null, 1024, true);
    }

    public SaveOptions withExternalData(ExternalData mode) {
        return new SaveOptions(mode, dataFileName, externalThreshold, sync);
    }

    public SaveOptions withDataFileName(String name) {
        return new SaveOptions(externalData, name, externalThreshold, sync);
    }

    public SaveOptions withExternalThreshold(long bytes) {
        return new SaveOptions(externalData, dataFileName, bytes, sync);
    }

    /** For a temporary file read at once and deleted: a crash cannot leave it half-written anywhere that matters. */
    public SaveOptions withoutSync() {
        return new SaveOptions(externalData, dataFileName, externalThreshold, false);
    }
}
