package io.herald.gateway.journal;

import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * {@code Idempotency-Key} on {@code POST /v1/batches}: a client that retries a batch with the same
 * key and the same body gets the first answer again (same batch id) and the batch is journaled,
 * hence sent, once.
 *
 * <p>The protocol, per app (the key is scoped to the API key's app):
 * <ol>
 *   <li>{@link #claim}: one script either makes this request the key's holder (state
 *       {@code pending}, with the body's SHA-256 and the batch id it will create, expiring after
 *       {@code idempotency.in-progress-ttl}), or reports the holder: {@code pending} (answer 409),
 *       {@code done} with the same body hash (answer the stored batch again) or with another body
 *       hash (answer 422).</li>
 *   <li>{@link Journal#append} with the claim: the XADD and {@code done} (kept {@code idempotency.ttl})
 *       are one script (the key and the journal shard the batch goes to share a slot tag), so there is no moment where the batch is journaled but the key does not
 *       name it.</li>
 *   <li>{@link #release} when the request ends without journaling (429, 503): the claim goes, so a
 *       retry can run. It never deletes a key marked done.</li>
 * </ol>
 * A node that dies between 1 and 2 journaled nothing; its claim lapses and the retry runs afresh.
 * A node that dies after 2 (or whose reply was lost) left the entry in its journal, replayed at
 * its next start, and the key names that batch: the retry gets the same batch id and nothing is
 * journaled twice.
 *
 * <p>Bodies are compared byte for byte (SHA-256 of the raw body): the same JSON with other spacing
 * is another body. Thread-safe; stateless apart from Redis.
 */
public final class IdempotencyKeys {
    /** The header. */
    public static final String HEADER = "Idempotency-Key";
    /** Longest key accepted. */
    public static final int MAX_LENGTH = 255;

    private final Redis redis;
    private final long keepMillis;
    private final long claimMillis;
    private final Redis.Script claim = new Redis.Script("/scripts/idempotency-claim.lua");
    private final Redis.Script release = new Redis.Script("/scripts/idempotency-release.lua");

    public IdempotencyKeys(Redis redis, Duration keep, Duration inProgress) {
        this.redis = redis;
        this.keepMillis = keep.toMillis();
        this.claimMillis = inProgress.toMillis();
    }

    /** A key this request holds, and what completing it writes. Immutable. */
    public record Claim(String app, String keyHash, String bodyHash, String batchId, long keepMillis, int shard) {
        String redisKey() {
            return Keys.idempotency(app, keyHash, shard);
        }
    }

    /** What {@link #claim} found. */
    public enum State {
        /** This request holds the key: go on, then journal with the claim or release it. */
        CLAIMED,
        /** Another request with this key and body is still being processed. */
        IN_PROGRESS,
        /** A request with this key and body was accepted: answer with {@code batchId}. */
        DONE,
        /** The key was used with another body. */
        REUSED
    }

    /** The verdict of a claim: the state, the claim (when CLAIMED) or the earlier batch id (when DONE). */
    public record Verdict(State state, Claim claim, String batchId) { }

    /**
     * Checks a header's values: null when there is at most one and it is 1..255 printable ASCII
     * characters, else the problem in the API's message shape.
     */
    public static String invalid(List<String> values) {
        if (values.size() > 1) {
            return HEADER + ": given " + values.size() + " times (expected: once)";
        }
        String v = values.get(0);
        if (v.isEmpty() || v.length() > MAX_LENGTH) {
            return HEADER + ": " + v.length() + " characters (expected: 1.." + MAX_LENGTH + ")";
        }
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                return HEADER + ": character " + i + " is not printable ASCII (expected: 0x20..0x7E)";
            }
        }
        return null;
    }

    /** Claims {@code key} of {@code app} for a request with this body that would create {@code batchId}. */
    public CompletableFuture<Verdict> claim(String app, String key, byte[] body, String batchId) {
        return claim(app, key, body, batchId, Duration.ofMillis(claimMillis));
    }

    /**
     * As {@link #claim(String, String, byte[], String)} with how long the claim lives unfinished
     * (the campaign launcher's chunks: a short claim, so that a node that died holding one delays
     * the next holder by seconds only).
     */
    public CompletableFuture<Verdict> claim(String app, String key, byte[] body, String batchId, Duration inProgress) {
        return claim(app, key, body, batchId, inProgress, redis.async());
    }

    /** As above, on a connection of the caller's (the campaign launcher's own). */
    public CompletableFuture<Verdict> claim(String app, String key, byte[] body, String batchId, Duration inProgress,
                                            io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands<String, String> cmd) {
        long claimMillis = inProgress.toMillis();
        String keyHash = sha256(key.getBytes(StandardCharsets.US_ASCII));
        String bodyHash = sha256(body);
        int shard = Keys.shard(app + ":" + keyHash, redis.shards());
        return claim.<List<Object>>run(cmd, ScriptOutputType.MULTI,
                new String[] {Keys.idempotency(app, keyHash, shard)}, bodyHash, batchId, Long.toString(claimMillis))
                .thenApply(reply -> {
                    if ("claimed".equals(reply.get(0))) {
                        return new Verdict(State.CLAIMED, new Claim(app, keyHash, bodyHash, batchId, keepMillis, shard), null);
                    }
                    if (!bodyHash.equals(reply.get(1))) {
                        return new Verdict(State.REUSED, null, null);
                    }
                    return "done".equals(reply.get(0)) ? new Verdict(State.DONE, null, (String) reply.get(2))
                            : new Verdict(State.IN_PROGRESS, null, null);
                });
    }

    /** Gives the claim up (the request journaled nothing); a failure only means it lapses later. */
    public CompletableFuture<Long> release(Claim c) {
        return release.run(redis.async(), ScriptOutputType.INTEGER, new String[] {c.redisKey()}, c.batchId());
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
