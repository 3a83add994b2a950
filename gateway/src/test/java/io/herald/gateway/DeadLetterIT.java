package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.sandbox.SandboxApns.Answer;
import io.herald.gateway.tracking.MessageIds;
import io.lettuce.core.Range;
import io.lettuce.core.RedisClient;
import io.lettuce.core.StreamMessage;
import io.lettuce.core.api.sync.RedisCommands;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Dead letters: a message that exhausts its retries, a journaled message that no longer decodes and
 * a journal entry that never settles are kept (failed, with reason, listed per app), never dropped
 * and never blocking; a redrive sends them again through the journal, once.
 */
@Timeout(180)
class DeadLetterIT {
    /** These tests send a handful of messages; small rings keep the restarted gateways' heap small. */
    static final String SMALL = "pipeline.capacity = 1024\nhttp.max-items-per-batch = 1024\n";
    /** A gateway per test: some restart theirs. Tests that need other settings say so with {@code @Config}. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig(SMALL).perTest();

    private String send(TestGateway gw, String user, int n) {
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            messages.add(TestGateway.msg(user, "m" + i));
        }
        return gw.batch(messages).get("batchId").asText();
    }

    private void awaitDone(TestGateway gw, String batchId) {
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
    }

    private JsonNode letters(TestGateway gw, String query, String apiKey) {
        TestGateway.Response r = gw.send("GET", "/v1/dead-letters" + query, null, apiKey);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    private JsonNode redrive(TestGateway gw, String body, String apiKey) {
        TestGateway.Response r = gw.send("POST", "/v1/dead-letters/redrive", body, apiKey);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    @Test
    @GatewayExtension.Config(SMALL + "apns { max-attempts = 2, backoff-base = 20ms, backoff-max = 40ms }")
    void exhaustedRetriesAreListedThenRedrivenAndDeliveredOnce(TestGateway gw) throws Exception {
        String user = "dl-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptAlways(token, Answer.SERVICE_UNAVAILABLE);
        gw.device(user, "phone", token);
        String batchId = send(gw, user, 3);
        awaitDone(gw, batchId);
        assertThat(gw.batchStatus(batchId).path("reasons").path("failed:retries_exhausted").asInt()).isEqualTo(3);
        assertThat(gw.sandbox().arrivals(token)).hasSize(6);

        JsonNode page1 = letters(gw, "?limit=2", gw.key);
        assertThat(page1.get("deadLetters")).hasSize(2);
        JsonNode page2 = letters(gw, "?limit=2&cursor=" + page1.get("next").asText(), gw.key);
        assertThat(page2.get("deadLetters")).hasSize(1);
        assertThat(letters(gw, "?cursor=" + page2.get("next").asText(), gw.key).get("deadLetters")).isEmpty();
        List<String> ids = new ArrayList<>();
        for (JsonNode l : List.of(page1.get("deadLetters").get(0), page1.get("deadLetters").get(1),
                page2.get("deadLetters").get(0))) {
            ids.add(l.get("id").asText());
            assertThat(l.get("reason").asText()).isEqualTo("retries_exhausted");
            assertThat(l.get("app").asText()).isEqualTo(gw.app);
            assertThat(l.get("batchId").asText()).isEqualTo(batchId);
            assertThat(l.get("attempts").asInt()).isEqualTo(2);
            assertThat(l.get("at").asLong()).isPositive();
            assertThat(l.get("error").asText()).contains("503");
            assertThat(l.get("user").asText()).isEqualTo(user);
            assertThat(gw.message(l.get("id").asText()).get("reason").asText()).isEqualTo("retries_exhausted");
        }
        assertThat(ids).doesNotHaveDuplicates();

        // Another tenant sees none of them and cannot redrive them.
        assertThat(letters(gw, "", gw.otherKey).get("deadLetters")).isEmpty();
        JsonNode foreign = redrive(gw, "{\"ids\":[\"" + String.join("\",\"", ids) + "\"]}", gw.otherKey);
        assertThat(foreign.get("redriven").asInt()).isZero();
        assertThat(foreign.get("notFound")).hasSize(3);

        gw.sandbox().scriptAlways(token, Answer.ACCEPT);
        JsonNode two = redrive(gw, "{\"ids\":[\"" + ids.get(0) + "\",\"" + ids.get(1) + "\"]}", gw.key);
        assertThat(two.get("redriven").asInt()).isEqualTo(2);
        assertThat(two.get("remaining").asInt()).isEqualTo(1);
        JsonNode rest = redrive(gw, null, gw.key); // no body: the oldest letters, here the last one
        assertThat(rest.get("redriven").asInt()).isEqualTo(1);
        assertThat(rest.get("ids").get(0).asText()).isEqualTo(ids.get(2));
        assertThat(rest.get("remaining").asInt()).isZero();

        awaitDone(gw, batchId);
        JsonNode status = gw.batchStatus(batchId);
        assertThat(status.get("states").get("accepted").asInt()).isEqualTo(3);
        assertThat(status.get("states").get("failed").asInt()).isZero();
        for (String id : ids) {
            assertThat(gw.sandbox().acceptedCount(UUID.fromString(id))).as("deliveries of %s", id).isEqualTo(1);
            JsonNode m = gw.message(id);
            assertThat(m.get("state").asText()).isEqualTo("accepted");
            List<String> states = new ArrayList<>();
            m.get("history").forEach(h -> states.add(h.get("state").asText()));
            assertThat(states).containsSubsequence("retry_failed", "redriven", "accepted");
        }
        assertThat(letters(gw, "", gw.key).get("deadLetters")).isEmpty();
        // Re-driving again finds nothing and sends nothing.
        JsonNode again = redrive(gw, "{\"ids\":[\"" + ids.get(0) + "\"]}", gw.key);
        assertThat(again.get("redriven").asInt()).isZero();
        assertThat(again.get("notFound")).hasSize(1);
        assertThat(gw.sandbox().acceptedCount(UUID.fromString(ids.get(0)))).isEqualTo(1);
    }

    @Test
    void badRedriveRequestsNameTheField(TestGateway gw) throws Exception {
        TestGateway.Response r = gw.send("POST", "/v1/dead-letters/redrive", "{\"ids\":[\"nope\"]}", gw.key);
        assertThat(r.status()).isEqualTo(422);
        assertThat(r.json().path("error").path("field").asText()).isEqualTo("ids[0]");
        r = gw.send("POST", "/v1/dead-letters/redrive", "{\"all\":true}", gw.key);
        assertThat(r.status()).isEqualTo(422);
        assertThat(r.errorCode()).isEqualTo("unknown_field");
        r = gw.send("GET", "/v1/dead-letters?limit=0", null, gw.key);
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.json().path("error").path("field").asText()).isEqualTo("limit");
        r = gw.send("GET", "/v1/dead-letters?cursor=x", null, gw.key);
        assertThat(r.json().path("error").path("field").asText()).isEqualTo("cursor");
        assertThat(gw.send("GET", "/v1/dead-letters", null, null).status()).isEqualTo(401);
        assertThat(gw.send("POST", "/v1/dead-letters/redrive", null, "wrong-key-0123456789").status()).isEqualTo(401);
    }

    // Stuck in retry until the restart, so the batch is still in the journal then.
    @Test
    @org.junit.jupiter.api.condition.DisabledIfSystemProperty(named = "herald.it.redis", matches = "cluster",
            disabledReason = "damages journal entries through a standalone client")
    @GatewayExtension.Config(SMALL + "apns { backoff-base = 10s, backoff-max = 10s, max-attempts = 50 }")
    void journalEntriesThatNoLongerDecodeBecomeDeadLettersAndDoNotBlockTheStart(TestGateway gw) throws Exception {
        String user = "corrupt-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptAlways(token, Answer.INTERNAL_SERVER_ERROR);
        gw.device(user, "phone", token);
        String batchId = send(gw, user, 2);
        SandboxApns first = gw.sandbox();
        await().atMost(Duration.ofSeconds(30)).until(() -> first.arrivals(token).size() >= 2);
        String badId = MessageIds.messageId(UUID.fromString(batchId), 0).toString();
        String goodId = MessageIds.messageId(UUID.fromString(batchId), 1).toString();

        String journal = gw.journalOf(batchId);
        RedisClient client = gw.redisClient();
        try (var connection = client.connect()) {
            RedisCommands<String, String> redis = connection.sync();
            gw.restart(() -> {
                // While the node is down the entry is damaged the way a newer version's entry would look
                // to this one (a field it does not know in item 0), and a second entry is plain garbage.
                List<StreamMessage<String, String>> entries = redis.xrange(journal, Range.create("-", "+"));
                assertThat(entries).hasSize(1);
                try {
                    ObjectNode e = (ObjectNode) TestGateway.JSON.readTree(entries.get(0).getBody().get("e"));
                    ((ObjectNode) e.get("items").get(0).get("m")).put("deliverAt", "tomorrow");
                    redis.xdel(journal, entries.get(0).getId());
                    redis.xadd(journal, Map.of("k", "b", "e", e.toString()));
                } catch (Exception ex) {
                    throw new IllegalStateException(ex);
                }
                redis.xadd(journal, Map.of("k", "b", "e", "{\"app\": tru"));
            });
            assertThat(gw.herald.replayed()).as("the message that still decodes").isEqualTo(1);

            awaitDone(gw, batchId);
            JsonNode status = gw.batchStatus(batchId);
            assertThat(status.get("states").get("accepted").asInt()).isEqualTo(1);
            assertThat(status.path("reasons").path("failed:undecodable").asInt()).isEqualTo(1);
            assertThat(gw.sandbox().acceptedCount(UUID.fromString(goodId))).isEqualTo(1);
            assertThat(gw.sandbox().acceptedCount(UUID.fromString(badId))).isZero();

            JsonNode letters = letters(gw, "", gw.key).get("deadLetters");
            assertThat(letters).hasSize(1);
            assertThat(letters.get(0).get("id").asText()).isEqualTo(badId);
            assertThat(letters.get(0).get("reason").asText()).isEqualTo("undecodable");
            assertThat(letters.get(0).get("error").asText()).contains("deliverAt");
            assertThat(gw.message(badId).get("state").asText()).isEqualTo("failed");

            // It still does not decode: a redrive leaves it where it is, and says so.
            JsonNode r = redrive(gw, "{\"ids\":[\"" + badId + "\"]}", gw.key);
            assertThat(r.get("redriven").asInt()).isZero();
            assertThat(r.get("undecodable").get(0).asText()).isEqualTo(badId);
            assertThat(letters(gw, "", gw.key).get("deadLetters")).hasSize(1);

            // The garbage entry left the journal, unchanged, for an operator; the journal empties.
            List<StreamMessage<String, String>> kept = redis.xrange(Keys.unreadableEntries(gw.nodeId),
                    Range.create("-", "+"));
            assertThat(kept).hasSize(1);
            assertThat(kept.get(0).getBody().get("e")).isEqualTo("{\"app\": tru");
            await().atMost(Duration.ofSeconds(30)).until(() -> redis.xlen(journal) == 0);
        } finally {
            client.shutdown();
        }
    }

    @Test
    void anEntryThatNeverSettlesIsDeadLetteredAfterMaxReplaysThenRedriven(@TempDir Path dir) throws Exception {
        // An APNs endpoint of the test's own that outlives the gateway's restarts: it fails the
        // message on every start, as a message that wedges (or crashes) the node would.
        // Its gateway is configured with that endpoint, so it is not the extension's.
        try (SandboxApns apple = SandboxApns.start(0);
             TestGateway gw = new TestGateway(SMALL + ownApns(dir, apple) + "\ndead-letters.max-replays = 1\n"
                     + "apns { backoff-base = 10s, backoff-max = 10s, max-attempts = 50 }")) {
            String user = "wedged-" + UUID.randomUUID();
            String token = TestGateway.token();
            apple.scriptAlways(token, Answer.INTERNAL_SERVER_ERROR);
            gw.device(user, "phone", token);
            String batchId = send(gw, user, 1);
            String id = MessageIds.messageId(UUID.fromString(batchId), 0).toString();
            await().atMost(Duration.ofSeconds(30)).until(() -> apple.arrivals(token).size() == 1);

            gw.restart(); // pass 2: replayed, fails again
            assertThat(gw.herald.replayed()).isEqualTo(1);
            await().atMost(Duration.ofSeconds(30)).until(() -> apple.arrivals(token).size() == 2);
            gw.restart(); // pass 3 > 1 replay: dead-lettered, not sent
            assertThat(gw.herald.replayed()).isZero();
            JsonNode m = gw.message(id);
            assertThat(m.get("state").asText()).isEqualTo("failed");
            assertThat(m.get("reason").asText()).isEqualTo("poison");
            JsonNode letter = letters(gw, "", gw.key).get("deadLetters").get(0);
            assertThat(letter.get("id").asText()).isEqualTo(id);
            assertThat(letter.get("reason").asText()).isEqualTo("poison");
            assertThat(letter.get("attempts").asInt()).isEqualTo(3);
            assertThat(letter.get("error").asText()).contains("3 times");
            assertThat(apple.arrivals(token)).hasSize(2);

            apple.scriptAlways(token, Answer.ACCEPT);
            assertThat(redrive(gw, "{\"ids\":[\"" + id + "\"]}", gw.key).get("redriven").asInt()).isEqualTo(1);
            awaitDone(gw, batchId);
            assertThat(gw.message(id).get("state").asText()).isEqualTo("accepted");
            assertThat(apple.acceptedCount(UUID.fromString(id))).isEqualTo(1);
        }
    }

    /** HOCON that sends this test gateway's app to {@code apple} with token auth, as a production app would. */
    private static String ownApns(Path dir, SandboxApns apple) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        Path p8 = dir.resolve("AuthKey_KEY1234567.p8");
        Files.writeString(p8, "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
                .encodeToString(gen.generateKeyPair().getPrivate().getEncoded())
                + "\n-----END PRIVATE KEY-----\n");
        Path cert = dir.resolve("peer.pem");
        Files.copy(apple.certificateFile().toPath(), cert);
        return "sandbox = auto\napps.APP.apns { topic = com.example.dl, signing-key-file = \"" + p8 + "\","
                + " team-id = TEAM123456, key-id = KEY1234567, production-host = localhost, port = " + apple.port()
                + ", trusted-certificate-file = \"" + cert + "\" }";
    }
}
