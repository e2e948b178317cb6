package dev.gatecut.runtime.bound;

import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.InternalException;
import dev.gatecut.runtime.Device;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.onnxruntime.Allocator;
import org.bytedeco.onnxruntime.KeyValuePairs;
import org.bytedeco.onnxruntime.MemoryInfo;
import org.bytedeco.onnxruntime.Session;
import org.bytedeco.onnxruntime.StringStringMap;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.bytedeco.onnxruntime.global.onnxruntime.OrtArenaAllocator;
import static org.bytedeco.onnxruntime.global.onnxruntime.OrtMemTypeDefault;

/**
 * The counters of the arena behind a session opened through Microsoft's Java API (which has no call for
 * them), read through bytedeco's binding of the C API on the same native library ({@link BoundNatives}):
 * {@code CreateAllocator(session, memory info)} wraps the session's allocator, {@code AllocatorGetStats}
 * reads BFCArena's AllocatorStats. Where the device's allocator is no arena the map is empty.
 *
 * @param totalAllocated bytes the arena holds from the system (cudaMalloc / malloc): what nvidia-smi sees
 * @param maxInUse       the most bytes handed out at once (tensors plus the arena's rounding to 256 B)
 * @param extensions     regions the arena grew by
 * @param all            every counter as ONNX Runtime names it
 */
public record ArenaStats(long totalAllocated, long inUse, long maxInUse, long allocations, long reserves,
                         long extensions, long maxAllocation, Map<String, String> all) {

    /** The arena of {@code session} on {@code device} (CUDA device {@code deviceId}). */
    public static ArenaStats of(OrtSession session, Device device, int deviceId) {
        BoundNatives.load();
        long handle = handle(session);
        try (MemoryInfo info = device == Device.CUDA
                ? new MemoryInfo("Cuda", OrtArenaAllocator, deviceId, OrtMemTypeDefault)
                : MemoryInfo.CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
             Session borrowed = new Session(new org.bytedeco.onnxruntime.OrtSession(new Pointer() {
                 {
                     address = handle;
                 }
             }))) {
            try (Allocator allocator = new Allocator(borrowed, info.asOrtMemoryInfo());
                 KeyValuePairs stats = allocator.GetStats()) {
                Map<String, String> all = new LinkedHashMap<>();
                StringStringMap m = stats.GetKeyValuePairs();
                for (StringStringMap.Iterator it = m.begin(); !it.equals(m.end()); it = it.increment()) {
                    all.put(it.first().getString(), it.second().getString());
                }
                return new ArenaStats(number(all, "TotalAllocated"), number(all, "InUse"), number(all, "MaxInUse"),
                        number(all, "NumAllocs"), number(all, "NumReserves"), number(all, "NumArenaExtensions"),
                        number(all, "MaxAllocSize"), Map.copyOf(all));
            } finally {
                borrowed.release();   // the session belongs to Microsoft's OrtSession: only the wrapper goes
            }
        }
    }

    private static long number(Map<String, String> all, String key) {
        String v = all.get(key);
        return v == null ? -1 : Long.parseLong(v.strip());
    }

    /** Microsoft's OrtSession keeps its OrtSession* in a private field; no public accessor exists. */
    static long handle(OrtSession session) {
        try {
            var f = OrtSession.class.getDeclaredField("nativeHandle");
            f.setAccessible(true);
            return f.getLong(session);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new InternalException("cannot read the native handle of an ONNX Runtime session: " + e, e);
        }
    }
}
