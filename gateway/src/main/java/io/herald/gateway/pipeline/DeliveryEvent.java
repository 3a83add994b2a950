package io.herald.gateway.pipeline;

import io.herald.gateway.connector.Target;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;

import java.util.List;

/**
 * A slot of the delivery ring: one message. Producers fill {@code entry}, {@code item} and
 * {@code replayed}; resolve sets {@code plan} (channels with targets, in fallback order) or {@code drop}/{@code skip}; admit sets
 * {@code deferUntil} or {@code drop}; dispatch reads it all. Each field is written by one stage
 * and read by later ones, which the ring's sequence barriers order. Not thread-safe otherwise.
 */
final class DeliveryEvent {
    /**
     * One channel of a plan and the targets it would deliver to; {@code skipped} are history lines
     * for channels passed over just before it (written only if this step is reached).
     */
    record Step(String channel, List<Target> targets, List<String> skipped) {
        Step(String channel, List<Target> targets) {
            this(channel, targets, List.of());
        }
    }

    JournalEntry entry;
    JournalItem item;
    boolean replayed;
    /** The delivery plan: channels in order, each with its targets; later steps are fallbacks. */
    List<Step> plan;
    /** History lines from resolve for channels skipped after the last step (or all, with no plan). */
    List<String> notes;
    /** Non-null: the message ends dropped with this reason. */
    String drop;
    /** The detail of the drop's history line (e.g. the cap rule), or null. */
    String dropDetail;
    /** Non-null: the message ends {@code failed:<failure>} (e.g. {@code render}) with {@link #failureDetail}. */
    String failure;
    String failureDetail;
    /** The user's profile as resolve read it (null for token sends). */
    io.herald.gateway.registry.UserProfile profile;
    /** The user's engagement by UTC hour, read for a best-hour message not yet scheduled; else null. */
    double[] engagement;
    /** True: already settled before (replay); only the journal needs to hear of it. */
    boolean skip;
    long deferUntil;
    /** With {@code deferUntil}: the state label ({@code deferred} or {@code deferred:<reason>}), the history detail, and whether it comes back held (checked again) or reserved. */
    String deferLabel;
    String deferDetail;
    boolean deferHeld;

    void set(JournalEntry entry, JournalItem item, boolean replayed) {
        this.entry = entry;
        this.item = item;
        this.replayed = replayed;
        this.plan = null;
        this.notes = List.of();
        this.drop = null;
        this.skip = false;
        this.deferUntil = 0;
        this.deferLabel = null;
        this.deferDetail = null;
        this.deferHeld = false;
        this.dropDetail = null;
        this.failure = null;
        this.failureDetail = null;
        this.profile = null;
        this.engagement = null;
    }

    boolean live() {
        return !skip && drop == null && failure == null;
    }
}
