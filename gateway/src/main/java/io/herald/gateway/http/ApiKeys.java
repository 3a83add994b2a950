package io.herald.gateway.http;

import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * API keys: each maps to exactly one app, and only SHA-256 hashes are kept (config
 * {@code api-keys}, the {@code api-keys} file in the data directory, and keys given at start,
 * hashed on load). A presented key is hashed and looked up; the stored hash is then compared
 * with {@link MessageDigest#isEqual} (constant time). Keys are never logged.
 *
 * <p>First run: when no key exists for any app, one is generated for the first app, printed
 * once on standard output and its hash appended to {@code <data-dir>/api-keys}. Immutable after
 * load; thread-safe.
 */
public final class ApiKeys {
    static final String FILE = "api-keys";
    private final Map<String, String> appByHash;

    private ApiKeys(Map<String, String> appByHash) {
        this.appByHash = Map.copyOf(appByHash);
    }

    /** Loads every source of keys; generates the first key when there is none. */
    public static ApiKeys load(HeraldConfig config) {
        Map<String, String> byHash = new HashMap<>();
        for (AppConfig app : config.apps().values()) {
            for (String h : app.apiKeyHashes()) {
                byHash.put(h, app.name());
            }
        }
        for (HeraldConfig.InitialKey k : config.initialKeys()) {
            byHash.put(sha256(k.key()), k.app());
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
                    if (parts.length != 2 || !parts[1].matches("sha256:[0-9a-f]{64}")) {
                        throw new StartupException(file + ": line '" + l + "' is not '<app> sha256:<hex>' "
                                + "(fix or delete the line)");
                    }
                    if (config.apps().containsKey(parts[0])) {
                        byHash.put(parts[1].substring(7), parts[0]);
                    }
                }
            }
            if (byHash.isEmpty()) {
                String app = config.apps().keySet().iterator().next();
                String key = generate();
                Files.createDirectories(config.dataDir());
                Files.writeString(file, "# app and SHA-256 of its API key; generated on first run\n" + app
                        + " sha256:" + sha256(key) + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.APPEND);
                byHash.put(sha256(key), app);
                System.out.println("herald: generated API key for app '" + app + "' (shown once, stored hashed in "
                        + file + "): " + key);
                System.out.flush();
            }
        } catch (IOException e) {
            throw new StartupException("cannot read or write " + file + ": " + e.getMessage()
                    + " (set --data-dir / HERALD_DATA_DIR to a writable directory)");
        }
        return new ApiKeys(byHash);
    }

    /** The app of a bearer key, or null (missing, malformed or unknown key). */
    public String authenticate(String authorization) {
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        String key = authorization.substring(7).trim();
        if (key.isEmpty() || key.length() > 512) {
            return null;
        }
        String hash = sha256(key);
        for (Map.Entry<String, String> e : appByHash.entrySet()) {
            // Hash lookup would do; the explicit constant-time compare keeps the contract obvious.
            if (MessageDigest.isEqual(e.getKey().getBytes(StandardCharsets.US_ASCII),
                    hash.getBytes(StandardCharsets.US_ASCII))) {
                return e.getValue();
            }
        }
        return null;
    }

    /** The apps that have at least one key. */
    public List<String> apps() {
        return appByHash.values().stream().distinct().sorted().toList();
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
