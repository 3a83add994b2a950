package io.herald.protocol;

import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * One notification as the API carries it, after validation by {@link BatchCodec}.
 *
 * <p>Immutable value; safe to share across threads. <b>Ownership:</b> the {@code data} tree is not
 * copied (copying every item of a 10 000-item batch would be wasteful); the record takes ownership
 * of it and neither the creator nor any reader may mutate it afterwards.
 *
 * <p>The constructor enforces only structural invariants (exactly one of {@code user} / {@code
 * apnsToken}, {@code ttlSeconds} range) and defaults a null {@code priority} to {@link
 * Priority#HIGH}; the full wire rules (lengths, characters, payload size) are applied by {@link
 * BatchCodec#decode(byte[])}.
 *
 * @param id optional client-supplied id (1..128 chars), or {@code null}
 * @param user the target user, or {@code null} when {@code apnsToken} is given
 * @param apnsToken the target device token in lowercase hex, or {@code null} when {@code user} is
 *     given
 * @param title the alert title, or {@code null}
 * @param body the alert body, or {@code null}
 * @param data custom top-level payload fields (never containing {@code "aps"}), or {@code null}
 * @param priority the delivery priority; {@code null} becomes {@link Priority#HIGH}
 * @param ttlSeconds seconds APNs may keep retrying, 0..2419200 (28 days); the API default is 86400
 * @param collapseId the APNs collapse id (at most 64 UTF-8 bytes), or {@code null}
 * @param sound the sound name, or {@code null}
 * @param badge the badge number (0..99999), or {@code null}
 * @param category the notification category, or {@code null}
 */
@JsonPropertyOrder({
    "id", "user", "apnsToken", "title", "body", "data", "priority", "ttlSeconds", "collapseId",
    "sound", "badge", "category"
})
public record Message(
        String id,
        String user,
        String apnsToken,
        String title,
        String body,
        ObjectNode data,
        Priority priority,
        int ttlSeconds,
        String collapseId,
        String sound,
        Integer badge,
        String category) {

    /** The TTL applied when a message does not specify one: one day. */
    static final int DEFAULT_TTL_SECONDS = 86_400;

    /** The largest TTL accepted: 28 days. */
    static final int MAX_TTL_SECONDS = 2_419_200;

    public Message {
        if ((user == null) == (apnsToken == null)) {
            throw new IllegalArgumentException(String.format(
                    "user/apnsToken: %s (expected: exactly one non-null)",
                    user == null ? "both null" : "both set"));
        }
        if (ttlSeconds < 0 || ttlSeconds > MAX_TTL_SECONDS) {
            throw new IllegalArgumentException(
                    String.format("ttlSeconds: %s (expected: 0..%s)", ttlSeconds, MAX_TTL_SECONDS));
        }
        if (priority == null) {
            priority = Priority.HIGH;
        }
    }
}
