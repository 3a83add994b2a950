package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Every bad input gets its documented status and code, and the good part of a batch still goes. */
@Timeout(120)
class BadInputIT {
    @RegisterExtension
    static final GatewayExtension gateway =
            GatewayExtension.withConfig("http { max-body-bytes = 65536, max-items-per-batch = 10, request-timeout = 1s }");

    private TestGateway.Response post(TestGateway gw, String body) {
        return gw.post("/v1/batches", body);
    }

    @Test
    void malformedJsonIs400(TestGateway gw) {
        TestGateway.Response r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[");
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.errorCode()).isEqualTo("malformed_json");
    }

    @Test
    void deepNestingIs400WithoutStackOverflow(TestGateway gw) {
        TestGateway.Response r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":" + "[".repeat(5000) + "]".repeat(5000) + "}");
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.errorCode()).isEqualTo("malformed_json");
    }

    @Test
    void bodyOverTheLimitIs413(TestGateway gw) {
        // Far over the limit and several times: the answer must arrive before the connection closes,
        // not be overtaken by a reset for the body the server did not read.
        for (int size : new int[] {70_000, 1_000_000, 4_000_000, 1_000_000, 4_000_000}) {
            String big = "x".repeat(size);
            TestGateway.Response r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\"u\",\"title\":\"" + big + "\"}]}");
            assertThat(r.status()).as("%d bytes", size).isEqualTo(413);
            assertThat(r.errorCode()).isEqualTo("body_too_large");
        }
        assertThat(post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("u", "t") + "]}").status())
                .isEqualTo(202);
    }

    @Test
    void tooManyItemsIs413NamingTheLimit(TestGateway gw) {
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 11; i++) {
            messages.add(TestGateway.msg("u" + i, "t"));
        }
        TestGateway.Response r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[" + String.join(",", messages) + "]}");
        assertThat(r.status()).isEqualTo(413);
        assertThat(r.errorCode()).isEqualTo("too_many_items");
        assertThat(r.json().get("error").get("message").asText()).contains("10");
    }

    @Test
    void emptyBatchIs422(TestGateway gw) {
        TestGateway.Response r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[]}");
        assertThat(r.status()).isEqualTo(422);
        assertThat(r.errorCode()).isEqualTo("empty_batch");
        assertThat(r.json().get("error").get("field").asText()).isEqualTo("messages");
        assertThat(r.json().get("error").get("message").asText()).contains("1..10");
    }

    @Test
    void hugeNumbersAndPropertyNamesAre400NamingTheLimitAndAHugeStringFailsOnlyItsItem(TestGateway gw) {
        TestGateway.Response number = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\"u\",\"title\":\"t\","
                + "\"badge\":" + "9".repeat(40) + "}]}");
        assertThat(number.status()).isEqualTo(400);
        assertThat(number.errorCode()).isEqualTo("malformed_json");
        assertThat(number.json().get("error").get("message").asText()).contains("number too long").contains("32");
        TestGateway.Response name = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\"u\",\"title\":\"t\","
                + "\"data\":{\"" + "k".repeat(300) + "\":1}}]}");
        assertThat(name.status()).isEqualTo(400);
        assertThat(name.json().get("error").get("message").asText()).contains("field name too long").contains("256");
        // A 60 KB string is within the body limit (64 KiB here) and the parser's, but not the payload limit.
        TestGateway.Response string = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("u", "ok") + ","
                + "{\"user\":\"u\",\"title\":\"" + "s".repeat(60_000) + "\"}]}");
        assertThat(string.status()).isEqualTo(202);
        assertThat(string.json().get("accepted").asInt()).isEqualTo(1);
        assertThat(string.json().get("messages").get(1).get("error").get("code").asText()).isEqualTo("payload_too_large");
    }

    @Test
    void badTokensAndAnItemNamingAnAppFailPerItemWhileTheRestIsAccepted(TestGateway gw) {
        JsonNode r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":["
                + "{\"apnsToken\":\"zz-not-hex\",\"title\":\"t\"},"
                + "{\"apnsToken\":\"abc\",\"title\":\"t\"},"
                + "{\"fcmToken\":\"has spaces and ! marks\",\"title\":\"t\"},"
                + "{\"user\":\"u\",\"title\":\"t\",\"app\":\"" + gw.otherApp + "\"},"
                + "{\"apnsToken\":\"" + TestGateway.token() + "\",\"title\":\"t\"}]}").json();
        assertThat(r.get("accepted").asInt()).isEqualTo(1);
        assertThat(r.get("rejected").asInt()).isEqualTo(4);
        JsonNode items = r.get("messages");
        assertThat(items.get(0).get("error").get("field").asText()).isEqualTo("messages[0].apnsToken");
        assertThat(items.get(1).get("error").get("field").asText()).isEqualTo("messages[1].apnsToken");
        assertThat(items.get(2).get("error").get("field").asText()).isEqualTo("messages[2].fcmToken");
        assertThat(items.get(0).get("error").get("code").asText()).isEqualTo("invalid_field");
        // The app is chosen per batch: an item cannot name another one.
        assertThat(items.get(3).get("error").get("code").asText()).isEqualTo("unknown_field");
        assertThat(items.get(3).get("error").get("field").asText()).isEqualTo("messages[3].app");
        assertThat(items.get(4).get("id").asText()).isNotEmpty();
    }

    @Test
    void badUtf8IsRejectedLoneSurrogatesAndNulFailPerItemAndEmojiAndRtlArriveIntact(TestGateway gw) throws Exception {
        // Raw bytes that are not UTF-8 (0xC3 0x28) inside a string: the whole body is malformed.
        byte[] head = ("{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\"u\",\"title\":\"")
                .getBytes(StandardCharsets.UTF_8);
        byte[] tail = "\"}]}".getBytes(StandardCharsets.UTF_8);
        byte[] bad = new byte[head.length + 2 + tail.length];
        System.arraycopy(head, 0, bad, 0, head.length);
        bad[head.length] = (byte) 0xC3;
        bad[head.length + 1] = 0x28;
        System.arraycopy(tail, 0, bad, head.length + 2, tail.length);
        HttpResponse<byte[]> badUtf8 = postBytes(gw, bad);
        assertThat(badUtf8.statusCode()).isEqualTo(400);
        assertThat(strictUtf8(badUtf8.body())).contains("\"code\":\"malformed_json\"");

        gw.device("unicode", "phone", TestGateway.token());
        String title = "Hi 😀 👨‍👩‍👧‍👦 🇬🇧 e\u0301";
        String body = "שלום مرحبا \u202Eevil\u202C \u2028 \"q\" \\ tab\t";
        String json = "{\"app\":\"" + gw.app + "\",\"messages\":["
                + "{\"user\":\"unicode\",\"title\":\"a\\ud800b\"},"
                + "{\"user\":\"unicode\",\"title\":\"a\\u0000b\"},"
                + "{\"user\":\"unicode\",\"title\":\"t\",\"x\\udc00\\u0007\":1},"
                + "{\"user\":\"unicode\",\"title\":" + TestGateway.JSON.writeValueAsString(title) + ",\"body\":"
                + TestGateway.JSON.writeValueAsString(body) + ",\"data\":{\"ключ\":\"😀\"}}]}";
        HttpResponse<byte[]> raw = postBytes(gw, json.getBytes(StandardCharsets.UTF_8));
        assertThat(raw.statusCode()).isEqualTo(202);
        JsonNode r = TestGateway.JSON.readTree(strictUtf8(raw.body()));
        JsonNode items = r.get("messages");
        assertThat(items.get(0).get("error").get("field").asText()).isEqualTo("messages[0].title");
        assertThat(items.get(0).get("error").get("message").asText()).contains("U+D800");
        assertThat(items.get(1).get("error").get("field").asText()).isEqualTo("messages[1].title");
        assertThat(items.get(1).get("error").get("message").asText()).contains("U+0000");
        // The unknown field is named, with its lone surrogate and control character written as escapes.
        assertThat(items.get(2).get("error").get("code").asText()).isEqualTo("unknown_field");
        assertThat(items.get(2).get("error").get("field").asText()).isEqualTo("messages[2].x\\uDC00\\u0007");
        assertNoLoneSurrogate(r);

        UUID id = UUID.fromString(items.get(3).get("id").asText());
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.sandbox().payload(id) != null);
        String payload = gw.sandbox().payload(id);
        assertThat(payload).doesNotContain("\uFFFD");
        JsonNode apns = TestGateway.JSON.readTree(payload);
        assertThat(apns.get("aps").get("alert").get("title").asText()).isEqualTo(title);
        assertThat(apns.get("aps").get("alert").get("body").asText()).isEqualTo(body);
        assertThat(apns.get("ключ").asText()).isEqualTo("😀");
    }

    @Test
    void oversizedPayloadAndUnknownFieldFailPerItemWhileTheRestIsDelivered(TestGateway gw) {
        gw.device("ok1", "phone", TestGateway.token());
        gw.device("ok2", "phone", TestGateway.token());
        String huge = "y".repeat(5000);
        JsonNode r = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("ok1", "a") + ","
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
    void aRequestThatNeverCompletesGets408AndTheConnectionIsClosed(TestGateway gw) throws Exception {
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
    void unknownAppIs404(TestGateway gw) {
        TestGateway.Response r = post(gw, "{\"app\":\"no-such-app\",\"messages\":[" + TestGateway.msg("u", "t") + "]}");
        assertThat(r.status()).isEqualTo(404);
        assertThat(r.errorCode()).isEqualTo("unknown_app");
    }

    @Test
    void missingOrWrongApiKeyIs401WithTheSameMessage(TestGateway gw) throws Exception {
        String body = "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("u", "t") + "]}";
        TestGateway.Response missing = gw.send("POST", "/v1/batches", body, null);
        TestGateway.Response wrong = gw.send("POST", "/v1/batches", body, "not-the-key-" + gw.key);
        assertThat(missing.status()).isEqualTo(401);
        assertThat(wrong.status()).isEqualTo(401);
        assertThat(missing.errorCode()).isEqualTo("unauthorized");
        assertThat(wrong.json()).isEqualTo(missing.json());
        // Other schemes, an empty or oversized key, a key with one character changed: the same answer.
        String changed = gw.key.substring(0, gw.key.length() - 1) + (gw.key.endsWith("0") ? "1" : "0");
        for (String authorization : List.of("Basic " + gw.key, "Bearer", "Bearer ", "Bearer " + "k".repeat(600),
                "Bearer " + changed, gw.key)) {
            HttpResponse<String> r = sendAuthorization(gw, authorization, body);
            assertThat(r.statusCode()).as(authorization).isEqualTo(401);
            assertThat(TestGateway.JSON.readTree(r.body())).as(authorization).isEqualTo(missing.json());
        }
        // The same for a read, whether or not the resource exists.
        assertThat(gw.send("GET", "/v1/batches/" + UUID.randomUUID(), null, "nope").json()).isEqualTo(missing.json());
    }

    @Test
    void anotherAppsBatchMessageAndUsersAre404(TestGateway gw) {
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
        assertThat(gw.send("GET", "/v1/batches/" + batchId + "/funnel", null, gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("PUT", "/v1/apps/" + gw.app + "/users/mine/devices/evil",
                "{\"platform\":\"apns\",\"token\":\"" + TestGateway.token() + "\"}", gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("PUT", "/v1/apps/" + gw.app + "/users/mine", "{\"locale\":\"en-GB\"}", gw.otherKey).status())
                .isEqualTo(404);
        assertThat(gw.send("DELETE", "/v1/apps/" + gw.app + "/users/mine", null, gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("POST", "/v1/apps/" + gw.app + "/users", "{\"users\":[{\"user\":\"x\"}]}", gw.otherKey)
                .status()).isEqualTo(404);
        assertThat(gw.send("GET", "/v1/apps/" + gw.app + "/webhook/dead", null, gw.otherKey).status()).isEqualTo(404);
        // Nothing the other tenant tried changed the user.
        JsonNode user = gw.get("/v1/apps/" + gw.app + "/users/mine").json();
        assertThat(user.toString()).doesNotContain("evil").doesNotContain("en-GB");
    }

    @Test
    void unknownAndPrivilegedFieldsAreRejectedNeverApplied(TestGateway gw) {
        TestGateway.Response top = post(gw, "{\"app\":\"" + gw.app + "\",\"priority\":\"high\",\"messages\":["
                + TestGateway.msg("u", "t") + "]}");
        assertThat(top.status()).isEqualTo(422);
        assertThat(top.errorCode()).isEqualTo("unknown_field");
        assertThat(top.json().get("error").get("field").asText()).isEqualTo("priority");

        JsonNode items = post(gw, "{\"app\":\"" + gw.app + "\",\"messages\":["
                + "{\"user\":\"u\",\"title\":\"t\",\"state\":\"delivered\"},"
                + "{\"user\":\"u\",\"title\":\"t\",\"reserved\":true},"
                + "{\"user\":\"u\",\"title\":\"t\",\"android\":{\"priority\":\"HIGH\"}},"
                + TestGateway.msg("u", "t") + "]}").json();
        assertThat(items.get("accepted").asInt()).isEqualTo(1);
        assertThat(items.get("messages").get(0).get("error").get("field").asText()).isEqualTo("messages[0].state");
        assertThat(items.get("messages").get(1).get("error").get("field").asText()).isEqualTo("messages[1].reserved");
        assertThat(items.get("messages").get(2).get("error").get("field").asText())
                .isEqualTo("messages[2].android.priority");

        // A device cannot be registered already invalidated, nor a user's devices set through the profile.
        TestGateway.Response device = gw.send("PUT", "/v1/apps/" + gw.app + "/users/privileged/devices/d",
                "{\"platform\":\"apns\",\"token\":\"" + TestGateway.token() + "\",\"status\":\"invalidated\"}", gw.key);
        assertThat(device.status()).isEqualTo(422);
        assertThat(device.errorCode()).isEqualTo("unknown_field");
        assertThat(device.json().get("error").get("field").asText()).isEqualTo("status");
        TestGateway.Response profile = gw.send("PUT", "/v1/apps/" + gw.app + "/users/privileged",
                "{\"locale\":\"en-GB\",\"devices\":{}}", gw.key);
        assertThat(profile.status()).isEqualTo(422);
        assertThat(profile.errorCode()).isEqualTo("unknown_field");
        assertThat(gw.get("/v1/apps/" + gw.app + "/users/privileged").status()).as("nothing was applied").isEqualTo(404);

        // A receipt cannot claim where it came from (source) or set a state directly.
        String id = UUID.randomUUID().toString();
        TestGateway.Response receipt = gw.send("POST", "/v1/receipts", "{\"receipts\":[{\"messageId\":\"" + id
                + "\",\"event\":\"clicked\",\"token\":\"t\",\"source\":\"link\"}]}", null);
        assertThat(receipt.status()).isEqualTo(422);
        JsonNode error = receipt.json().get("receipts").get(0).get("error");
        assertThat(error.get("code").asText()).isEqualTo("unknown_field");
        assertThat(error.get("field").asText()).isEqualTo("receipts[0].source");
    }

    @Test
    void aClickBeforeTheDeliveredReceiptMovesStateForwardOnlyAndRepeatsAreNoOps(TestGateway gw) {
        gw.device("clicker", "phone", TestGateway.token());
        String id = gw.batch(List.of(TestGateway.msg("clicker", "t"))).get("messages").get(0).get("id").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.message(id).get("state").asText().equals("accepted"));
        String token = TestGateway.receiptTokens().sign(id, "clicker", System.currentTimeMillis() / 1000 + 3600);
        assertThat(receipt(gw, id, "clicked", token)).isEqualTo("applied");
        assertThat(receipt(gw, id, "delivered", token)).isEqualTo("no_change");
        assertThat(receipt(gw, id, "opened", token)).isEqualTo("no_change");
        assertThat(receipt(gw, id, "clicked", token)).isEqualTo("no_change");
        assertThat(gw.message(id).get("state").asText()).isEqualTo("clicked");
    }

    /** Posts one device receipt; returns its result ("applied", "no_change"), failing on any other answer. */
    private String receipt(TestGateway gw, String id, String event, String token) {
        TestGateway.Response r = gw.send("POST", "/v1/receipts", "{\"receipts\":[{\"messageId\":\"" + id
                + "\",\"event\":\"" + event + "\",\"token\":\"" + token + "\"}]}", null);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json().get("receipts").get(0).get("result").asText();
    }

    private HttpResponse<byte[]> postBytes(TestGateway gw, byte[] body) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(gw.herald.baseUrl() + "/v1/batches"))
                .timeout(Duration.ofSeconds(30)).header("Authorization", "Bearer " + gw.key)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.ofByteArray());
    }

    private HttpResponse<String> sendAuthorization(TestGateway gw, String authorization, String body) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(gw.herald.baseUrl() + "/v1/batches"))
                .timeout(Duration.ofSeconds(30)).header("Authorization", authorization)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Fails on a lone surrogate (an escaped one, once parsed) in any string or name of the tree. */
    private static void assertNoLoneSurrogate(JsonNode node) {
        java.util.regex.Pattern lone = java.util.regex.Pattern.compile("\\p{Cs}");
        if (node.isTextual()) {
            assertThat(lone.matcher(node.textValue()).find()).as(node.textValue()).isFalse();
        }
        node.fields().forEachRemaining(e -> {
            assertThat(lone.matcher(e.getKey()).find()).as(e.getKey()).isFalse();
            assertNoLoneSurrogate(e.getValue());
        });
        if (node.isArray()) {
            node.elements().forEachRemaining(BadInputIT::assertNoLoneSurrogate);
        }
    }

    /** Decodes strictly: an answer that is not valid UTF-8 fails the test. */
    private static String strictUtf8(byte[] bytes) throws Exception {
        return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
    }

    @Test
    void wrongContentTypeIs415AndBadDeviceBodiesAre422(TestGateway gw) {
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
