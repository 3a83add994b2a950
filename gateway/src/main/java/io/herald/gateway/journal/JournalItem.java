package io.herald.gateway.journal;

import io.herald.protocol.Message;

/**
 * One message as it travels through the pipeline: where it came from (app, batch, index), when it
 * was accepted, the message itself, and how far admission got with it ({@link Phase}: a deferred
 * message coming back). Immutable.
 */
public record JournalItem(String app, String batchId, int index, long acceptedAt, Message message, Phase phase) {

    /** How far admission got with a message. */
    public enum Phase {
        /** Not admitted yet: every policy step applies. */
        NEW,
        /**
         * Held (for its send time, quiet hours or a cap window) and due now: checked again (quiet
         * hours, caps, rate limit), but its send time is past.
         */
        HELD,
        /** Admitted, deferred to the rate-limit slot reserved for it: it goes without another check. */
        RESERVED
    }

    /** True when the message comes back to a slot reserved for it (no check again). */
    public boolean reserved() {
        return phase == Phase.RESERVED;
    }

    /** This item at another phase. */
    public JournalItem at(Phase next) {
        return next == phase ? this : new JournalItem(app, batchId, index, acceptedAt, message, next);
    }

    /** The message id (a UUID string) derived from batch and index. */
    public String messageId() {
        return io.herald.gateway.tracking.MessageIds.messageId(java.util.UUID.fromString(batchId), index).toString();
    }

    /** Epoch ms after which the message is worthless: accepted time + ttl. */
    public long deadline() {
        return acceptedAt + message.ttlSeconds() * 1000L;
    }
}
