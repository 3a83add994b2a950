package io.herald.loadtest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.Herald;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.HdrHistogram.Histogram;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * {@code loadtest triggers}: the trigger engine under load, in this process (a gateway on its
 * embedded Redis and APNs sandbox, the real clock). {@code --instances} users each post an
 * {@code order_submitted} event (10,000 per request) whose times are spaced so the instances come
 * due at {@code --rate} per second once every event is in; a share {@code --cancel} also post the
 * {@code paid} event that cancels theirs. Measured: events ingested per second, instances started
 * and cancelled, timers fired per second over the firing phase, lateness (fired at minus due)
 * percentiles, Redis memory per pending instance ({@code MEMORY USAGE} of the timer sets and of a
 * sample of the instance hashes) and the gateway's CPU per firing.
 *
 * <p>Not thread-safe; one run at a time. The gateway, Redis and the directory are closed at the end.
 */
@Command(name = "triggers", mixinStandardHelpOptions = true,
        description = "Trigger timers under load: events ingested/s, timers fired/s, fire lateness, Redis bytes per pending instance.")
public final class TriggerLoad implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String APP = "trg";

    @Option(names = "--instances", defaultValue = "200000", description = "Instances started (one user and one order each).")
    int instances;

    @Option(names = "--rate", defaultValue = "10000", description = "Instances coming due per second in the firing phase.")
    int rate;

    @Option(names = "--cancel", defaultValue = "0.1", description = "Share of orders paid in time (their instance is cancelled).")
    double cancel;

    @Option(names = "--no-devices", description = "Users without devices: each send ends at the resolve stage "
            + "(dropped:no_channel), so the run measures the trigger engine and the pipeline without the APNs connector.")
    boolean noDevices;

    @Override
    public Integer call() throws Exception {
        Path dir = Files.createTempDirectory("herald-triggers");
        ExecutorService pool = Executors.newFixedThreadPool(4, Scenarios.daemon("trg-http"));
        try (EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"))) {
            String key = "trg-" + UUID.randomUUID();
            String hocon = "herald { node-id = \"trg\", data-dir = \"" + dir.resolve("data") + "\"\n"
                    + "http.port = 0\nredis.url = \"" + redis.uri() + "\"\nsandbox = true\nsandbox-record-ids = true\n"
                    + "apps.\"" + APP + "\" { rate-limit { rate = 1000000, period = 1s, burst = 1000000 } }\n}";
            HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                    .withFallback(ConfigFactory.defaultReference()).resolve(),
                    List.of(new HeraldConfig.InitialKey(APP, key, Set.of("send", "manage", "approve", "read", "admin"))));
            Herald gateway = Herald.start(config, Clock.systemUTC());
            RedisClient client = RedisClient.create(redis.uri());
            try (StatefulRedisConnection<String, String> conn = client.connect()) {
                Simulate.HttpJson http = new Simulate.HttpJson(gateway.baseUrl(), key, pool);
                return run(gateway, http, conn);
            } finally {
                client.shutdown();
                gateway.halt();
            }
        } finally {
            pool.shutdownNow();
            Scenarios.deleteTree(dir);
        }
    }

    private int run(Herald gateway, Simulate.HttpJson http, StatefulRedisConnection<String, String> redis)
            throws Exception {
        String base = "/v1/apps/" + APP;
        System.out.printf("users: %,d with an APNs device each...%n", instances);
        for (int from = 0; from < instances; from += 10_000) {
            ArrayNode us = JSON.createArrayNode();
            for (int i = from; i < Math.min(instances, from + 10_000); i++) {
                ObjectNode u = us.addObject().put("user", "u" + i);
                if (noDevices) {
                    u.putArray("tags").add("buyer");
                } else {
                    u.putArray("devices").addObject().put("id", "phone").put("platform", "apns").put("token", token(i));
                }
            }
            retrying(http, base + "/users", JSON.createObjectNode().set("users", us).toString());
        }
        // Ingest takes at most a few seconds per 100,000 here; the first instance comes due after all are in.
        long delayMs = Math.max(60_000, instances / 2);
        http.ok("POST", base + "/triggers", "{\"id\":\"pay\",\"name\":\"payment reminder\",\"on\":{\"event\":"
                + "\"order_submitted\"},\"unless\":{\"event\":\"paid\",\"within\":\"" + (delayMs / 1000) + "s\","
                + "\"match\":[\"order_id\"]},\"delay\":\"" + (delayMs / 1000) + "s\",\"class\":\"transactional\","
                + "\"content\":{\"title\":\"Payment\",\"body\":\"Order {{event.order_id}} waits for payment\"}}");
        long t0 = System.currentTimeMillis();
        long firstDue = t0 + (delayMs / 1000) * 1000;
        long ingestStart = System.nanoTime();
        int cancelEvery = cancel <= 0 ? Integer.MAX_VALUE : (int) Math.round(1 / cancel);
        int started = 0;
        int cancelled = 0;
        int posted = 0;
        for (int from = 0; from < instances; from += 10_000) {
            ArrayNode evs = JSON.createArrayNode();
            ArrayNode paid = JSON.createArrayNode();
            for (int i = from; i < Math.min(instances, from + 10_000); i++) {
                long at = t0 + (long) i * 1000 / rate;
                ObjectNode e = evs.addObject().put("user", "u" + i).put("name", "order_submitted")
                        .put("at", Instant.ofEpochMilli(at).toString()).put("id", "o" + i);
                e.putObject("properties").put("order_id", "o" + i);
                if (i % cancelEvery == 0) {
                    ObjectNode p = paid.addObject().put("user", "u" + i).put("name", "paid")
                            .put("at", Instant.ofEpochMilli(at + 1000).toString()).put("id", "p" + i);
                    p.putObject("properties").put("order_id", "o" + i);
                }
            }
            JsonNode r = retrying(http, base + "/events", JSON.createObjectNode().set("events", evs).toString());
            started += r.path("triggers").path("started").asInt();
            posted += evs.size();
            if (!paid.isEmpty()) {
                JsonNode c = retrying(http, base + "/events", JSON.createObjectNode().set("events", paid).toString());
                cancelled += c.path("triggers").path("cancelled").asInt();
                posted += paid.size();
            }
        }
        double ingestSeconds = (System.nanoTime() - ingestStart) / 1e9;
        long now = System.currentTimeMillis();
        if (now >= firstDue) {
            System.out.printf("warning: ingest ended %d ms after the first instance came due; lateness includes it%n",
                    now - firstDue);
        }
        // Memory per pending instance, before any fires.
        long bytes = 0;
        for (int s = 0; s < gateway.triggerTimers().shards(); s++) {
            Long b = redis.sync().memoryUsage(Keys.triggerTimers(s));
            bytes += b == null ? 0 : b;
        }
        int sample = Math.min(2_000, instances);
        long sampled = 0;
        for (int i = 0; i < sample; i++) {
            int u = (int) ((long) i * instances / sample);
            if (u % cancelEvery == 0) {
                u = u + 1 < instances ? u + 1 : u;
            }
            Long b = redis.sync().memoryUsage(Keys.triggerInstances(APP, "u" + u,
                    gateway.triggers().shardOf(APP, "u" + u)));
            sampled += b == null ? 0 : b;
        }
        int pending = started - cancelled;
        double perInstance = pending == 0 ? 0 : (bytes + (double) sampled / sample * pending) / pending;
        System.out.printf("ingested %,d events in %.2f s: %,.0f events/s; %,d instances started, %,d cancelled, "
                + "%,d pending; Redis %.0f bytes per pending instance%n", posted, ingestSeconds, posted / ingestSeconds,
                started, cancelled, pending, perInstance);

        // Firing phase: collect fire lateness (due -> fired: the send in the journal or, past the
        // pipeline's room, queued durably for it) and delivery lateness (due -> accepted by the peer).
        gateway.triggerTimers().lateness(); // reset the interval
        gateway.sandbox().takeArrivals();
        Histogram late = new Histogram(3);
        Histogram delivered = new Histogram(3);
        java.util.regex.Pattern order = java.util.regex.Pattern.compile("Order o(\\d+) waits");
        long cpuBefore = processCpuNanos();
        long firstFire = 0;
        long lastFire = 0;
        long lastDelivery = 0;
        long deadline = System.currentTimeMillis() + delayMs + (long) instances * 1000 / rate + 300_000;
        while ((late.getTotalCount() < pending || (!noDevices && delivered.getTotalCount() < pending))
                && System.currentTimeMillis() < deadline) {
            Thread.sleep(100);
            long t = System.currentTimeMillis();
            Histogram h = gateway.triggerTimers().lateness();
            if (h.getTotalCount() > 0) {
                firstFire = firstFire == 0 ? t : firstFire;
                lastFire = t;
                late.add(h);
            }
            for (UUID id : gateway.sandbox().takeArrivals()) {
                java.util.regex.Matcher m = order.matcher(String.valueOf(gateway.sandbox().payload(id)));
                if (m.find()) {
                    long due = firstDue + Long.parseLong(m.group(1)) * 1000 / rate;
                    delivered.recordValue(Math.max(0, t - due));
                    lastDelivery = t;
                }
            }
        }
        long cpu = processCpuNanos() - cpuBefore;
        double fireSeconds = Math.max(0.001, (lastFire - Math.max(firstDue, firstFire - 100)) / 1000.0);
        double deliverSeconds = Math.max(0.001, (lastDelivery - firstDue) / 1000.0);
        System.out.printf("fired %,d of %,d in %.2f s: %,.0f firings/s (due at %,d/s); fire lateness ms p50 %d, p90 %d, "
                        + "p99 %d, max %d%n", late.getTotalCount(), pending, fireSeconds, late.getTotalCount() / fireSeconds,
                rate, late.getValueAtPercentile(50), late.getValueAtPercentile(90), late.getValueAtPercentile(99),
                late.getMaxValue());
        System.out.printf("delivered %,d in %.2f s from the first due: %,.0f/s; due -> accepted by the peer ms p50 %d, "
                        + "p99 %d, max %d; gateway CPU %.1f us per instance (firing and delivery)%n",
                delivered.getTotalCount(), deliverSeconds, delivered.getTotalCount() / deliverSeconds,
                delivered.getValueAtPercentile(50), delivered.getValueAtPercentile(99), delivered.getMaxValue(),
                late.getTotalCount() == 0 ? 0.0 : cpu / 1000.0 / late.getTotalCount());
        JsonNode stats = http.ok("GET", base + "/triggers/pay/stats", null);
        System.out.println("stats: " + stats.get("counters"));
        System.out.println(String.format(Locale.ROOT, "{\"instances\":%d,\"rate\":%d,\"eventsPerSecond\":%.0f,"
                + "\"started\":%d,\"cancelled\":%d,\"fired\":%d,\"firingsPerSecond\":%.0f,\"latenessMs\":{\"p50\":%d,"
                + "\"p90\":%d,\"p99\":%d,\"max\":%d},\"delivered\":%d,\"deliveredPerSecond\":%.0f,"
                + "\"dueToAcceptedMs\":{\"p50\":%d,\"p99\":%d,\"max\":%d},\"bytesPerPendingInstance\":%.0f,"
                + "\"cpuMicrosPerInstance\":%.1f}",
                instances, rate, posted / ingestSeconds, started, cancelled, late.getTotalCount(),
                late.getTotalCount() / fireSeconds, late.getValueAtPercentile(50), late.getValueAtPercentile(90),
                late.getValueAtPercentile(99), late.getMaxValue(), delivered.getTotalCount(),
                delivered.getTotalCount() / deliverSeconds, delivered.getValueAtPercentile(50),
                delivered.getValueAtPercentile(99), delivered.getMaxValue(), perInstance,
                late.getTotalCount() == 0 ? 0.0 : cpu / 1000.0 / late.getTotalCount()));
        return late.getTotalCount() == pending && (noDevices || delivered.getTotalCount() == pending) ? 0 : 1;
    }

    /**
     * A POST retried on 503 "storage unavailable; retry" (a busy machine): imports are upserts and
     * events carry ids, so a repeat changes nothing already applied.
     */
    private static JsonNode retrying(Simulate.HttpJson http, String path, String body) throws Exception {
        for (int attempt = 1; ; attempt++) {
            try {
                return http.ok("POST", path, body);
            } catch (IllegalStateException e) {
                if (attempt == 5 || !String.valueOf(e.getMessage()).contains(": 503 ")) {
                    throw e;
                }
                Thread.sleep(1000L * attempt);
            }
        }
    }

    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static String token(int i) {
        StringBuilder b = new StringBuilder(64);
        String h = Integer.toHexString(i);
        while (b.length() + h.length() < 64) {
            b.append('a');
        }
        return b.append(h).toString();
    }
}
