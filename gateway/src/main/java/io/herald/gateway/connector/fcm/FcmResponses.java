package io.herald.gateway.connector.fcm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.MissingNode;

import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * Turns one FCM answer (HTTP status, {@code Retry-After}, Google error body) into an
 * {@link Outcome}. Pure functions; thread-safe.
 *
 * <p>Invalidation is deliberately narrow: a 400 INVALID_ARGUMENT invalidates the device only
 * when the error names the token (a {@code google.rpc.BadRequest} field violation on
 * {@code message.token}, or a message about the registration token). FCM also answers
 * INVALID_ARGUMENT for a payload that is too big or a bad TTL, and invalidating a live device
 * for our own payload mistake would be worse than one failed message.
 */
final class FcmResponses {
    static final String FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
    static final String BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_DETAIL = 200;

    private FcmResponses() {
    }

    /** What to do with one answer. {@code reason} is snake_case (results and metrics). */
    record Outcome(Kind kind, String reason, String providerId, long retryAfterMillis, String detail) {
    }

    enum Kind {
        /** 200: done. */
        ACCEPTED,
        /** The token is dead: invalidate the device. */
        INVALIDATED,
        /** Permanent: never retried. */
        FAILED,
        /** Transient (5xx): retry with backoff, or after {@code retryAfterMillis} when >= 0. */
        RETRY,
        /** 429: pause the whole project, requeue without consuming an attempt. */
        QUOTA,
        /** 401: the access token was refused; refresh it and retry once. */
        UNAUTHENTICATED
    }

    static Outcome classify(int status, CharSequence retryAfter, byte[] body, long nowMillis) {
        JsonNode root = parse(body);
        if (status == 200) {
            JsonNode name = root.path("name");
            return new Outcome(Kind.ACCEPTED, "accepted", name.isTextual() ? name.textValue() : null, -1, "200");
        }
        JsonNode error = root.path("error");
        String grpcStatus = error.path("status").asText("");
        String fcmCode = fcmErrorCode(error);
        String code = fcmCode != null ? fcmCode : grpcStatus;
        String message = error.path("message").asText("");
        String detail = status + (code.isEmpty() ? "" : " " + code)
                + (message.isEmpty() ? "" : ": " + truncate(message));
        long retryAfterMillis = retryAfterMillis(retryAfter, nowMillis);
        switch (status) {
            case 400:
                if ("UNREGISTERED".equals(fcmCode)) {
                    return new Outcome(Kind.INVALIDATED, "unregistered", null, -1, detail);
                }
                if (("INVALID_ARGUMENT".equals(code) || code.isEmpty()) && namesToken(error)) {
                    return new Outcome(Kind.INVALIDATED, "invalid_argument", null, -1, detail);
                }
                return new Outcome(Kind.FAILED, code.isEmpty() ? "invalid_argument" : snake(code), null, -1, detail);
            case 401:
                return new Outcome(Kind.UNAUTHENTICATED, "unauthenticated", null, -1, detail);
            case 403:
                return new Outcome(Kind.FAILED, code.isEmpty() ? "permission_denied" : snake(code), null, -1, detail);
            case 404:
                if ("UNREGISTERED".equals(fcmCode) || "UNREGISTERED".equals(grpcStatus)) {
                    return new Outcome(Kind.INVALIDATED, "unregistered", null, -1, detail);
                }
                return new Outcome(Kind.FAILED, "not_found", null, -1, detail);
            case 429:
                return new Outcome(Kind.QUOTA, "quota_exceeded", null, retryAfterMillis, detail);
            default:
                if (status >= 500 && status <= 599) {
                    String reason = switch (status) {
                        case 500 -> "internal";
                        case 503 -> "unavailable";
                        default -> "http_" + status;
                    };
                    return new Outcome(Kind.RETRY, reason, null, status == 503 ? retryAfterMillis : -1, detail);
                }
                return new Outcome(Kind.FAILED, "http_" + status, null, -1, detail);
        }
    }

    /** The {@code errorCode} of the FcmError detail, or null. */
    static String fcmErrorCode(JsonNode error) {
        for (JsonNode d : error.path("details")) {
            if (FCM_ERROR_TYPE.equals(d.path("@type").asText()) && d.path("errorCode").isTextual()) {
                return d.path("errorCode").textValue();
            }
        }
        return null;
    }

    /** True when the error says the registration token itself is bad. */
    static boolean namesToken(JsonNode error) {
        for (JsonNode d : error.path("details")) {
            if (BAD_REQUEST_TYPE.equals(d.path("@type").asText())) {
                for (JsonNode v : d.path("fieldViolations")) {
                    if ("message.token".equals(v.path("field").asText())) {
                        return true;
                    }
                }
            }
        }
        return error.path("message").asText("").toLowerCase(Locale.ROOT).contains("registration token");
    }

    /** Retry-After as delay-seconds or an HTTP date, in ms from now; -1 when absent or unreadable. */
    static long retryAfterMillis(CharSequence value, long nowMillis) {
        if (value == null) {
            return -1;
        }
        String v = value.toString().trim();
        if (v.isEmpty()) {
            return -1;
        }
        try {
            long seconds = Long.parseLong(v);
            return seconds < 0 ? -1 : Math.min(seconds, 86_400) * 1000;
        } catch (NumberFormatException notSeconds) {
            try {
                long at = ZonedDateTime.parse(v, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli();
                return Math.max(0, Math.min(at - nowMillis, 86_400_000L));
            } catch (RuntimeException notADate) {
                return -1;
            }
        }
    }

    static String snake(String code) {
        return code.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]+", "_");
    }

    private static JsonNode parse(byte[] body) {
        if (body == null || body.length == 0) {
            return MissingNode.getInstance();
        }
        try {
            JsonNode n = JSON.readTree(body);
            return n == null ? MissingNode.getInstance() : n;
        } catch (Exception e) {
            return MissingNode.getInstance();
        }
    }

    private static String truncate(String s) {
        return s.length() <= MAX_DETAIL ? s : s.substring(0, MAX_DETAIL) + "...";
    }
}
