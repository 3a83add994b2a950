package io.herald.gateway.connector.sms;

import io.herald.gateway.redis.Redis;
import io.herald.gateway.connector.Connector;
import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.connector.Retries;
import io.herald.gateway.connector.ReceiptListener;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Keys;
import io.lettuce.core.SetArgs;

import io.netty.util.HashedWheelTimer;
import io.netty.util.Timer;
import org.jsmpp.InvalidResponseException;
import org.jsmpp.PDUException;
import org.jsmpp.bean.AlertNotification;
import org.jsmpp.bean.BindType;
import org.jsmpp.bean.DataSm;
import org.jsmpp.bean.DeliverSm;
import org.jsmpp.bean.ESMClass;
import org.jsmpp.bean.InterfaceVersion;
import org.jsmpp.bean.MessageType;
import org.jsmpp.bean.NumberingPlanIndicator;
import org.jsmpp.bean.OptionalParameter;
import org.jsmpp.bean.RawDataCoding;
import org.jsmpp.bean.RegisteredDelivery;
import org.jsmpp.bean.SMSCDeliveryReceipt;
import org.jsmpp.bean.TypeOfNumber;
import org.jsmpp.extra.NegativeResponseException;
import org.jsmpp.extra.ProcessRequestException;
import org.jsmpp.extra.ResponseTimeoutException;
import org.jsmpp.extra.SessionState;
import org.jsmpp.session.BindParameter;
import org.jsmpp.session.DataSmResult;
import org.jsmpp.session.MessageReceiverListener;
import org.jsmpp.session.SMPPSession;
import org.jsmpp.session.Session;
import org.jsmpp.session.SubmitSmResult;
import org.jsmpp.util.DeliveryReceiptState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * SMS over SMPP 3.4 with jsmpp: per app ({@link Account}), {@code binds} transceiver sessions to
 * the SMSC, each with its own rate limit ({@code ratePerBind} submit_sm per second, evenly
 * spaced) and window ({@code window} outstanding submit_sm, one submitting thread per slot,
 * because jsmpp's {@code submitShortMessage} blocks until its response). Deliveries wait in one
 * queue per account; any bound session takes the next one, so a lost bind strands nothing.
 * {@link #send} only encodes the text and enqueues: it never blocks.
 *
 * <p>Outcomes: a text is encoded by {@link SmsText} and sent as its parts (UDHI set when
 * concatenated); it is ACCEPTED when every part is, with {@code providerId} the SMSC id of the
 * last part and {@code segments} the part count. ESME_RTHROTTLED / ESME_RMSGQFUL pause that bind
 * (equal-jitter backoff growing with consecutive throttles) and put the message back at the head
 * of the queue without using an attempt (at most {@value #THROTTLE_LIMIT_FACTOR} x maxAttempts
 * throttles, or until the deadline); ESME_RSYSERR, ESME_RX_T_APPN, response timeouts and broken
 * connections are retried with exponential backoff and equal jitter up to {@code maxAttempts},
 * then FAILED {@code retries_exhausted}; every other negative response is FAILED at once with the
 * status's snake_case name ({@code invalid_dest_addr}). Parts already accepted are not resent.
 * A lost bind is rebound with the same backoff; queued messages wait for it.
 *
 * <p>Receipts: each accepted part's id is stored as {@code herald:smsc:{app}:<normalised id>}
 * with a TTL of {@code receiptIdTtl}: the value is the message id for a single-part text and
 * {@code <message id>#<part>/<total>} for every part of a concatenated one, so each part's receipt
 * is reported with its part number (the listener decides the message: delivered only when every
 * part is). Receipts (deliver_sm with the SMSC-receipt esm_class) are acknowledged at once, then
 * resolved with GETDEL (Redis 6.2+; a second receipt for the same id finds nothing, so each part
 * is reported once even across gateway nodes) and passed to the {@link ReceiptListener}; a miss
 * is retried a few times, since a receipt can overtake the SET of its id. Trade-off: a receipt
 * acknowledged but not resolved when the process dies is lost (receipts are advisory).
 *
 * <p>Costs: one platform thread per window slot (binds x window per account) plus jsmpp's
 * reader, processor and enquire_link threads per session; keep windows modest (10 to 50) and
 * add binds instead. Submits are evenly spaced (no burst), which is what carriers' per-second
 * limits tolerate best.
 *
 * <p>Thread-safe. Owns its sessions, threads and timer, not the Redis connection; owned and
 * closed by {@code Herald}.
 */
public final class SmsConnector implements Connector {
    private static final Logger log = LoggerFactory.getLogger(SmsConnector.class);

    /** Throttle answers a message may get, as a multiple of maxAttempts, before it fails. */
    static final int THROTTLE_LIMIT_FACTOR = 10;
    private static final long RESPONSE_TIMEOUT_MS = 5_000;
    private static final int ENQUIRE_LINK_MS = 30_000;
    private static final long[] RECEIPT_LOOKUP_RETRY_MS = {100, 1_000, 5_000};

    /**
     * One app's SMSC account. {@code ratePerBind} is submit_sm per second per session,
     * {@code window} the outstanding submit_sm per session; {@code sourceAddress} is an
     * alphanumeric sender id, a short code, or an E.164 number with '+'.
     */
    public record Account(String app, String host, int port, String systemId, String password, int binds,
                          int ratePerBind, int window, String sourceAddress) {
        public Account {
            Objects.requireNonNull(app, "app");
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(systemId, "systemId");
            Objects.requireNonNull(password, "password");
            Objects.requireNonNull(sourceAddress, "sourceAddress");
            check(port, 1, 65535, "port");
            check(binds, 1, 64, "binds");
            check(ratePerBind, 1, 100_000, "ratePerBind");
            check(window, 1, 1_000, "window");
        }
    }

    /**
     * Retry policy. {@code backoffBase}/{@code backoffMax} drive retries, throttle pauses and
     * rebinds; {@code receiptIdTtl} is how long an SMSC id stays resolvable for receipts.
     */
    public record Settings(int maxAttempts, Duration backoffBase, Duration backoffMax, Duration receiptIdTtl) {
        public Settings {
            check(maxAttempts, 1, 1_000, "maxAttempts");
            Objects.requireNonNull(backoffBase, "backoffBase");
            Objects.requireNonNull(backoffMax, "backoffMax");
            Objects.requireNonNull(receiptIdTtl, "receiptIdTtl");
            if (backoffBase.toMillis() < 1 || backoffMax.compareTo(backoffBase) < 0) {
                throw new IllegalArgumentException(String.format("backoffBase/backoffMax: %s/%s (expected: 1 ms <= base <= max)",
                        backoffBase, backoffMax));
            }
            if (receiptIdTtl.toMillis() < 1) {
                throw new IllegalArgumentException(String.format("receiptIdTtl: %s (expected: > 0)", receiptIdTtl));
            }
        }
    }

    private static void check(int value, int min, int max, String name) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(String.format("%s: %s (expected: %s..%s)", name, value, min, max));
        }
    }

    private final Settings settings;
    private final Redis.Connection redis;
    private final ReceiptListener receipts;
    private final Metrics metrics;
    private final Map<String, Pool> pools = new LinkedHashMap<>();
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Timer timer = new HashedWheelTimer(r -> daemon(r, "herald-sms-timer"), 10, TimeUnit.MILLISECONDS);
    private final ExecutorService control = Executors.newCachedThreadPool(r -> daemon(r, "herald-sms-bind"));

    public SmsConnector(Settings settings, Map<String, Account> accountsByApp,
                        Redis.Connection redis, ReceiptListener receipts, Metrics metrics) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.redis = Objects.requireNonNull(redis, "redis");
        this.receipts = Objects.requireNonNull(receipts, "receipts");
        this.metrics = Objects.requireNonNull(metrics, "metrics");
        accountsByApp.forEach((app, account) -> pools.put(app, new Pool(app, account)));
        pools.values().forEach(Pool::start);
    }

    private static Thread daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    @Override
    public String platform() {
        return "sms";
    }

    @Override
    public void send(Delivery delivery) {
        pending.incrementAndGet();
        Pool pool = pools.get(delivery.app());
        if (pool == null) {
            control.execute(() -> fail(delivery, "no_sms_account", List.of()));
            return;
        }
        String text = SmsText.textOf(delivery.message());
        if (text.isEmpty()) {
            control.execute(() -> fail(delivery, "empty_text", List.of()));
            return;
        }
        SmsText.Encoded encoded;
        try {
            encoded = SmsText.encode(text);
        } catch (IllegalArgumentException e) {
            control.execute(() -> fail(delivery, "text_too_long", List.of()));
            return;
        }
        pool.queue.addLast(new Attempt(delivery, pool, encoded));
    }

    private void fail(Delivery d, String reason, List<String> notes) {
        metrics.connectorOutcome("sms", reason);
        pending.decrementAndGet();
        d.listener().onResult(d, new DeliveryResult(DeliveryResult.Status.FAILED, reason, 0,
                System.currentTimeMillis(), notes));
    }

    @Override
    public boolean ready() {
        if (closed.get()) {
            return false;
        }
        for (Pool p : pools.values()) {
            if (p.binds.stream().noneMatch(Bind::isBound)) {
                return false;
            }
        }
        return true;
    }

    @Override
    public int pending() {
        return pending.get();
    }

    /** Bound sessions of an app's account (for tests and health detail). */
    public int boundSessions(String app) {
        Pool p = pools.get(app);
        return p == null ? 0 : (int) p.binds.stream().filter(Bind::isBound).count();
    }

    /**
     * Unbinds and closes every session and stops the threads. Deliveries not yet reported stay
     * unreported (they are still in the journal). Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        List<java.util.concurrent.Future<?>> unbinds = new ArrayList<>();
        for (Pool p : pools.values()) {
            for (Bind b : p.binds) {
                b.workers.shutdownNow();
                synchronized (b) {
                    b.notifyAll();
                }
                SMPPSession s = b.session.getAndSet(null);
                if (s != null) {
                    unbinds.add(control.submit(s::unbindAndClose));
                }
            }
        }
        for (var f : unbinds) {
            try {
                f.get(RESPONSE_TIMEOUT_MS + 1_000, TimeUnit.MILLISECONDS);
            } catch (Exception ignored) {
                // best effort
            }
        }
        timer.stop();
        control.shutdownNow();
    }

    /** One delivery, its encoded parts, progress and history. Used by one thread at a time. */
    private static final class Attempt {
        final Delivery delivery;
        final Pool pool;
        final SmsText.Encoded encoded;
        final List<String> partIds = new ArrayList<>(1);
        final List<String> notes = new ArrayList<>(0);
        int attempts;
        int throttles;

        Attempt(Delivery delivery, Pool pool, SmsText.Encoded encoded) {
            this.delivery = delivery;
            this.pool = pool;
            this.encoded = encoded;
        }

        int nextPart() {
            return partIds.size();
        }
    }

    /** One app's account: the shared queue and its binds. */
    private final class Pool {
        final String app;
        final Account account;
        final LinkedBlockingDeque<Attempt> queue = new LinkedBlockingDeque<>();
        final List<Bind> binds = new ArrayList<>();
        final TypeOfNumber sourceTon;
        final NumberingPlanIndicator sourceNpi;
        final String source;

        Pool(String app, Account account) {
            this.app = app;
            this.account = account;
            String s = account.sourceAddress();
            if (s.startsWith("+")) {
                sourceTon = TypeOfNumber.INTERNATIONAL;
                sourceNpi = NumberingPlanIndicator.ISDN;
                source = s.substring(1);
            } else if (s.chars().anyMatch(Character::isLetter)) {
                sourceTon = TypeOfNumber.ALPHANUMERIC;
                sourceNpi = NumberingPlanIndicator.UNKNOWN;
                source = s;
            } else {
                sourceTon = TypeOfNumber.UNKNOWN;
                sourceNpi = NumberingPlanIndicator.ISDN;
                source = s;
            }
            for (int i = 0; i < account.binds(); i++) {
                binds.add(new Bind(this, i));
            }
        }

        void start() {
            binds.forEach(Bind::start);
        }
    }

    /**
     * One transceiver session with its window of submitting threads, rate limiter, throttle
     * pause and rebind loop. The monitor guards the pause; workers wait on it while unbound or
     * paused.
     */
    private final class Bind {
        final Pool pool;
        final int index;
        final AtomicReference<SMPPSession> session = new AtomicReference<>();
        final ExecutorService workers;
        final long intervalNanos;
        long nextPermitNanos; // guarded by limiterLock
        final Object limiterLock = new Object();
        volatile long pausedUntilNanos;
        final AtomicInteger throttleStreak = new AtomicInteger();
        int bindFailures; // only touched by the (serialised) connect path

        Bind(Pool pool, int index) {
            this.pool = pool;
            this.index = index;
            this.intervalNanos = TimeUnit.SECONDS.toNanos(1) / pool.account.ratePerBind();
            String name = "herald-sms-" + pool.app + "-" + index;
            this.workers = Executors.newFixedThreadPool(pool.account.window(), r -> daemon(r, name));
        }

        boolean isBound() {
            SMPPSession s = session.get();
            return s != null && s.getSessionState().isBound();
        }

        void start() {
            control.execute(this::connect);
            for (int i = 0; i < pool.account.window(); i++) {
                workers.execute(this::work);
            }
        }

        void connect() {
            if (closed.get()) {
                return;
            }
            Account a = pool.account;
            SMPPSession s = new SMPPSession();
            s.setTransactionTimer(RESPONSE_TIMEOUT_MS);
            s.setEnquireLinkTimer(ENQUIRE_LINK_MS);
            s.setMessageReceiverListener(new ReceiptReceiver(pool.app));
            try {
                s.connectAndBind(a.host(), a.port(), new BindParameter(BindType.BIND_TRX, a.systemId(), a.password(),
                        "", TypeOfNumber.UNKNOWN, NumberingPlanIndicator.UNKNOWN, null, InterfaceVersion.IF_34),
                        RESPONSE_TIMEOUT_MS);
            } catch (IOException | RuntimeException e) {
                s.close();
                metrics.connectorOutcome("sms", "bind_failed");
                bindFailures++;
                long delay = backoff(bindFailures);
                log.warn("sms {} bind {}: cannot bind to {}:{} as {} ({}); retrying in {} ms", pool.app, index,
                        a.host(), a.port(), a.systemId(), Retries.rootMessage(e), delay);
                reconnectLater(delay);
                return;
            }
            if (closed.get()) {
                s.unbindAndClose();
                return;
            }
            bindFailures = 0;
            s.addSessionStateListener((SessionState newState, SessionState old, Session src) -> {
                if (!newState.isBound() && newState != SessionState.OPEN) {
                    lost(s);
                }
            });
            session.set(s);
            log.info("sms {} bind {}: bound to {}:{} as {}", pool.app, index, a.host(), a.port(), a.systemId());
            synchronized (this) {
                notifyAll();
            }
            if (!s.getSessionState().isBound()) {
                lost(s); // dropped before the listener was in place
            }
        }

        void lost(SMPPSession s) {
            if (!session.compareAndSet(s, null) || closed.get()) {
                return;
            }
            metrics.connectorOutcome("sms", "bind_lost");
            log.warn("sms {} bind {}: session lost; rebinding", pool.app, index);
            control.execute(s::close);
            reconnectLater(backoff(1));
        }

        void reconnectLater(long delayMs) {
            if (!closed.get()) {
                timer.newTimeout(t -> {
                    if (!closed.get()) {
                        control.execute(this::connect);
                    }
                }, delayMs, TimeUnit.MILLISECONDS);
            }
        }

        /** Waits for a bound, unpaused session; null when closing. */
        SMPPSession awaitUsable() throws InterruptedException {
            synchronized (this) {
                while (!closed.get()) {
                    SMPPSession s = session.get();
                    long pause = pausedUntilNanos - System.nanoTime();
                    if (s != null && s.getSessionState().isBound() && pause <= 0) {
                        return s;
                    }
                    long waitMs = s == null ? 1_000 : Math.max(1, TimeUnit.NANOSECONDS.toMillis(pause) + 1);
                    wait(Math.min(waitMs, 1_000));
                }
                return null;
            }
        }

        void work() {
            try {
                while (!closed.get()) {
                    SMPPSession s = awaitUsable();
                    if (s == null) {
                        return;
                    }
                    Attempt a = pool.queue.pollFirst(200, TimeUnit.MILLISECONDS);
                    if (a != null) {
                        submit(a, s);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // closing
            } catch (RuntimeException e) {
                log.error("sms {} bind {}: worker failed", pool.app, index, e);
                if (!closed.get()) {
                    workers.execute(this::work);
                }
            }
        }

        /** Reserves the next evenly spaced send slot and waits for it (rate pacing, not synchronisation). */
        void acquirePermit() throws InterruptedException {
            long wait;
            synchronized (limiterLock) {
                long now = System.nanoTime();
                long at = Math.max(now, nextPermitNanos);
                nextPermitNanos = at + intervalNanos;
                wait = at - now;
            }
            if (wait > 0) {
                long deadline = System.nanoTime() + wait;
                long left;
                while ((left = deadline - System.nanoTime()) > 0) { // parkNanos may wake early
                    LockSupport.parkNanos(left);
                    if (Thread.interrupted()) {
                        throw new InterruptedException();
                    }
                }
            }
        }

        void throttled(Attempt a, int status) {
            int streak = throttleStreak.incrementAndGet();
            long delay = backoff(streak);
            pausedUntilNanos = Math.max(pausedUntilNanos, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(delay));
            String name = SmppStatus.name(status);
            metrics.connectorOutcome("sms", name);
            long now = System.currentTimeMillis();
            a.throttles++;
            if (a.throttles > THROTTLE_LIMIT_FACTOR * settings.maxAttempts() || pastDeadline(a, now)) {
                a.notes.add(Retries.note(now, "retry_failed", a.delivery.target().deviceId(), name + " from bind " + index + "; giving up after "
                        + a.throttles + " throttles"));
                fail(a.delivery, "retries_exhausted", a.notes);
                return;
            }
            a.notes.add(Retries.note(now, "retry", a.delivery.target().deviceId(), name + " from bind " + index + "; bind paused " + delay
                    + " ms, message requeued"));
            pool.queue.addFirst(a);
        }

        void submit(Attempt a, SMPPSession s) throws InterruptedException {
            a.attempts++;
            SmsText.Encoded enc = a.encoded;
            String dest = a.delivery.target().token();
            if (dest.startsWith("+")) {
                dest = dest.substring(1);
            }
            ESMClass esm = new ESMClass(enc.concatenated() ? 0x40 : 0x00);
            RegisteredDelivery rd = new RegisteredDelivery(SMSCDeliveryReceipt.SUCCESS_FAILURE);
            RawDataCoding dc = new RawDataCoding(enc.dataCoding().value());
            String validity = validityPeriod(a.delivery);
            while (a.nextPart() < enc.segments()) {
                int part = a.nextPart();
                acquirePermit();
                if (closed.get()) {
                    return; // shutting down: the message stays in the journal
                }
                String retryReason;
                try {
                    SubmitSmResult r = s.submitShortMessage("", pool.sourceTon, pool.sourceNpi, pool.source,
                            TypeOfNumber.INTERNATIONAL, NumberingPlanIndicator.ISDN, dest, esm, (byte) 0, (byte) 0,
                            null, validity, rd, (byte) 0, dc, (byte) 0, enc.parts().get(part));
                    String id = SmscReceipt.normaliseId(r.getMessageId());
                    a.partIds.add(id);
                    throttleStreak.set(0);
                    storeReceiptKey(a, id, part, enc.segments());
                    continue;
                } catch (NegativeResponseException e) {
                    int status = e.getCommandStatus();
                    if (SmppStatus.isThrottle(status)) {
                        throttled(a, status);
                        return;
                    }
                    if (!SmppStatus.isTransient(status)) {
                        fail(a.delivery, SmppStatus.name(status), a.notes);
                        return;
                    }
                    metrics.connectorOutcome("sms", SmppStatus.name(status));
                    retryReason = SmppStatus.name(status) + " on part " + (part + 1) + "/" + enc.segments();
                } catch (PDUException e) {
                    a.notes.add(Retries.note(System.currentTimeMillis(), "failed", a.delivery.target().deviceId(), Retries.rootMessage(e)));
                    fail(a.delivery, "invalid_pdu", a.notes);
                    return;
                } catch (ResponseTimeoutException | InvalidResponseException | IOException | RuntimeException e) {
                    if (closed.get()) {
                        return;
                    }
                    metrics.connectorOutcome("sms", "transport_error");
                    retryReason = "connection: " + Retries.rootMessage(e) + " on part " + (part + 1) + "/" + enc.segments();
                }
                retry(a, retryReason);
                return;
            }
            long now = System.currentTimeMillis();
            metrics.connectorOutcome("sms", "accepted");
            pending.decrementAndGet();
            a.delivery.listener().onResult(a.delivery, new DeliveryResult(DeliveryResult.Status.ACCEPTED, null, 0, now,
                    a.notes, a.partIds.get(a.partIds.size() - 1), enc.segments()));
        }

        void retry(Attempt a, String reason) {
            long now = System.currentTimeMillis();
            if (a.attempts >= settings.maxAttempts() || pastDeadline(a, now)) {
                a.notes.add(Retries.note(now, "retry_failed", a.delivery.target().deviceId(), reason + "; giving up after " + a.attempts + " attempts"));
                fail(a.delivery, "retries_exhausted", a.notes);
                return;
            }
            long delay = backoff(a.attempts);
            a.notes.add(Retries.note(now, "retry", a.delivery.target().deviceId(), reason + "; attempt " + (a.attempts + 1) + " in " + delay + " ms"));
            timer.newTimeout(t -> pool.queue.addLast(a), delay, TimeUnit.MILLISECONDS);
        }
    }

    private static boolean pastDeadline(Attempt a, long now) {
        return a.delivery.message().ttlSeconds() > 0 && now >= a.delivery.deadline();
    }

    /** Equal jitter: a random wait between half and all of {@code base * 2^(n-1)}, capped at max. */
    private long backoff(int n) {
        return Retries.backoffMillis(settings.backoffBase(), settings.backoffMax(), n);
    }

    /** SMPP relative validity period for the message's TTL ({@code 0000DDhhmmss000R}); null = SMSC default. */
    static String validityPeriod(Delivery d) {
        long ttl = d.message().ttlSeconds();
        if (ttl <= 0) {
            return null;
        }
        long remaining = Math.max(60, (d.deadline() - System.currentTimeMillis()) / 1000);
        long s = Math.min(ttl, remaining);
        s = Math.min(s, 99L * 86_400);
        return String.format("0000%02d%02d%02d%02d000R", s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    }

    private void storeReceiptKey(Attempt a, String id, int part, int total) {
        String value = total == 1 ? a.delivery.messageId().toString()
                : a.delivery.messageId() + "#" + (part + 1) + "/" + total;
        redis.async().set(Keys.smscPart(a.pool.app, id), value, SetArgs.Builder.px(settings.receiptIdTtl().toMillis()))
                .whenComplete((ok, e) -> {
                    if (e != null) {
                        log.warn("sms {}: cannot store SMSC id {} of message {} ({}); its receipt will be ignored",
                                a.pool.app, id, a.delivery.messageId(), Retries.rootMessage(e));
                    }
                });
    }

    /** Receives deliver_sm on one session: receipts are resolved asynchronously, the response is immediate. */
    private final class ReceiptReceiver implements MessageReceiverListener {
        private final String app;

        ReceiptReceiver(String app) {
            this.app = app;
        }

        @Override
        public void onAcceptDeliverSm(DeliverSm deliverSm) throws ProcessRequestException {
            if (!MessageType.SMSC_DEL_RECEIPT.containedIn(deliverSm.getEsmClass())) {
                metrics.connectorOutcome("sms", "mobile_originated_ignored");
                return;
            }
            byte[] sm = deliverSm.getShortMessage();
            String text = sm == null ? "" : new String(sm, StandardCharsets.ISO_8859_1);
            String tlvId = null;
            String tlvStat = null;
            OptionalParameter id = deliverSm.getOptionalParameter(OptionalParameter.Tag.RECEIPTED_MESSAGE_ID);
            if (id instanceof OptionalParameter.COctetString c) {
                tlvId = c.getValueAsString();
            }
            OptionalParameter state = deliverSm.getOptionalParameter(OptionalParameter.Tag.MESSAGE_STATE);
            if (state instanceof OptionalParameter.Byte b) {
                try {
                    tlvStat = DeliveryReceiptState.valueOf(b.getValue()).name();
                } catch (IllegalArgumentException ignored) {
                    // unknown state value
                }
            }
            SmscReceipt receipt = SmscReceipt.parse(text, tlvId, tlvStat);
            if (receipt == null) {
                metrics.connectorOutcome("sms", "receipt_unparsable");
                log.debug("sms {}: unparsable receipt {}", app, text);
                return;
            }
            if (!receipt.isFinal()) {
                return;
            }
            resolve(app, receipt, SmscReceipt.normaliseId(receipt.id()), 0);
        }

        @Override
        public void onAcceptAlertNotification(AlertNotification alertNotification) {
            // not used
        }

        @Override
        public DataSmResult onAcceptDataSm(DataSm dataSm, Session source) throws ProcessRequestException {
            throw new ProcessRequestException("data_sm is not supported", 0x03);
        }
    }

    private void resolve(String app, SmscReceipt receipt, String id, int tries) {
        if (closed.get()) {
            return;
        }
        redis.async().getdel(Keys.smscPart(app, id)).whenComplete((value, e) -> {
            if (value == null) {
                if (tries < RECEIPT_LOOKUP_RETRY_MS.length) {
                    timer.newTimeout(t -> resolve(app, receipt, id, tries + 1), RECEIPT_LOOKUP_RETRY_MS[tries],
                            TimeUnit.MILLISECONDS);
                } else {
                    metrics.connectorOutcome("sms", "receipt_unmatched");
                    log.debug("sms {}: receipt for unknown SMSC id {} ({}){}", app, id, receipt.stat(),
                            e != null ? ": " + Retries.rootMessage(e) : "");
                }
                return;
            }
            // "<message id>" (a single part) or "<message id>#<part>/<parts>"
            int hash = value.indexOf('#');
            int slash = value.indexOf('/', hash + 1);
            UUID messageId;
            int part = 1;
            int parts = 1;
            try {
                messageId = UUID.fromString(hash < 0 ? value : value.substring(0, hash));
                if (hash >= 0) {
                    part = Integer.parseInt(value.substring(hash + 1, slash));
                    parts = Integer.parseInt(value.substring(slash + 1));
                }
            } catch (IllegalArgumentException | IndexOutOfBoundsException bad) {
                log.warn("sms {}: SMSC id {} maps to {}, not a message id and part", app, id, value);
                return;
            }
            metrics.connectorOutcome("sms", "receipt_" + receipt.stat().toLowerCase(java.util.Locale.ROOT));
            try {
                receipts.onReceipt(app, messageId, part, parts, receipt.outcome(), receipt.reason(),
                        System.currentTimeMillis());
            } catch (RuntimeException listenerFailure) {
                log.error("sms {}: receipt listener failed for {}", app, messageId, listenerFailure);
            }
        });
    }



}
