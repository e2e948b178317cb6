package dev.gatecut.runtime.bound;

import org.bytedeco.onnxruntime.ArenaCfg;
import org.bytedeco.onnxruntime.Env;
import org.bytedeco.onnxruntime.MemoryInfo;

import static org.bytedeco.onnxruntime.global.onnxruntime.ORT_LOGGING_LEVEL_FATAL;
import static org.bytedeco.onnxruntime.global.onnxruntime.OrtArenaAllocator;
import static org.bytedeco.onnxruntime.global.onnxruntime.OrtMemTypeDefault;

/**
 * A CPU arena with a chosen {@code OrtArenaCfg}, registered in ONNX Runtime's process-wide environment through
 * bytedeco's binding ({@code CreateAndRegisterAllocator}); sessions opened through Microsoft's Java API with
 * {@code session.use_env_allocators=1} then allocate from it (one native library, one environment:
 * {@link BoundNatives}). Microsoft's Java API cannot configure the CPU arena beyond on/off; this lets the CPU
 * reproduce the CUDA arena's growth rule (kSameAsRequested) of training sessions.
 */
public final class SharedCpuArena {
    private static Env env;   // held for the process: releasing it would drop the registered allocator

    private SharedCpuArena() {
    }

    /**
     * Registers the CPU arena once per process (later calls are ignored: ONNX Runtime refuses a second
     * allocator for the same memory info).
     *
     * @param extendStrategy 0 kNextPowerOfTwo, 1 kSameAsRequested, -1 ONNX Runtime's default
     * @param maxDeadBytesPerChunk BFC reuses a larger free chunk unsplit while the waste is below this; -1 default (128 MB)
     */
    public static synchronized void register(int extendStrategy, int initialChunkBytes, int maxDeadBytesPerChunk) {
        if (env != null) {
            return;
        }
        BoundNatives.load();
        Env shared = new Env(ORT_LOGGING_LEVEL_FATAL, "gatecut");   // CreateEnv hands back the process's environment
        try (MemoryInfo cpu = MemoryInfo.CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
             ArenaCfg cfg = new ArenaCfg(0, extendStrategy, initialChunkBytes, maxDeadBytesPerChunk)) {
            shared.CreateAndRegisterAllocator(cpu.asOrtMemoryInfo(), cfg.asOrtArenaCfg());
        }
        env = shared;
    }
}
