package io.herald.benchmarks;

import com.lmax.disruptor.BatchEventProcessor;
import com.lmax.disruptor.BatchEventProcessorBuilder;
import com.lmax.disruptor.BlockingWaitStrategy;
import com.lmax.disruptor.EventHandler;
import com.lmax.disruptor.ExceptionHandler;
import com.lmax.disruptor.InsufficientCapacityException;
import com.lmax.disruptor.RingBuffer;
import com.lmax.disruptor.SleepingWaitStrategy;
import com.lmax.disruptor.WaitStrategy;
import com.lmax.disruptor.YieldingWaitStrategy;
import com.lmax.disruptor.dsl.Disruptor;
import com.lmax.disruptor.dsl.EventHandlerGroup;
import com.lmax.disruptor.dsl.EventProcessorFactory;
import com.lmax.disruptor.dsl.ProducerType;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Hand-off cost of the gateway's delivery ring (an LMAX Disruptor set up as
 * {@code io.herald.gateway.pipeline.Pipeline} does) against an {@link ArrayBlockingQueue}
 * hand-off between threads, and what the choice of Disruptor wait strategy costs.
 *
 * <p>The benchmark thread is the producer. Each invocation publishes events and then waits until
 * the last consumer stage has seen all of them:
 * <ul>
 *   <li>{@link #burst}: {@value #BURST} events (a 1,000-message batch), published in chunks of
 *       {@value #CHUNK} with {@code tryNext(n)} / {@code publish(lo, hi)} as {@code Pipeline.publish}
 *       does; the score is time per event, i.e. the inverse of hand-off throughput;</li>
 *   <li>{@link #single}: one event, then wait for it, back to back: the round trip of one
 *       message through the stages when the next one follows at once (the stages are still
 *       awake);</li>
 *   <li>{@link #singleAfterIdle}: the same after {@value #IDLE_MICROS} µs (plus random jitter) of
 *       idleness (set-up per invocation, not measured): what a lone request to a quiet gateway sees, once every stage
 *       has fallen back to its deepest wait (for {@code sleeping}: parked in 100 µs naps).</li>
 * </ul>
 *
 * <p>{@code queue} selects the hand-off:
 * <ul>
 *   <li>{@code backoff}: {@code Pipeline.BackoffWaitStrategy}, the gateway's choice: as
 *       {@code sleeping}, but each empty park twice as long as the last, 50 µs up to 1 ms.</li>
 *   <li>{@code sleeping}: {@code new SleepingWaitStrategy(100, 100_000)}, the gateway's choice before:
 *       100 {@code Thread.yield()}s, then {@code parkNanos(100 µs)} in a loop (no busy spin). Idle
 *       stages cost almost nothing; a stage that has gone to sleep notices new work only when its
 *       park ends.</li>
 *   <li>{@code yielding}: {@link YieldingWaitStrategy}: spins 100 times, then yields in a loop.
 *       Lowest latency, but every waiting stage keeps a core busy.</li>
 *   <li>{@code blocking}: {@link BlockingWaitStrategy}: a stage waits on a monitor
 *       ({@code Object.wait}) until the producer's cursor passes its sequence, and every publish
 *       takes that monitor to {@code notifyAll}; a stage behind another stage then busy-spins
 *       ({@code Thread.onSpinWait}) until that stage has passed the sequence too.</li>
 *   <li>{@code abq}: no Disruptor: one {@link ArrayBlockingQueue} and one thread per stage, the
 *       producer {@code put}s each event, each stage {@code take}s it and {@code put}s it on the
 *       next queue.</li>
 * </ul>
 * {@code stages} is 1 (one hand-off) or 3 (a chain like the gateway's resolve -> admit ->
 * dispatch, one thread per stage). The Disruptor variants use a multi-producer ring of the
 * gateway's default size (262,144 slots for {@code pipeline.capacity = 131072}) and
 * {@link BatchEventProcessor}s with a maximum batch of 512, as {@code Pipeline} does. The handlers
 * do no work besides touching the event, so the score is the hand-off alone; in the gateway,
 * every stage but dispatch also waits for a Redis round trip per batch.
 *
 * <p>{@link #burst} reports the mean time per event. {@link #single} and {@link #singleAfterIdle}
 * are latencies and run in {@link Mode#SampleTime}: read their median ({@code p0.50}) and tail,
 * which on a shared machine are far steadier than the mean (one preemption of a few milliseconds
 * moves the mean of thousands of samples).
 *
 * <p>The producer waits for completion the same way in every variant (spin briefly, then park
 * until the last stage unparks it), so that cost is common to all and cancels in the ratios. Each
 * measurement iteration prints the CPU time the consumer threads used per event and in total
 * (as cores busy), and each trial first measures what the idle consumers burn in one second:
 * the other side of the wait-strategy trade-off, which the score alone does not show.
 *
 * <p>Ownership and threading: each trial owns its consumer threads (started in {@link #start},
 * stopped and joined in {@link #stop}). Single producer thread ({@link Threads} 1), because the
 * completion protocol tracks one waiting producer. Trade-off: on a machine with fewer cores than
 * stages + 1, the spinning and yielding variants compete with the producer and with each other for
 * cores, which is exactly the situation the gateway is in on 2 cores.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Threads(1)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class RingHandoffBenchmark {
    /** Events per {@link #burst} invocation: one 1,000-message batch. */
    static final int BURST = 1000;
    /** Claim size per publish, as {@code Pipeline.publish}. */
    static final int CHUNK = 256;
    /** Ring size of the gateway with its default capacity of 131,072 permits. */
    static final int RING_SIZE = Integer.highestOneBit(131_072 - 1) << 2;
    /** {@code pipeline.handler-batch}: the most events a processor takes per batch. */
    static final int MAX_BATCH = 512;
    /** How long the ring is left idle before each {@link #singleAfterIdle} event. */
    static final int IDLE_MICROS = 1000;
    /** Random extra idle time, so events do not arrive in step with the stages' naps. */
    static final int IDLE_JITTER_MICROS = 250;
    /** Producer spins this often on the completion before it parks. */
    static final int WAIT_SPINS = 100;

    /** The hand-off: {@code sleeping}, {@code yielding}, {@code blocking} (Disruptor) or {@code abq}. */
    @Param({"backoff", "sleeping", "yielding", "blocking", "abq"})
    public String queue;

    /** Consumer stages in a chain, one thread each. */
    @Param({"1", "3"})
    public int stages;

    private final Completion completion = new Completion();
    private final List<Thread> consumers = new CopyOnWriteArrayList<>();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final ThreadMXBean threadBean = ManagementFactory.getThreadMXBean();

    private Disruptor<Slot> disruptor;
    private RingBuffer<Slot> ring;
    private BlockingQueue<Slot> firstQueue;
    private Slot[] payloads;
    private long published;

    private long iterationCpu;
    private long iterationWall;
    private long iterationEvents;

    /** Starts the consumers and measures what they burn while idle. */
    @Setup(Level.Trial)
    public void start() throws InterruptedException {
        payloads = new Slot[BURST];
        for (int i = 0; i < BURST; i++) {
            payloads[i] = new Slot();
            payloads[i].value = i;
        }
        ThreadFactory factory = r -> {
            Thread t = new Thread(r, "bench-" + queue + "-" + consumers.size());
            t.setDaemon(true);
            consumers.add(t);
            return t;
        };
        if (queue.equals("abq")) {
            startQueues(factory);
        } else {
            startDisruptor(factory, waitStrategy(queue));
        }
        // Let every consumer reach its waiting state, then measure the idle cost.
        Thread.sleep(200);
        long cpu0 = consumerCpu();
        long wall0 = System.nanoTime();
        Thread.sleep(1000);
        long cpu = consumerCpu() - cpu0;
        long wall = System.nanoTime() - wall0;
        System.out.printf("%nidle: %d consumer thread(s) used %.1f ms CPU in %.0f ms (%.3f cores busy)%n",
                consumers.size(), cpu / 1e6, wall / 1e6, (double) cpu / wall);
    }

    private static WaitStrategy waitStrategy(String name) {
        return switch (name) {
            case "backoff" -> new io.herald.gateway.pipeline.Pipeline.BackoffWaitStrategy(); // as Pipeline
            case "sleeping" -> new SleepingWaitStrategy(100, 100_000); // Pipeline's before issue 12
            case "yielding" -> new YieldingWaitStrategy();
            case "blocking" -> new BlockingWaitStrategy();
            default -> throw new IllegalArgumentException("queue: " + name
                    + " (expected: one of sleeping, yielding, blocking, abq)");
        };
    }

    private void startDisruptor(ThreadFactory factory, WaitStrategy wait) {
        disruptor = new Disruptor<>(Slot::new, RING_SIZE, factory, ProducerType.MULTI, wait);
        EventHandlerGroup<Slot> group = null;
        for (int s = 1; s <= stages; s++) {
            EventHandler<Slot> handler = s == stages ? new LastStage(completion) : new MiddleStage(s);
            EventProcessorFactory<Slot> processor = (ringBuffer, barrierSequences) -> {
                BatchEventProcessor<Slot> p = new BatchEventProcessorBuilder().setMaxBatchSize(MAX_BATCH)
                        .build(ringBuffer, ringBuffer.newBarrier(barrierSequences), handler);
                p.setExceptionHandler(new FailingExceptionHandler(failure));
                return p;
            };
            group = group == null ? disruptor.handleEventsWith(processor) : group.then(processor);
        }
        ring = disruptor.start();
    }

    private void startQueues(ThreadFactory factory) {
        List<BlockingQueue<Slot>> queues = new ArrayList<>();
        for (int s = 0; s < stages; s++) {
            queues.add(new ArrayBlockingQueue<>(RING_SIZE));
        }
        firstQueue = queues.get(0);
        for (int s = 1; s <= stages; s++) {
            BlockingQueue<Slot> in = queues.get(s - 1);
            BlockingQueue<Slot> out = s < stages ? queues.get(s) : null;
            MiddleStage middle = new MiddleStage(s);
            long[] count = {0};
            Runnable loop = () -> {
                try {
                    while (true) {
                        Slot e = in.take();
                        if (out != null) {
                            middle.onEvent(e, 0, false);
                            out.put(e);
                        } else {
                            e.stage = -1;
                            completion.arrived(++count[0]);
                        }
                    }
                } catch (InterruptedException stop) {
                    // trial over
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            };
            factory.newThread(loop).start();
        }
    }

    /** Publishes {@value #BURST} events and waits until the last stage has seen them; score per event. */
    @Benchmark
    @OperationsPerInvocation(BURST)
    public long burst() {
        return handOff(BURST);
    }

    /** Publishes one event and waits until the last stage has seen it; sampled, for percentiles. */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public long single() {
        return handOff(1);
    }

    /**
     * Publishes one event after the ring has been idle for {@value #IDLE_MICROS} µs and waits
     * until the last stage has seen it: the latency of a lone request to a quiet gateway, whose
     * stages have gone from spinning or yielding to their deepest wait.
     */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public long singleAfterIdle(Idle idle) {
        return handOff(1);
    }

    /**
     * Leaves the ring idle before each {@link #singleAfterIdle} invocation (not measured). The
     * producer busy-waits rather than parks, so when the event is published does not depend on
     * the producer's own timer wake-up, which could fall in step with the stages' timed naps; a
     * random extra 0..{@value #IDLE_JITTER_MICROS} µs spreads arrivals over the nap cycle. The
     * trade-off: the producer holds a core while it waits. On a shared machine the result still
     * depends on load (a stage in its {@code Thread.yield()} phase picks an event up at once), so
     * compare runs made side by side. Per thread; JMH owns it.
     */
    @State(Scope.Thread)
    public static class Idle {
        private final SplittableRandom random = new SplittableRandom(7);

        /** Spins for {@value #IDLE_MICROS} µs plus a random jitter. */
        @Setup(Level.Invocation)
        public void pause() {
            long until = System.nanoTime() + TimeUnit.MICROSECONDS.toNanos(IDLE_MICROS)
                    + random.nextLong(TimeUnit.MICROSECONDS.toNanos(IDLE_JITTER_MICROS));
            while (System.nanoTime() < until) {
                Thread.onSpinWait();
            }
        }
    }

    private long handOff(int n) {
        long target = published + n;
        completion.target = target;
        if (ring != null) {
            int i = 0;
            while (i < n) {
                int chunk = Math.min(n - i, CHUNK);
                long hi = nextOrSpin(chunk);
                long lo = hi - (chunk - 1);
                for (long seq = lo; seq <= hi; seq++) {
                    Slot slot = ring.get(seq);
                    Slot p = payloads[i + (int) (seq - lo)];
                    slot.payload = p;
                    slot.value = p.value;
                    slot.stage = 0;
                }
                ring.publish(lo, hi);
                i += chunk;
            }
        } else {
            try {
                for (int i = 0; i < n; i++) {
                    Slot p = payloads[i];
                    p.stage = 0;
                    firstQueue.put(p);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while publishing", e);
            }
        }
        published = target;
        completion.await(target);
        return target;
    }

    private long nextOrSpin(int n) {
        while (true) {
            try {
                return ring.tryNext(n);
            } catch (InsufficientCapacityException e) {
                Thread.onSpinWait();
            }
        }
    }

    /** Starts the consumer CPU clock of a measurement iteration. */
    @Setup(Level.Iteration)
    public void iterationStart() {
        iterationCpu = consumerCpu();
        iterationWall = System.nanoTime();
        iterationEvents = published;
    }

    /** Prints the consumers' CPU per event and cores busy during the iteration. */
    @TearDown(Level.Iteration)
    public void iterationEnd() {
        long cpu = consumerCpu() - iterationCpu;
        long wall = System.nanoTime() - iterationWall;
        long events = published - iterationEvents;
        System.out.printf(" [consumers: %.0f ns CPU/event, %.2f cores busy]", (double) cpu / Math.max(1, events),
                (double) cpu / wall);
        Throwable t = failure.get();
        if (t != null) {
            throw new IllegalStateException("a consumer stage failed", t);
        }
    }

    /** Stops the consumers and checks that every stage saw every event in order. */
    @TearDown(Level.Trial)
    public void stop() throws InterruptedException {
        if (disruptor != null) {
            disruptor.halt();
        }
        if (firstQueue != null) {
            for (Thread t : consumers) {
                t.interrupt(); // queue stages wait in take(); the Disruptor's stop on halt()
            }
        }
        for (Thread t : consumers) {
            t.join(TimeUnit.SECONDS.toMillis(5));
            if (t.isAlive()) {
                throw new IllegalStateException(t.getName() + " did not stop");
            }
        }
        Throwable t = failure.get();
        if (t != null) {
            throw new IllegalStateException("a consumer stage failed", t);
        }
        if (completion.seen != published) {
            throw new IllegalStateException("last stage saw " + completion.seen + " of " + published + " events");
        }
    }

    private long consumerCpu() {
        long sum = 0;
        for (Thread t : consumers) {
            long ns = threadBean.getThreadCpuTime(t.getId());
            if (ns > 0) {
                sum += ns;
            }
        }
        return sum;
    }

    /** A ring slot (Disruptor) or the queued object itself (ArrayBlockingQueue). */
    static final class Slot {
        /** The message the slot carries (a JournalItem in the gateway). */
        Slot payload;
        long value;
        /** The last stage that handled the event; checked by the next stage. */
        int stage;
    }

    /** Stage {@code n} of a chain: checks that the previous stage saw the event first and marks it. */
    static final class MiddleStage implements EventHandler<Slot> {
        private final int n;

        MiddleStage(int n) {
            this.n = n;
        }

        @Override
        public void onEvent(Slot e, long sequence, boolean endOfBatch) {
            if (e.stage != n - 1) {
                throw new IllegalStateException("stage " + n + " got an event last handled by stage " + e.stage);
            }
            e.stage = n;
        }
    }

    /** The last stage: counts events and reports the count to the producer. */
    static final class LastStage implements EventHandler<Slot> {
        private final Completion completion;
        private long count;

        LastStage(Completion completion) {
            this.completion = completion;
        }

        @Override
        public void onEvent(Slot e, long sequence, boolean endOfBatch) {
            e.stage = -1;
            completion.arrived(++count);
        }
    }

    /**
     * Completion of an invocation: the last stage publishes how many events it has seen; the
     * producer waits for its target, spinning {@value #WAIT_SPINS} times and then parking. The
     * last stage writes its count only when it reaches the target (one volatile write per
     * invocation, the same in every variant) and unparks the producer if it is parked. Both sides
     * write their own volatile field before reading the other's, so a wake-up cannot be lost.
     */
    static final class Completion {
        volatile long target;
        volatile long seen;
        volatile Thread waiting;

        void arrived(long count) {
            if (count >= target) {
                seen = count;
                Thread w = waiting;
                if (w != null) {
                    LockSupport.unpark(w);
                }
            }
        }

        void await(long goal) {
            for (int i = 0; i < WAIT_SPINS; i++) {
                if (seen >= goal) {
                    return;
                }
                Thread.onSpinWait();
            }
            waiting = Thread.currentThread();
            while (seen < goal) {
                LockSupport.park(this);
            }
            waiting = null;
        }
    }

    /** Records the first failure of a stage; the iteration then fails. Never halts the processor. */
    static final class FailingExceptionHandler implements ExceptionHandler<Slot> {
        private final AtomicReference<Throwable> failure;

        FailingExceptionHandler(AtomicReference<Throwable> failure) {
            this.failure = failure;
        }

        @Override
        public void handleEventException(Throwable ex, long sequence, Slot event) {
            failure.compareAndSet(null, ex);
        }

        @Override
        public void handleOnStartException(Throwable ex) {
            failure.compareAndSet(null, ex);
        }

        @Override
        public void handleOnShutdownException(Throwable ex) {
            failure.compareAndSet(null, ex);
        }
    }
}
