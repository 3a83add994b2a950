package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Every bad input gets its documented status and code, and the good part of a batch still goes. */
@Timeout(120)
class BadInputIT {
    static TestGateway gw;

    @BeforeAll
    static void start() throws Exception {
        gw = new TestGateway("http { max-body-bytes = 65536, max-items-per-batch = 10, request-timeout = 1s }");
    }

    @AfterAll
    static void stop() {
        gw.close();
    }

    private TestGateway.Response post(String body) {
        return gw.post("/v1/batches", body);
    }

    @Test
    void malformedJsonIs400() {
        TestGateway.Response r = post("{\"app\":\"" + gw.app + "\",\"messages\":[");
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.errorCode()).isEqualTo("malformed_json");
    }

    @Test
    void deepNestingIs400WithoutStackOverflow() {
        TestGateway.Response r = post("{\"app\":\"" + gw.app + "\",\"messages\":" + "[".repeat(5000) + "]".repeat(5000) + "}");
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.errorCode()).isEqualTo("malformed_json");
    }

    @Test
    void bodyOverTheLimitIs413() {
        String big = "x".repeat(70_000);
        TestGateway.Response r = post("{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\"u\",\"title\":\"" + big + "\"}]}");
        assertThat(r.status()).isEqualTo(413);
        assertThat(r.errorCode()).isEqualTo("body_too_large");
    }

    @Test
    void tooManyItemsIs413NamingTheLimit() {
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 11; i++) {
            messages.add(TestGateway.msg("u" + i, "t"));
        }
        TestGateway.Response r = post("{\"app\":\"" + gw.app + "\",\"messages\":[" + String.join(",", messages) + "]}");
        assertThat(r.status()).isEqualTo(413);
        assertThat(r.errorCode()).isEqualTo("too_many_items");
        assertThat(r.json().get("error").get("message").asText()).contains("10");
    }

    @Test
    void emptyBatchIs422() {
        TestGateway.Response r = post("{\"app\":\"" + gw.app + "\",\"messages\":[]}");
        assertThat(r.status()).isEqualTo(422);
        assertThat(r.errorCode()).isEqualTo("empty_batch");
    }

    @Test
    void oversizedPayloadAndUnknownFieldFailPerItemWhileTheRestIsDelivered() {
        gw.device("ok1", "phone", TestGateway.token());
        gw.device("ok2", "phone", TestGateway.token());
        String huge = "y".repeat(5000);
        JsonNode r = post("{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("ok1", "a") + ","
                + "{\"user\":\"ok1\",\"title\":\"" + huge + "\"},"
                + "{\"user\":\"ok2\",\"title\":\"t\",\"sneaky\":true},"
                + "{\"user\":\"ok2\",\"title\":\"t\",\"collapseId\":\"" + "c".repeat(65) + "\"},"
                + TestGateway.msg("ok2", "b") + "]}").json();
        assertThat(r.get("accepted").asInt()).isEqualTo(2);
        assertThat(r.get("rejected").asInt()).isEqualTo(3);
        JsonNode items = r.get("messages");
        assertThat(items.get(1).get("error").get("code").asText()).isEqualTo("payload_too_large");
        assertThat(items.get(1).get("error").get("field").asText()).isEqualTo("messages[1]");
        assertThat(items.get(2).get("error").get("code").asText()).isEqualTo("unknown_field");
        assertThat(items.get(2).get("error").get("field").asText()).isEqualTo("messages[2].sneaky");
        assertThat(items.get(3).get("error").get("code").asText()).isEqualTo("collapse_id_too_long");
        String batchId = r.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        JsonNode status = gw.batchStatus(batchId);
        assertThat(status.get("states").get("accepted").asInt()).isEqualTo(2);
        assertThat(status.get("rejected").asInt()).isEqualTo(3);
        // A rejected item has no message.
        String rejectedId = batchId.substring(0, 28) + "00000002";
        assertThat(gw.get("/v1/messages/" + rejectedId).status()).isEqualTo(404);
    }

    @Test
    void aRequestThatNeverCompletesGets408AndTheConnectionIsClosed() throws Exception {
        try (java.net.Socket socket = new java.net.Socket(gw.herald.address().getAddress(), gw.herald.address().getPort())) {
            socket.setSoTimeout(20_000);
            socket.getOutputStream().write(("POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"app\"")
                    .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            socket.getOutputStream().flush();
            // Blocks until the gateway answers and closes (bounded by the socket timeout).
            String response = new String(socket.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            assertThat(response).startsWith("HTTP/1.1 408");
            assertThat(response).contains("\"code\":\"request_timeout\"");
        }
    }

    @Test
    void unknownAppIs404() {
        TestGateway.Response r = post("{\"app\":\"no-such-app\",\"messages\":[" + TestGateway.msg("u", "t") + "]}");
        assertThat(r.status()).isEqualTo(404);
        assertThat(r.errorCode()).isEqualTo("unknown_app");
    }

    @Test
    void missingOrWrongApiKeyIs401WithTheSameMessage() {
        String body = "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("u", "t") + "]}";
        TestGateway.Response missing = gw.send("POST", "/v1/batches", body, null);
        TestGateway.Response wrong = gw.send("POST", "/v1/batches", body, "not-the-key-" + gw.key);
        assertThat(missing.status()).isEqualTo(401);
        assertThat(wrong.status()).isEqualTo(401);
        assertThat(missing.errorCode()).isEqualTo("unauthorized");
        assertThat(wrong.json()).isEqualTo(missing.json());
    }

    @Test
    void anotherAppsBatchMessageAndUsersAre404() {
        gw.device("mine", "phone", TestGateway.token());
        JsonNode r = gw.batch(List.of(TestGateway.msg("mine", "t")));
        String batchId = r.get("batchId").asText();
        String messageId = r.get("messages").get(0).get("id").asText();
        assertThat(gw.send("GET", "/v1/batches/" + batchId, null, gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("GET", "/v1/messages/" + messageId, null, gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("GET", "/v1/apps/" + gw.app + "/users/mine", null, gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("POST", "/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":["
                + TestGateway.msg("mine", "t") + "]}", gw.otherKey).status()).isEqualTo(404);
        // The other app's own view of the same user is empty.
        assertThat(gw.send("GET", "/v1/apps/" + gw.otherApp + "/users/mine", null, gw.otherKey).status()).isEqualTo(404);
    }

    @Test
    void wrongContentTypeIs415AndBadDeviceBodiesAre422() {
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/u/devices/d",
                "{\"platform\":\"apns\",\"token\":\"zz\"}", gw.key);
        assertThat(r.status()).isEqualTo(422);
        assertThat(r.json().get("error").get("field").asText()).isEqualTo("token");
        TestGateway.Response fcm = gw.send("PUT", "/v1/apps/" + gw.app + "/users/u/devices/d",
                "{\"platform\":\"carrier-pigeon\",\"token\":\"" + TestGateway.token() + "\"}", gw.key);
        assertThat(fcm.status()).isEqualTo(422);
        assertThat(fcm.json().get("error").get("field").asText()).isEqualTo("platform");
    }
}
