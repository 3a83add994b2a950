package io.herald.gateway.registry;

/**
 * A registered device of a user, as stored (one JSON value per device in the user's hash).
 * {@code state} is {@code active} or {@code invalidated}; an invalidated device carries the
 * reason and the provider's time ({@code invalidatedAt}, epoch ms). Immutable.
 */
public record Device(String id, String platform, String token, boolean sandbox, String state, long updatedAt,
                     String reason, Long invalidatedAt) {

    public boolean active() {
        return "active".equals(state);
    }
}
