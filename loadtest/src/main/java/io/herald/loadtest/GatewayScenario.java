package io.herald.loadtest;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Stream;

/**
 * The {@code gateway} scenario: one gateway, driven end to end over its HTTP API.
 *
 * <ol>
 *   <li>Target: by default a gateway started for this run ({@link GatewayProcess}) with a fresh
 *       data directory, a random API key and a config that lifts the per-user rate limit out of
 *       the way; or a running gateway given with {@code --url} and {@code --api-key}
 *       (loopback only).</li>
 *   <li>Registers {@code --users} users for {@code --channel}: one APNs or FCM device {@code d1}
 *       each, or a phone number for sms; by bulk import ({@code POST /v1/apps/{app}/users},
 *       {@code --import-size} users per request, the default) or one PUT per user
 *       ({@code --registration put}, {@code --register-concurrency} requests at a time).</li>
 *   <li>Posts {@code --messages} messages, each naming {@code "channel"}, in batches of
 *       {@code --batch-size}, round-robin over the users, with at most {@code --concurrency} batches in flight. A 429 is retried after its
 *       {@code Retry-After}, keeping its slot; any other failure is counted and not retried.</li>
 *   <li>Meanwhile, follows every accepted batch in acceptance order with
 *       {@code GET /v1/batches/{id}} until it is {@code done}: the oldest unfinished batch is
 *       polled every {@code --poll-interval}, finished ones are stepped over without waiting. For
 *       sms a batch is finished only when no message is {@code accepted} any more either (every
 *       delivery receipt in: {@code accepted -> delivered}).</li>
 *   <li>Reports ({@link LoadReport}) and returns 0 only when every planned message was accepted and
 *       ended {@code accepted} or {@code delivered} within {@code --timeout} (for sms:
 *       {@code delivered}, receipt included); 1 otherwise; 2 when the run
 *       could not be set up (gateway did not start, registration failed, bad options).</li>
 * </ol>
 *
 * <p>Threading: the calling thread sends (it blocks on the in-flight semaphore), a second thread
 * polls status, and response callbacks run on a small pool; shared counters are atomic, and
 * everything the poller needs is published through a concurrent queue before the in-flight slot
 * is released. Ownership: the scenario owns the gateway it starts, its temporary directory
 * (deleted after a passing run unless {@code --keep-data}; kept, and its path printed, after a
 * failing one), and its thread pools; all are released before {@link #call()} returns.
 *
 * <p>Trade-off: the driver builds each batch body just before posting it rather than all up
 * front, so memory stays flat for any {@code --messages}; building costs the driver CPU on the
 * same machine as the gateway, but it is not inside the timed POST-to-202 interval.
 */
@Command(name = "gateway", mixinStandardHelpOptions = true,
        description = "Drive one gateway end to end: register devices or phones, post batches, wait until every "
                + "message is delivered, report throughput and ingest latency.")
public final class GatewayScenario implements Callable<Integer> {
    static final String DEFAULT_JAR = "gateway/target/herald-gateway-0.1.0-SNAPSHOT-all.jar";
    private static final long MAX_LATENCY_MICROS = TimeUnit.MINUTES.toMicros(10);
    /** Most users per bulk import request (the gateway's limit). */
    static final int MAX_IMPORT = 10_000;
    /** Bulk import requests in flight: each is a big body decoded on the gateway's intake pool. */
    static final int IMPORT_CONCURRENCY = 2;
    private static final String TOKEN_ALPHABET =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

    /** The delivery channel under test; the lower-case name is the wire value. */
    enum Channel { apns, fcm, sms }

    /** How users are registered. */
    enum Registration { IMPORT, PUT }

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--url", description = "Base URL of a running gateway (loopback only). Default: start one.")
    String url;

    @Option(names = "--api-key", description = "API key for --app on the gateway given with --url.")
    String apiKey;

    @Option(names = "--app", description = "App to send as. Default: ${DEFAULT-VALUE}")
    String app = "load";

    @Option(names = "--gateway-jar", description = "Gateway shaded jar to start. Default: ${DEFAULT-VALUE}")
    Path gatewayJar = Path.of(DEFAULT_JAR);

    @Option(names = "--gateway-heap", description = "-Xmx of the started gateway. Default: ${DEFAULT-VALUE}")
    String gatewayHeap = "512m";

    @Option(names = "--capacity", description = "herald.pipeline.capacity of the started gateway. "
            + "Default: ${DEFAULT-VALUE}")
    int capacity = 131_072;

    @Option(names = "--channel", description = "Channel under test: apns, fcm (one device d1 per user) or sms "
            + "(a phone per user). Messages name it in \"channel\". Default: ${DEFAULT-VALUE}")
    Channel channel = Channel.apns;

    @Option(names = "--users", description = "Users, one device (or phone) each. Default: ${DEFAULT-VALUE}")
    int users = 1000;

    @Option(names = "--registration", converter = RegistrationConverter.class,
            description = "import (bulk POST /v1/apps/{app}/users) or put (one PUT per user). Default: import")
    Registration registration = Registration.IMPORT;

    @Option(names = "--import-size", description = "Users per bulk import request (1..10000). "
            + "Default: ${DEFAULT-VALUE}")
    int importSize = MAX_IMPORT;

    @Option(names = "--messages", description = "Messages to send. Default: ${DEFAULT-VALUE}")
    long messages = 100_000;

    @Option(names = "--batch-size", description = "Messages per batch. Default: ${DEFAULT-VALUE}")
    int batchSize = 1000;

    @Option(names = "--concurrency", description = "Batches in flight. Default: ${DEFAULT-VALUE}")
    int concurrency = 4;

    @Option(names = "--register-concurrency", description = "Registrations in flight with --registration put. "
            + "Default: ${DEFAULT-VALUE}")
    int registerConcurrency = 32;

    @Option(names = "--poll-interval", description = "Status poll interval while the oldest batch is unfinished, "
            + "ms. Default: ${DEFAULT-VALUE}")
    long pollIntervalMillis = 20;

    @Option(names = "--timeout", description = "Bound on registration + sending + completion, seconds. "
            + "Default: ${DEFAULT-VALUE}")
    long timeoutSeconds = 300;

    @Option(names = "--out", description = "JSON result file. Default: ${DEFAULT-VALUE}")
    Path out = Path.of("loadtest-result.json");

    @Option(names = "--keep-data", description = "Keep the started gateway's directory (config, data, log) "
            + "even after a passing run.")
    boolean keepData;

    private final ObjectMapper mapper = new ObjectMapper();

    // ---- run state (one run per instance) ----
    private final ConcurrentHistogram latency = new ConcurrentHistogram(MAX_LATENCY_MICROS, 3);
    private final ConcurrentLinkedQueue<Accepted> accepted = new ConcurrentLinkedQueue<>();
    private final AtomicLong firstPostNanos = new AtomicLong();
    private final AtomicLong lastAcceptedNanos = new AtomicLong();
    private final LongAdder batches202 = new LongAdder();
    private final LongAdder batches429 = new LongAdder();
    private final LongAdder batchesFailed = new LongAdder();
    private final LongAdder messagesAccepted = new LongAdder();
    private final LongAdder messagesRejected = new LongAdder();
    private final LongAdder messagesNotAccepted = new LongAdder();
    private final LongAdder registrationRequests = new LongAdder();
    private final LongAdder registrationRetries = new LongAdder();
    private final Map<String, LongAdder> failuresByStatus = new ConcurrentHashMap<>();
    private final AtomicReference<String> firstFailure = new AtomicReference<>();
    private volatile boolean sendingDone;

    /** One batch the gateway accepted: its id and how many of its messages it accepted. */
    private record Accepted(String batchId, int messages) { }

    /** Final tallies of finished batches, written by the poller thread only. */
    private static final class Outcome {
        long delivered;
        long receipts;
        long awaitingReceipt;
        long failed;
        long dropped;
        long unfinished;
        long pollErrors;
        long lastDoneNanos;
        boolean timedOut;
        final Map<String, Long> reasons = new TreeMap<>();
    }

    @Override
    public Integer call() throws Exception {
        validate();
        Instant startedAt = Instant.now();
        Path dir = null;
        GatewayProcess gateway = null;
        Thread stopHook = null;
        ExecutorService io = Executors.newFixedThreadPool(4, daemon("loadtest-http"));
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(daemon("loadtest-retry"));
        boolean ok = false;
        try {
            String baseUrl;
            String key;
            if (url != null) {
                baseUrl = HeraldClient.requireLoopback(url).toString();
                key = apiKey;
            } else {
                dir = Files.createTempDirectory("herald-loadtest-");
                key = randomKey(32);
                System.out.printf("starting gateway from %s (log: %s)%n", gatewayJar, dir.resolve("gateway.log"));
                try {
                    gateway = GatewayProcess.start(gatewayJar, dir, gatewayHeap, app, key, hocon(),
                            Duration.ofSeconds(60));
                } catch (IOException e) {
                    System.err.println("loadtest: cannot start the gateway: " + e.getMessage());
                    return 2;
                }
                GatewayProcess g = gateway;
                stopHook = new Thread(g::close, "loadtest-stop-gateway");
                Runtime.getRuntime().addShutdownHook(stopHook);
                baseUrl = gateway.baseUrl();
                System.out.printf("gateway pid %d ready on %s%n", gateway.pid(), baseUrl);
            }
            HeraldClient client = HeraldClient.create(baseUrl, key, Duration.ofSeconds(60), io, mapper);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);

            long regStart = System.nanoTime();
            long regFailures = registration == Registration.IMPORT ? importUsers(client, deadline, timer)
                    : putEach(client, deadline);
            double regSeconds = (System.nanoTime() - regStart) / 1e9;
            if (regFailures > 0) {
                System.err.println("loadtest: " + regFailures + " of " + users + " user registrations failed: "
                        + firstFailure.get());
                return 2;
            }
            System.out.printf(java.util.Locale.ROOT, "registered %,d users (%s) in %.2f s (%,.0f users/s, %s); "
                            + "sending %,d messages in batches of %,d, %d in flight%n",
                    users, channel == Channel.sms ? "phone" : channel + " device", regSeconds, users / regSeconds,
                    registration == Registration.IMPORT ? "bulk import" : "one PUT each", messages, batchSize,
                    concurrency);

            Outcome outcome = new Outcome();
            Thread poller = new Thread(() -> poll(client, deadline, outcome), "loadtest-poller");
            poller.start();
            long plannedBatches = send(client, deadline, timer);
            poller.join();

            LoadReport report = report(startedAt, baseUrl, url == null, regSeconds, regFailures, plannedBatches,
                    outcome);
            report.print(System.out);
            report.write(out, mapper);
            System.out.println("result written to " + out.toAbsolutePath());
            ok = report.ok();
            if (!ok && gateway != null) {
                System.out.println("gateway output (last lines):\n" + gateway.lastOutput());
            }
            return ok ? 0 : 1;
        } finally {
            if (gateway != null) {
                long stopStart = System.nanoTime();
                int status = gateway.stopAndWait();
                double stopSeconds = (System.nanoTime() - stopStart) / 1e9;
                if (status == 0 || status == GatewayProcess.EXIT_ON_SIGTERM) {
                    System.out.printf("gateway stopped by SIGTERM in %.2f s (exit status %d)%n", stopSeconds, status);
                } else {
                    System.err.printf("loadtest: the gateway did not stop cleanly: %s after %.2f s; log %s%n",
                            status < 0 ? "killed" : "exit status " + status, stopSeconds, gateway.log());
                }
                if (stopHook != null) {
                    try {
                        Runtime.getRuntime().removeShutdownHook(stopHook);
                    } catch (IllegalStateException ignored) {
                        // JVM already exiting; the hook stops the gateway
                    }
                }
            }
            timer.shutdownNow();
            io.shutdownNow();
            if (dir != null) {
                if (ok && !keepData) {
                    deleteTree(dir);
                } else {
                    System.out.println("gateway directory kept: " + dir);
                }
            }
        }
    }

    private void validate() {
        if (url != null && (apiKey == null || apiKey.isBlank())) {
            throw new ParameterException(spec.commandLine(), "--url needs --api-key (a key of app --app)");
        }
        if (url == null && apiKey != null) {
            throw new ParameterException(spec.commandLine(), "--api-key is only for --url; a started gateway "
                    + "gets a random key");
        }
        if (url != null) {
            try {
                HeraldClient.requireLoopback(url);
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), e.getMessage());
            }
        }
        if (!app.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")) {
            throw new ParameterException(spec.commandLine(), "--app: '" + app + "' (expected: letters, digits, "
                    + "'.', '_', '-')");
        }
        if (!gatewayHeap.matches("[0-9]+[kKmMgG]?")) {
            throw new ParameterException(spec.commandLine(), "--gateway-heap: '" + gatewayHeap
                    + "' (expected: e.g. 512m)");
        }
        positive(users, "--users");
        if (importSize < 1 || importSize > MAX_IMPORT) {
            throw new ParameterException(spec.commandLine(), "--import-size: " + importSize + " (expected: 1.."
                    + MAX_IMPORT + ")");
        }
        if (channel == Channel.sms && users > 100_000_000) {
            throw new ParameterException(spec.commandLine(), "--users: " + users + " (expected: <= 100000000 with "
                    + "--channel sms: phones are +4477 and 8 digits)");
        }
        positive(messages, "--messages");
        positive(batchSize, "--batch-size");
        positive(concurrency, "--concurrency");
        positive(registerConcurrency, "--register-concurrency");
        positive(capacity, "--capacity");
        positive(pollIntervalMillis, "--poll-interval");
        positive(timeoutSeconds, "--timeout");
    }

    private void positive(long v, String name) {
        if (v <= 0) {
            throw new ParameterException(spec.commandLine(), name + ": " + v + " (expected: > 0)");
        }
    }

    /**
     * The started gateway's config: no per-user limit in the way, the requested ring capacity, and
     * an SMPP account of the app without the carrier-style throttle (the default, 1 bind at 50
     * submit_sm/s with a window of 10, would cap an sms run at 50 msg/s).
     */
    private String hocon() {
        return "herald {\n"
                + "  apps { \"" + app + "\" {\n"
                + "    rate-limit { rate = 1000000, period = 1s, burst = 1000000 }\n"
                + "    sms { binds = 2, rate-per-bind = 100000, window = 50 }\n"
                + "  } }\n"
                + "  pipeline { capacity = " + capacity + " }\n"
                + "}\n";
    }

    // ---- registration -----------------------------------------------------------------------

    /** Parses {@code --registration}: {@code import} or {@code put}. */
    static final class RegistrationConverter implements picocli.CommandLine.ITypeConverter<Registration> {
        @Override
        public Registration convert(String value) {
            return switch (value) {
                case "import" -> Registration.IMPORT;
                case "put" -> Registration.PUT;
                default -> throw new picocli.CommandLine.TypeConversionException("'" + value
                        + "' (expected: import or put)");
            };
        }
    }

    /**
     * Bulk import: {@code POST /v1/apps/{app}/users} with {@code --import-size} users per request,
     * {@link #IMPORT_CONCURRENCY} requests in flight; 429/503 are retried after {@code Retry-After}.
     * Returns the number of users not imported.
     */
    private long importUsers(HeraldClient client, long deadline, ScheduledExecutorService timer)
            throws InterruptedException {
        Semaphore slots = new Semaphore(IMPORT_CONCURRENCY);
        LongAdder failures = new LongAdder();
        for (int from = 0; from < users; from += importSize) {
            if (!slots.tryAcquire(remaining(deadline), TimeUnit.NANOSECONDS)) {
                failures.add(users - from);
                firstFailure.compareAndSet(null, "registration timed out");
                break;
            }
            int n = Math.min(importSize, users - from);
            postImport(client, importBody(from, n), from, n, deadline, timer, slots, failures);
        }
        if (!slots.tryAcquire(IMPORT_CONCURRENCY, remaining(deadline), TimeUnit.NANOSECONDS)) {
            failures.add((long) (IMPORT_CONCURRENCY - slots.availablePermits()) * importSize);
            firstFailure.compareAndSet(null, "registration timed out");
        }
        return Math.min(users, failures.sum());
    }

    private void postImport(HeraldClient client, byte[] body, int from, int n, long deadline,
                            ScheduledExecutorService timer, Semaphore slots, LongAdder failures) {
        String what = "POST /v1/apps/" + app + "/users (" + user(from) + ".." + user(from + n - 1) + "): ";
        client.importUsers(app, body).whenComplete((r, e) -> {
            if (e != null) {
                failures.add(n);
                firstFailure.compareAndSet(null, what + rootCause(e));
                slots.release();
                return;
            }
            int imported = r.json() == null ? 0 : r.json().path("imported").asInt();
            if (r.status() == 200 && imported == n) {
                registrationRequests.increment();
                slots.release();
            } else if ((r.status() == 429 || r.status() == 503)
                    && System.nanoTime() + TimeUnit.SECONDS.toNanos(Math.max(1, r.retryAfterSeconds())) < deadline) {
                registrationRetries.increment();
                timer.schedule(() -> postImport(client, body, from, n, deadline, timer, slots, failures),
                        Math.max(1, r.retryAfterSeconds()), TimeUnit.SECONDS);
            } else {
                failures.add(r.status() == 200 ? n - imported : n);
                String firstError = null;
                if (r.json() != null) {
                    for (JsonNode item : r.json().path("users")) {
                        if (item.has("error")) {
                            firstError = "users[" + item.path("index").asInt() + "]: " + item.get("error");
                            break;
                        }
                    }
                }
                firstFailure.compareAndSet(null, what + r.status() + " "
                        + (firstError != null ? firstError : r.snippet()));
                slots.release();
            }
        });
    }

    /** {"users":[{"user", "devices":[{"id":"d1","platform","token"}]} | {"user","phone"}, ...]}. */
    private byte[] importBody(int from, int n) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream(n * 120 + 16);
        try (JsonGenerator g = mapper.getFactory().createGenerator(buf, JsonEncoding.UTF8)) {
            g.writeStartObject();
            g.writeArrayFieldStart("users");
            for (int u = from; u < from + n; u++) {
                String user = user(u);
                g.writeStartObject();
                g.writeStringField("user", user);
                if (channel == Channel.sms) {
                    g.writeStringField("phone", phone(u));
                } else {
                    g.writeArrayFieldStart("devices");
                    g.writeStartObject();
                    g.writeStringField("id", "d1");
                    g.writeStringField("platform", channel.name());
                    g.writeStringField("token", channel == Channel.apns ? token(user) : fcmToken(user));
                    g.writeEndObject();
                    g.writeEndArray();
                }
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return buf.toByteArray();
    }

    /** One PUT per user, {@code --register-concurrency} in flight. Returns the number that failed. */
    private long putEach(HeraldClient client, long deadline) throws InterruptedException {
        Semaphore slots = new Semaphore(registerConcurrency);
        LongAdder failures = new LongAdder();
        for (int u = 0; u < users; u++) {
            if (!slots.tryAcquire(remaining(deadline), TimeUnit.NANOSECONDS)) {
                failures.add(users - u);
                firstFailure.compareAndSet(null, "registration timed out");
                break;
            }
            String user = user(u);
            CompletableFuture<HeraldClient.Response> put = switch (channel) {
                case apns -> client.putDevice(app, user, "d1", "apns", token(user));
                case fcm -> client.putDevice(app, user, "d1", "fcm", fcmToken(user));
                case sms -> client.putPhone(app, user, phone(u));
            };
            put.whenComplete((r, e) -> {
                if (e != null || r.status() != 200) {
                    failures.increment();
                    firstFailure.compareAndSet(null, "PUT " + (channel == Channel.sms ? "phone" : "device")
                            + " of " + user + ": " + (e != null ? e.toString() : r.status() + " " + r.snippet()));
                } else {
                    registrationRequests.increment();
                }
                slots.release();
            });
        }
        if (!slots.tryAcquire(registerConcurrency, remaining(deadline), TimeUnit.NANOSECONDS)) {
            failures.add(registerConcurrency - slots.availablePermits());
            firstFailure.compareAndSet(null, "registration timed out");
        }
        return failures.sum();
    }

    static String user(long index) {
        return "u" + index;
    }

    /** A 64-hex-char APNs token, unique per user and stable across runs (SHA-256 of the user name). */
    static String token(String user) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(sha.digest(("herald-loadtest/" + user).getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** An FCM registration token: {@code lt:<user>:} and 40 random {@code [A-Za-z0-9_-]}, unique per user. */
    static String fcmToken(String user) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        StringBuilder sb = new StringBuilder(user.length() + 44).append("lt:").append(user).append(':');
        for (int i = 0; i < 40; i++) {
            sb.append(TOKEN_ALPHABET.charAt(random.nextInt(TOKEN_ALPHABET.length())));
        }
        return sb.toString();
    }

    /** An E.164 phone number, unique per user index below 10^8: {@code +4477} and 8 digits. */
    static String phone(long index) {
        return String.format(java.util.Locale.ROOT, "+4477%08d", index);
    }

    // ---- sending ------------------------------------------------------------------------------

    /** Posts every batch; returns when all are answered (or the deadline passed). */
    private long send(HeraldClient client, long deadline, ScheduledExecutorService timer) throws InterruptedException {
        Semaphore slots = new Semaphore(concurrency);
        long batchCount = (messages + batchSize - 1) / batchSize;
        try {
            for (long b = 0; b < batchCount; b++) {
                if (!slots.tryAcquire(remaining(deadline), TimeUnit.NANOSECONDS)) {
                    long unsent = messages - b * batchSize;
                    messagesNotAccepted.add(unsent);
                    fail("timeout: not sent");
                    break;
                }
                long from = b * batchSize;
                int n = (int) Math.min(batchSize, messages - from);
                post(client, body(from, n), n, deadline, timer, slots);
            }
            if (!slots.tryAcquire(concurrency, remaining(deadline), TimeUnit.NANOSECONDS)) {
                fail("timeout: unanswered");
            }
        } finally {
            sendingDone = true;
        }
        return batchCount;
    }

    private void post(HeraldClient client, byte[] body, int n, long deadline, ScheduledExecutorService timer,
                      Semaphore slots) {
        long t0 = System.nanoTime();
        firstPostNanos.compareAndSet(0, t0);
        client.postBatch(body).whenComplete((r, e) -> {
            long t1 = System.nanoTime();
            if (e != null) {
                messagesNotAccepted.add(n);
                fail("io:" + rootCause(e).getClass().getSimpleName());
                firstFailure.compareAndSet(null, "POST /v1/batches: " + rootCause(e));
                slots.release();
            } else if (r.status() == 202 && r.json() != null && r.json().hasNonNull("batchId")) {
                latency.recordValue(Math.min(MAX_LATENCY_MICROS, (t1 - t0) / 1000));
                lastAcceptedNanos.accumulateAndGet(t1, Math::max);
                int acc = r.json().path("accepted").asInt();
                int rej = r.json().path("rejected").asInt();
                batches202.increment();
                messagesAccepted.add(acc);
                messagesRejected.add(rej);
                if (acc > 0) {
                    accepted.add(new Accepted(r.json().get("batchId").asText(), acc));
                }
                slots.release();
            } else if (r.status() == 429) {
                batches429.increment();
                long delayMillis = r.retryAfterSeconds() >= 0 ? r.retryAfterSeconds() * 1000L : 1000L;
                if (System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(delayMillis) >= deadline) {
                    messagesNotAccepted.add(n);
                    fail("429: retry past the deadline");
                    slots.release();
                } else {
                    timer.schedule(() -> post(client, body, n, deadline, timer, slots), delayMillis,
                            TimeUnit.MILLISECONDS);
                }
            } else {
                if (r.status() == 422 && r.json() != null) {
                    messagesRejected.add(r.json().path("rejected").asInt());
                } else {
                    messagesNotAccepted.add(n);
                }
                fail(Integer.toString(r.status()));
                firstFailure.compareAndSet(null, "POST /v1/batches: " + r.status() + " " + r.snippet());
                slots.release();
            }
        });
    }

    private void fail(String status) {
        batchesFailed.increment();
        failuresByStatus.computeIfAbsent(status, k -> new LongAdder()).increment();
    }

    /** {"app":..,"messages":[{"user","channel","title","body"}..]} for messages {@code from .. from+n-1}. */
    private byte[] body(long from, int n) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream(n * 80 + 32);
        try (JsonGenerator g = mapper.getFactory().createGenerator(buf, JsonEncoding.UTF8)) {
            g.writeStartObject();
            g.writeStringField("app", app);
            g.writeArrayFieldStart("messages");
            for (long i = from; i < from + n; i++) {
                g.writeStartObject();
                g.writeStringField("user", user(i % users));
                g.writeStringField("channel", channel.name());
                g.writeStringField("title", "Load test");
                g.writeStringField("body", "Message " + i + " of " + messages);
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return buf.toByteArray();
    }

    // ---- completion ---------------------------------------------------------------------------

    /** Follows accepted batches, oldest first, until all are done, sending is over, or the deadline. */
    private void poll(HeraldClient client, long deadline, Outcome o) {
        try {
            while (true) {
                Accepted head = accepted.peek();
                if (head == null) {
                    if (sendingDone && accepted.isEmpty()) {
                        return;
                    }
                    Thread.sleep(pollIntervalMillis);
                    continue;
                }
                if (System.nanoTime() >= deadline) {
                    o.timedOut = true;
                    finalTally(client, o);
                    return;
                }
                JsonNode status = status(client, head, o);
                if (status != null && finished(status)) {
                    o.lastDoneNanos = System.nanoTime();
                    tally(status, o, false);
                    accepted.poll();
                } else {
                    Thread.sleep(pollIntervalMillis);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private JsonNode status(HeraldClient client, Accepted batch, Outcome o) {
        try {
            HeraldClient.Response r = client.getBatch(batch.batchId()).get(60, TimeUnit.SECONDS);
            if (r.status() == 200 && r.json() != null) {
                return r.json();
            }
            o.pollErrors++;
            firstFailure.compareAndSet(null, "GET /v1/batches/" + batch.batchId() + ": " + r.status() + " "
                    + r.snippet());
        } catch (Exception e) {
            o.pollErrors++;
            firstFailure.compareAndSet(null, "GET /v1/batches/" + batch.batchId() + ": " + rootCause(e));
        }
        return null;
    }

    /** After the deadline: one last look at every unfinished batch, to report where its messages are. */
    private void finalTally(HeraldClient client, Outcome o) {
        for (Iterator<Accepted> it = accepted.iterator(); it.hasNext(); ) {
            Accepted b = it.next();
            JsonNode status = status(client, b, o);
            if (status != null) {
                tally(status, o, true);
            } else {
                o.unfinished += b.messages();
            }
        }
    }

    /**
     * A batch is finished when {@code done} (nothing queued or deferred) and, for sms, when no
     * message still waits for its delivery receipt ({@code states.accepted == 0}).
     */
    private boolean finished(JsonNode status) {
        return status.path("done").asBoolean(false)
                && (channel != Channel.sms || status.path("states").path("accepted").asLong() == 0);
    }

    private void tally(JsonNode status, Outcome o, boolean partial) {
        JsonNode states = status.path("states");
        long acceptedState = states.path("accepted").asLong();
        long deliveredState = states.path("delivered").asLong();
        o.delivered += acceptedState + deliveredState;
        o.receipts += deliveredState;
        if (channel == Channel.sms) {
            o.awaitingReceipt += acceptedState;
        }
        o.failed += states.path("failed").asLong();
        o.dropped += states.path("dropped").asLong();
        if (partial) {
            o.unfinished += states.path("queued").asLong() + states.path("deferred").asLong();
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = status.path("reasons").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            o.reasons.merge(e.getKey(), e.getValue().asLong(), Long::sum);
        }
    }

    // ---- report -------------------------------------------------------------------------------

    private LoadReport report(Instant startedAt, String baseUrl, boolean started, double regSeconds,
                              long regFailures, long plannedBatches, Outcome o) {
        long first = firstPostNanos.get();
        double wall = o.lastDoneNanos > 0 ? (o.lastDoneNanos - first) / 1e9 : 0;
        double ingest = lastAcceptedNanos.get() > 0 ? (lastAcceptedNanos.get() - first) / 1e9 : 0;
        long acc = messagesAccepted.sum();
        long unaccounted = acc - o.delivered - o.failed - o.dropped - o.unfinished;
        Histogram h = latency.copy();
        Map<String, Long> failures = new TreeMap<>();
        failuresByStatus.forEach((k, v) -> failures.put(k, v.sum()));

        List<String> problems = new ArrayList<>();
        if (o.timedOut) {
            problems.add("timed out after " + timeoutSeconds + " s");
        }
        if (batchesFailed.sum() > 0) {
            problems.add(batchesFailed.sum() + " batches failed");
        }
        if (messagesRejected.sum() > 0) {
            problems.add(messagesRejected.sum() + " messages rejected");
        }
        if (o.delivered != acc) {
            problems.add((acc - o.delivered) + " accepted messages not delivered");
        }
        if (channel == Channel.sms && o.awaitingReceipt > 0) {
            problems.add(o.awaitingReceipt + " delivery receipts missing");
        }
        if (acc + messagesRejected.sum() != messages) {
            problems.add((messages - acc - messagesRejected.sum()) + " messages not accepted");
        }
        if (unaccounted != 0) {
            problems.add(unaccounted + " messages unaccounted for by the gateway's batch counts");
        }
        boolean ok = problems.isEmpty();
        String verdict = ok ? "every message accepted and delivered" + (channel == Channel.sms
                ? ", every receipt in" : "") : String.join("; ", problems);

        return new LoadReport(ok, verdict, startedAt.toString(), baseUrl, started,
                new LoadReport.Options(app, channel.name(), users, messages, batchSize, concurrency, capacity,
                        timeoutSeconds, pollIntervalMillis, registration == Registration.IMPORT ? "import" : "put",
                        importSize),
                new LoadReport.Registration(registration == Registration.IMPORT ? "import" : "put", users,
                        registrationRequests.sum(), registrationRetries.sum(), regFailures, round(regSeconds),
                        regSeconds > 0 ? Math.round(users / regSeconds) : 0),
                new LoadReport.Batches(plannedBatches, batches202.sum(), batches429.sum(), batchesFailed.sum(),
                        failures, firstFailure.get(), o.pollErrors),
                new LoadReport.Messages(messages, acc, messagesRejected.sum(), messagesNotAccepted.sum(), o.delivered,
                        channel == Channel.sms ? o.receipts : null, channel == Channel.sms ? o.awaitingReceipt : null,
                        o.failed, o.dropped, o.unfinished, unaccounted,
                        java.util.Collections.unmodifiableMap(new TreeMap<>(o.reasons))),
                new LoadReport.Timing(round(wall), round(ingest), wall > 0 ? round(o.delivered / wall) : 0,
                        ingest > 0 ? round(acc / ingest) : 0, o.timedOut),
                new LoadReport.Latency(h.getTotalCount(), ms(h.getValueAtPercentile(50)),
                        ms(h.getValueAtPercentile(90)), ms(h.getValueAtPercentile(99)), ms(h.getMaxValue())));
    }

    private static double ms(long micros) {
        return Math.round(micros / 100.0) / 10.0;
    }

    private static double round(double v) {
        return Math.round(v * 1000.0) / 1000.0;
    }

    // ---- utilities ----------------------------------------------------------------------------

    private static long remaining(long deadline) {
        return Math.max(0, deadline - System.nanoTime());
    }

    private static Throwable rootCause(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t;
    }

    private static String randomKey(int length) {
        String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        SecureRandom random = new SecureRandom();
        StringBuilder sb = new StringBuilder(length);
        for (int i = 0; i < length; i++) {
            sb.append(alphabet.charAt(random.nextInt(alphabet.length())));
        }
        return sb.toString();
    }

    private static java.util.concurrent.ThreadFactory daemon(String name) {
        AtomicLong n = new AtomicLong();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            System.err.println("loadtest: cannot delete " + root + ": " + e.getMessage());
        }
    }
}
