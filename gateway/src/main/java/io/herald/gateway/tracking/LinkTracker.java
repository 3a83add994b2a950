package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.SetArgs;

import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Tracked short links in SMS texts: each http(s) link of a message's text is replaced by
 * {@code <base>/r/<code>} (a random 10-character code), and the code is stored in Redis with the
 * original URL, the app and the message id, for {@code token-ttl}. {@code GET /r/<code>} answers
 * 302 to the original URL and records a click for the message. The codes are random, so a link
 * cannot be guessed from a message id. Thread-safe; the base URL is set once the server listens.
 */
public final class LinkTracker {
    private static final Pattern URL = Pattern.compile("https?://[^\\s<>\"]+");
    private static final char[] ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789".toCharArray();

    private final Redis redis;
    private final ObjectMapper mapper;
    private final long ttlMillis;
    private final SecureRandom random = new SecureRandom();
    private volatile String base;

    public LinkTracker(Redis redis, ObjectMapper mapper, Duration ttl, String configuredBase) {
        this.redis = redis;
        this.mapper = mapper;
        this.ttlMillis = ttl.toMillis();
        this.base = configuredBase == null || configuredBase.isBlank() ? null : stripSlash(configuredBase);
    }

    /** Sets the base URL from the listening address, unless one was configured. */
    public void listeningOn(String url) {
        if (base == null) {
            base = stripSlash(url);
        }
    }

    private static String stripSlash(String s) {
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }

    /** The text with its links replaced by tracked ones; completes once the codes are stored. */
    public CompletableFuture<String> rewrite(String app, String messageId, String text) {
        Matcher m = URL.matcher(text);
        StringBuilder out = new StringBuilder();
        List<CompletableFuture<String>> writes = new ArrayList<>();
        while (m.find()) {
            String code = code();
            String json = mapper.createObjectNode().put("url", m.group()).put("app", app).put("id", messageId).toString();
            writes.add(redis.async().set(Keys.link(code), json, SetArgs.Builder.px(ttlMillis)).toCompletableFuture());
            m.appendReplacement(out, Matcher.quoteReplacement(base + "/r/" + code));
        }
        m.appendTail(out);
        return CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0])).thenApply(v -> out.toString());
    }

    /** A stored link. */
    public record Link(String url, String app, String messageId) { }

    /** The link of a code, or null when unknown or expired. */
    public CompletableFuture<Link> resolve(String code) {
        if (!code.matches("[A-Za-z0-9]{10}")) {
            return CompletableFuture.completedFuture(null);
        }
        return redis.async().get(Keys.link(code)).toCompletableFuture().thenApply(json -> {
            if (json == null) {
                return null;
            }
            try {
                JsonNode n = mapper.readTree(json);
                return new Link(n.get("url").asText(), n.get("app").asText(), n.get("id").asText());
            } catch (Exception e) {
                return null;
            }
        });
    }

    private String code() {
        char[] c = new char[10];
        for (int i = 0; i < c.length; i++) {
            c[i] = ALPHABET[random.nextInt(ALPHABET.length)];
        }
        return new String(c);
    }
}
