package io.herald.gateway.config;

import com.typesafe.config.Config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The validated, immutable configuration of one gateway node: the node's own settings (listen
 * address and limits, Redis, ring capacity, node id, data directory, sandbox, client tuning shared
 * by every app, receipts, retention) and the apps it starts with, each an {@link AppConfig} (the
 * per-app policy: keys, rate limit, channels, credentials, webhook). Node settings need a restart
 * to change; an app's policy is a value of its own so that it can be replaced while the node runs.
 *
 * <p>Sources, each overriding the one before: {@code reference.conf} in the jar (every key with
 * its default), the HOCON file given with {@code --config}, the environment variables of {@link
 * #ENVIRONMENT}, and command-line options. {@link #load} validates everything it can without
 * touching the network (unknown keys, types, ranges, cross-checks such as {@code
 * pipeline.capacity >= http.max-items-per-batch}, readable credential files) and throws a
 * {@link StartupException} with a one-line message naming the setting otherwise. {@link
 * #toString()} prints no secret. Thread-safe (immutable).
 */
public record HeraldConfig(
        String nodeId,
        Path dataDir,
        Http http,
        Redis redis,
        Pipeline pipeline,
        Scheduler scheduler,
        Retention retention,
        String dataKey,
        Duration drainTimeout,
        SandboxMode sandbox,
        boolean sandboxRecordIds,
        ApnsTuning apns,
        FcmTuning fcm,
        SmsTuning sms,
        Receipts receipts,
        Tracking tracking,
        Map<String, AppConfig> apps,
        List<InitialKey> initialKeys,
        Idempotency idempotency,
        DeadLetters deadLetters) {

    /**
     * Environment variables and the setting (below {@code herald}) each one overrides. A variable
     * that is unset or blank leaves the setting to the file. {@code HERALD_API_KEY} ({@code APP:KEY})
     * adds an {@link InitialKey} instead.
     */
    public static final Map<String, String> ENVIRONMENT = Map.of(
            "HERALD_NODE_ID", "node-id",
            "HERALD_DATA_DIR", "data-dir",
            "HERALD_HOST", "http.host",
            "HERALD_PORT", "http.port",
            "REDIS_URL", "redis.url",
            "REDIS_CLUSTER", "redis.cluster",
            "HERALD_DATA_KEY", "data-key",
            "HERALD_RECEIPT_KEY", "receipts.key",
            "HERALD_SANDBOX", "sandbox");

    /** Whether APNs traffic goes to the local sandbox peer. */
    public enum SandboxMode { AUTO, ALWAYS, NEVER }

    /** HTTP server limits. */
    public record Http(String host, int port, int maxBodyBytes, int maxItemsPerBatch, int maxHeaderBytes,
                       int maxInitialLineBytes, Duration requestTimeout, Duration idleTimeout) { }

    /**
     * Redis: an external URL, or empty for the embedded server; {@code cluster}: the URL names a
     * node of a Redis Cluster (any one; the client discovers the rest). {@code shards}: how many
     * slot tags the journal, deferred set, idempotency keys and dead letters are spread over (the
     * same on every node of a deployment, fixed for its lifetime). {@code nodeLease}: how long a
     * node that stops renewing its lease keeps its journal before another node takes it over.
     */
    public record Redis(String url, Duration commandTimeout, boolean cluster, int shards, Duration nodeLease) {
        public boolean embedded() {
            return url == null || url.isBlank();
        }

        @Override
        public String toString() {
            return "Redis[url=" + (embedded() ? "<embedded>" : AppConfig.redactUrl(url)) + ", commandTimeout="
                    + commandTimeout + ", cluster=" + cluster + ", shards=" + shards + ", nodeLease=" + nodeLease + "]";
        }
    }

    /**
     * Ring capacity and handler batching. A ring stage whose Redis round trip has not completed
     * for {@code stallAfter} (retries included) counts as stalled: the node reports unready.
     */
    public record Pipeline(int capacity, int handlerBatch, Duration redisWait, Duration stallAfter) { }

    /**
     * The schedulers: deferred messages ({@code interval}, {@code batch} per tick) and campaign
     * launches ({@code campaignTick} between looks for due work, {@code campaignLease} how long a
     * node holds a running campaign without renewing it before another takes over,
     * {@code campaignChunk} users per journaled fan-out chunk, {@code campaignBacklog} how many
     * messages of a campaign may wait in its backlog while the pipeline has no room; 0: the fan-out
     * waits for the pipeline).
     */
    public record Scheduler(Duration interval, int batch, Duration campaignTick, Duration campaignLease,
                            int campaignChunk, int campaignBacklog) { }

    /** APNs client tuning shared by every app. */
    public record ApnsTuning(int maxInFlight, int connections, int maxAttempts, Duration backoffBase,
                             Duration backoffMax) { }

    /** FCM client tuning shared by every app. */
    public record FcmTuning(int connections, int maxConcurrentStreams, int maxAttempts, Duration backoffBase,
                            Duration backoffMax, Duration quotaBackoff, Duration tokenRefreshMargin) { }

    /** SMPP client tuning shared by every app. */
    public record SmsTuning(int maxAttempts, Duration backoffBase, Duration backoffMax, Duration receiptIdTtl) { }

    /** Receipt tokens and the receipt endpoint's limits. */
    public record Receipts(String key, String keyId, List<String> previousKeys, Duration tokenTtl, int ratePerSource,
                           int burstPerSource, int maxPerRequest) {
        @Override
        public String toString() {
            return "Receipts[keyId=" + keyId + ", key=<redacted>, tokenTtl=" + tokenTtl + "]";
        }
    }

    /**
     * How long Redis keeps what Herald writes: per-message detail (state, history, batch counts)
     * {@code messages}; funnel totals per app, campaign, variant and channel {@code aggregates}
     * after their last change (time buckets have their own, under {@code tracking}).
     */
    public record Retention(Duration messages, Duration aggregates) { }

    /**
     * Retention of the event log and of the funnel time-series buckets; {@code recentMessages}: how
     * many of each user's latest messages the user read lists (0: none kept, nothing written).
     */
    public record Tracking(String linkBaseUrl, Duration eventRetention, Duration minuteBuckets, Duration hourBuckets,
                           Duration dayBuckets, int recentMessages) { }

    /**
     * {@code Idempotency-Key} on {@code POST /v1/batches}: a completed key is kept {@code ttl}; a
     * claim whose request never completed (a crashed node) lapses after {@code inProgressTtl}.
     */
    public record Idempotency(Duration ttl, Duration inProgressTtl) { }

    /**
     * Dead letters: at most {@code max} per app (oldest dropped first, none kept past
     * {@code retention}); a journal entry replayed {@code maxReplays} times without settling is
     * dead-lettered at the next start.
     */
    public record DeadLetters(int max, int maxReplays) { }

    /**
     * An API key given in clear at start (command line or environment), hashed on load, with its
     * roles (names of the API's roles; null: send, manage and read, what every key had before roles).
     */
    public record InitialKey(String app, String key, java.util.Set<String> roles) {
        public InitialKey(String app, String key) {
            this(app, key, null);
        }

        /**
         * Parses {@code APP:KEY} or {@code APP:KEY:roles=a,b} (roles: send, manage, approve, read,
         * admin; checked when the keys load); {@code source} names where it came from.
         */
        public static InitialKey parse(String s, String source) {
            java.util.Set<String> roles = null;
            int r = s.lastIndexOf(":roles=");
            if (r > 0) {
                roles = new java.util.LinkedHashSet<>(java.util.List.of(s.substring(r + 7).split(",")));
                s = s.substring(0, r);
            }
            int colon = s.indexOf(':');
            if (colon <= 0 || colon == s.length() - 1) {
                throw new StartupException(source + ": expected APP:KEY or APP:KEY:roles=a,b (e.g. "
                        + "demo:my-long-secret-key:roles=send,read)");
            }
            return new InitialKey(s.substring(0, colon), s.substring(colon + 1), roles);
        }

        @Override
        public String toString() {
            return "InitialKey[app=" + app + ", key=<redacted>]";
        }
    }

    /**
     * Loads the configuration without a process environment: reference defaults, then {@code file}
     * (may be null), then {@code overrides} (dotted keys below {@code herald}, e.g. {@code http.port}).
     */
    public static HeraldConfig load(Path file, Map<String, Object> overrides, List<InitialKey> initialKeys) {
        return load(file, Map.of(), overrides, initialKeys);
    }

    /**
     * Loads the configuration: reference defaults, then {@code file} (may be null), then the
     * variables of {@code env} listed in {@link #ENVIRONMENT} (and {@code HERALD_API_KEY}), then
     * {@code overrides} (the command line: dotted keys below {@code herald}, e.g. {@code http.port}).
     * {@code env} also resolves {@code ${?VAR}} substitutions in the file. Throws {@link
     * StartupException} with one line naming the bad setting.
     */
    public static HeraldConfig load(Path file, Map<String, String> env, Map<String, Object> overrides,
                                    List<InitialKey> initialKeys) {
        List<InitialKey> keys = new ArrayList<>();
        String envKey = env.get("HERALD_API_KEY");
        if (envKey != null && !envKey.isBlank()) {
            keys.add(InitialKey.parse(envKey, "HERALD_API_KEY"));
        }
        keys.addAll(initialKeys);
        return ConfigReader.read(ConfigReader.merge(file, env, overrides), keys);
    }

    /** Builds from an already merged and resolved config whose root holds {@code herald}. */
    public static HeraldConfig fromConfig(Config root, List<InitialKey> initialKeys) {
        return ConfigReader.read(root, initialKeys);
    }

    /** Returns a copy with another HTTP port (tests and scripted starts use port 0). */
    public HeraldConfig withHttpPort(int port) {
        Http h = new Http(http.host(), port, http.maxBodyBytes(), http.maxItemsPerBatch(), http.maxHeaderBytes(),
                http.maxInitialLineBytes(), http.requestTimeout(), http.idleTimeout());
        return new HeraldConfig(nodeId, dataDir, h, redis, pipeline, scheduler, retention, dataKey, drainTimeout, sandbox,
                sandboxRecordIds, apns, fcm, sms, receipts, tracking, apps, initialKeys, idempotency, deadLetters);
    }

    /** Every setting except secrets (the data key, receipt keys, API keys, passwords, webhook secrets). */
    @Override
    public String toString() {
        return "HeraldConfig[nodeId=" + nodeId + ", dataDir=" + dataDir + ", http=" + http + ", redis=" + redis
                + ", pipeline=" + pipeline + ", scheduler=" + scheduler + ", retention=" + retention
                + ", dataKey=" + (dataKey.isBlank() ? "<generated>" : "<redacted>") + ", drainTimeout=" + drainTimeout
                + ", sandbox=" + sandbox + ", sandboxRecordIds=" + sandboxRecordIds + ", apns=" + apns + ", fcm=" + fcm
                + ", sms=" + sms + ", receipts=" + receipts + ", tracking=" + tracking + ", apps=" + apps.values()
                + ", initialKeys=" + initialKeys + ", idempotency=" + idempotency + ", deadLetters=" + deadLetters + "]";
    }
}
