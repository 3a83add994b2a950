package io.herald.gateway.campaign;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Where campaigns live: one hash per campaign ({@link Keys#campaign}: the JSON and a version) in
 * the campaign's own slot, and an index per app ({@link Keys#campaigns}) for listing; the app's
 * marketing plans (JSON per plan, {@link Keys#plans}), which campaigns join by naming one. Every change
 * is a compare-and-set on the version read ({@code campaign-cas.lua}), so concurrent moves of one
 * campaign never overwrite each other: the loser sees {@link Stored#conflict} and re-reads.
 * Stateless apart from Redis; thread-safe.
 */
public final class Campaigns {
    private final Redis redis;
    private final ObjectMapper mapper;
    private final Redis.Script cas = new Redis.Script("/scripts/campaign-cas.lua");

    public Campaigns(Redis redis, ObjectMapper mapper) {
        this.redis = redis;
        this.mapper = mapper;
    }

    /** A campaign and the version it was read at. */
    public record Versioned(Campaign campaign, long version) {
    }

    /** The outcome of a write: the new version, or a conflict (someone wrote first). */
    public record Stored(boolean conflict, long version) {
    }

    /** The campaign, or null. */
    public CompletableFuture<Versioned> get(String app, String id) {
        return redis.async().hmget(Keys.campaign(app, id), "json", "v").toCompletableFuture().thenApply(kv -> {
            String json = kv.get(0).getValueOrElse(null);
            if (json == null) {
                return null;
            }
            try {
                return new Versioned(Campaign.fromJson(mapper.readTree(json)), Long.parseLong(kv.get(1).getValue()));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** The app's campaigns, oldest first. */
    public CompletableFuture<List<Campaign>> list(String app) {
        return redis.async().zrange(Keys.campaigns(app), 0, -1).toCompletableFuture().thenCompose(ids -> {
            List<CompletableFuture<Versioned>> reads = new ArrayList<>();
            ids.forEach(id -> reads.add(get(app, id)));
            return CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
                List<Campaign> out = new ArrayList<>();
                reads.forEach(r -> {
                    if (r.join() != null) {
                        out.add(r.join().campaign());
                    }
                });
                return out;
            });
        });
    }

    /** Stores a new campaign and lists it. */
    public CompletableFuture<Stored> create(String app, Campaign c, long now) {
        return write(app, c.id(), 0, c.toJson().toString()).thenCompose(s -> s.conflict()
                ? CompletableFuture.completedFuture(s)
                : redis.async().zadd(Keys.campaigns(app), (double) now, c.id()).toCompletableFuture().thenApply(n -> s));
    }

    /** Replaces the campaign read at {@code version}. */
    public CompletableFuture<Stored> replace(String app, Campaign c, long version) {
        return write(app, c.id(), version, c.toJson().toString());
    }

    /** Deletes the campaign read at {@code version} and unlists it. */
    public CompletableFuture<Stored> delete(String app, String id, long version) {
        return write(app, id, version, "").thenCompose(s -> s.conflict()
                ? CompletableFuture.completedFuture(s)
                : redis.async().zrem(Keys.campaigns(app), id).toCompletableFuture().thenApply(n -> s));
    }

    // --- plans: hash Keys.plans(app), field = plan id, value = JSON ---

    /** Stores (creates or replaces) a plan's JSON. */
    public CompletableFuture<Void> putPlan(String app, String id, String json) {
        return redis.async().hset(Keys.plans(app), id, json).toCompletableFuture().thenApply(n -> null);
    }

    /** A plan's JSON, or null. */
    public CompletableFuture<String> plan(String app, String id) {
        return redis.async().hget(Keys.plans(app), id).toCompletableFuture();
    }

    /** Every plan of the app: id -> JSON. */
    public CompletableFuture<java.util.Map<String, String>> plans(String app) {
        return redis.async().hgetall(Keys.plans(app)).toCompletableFuture();
    }

    /** Deletes a plan; false when there was none. */
    public CompletableFuture<Boolean> deletePlan(String app, String id) {
        return redis.async().hdel(Keys.plans(app), id).toCompletableFuture().thenApply(n -> n > 0);
    }

    private CompletableFuture<Stored> write(String app, String id, long version, String json) {
        return cas.<Long>run(redis.async(), ScriptOutputType.INTEGER, new String[] {Keys.campaign(app, id)},
                Long.toString(version), json).thenApply(v -> v < 0 || (v == 0 && !json.isEmpty())
                        ? new Stored(true, -v) : new Stored(false, v));
    }
}
