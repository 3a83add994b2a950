package io.herald.gateway.tracking;

import java.security.SecureRandom;
import java.util.UUID;

/**
 * Batch and message ids. A batch id is a random version-4 UUID whose low 32 bits are zero; the
 * message at position {@code i} of the batch gets the same UUID with {@code i + 1} in those bits.
 * So a message id is a valid UUID (it is the {@code apns-id} too) and names its batch and index
 * without any lookup: reading a message's status costs no index. Thread-safe.
 */
public final class MessageIds {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final long LOW = 0xffffffffL;

    private MessageIds() {
    }

    public static UUID newBatchId() {
        byte[] b = new byte[16];
        RANDOM.nextBytes(b);
        long msb = 0;
        long lsb = 0;
        for (int i = 0; i < 8; i++) {
            msb = (msb << 8) | (b[i] & 0xff);
            lsb = (lsb << 8) | (b[i + 8] & 0xff);
        }
        msb = (msb & ~0xf000L) | 0x4000L;               // version 4
        lsb = (lsb & 0x3fffffffffffffffL) | 0x8000000000000000L; // IETF variant
        return new UUID(msb, lsb & ~LOW);
    }

    public static UUID messageId(UUID batchId, int index) {
        return new UUID(batchId.getMostSignificantBits(), (batchId.getLeastSignificantBits() & ~LOW) | (index + 1L));
    }

    /** The batch of a message id, or null when the id is not a message id. */
    public static UUID batchOf(UUID messageId) {
        if ((messageId.getLeastSignificantBits() & LOW) == 0) {
            return null;
        }
        return new UUID(messageId.getMostSignificantBits(), messageId.getLeastSignificantBits() & ~LOW);
    }

    public static int indexOf(UUID messageId) {
        return (int) ((messageId.getLeastSignificantBits() & LOW) - 1);
    }

    /** True when the UUID can be a batch id (low 32 bits zero). */
    public static boolean isBatchId(UUID id) {
        return (id.getLeastSignificantBits() & LOW) == 0;
    }

    /** Parses a UUID, or returns null. */
    public static UUID parse(String s) {
        if (s == null || s.length() != 36) {
            return null;
        }
        try {
            return UUID.fromString(s);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
