package io.herald.protocol;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonValue;

/**
 * Delivery priority of a notification, carried on the wire as {@code "high"} or {@code "normal"}
 * and mapped by the gateway to the APNs {@code apns-priority} header (10 and 5).
 *
 * <p>Immutable and thread-safe. {@link #fromWire(String)} returns {@code null} rather than throwing
 * for unknown values so the caller can report a field-specific error.
 */
public enum Priority {
    /** Deliver immediately ({@code apns-priority: 10}). The default. */
    HIGH("high"),
    /** Deliver at a time that conserves power ({@code apns-priority: 5}). */
    NORMAL("normal");

    private final String wire;

    Priority(String wire) {
        this.wire = wire;
    }

    /** Returns the JSON wire value, {@code "high"} or {@code "normal"}. */
    @JsonValue
    public String wire() {
        return wire;
    }

    /**
     * Parses a wire value (case-sensitive).
     *
     * @return the priority, or {@code null} if {@code s} is null or not a known wire value
     */
    @JsonCreator
    public static Priority fromWire(String s) {
        if (s == null) {
            return null;
        }
        switch (s) {
            case "high":
                return HIGH;
            case "normal":
                return NORMAL;
            default:
                return null;
        }
    }
}
