package io.herald.gateway.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigValueFactory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The whole, validated, immutable configuration of one gateway node.
 *
 * <p>Built from HOCON (Typesafe Config): {@code reference.conf} in the jar holds every key with
 * its default, an optional file given with {@code --config} overrides it, environment variables
 * named in {@code reference.conf} override both, and command-line options override everything.
 * {@link #load} validates everything it can without touching the network and throws a
 * {@link StartupException} with a one-line, actionable message otherwise. Thread-safe (immutable).
 */
public record HeraldConfig(
        String nodeId,
        Path dataDir,
        Http http,
        Redis redis,
        Pipeline pipeline,
        Scheduler scheduler,
        Duration retention,
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

    /** Whether APNs traffic goes to the local sandbox peer. */
    public enum SandboxMode { AUTO, ALWAYS, NEVER }

    /** HTTP server limits. */
    public record Http(String host, int port, int maxBodyBytes, int maxItemsPerBatch, int maxHeaderBytes,
                       int maxInitialLineBytes, Duration requestTimeout, Duration idleTimeout) { }

    /** Redis: an external URL, or empty for the embedded server. */
    public record Redis(String url, Duration commandTimeout) {
        public boolean embedded() {
            return url == null || url.isBlank();
        }
    }

    /** Ring capacity and handler batching. */
    public record Pipeline(int capacity, int handlerBatch, Duration redisWait) { }

    /** Deferred-message scheduler. */
    public record Scheduler(Duration interval, int batch) { }

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

    /** Retention of the event log and of the funnel time-series buckets. */
    public record Tracking(String linkBaseUrl, Duration eventRetention, Duration minuteBuckets, Duration hourBuckets,
                           Duration dayBuckets) { }

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

    /** An API key given in clear at start (command line or environment), hashed on load. */
    public record InitialKey(String app, String key) {
        @Override
        public String toString() {
            return "InitialKey[app=" + app + ", key=<redacted>]";
        }
    }

    /** One app (tenant). */
    public record AppConfig(String name, List<String> apiKeyHashes, RateLimit rateLimit, Channels channels, Apns apns,
                            Fcm fcm, Sms sms, Webhook webhook) { }

    /** Feedback webhook of an app; an empty url means none. */
    public record Webhook(String url, String secret, int batchSize, int maxAttempts, Duration backoffBase,
                          Duration backoffMax) {
        public boolean enabled() {
            return url != null && !url.isBlank();
        }

        @Override
        public String toString() {
            return "Webhook[url=" + url + ", secret=<redacted>]";
        }
    }

    /** Channel order for {@code channel: auto} and the default fallback of messages naming a channel. */
    public record Channels(List<String> order, List<String> fallback) { }

    /** FCM project of an app; no project means the sandbox. */
    public record Fcm(String projectId, Path serviceAccountFile, String baseUrl, Path trustedCertificateFile) {
        public boolean hasCredentials() {
            return serviceAccountFile != null;
        }
    }

    /** SMPP account of an app; no host means the sandbox SMSC. */
    public record Sms(String host, int port, String systemId, String password, int binds, int ratePerBind, int window,
                      String sourceAddress, boolean trackLinks) {
        public boolean hasAccount() {
            return host != null && !host.isBlank();
        }

        @Override
        public String toString() {
            return "Sms[host=" + host + ", port=" + port + ", systemId=" + systemId + ", password=<redacted>]";
        }
    }

    /** Per-user GCRA limit: {@code rate} messages per {@code period}, {@code burst} at once. */
    public record RateLimit(int rate, Duration period, int burst) {
        /** Emission interval in milliseconds (may be fractional). */
        public double emissionIntervalMillis() {
            return (double) period.toMillis() / rate;
        }
    }

    /** APNs credentials of one app; both credential kinds empty means "sandbox only". */
    public record Apns(String topic, Path signingKeyFile, String teamId, String keyId, Path certificateFile,
                       String certificatePassword, String productionHost, String developmentHost, int port,
                       Path trustedCertificateFile) {
        public boolean hasCredentials() {
            return signingKeyFile != null || certificateFile != null;
        }

        @Override
        public String toString() {
            return "Apns[topic=" + topic + ", signingKeyFile=" + signingKeyFile + ", teamId=" + teamId
                    + ", keyId=" + keyId + ", certificateFile=" + certificateFile + ", certificatePassword=<redacted>]";
        }
    }

    /**
     * Loads the configuration: reference defaults, then {@code file} (may be null), then
     * {@code overrides} (dotted keys below {@code herald}, e.g. {@code http.port}).
     */
    public static HeraldConfig load(Path file, Map<String, Object> overrides, List<InitialKey> initialKeys) {
        return load(file, System.getenv(), overrides, initialKeys);
    }

    /** As {@link #load(Path, Map, List)}, with {@code env} standing for the process environment. */
    public static HeraldConfig load(Path file, Map<String, String> env, Map<String, Object> overrides,
                                    List<InitialKey> initialKeys) {
        Config root;
        try {
            Config fileConfig = ConfigFactory.empty();
            if (file != null) {
                if (!Files.isReadable(file)) {
                    throw new StartupException("config file " + file + " is not readable: check the --config path");
                }
                fileConfig = ConfigFactory.parseFile(file.toFile(), ConfigParseOptions.defaults().setAllowMissing(false));
            }
            Config over = ConfigFactory.empty();
            for (Map.Entry<String, Object> e : overrides.entrySet()) {
                over = over.withValue("herald." + e.getKey(), ConfigValueFactory.fromAnyRef(e.getValue()));
            }
            Config merged = over.withFallback(fileConfig).withFallback(ConfigFactory.defaultReferenceUnresolved());
            root = merged.withFallback(ConfigValueFactory.fromMap(env).toConfig())
                    .resolve(com.typesafe.config.ConfigResolveOptions.noSystem());
        } catch (ConfigException e) {
            throw new StartupException("configuration is invalid: " + e.getMessage());
        }
        return fromConfig(root, initialKeys);
    }

    /** Builds from an already merged and resolved config whose root holds {@code herald}. */
    public static HeraldConfig fromConfig(Config root, List<InitialKey> initialKeys) {
        try {
            Config h = root.getConfig("herald");
            Config hh = h.getConfig("http");
            Http http = new Http(hh.getString("host"), hh.getInt("port"), bytes(hh, "max-body-bytes"),
                    positive(hh, "max-items-per-batch"), bytes(hh, "max-header-bytes"),
                    bytes(hh, "max-initial-line-bytes"), hh.getDuration("request-timeout"), hh.getDuration("idle-timeout"));
            if (http.port() < 0 || http.port() > 65535) {
                throw new StartupException("herald.http.port: " + http.port() + " (expected: 0..65535, 0 = any free port)");
            }
            Redis redis = new Redis(h.getString("redis.url"), h.getDuration("redis.command-timeout"));
            if (!redis.embedded() && !(redis.url().startsWith("redis://") || redis.url().startsWith("rediss://"))) {
                throw new StartupException("herald.redis.url / REDIS_URL: '" + redis.url()
                        + "' is not a Redis URI (expected: redis://host:port[/db] or rediss://...)");
            }
            Pipeline pipeline = new Pipeline(positive(h, "pipeline.capacity"), positive(h, "pipeline.handler-batch"),
                    h.getDuration("pipeline.redis-wait"));
            Scheduler scheduler = new Scheduler(h.getDuration("scheduler.interval"), positive(h, "scheduler.batch"));
            SandboxMode sandbox = switch (h.getString("sandbox").toLowerCase(Locale.ROOT)) {
                case "auto" -> SandboxMode.AUTO;
                case "true", "yes", "on", "always" -> SandboxMode.ALWAYS;
                case "false", "no", "off", "never" -> SandboxMode.NEVER;
                default -> throw new StartupException("herald.sandbox: '" + h.getString("sandbox")
                        + "' (expected: auto, true or false)");
            };
            Config a = h.getConfig("apns");
            ApnsTuning apns = new ApnsTuning(positive(a, "max-in-flight"), positive(a, "connections"),
                    positive(a, "max-attempts"), a.getDuration("backoff-base"), a.getDuration("backoff-max"));
            Config f = h.getConfig("fcm");
            FcmTuning fcm = new FcmTuning(positive(f, "connections"), positive(f, "max-concurrent-streams"),
                    positive(f, "max-attempts"), f.getDuration("backoff-base"), f.getDuration("backoff-max"),
                    f.getDuration("quota-backoff"), f.getDuration("token-refresh-margin"));
            Config sm = h.getConfig("sms");
            SmsTuning sms = new SmsTuning(positive(sm, "max-attempts"), sm.getDuration("backoff-base"),
                    sm.getDuration("backoff-max"), sm.getDuration("receipt-id-ttl"));
            Config rc = h.getConfig("receipts");
            Receipts receipts = new Receipts(rc.getString("key"), rc.getString("key-id"),
                    rc.getStringList("previous-keys"), rc.getDuration("token-ttl"), positive(rc, "rate-per-source"),
                    positive(rc, "burst-per-source"), positive(rc, "max-per-request"));
            Config tc = h.getConfig("tracking");
            Tracking tracking = new Tracking(tc.getString("link-base-url"), tc.getDuration("event-retention"), tc.getDuration("minute-buckets"),
                    tc.getDuration("hour-buckets"), tc.getDuration("day-buckets"));

            Config defaults = h.getConfig("app-defaults");
            Map<String, AppConfig> apps = new LinkedHashMap<>();
            Config appsConfig = h.getConfig("apps");
            List<String> names = new ArrayList<>(appsConfig.root().keySet());
            if (names.isEmpty()) {
                names.add("demo");
            }
            for (InitialKey key : initialKeys) {
                if (!names.contains(key.app())) {
                    names.add(key.app());
                }
            }
            for (String name : names) {
                validateAppName(name);
                Config app = appsConfig.hasPath(quote(name))
                        ? appsConfig.getConfig(quote(name)).withFallback(defaults) : defaults;
                apps.put(name, app(name, app));
            }
            for (InitialKey key : initialKeys) {
                if (key.key() == null || key.key().length() < 16) {
                    throw new StartupException("API key for app " + key.app()
                            + " is too short (expected: at least 16 characters)");
                }
            }
            Idempotency idempotency = new Idempotency(positiveDuration(h, "idempotency.ttl"),
                    positiveDuration(h, "idempotency.in-progress-ttl"));
            DeadLetters deadLetters = new DeadLetters(positive(h, "dead-letters.max"),
                    positive(h, "dead-letters.max-replays"));
            return new HeraldConfig(h.getString("node-id"), Path.of(h.getString("data-dir")), http, redis, pipeline,
                    scheduler, h.getDuration("retention"), h.getString("data-key"), h.getDuration("shutdown.drain-timeout"),
                    sandbox, h.getBoolean("sandbox-record-ids"), apns, fcm, sms, receipts, tracking,
                    Collections.unmodifiableMap(apps), List.copyOf(initialKeys), idempotency, deadLetters);
        } catch (ConfigException e) {
            throw new StartupException("configuration is invalid: " + e.getMessage());
        }
    }

    /** Returns a copy with another HTTP port (tests and scripted starts use port 0). */
    public HeraldConfig withHttpPort(int port) {
        Http h = new Http(http.host(), port, http.maxBodyBytes(), http.maxItemsPerBatch(), http.maxHeaderBytes(),
                http.maxInitialLineBytes(), http.requestTimeout(), http.idleTimeout());
        return new HeraldConfig(nodeId, dataDir, h, redis, pipeline, scheduler, retention, dataKey, drainTimeout, sandbox,
                sandboxRecordIds, apns, fcm, sms, receipts, tracking, apps, initialKeys, idempotency, deadLetters);
    }

    static void validateAppName(String name) {
        if (!name.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")) {
            throw new StartupException("app name '" + name + "' is invalid (expected: letters, digits, '.', '_', '-', "
                    + "at most 64 characters)");
        }
    }

    private static AppConfig app(String name, Config c) {
        String prefix = "herald.apps." + name + ".";
        List<String> hashes = new ArrayList<>();
        for (String k : c.getStringList("api-keys")) {
            String hex = k.startsWith("sha256:") ? k.substring(7) : k;
            if (!hex.matches("[0-9a-fA-F]{64}")) {
                throw new StartupException(prefix + "api-keys: an entry is not 'sha256:<64 hex chars>' "
                        + "(store the SHA-256 of the key, never the key itself)");
            }
            hashes.add(hex.toLowerCase(Locale.ROOT));
        }
        RateLimit rl = new RateLimit(positive(c, "rate-limit.rate"), c.getDuration("rate-limit.period"),
                positive(c, "rate-limit.burst"));
        if (rl.period().toMillis() < 1) {
            throw new StartupException(prefix + "rate-limit.period: " + rl.period() + " (expected: >= 1ms)");
        }
        Config a = c.getConfig("apns");
        Path keyFile = optionalPath(a.getString("signing-key-file"));
        Path certFile = optionalPath(a.getString("certificate-file"));
        if (keyFile != null && certFile != null) {
            throw new StartupException(prefix + "apns: both signing-key-file and certificate-file are set "
                    + "(expected: one of them)");
        }
        if (keyFile != null) {
            if (!Files.isReadable(keyFile)) {
                throw new StartupException(prefix + "apns.signing-key-file: " + keyFile
                        + " is not readable (expected: the .p8 key downloaded from Apple)");
            }
            if (a.getString("team-id").isBlank() || a.getString("key-id").isBlank()) {
                throw new StartupException(prefix + "apns: token auth needs team-id and key-id beside signing-key-file");
            }
        }
        if (certFile != null && !Files.isReadable(certFile)) {
            throw new StartupException(prefix + "apns.certificate-file: " + certFile
                    + " is not readable (expected: a .p12 with the APNs certificate and key)");
        }
        if (a.getString("topic").isBlank()) {
            throw new StartupException(prefix + "apns.topic is empty (expected: the app's bundle id)");
        }
        Path trusted = optionalPath(a.getString("trusted-certificate-file"));
        if (trusted != null && !Files.isReadable(trusted)) {
            throw new StartupException(prefix + "apns.trusted-certificate-file: " + trusted
                    + " is not readable (expected: a PEM certificate chain)");
        }
        Apns apns = new Apns(a.getString("topic"), keyFile, a.getString("team-id"), a.getString("key-id"), certFile,
                a.getString("certificate-password"), a.getString("production-host"), a.getString("development-host"),
                a.getInt("port"), trusted);
        List<String> order = channelList(c, "channels.order", prefix, false);
        if (order.isEmpty()) {
            throw new StartupException(prefix + "channels.order is empty (expected: e.g. [push, sms])");
        }
        Channels channels = new Channels(order, channelList(c, "channels.fallback", prefix, false));
        Config fc = c.getConfig("fcm");
        Path sa = optionalPath(fc.getString("service-account-file"));
        if (sa != null && !Files.isReadable(sa)) {
            throw new StartupException(prefix + "fcm.service-account-file: " + sa
                    + " is not readable (expected: the service-account JSON from the Firebase console)");
        }
        if (sa != null && fc.getString("project-id").isBlank()) {
            throw new StartupException(prefix + "fcm.project-id is empty (expected: the Firebase project id)");
        }
        Path fcmTrust = optionalPath(fc.getString("trusted-certificate-file"));
        if (fcmTrust != null && !Files.isReadable(fcmTrust)) {
            throw new StartupException(prefix + "fcm.trusted-certificate-file: " + fcmTrust + " is not readable");
        }
        Fcm fcm = new Fcm(fc.getString("project-id"), sa, fc.getString("base-url"), fcmTrust);
        Config sc = c.getConfig("sms");
        Sms sms = new Sms(sc.getString("host"), sc.getInt("port"), sc.getString("system-id"), sc.getString("password"),
                positive(sc, "binds"), positive(sc, "rate-per-bind"), positive(sc, "window"), sc.getString("source-address"),
                sc.getBoolean("track-links"));
        if (sms.hasAccount() && sms.systemId().isBlank()) {
            throw new StartupException(prefix + "sms.system-id is empty (expected: the SMPP account's system id)");
        }
        Config wc = c.getConfig("webhook");
        Webhook webhook = new Webhook(wc.getString("url"), wc.getString("secret"), positive(wc, "batch-size"),
                positive(wc, "max-attempts"), wc.getDuration("backoff-base"), wc.getDuration("backoff-max"));
        if (webhook.enabled()) {
            if (!webhook.url().startsWith("http://") && !webhook.url().startsWith("https://")) {
                throw new StartupException(prefix + "webhook.url: '" + webhook.url() + "' (expected: an http(s) URL)");
            }
            if (webhook.secret().length() < 16) {
                throw new StartupException(prefix + "webhook.secret: too short (expected: at least 16 characters)");
            }
        }
        return new AppConfig(name, List.copyOf(hashes), rl, channels, apns, fcm, sms, webhook);
    }

    private static List<String> channelList(Config c, String path, String prefix, boolean allowAuto) {
        List<String> out = new ArrayList<>();
        for (String ch : c.getStringList(path)) {
            if (!List.of("push", "apns", "fcm", "sms").contains(ch) || out.contains(ch)) {
                throw new StartupException(prefix + path + ": '" + ch + "' (expected: push, apns, fcm or sms, each once)");
            }
            out.add(ch);
        }
        return List.copyOf(out);
    }

    private static Path optionalPath(String s) {
        return s == null || s.isBlank() ? null : Path.of(s);
    }

    private static String quote(String name) {
        return "\"" + name + "\"";
    }

    private static int positive(Config c, String path) {
        int v = c.getInt(path);
        if (v <= 0) {
            throw new StartupException(path + ": " + v + " (expected: > 0)");
        }
        return v;
    }

    private static Duration positiveDuration(Config c, String path) {
        Duration d = c.getDuration(path);
        if (d.toMillis() < 1) {
            throw new StartupException("herald." + path + ": " + d + " (expected: >= 1ms)");
        }
        return d;
    }

    private static int bytes(Config c, String path) {
        long v = c.getBytes(path);
        if (v <= 0 || v > Integer.MAX_VALUE) {
            throw new StartupException(path + ": " + v + " (expected: 1.." + Integer.MAX_VALUE + " bytes)");
        }
        return (int) v;
    }
}
