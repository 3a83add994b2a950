package io.herald.gateway.journal;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * One journal stream entry in flight: its stream id and how many of its messages are not yet
 * settled (terminal, or durably deferred). The recorder deletes the entry when the count reaches
 * zero. Thread-safe.
 */
public final class JournalEntry {
    private final String streamId;
    private final AtomicInteger unsettled;

    public JournalEntry(String streamId, int messages) {
        this.streamId = streamId;
        this.unsettled = new AtomicInteger(messages);
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
