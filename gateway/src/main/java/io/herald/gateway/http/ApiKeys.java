package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * API keys and their roles. Each key maps to exactly one app and a set of {@link Role}s; only
 * SHA-256 hashes are kept. Two kinds:
 * <ul>
 *   <li><b>configured</b>: config {@code api-keys}, the {@code api-keys} file in the data directory
 *       ({@code <app> sha256:<hex> [roles=a,b]}) and keys given at start; without roles they have
 *       {@link #DEFAULT_ROLES} (what every key could do before roles). Changed only by editing the
 *       configuration;</li>
 *   <li><b>issued</b> by an {@code admin} key through {@code /v1/apps/{app}/keys}: stored in Redis
 *       ({@link Keys#apiKeys}, the hash and roles, never the key), cached here and re-read by
 *       every node within a second of a change ({@link #start}); revoked the same way.</li>
 * </ul>
 * A presented key is hashed and compared with every known hash in constant time
 * ({@link MessageDigest#isEqual}). Keys are never logged.
 *
 * <p>First run: when no key exists for any app, one is generated for the first app with every
 * role (the operator's bootstrap key), printed once on standard output and its hash appended to
 * {@code <data-dir>/api-keys}. Thread-safe: configured keys are immutable, issued ones a volatile
 * snapshot replaced whole; one daemon thread polls. Owned by {@code Herald}, which closes it.
 */
public final class ApiKeys implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ApiKeys.class);
    static final String FILE = "api-keys";

    /** What a key may do; each route names the one it needs (docs: README "Roles"). */
    public enum Role {
        /** Batches, events, redrives. */
        SEND,
        /** Users, tags, audiences, templates, campaigns. */
        MANAGE,
        /** Approve or reject campaigns others made. */
        APPROVE,
        /** Status, funnels, reports, lists. */
        READ,
        /** Keys and the app's delivery policy. */
        ADMIN;

        public String wire() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** The role named {@code s}, or null. */
        public static Role fromWire(String s) {
            for (Role r : values()) {
                if (r.wire().equals(s)) {
                    return r;
                }
            }
            return null;
        }
    }

    /** The roles of a key that names none: what every key could do before roles existed. */
    public static final Set<Role> DEFAULT_ROLES = Collections.unmodifiableSet(EnumSet.of(Role.SEND, Role.MANAGE, Role.READ));

    /**
     * Who calls: the app, the key's id ({@code cfg-<first 12 hex of its hash>} for a configured key,
     * {@code k-...} for an issued one; recorded as "who" in audit trails) and its roles.
     */
    public record Caller(String app, String keyId, Set<Role> roles) {
        public boolean may(Role r) {
            return roles.contains(r);
        }
    }

    /** A key as the keys API lists it (never the key itself). */
    public record Listed(String id, String app, String name, Set<Role> roles, long createdAt, String createdBy,
                         boolean configured) {
    }

    private final Map<String, Caller> configured;
    private volatile Map<String, Listed> issued = Map.of(); // by hash
    private final Map<String, Long> versions = new ConcurrentHashMap<>();
    private Redis redis;
    private ObjectMapper mapper;
    private final Redis.Script put = new Redis.Script("/scripts/versioned-hash.lua");
    private final ScheduledExecutorService poller = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-keys");
        t.setDaemon(true);
        return t;
    });
    private final Map<String, Map<String, Listed>> issuedByApp = new ConcurrentHashMap<>();
    private int failures;

    private ApiKeys(Map<String, Caller> configured) {
        this.configured = Map.copyOf(configured);
    }

    /** Configured keys only (tests of the router). */
    static ApiKeys of(Map<String, Caller> byHash) {
        return new ApiKeys(byHash);
    }

    private static Caller caller(String app, String hash, Set<Role> roles) {
        return new Caller(app, "cfg-" + hash.substring(0, 12), roles);
    }

    /** Parses role names ({@code send,manage}); throws IllegalArgumentException naming a bad one. */
    public static Set<Role> roles(Iterable<String> names) {
        EnumSet<Role> out = EnumSet.noneOf(Role.class);
        for (String n : names) {
            Role r = Role.fromWire(n.trim());
            if (r == null) {
                throw new IllegalArgumentException("'" + n + "' is not a role (expected: send, manage, approve, read, admin)");
            }
            out.add(r);
        }
        return Collections.unmodifiableSet(out);
    }

    /** Loads every configured key; generates the first key when there is none. */
    public static ApiKeys load(HeraldConfig config) {
        Map<String, Caller> byHash = new HashMap<>();
        for (AppConfig app : config.apps().values()) {
            for (String h : app.apiKeyHashes()) {
                byHash.put(h, caller(app.name(), h, DEFAULT_ROLES));
            }
        }
        for (HeraldConfig.InitialKey k : config.initialKeys()) {
            String h = sha256(k.key());
            Set<Role> roles;
            try {
                roles = k.roles() == null ? DEFAULT_ROLES : roles(k.roles());
            } catch (IllegalArgumentException e) {
                throw new StartupException("API key given at start for app '" + k.app() + "': " + e.getMessage());
            }
            byHash.put(h, caller(k.app(), h, roles));
        }
        Path file = config.dataDir().resolve(FILE);
        try {
            if (Files.exists(file)) {
                for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                    String l = line.trim();
                    if (l.isEmpty() || l.startsWith("#")) {
                        continue;
                    }
                    String[] parts = l.split("\\s+");
                    if (parts.length < 2 || parts.length > 3 || !parts[1].matches("sha256:[0-9a-f]{64}")
                            || parts.length == 3 && !parts[2].startsWith("roles=")) {
                        throw new StartupException(file + ": line '" + l + "' is not '<app> sha256:<hex> [roles=a,b]' "
                                + "(fix or delete the line)");
                    }
                    Set<Role> roles = DEFAULT_ROLES;
                    if (parts.length == 3) {
                        try {
                            roles = roles(List.of(parts[2].substring(6).split(",")));
                        } catch (IllegalArgumentException e) {
                            throw new StartupException(file + ": line '" + l + "': " + e.getMessage());
                        }
                    }
                    if (config.apps().containsKey(parts[0])) {
                        byHash.put(parts[1].substring(7), caller(parts[0], parts[1].substring(7), roles));
                    }
                }
            }
            if (byHash.isEmpty()) {
                String app = config.apps().keySet().iterator().next();
                String key = generate();
                Files.createDirectories(config.dataDir());
                Files.writeString(file, "# app, SHA-256 of its API key and roles; generated on first run\n" + app
                        + " sha256:" + sha256(key) + " roles=send,manage,approve,read,admin\n", StandardCharsets.UTF_8,
                        StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                byHash.put(sha256(key), caller(app, sha256(key), EnumSet.allOf(Role.class)));
                System.out.println("herald: generated API key for app '" + app + "' with every role (shown once, stored "
                        + "hashed in " + file + "): " + key);
                System.out.flush();
            }
        } catch (IOException e) {
            throw new StartupException("cannot read or write " + file + ": " + e.getMessage()
                    + " (set --data-dir / HERALD_DATA_DIR to a writable directory)");
        }
        return new ApiKeys(byHash);
    }

    /** Reads the issued keys of {@code apps} now, then every {@code refresh}. */
    public void start(Redis redis, ObjectMapper mapper, Set<String> apps, Duration refresh) {
        this.redis = redis;
        this.mapper = mapper;
        refresh(apps);
        poller.scheduleWithFixedDelay(() -> refresh(apps), refresh.toMillis(), refresh.toMillis(), TimeUnit.MILLISECONDS);
    }

    private synchronized void refresh(Set<String> apps) {
        try {
            for (String app : apps) {
                String v = redis.async().hget(Keys.apiKeys(app), "@v").get(10, TimeUnit.SECONDS);
                long version = v == null ? 0 : Long.parseLong(v);
                if (!versions.containsKey(app) || versions.get(app) != version) {
                    load(app, redis.async().hgetall(Keys.apiKeys(app)).get(10, TimeUnit.SECONDS));
                }
            }
            failures = 0;
        } catch (Exception e) {
            failures++;
            if (failures == 1 || failures % 100 == 0) {
                log.warn("issued API keys not refreshed ({}; {} rounds in a row); next round retries", e.toString(),
                        failures);
            }
        }
    }

    private synchronized void load(String app, Map<String, String> all) {
        Map<String, Listed> keys = new HashMap<>();
        all.forEach((field, json) -> {
            if (!field.startsWith("k:")) {
                return;
            }
            try {
                JsonNode n = mapper.readTree(json);
                List<String> names = new ArrayList<>();
                n.get("roles").forEach(r -> names.add(r.asText()));
                keys.put(n.get("hash").asText(), new Listed(n.get("id").asText(), app, n.path("name").asText(null),
                        roles(names), n.get("createdAt").asLong(), n.path("createdBy").asText(null), false));
            } catch (Exception e) {
                log.error("issued API key {} of app {} does not parse ({}); left out", field.substring(2), app,
                        e.getMessage());
            }
        });
        versions.put(app, Long.parseLong(all.getOrDefault("@v", "0")));
        issuedByApp.put(app, Map.copyOf(keys));
        Map<String, Listed> merged = new HashMap<>();
        issuedByApp.values().forEach(merged::putAll);
        issued = Map.copyOf(merged);
    }

    /** The caller of a bearer key, or null (missing, malformed, unknown or revoked key). */
    public Caller authenticate(String authorization) {
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        String key = authorization.substring(7).trim();
        if (key.isEmpty() || key.length() > 512) {
            return null;
        }
        byte[] hash = sha256(key).getBytes(StandardCharsets.US_ASCII);
        Caller found = null;
        // Every known hash is compared (constant time), so timing tells nothing about which exists.
        for (Map.Entry<String, Caller> e : configured.entrySet()) {
            if (MessageDigest.isEqual(e.getKey().getBytes(StandardCharsets.US_ASCII), hash)) {
                found = e.getValue();
            }
        }
        for (Map.Entry<String, Listed> e : issued.entrySet()) {
            if (MessageDigest.isEqual(e.getKey().getBytes(StandardCharsets.US_ASCII), hash)) {
                Listed l = e.getValue();
                found = new Caller(l.app(), l.id(), l.roles());
            }
        }
        return found;
    }

    /** The app's keys: configured (without name or date) and issued. */
    public List<Listed> list(String app) {
        List<Listed> out = new ArrayList<>();
        configured.values().stream().filter(c -> c.app().equals(app)).sorted(java.util.Comparator.comparing(Caller::keyId))
                .forEach(c -> out.add(new Listed(c.keyId(), app, null, c.roles(), 0, null, true)));
        issuedByApp.getOrDefault(app, Map.of()).values().stream().sorted(java.util.Comparator.comparing(Listed::id))
                .forEach(out::add);
        return out;
    }

    /** A key just issued: the key itself (shown once) and how it is listed. */
    public record Issued(String key, Listed listed) {
    }

    /** Issues a new key of {@code app} with {@code roles}; every node accepts it within a second, this one at once. */
    public CompletableFuture<Issued> issue(String app, String name, Set<Role> roles, String createdBy, long now) {
        String key = generate();
        String id = "k-" + HexFormat.of().formatHex(new SecureRandom().generateSeed(6));
        ObjectNode json = mapper.createObjectNode();
        json.put("id", id);
        if (name != null) {
            json.put("name", name);
        }
        json.put("hash", sha256(key));
        roles.forEach(r -> json.withArray("roles").add(r.wire()));
        json.put("createdAt", now);
        json.put("createdBy", createdBy);
        return change(app, "create", "k:" + id, json.toString())
                .thenApply(done -> new Issued(key, new Listed(id, app, name, roles, now, createdBy, false)));
    }

    /** Revokes an issued key: false when {@code app} has no issued key {@code id}. */
    public CompletableFuture<Boolean> revoke(String app, String id) {
        return change(app, "delete", "k:" + id, "");
    }

    private CompletableFuture<Boolean> change(String app, String mode, String field, String value) {
        return put.<List<Long>>run(redis.async(), ScriptOutputType.MULTI, new String[] {Keys.apiKeys(app)}, mode, field,
                value).thenCompose(r -> {
                    if (r.get(0) != 1) {
                        return CompletableFuture.completedFuture(false);
                    }
                    return redis.async().hgetall(Keys.apiKeys(app)).toCompletableFuture().thenApply(all -> {
                        load(app, all);
                        return true;
                    });
                });
    }

    @Override
    public void close() {
        poller.shutdownNow();
    }

    /** A new random key: "hk_" + 32 random bytes, base64url. */
    public static String generate() {
        byte[] b = new byte[32];
        new SecureRandom().nextBytes(b);
        return "hk_" + Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }

    public static String sha256(String key) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(key.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
