package io.herald.loadtest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * A minimal client of the Herald HTTP API for the load driver: device and phone registration
 * (one user at a time or bulk import), batch intake and batch status, over {@link HttpClient} with HTTP/1.1 keep-alive connections and
 * {@code Authorization: Bearer <key>}.
 *
 * <p>Contract: it only talks to loopback gateways; {@link #create} refuses a base URL whose host
 * is not {@code 127.0.0.1}, {@code localhost} or {@code ::1} (a load generator aimed at a shared
 * or production host by mistake does real damage). Responses are returned raw (status, headers,
 * body parsed as JSON when it is JSON) so the caller decides what a status means; transport
 * failures complete the futures exceptionally.
 *
 * <p>Thread-safe: one instance is shared by every sender and the poller; the underlying
 * {@link HttpClient} pools connections (HTTP/1.1 opens one connection per concurrent request).
 * Not {@link AutoCloseable}: on Java 17 an {@link HttpClient} is released by garbage collection,
 * its worker threads being daemons.
 */
public final class HeraldClient {
    /** A response: status, {@code Retry-After} in seconds (-1 when absent), JSON body or null. */
    public record Response(int status, int retryAfterSeconds, JsonNode json, String raw) {
        /** The body, shortened for error messages. */
        public String snippet() {
            String s = raw == null ? "" : raw.replaceAll("\\s+", " ");
            return s.length() <= 300 ? s : s.substring(0, 300) + "...";
        }
    }

    private final HttpClient http;
    private final URI base;
    private final String authorization;
    private final Duration requestTimeout;
    private final ObjectMapper mapper;

    private HeraldClient(HttpClient http, URI base, String apiKey, Duration requestTimeout, ObjectMapper mapper) {
        this.http = http;
        this.base = base;
        this.authorization = "Bearer " + apiKey;
        this.requestTimeout = requestTimeout;
        this.mapper = mapper;
    }

    /**
     * A client for the gateway at {@code baseUrl} ({@code http://host:port}).
     *
     * @throws IllegalArgumentException if the URL is not http(s) or its host is not loopback
     */
    public static HeraldClient create(String baseUrl, String apiKey, Duration requestTimeout, Executor executor,
                                      ObjectMapper mapper) {
        URI uri = requireLoopback(baseUrl);
        HttpClient http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .executor(executor)
                .build();
        return new HeraldClient(http, uri, apiKey, requestTimeout, mapper);
    }

    /**
     * Parses {@code url} and checks that it targets this machine over loopback.
     *
     * @throws IllegalArgumentException naming the offending part otherwise
     */
    public static URI requireLoopback(String url) {
        URI uri;
        try {
            uri = URI.create(url.endsWith("/") ? url.substring(0, url.length() - 1) : url);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--url: '" + url + "' is not a URL (expected: http://127.0.0.1:PORT)");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) {
            throw new IllegalArgumentException("--url: '" + url + "' (expected: http://127.0.0.1:PORT)");
        }
        String host = uri.getHost();
        if (host == null) {
            throw new IllegalArgumentException("--url: '" + url + "' has no host (expected: http://127.0.0.1:PORT)");
        }
        String h = host.toLowerCase(Locale.ROOT);
        if (h.startsWith("[") && h.endsWith("]")) {
            h = h.substring(1, h.length() - 1);
        }
        boolean loopback = h.equals("localhost") || h.equals("127.0.0.1");
        if (!loopback && h.contains(":")) {
            try {
                // IPv6 literal: accept every spelling of ::1 (no DNS lookup happens for a literal).
                loopback = InetAddress.getByName(h).equals(InetAddress.getByName("::1"));
            } catch (UnknownHostException e) {
                loopback = false;
            }
        }
        if (!loopback) {
            throw new IllegalArgumentException("--url: host '" + host + "' refused: the load test only targets "
                    + "loopback (127.0.0.1, localhost or ::1)");
        }
        return uri;
    }

    /** The gateway's base URL. */
    public URI base() {
        return base;
    }

    /**
     * {@code PUT /v1/apps/{app}/users/{user}/devices/{device}} with {@code {"platform", "token"}}
     * ({@code platform} is {@code apns} or {@code fcm}; the caller passes names and a token that
     * need no escaping: the load driver's own {@code u<n>}, {@code d1}, hex or {@code [A-Za-z0-9_:-]}).
     */
    public CompletableFuture<Response> putDevice(String app, String user, String device, String platform,
                                                 String token) {
        String body = "{\"platform\":\"" + platform + "\",\"token\":\"" + token + "\"}";
        HttpRequest req = request("/v1/apps/" + app + "/users/" + user + "/devices/" + device)
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8))
                .build();
        return send(req);
    }

    /** {@code PUT /v1/apps/{app}/users/{user}} with {@code {"phone": <E.164>}}. */
    public CompletableFuture<Response> putPhone(String app, String user, String phone) {
        String body = "{\"phone\":\"" + phone + "\"}";
        HttpRequest req = request("/v1/apps/" + app + "/users/" + user)
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8))
                .build();
        return send(req);
    }

    /** {@code POST /v1/apps/{app}/users} (bulk import) with a prepared {@code {"users":[...]}} body. */
    public CompletableFuture<Response> importUsers(String app, byte[] body) {
        HttpRequest req = request("/v1/apps/" + app + "/users")
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body))
                .build();
        return send(req);
    }

    /** {@code PUT /v1/apps/{app}/policy} (the app's delivery policy). */
    public CompletableFuture<Response> putPolicy(String app, String body) {
        HttpRequest req = request("/v1/apps/" + app + "/policy")
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8))
                .build();
        return send(req);
    }

    /**
     * {@code POST /v1/batches} with a prepared JSON body and, when not null, an
     * {@code Idempotency-Key} (a retried batch with the same key is answered, not sent, again).
     */
    public CompletableFuture<Response> postBatch(byte[] body, String idempotencyKey) {
        HttpRequest.Builder req = request("/v1/batches")
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (idempotencyKey != null) {
            req.header("Idempotency-Key", idempotencyKey);
        }
        return send(req.build());
    }

    /** Any call: {@code method path} with a JSON body (or none), as {@code key} (null: this client's key). */
    public CompletableFuture<Response> call(String method, String path, String body, String key) {
        HttpRequest.Builder req = HttpRequest.newBuilder(base.resolve(path)).timeout(requestTimeout)
                .header("Authorization", key == null ? authorization : "Bearer " + key)
                .header("Accept", "application/json");
        if (body != null) {
            req.header("Content-Type", "application/json").method(method,
                    HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        } else {
            req.method(method, HttpRequest.BodyPublishers.noBody());
        }
        return send(req.build());
    }

    /** {@code GET /v1/batches/{id}}. */
    public CompletableFuture<Response> getBatch(String batchId) {
        return send(request("/v1/batches/" + batchId).GET().build());
    }

    private HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(base.resolve(path))
                .timeout(requestTimeout)
                .header("Authorization", authorization)
                .header("Accept", "application/json");
    }

    private CompletableFuture<Response> send(HttpRequest req) {
        return http.sendAsync(req, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8)).thenApply(r -> {
            int retryAfter = r.headers().firstValue("Retry-After").map(HeraldClient::seconds).orElse(-1);
            JsonNode json = null;
            String raw = r.body();
            if (raw != null && !raw.isEmpty() && r.headers().firstValue("Content-Type")
                    .map(ct -> ct.contains("json")).orElse(false)) {
                try {
                    json = mapper.readTree(raw);
                } catch (IOException e) {
                    json = null; // left to the caller: status says what happened, raw shows the body
                }
            }
            return new Response(r.statusCode(), retryAfter, json, raw);
        });
    }

    private static int seconds(String value) {
        try {
            return Math.max(0, Integer.parseInt(value.trim()));
        } catch (NumberFormatException e) {
            return -1; // HTTP-date form: the caller falls back to its default delay
        }
    }
}
