package io.herald.gateway.content;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Every app's templates: stored in Redis ({@link Keys#templates}), compiled and cached here so the
 * pipeline renders without a round trip. Changes go through {@code versioned-hash.lua}, which moves
 * the app's version on; every node polls the versions every {@code refresh} (one {@code HGET} per
 * app) and re-reads an app whose version moved, so a change reaches every node within seconds.
 *
 * <p>Thread-safe: a concurrent map of immutable per-app snapshots; one daemon thread polls. Owned
 * by {@code Herald}, which closes it. A stored template that no longer parses (written by a newer
 * version) is left out and logged.
 */
public final class Templates implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Templates.class);

    /** One app's templates at one version. */
    private record Snapshot(long version, Map<String, Template> byId) {
    }

    private final Redis redis;
    private final ObjectMapper mapper;
    private final Set<String> apps;
    private final Map<String, Snapshot> cache = new ConcurrentHashMap<>();
    private final Redis.Script put = new Redis.Script("/scripts/versioned-hash.lua");
    private final ScheduledExecutorService poller = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-templates");
        t.setDaemon(true);
        return t;
    });
    private int failures;

    public Templates(Redis redis, ObjectMapper mapper, Set<String> apps) {
        this.redis = redis;
        this.mapper = mapper;
        this.apps = Set.copyOf(apps);
    }

    /** Loads every app's templates now, then polls every {@code refresh}. */
    public void start(Duration refresh) {
        refresh();
        poller.scheduleWithFixedDelay(this::refresh, refresh.toMillis(), refresh.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The app's template {@code id}, or null. */
    public Template get(String app, String id) {
        Snapshot s = cache.get(app);
        return s == null ? null : s.byId().get(id);
    }

    /** The app's templates, by id. */
    public Collection<Template> list(String app) {
        Snapshot s = cache.get(app);
        return s == null ? List.of() : s.byId().values();
    }

    /** Re-reads the apps whose version moved; public for tests that must see a change at once. */
    public synchronized void refresh() {
        try {
            for (String app : apps) {
                String v = redis.async().hget(Keys.templates(app), "@v").get(10, TimeUnit.SECONDS);
                long version = v == null ? 0 : Long.parseLong(v);
                Snapshot s = cache.get(app);
                if (s == null || s.version() != version) {
                    Map<String, String> all = redis.async().hgetall(Keys.templates(app)).get(30, TimeUnit.SECONDS);
                    load(app, all);
                }
            }
            failures = 0;
        } catch (Exception e) {
            failures++;
            if (failures == 1 || failures % 100 == 0) {
                log.warn("templates not refreshed ({}; {} rounds in a row); next round retries", e.toString(), failures);
            }
        }
    }

    private void load(String app, Map<String, String> all) {
        long version = Long.parseLong(all.getOrDefault("@v", "0"));
        Map<String, Template> byId = new TreeMap<>();
        all.forEach((field, json) -> {
            if (!field.startsWith("t:")) {
                return;
            }
            try {
                var doc = mapper.readTree(json);
                long at = doc.hasNonNull("updatedAt") ? java.time.Instant.parse(doc.get("updatedAt").asText()).toEpochMilli() : 0;
                byId.put(field.substring(2), Template.parse(doc, field.substring(2), at));
            } catch (Exception e) {
                log.error("stored template {} of app {} does not parse ({}); left out", field.substring(2), app,
                        e.getMessage());
            }
        });
        cache.merge(app, new Snapshot(version, Map.copyOf(byId)), (a, b) -> a.version() > b.version() ? a : b);
    }

    /** Outcome of a change: done (the app's new version), or refused (the id exists / is missing). */
    public record Change(boolean done, long version) {
    }

    /** Creates ({@code create}) or replaces a template; this node sees it at once, the others at their next poll. */
    public CompletableFuture<Change> put(String app, Template t, boolean create) {
        ObjectNode json = t.toJson(mapper);
        return run(app, create ? "create" : "replace", t.id(), json.toString());
    }

    /** Deletes a template. */
    public CompletableFuture<Change> delete(String app, String id) {
        return run(app, "delete", id, "");
    }

    private CompletableFuture<Change> run(String app, String mode, String id, String json) {
        return put.<List<Long>>run(redis.async(), ScriptOutputType.MULTI, new String[] {Keys.templates(app)}, mode,
                "t:" + id, json).thenCompose(r -> {
                    Change c = new Change(r.get(0) == 1, r.get(1));
                    if (!c.done()) {
                        return CompletableFuture.completedFuture(c);
                    }
                    // Re-read at once so this node's next render and GET see the change.
                    return redis.async().hgetall(Keys.templates(app)).toCompletableFuture().thenApply(all -> {
                        load(app, all);
                        return c;
                    });
                });
    }

    @Override
    public void close() {
        poller.shutdownNow();
    }
}
