package io.herald.protocol;

/**
 * The machine-readable error codes of the Herald API, each with its stable wire string and the HTTP
 * status used when the error rejects a whole request.
 *
 * <p>Immutable and thread-safe. Wire strings are part of the public contract: never rename one,
 * only add. Per-item errors inside an accepted batch carry the same codes but do not change the
 * response status; {@link #httpStatus()} applies only when the code fails the entire request.
 */
public enum ErrorCode {
    MALFORMED_JSON("malformed_json", 400),
    BODY_TOO_LARGE("body_too_large", 413),
    TOO_MANY_ITEMS("too_many_items", 413),
    EMPTY_BATCH("empty_batch", 422),
    MISSING_FIELD("missing_field", 422),
    INVALID_FIELD("invalid_field", 422),
    UNKNOWN_FIELD("unknown_field", 422),
    PAYLOAD_TOO_LARGE("payload_too_large", 422),
    COLLAPSE_ID_TOO_LONG("collapse_id_too_long", 422),
    TTL_OUT_OF_RANGE("ttl_out_of_range", 422),
    UNAUTHORIZED("unauthorized", 401),
    /** The API key lacks the role the route needs (the message names it). */
    FORBIDDEN("forbidden", 403),
    NOT_FOUND("not_found", 404),
    UNKNOWN_APP("unknown_app", 404),
    METHOD_NOT_ALLOWED("method_not_allowed", 405),
    UNSUPPORTED_MEDIA_TYPE("unsupported_media_type", 415),
    /** A request header is malformed (the error's field names the header). */
    INVALID_HEADER("invalid_header", 400),
    /** An {@code Idempotency-Key} already used with a different request body. */
    IDEMPOTENCY_KEY_REUSED("idempotency_key_reused", 422),
    /** An {@code Idempotency-Key} whose first request is still being processed. */
    IDEMPOTENCY_KEY_IN_PROGRESS("idempotency_key_in_progress", 409),
    /** An audience rule that does not parse; the message gives the column and what was expected there. */
    INVALID_RULE("invalid_rule", 422),
    /** An alias (namespace:id) that already names another user of the app. */
    ALIAS_TAKEN("alias_taken", 409),
    /** An alias reference that names no user of the app. */
    UNKNOWN_ALIAS("unknown_alias", 422),
    /** A computation already running (another node or request); retry after it. */
    IN_PROGRESS("in_progress", 409),
    /** An If-Match naming a version that is no longer the current one (re-read, then retry). */
    PRECONDITION_FAILED("precondition_failed", 412),
    /** A template that cannot be saved: its syntax or variables (the message names field, line and column). */
    INVALID_TEMPLATE("invalid_template", 422),
    /** A batch item names a template the app does not have. */
    UNKNOWN_TEMPLATE("unknown_template", 422),
    /** A move the resource's state does not allow (the message names the current state). */
    INVALID_STATE("invalid_state", 409),
    /** A create names an id that exists already. */
    ALREADY_EXISTS("already_exists", 409),
    OVERLOADED("overloaded", 429),
    UNAVAILABLE("unavailable", 503),
    INTERNAL("internal", 500);

    private final String wire;
    private final int httpStatus;

    ErrorCode(String wire, int httpStatus) {
        this.wire = wire;
        this.httpStatus = httpStatus;
    }

    /** Returns the stable wire string, e.g. {@code "malformed_json"}. */
    public String wire() {
        return wire;
    }

    /** Returns the HTTP status used when this error rejects a whole request. */
    public int httpStatus() {
        return httpStatus;
    }
}
