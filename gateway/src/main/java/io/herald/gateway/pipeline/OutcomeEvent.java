package io.herald.gateway.pipeline;

import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;

import java.util.ArrayList;
import java.util.List;

/**
 * A slot of the outcome ring: what became of one message (exactly one outcome per message).
 * Written by the producer that publishes it, read by the record stage only.
 */
final class OutcomeEvent {
    enum Kind { DONE, DEFERRED, SKIPPED }

    Kind kind;
    JournalEntry entry;
    JournalItem item;
    /** State label for DONE: accepted, failed:reason, dropped:reason. */
    String label;
    long due;
    /** The platform that accepted the message (apns, fcm, sms), or null. */
    String channel;
    /**
     * True when admission let the message go (it went to dispatch): a marketing message then
     * holds a place in its user's caps, given back if it ends unaccepted.
     */
    boolean admitted;
    final List<String> history = new ArrayList<>();
    final List<Invalidation> invalidations = new ArrayList<>();

    /** A device to invalidate: its token was found dead. */
    record Invalidation(String app, String user, String deviceId, String token, String reason, long at) { }

    void reset(Kind kind, JournalEntry entry, JournalItem item) {
        this.kind = kind;
        this.entry = entry;
        this.item = item;
        this.label = null;
        this.due = 0;
        this.channel = null;
        this.admitted = false;
        this.history.clear();
        this.invalidations.clear();
    }
}
