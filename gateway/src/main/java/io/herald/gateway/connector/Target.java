package io.herald.gateway.connector;

/**
 * Where one delivery goes: a registered device (id, token, sandbox flag) or, for direct sends, a
 * raw token ({@code deviceId} null). Immutable.
 */
public record Target(String platform, String deviceId, String token, boolean sandbox) {
}
