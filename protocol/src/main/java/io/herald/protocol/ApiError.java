package io.herald.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import java.util.Objects;

/**
 * One machine-readable error: the {@link ErrorCode#wire() wire code}, a human-readable message that
 * names the field and the expected value, and the offending field path (e.g. {@code
 * "messages[3].title"}), which may be {@code null} when no single field is to blame.
 *
 * <p>Immutable and thread-safe. Serialises as {@code {"code","message","field"}} with a null {@code
 * field} omitted.
 *
 * @param code the error code's wire string; never null
 * @param message a human-readable explanation; never null
 * @param field the field path, or {@code null}
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
@JsonPropertyOrder({"code", "message", "field"})
public record ApiError(String code, String message, String field) {

    public ApiError {
        Objects.requireNonNull(code, "code");
        Objects.requireNonNull(message, "message");
    }

    /** Creates an error from a code, an optional field path and a message. */
    public static ApiError of(ErrorCode code, String field, String message) {
        return new ApiError(code.wire(), message, field);
    }
}
