package io.herald.protocol;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Signs and verifies receipt tokens: {@code <keyId>.<expiry>.<mac>} where {@code mac} is
 * base64url(HMAC-SHA256(key, messageId | recipient | expiry)) and {@code expiry} is epoch seconds.
 *
 * <p>Herald puts a token into every push it builds; a device sends it back with its receipt
 * (delivered, opened, clicked) and any node can check it without a token store, in constant
 * time. The token holds no personal data: the recipient (the user id) is covered by the MAC but
 * not written in the token; the verifier takes it from the message's record. Several keys may be
 * loaded (rotation): tokens are signed with the current one and verified with the key their id
 * names. Immutable and thread-safe: each thread keeps its own initialised {@link Mac} per key
 * (a {@link Mac} is not thread-safe, and looking up the provider and initialising one per call
 * cost more than the HMAC itself in the gateway's profile).
 */
public final class ReceiptTokens {
    /** Bytes kept free in every push payload for the receipt data (message id and token). */
    public static final int PAYLOAD_RESERVE = 160;

    /** One signing key. */
    public record Key(String id, byte[] secret) {
        public Key {
            if (id == null || !id.matches("[A-Za-z0-9_-]{1,16}")) {
                throw new IllegalArgumentException("key id: '" + id + "' (expected: 1..16 of A-Z a-z 0-9 _ -)");
            }
            if (secret == null || secret.length < 32) {
                throw new IllegalArgumentException("key " + id + ": secret too short (expected: >= 32 bytes)");
            }
            secret = secret.clone();
        }

        @Override
        public String toString() {
            return "Key[id=" + id + ", secret=<redacted>]";
        }
    }

    /** Outcome of a verification. */
    public enum Verdict { VALID, MALFORMED, UNKNOWN_KEY, EXPIRED, BAD_SIGNATURE }

    private final Key current;
    private final Map<String, Key> keys = new LinkedHashMap<>();
    private final Map<String, ThreadLocal<Mac>> macs = new LinkedHashMap<>();

    /** Signs with {@code current}; verifies with it and {@code older} (keys being rotated out). */
    public ReceiptTokens(Key current, List<Key> older) {
        this.current = current;
        keys.put(current.id(), current);
        for (Key k : older) {
            keys.putIfAbsent(k.id(), k);
        }
        for (Key k : keys.values()) {
            byte[] secret = k.secret();
            newMac(secret); // fail here, not on first use, if HmacSHA256 is missing
            macs.put(k.id(), ThreadLocal.withInitial(() -> newMac(secret)));
        }
    }

    public String sign(String messageId, String recipient, long expiryEpochSeconds) {
        return current.id() + "." + expiryEpochSeconds + "." + mac(current, messageId, recipient, expiryEpochSeconds);
    }

    /** Checks a token for a message and recipient at {@code nowEpochSeconds}; constant time in the MAC. */
    public Verdict verify(String token, String messageId, String recipient, long nowEpochSeconds) {
        if (token == null || token.length() > 128) {
            return Verdict.MALFORMED;
        }
        String[] parts = token.split("\\.", -1);
        if (parts.length != 3) {
            return Verdict.MALFORMED;
        }
        long expiry;
        try {
            expiry = Long.parseLong(parts[1]);
        } catch (NumberFormatException e) {
            return Verdict.MALFORMED;
        }
        Key key = keys.get(parts[0]);
        if (key == null) {
            return Verdict.UNKNOWN_KEY;
        }
        byte[] expected = mac(key, messageId, recipient, expiry).getBytes(StandardCharsets.US_ASCII);
        boolean same = MessageDigest.isEqual(expected, parts[2].getBytes(StandardCharsets.US_ASCII));
        if (!same) {
            return Verdict.BAD_SIGNATURE;
        }
        return expiry < nowEpochSeconds ? Verdict.EXPIRED : Verdict.VALID;
    }

    private static final Base64.Encoder BASE64URL = Base64.getUrlEncoder().withoutPadding();

    private String mac(Key key, String messageId, String recipient, long expiry) {
        Mac mac = macs.get(key.id()).get();
        byte[] out = mac.doFinal((messageId + "|" + recipient + "|" + expiry).getBytes(StandardCharsets.UTF_8));
        return BASE64URL.encodeToString(out);
    }

    private static Mac newMac(byte[] secret) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            return mac;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 unavailable", e);
        }
    }
}
