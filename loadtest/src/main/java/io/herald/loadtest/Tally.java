package io.herald.loadtest;

import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

import java.time.Instant;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * The books of one load run: which messages were acknowledged (2xx), which arrived at a peer and
 * how often, the latency histograms and a per-second timeline. This is the total-queue check of
 * the reliability design: at the end, an acknowledged message that never arrived is
 * <em>lost</em>, every arrival beyond the first is a <em>duplicate</em>, and an arrival of a
 * message that was never acknowledged (or of another run) is <em>unexpected</em>.
 *
 * <p>Messages are numbered {@code 0 .. total-1}; the first {@code warmup} are sent like the
 * others but left out of every figure (JIT warm-up). Each carries {@link #marker} in its text,
 * which the peers find and report. Times are epoch microseconds ({@link #nowMicros()}), the one
 * clock every process on the machine shares.
 *
 * <p>Thread-safe: counters are atomic and histograms are {@link Recorder}s, written by the
 * sender's callbacks and the peer readers concurrently. Memory: 8 bytes per message.
 */
public final class Tally {
    static final String MARK = "#lt:";
    private static final long MAX_LATENCY_MICROS = 600_000_000L;
    /** Seconds the timeline covers; later events go into the last slot. */
    static final int TIMELINE_SECONDS = 7_200;

    final int run;
    final long total;
    final long warmup;
    final long startMicros = nowMicros();
    private final AtomicIntegerArray acknowledged;
    private final AtomicIntegerArray arrivals;
    private final Recorder ingest = new Recorder(MAX_LATENCY_MICROS, 3);
    private final Recorder endToEnd = new Recorder(MAX_LATENCY_MICROS, 3);
    private final Recorder endToEndRecent = new Recorder(MAX_LATENCY_MICROS, 2);
    private final Histogram ingestAll = new Histogram(MAX_LATENCY_MICROS, 3);
    private final Histogram endToEndAll = new Histogram(MAX_LATENCY_MICROS, 3);
    private final Recorder rejection = new Recorder(MAX_LATENCY_MICROS, 3);
    final AtomicLongArray sentPerSecond = new AtomicLongArray(TIMELINE_SECONDS);
    final AtomicLongArray acknowledgedPerSecond = new AtomicLongArray(TIMELINE_SECONDS);
    final AtomicLongArray deliveredPerSecond = new AtomicLongArray(TIMELINE_SECONDS);
    final LongAdder sent = new LongAdder();
    final LongAdder acknowledgedCount = new LongAdder();
    final LongAdder rejected = new LongAdder();
    final LongAdder rejections429 = new LongAdder();
    final LongAdder failedRequests = new LongAdder();
    final LongAdder retriedRequests = new LongAdder();
    final LongAdder notAcknowledged = new LongAdder();
    final LongAdder arrivedCount = new LongAdder();
    final LongAdder duplicateArrivals = new LongAdder();
    final LongAdder foreignArrivals = new LongAdder();
    final LongAdder measuredArrivals = new LongAdder();
    final AtomicLong firstMeasuredIntended = new AtomicLong(Long.MAX_VALUE);
    final AtomicLong lastMeasuredArrival = new AtomicLong();
    final AtomicLong lastArrival = new AtomicLong();

    Tally(int run, long total, long warmup) {
        if (total > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("at most " + Integer.MAX_VALUE + " messages per run");
        }
        this.run = run;
        this.total = total;
        this.warmup = warmup;
        this.acknowledged = new AtomicIntegerArray((int) total);
        this.arrivals = new AtomicIntegerArray((int) total);
    }

    /** Microseconds since the epoch, from the wall clock every process on this machine shares. */
    static long nowMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    /** The text every message carries: {@code #lt:RUN:SEQ:INTENDED_MICROS#}. */
    static String marker(int run, long seq, long intendedMicros) {
        return MARK + run + ':' + seq + ':' + intendedMicros + '#';
    }

    /** {run, seq, intended micros} from the first marker in {@code text}, or null. */
    static long[] parseMarker(CharSequence text) {
        String s = text.toString();
        int at = s.indexOf(MARK);
        if (at < 0) {
            return null;
        }
        long[] out = new long[3];
        int i = at + MARK.length();
        for (int f = 0; f < 3; f++) {
            long v = 0;
            int start = i;
            while (i < s.length() && Character.isDigit(s.charAt(i)) && i - start < 18) {
                v = v * 10 + (s.charAt(i) - '0');
                i++;
            }
            char end = f < 2 ? ':' : '#';
            if (i == start || i >= s.length() || s.charAt(i) != end) {
                return null;
            }
            out[f] = v;
            i++;
        }
        return out;
    }

    boolean measured(long seq) {
        return seq >= warmup;
    }

    /** Messages {@code from .. from+n-1} are about to be sent with this intended time. */
    void sending(long from, int n, long intendedMicros) {
        sent.add(n);
        sentPerSecond.addAndGet(second(intendedMicros), n);
        if (from + n > warmup) {
            firstMeasuredIntended.accumulateAndGet(Math.max(intendedMicros, 0), Math::min);
        }
    }

    /** The endpoint acknowledged message {@code seq} (2xx); {@code latencyMicros} from its intended time. */
    void acknowledged(long seq, long nowMicros) {
        if (acknowledged.getAndSet((int) seq, 1) == 0) {
            acknowledgedCount.increment();
            acknowledgedPerSecond.incrementAndGet(second(nowMicros));
        }
    }

    /** One request (a batch, or one notification) answered 2xx after {@code latencyMicros}. */
    void ingestLatency(long firstSeq, long latencyMicros) {
        if (measured(firstSeq)) {
            ingest.recordValue(clamp(latencyMicros));
        }
    }

    /** A request answered 429/503 after {@code latencyMicros} from when that attempt was sent. */
    void rejectionLatency(long latencyMicros) {
        rejection.recordValue(clamp(latencyMicros));
    }

    /** Latency of the 429/503 answers (how fast overload is refused). */
    Histogram rejectionHistogram() {
        return rejection.getIntervalHistogram();
    }

    /** A peer reported an arrival. */
    void arrived(int runOfMessage, long seq, long intendedMicros, long arrivalMicros) {
        if (runOfMessage != run || seq < 0 || seq >= total) {
            foreignArrivals.increment();
            return;
        }
        int n = arrivals.incrementAndGet((int) seq);
        lastArrival.accumulateAndGet(arrivalMicros, Math::max);
        deliveredPerSecond.incrementAndGet(second(arrivalMicros));
        if (n > 1) {
            duplicateArrivals.increment();
            return;
        }
        arrivedCount.increment();
        if (measured(seq)) {
            measuredArrivals.increment();
            endToEnd.recordValue(clamp(arrivalMicros - intendedMicros));
            endToEndRecent.recordValue(clamp(arrivalMicros - intendedMicros));
            lastMeasuredArrival.accumulateAndGet(arrivalMicros, Math::max);
        }
    }

    /** Distinct acknowledged messages that have arrived (the drain is over when it equals acknowledged). */
    long acknowledgedArrived() {
        long n = 0;
        for (int i = 0; i < total; i++) {
            if (acknowledged.get(i) != 0 && arrivals.get(i) > 0) {
                n++;
            }
        }
        return n;
    }

    /** The total-queue check over every message of the run. */
    Report.Queue queueCheck() {
        long lost = 0;
        long unexpected = 0;
        long acked = 0;
        long firstLost = -1;
        for (int i = 0; i < total; i++) {
            boolean ack = acknowledged.get(i) != 0;
            int a = arrivals.get(i);
            if (ack) {
                acked++;
                if (a == 0) {
                    lost++;
                    if (firstLost < 0) {
                        firstLost = i;
                    }
                }
            } else if (a > 0) {
                unexpected++;
            }
        }
        return new Report.Queue(acked, arrivedCount.sum(), lost, duplicateArrivals.sum(),
                unexpected + foreignArrivals.sum(), firstLost);
    }

    /** Ingest histogram so far (cumulative; the recorder's interval is folded in). */
    synchronized Histogram ingestHistogram() {
        ingestAll.add(ingest.getIntervalHistogram());
        return ingestAll.copy();
    }

    /** End-to-end histogram so far (cumulative). */
    synchronized Histogram endToEndHistogram() {
        endToEndAll.add(endToEnd.getIntervalHistogram());
        return endToEndAll.copy();
    }

    /** End-to-end latencies recorded since the last call (the sampler's per-second view). */
    Histogram endToEndSinceLast() {
        return endToEndRecent.getIntervalHistogram();
    }

    int second(long micros) {
        long s = (micros - startMicros) / 1_000_000L;
        return (int) Math.max(0, Math.min(TIMELINE_SECONDS - 1, s));
    }

    private static long clamp(long micros) {
        return Math.max(0, Math.min(MAX_LATENCY_MICROS, micros));
    }
}
