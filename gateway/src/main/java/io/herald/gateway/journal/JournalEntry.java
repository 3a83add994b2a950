package io.herald.gateway.journal;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * One journal stream entry in flight: its stream, its entry id and how many of its messages are not yet
 * settled (terminal, or durably deferred). The recorder deletes the entry when the count reaches
 * zero. Thread-safe.
 */
public final class JournalEntry {
    private final String stream;
    private final String streamId;
    private final AtomicInteger unsettled;

    /** An entry of {@code stream} (a journal shard of this node, or of a node taken over). */
    public JournalEntry(String stream, String streamId, int messages) {
        this.stream = stream;
        this.streamId = streamId;
        this.unsettled = new AtomicInteger(messages);
    }

    /** The journal stream (key) that holds it. */
    public String stream() {
        return stream;
    }

    public String streamId() {
        return streamId;
    }

    /** Marks one message settled; true when it was the last one. */
    public boolean settleOne() {
        return unsettled.decrementAndGet() == 0;
    }

    public int unsettled() {
        return unsettled.get();
    }
}
