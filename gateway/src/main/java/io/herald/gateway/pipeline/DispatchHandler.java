package io.herald.gateway.pipeline;

import io.herald.gateway.connector.Connector;
import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryListener;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.connector.Target;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.tracking.MessageStore;
import com.lmax.disruptor.EventHandler;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

/**
 * Stage 3: hand each live message to its connectors, one delivery per target, and turn every
 * other verdict into its outcome (deferred, dropped, skipped). Never waits: connectors are
 * asynchronous and report through an {@link InFlightMessage}, which publishes the one outcome of
 * the message when its last delivery is done. Runs on its own thread.
 */
final class DispatchHandler implements EventHandler<DeliveryEvent> {
    private final Map<String, Connector> connectors;
    private final Outcomes outcomes;
    private final MessageStore store;
    private final BooleanSupplier halted;

    DispatchHandler(Map<String, Connector> connectors, Outcomes outcomes, MessageStore store,
                    BooleanSupplier halted) {
        this.connectors = connectors;
        this.outcomes = outcomes;
        this.store = store;
        this.halted = halted;
    }

    /** Publishes outcomes into the outcome ring. */
    interface Outcomes {
        void publish(OutcomeEvent.Kind kind, JournalEntry entry, JournalItem item, String label, long due,
                     List<String> history, List<OutcomeEvent.Invalidation> invalidations);
    }

    @Override
    public void onEvent(DeliveryEvent e, long sequence, boolean endOfBatch) {
        if (halted.getAsBoolean()) {
            return; // halted: leave everything in the journal
        }
        try {
            dispatch(e);
        } catch (RuntimeException ex) {
            // A bug must not lose the message silently: it ends failed:internal, visible in its history.
            long now = System.currentTimeMillis();
            outcomes.publish(OutcomeEvent.Kind.DONE, e.entry, e.item, "failed:internal", 0,
                    List.of(store.historyLine(now, "failed:internal", null, ex.toString())), List.of());
        }
    }

    private void dispatch(DeliveryEvent e) {
        long now = System.currentTimeMillis();
        if (e.skip) {
            outcomes.publish(OutcomeEvent.Kind.SKIPPED, e.entry, e.item, null, 0, List.of(), List.of());
        } else if (e.drop != null) {
            outcomes.publish(OutcomeEvent.Kind.DONE, e.entry, e.item, "dropped:" + e.drop, 0,
                    List.of(store.historyLine(now, "dropped:" + e.drop, null, null)), List.of());
        } else if (e.deferUntil > 0) {
            outcomes.publish(OutcomeEvent.Kind.DEFERRED, e.entry, e.item, "deferred", e.deferUntil,
                    List.of(store.historyLine(now, "deferred", null, "until " + e.deferUntil)), List.of());
        } else if (now > e.item.deadline() && e.item.message().ttlSeconds() > 0) {
            outcomes.publish(OutcomeEvent.Kind.DONE, e.entry, e.item, "dropped:expired", 0,
                    List.of(store.historyLine(now, "dropped:expired", null, null)), List.of());
        } else {
            InFlightMessage m = new InFlightMessage(e.entry, e.item, e.targets.size());
            UUID id = UUID.fromString(e.item.messageId());
            for (Target t : e.targets) {
                Connector c = connectors.get(t.platform());
                Delivery d = new Delivery(e.item.app(), id, e.item.message(), t, e.item.deadline(), m);
                if (c == null) {
                    m.onResult(d, new DeliveryResult(DeliveryResult.Status.FAILED, "no_connector", 0, now, List.of()));
                } else {
                    c.send(d);
                }
            }
        }
    }

    /** Collects the results of one message's deliveries; the last one publishes the outcome. */
    private final class InFlightMessage implements DeliveryListener {
        private final JournalEntry entry;
        private final JournalItem item;
        private final AtomicInteger remaining;
        private final List<Object[]> results = new ArrayList<>();

        InFlightMessage(JournalEntry entry, JournalItem item, int deliveries) {
            this.entry = entry;
            this.item = item;
            this.remaining = new AtomicInteger(deliveries);
        }

        @Override
        public void onResult(Delivery d, DeliveryResult r) {
            synchronized (results) {
                results.add(new Object[] {d, r});
            }
            if (remaining.decrementAndGet() != 0) {
                return;
            }
            List<String> history = new ArrayList<>();
            List<OutcomeEvent.Invalidation> invalidations = new ArrayList<>();
            String label = null;
            String firstFailure = null;
            synchronized (results) {
                for (Object[] pair : results) {
                    Delivery delivery = (Delivery) pair[0];
                    DeliveryResult result = (DeliveryResult) pair[1];
                    history.addAll(result.notes());
                    String device = delivery.target().deviceId();
                    switch (result.status()) {
                        case ACCEPTED -> {
                            label = "accepted";
                            history.add(store.historyLine(result.at(), "accepted", device, null));
                        }
                        case INVALIDATED -> {
                            if (firstFailure == null) {
                                firstFailure = "failed:" + result.reason();
                            }
                            history.add(store.historyLine(result.at(), "failed:" + result.reason(), device,
                                    "device invalidated"));
                            if (device != null) {
                                invalidations.add(new OutcomeEvent.Invalidation(item.app(), item.message().user(),
                                        device, delivery.target().token(), result.reason(), result.invalidatedAt()));
                            }
                        }
                        case FAILED -> {
                            if (firstFailure == null) {
                                firstFailure = "failed:" + result.reason();
                            }
                            history.add(store.historyLine(result.at(), "failed:" + result.reason(), device, null));
                        }
                    }
                }
            }
            outcomes.publish(OutcomeEvent.Kind.DONE, entry, item, label != null ? label : firstFailure, 0, history,
                    invalidations);
        }
    }
}
