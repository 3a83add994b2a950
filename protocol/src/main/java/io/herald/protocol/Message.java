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
 * @param policy how the per-user delivery policy treats the message (class, priority, send time,
 *     what to do when capped or in quiet hours), or {@code null} for every default
 * @param template the stored template whose texts the gateway renders for the user (then the
 *     message has no title, body or smsBody of its own), with the call's variables; or {@code null}
 */
@JsonPropertyOrder({
    "id", "user", "apnsToken", "fcmToken", "title", "body", "data", "priority", "ttlSeconds", "collapseId",
    "sound", "badge", "category", "channel", "fallback", "smsBody", "android", "campaign", "variant", "trackLinks",
    "policy", "template"
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
        Boolean trackLinks,
        Policy policy,
        TemplateRef template) {

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

    /** The longest SMS text accepted (or rendered): 1600 characters (ten concatenated parts). */
    public static final int MAX_SMS_CHARS = 1600;

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

    /** A message with its own texts (no template). */
    public Message(String id, String user, String apnsToken, String fcmToken, String title, String body, ObjectNode data,
                   Priority priority, int ttlSeconds, String collapseId, String sound, Integer badge, String category,
                   Channel channel, java.util.List<Channel> fallback, String smsBody, Android android, String campaign,
                   String variant, Boolean trackLinks, Policy policy) {
        this(id, user, apnsToken, fcmToken, title, body, data, priority, ttlSeconds, collapseId, sound, badge, category,
                channel, fallback, smsBody, android, campaign, variant, trackLinks, policy, null);
    }

    /**
     * A stored template to render for the message's user ({@code id}, see {@link #isLabel}) and the
     * call-time variables ({@code vars}, a JSON object, or null). Immutable; {@code vars} is owned
     * as {@code data} is.
     */
    public record TemplateRef(String id, ObjectNode vars) {
    }

    /** This message for another user (a campaign's copy, the same for every member of a chunk). */
    public Message withUser(String otherUser) {
        return new Message(id, otherUser, apnsToken, fcmToken, title, body, data, priority, ttlSeconds, collapseId, sound,
                badge, category, channel, fallback, smsBody, android, campaign, variant, trackLinks, policy, template);
    }

    /** This message with rendered texts in place of its template. */
    public Message rendered(String title, String body, ObjectNode data, String smsBody) {
        return new Message(id, user, apnsToken, fcmToken, title, body, data, priority, ttlSeconds, collapseId, sound, badge,
                category, channel, fallback, smsBody, android, campaign, variant, trackLinks, policy, null);
    }

    /** A message with every policy default ({@code policy} null). */
    public Message(String id, String user, String apnsToken, String fcmToken, String title, String body, ObjectNode data,
                   Priority priority, int ttlSeconds, String collapseId, String sound, Integer badge, String category,
                   Channel channel, java.util.List<Channel> fallback, String smsBody, Android android, String campaign,
                   String variant, Boolean trackLinks) {
        this(id, user, apnsToken, fcmToken, title, body, data, priority, ttlSeconds, collapseId, sound, badge, category,
                channel, fallback, smsBody, android, campaign, variant, trackLinks, null, null);
    }

    /** Message classes of the delivery policy, on the wire in lower case. */
    public enum MessageClass {
        /** Never capped, never held (one-time codes, security alerts). */
        SYSTEM,
        /** Outside the marketing caps; quiet hours only where the app says so. The default of a batch item. */
        TRANSACTIONAL,
        /** Counted and capped; held in quiet hours unless the message says drop. The default of a campaign. */
        MARKETING;

        @com.fasterxml.jackson.annotation.JsonValue
        public String wire() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }

        /** The class named {@code s} on the wire, or null. */
        @com.fasterxml.jackson.annotation.JsonCreator
        public static MessageClass fromWire(String s) {
            for (MessageClass c : values()) {
                if (c.wire().equals(s)) {
                    return c;
                }
            }
            return null;
        }
    }

    /**
     * The delivery-policy fields of a message; null fields take the app's defaults. {@code priority}
     * 1..10 (5 when absent) decides who gets a user's last capped slots; {@code sendAt} an instant
     * (epoch ms) or {@code bestHour}; {@code localTime} a wall-clock time "HH:mm" (next occurrence) or "yyyy-MM-ddTHH:mm" (that day; past: now) in the user's zone;
     * {@code onCap} "drop" or "defer"; {@code onQuiet} "hold" or "drop". Immutable.
     */
    public record Policy(@com.fasterxml.jackson.annotation.JsonProperty("class") MessageClass messageClass,
                         Integer priority, Long sendAt, boolean bestHour, String localTime, String onCap,
                         String onQuiet) {
        /** The policy priority of a message that names none. */
        public static final int DEFAULT_PRIORITY = 5;

        /** Priority 1..10, default {@value #DEFAULT_PRIORITY}. */
        public int rank() {
            return priority == null ? DEFAULT_PRIORITY : priority;
        }
    }

    /** The policy of this message: {@link #policy} or, when absent, every field defaulted. */
    public Policy policyOrDefault() {
        return policy != null ? policy : new Policy(null, null, null, false, null, null, null);
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
