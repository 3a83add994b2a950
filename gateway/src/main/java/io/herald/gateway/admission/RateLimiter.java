package io.herald.gateway.admission;

import io.herald.gateway.config.AppConfig;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.function.ToIntFunction;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * Exact per-user rate limit (GCRA) in Redis, shared by every node: many users are checked in one
 * script call (one call per admit-handler batch; on a cluster one per slot the batch's users fall in). A message over the limit gets the first free
 * slot reserved for it, if that slot comes before its deadline; the caller defers it to that
 * time and does not check it again. Thread-safe; stateless apart from Redis.
 *
 * <p>A call carries a request id and its verdicts are kept under it for a while, so a retried
 * call (its reply was lost) returns the same verdicts and consumes nothing twice.
 *
 * <p>Trade-off: a slot is reserved at admission, so a deferred message that later fails still
 * consumed the user's quota, which errs on the side of sending less.
 */
public final class RateLimiter {
    /** Verdict value: send now. */
    public static final long NOW = 0;
    /** Verdict value: drop, the first free slot is past the message's deadline. */
    public static final long DROP = -1;

    private final Map<String, AppConfig> apps;
    private final ToIntFunction<String> slotOf;
    private final Redis.Script gcra = new Redis.Script("/scripts/gcra.lua");

    /** A limiter for a standalone Redis: every check of a call goes into one script call. */
    public RateLimiter(Map<String, AppConfig> apps) {
        this(apps, key -> 0);
    }

    /**
     * A limiter whose script calls each touch the keys of one group of {@code slotOf} ({@code
     * Redis::slotOf}: the cluster slot, or one group on a standalone server).
     */
    public RateLimiter(Map<String, AppConfig> apps, ToIntFunction<String> slotOf) {
        this.apps = apps;
        this.slotOf = slotOf;
    }

    /** True when {@code app} is configured (a journal may hold messages of an app removed since). */
    public boolean knows(String app) {
        return apps.containsKey(app);
    }

    /** One check: app, user and the message's deadline (epoch ms). */
    public record Check(String app, String user, long deadline) { }

    /** {@link #check(RedisClusterAsyncCommands, List, String, Duration)} for a call that is never retried. */
    public CompletableFuture<long[]> check(RedisClusterAsyncCommands<String, String> cmd, List<Check> checks) {
        return check(cmd, checks, UUID.randomUUID().toString(), Duration.ofSeconds(10));
    }

    /** The checks' indexes per slot group, in first-seen order (one script call each). */
    private Map<Integer, List<Integer>> groups(List<Check> checks) {
        Map<Integer, List<Integer>> groups = new LinkedHashMap<>();
        for (int i = 0; i < checks.size(); i++) {
            Check c = checks.get(i);
            groups.computeIfAbsent(slotOf.applyAsInt(Keys.rateLimit(c.app(), c.user())), k -> new ArrayList<>()).add(i);
        }
        return groups;
    }

    /**
     * Queues the checks on the caller's connection: one script call per slot group (one in all on a
     * standalone Redis). The future completes with one verdict per check: {@link #NOW},
     * {@link #DROP}, or the epoch ms of the reserved slot.
     *
     * <p>Idempotent per {@code requestId} for {@code remember}: a caller that retries a call whose
     * reply it did not get (timeout, dropped connection) passes the same id and the same checks, and
     * gets the verdicts of the calls that ran, without consuming the users' allowance again (each
     * group keeps its verdicts under a request key in its own slot).
     */
    public CompletableFuture<long[]> check(RedisClusterAsyncCommands<String, String> cmd, List<Check> checks,
                                           String requestId, Duration remember) {
        long[] out = new long[checks.size()];
        List<CompletableFuture<?>> calls = new ArrayList<>();
        for (List<Integer> group : groups(checks).values()) {
            String[] keys = new String[group.size() + 1];
            String[] args = new String[group.size() * 3 + 1];
            args[0] = Long.toString(Math.max(1, remember.toMillis()));
            for (int j = 0; j < group.size(); j++) {
                Check c = checks.get(group.get(j));
                AppConfig.RateLimit rl = apps.get(c.app()).rateLimit();
                double interval = rl.emissionIntervalMillis();
                keys[j] = Keys.rateLimit(c.app(), c.user());
                args[j * 3 + 1] = Double.toString(interval);
                args[j * 3 + 2] = Double.toString(interval * rl.burst());
                args[j * 3 + 3] = Long.toString(c.deadline());
            }
            Check first = checks.get(group.get(0));
            keys[group.size()] = Keys.rateLimitRequest(first.app(), first.user(), requestId);
            calls.add(gcra.<List<Long>>run(cmd, ScriptOutputType.MULTI, keys, args).thenAccept(list -> {
                for (int j = 0; j < group.size(); j++) {
                    out[group.get(j)] = list.get(j);
                }
            }));
        }
        return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenApply(v -> out);
    }

    /** Queues the deletion of the request keys of an answered call (nobody retries it now). */
    public void forget(RedisClusterAsyncCommands<String, String> cmd, List<Check> checks, String requestId) {
        for (List<Integer> group : groups(checks).values()) {
            Check first = checks.get(group.get(0));
            cmd.del(Keys.rateLimitRequest(first.app(), first.user(), requestId));
        }
    }
}
