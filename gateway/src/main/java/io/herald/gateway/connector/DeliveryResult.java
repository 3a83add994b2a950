package io.herald.gateway.connector;

import java.util.List;

/**
 * The final outcome of one delivery to one target, as a value (a rejection is not an exception).
 *
 * <p>{@code reason} is snake_case ({@code unregistered}, {@code bad_device_token},
 * {@code retries_exhausted}, ...); {@code invalidatedAt} is the provider's time for a dead token
 * (epoch ms) when {@link Status#INVALIDATED}; {@code notes} are JSON history lines for earlier
 * attempts (retries with their backoff); {@code providerId} is the provider's id for the accepted
 * message (FCM message name, SMSC message id) or null; {@code segments} is the number of SMS
 * segments sent (the cost of an SMS), 0 for push. Immutable.
 */
public record DeliveryResult(Status status, String reason, long invalidatedAt, long at, List<String> notes,
                             String providerId, int segments) {

    /** A push result without provider id or segments. */
    public DeliveryResult(Status status, String reason, long invalidatedAt, long at, List<String> notes) {
        this(status, reason, invalidatedAt, at, notes, null, 0);
    }

    public enum Status {
        /** The provider took it. */
        ACCEPTED,
        /** Permanently rejected and the token is dead: the device must be invalidated. */
        INVALIDATED,
        /** Permanently failed (permanent rejection, or retries exhausted). */
        FAILED,
        /**
         * The message's deadline passed while it waited in the connector (a quota pause), so it was
         * never handed to the provider; the message ends {@code dropped:expired}, without fallback.
         */
        EXPIRED
    }
}
