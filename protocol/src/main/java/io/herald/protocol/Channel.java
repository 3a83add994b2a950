package io.herald.protocol;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonValue;

/**
 * Where a message may go, on the wire as {@code "auto"}, {@code "push"}, {@code "apns"},
 * {@code "fcm"} or {@code "sms"}. {@code push} means whichever push platform the user's devices
 * are on; {@code auto} means the user's (or the app's) channel order. Immutable, thread-safe.
 */
public enum Channel {
    AUTO("auto"), PUSH("push"), APNS("apns"), FCM("fcm"), SMS("sms");

    private final String wire;

    Channel(String wire) {
        this.wire = wire;
    }

    @JsonValue
    public String wire() {
        return wire;
    }

    /** Parses a wire value (case-sensitive); null when unknown. */
    @JsonCreator
    public static Channel fromWire(String s) {
        for (Channel c : values()) {
            if (c.wire.equals(s)) {
                return c;
            }
        }
        return null;
    }

    /** True when a message on this channel may be delivered by {@code platform} (apns, fcm, sms). */
    public boolean allows(String platform) {
        return switch (this) {
            case AUTO -> true;
            case PUSH -> platform.equals("apns") || platform.equals("fcm");
            default -> wire.equals(platform);
        };
    }
}
