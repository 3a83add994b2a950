package io.herald.gateway.admission;

import io.herald.gateway.config.AppConfig;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.async.RedisAsyncCommands;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * Exact per-user rate limit (GCRA) in Redis, shared by every node: many users are checked in one
 * script call (one call per admit-handler batch). A message over the limit gets the first free
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
    private final Redis.Script gcra = new Redis.Script("/scripts/gcra.lua");

    public RateLimiter(Map<String, AppConfig> apps) {
        this.apps = apps;
    }

    /** True when {@code app} is configured (a journal may hold messages of an app removed since). */
    public boolean knows(String app) {
        return apps.containsKey(app);
    }

    /** One check: app, user and the message's deadline (epoch ms). */
    public record Check(String app, String user, long deadline) { }

    /** {@link #check(RedisAsyncCommands, List, String, Duration)} for a call that is never retried. */
    public CompletableFuture<long[]> check(RedisAsyncCommands<String, String> cmd, List<Check> checks) {
        return check(cmd, checks, UUID.randomUUID().toString(), Duration.ofSeconds(10));
    }

    /**
     * Queues one script call for all checks on the caller's connection. The future completes with
     * one verdict per check: {@link #NOW}, {@link #DROP}, or the epoch ms of the reserved slot.
     *
     * <p>Idempotent per {@code requestId} for {@code remember}: a caller that retries a call whose
     * reply it did not get (timeout, dropped connection) passes the same id and gets the verdicts
     * of the call that ran, without consuming the users' allowance again.
     */
    public CompletableFuture<long[]> check(RedisAsyncCommands<String, String> cmd, List<Check> checks,
                                           String requestId, Duration remember) {
        String[] keys = new String[checks.size() + 1];
        String[] args = new String[checks.size() * 3 + 1];
        args[0] = Long.toString(Math.max(1, remember.toMillis()));
        for (int i = 0; i < checks.size(); i++) {
            Check c = checks.get(i);
            AppConfig.RateLimit rl = apps.get(c.app()).rateLimit();
            double interval = rl.emissionIntervalMillis();
            keys[i] = Keys.rateLimit(c.app(), c.user());
            args[i * 3 + 1] = Double.toString(interval);
            args[i * 3 + 2] = Double.toString(interval * rl.burst());
            args[i * 3 + 3] = Long.toString(c.deadline());
        }
        keys[checks.size()] = Keys.rateLimitRequest(requestId);
        return gcra.<List<Long>>run(cmd, ScriptOutputType.MULTI, keys, args).thenApply(list -> {
            long[] out = new long[list.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = list.get(i);
            }
            return out;
        });
    }
}
