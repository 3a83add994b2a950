package io.herald.protocol;

import java.util.Objects;

/**
 * Signals that a request failed as a whole (malformed JSON, missing {@code app}, too many items, …)
 * rather than item by item. Carries the {@link ApiError} to send and its HTTP status.
 *
 * <p>Immutable and stackless: it is expected control flow for bad client input, so no stack trace
 * is captured. Safe to share across threads.
 */
public final class BatchRejectedException extends Exception {
    private static final long serialVersionUID = 1L;

    private final ErrorCode code;
    private final String field;

    /**
     * @param code the error code; never null
     * @param field the offending field, or {@code null}
     * @param message a human-readable message naming the field and the expected value
     */
    public BatchRejectedException(ErrorCode code, String field, String message) {
        super(Objects.requireNonNull(message, "message"), null, false, false);
        this.code = Objects.requireNonNull(code, "code");
        this.field = field;
    }

    /** Returns the error code. */
    public ErrorCode code() {
        return code;
    }

    /** Returns the error as it should appear in the response body. */
    public ApiError error() {
        return ApiError.of(code, field, getMessage());
    }

    /** Returns the HTTP status for the response, i.e. {@code code().httpStatus()}. */
    public int httpStatus() {
        return code.httpStatus();
    }
}
