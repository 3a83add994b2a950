package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.audience.Rule;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Set;
import java.util.TreeMap;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * An app's audiences ({@link Audiences}): saved rules ({@code POST/GET /v1/apps/{app}/audiences},
 * {@code GET/PUT/DELETE .../audiences/{id}}), estimates of a saved or an inline rule
 * ({@code GET .../audiences/{id}/estimate}, {@code POST .../audiences/estimate}) and paging
 * through members ({@code GET .../audiences/{id}/members?cursor=&limit=}). A rule is parsed when
 * it is saved or estimated: a syntax error is 422 {@code invalid_rule} with its column.
 *
 * <p>Stateless; thread-safe. Handlers run on the event loop and answer from Redis callbacks.
 */
final class AudiencesApi {
    /** Most saved audiences per app. */
    static final int MAX_AUDIENCES = 1000;
    /** Users in an estimate's sample. */
    static final int SAMPLE = 10;
    /** Default and largest members page. */
    static final int PAGE = 1000;
    static final int MAX_PAGE = 10_000;

    private static final Set<String> FIELDS = Set.of("name", "rule");
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Audiences audiences;

    AudiencesApi(Audiences audiences) {
        this.audiences = audiences;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/audiences", MANAGE, this::create);
        r.get("/v1/apps/{app}/audiences", READ, this::list);
        r.post("/v1/apps/{app}/audiences/estimate", READ, this::estimateInline);
        r.get("/v1/apps/{app}/audiences/{id}", READ, this::read);
        r.put("/v1/apps/{app}/audiences/{id}", MANAGE, this::replace);
        r.delete("/v1/apps/{app}/audiences/{id}", MANAGE, this::delete);
        r.get("/v1/apps/{app}/audiences/{id}/estimate", READ, this::estimateSaved);
        r.get("/v1/apps/{app}/audiences/{id}/members", READ, this::members);
    }

    /** A validated body: name and rule text, and the parsed rule. */
    private record Body(String name, String rule, Rule.Node node) {
    }

    /** Reads {name, rule} (name optional when {@code needName} is false); null once an error is answered. */
    private static Body body(Exchange x, boolean needName) {
        if (!x.jsonContent()) {
            return null;
        }
        JsonNode b = x.jsonObject();
        if (b == null) {
            return null;
        }
        for (Iterator<String> it = b.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.UNKNOWN_FIELD, f,
                        f + ": unknown field (expected: " + (needName ? "name, rule" : "rule") + ")"));
                return null;
            }
        }
        String name = null;
        if (needName) {
            JsonNode n = b.get("name");
            if (n == null || !n.isTextual() || n.asText().isBlank() || n.asText().length() > 128) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(n == null ? ErrorCode.MISSING_FIELD
                        : ErrorCode.INVALID_FIELD, "name", "name: required, 1..128 characters"));
                return null;
            }
            name = n.asText();
        }
        JsonNode rule = b.get("rule");
        if (rule == null || !rule.isTextual()) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(rule == null ? ErrorCode.MISSING_FIELD
                    : ErrorCode.INVALID_FIELD, "rule", "rule: required string, e.g. \"tag:vip AND NOT tag:churned\""));
            return null;
        }
        try {
            return new Body(name, rule.asText(), Rule.parse(rule.asText()));
        } catch (Rule.RuleException e) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_RULE, "rule",
                    "rule: " + e.getMessage()));
            return null;
        }
    }

    private void create(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        Body b = body(x, true);
        if (b == null) {
            return;
        }
        String app = x.app();
        String id = "aud_" + HexFormat.of().formatHex(random());
        long now = System.currentTimeMillis();
        ObjectNode json = x.mapper().createObjectNode().put("id", id).put("name", b.name()).put("rule", b.rule())
                .put("createdAt", now).put("updatedAt", now);
        audiences.size(app).thenCompose(n -> {
            if (n >= MAX_AUDIENCES) {
                return java.util.concurrent.CompletableFuture.completedFuture(false);
            }
            return audiences.save(app, id, json.toString()).thenApply(v -> true);
        }).whenComplete((saved, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (!saved) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.TOO_MANY_ITEMS, null,
                        "audiences: an app may save at most " + MAX_AUDIENCES + " (delete one first)"));
            } else {
                x.header("Location", "/v1/apps/" + app + "/audiences/" + id);
                x.json(HttpResponseStatus.CREATED, json);
            }
        });
    }

    private static byte[] random() {
        byte[] b = new byte[8];
        RANDOM.nextBytes(b);
        return b;
    }

    private void list(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        audiences.list(x.app()).whenComplete((all, e) -> {
            if (e != null) {
                x.unavailable(e);
                return;
            }
            ObjectNode out = x.mapper().createObjectNode();
            ArrayNode arr = out.putArray("audiences");
            new TreeMap<>(all).values().forEach(j -> arr.add(parse(x, j)));
            x.json(HttpResponseStatus.OK, out);
        });
    }

    private static JsonNode parse(Exchange x, String json) {
        try {
            return x.mapper().readTree(json);
        } catch (IOException e) {
            throw new IllegalStateException("stored audience is not JSON", e);
        }
    }

    private void read(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        audiences.get(x.app(), x.param("id")).whenComplete((j, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (j == null) {
                x.notFound("audience");
            } else {
                x.json(HttpResponseStatus.OK, parse(x, j));
            }
        });
    }

    private void replace(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        Body b = body(x, true);
        if (b == null) {
            return;
        }
        String app = x.app();
        String id = x.param("id");
        audiences.get(app, id).thenCompose(j -> {
            if (j == null) {
                return java.util.concurrent.CompletableFuture.<ObjectNode>completedFuture(null);
            }
            ObjectNode json = (ObjectNode) parse(x, j);
            json.put("name", b.name()).put("rule", b.rule()).put("updatedAt", System.currentTimeMillis());
            return audiences.save(app, id, json.toString()).thenApply(v -> json);
        }).whenComplete((json, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (json == null) {
                x.notFound("audience");
            } else {
                x.json(HttpResponseStatus.OK, json);
            }
        });
    }

    private void delete(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        audiences.delete(x.app(), x.param("id")).whenComplete((deleted, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (!deleted) {
                x.notFound("audience");
            } else {
                x.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    private void estimateInline(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        Body b = body(x, false);
        if (b != null) {
            estimate(x, b.node());
        }
    }

    private void estimateSaved(Exchange x) {
        withSaved(x, node -> estimate(x, node));
    }

    /** Runs {@code then} with a saved audience's parsed rule, or answers 404. */
    private void withSaved(Exchange x, java.util.function.Consumer<Rule.Node> then) {
        if (!x.ownApp()) {
            return;
        }
        audiences.get(x.app(), x.param("id")).whenComplete((j, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (j == null) {
                x.notFound("audience");
            } else {
                try {
                    then.accept(Rule.parse(parse(x, j).path("rule").asText()));
                } catch (Rule.RuleException bad) {
                    x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_RULE, "rule",
                            "rule: " + bad.getMessage()));
                }
            }
        });
    }

    private void estimate(Exchange x, Rule.Node node) {
        String app = x.app();
        long start = System.nanoTime();
        audiences.count(app, node).thenCompose(c -> {
            long ms = (System.nanoTime() - start) / 1_000_000;
            return audiences.sample(app, c, SAMPLE).thenApply(sample -> {
                ObjectNode out = x.mapper().createObjectNode();
                out.put("count", c.count());
                ArrayNode s = out.putArray("sample");
                sample.forEach(s::add);
                out.put("computedInMs", ms);
                return out;
            });
        }).whenComplete((out, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, out);
            }
        });
    }

    private void members(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String cursor = x.query("cursor");
        String limitText = x.query("limit");
        long after;
        int limit;
        try {
            after = cursor == null || cursor.isEmpty() ? -1 : decodeCursor(cursor);
        } catch (IllegalArgumentException e) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "cursor",
                    "cursor: not a cursor this API gave (pass the 'next' of the previous page)"));
            return;
        }
        try {
            limit = limitText == null ? PAGE : Integer.parseInt(limitText);
            if (limit < 1 || limit > MAX_PAGE) {
                throw new NumberFormatException();
            }
        } catch (NumberFormatException e) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "limit",
                    "limit: expected 1.." + MAX_PAGE));
            return;
        }
        String app = x.app();
        withSaved(x, node -> audiences.members(app, node, after, limit).whenComplete((page, e) -> {
            if (e != null) {
                x.unavailable(e);
                return;
            }
            ObjectNode out = x.mapper().createObjectNode();
            ArrayNode users = out.putArray("users");
            page.users().forEach(users::add);
            if (page.next() >= 0) {
                out.put("next", encodeCursor(page.next()));
            } else {
                out.putNull("next");
            }
            x.json(HttpResponseStatus.OK, out);
        }));
    }

    static String encodeCursor(long after) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(("i" + after).getBytes(StandardCharsets.US_ASCII));
    }

    static long decodeCursor(String cursor) {
        String s = new String(Base64.getUrlDecoder().decode(cursor), StandardCharsets.US_ASCII);
        if (!s.startsWith("i")) {
            throw new IllegalArgumentException("not a cursor");
        }
        try {
            long v = Long.parseLong(s.substring(1));
            if (v < 0) {
                throw new IllegalArgumentException("negative");
            }
            return v;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(e);
        }
    }
}
