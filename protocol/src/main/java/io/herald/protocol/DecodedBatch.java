package io.herald.protocol;

import java.util.List;
import java.util.Objects;

/**
 * The result of {@link BatchCodec#decode(byte[])}: the target app plus one {@link Item} per element
 * of the input {@code messages} array, in input order, each either accepted or rejected.
 *
 * <p>Immutable and thread-safe: the item list is an unmodifiable copy. The counts are computed on
 * each call (O(n)); callers on a hot path should cache them.
 *
 * @param app the app name from the request; never blank
 * @param items one item per input element, in input order
 */
public record DecodedBatch(String app, List<Item> items) {

    public DecodedBatch {
        Objects.requireNonNull(app, "app");
        items = List.copyOf(items);
    }

    /**
     * One element of the batch: exactly one of {@code message} (accepted) and {@code error}
     * (rejected) is non-null. Immutable.
     *
     * @param index the zero-based position in the input {@code messages} array
     * @param message the validated message, or {@code null} if rejected
     * @param error why the element was rejected, or {@code null} if accepted
     */
    public record Item(int index, Message message, ApiError error) {

        public Item {
            if (index < 0) {
                throw new IllegalArgumentException(String.format("index: %s (expected: >= 0)", index));
            }
            if ((message == null) == (error == null)) {
                throw new IllegalArgumentException(String.format(
                        "message/error: %s (expected: exactly one non-null)",
                        message == null ? "both null" : "both set"));
            }
        }

        /** Returns {@code true} if the element was accepted, i.e. {@code message() != null}. */
        public boolean ok() {
            return message != null;
        }
    }

    /** Returns the number of accepted items. */
    public int acceptedCount() {
        int n = 0;
        for (Item item : items) {
            if (item.ok()) {
                n++;
            }
        }
        return n;
    }

    /** Returns the number of rejected items. */
    public int rejectedCount() {
        return items.size() - acceptedCount();
    }
}
