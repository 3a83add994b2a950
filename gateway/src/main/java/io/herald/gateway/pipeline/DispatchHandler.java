package io.herald.gateway.pipeline;

import com.lmax.disruptor.EventHandler;
import io.herald.gateway.connector.Connector;
import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryListener;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.connector.Target;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.tracking.MessageStore;
import io.herald.protocol.Message;
import io.herald.protocol.ReceiptTokens;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

/**
 * Stage 3: hand each live message to its connectors, one delivery per target of the first step
 * of its plan, and turn every other verdict into its outcome (deferred, dropped, skipped). Never
 * waits: connectors are asynchronous and report to an {@link InFlightMessage}. When no target of
 * a step accepted the message (no device took it, token dead, permanent rejection, retries
 * exhausted), the next step of the plan is tried: that is channel fallback. The last result
 * publishes the message's one outcome. Runs on its own thread.
 */
final class DispatchHandler implements EventHandler<DeliveryEvent> {
    private final Map<String, Connector> connectors;
    private final Outcomes outcomes;
    private final MessageStore store;
    private final Metrics metrics;
    private final BooleanSupplier halted;
    private final ReceiptTokens tokens;
    private final io.herald.gateway.tracking.LinkTracker links;
    private final Map<String, Boolean> trackLinksByApp;

    private final long tokenTtlSeconds;
    /** The clock a message's deadline is read against (the one its acceptance time came from). */
    private final java.time.Clock clock;

    DispatchHandler(Map<String, Connector> connectors, Outcomes outcomes, MessageStore store, Metrics metrics,
                    ReceiptTokens tokens, java.time.Duration tokenTtl, io.herald.gateway.tracking.LinkTracker links,
                    Map<String, Boolean> trackLinksByApp, BooleanSupplier halted, java.time.Clock clock) {
        this.clock = clock;
        this.links = links;
        this.trackLinksByApp = trackLinksByApp;
        this.tokens = tokens;
        this.tokenTtlSeconds = tokenTtl.toSeconds();
        this.connectors = connectors;
        this.outcomes = outcomes;
        this.store = store;
        this.metrics = metrics;
        this.halted = halted;
    }

    /** Publishes outcomes into the outcome ring. */
    interface Outcomes {
        void publish(OutcomeEvent.Kind kind, JournalEntry entry, JournalItem item, String label, long due,
                     List<String> history, List<OutcomeEvent.Invalidation> invalidations, String channel,
                     boolean admitted);
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
                    List.of(store.historyLine(now, "failed:internal", null, ex.toString())), List.of(), null, false);
        }
    }

    private void dispatch(DeliveryEvent e) {
        long now = System.currentTimeMillis();
        if (e.skip) {
            outcomes.publish(OutcomeEvent.Kind.SKIPPED, e.entry, e.item, null, 0, List.of(), List.of(), null, false);
        } else if (e.failure != null) {
            List<String> history = new ArrayList<>(e.notes);
            history.add(store.historyLine(now, "failed:" + e.failure, null, e.failureDetail));
            outcomes.publish(OutcomeEvent.Kind.DONE, e.entry, e.item, "failed:" + e.failure, 0, history, List.of(), null,
                    false);
        } else if (e.drop != null) {
            List<String> history = new ArrayList<>(e.notes);
            history.add(store.historyLine(now, "dropped:" + e.drop, null, e.dropDetail));
            outcomes.publish(OutcomeEvent.Kind.DONE, e.entry, e.item, "dropped:" + e.drop, 0, history, List.of(), null,
                    false);
        } else if (e.deferUntil > 0) {
            // Held messages come back checked again; one deferred to its rate-limit slot goes then.
            String label = e.deferLabel != null ? e.deferLabel : "deferred";
            JournalItem next = e.item.at(e.deferHeld ? JournalItem.Phase.HELD : JournalItem.Phase.RESERVED);
            outcomes.publish(OutcomeEvent.Kind.DEFERRED, e.entry, next, label, e.deferUntil,
                    List.of(store.historyLine(now, label, null, e.deferDetail != null ? e.deferDetail
                            : "until " + e.deferUntil)), List.of(), null, false);
        } else if (clock.millis() > e.item.deadline() && e.item.message().ttlSeconds() > 0) {
            outcomes.publish(OutcomeEvent.Kind.DONE, e.entry, e.item, "dropped:expired", 0,
                    List.of(store.historyLine(now, "dropped:expired", null, null)), List.of(), null, true);
        } else {
            new InFlightMessage(e.entry, e.item, e.plan, e.notes).start();
        }
    }

    /**
     * The message with its receipt data in {@code data.herald}: the message id and a signed
     * token the device returns with its receipts (APNs: a top-level {@code herald} object beside
     * {@code aps}; FCM: the data field {@code herald} holding that object as JSON text).
     */
    private Message withReceiptData(JournalItem item) {
        Message m = item.message();
        String recipient = m.user() != null ? m.user() : "-";
        long expiry = System.currentTimeMillis() / 1000 + tokenTtlSeconds;
        // A shallow copy: the message's own data nodes are shared (nothing mutates them after
        // intake), only the top-level object that gains "herald" is new.
        ObjectNode data = JsonNodeFactory.instance.objectNode();
        if (m.data() != null) {
            data.setAll(m.data());
        }
        ObjectNode herald = data.putObject("herald");
        herald.put("id", item.messageId());
        herald.put("t", tokens.sign(item.messageId(), recipient, expiry));
        return new Message(m.id(), m.user(), m.apnsToken(), m.fcmToken(), m.title(), m.body(), data, m.priority(),
                m.ttlSeconds(), m.collapseId(), m.sound(), m.badge(), m.category(), m.channel(), m.fallback(),
                m.smsBody(), m.android(), m.campaign(), m.variant(), m.trackLinks(), m.policy());
    }

    private boolean trackLinks(String app, Message m) {
        return m.trackLinks() != null ? m.trackLinks() : trackLinksByApp.getOrDefault(app, false);
    }

    private static Message withSmsBody(Message m, String text) {
        return new Message(m.id(), m.user(), m.apnsToken(), m.fcmToken(), m.title(), m.body(), m.data(), m.priority(),
                m.ttlSeconds(), m.collapseId(), m.sound(), m.badge(), m.category(), m.channel(), m.fallback(), text,
                m.android(), m.campaign(), m.variant(), m.trackLinks(), m.policy());
    }

    /** Collects the results of one message's deliveries, step by step; the last one publishes. */
    private final class InFlightMessage implements DeliveryListener {
        private final JournalEntry entry;
        private final JournalItem item;
        private final UUID id;
        private final List<DeliveryEvent.Step> plan;
        private final List<String> history;
        private final List<OutcomeEvent.Invalidation> invalidations = new ArrayList<>();
        private final AtomicInteger remaining = new AtomicInteger();
        private final List<Object[]> results = new ArrayList<>();
        private int step;

        InFlightMessage(JournalEntry entry, JournalItem item, List<DeliveryEvent.Step> plan, List<String> notes) {
            this.entry = entry;
            this.item = item;
            this.id = UUID.fromString(item.messageId());
            this.plan = plan;
            this.history = new ArrayList<>();
            this.trailing = notes;
        }

        private final List<String> trailing;

        void start() {
            send(plan.get(0));
        }

        private void send(DeliveryEvent.Step s) {
            synchronized (results) {
                results.clear();
            }
            history.addAll(s.skipped());
            remaining.set(s.targets().size());
            Message withReceipt = null;
            for (Target t : s.targets()) {
                Connector c = connectors.get(t.platform());
                Message m = item.message();
                if (t.platform().equals("sms") && c != null && trackLinks(item.app(), m)) {
                    Message plain = m;
                    String text = io.herald.gateway.connector.sms.SmsText.textOf(plain);
                    links.rewrite(item.app(), item.messageId(), text).whenComplete((tracked, e) -> {
                        // A link store failure sends the plain text: tracking never holds up delivery.
                        Message sms = e != null ? plain : withSmsBody(plain, tracked);
                        c.send(new Delivery(item.app(), id, sms, t, item.deadline(), this));
                    });
                    continue;
                }
                if (!t.platform().equals("sms")) {
                    if (withReceipt == null) {
                        withReceipt = withReceiptData(item);
                    }
                    m = withReceipt;
                }
                Delivery d = new Delivery(item.app(), id, m, t, item.deadline(), this);
                if (c == null) {
                    onResult(d, new DeliveryResult(DeliveryResult.Status.FAILED, "no_connector", 0,
                            System.currentTimeMillis(), List.of()));
                } else {
                    c.send(d);
                }
            }
        }

        @Override
        public void onResult(Delivery d, DeliveryResult r) {
            synchronized (results) {
                results.add(new Object[] {d, r});
            }
            if (remaining.decrementAndGet() != 0) {
                return;
            }
            // Last result of this step: only this thread gets here for the step.
            String channel = plan.get(step).channel();
            boolean accepted = false;
            boolean expired = false;
            String acceptedBy = null;
            String firstFailure = null;
            synchronized (results) {
                for (Object[] pair : results) {
                    Delivery delivery = (Delivery) pair[0];
                    DeliveryResult result = (DeliveryResult) pair[1];
                    history.addAll(result.notes());
                    String device = delivery.target().deviceId();
                    String platform = delivery.target().platform();
                    switch (result.status()) {
                        case ACCEPTED -> {
                            accepted = true;
                            acceptedBy = platform;
                            String detail = result.segments() > 0 ? "segments=" + result.segments() : null;
                            if (result.segments() > 0) {
                                metrics.smsSegments(result.segments());
                            }
                            history.add(store.historyLine(result.at(), "accepted", platform, device, detail));
                        }
                        case INVALIDATED -> {
                            if (firstFailure == null) {
                                firstFailure = result.reason();
                            }
                            history.add(store.historyLine(result.at(), "failed:" + result.reason(), platform, device,
                                    "device invalidated"));
                            if (device != null) {
                                invalidations.add(new OutcomeEvent.Invalidation(item.app(), item.message().user(),
                                        device, delivery.target().token(), result.reason(), result.invalidatedAt()));
                            }
                        }
                        case FAILED -> {
                            if (firstFailure == null) {
                                firstFailure = result.reason();
                            }
                            history.add(store.historyLine(result.at(), "failed:" + result.reason(), platform, device,
                                    null));
                        }
                        case EXPIRED -> expired = true; // its note is among result.notes()
                    }
                }
            }
            if (!accepted && expired) {
                // Past the deadline: no later channel may send it either.
                history.addAll(trailing);
                history.add(store.historyLine(System.currentTimeMillis(), "dropped:expired", channel, null, null));
                outcomes.publish(OutcomeEvent.Kind.DONE, entry, item, "dropped:expired", 0, history, invalidations,
                        null, true);
                return;
            }
            if (!accepted && step + 1 < plan.size()) {
                step++;
                history.add(store.historyLine(System.currentTimeMillis(), "fallback", plan.get(step).channel(), null,
                        channel + " failed: " + firstFailure));
                send(plan.get(step));
                return;
            }
            if (!accepted) {
                history.addAll(trailing);
            }
            outcomes.publish(OutcomeEvent.Kind.DONE, entry, item, accepted ? "accepted" : "failed:" + firstFailure, 0,
                    history, invalidations, acceptedBy, true);
        }
    }
}
