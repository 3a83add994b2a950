package io.herald.gateway.pipeline;

import io.herald.gateway.connector.Target;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;

import java.util.List;

/**
 * A slot of the delivery ring: one message. Producers fill {@code entry}, {@code item} and
 * {@code replayed}; resolve sets {@code targets} or {@code drop}/{@code skip}; admit sets
 * {@code deferUntil} or {@code drop}; dispatch reads it all. Each field is written by one stage
 * and read by later ones, which the ring's sequence barriers order. Not thread-safe otherwise.
 */
final class DeliveryEvent {
    JournalEntry entry;
    JournalItem item;
    boolean replayed;
    List<Target> targets;
    /** Non-null: the message ends dropped with this reason. */
    String drop;
    /** True: already settled before (replay); only the journal needs to hear of it. */
    boolean skip;
    long deferUntil;

    void set(JournalEntry entry, JournalItem item, boolean replayed) {
        this.entry = entry;
        this.item = item;
        this.replayed = replayed;
        this.targets = null;
        this.drop = null;
        this.skip = false;
        this.deferUntil = 0;
    }

    boolean live() {
        return !skip && drop == null;
    }
}
