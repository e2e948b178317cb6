package dev.gatecut.runtime.bound;

import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/** Host/device copies through ONNX Runtime's Identity, on the CPU provider (device memory = host memory). */
class DeviceCopiesTest {
    private static final int FLOAT = 1;
    private static final int INT64 = 7;

    @Test
    void uploadDownloadOverwriteAndZeroRoundTrip() {
        try (DeviceCopies copies = new DeviceCopies(Device.CPU)) {
            ByteBuffer floats = random(4 * 2 * 3, 5);
            try (DeviceTensor t = copies.upload(floats, new long[] {2, 3}, FLOAT)) {
                assertEquals(24, t.bytes());
                ByteBuffer original = copy(floats);
                floats.putInt(0, 12345);   // the device tensor is a copy, not a view of the host buffer
                assertEquals(original, copies.download(t.value(), FLOAT));
                ByteBuffer other = random(24, 6);
                assertNotEquals(original, other);
                copies.overwrite(t, other);
                assertEquals(other, copies.download(t.value(), FLOAT));
                copies.zero(t);
                assertEquals(ByteBuffer.allocate(24), copies.download(t.value(), FLOAT));
            }
            ByteBuffer longs = random(8 * 5, 7);
            try (DeviceTensor t = copies.upload(longs, new long[] {1, 5}, INT64);
                 DeviceTensor empty = copies.upload(ByteBuffer.allocateDirect(0), new long[] {1, 2, 0, 4}, FLOAT)) {
                assertEquals(longs, copies.download(t.value(), INT64));
                assertEquals(0, empty.bytes());
                assertEquals(4, empty.shape().length);
            }
        }
    }

    private static ByteBuffer random(int bytes, long seed) {
        byte[] b = new byte[bytes];
        new Random(seed).nextBytes(b);
        // Finite floats: keep every fourth byte (the exponent's high bits) small.
        for (int i = 3; i < b.length; i += 4) {
            b[i] = (byte) (b[i] & 0x3f);
        }
        return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder()).put(b).clear();
    }

    private static ByteBuffer copy(ByteBuffer b) {
        ByteBuffer c = ByteBuffer.allocate(b.capacity()).order(ByteOrder.nativeOrder());
        c.put(b.duplicate().clear());
        return c.clear();
    }
}
