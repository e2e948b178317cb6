package dev.gatecut.onnx;

/**
 * How {@link ModelIO#save} places tensor data.
 *
 * @param externalData      where initializer bytes go
 * @param dataFileName      side-file name, relative to the model's folder; null means
 *                          {@code <model file name>.data}
 * @param externalThreshold tensors smaller than this many bytes stay inline even when externalizing
 */
public record SaveOptions(ExternalData externalData, String dataFileName, long externalThreshold) {

    public enum ExternalData {
        /** External when the source model used it or the inline model would exceed protobuf's 2 GB. */
        AUTO,
        /** Always move tensors of at least {@code externalThreshold} bytes to the side file. */
        ALWAYS,
        /** Everything inline; a model over 2 GB is an error. */
        NEVER
    }

    public static SaveOptions defaults() {
        return new SaveOptions(ExternalData.AUTO, null, 1024);
    }

    public SaveOptions withExternalData(ExternalData mode) {
        return new SaveOptions(mode, dataFileName, externalThreshold);
    }

    public SaveOptions withExternalThreshold(long bytes) {
        return new SaveOptions(externalData, dataFileName, bytes);
    }
}
