package io.herald.gateway.registry;

import java.util.List;
import java.util.Map;

/**
 * A user's profile in one app: phone number (plain here, encrypted at rest), locale, time zone,
 * consent per channel ({@code push}, {@code sms}), an optional channel order and optional quiet hours
 * of the user's own (they replace the app's). Immutable.
 */
public record UserProfile(String phone, String locale, String timeZone, Map<String, Consent> consent,
                          List<String> channels, long updatedAt, QuietHours quietHours) {

    /** The user's own quiet hours (wall clock in the user's zone; across midnight when end &lt;= start). */
    public record QuietHours(java.time.LocalTime start, java.time.LocalTime end) {
    }

    /** Consent for one channel: {@code opted_in} or {@code opted_out}, when and from where. */
    public record Consent(String state, long at, String source) {
        public boolean optedOut() {
            return "opted_out".equals(state);
        }
    }

    public static final UserProfile EMPTY = new UserProfile(null, null, null, Map.of(), List.of(), 0, null);

    /** True when the user opted out of {@code channel} (push or sms); no record means opted in. */
    public boolean optedOut(String channel) {
        Consent c = consent.get(channel);
        return c != null && c.optedOut();
    }
}
