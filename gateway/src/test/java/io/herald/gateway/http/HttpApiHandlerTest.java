package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.config.HeraldConfig;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicReference;

import static io.herald.gateway.http.Routes.Access.OPS;
import static io.herald.gateway.http.Routes.Access.PUBLIC;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * The router and the response writer on an {@link EmbeddedChannel}: route matching, path
 * parameters, 404 / 405 + Allow / 401 / 503 applied once by the router, and what the writer puts on
 * the wire. Real {@link ApiKeys} and {@link Readiness}; the routes are small handlers of the test's own.
 */
class HttpApiHandlerTest {
    static final String KEY = "key-for-demo-0123456789";
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    final Readiness readiness = new Readiness();
    final ExecutorService intake = Executors.newSingleThreadExecutor();
    final AtomicReference<Exchange> held = new AtomicReference<>();
    HttpApiHandler handler;

    @BeforeEach
    void router() {
        ApiKeys keys = ApiKeys.load(HeraldConfig.load(null, Map.of("data-dir", dir.toString()),
                List.of(new HeraldConfig.InitialKey("demo", KEY))));
        Routes routes = new Routes()
                .get("/healthz", OPS, x -> x.json(HttpResponseStatus.OK, Map.of("status", "ok")))
                .post("/v1/receipts", PUBLIC, x -> x.json(HttpResponseStatus.OK, Map.of("public", true)))
                .get("/v1/apps/{app}/users/{user}", ApiKeys.Role.READ, this::echo)
                .put("/v1/apps/{app}/users/{user}", ApiKeys.Role.MANAGE, this::echo)
                .delete("/v1/apps/{app}/users/{user}", ApiKeys.Role.MANAGE, this::echo)
                .put("/v1/apps/{app}/policy", ApiKeys.Role.ADMIN, this::echo)
                .get("/v1/later", ApiKeys.Role.READ, held::set)
                .get("/v1/headers", ApiKeys.Role.READ, x -> x.header(HttpHeaderNames.RETRY_AFTER, 1)
                        .header(HttpHeaderNames.LOCATION, "https://example.com/").empty(HttpResponseStatus.FOUND))
                .get("/v1/twice", ApiKeys.Role.READ, x -> {
                    x.json(HttpResponseStatus.OK, Map.of("n", 1));
                    x.json(HttpResponseStatus.OK, Map.of("n", 2));
                })
                .get("/v1/bug", ApiKeys.Role.READ, x -> {
                    throw new IllegalStateException("a bug in a handler");
                });
        handler = new HttpApiHandler(routes, keys, readiness, JSON, intake);
    }

    @AfterEach
    void close() {
        handler.close();
    }

    private void echo(Exchange x) {
        x.json(HttpResponseStatus.OK, Map.of("app", x.app(), "pathApp", x.param("app"), "user", x.param("user"),
                "q", String.valueOf(x.query("q"))));
    }

    private static FullHttpRequest request(HttpMethod method, String uri, String key) {
        FullHttpRequest req = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, method, uri, Unpooled.EMPTY_BUFFER);
        if (key != null) {
            req.headers().set(HttpHeaderNames.AUTHORIZATION, "Bearer " + key);
        }
        return req;
    }

    /** The answer's status, headers and body; the response buffer is released. */
    record Answer(int status, io.netty.handler.codec.http.HttpHeaders headers, String body) {
        JsonNode json() throws Exception {
            return JSON.readTree(body);
        }

        String errorCode() throws Exception {
            return json().path("error").path("code").asText(null);
        }
    }

    private static Answer answer(EmbeddedChannel ch) {
        FullHttpResponse resp = ch.readOutbound();
        assertThat(resp).as("an answer was written").isNotNull();
        try {
            return new Answer(resp.status().code(), resp.headers().copy(), resp.content().toString(StandardCharsets.UTF_8));
        } finally {
            resp.release();
        }
    }

    private Answer send(EmbeddedChannel ch, HttpMethod method, String uri, String key) {
        ch.writeInbound(request(method, uri, key));
        return answer(ch);
    }

    @Test
    void pathParametersArePercentDecodedPerSegmentWithPlusKeptAndTheQueryIsRead() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        Answer a = send(ch, HttpMethod.GET, "/v1/apps/demo/users/a%2Fb+c%20d%C3%A9?q=x%20y", KEY);
        assertThat(a.status()).isEqualTo(200);
        assertThat(a.json().get("user").asText()).isEqualTo("a/b+c dé");
        assertThat(a.json().get("pathApp").asText()).isEqualTo("demo");
        assertThat(a.json().get("app").asText()).as("the key's app").isEqualTo("demo");
        assertThat(a.json().get("q").asText()).isEqualTo("x y");
        assertThat(send(ch, HttpMethod.PUT, "/v1/apps/demo/users/u", KEY).status()).isEqualTo(200);
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void aKeyWithoutTheRoleARouteNeedsIs403NamingTheRole() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        Answer a = send(ch, HttpMethod.PUT, "/v1/apps/demo/policy", KEY);
        assertThat(a.status()).isEqualTo(403);
        assertThat(a.errorCode()).isEqualTo("forbidden");
        assertThat(a.json().get("error").get("message").asText()).contains("lacks the role 'admin'")
                .contains("PUT /v1/apps/{app}/policy").contains("its roles: send, manage, read");
        assertThat(send(ch, HttpMethod.PUT, "/v1/apps/demo/policy", "wrong-key").status()).isEqualTo(401);
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void unknownPathsAndSegmentsThatDoNotDecodeAre404() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        for (String uri : List.of("/nope", "/v1/apps/demo/users", "/v1/apps/demo/users/u/extra",
                "/v1/apps/demo/users/", "/v1/apps/demo/users/bad%zz", "/healthz/")) {
            Answer a = send(ch, HttpMethod.GET, uri, KEY);
            assertThat(a.status()).as(uri).isEqualTo(404);
            assertThat(a.errorCode()).as(uri).isEqualTo("not_found");
            assertThat(a.headers().get(HttpHeaderNames.CONTENT_TYPE)).isEqualTo("application/json");
        }
        assertThat(send(ch, HttpMethod.GET, "/nope", null).status()).as("without a key too").isEqualTo(404);
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void aWrongMethodOnAKnownPathIs405WithAllowListingTheRoutedMethods() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        Answer a = send(ch, HttpMethod.POST, "/v1/apps/demo/users/u", KEY);
        assertThat(a.status()).isEqualTo(405);
        assertThat(a.errorCode()).isEqualTo("method_not_allowed");
        assertThat(a.headers().get(HttpHeaderNames.ALLOW)).isEqualTo("GET, PUT, DELETE");
        Answer health = send(ch, HttpMethod.POST, "/healthz", null);
        assertThat(health.status()).isEqualTo(405);
        assertThat(health.headers().get(HttpHeaderNames.ALLOW)).isEqualTo("GET");
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void aMissingOrWrongKeyIs401WithTheSameAnswerAndTheHandlerDoesNotRun() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        Answer missing = send(ch, HttpMethod.GET, "/v1/later", null);
        Answer wrong = send(ch, HttpMethod.GET, "/v1/later", KEY + "x");
        assertThat(missing.status()).isEqualTo(401);
        assertThat(missing.errorCode()).isEqualTo("unauthorized");
        assertThat(wrong.status()).isEqualTo(401);
        assertThat(wrong.json()).isEqualTo(missing.json());
        assertThat(held.get()).as("the handler never ran").isNull();
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void publicAndOpsRoutesNeedNoKey() {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        assertThat(send(ch, HttpMethod.POST, "/v1/receipts", null).status()).isEqualTo(200);
        assertThat(send(ch, HttpMethod.GET, "/healthz", null).status()).isEqualTo(200);
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void whileDrainingApiAndPublicRoutesAre503WithRetryAfterAndOpsRoutesAreServed() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        readiness.drain();
        for (Answer a : List.of(send(ch, HttpMethod.GET, "/v1/apps/demo/users/u", KEY),
                send(ch, HttpMethod.POST, "/v1/receipts", null))) {
            assertThat(a.status()).isEqualTo(503);
            assertThat(a.errorCode()).isEqualTo("unavailable");
            assertThat(a.headers().get(HttpHeaderNames.RETRY_AFTER)).isEqualTo("1");
        }
        assertThat(send(ch, HttpMethod.GET, "/v1/later", null).status()).as("the key is checked first").isEqualTo(401);
        assertThat(send(ch, HttpMethod.GET, "/healthz", null).status()).isEqualTo(200);
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void theConnectionDoesNotReadUntilTheAnswerIsWrittenAndThenReadsAgain() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        ch.writeInbound(request(HttpMethod.GET, "/v1/later?q=1", KEY));
        assertThat((Object) ch.readOutbound()).as("not answered yet").isNull();
        assertThat(ch.config().isAutoRead()).isFalse();
        held.get().json(HttpResponseStatus.ACCEPTED, Map.of("done", true));
        Answer a = answer(ch);
        assertThat(a.status()).isEqualTo(202);
        assertThat(a.json().get("done").asBoolean()).isTrue();
        assertThat(a.headers().getInt(HttpHeaderNames.CONTENT_LENGTH)).isEqualTo(a.body().length());
        assertThat(ch.config().isAutoRead()).isTrue();
        assertThat(ch.isOpen()).isTrue();
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void headersSetBeforeTheAnswerGoWithItAndConnectionCloseClosesAfterIt() {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        FullHttpRequest req = request(HttpMethod.GET, "/v1/headers", KEY);
        req.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        ch.writeInbound(req);
        Answer a = answer(ch);
        assertThat(a.status()).isEqualTo(302);
        assertThat(a.headers().get(HttpHeaderNames.LOCATION)).isEqualTo("https://example.com/");
        assertThat(a.headers().get(HttpHeaderNames.RETRY_AFTER)).isEqualTo("1");
        assertThat(a.headers().get(HttpHeaderNames.CONNECTION)).isEqualTo("close");
        assertThat(a.headers().get(HttpHeaderNames.CONTENT_TYPE)).isNull();
        assertThat(a.body()).isEmpty();
        assertThat(ch.isOpen()).isFalse();
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void aSecondAnswerIsDroppedAndAHandlerBugIs500() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        Answer first = send(ch, HttpMethod.GET, "/v1/twice", KEY);
        assertThat(first.json().get("n").asInt()).isEqualTo(1);
        assertThat((Object) ch.readOutbound()).as("one answer per request").isNull();
        Answer bug = send(ch, HttpMethod.GET, "/v1/bug", KEY);
        assertThat(bug.status()).isEqualTo(500);
        assertThat(bug.errorCode()).isEqualTo("internal");
        assertThat(bug.body()).doesNotContain("a bug in a handler");
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void aQueryStringThatDoesNotDecodeIs400() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel(handler);
        Answer a = send(ch, HttpMethod.GET, "/v1/apps/demo/users/u?q=%zz", KEY);
        assertThat(a.status()).isEqualTo(400);
        assertThat(a.errorCode()).isEqualTo("invalid_field");
        assertFalse(ch.finishAndReleaseAll());
    }

    @Test
    void aRouteCannotBeAddedTwice() {
        Routes r = new Routes().get("/v1/x/{id}", ApiKeys.Role.READ, x -> { });
        assertThatThrownBy(() -> r.get("/v1/x/{id}", PUBLIC, x -> { })).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("already routed");
    }
}
