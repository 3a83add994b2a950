package io.herald.gateway.journal;

import io.herald.protocol.Message;

/**
 * One message as it travels through the pipeline: where it came from (app, batch, index), when it
 * was accepted, the message itself, and whether its rate-limit slot is already reserved (a
 * deferred message coming back). Immutable.
 */
public record JournalItem(String app, String batchId, int index, long acceptedAt, Message message, boolean reserved) {

    /** The message id (a UUID string) derived from batch and index. */
    public String messageId() {
        return io.herald.gateway.tracking.MessageIds.messageId(java.util.UUID.fromString(batchId), index).toString();
    }

    /** Epoch ms after which the message is worthless: accepted time + ttl. */
    public long deadline() {
        return acceptedAt + message.ttlSeconds() * 1000L;
    }
}
