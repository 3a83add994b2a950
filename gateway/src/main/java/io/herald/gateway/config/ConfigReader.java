package io.herald.gateway.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigResolveOptions;
import com.typesafe.config.ConfigUtil;
import com.typesafe.config.ConfigValueFactory;

import java.net.URI;
import java.net.URISyntaxException;
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
 * Reads {@link HeraldConfig} from HOCON: merges the sources in their order of precedence, refuses
 * keys that {@code reference.conf} does not define, and turns every bad value into a {@link
 * StartupException} whose one-line message names the setting ({@code herald.pipeline.capacity})
 * and says what is expected. Stateless.
 */
final class ConfigReader {
    /** The largest ring capacity: 2^20 messages (each ring then has 4M preallocated slots). */
    static final int MAX_CAPACITY = 1 << 20;

    private ConfigReader() {
    }

    /**
     * Reference defaults, then {@code file} (may be null), then the variables of {@link
     * HeraldConfig#ENVIRONMENT} found in {@code env}, then {@code overrides} (keys below {@code
     * herald}). Substitutions in the file ({@code ${?VAR}}) are resolved against {@code env}, never
     * against the process environment directly. Returns a resolved config holding only {@code herald}.
     */
    static Config merge(Path file, Map<String, String> env, Map<String, Object> overrides) {
        try {
            Config fileConfig = ConfigFactory.empty();
            if (file != null) {
                if (!Files.isReadable(file)) {
                    throw new StartupException("config file " + file + " is not readable: check the --config path");
                }
                fileConfig = ConfigFactory.parseFile(file.toFile(), ConfigParseOptions.defaults().setAllowMissing(false));
                for (String key : fileConfig.root().keySet()) {
                    if (!key.equals("herald")) {
                        throw new StartupException(file + ": '" + key + "' is not a Herald setting (expected: every "
                                + "key below herald, e.g. herald.http.port)");
                    }
                }
            }
            Config envConfig = ConfigFactory.empty();
            for (Map.Entry<String, String> e : HeraldConfig.ENVIRONMENT.entrySet()) {
                String value = env.get(e.getKey());
                if (value != null && !value.isBlank()) {
                    envConfig = envConfig.withValue("herald." + e.getValue(),
                            ConfigValueFactory.fromAnyRef(value, "environment variable " + e.getKey()));
                }
            }
            Config cli = ConfigFactory.empty();
            for (Map.Entry<String, Object> e : overrides.entrySet()) {
                cli = cli.withValue("herald." + e.getKey(), ConfigValueFactory.fromAnyRef(e.getValue(), "command line"));
            }
            Config merged = cli.withFallback(envConfig).withFallback(fileConfig)
                    .withFallback(ConfigFactory.defaultReferenceUnresolved());
            // The environment goes in at the root, below everything, only to resolve ${?VAR}.
            return merged.withFallback(ConfigValueFactory.fromMap(env).toConfig())
                    .resolve(ConfigResolveOptions.noSystem()).withOnlyPath("herald");
        } catch (ConfigException e) {
            throw invalid(e);
        }
    }

    /** Builds the node's configuration from a resolved config whose root holds {@code herald}. */
    static HeraldConfig read(Config root, List<HeraldConfig.InitialKey> initialKeys) {
        try {
            Config h = root.getConfig("herald");
            Config reference = ConfigFactory.defaultReference().getConfig("herald");
            rejectUnknownKeys(h, reference);
            return node(h, initialKeys);
        } catch (ConfigException e) {
            throw invalid(e);
        }
    }

    private static StartupException invalid(ConfigException e) {
        return new StartupException(e.getMessage().replace('\n', ' ')
                + " (see README, Configuration, for every key and its type)");
    }

    private static void rejectUnknownKeys(Config h, Config reference) {
        Config appDefaults = reference.getConfig("app-defaults");
        for (String key : h.entrySet().stream().map(Map.Entry::getKey).sorted().toList()) {
            List<String> path = ConfigUtil.splitPath(key);
            boolean known;
            String expected;
            if (path.get(0).equals("apps") && path.size() == 2) {
                known = true; // apps.<name> = <not an object>: reported as a type error when the app is read
                expected = "";
            } else if (isSumEntry(path, 0) || (path.get(0).equals("apps") && isSumEntry(path, 2))) {
                known = true; // events.sum.<event name> = <property>: names are the app's own
                expected = "";
            } else if (path.get(0).equals("apps")) {
                known = appDefaults.hasPathOrNull(ConfigUtil.joinPath(path.subList(2, path.size())));
                expected = "a key of herald.app-defaults";
            } else {
                known = reference.hasPathOrNull(key);
                expected = "a key of reference.conf";
            }
            if (!known) {
                throw new StartupException("herald." + key + ": unknown setting (expected: " + expected
                        + "; see README, Configuration)");
            }
        }
    }

    /** True when {@code path} from {@code from} is {@code [app-defaults.]events.sum.<name>}. */
    private static boolean isSumEntry(List<String> path, int from) {
        List<String> p = path.subList(from, path.size());
        if (!p.isEmpty() && p.get(0).equals("app-defaults")) {
            p = p.subList(1, p.size());
        }
        return p.size() == 3 && p.get(0).equals("events") && p.get(1).equals("sum");
    }

    private static HeraldConfig node(Config h, List<HeraldConfig.InitialKey> initialKeys) {
        Section top = new Section(h, "herald.");
        String nodeId = top.string("node-id");
        if (!nodeId.matches("[A-Za-z0-9._:-]{1,64}")) {
            throw new StartupException("herald.node-id / HERALD_NODE_ID: '" + nodeId + "' (expected: 1 to 64 "
                    + "letters, digits, '.', '_', ':', '-')");
        }
        String dataDir = top.string("data-dir");
        if (dataDir.isBlank()) {
            throw new StartupException("herald.data-dir / HERALD_DATA_DIR: '' (expected: a directory path)");
        }

        Section hh = top.section("http");
        HeraldConfig.Http http = new HeraldConfig.Http(hh.nonBlank("host"), hh.between("port", 0, 65535),
                hh.bytes("max-body-bytes"), hh.atLeast("max-items-per-batch", 1), hh.bytes("max-header-bytes"),
                hh.bytes("max-initial-line-bytes"), hh.positive("request-timeout"), hh.positive("idle-timeout"));

        Section rs = top.section("redis");
        HeraldConfig.Redis redis = new HeraldConfig.Redis(rs.string("url"), rs.positive("command-timeout"),
                rs.bool("cluster"), rs.between("shards", 1, 1024), rs.positive("node-lease"));
        if (redis.cluster() && redis.embedded()) {
            throw new StartupException("herald.redis.cluster / REDIS_CLUSTER = true needs herald.redis.url / REDIS_URL "
                    + "naming a node of the cluster (the embedded Redis is standalone)");
        }
        if (!redis.embedded() && !(redis.url().startsWith("redis://") || redis.url().startsWith("rediss://"))) {
            throw new StartupException("herald.redis.url / REDIS_URL: '" + AppConfig.redactUrl(redis.url())
                    + "' is not a Redis URI (expected: redis://host:port[/db] or rediss://...)");
        }

        Section ps = top.section("pipeline");
        HeraldConfig.Pipeline pipeline = new HeraldConfig.Pipeline(ps.between("capacity", 1, MAX_CAPACITY),
                ps.atLeast("handler-batch", 1), ps.positive("redis-wait"), ps.positive("stall-after"));
        if (pipeline.capacity() < http.maxItemsPerBatch()) {
            throw new StartupException("herald.pipeline.capacity: " + pipeline.capacity()
                    + " is below herald.http.max-items-per-batch (" + http.maxItemsPerBatch() + "): a full batch "
                    + "could never be admitted (expected: capacity >= max-items-per-batch; raise the one or lower the other)");
        }

        Section ss = top.section("scheduler");
        HeraldConfig.Scheduler scheduler = new HeraldConfig.Scheduler(ss.positive("interval"), ss.atLeast("batch", 1),
                ss.positive("campaign-tick"), ss.positive("campaign-lease"), ss.between("campaign-chunk", 1, 10_000),
                ss.between("campaign-backlog", 0, 100_000_000));

        String sandboxSetting = top.string("sandbox");
        HeraldConfig.SandboxMode sandbox = switch (sandboxSetting.toLowerCase(Locale.ROOT)) {
            case "auto" -> HeraldConfig.SandboxMode.AUTO;
            case "true", "yes", "on", "always" -> HeraldConfig.SandboxMode.ALWAYS;
            case "false", "no", "off", "never" -> HeraldConfig.SandboxMode.NEVER;
            default -> throw new StartupException("herald.sandbox / HERALD_SANDBOX: '" + sandboxSetting
                    + "' (expected: auto, true or false)");
        };

        Section a = top.section("apns");
        HeraldConfig.ApnsTuning apns = new HeraldConfig.ApnsTuning(a.atLeast("max-in-flight", 1),
                a.atLeast("connections", 1), a.atLeast("max-attempts", 1), a.positive("backoff-base"),
                a.notBelow("backoff-max", "backoff-base"));
        Section f = top.section("fcm");
        HeraldConfig.FcmTuning fcm = new HeraldConfig.FcmTuning(f.atLeast("connections", 1),
                f.atLeast("max-concurrent-streams", 1), f.atLeast("max-attempts", 1), f.positive("backoff-base"),
                f.notBelow("backoff-max", "backoff-base"), f.positive("quota-backoff"),
                f.nonNegative("token-refresh-margin"));
        Section sm = top.section("sms");
        HeraldConfig.SmsTuning sms = new HeraldConfig.SmsTuning(sm.between("max-attempts", 1, 1_000),
                sm.positive("backoff-base"), sm.notBelow("backoff-max", "backoff-base"), sm.positive("receipt-id-ttl"));

        Section rc = top.section("receipts");
        HeraldConfig.Receipts receipts = new HeraldConfig.Receipts(rc.string("key"), rc.nonBlank("key-id"),
                rc.strings("previous-keys"), rc.atLeastOneSecond("token-ttl"), rc.atLeast("rate-per-source", 1),
                rc.atLeast("burst-per-source", 1), rc.atLeast("max-per-request", 1));

        Section tc = top.section("tracking");
        String linkBase = tc.string("link-base-url");
        if (!linkBase.isBlank()) {
            httpUrl(linkBase, "herald.tracking.link-base-url", "the public http(s) base URL of the short links");
        }
        HeraldConfig.Tracking tracking = new HeraldConfig.Tracking(linkBase, tc.positive("event-retention"),
                tc.positive("minute-buckets"), tc.positive("hour-buckets"), tc.positive("day-buckets"),
                tc.between("recent-messages", 0, 1000));

        Map<String, AppConfig> apps = apps(top, initialKeys);
        for (HeraldConfig.InitialKey key : initialKeys) {
            if (key.key() == null || key.key().length() < 16) {
                throw new StartupException("API key for app " + key.app()
                        + " is too short (expected: at least 16 characters)");
            }
        }
        Section is = top.section("idempotency");
        HeraldConfig.Idempotency idempotency = new HeraldConfig.Idempotency(is.positive("ttl"),
                is.positive("in-progress-ttl"));
        Section ds = top.section("dead-letters");
        HeraldConfig.DeadLetters deadLetters = new HeraldConfig.DeadLetters(ds.atLeast("max", 1),
                ds.atLeast("max-replays", 1));
        if (top.c().hasPath("retention")
                && top.c().getValue("retention").valueType() != com.typesafe.config.ConfigValueType.OBJECT) {
            throw new StartupException("herald.retention is a section since 0.2: set retention.messages (state and "
                    + "history of each message, default 72h) and retention.aggregates (funnels, default 90d) instead");
        }
        Section rt = top.section("retention");
        HeraldConfig.Retention retention = new HeraldConfig.Retention(rt.positive("messages"), rt.positive("aggregates"));
        return new HeraldConfig(nodeId, Path.of(dataDir), http, redis, pipeline, scheduler, retention,
                top.string("data-key"), top.section("shutdown").nonNegative("drain-timeout"), sandbox,
                top.bool("sandbox-record-ids"), apns, fcm, sms, receipts, tracking, apps, List.copyOf(initialKeys),
                idempotency, deadLetters);
    }

    /** The apps of {@code herald.apps} (or one named "demo"), plus those that initial keys name. */
    private static Map<String, AppConfig> apps(Section top, List<HeraldConfig.InitialKey> initialKeys) {
        Config defaults = top.section("app-defaults").c();
        Config appsConfig = top.section("apps").c();
        List<String> names = new ArrayList<>(appsConfig.root().keySet());
        if (names.isEmpty()) {
            names.add("demo");
        }
        for (HeraldConfig.InitialKey key : initialKeys) {
            if (!names.contains(key.app())) {
                names.add(key.app());
            }
        }
        Map<String, AppConfig> apps = new LinkedHashMap<>();
        for (String name : names) {
            String quoted = ConfigUtil.joinPath(name);
            Config own = appsConfig.hasPath(quoted)
                    ? new Section(appsConfig, "herald.apps.").section(quoted).c() : ConfigFactory.empty();
            try {
                apps.put(name, app(name, new Section(own.withFallback(defaults), "herald.apps." + quoted + ".")));
            } catch (AppConfig.InvalidAppConfigException e) {
                if (e.setting().equals("name")) {
                    throw new StartupException("herald.apps: app " + e.getMessage());
                }
                boolean ownSetting = own.hasPathOrNull(e.setting());
                throw new StartupException((ownSetting ? "herald.apps." + quoted + "." : "herald.app-defaults.")
                        + e.getMessage() + (ownSetting ? "" : " (inherited by app " + name + ")"));
            }
        }
        return Collections.unmodifiableMap(apps);
    }

    private static AppConfig app(String name, Section c) {
        Section a = c.section("apns");
        Section f = c.section("fcm");
        Section s = c.section("sms");
        Section w = c.section("webhook");
        return AppConfig.builder(name)
                .apiKeys(c.strings("api-keys"))
                .rateLimit(new AppConfig.RateLimit(c.integer("rate-limit.rate"), c.duration("rate-limit.period"),
                        c.integer("rate-limit.burst")))
                .channels(new AppConfig.Channels(c.strings("channels.order"), c.strings("channels.fallback")))
                .apns(new AppConfig.Apns(a.string("topic"), optionalPath(a.string("signing-key-file")),
                        a.string("team-id"), a.string("key-id"), optionalPath(a.string("certificate-file")),
                        a.string("certificate-password"), a.string("production-host"), a.string("development-host"),
                        a.integer("port"), optionalPath(a.string("trusted-certificate-file"))))
                .fcm(new AppConfig.Fcm(f.string("project-id"), optionalPath(f.string("service-account-file")),
                        f.string("base-url"), optionalPath(f.string("trusted-certificate-file"))))
                .sms(new AppConfig.Sms(s.string("host"), s.integer("port"), s.string("system-id"), s.string("password"),
                        s.integer("binds"), s.integer("rate-per-bind"), s.integer("window"), s.string("source-address"),
                        s.bool("track-links")))
                .webhook(new AppConfig.Webhook(w.string("url"), w.string("secret"), w.integer("batch-size"),
                        w.integer("max-attempts"), w.duration("backoff-base"), w.duration("backoff-max")))
                .events(new AppConfig.Events(c.integer("events.window-days"), sums(c)))
                .tiers(new AppConfig.Tiers(c.duration("tiers.every"), c.string("tiers.signup-attribute"),
                        c.integer("tiers.lifecycle.new-days"), c.integer("tiers.lifecycle.active-days"),
                        c.integer("tiers.lifecycle.silent-days"), c.string("tiers.purchase-event")))
                .build();
    }

    private static void httpUrl(String s, String setting, String expected) {
        URI u;
        try {
            u = new URI(s);
        } catch (URISyntaxException e) {
            throw new StartupException(setting + ": '" + AppConfig.redactUrl(s) + "' is not a URL (expected: "
                    + expected + ")");
        }
        String scheme = u.getScheme() == null ? "" : u.getScheme().toLowerCase(Locale.ROOT);
        if (!(scheme.equals("http") || scheme.equals("https")) || u.getHost() == null) {
            throw new StartupException(setting + ": '" + AppConfig.redactUrl(s) + "' (expected: " + expected + ")");
        }
    }

    /** {@code events.sum}: event name -> property name (strings). */
    private static Map<String, String> sums(Section c) {
        Map<String, String> out = new java.util.TreeMap<>();
        Section sum = c.section("events.sum");
        for (String k : sum.c().root().keySet()) {
            out.put(k, sum.string(ConfigUtil.joinPath(k)));
        }
        return out;
    }

    private static Path optionalPath(String s) {
        return s == null || s.isBlank() ? null : Path.of(s);
    }

    /**
     * Typed, range-checked reads of one section. Every message names the full key ({@code
     * herald.http.port}), and a value of the wrong type says where it was set.
     */
    private record Section(Config c, String prefix) {
        Section section(String path) {
            return new Section(read(path, "an object", c::getConfig), prefix + path + ".");
        }

        String string(String path) {
            return read(path, "a string", c::getString);
        }

        List<String> strings(String path) {
            return read(path, "a list of strings", c::getStringList);
        }

        boolean bool(String path) {
            return read(path, "true or false", c::getBoolean);
        }

        String nonBlank(String path) {
            String v = string(path);
            if (v.isBlank()) {
                throw new StartupException(prefix + path + ": '' (expected: a value)");
            }
            return v;
        }

        int integer(String path) {
            return read(path, "an integer", c::getInt);
        }

        int atLeast(String path, int min) {
            int v = integer(path);
            if (v < min) {
                throw new StartupException(prefix + path + ": " + v + " (expected: >= " + min + ")");
            }
            return v;
        }

        int between(String path, int min, int max) {
            int v = integer(path);
            if (v < min || v > max) {
                throw new StartupException(prefix + path + ": " + v + " (expected: " + min + ".." + max + ")");
            }
            return v;
        }

        int bytes(String path) {
            long v = read(path, "a size such as 16384 or 64k", c::getBytes);
            if (v <= 0 || v > Integer.MAX_VALUE) {
                throw new StartupException(prefix + path + ": " + v + " (expected: 1.." + Integer.MAX_VALUE + " bytes)");
            }
            return (int) v;
        }

        Duration duration(String path) {
            return read(path, "a duration such as 500ms, 10s or 7d", c::getDuration);
        }

        Duration positive(String path) {
            Duration d = duration(path);
            if (d.toMillis() < 1) {
                throw new StartupException(prefix + path + ": " + d.toMillis() + "ms (expected: >= 1ms)");
            }
            return d;
        }

        Duration atLeastOneSecond(String path) {
            Duration d = duration(path);
            if (d.toSeconds() < 1) {
                throw new StartupException(prefix + path + ": " + d.toMillis() + "ms (expected: >= 1s)");
            }
            return d;
        }

        Duration nonNegative(String path) {
            Duration d = duration(path);
            if (d.isNegative()) {
                throw new StartupException(prefix + path + ": " + d.toMillis() + "ms (expected: >= 0)");
            }
            return d;
        }

        /** A positive duration not below the one at {@code lower} (backoff max vs base). */
        Duration notBelow(String path, String lower) {
            Duration d = positive(path);
            Duration l = duration(lower);
            if (d.compareTo(l) < 0) {
                throw new StartupException(prefix + path + ": " + d.toMillis() + "ms (expected: >= " + prefix + lower + ", "
                        + l.toMillis() + "ms)");
            }
            return d;
        }

        private <T> T read(String path, String expected, java.util.function.Function<String, T> getter) {
            try {
                return getter.apply(path);
            } catch (ConfigException.Missing e) {
                throw new StartupException(prefix + path + ": missing (expected: " + expected + ")");
            } catch (ConfigException e) {
                String value;
                try {
                    value = c.getValue(path).render(com.typesafe.config.ConfigRenderOptions.concise());
                } catch (ConfigException ignored) {
                    value = "the value";
                }
                String where = e.origin() == null ? "" : " (set at " + e.origin().description() + ")";
                throw new StartupException(prefix + path + ": " + value + " is not " + expected + where);
            }
        }
    }
}
