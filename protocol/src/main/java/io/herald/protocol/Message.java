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
 * apnsToken} / {@code fcmToken}, {@code ttlSeconds} range) and defaults a null {@code priority} to {@link
 * Priority#HIGH}; the full wire rules (lengths, characters, payload size) are applied by {@link
 * BatchCodec#decode(byte[])}.
 *
 * @param id optional client-supplied id (1..128 chars), or {@code null}
 * @param user the target user, or {@code null} when {@code apnsToken} is given
 * @param apnsToken a raw APNs device token in lowercase hex (direct send), or {@code null}
 * @param fcmToken a raw FCM registration token (direct send), or {@code null}
 * @param title the alert title, or {@code null}
 * @param body the alert body, or {@code null} (a push needs a title or a body; a message that can only
 *     go by SMS may have neither when it has an {@code smsBody})
 * @param data custom top-level payload fields (never containing {@code "aps"}), or {@code null}
 * @param priority the delivery priority; {@code null} becomes {@link Priority#HIGH}
 * @param ttlSeconds seconds APNs may keep retrying, 0..2419200 (28 days); the API default is 86400
 * @param collapseId the APNs collapse id (at most 64 UTF-8 bytes), or {@code null}
 * @param sound the sound name, or {@code null}
 * @param badge the badge number (0..99999), or {@code null}
 * @param category the notification category, or {@code null}
 * @param channel where it may go; {@code null} becomes {@link Channel#AUTO}
 * @param fallback channels to try, in order, when the chosen one cannot deliver (no device, token
 *     dead, permanent rejection); {@code null} = the app's default
 * @param smsBody the SMS text; {@code null} = title and body joined by a line break
 * @param android FCM options, or {@code null}
 * @param campaign a campaign label for tracking (funnels per campaign; see {@link #isLabel}), or {@code null}
 * @param variant a variant label within the campaign (A/B; see {@link #isLabel}), or {@code null}
 * @param trackLinks whether links in the SMS text become tracked short links; {@code null} = the
 *     app's default ({@code sms.track-links})
 */
@JsonPropertyOrder({
    "id", "user", "apnsToken", "fcmToken", "title", "body", "data", "priority", "ttlSeconds", "collapseId",
    "sound", "badge", "category", "channel", "fallback", "smsBody", "android", "campaign", "variant", "trackLinks"
})
public record Message(
        String id,
        String user,
        String apnsToken,
        String fcmToken,
        String title,
        String body,
        ObjectNode data,
        Priority priority,
        int ttlSeconds,
        String collapseId,
        String sound,
        Integer badge,
        String category,
        Channel channel,
        java.util.List<Channel> fallback,
        String smsBody,
        Android android,
        String campaign,
        String variant,
        Boolean trackLinks) {

    /** The TTL applied when a message does not specify one: one day. */
    static final int DEFAULT_TTL_SECONDS = 86_400;

    private static final java.util.regex.Pattern LABEL = java.util.regex.Pattern.compile("[A-Za-z0-9._-]{1,64}");

    /** What {@link #isLabel} accepts, worded for error messages. */
    public static final String LABEL_RULE = "1..64 characters of A-Z a-z 0-9 . _ -";

    /**
     * True when {@code s} may be a {@code campaign} or {@code variant} label: 1..64 characters of
     * A-Z a-z 0-9 {@code . _ -}. Labels become parts of Redis key names, where {@code :} separates
     * the parts, so {@code :} is not allowed: campaign {@code a:v:b} would otherwise count in the
     * same funnel as variant {@code b} of campaign {@code a}.
     */
    public static boolean isLabel(String s) {
        return s != null && LABEL.matcher(s).matches();
    }

    /** The largest TTL accepted: 28 days. */
    static final int MAX_TTL_SECONDS = 2_419_200;

    /**
     * Android options for FCM. {@code type} is {@code "notification"} (displayed by the system) or
     * {@code "data"} (handed to the app); the others map to FCM's android fields.
     */
    public record Android(String type, String collapseKey, String channelId, String image, String clickAction) {
        /** True for data messages (no system notification). */
        public boolean dataOnly() {
            return "data".equals(type);
        }
    }

    public Message {
        int targets = (user != null ? 1 : 0) + (apnsToken != null ? 1 : 0) + (fcmToken != null ? 1 : 0);
        if (targets != 1) {
            throw new IllegalArgumentException(String.format(
                    "user/apnsToken/fcmToken: %s set (expected: exactly one)", targets));
        }
        if (channel == null) {
            channel = Channel.AUTO;
        }
        fallback = fallback == null ? null : java.util.List.copyOf(fallback);
        if (ttlSeconds < 0 || ttlSeconds > MAX_TTL_SECONDS) {
            throw new IllegalArgumentException(
                    String.format("ttlSeconds: %s (expected: 0..%s)", ttlSeconds, MAX_TTL_SECONDS));
        }
        if (priority == null) {
            priority = Priority.HIGH;
        }
    }
}
