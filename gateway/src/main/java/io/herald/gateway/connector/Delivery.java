package io.herald.gateway.connector;

import io.herald.protocol.Message;

import java.util.UUID;

/**
 * One message to one target, handed to a {@link Connector}. Immutable; {@code listener} is called
 * exactly once with the final result (on a connector thread), unless the connector is closed first.
 */
public record Delivery(String app, UUID messageId, Message message, Target target, long deadline,
                       DeliveryListener listener) {
}
