package io.herald.gateway.admission;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.KeyValue;
import io.lettuce.core.ScriptOutputType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Every app's delivery policy: stored versioned in Redis ({@link Keys#policy}: {@code v} and
 * {@code json}), cached here for the admission stage, which reads {@link #of} per message without
 * a round trip. A PUT goes through {@code policy-put.lua} (compare-and-set on the version the
 * caller read: the If-Match flow), and every node polls the versions every {@code refresh}
 * (one {@code HGET} per app), so a change reaches a running pipeline within seconds on every node.
 *
 * <p>Thread-safe: the cache is a concurrent map of immutable policies; one daemon thread polls.
 * Owned by {@code Herald}, which closes it. An app without a stored policy has
 * {@link AppPolicy#NONE} (version 0).
 */
public final class Policies implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Policies.class);

    private final Redis redis;
    private final ObjectMapper mapper;
    private final Set<String> apps;
    private final Map<String, AppPolicy> cache = new ConcurrentHashMap<>();
    private final Redis.Script put = new Redis.Script("/scripts/policy-put.lua");
    private final ScheduledExecutorService poller = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-policy");
        t.setDaemon(true);
        return t;
    });
    private int failures;
    /** Per app: its most engaged UTC hour (-1: no engagement yet), read every {@link #HOURS_EVERY_MS}. */
    private final Map<String, Integer> appHours = new ConcurrentHashMap<>();
    private long hoursReadAt = Long.MIN_VALUE;
    private static final long HOURS_EVERY_MS = 60_000;

    public Policies(Redis redis, ObjectMapper mapper, Set<String> apps) {
        this.redis = redis;
        this.mapper = mapper;
        this.apps = Set.copyOf(apps);
    }

    /** Loads every app's policy now (start-up: the pipeline starts with them), then polls every {@code refresh}. */
    public void start(Duration refresh) {
        refresh();
        poller.scheduleWithFixedDelay(() -> read(false), refresh.toMillis(), refresh.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The app's current policy ({@link AppPolicy#NONE} when none is stored). */
    public AppPolicy of(String app) {
        return cache.getOrDefault(app, AppPolicy.NONE);
    }

    /**
     * The app's most engaged UTC hour (from every user's opens, clicks and app opens, decayed as a
     * user's are: {@link Keys#appEngagement}), or -1 when it has none; read once a minute.
     */
    public int appBestHour(String app) {
        return appHours.getOrDefault(app, -1);
    }

    /**
     * Re-reads the versions, the policies that changed and the apps' engagement hours; public for
     * tests that must see a change at once. A stored policy that no longer parses (written by a
     * newer version) keeps the last good one and is logged.
     */
    public void refresh() {
        read(true);
    }

    private synchronized void read(boolean hoursToo) {
        try {
            for (String app : apps) {
                List<KeyValue<String, String>> vj = redis.async().hmget(Keys.policy(app), "v").get(10, TimeUnit.SECONDS);
                String v = vj.get(0).getValueOrElse(null);
                long version = v == null ? 0 : Long.parseLong(v);
                if (version != of(app).version()) {
                    String json = redis.async().hget(Keys.policy(app), "json").get(10, TimeUnit.SECONDS);
                    load(app, version, json);
                }
            }
            if (hoursToo || System.currentTimeMillis() - hoursReadAt >= HOURS_EVERY_MS) {
                String[] fields = new String[24];
                for (int h = 0; h < 24; h++) {
                    fields[h] = "h" + h;
                }
                for (String app : apps) {
                    List<KeyValue<String, String>> hs = redis.async().hmget(Keys.appEngagement(app), fields)
                            .get(10, TimeUnit.SECONDS);
                    int best = -1;
                    double max = 0;
                    for (int h = 0; h < 24; h++) {
                        double w = Double.parseDouble(hs.get(h).getValueOrElse("0"));
                        if (w > max) {
                            max = w;
                            best = h;
                        }
                    }
                    appHours.put(app, best);
                }
                hoursReadAt = System.currentTimeMillis();
            }
            failures = 0;
        } catch (Exception e) {
            failures++;
            if (failures == 1 || failures % 100 == 0) {
                log.warn("delivery policies not refreshed ({}; {} rounds in a row); next round retries", e.toString(),
                        failures);
            }
        }
    }

    private void load(String app, long version, String json) {
        if (json == null) {
            cache.put(app, AppPolicy.NONE);
            return;
        }
        try {
            cache.put(app, AppPolicy.parse(mapper.readTree(json), version));
            log.info("delivery policy of app {}: version {}", app, version);
        } catch (Exception e) {
            log.error("stored delivery policy version {} of app {} does not parse ({}); keeping version {}", version, app,
                    e.getMessage(), of(app).version());
        }
    }

    /** Outcome of a PUT: stored (with its version), or refused because the caller's version is stale. */
    public record Stored(boolean stored, AppPolicy policy, long currentVersion) {
    }

    /**
     * Stores {@code policy} (already validated) as the next version, if {@code ifMatch} (null: no
     * condition) is the current version; this node uses it at once, the others at their next poll.
     */
    public CompletableFuture<Stored> put(String app, AppPolicy policy, Long ifMatch) {
        ObjectNode json = policy.toJson(mapper);
        json.remove("version");
        return put.<List<Long>>run(redis.async(), ScriptOutputType.MULTI, new String[] {Keys.policy(app)},
                ifMatch == null ? "" : Long.toString(ifMatch), json.toString()).thenApply(r -> {
                    long version = r.get(1);
                    if (r.get(0) == 0) {
                        return new Stored(false, null, version);
                    }
                    AppPolicy stored = new AppPolicy(version, policy.zone(), policy.caps(), policy.quietHours(),
                            policy.defaults(), policy.bestHour());
                    cache.merge(app, stored, (a, b) -> a.version() >= b.version() ? a : b);
                    return new Stored(true, stored, version);
                });
    }

    @Override
    public void close() {
        poller.shutdownNow();
    }
}
