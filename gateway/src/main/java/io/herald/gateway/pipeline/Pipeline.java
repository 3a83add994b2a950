package io.herald.gateway.pipeline;

import com.lmax.disruptor.BatchEventProcessor;
import com.lmax.disruptor.BatchEventProcessorBuilder;
import com.lmax.disruptor.EventHandler;
import com.lmax.disruptor.ExceptionHandler;
import com.lmax.disruptor.RingBuffer;
import com.lmax.disruptor.dsl.Disruptor;
import com.lmax.disruptor.dsl.EventProcessorFactory;
import com.lmax.disruptor.dsl.ProducerType;
import io.herald.gateway.admission.Admission;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.connector.Connector;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.UserRegistry;
import io.herald.gateway.tracking.MessageStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The delivery pipeline: two LMAX Disruptor rings and the permits that bound them.
 *
 * <pre>
 *  intake / replay / scheduler --tryReserve(n)--> publish --> [delivery ring, multi-producer]
 *      resolve (devices) -> admit (policy, caps, rate limit) -> dispatch (connectors, async)
 *  dispatch / connector callbacks --> [outcome ring, multi-producer] --> record (Redis, journal ack)
 *      --> release(n)
 * </pre>
 *
 * <p>Capacity: a producer first reserves one permit per message ({@link #tryReserve}, never
 * blocks: no permit means 429 for intake); the record stage releases it once the message's
 * outcome is durable. With {@code capacity} permits, both rings (each at least twice the
 * capacity) always have room, so publication never waits. Every message yields exactly one
 * outcome. A Redis stage (resolve, admit, record) whose round trip has been pending longer than
 * {@code pipeline.stall-after} is reported by {@link #stalled()}, which readiness and intake
 * consult. Thread-safe; owned by {@code Herald}, which closes it.
 */
public final class Pipeline implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Pipeline.class);

    private final int capacity;
    private final AtomicLong inUse = new AtomicLong();
    private final AtomicBoolean halted = new AtomicBoolean();
    private final Disruptor<DeliveryEvent> deliveries;
    private final Disruptor<OutcomeEvent> outcomes;
    private final RingBuffer<DeliveryEvent> deliveryRing;
    private final RingBuffer<OutcomeEvent> outcomeRing;
    private final List<Stage> stages;

    public Pipeline(HeraldConfig config, Redis redis, Journal journal, UserRegistry registry, Admission admission,
                    MessageStore store, Map<String, Connector> connectors, Metrics metrics,
                    io.herald.protocol.ReceiptTokens tokens, io.herald.gateway.tracking.LinkTracker links,
                    io.herald.gateway.journal.DeadLetters deadLetters, io.herald.gateway.content.Templates templates) {
        this.capacity = config.pipeline().capacity();
        int ringSize = Integer.highestOneBit(Math.max(capacity, 512) - 1) << 2;
        int maxBatch = config.pipeline().handlerBatch();
        Duration wait = config.pipeline().redisWait();

        // Backoff (below), not Blocking: BlockingWaitStrategy parks only on the ring's cursor and
        // busy-spins while a handler waits for the stage before it, which burnt most of a core on
        // 2-core machines (measured with JFR). Not plain Sleeping(100, 100 us) either: an idle stage
        // woke 10,000 times a second, 0.08-0.1 of a core each, a third of a core per idle node,
        // which made two nodes on one machine cost 1.8x the CPU per message of one.
        deliveries = new Disruptor<>(DeliveryEvent::new, ringSize, threads("herald-ring"), ProducerType.MULTI,
                new BackoffWaitStrategy());
        outcomes = new Disruptor<>(OutcomeEvent::new, ringSize, threads("herald-record"), ProducerType.MULTI,
                new BackoffWaitStrategy());

        Duration stallAfter = config.pipeline().stallAfter();
        Stage recordStage = new Stage("record", LoggerFactory.getLogger(RecordHandler.class), wait, stallAfter, halted::get);
        Stage resolveStage = new Stage("resolve", LoggerFactory.getLogger(ResolveHandler.class), wait, stallAfter,
                halted::get);
        Stage admitStage = new Stage("admit", LoggerFactory.getLogger(AdmitHandler.class), wait, stallAfter, halted::get);
        stages = List.of(resolveStage, admitStage, recordStage);
        RecordHandler record = new RecordHandler(redis.dedicated(), store, registry, journal, deadLetters, metrics,
                recordStage, this::release, admission);
        outcomes.handleEventsWith(processor(record, maxBatch, new LoggingExceptionHandler<>("record")));
        ResolveHandler resolve = new ResolveHandler(redis.dedicated(), registry, store, config.apps(), resolveStage,
                templates);
        AdmitHandler admit = new AdmitHandler(redis.dedicated(), admission, metrics, admitStage);
        DispatchHandler dispatch = new DispatchHandler(connectors, this::publishOutcome, store, metrics, tokens,
                config.receipts().tokenTtl(), links, trackLinksByApp(config), halted::get, admission.clock());
        deliveries.handleEventsWith(processor(resolve, maxBatch, new LoggingExceptionHandler<>("resolve")))
                .then(processor(admit, maxBatch, new LoggingExceptionHandler<>("admit")))
                .then(processor(dispatch, maxBatch, new LoggingExceptionHandler<>("dispatch")));
        outcomeRing = outcomes.start();
        deliveryRing = deliveries.start();
        metrics.gauge("herald.ring.remaining", "Free slots of the delivery ring", deliveryRing::remainingCapacity);
        metrics.gauge("herald.capacity.in_use", "Messages accepted and not yet settled", inUse::get);
        metrics.gauge("herald.capacity.limit", "Capacity of the pipeline in messages", () -> capacity);
    }

    private static Map<String, Boolean> trackLinksByApp(HeraldConfig config) {
        Map<String, Boolean> m = new java.util.HashMap<>();
        config.apps().forEach((name, app) -> m.put(name, app.sms().trackLinks()));
        return Map.copyOf(m);
    }

    /** Takes {@code n} permits if all are free; never blocks. */
    public boolean tryReserve(int n) {
        while (true) {
            long cur = inUse.get();
            if (cur + n > capacity) {
                return false;
            }
            if (inUse.compareAndSet(cur, cur + n)) {
                return true;
            }
        }
    }

    /** Returns permits (a producer that reserved and then could not publish, or the record stage). */
    public void release(int n) {
        inUse.addAndGet(-n);
    }

    public long inUse() {
        return inUse.get();
    }

    public int capacity() {
        return capacity;
    }

    /**
     * Why the pipeline cannot make progress, if it cannot: "X stage stalled since T: ..." for the
     * first stage whose Redis round trip has been pending longer than {@code pipeline.stall-after}.
     * Non-blocking (volatile reads); readiness and intake ask it per request.
     */
    public Optional<String> stalled() {
        for (Stage s : stages) {
            Optional<String> c = s.condition();
            if (c.isPresent()) {
                return c;
            }
        }
        return Optional.empty();
    }

    public long ringRemaining() {
        return deliveryRing.remainingCapacity();
    }

    /** Publishes reserved messages; {@code replayed} makes resolve check what was settled before. */
    public void publish(JournalEntry entry, List<JournalItem> items, boolean replayed) {
        int n = items.size();
        int i = 0;
        while (i < n) {
            int chunk = Math.min(n - i, 256);
            long hi = nextOrSpin(chunk);
            long lo = hi - (chunk - 1);
            for (long seq = lo; seq <= hi; seq++) {
                deliveryRing.get(seq).set(entry, items.get(i + (int) (seq - lo)), replayed);
            }
            deliveryRing.publish(lo, hi);
            i += chunk;
        }
    }

    private long nextOrSpin(int n) {
        // Permits guarantee room; tryNext fails only in the short window between a permit's
        // release and the handlers' sequence update, so a brief spin is enough.
        while (true) {
            try {
                return deliveryRing.tryNext(n);
            } catch (com.lmax.disruptor.InsufficientCapacityException e) {
                Thread.onSpinWait();
            }
        }
    }

    private void publishOutcome(OutcomeEvent.Kind kind, JournalEntry entry, JournalItem item, String label, long due,
                                List<String> history, List<OutcomeEvent.Invalidation> invalidations, String channel,
                                boolean admitted) {
        long seq;
        while (true) {
            try {
                seq = outcomeRing.tryNext();
                break;
            } catch (com.lmax.disruptor.InsufficientCapacityException e) {
                Thread.onSpinWait();
            }
        }
        OutcomeEvent o = outcomeRing.get(seq);
        o.reset(kind, entry, item);
        o.label = label;
        o.due = due;
        o.channel = channel;
        o.admitted = admitted;
        o.history.addAll(history);
        o.invalidations.addAll(invalidations);
        outcomeRing.publish(seq);
    }

    /**
     * Waits until every reserved message is settled or {@code drain} passes, then stops the stages.
     * Whatever is unsettled then stays in the journal for the next start.
     */
    public boolean drain(Duration drain) {
        long deadline = System.nanoTime() + drain.toNanos();
        while (inUse.get() > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return inUse.get() == 0;
    }

    /** Stops at once: no more sends, no more writes; the journal keeps what is unsettled. */
    public void halt() {
        halted.set(true);
    }

    @Override
    public void close() {
        halted.set(true);
        try {
            deliveries.shutdown(2, TimeUnit.SECONDS);
        } catch (com.lmax.disruptor.TimeoutException e) {
            deliveries.halt();
        }
        try {
            outcomes.shutdown(2, TimeUnit.SECONDS);
        } catch (com.lmax.disruptor.TimeoutException e) {
            outcomes.halt();
        }
    }

    private static <T> EventProcessorFactory<T> processor(EventHandler<T> handler, int maxBatch,
                                                          ExceptionHandler<? super T> exceptions) {
        return (ring, barrierSequences) -> {
            BatchEventProcessor<T> p = new BatchEventProcessorBuilder().setMaxBatchSize(maxBatch)
                    .build(ring, ring.newBarrier(barrierSequences), handler);
            p.setExceptionHandler(exceptions);
            return p;
        };
    }

    private static ThreadFactory threads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /**
     * Logs and carries on: a handler bug must not halt the processor (the Disruptor default).
     * Handlers catch what they can per message (dispatch turns a failure into {@code failed:internal});
     * what escapes leaves its messages unsettled in the journal, to be replayed at the next start,
     * and their capacity permits held until then.
     */
    private static final class LoggingExceptionHandler<T> implements ExceptionHandler<T> {
        private final String stage;

        LoggingExceptionHandler(String stage) {
            this.stage = stage;
        }

        @Override
        public void handleEventException(Throwable ex, long sequence, T event) {
            log.error("{} stage failed on sequence {}; the message stays in the journal", stage, sequence, ex);
        }

        @Override
        public void handleOnStartException(Throwable ex) {
            log.error("{} stage failed to start", stage, ex);
        }

        @Override
        public void handleOnShutdownException(Throwable ex) {
            log.error("{} stage failed to stop", stage, ex);
        }
    }

    /**
     * How a ring stage waits for work: yields {@value #YIELDS} times, then parks, 50 µs at first and
     * twice as long after each empty park up to {@value #MAX_PARK_NANOS} ns; every wait starts over
     * from the short park. Under load a stage finds work within its first parks (as
     * {@code SleepingWaitStrategy(100, 100 us)}, the strategy before, did: JMH
     * {@code RingHandoffBenchmark}); an idle stage wakes about 1,000 times a second instead of
     * 10,000. Trade-off: a lone event after a quiet spell waits up to 1 ms per stage. Stateless,
     * so one instance serves every stage of a ring.
     */
    public static final class BackoffWaitStrategy implements com.lmax.disruptor.WaitStrategy {
        static final int YIELDS = 100;
        static final long MIN_PARK_NANOS = 50_000;
        static final long MAX_PARK_NANOS = 1_000_000;

        @Override
        public long waitFor(long sequence, com.lmax.disruptor.Sequence cursor, com.lmax.disruptor.Sequence dependent,
                            com.lmax.disruptor.SequenceBarrier barrier) throws com.lmax.disruptor.AlertException {
            long available;
            int yields = YIELDS;
            long park = MIN_PARK_NANOS;
            while ((available = dependent.get()) < sequence) {
                barrier.checkAlert();
                if (yields > 0) {
                    yields--;
                    Thread.yield();
                } else {
                    java.util.concurrent.locks.LockSupport.parkNanos(park);
                    park = Math.min(MAX_PARK_NANOS, park * 2);
                }
            }
            return available;
        }

        @Override
        public void signalAllWhenBlocking() {
            // nobody blocks: waiting stages park for a bounded time
        }
    }
}
