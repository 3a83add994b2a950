package io.herald.gateway.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The gateway's meters, named once here, exported as Prometheus text on {@code GET /metrics}.
 * Counters and timers are Micrometer's (thread-safe, lock-free on the hot path); meters with a
 * tag are cached per tag value, so tag values must come from a small closed set (verdicts,
 * outcome reasons), never from user input. Owned by {@code Herald}, which closes it: the GC meters
 * listen on the JVM's (process-wide) GC beans, and until closed that listener keeps this registry,
 * its gauges and what they read (the pipeline's rings) reachable.
 */
public final class Metrics implements AutoCloseable {
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final JvmGcMetrics gc = new JvmGcMetrics();
    private final Counter ingestAccepted;
    private final Counter ingestRejected;
    private final Timer ingestLatency;
    private final Timer deliveryLatency;
    private final Timer redisFlush;
    private final Counter smsSegments;
    private final ConcurrentHashMap<String, Counter> batches = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Counter> verdicts = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Counter> outcomes = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Counter> states = new ConcurrentHashMap<>();
    /** Most distinct {@code state} tag values of {@code herald_messages_total} (reasons come from providers). */
    static final int MAX_STATE_LABELS = 64;

    public Metrics() {
        new JvmMemoryMetrics().bindTo(registry);
        gc.bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        ingestAccepted = Counter.builder("herald.ingest.messages").tag("outcome", "accepted")
                .description("Messages accepted into the journal").register(registry);
        ingestRejected = Counter.builder("herald.ingest.messages").tag("outcome", "rejected")
                .description("Messages rejected at validation").register(registry);
        ingestLatency = Timer.builder("herald.ingest.latency").description("POST /v1/batches until the response")
                .publishPercentileHistogram().maximumExpectedValue(Duration.ofSeconds(10)).register(registry);
        deliveryLatency = Timer.builder("herald.delivery.latency")
                .description("Acceptance of a message until its terminal state")
                .publishPercentileHistogram().maximumExpectedValue(Duration.ofMinutes(1)).register(registry);
        smsSegments = Counter.builder("herald.sms.segments").description("SMS segments sent (what SMS costs)")
                .register(registry);
        redisFlush = Timer.builder("herald.record.flush").description("One pipelined Redis flush of the record stage")
                .publishPercentileHistogram().maximumExpectedValue(Duration.ofSeconds(10)).register(registry);
    }

    public void gauge(String name, String description, Supplier<Number> value) {
        Gauge.builder(name, value).description(description).register(registry);
    }

    public void ingested(int accepted, int rejected) {
        ingestAccepted.increment(accepted);
        ingestRejected.increment(rejected);
    }

    public void batch(int status) {
        batches.computeIfAbsent(Integer.toString(status), s -> Counter.builder("herald.ingest.batches")
                .tag("status", s).description("Batch requests by HTTP status").register(registry)).increment();
    }

    public void ingestLatency(long nanos) {
        ingestLatency.record(nanos, TimeUnit.NANOSECONDS);
    }

    public void verdict(String verdict, int n) {
        verdicts.computeIfAbsent(verdict, v -> Counter.builder("herald.admission.verdicts").tag("verdict", v)
                .description("Admission verdicts").register(registry)).increment(n);
    }

    public void connectorOutcome(String connector, String outcome) {
        outcomes.computeIfAbsent(connector + '|' + outcome, k -> Counter.builder("herald.connector.outcomes")
                .tag("connector", connector).tag("outcome", outcome)
                .description("Provider answers by connector and outcome").register(registry)).increment();
    }

    /**
     * A message reached a state: the label as stored ({@code deferred}, {@code accepted},
     * {@code delivered}, {@code opened}, {@code clicked}, {@code failed:<reason>},
     * {@code dropped:<reason>}) or {@code dismissed} for a dismiss receipt. Callers count only a
     * change that applied, once. Reasons come from providers, so after {@value #MAX_STATE_LABELS}
     * distinct labels a new one counts as {@code <state>:other}.
     */
    public void state(String label) {
        Counter c = states.get(label);
        if (c == null) {
            String tag = label;
            if (states.size() >= MAX_STATE_LABELS) {
                int colon = label.indexOf(':');
                tag = colon < 0 ? "other" : label.substring(0, colon) + ":other";
            }
            String t = tag;
            c = states.computeIfAbsent(tag, l -> Counter.builder("herald.messages").tag("state", t)
                    .description("Messages by state reached (each change counted once)").register(registry));
        }
        c.increment();
    }

    /**
     * A campaign guard rail's event: {@code event} warning (a rate crossed warnAt or fell below a
     * floor) or paused (pauseAt, or a rollout gate), {@code metric} the guard's metric (or gate).
     * Both from closed sets.
     */
    public void guard(String event, String metric) {
        Counter.builder("herald.campaign.guards").tag("event", event).tag("metric", metric)
                .description("Campaign guard rails that warned or paused").register(registry).increment();
    }

    /** Trigger instances fired ({@code n}) and how late each was: fired at minus due, in ms. */
    public void triggersFired(long[] latenessMillis) {
        Timer t = Timer.builder("herald.trigger.lateness").description("Trigger firings: fired at minus due")
                .publishPercentileHistogram().maximumExpectedValue(Duration.ofMinutes(5)).register(registry);
        for (long ms : latenessMillis) {
            t.record(Math.max(0, ms), TimeUnit.MILLISECONDS);
        }
    }

    public void smsSegments(int n) {
        smsSegments.increment(n);
    }

    public void deliveryLatency(long millis) {
        deliveryLatency.record(Math.max(0, millis), TimeUnit.MILLISECONDS);
    }

    public void recordFlush(long nanos) {
        redisFlush.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** The Prometheus text exposition. */
    public String scrape() {
        return registry.scrape();
    }

    /** Detaches from the JVM's GC beans and closes the registry. */
    @Override
    public void close() {
        gc.close();
        registry.close();
    }
}
