package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpServer;
import io.herald.gateway.redis.Keys;
import io.herald.protocol.ReceiptTokens;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Receipts from devices and the funnels they feed: exact, forward only, verified, and fed to webhooks. */
@Timeout(300)
class ReceiptsIT {
    static final String SECRET = "webhook-secret-0123456789";
    static HttpServer receiver;
    /** Started by the first test, after {@link #startReceiver()}: its webhook names the receiver's port. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig(() -> "apps.APP.webhook {"
            + " url = \"http://127.0.0.1:" + receiver.getAddress().getPort() + "/hook\", secret = \"" + SECRET + "\","
            + " batch-size = 50, backoff-base = 50ms, max-attempts = 10 }");
    static final AtomicInteger failuresLeft = new AtomicInteger(3);
    static final Map<String, AtomicInteger> eventsReceived = new ConcurrentHashMap<>();
    static final AtomicInteger badSignatures = new AtomicInteger();

    @BeforeAll
    static void startReceiver() throws Exception {
        receiver = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        receiver.createContext("/hook", ex -> {
            byte[] body = ex.getRequestBody().readAllBytes();
            if (failuresLeft.getAndDecrement() > 0) {
                ex.sendResponseHeaders(500, -1);
                ex.close();
                return;
            }
            try {
                String ts = ex.getRequestHeaders().getFirst("Herald-Timestamp");
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(SECRET.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
                String expected = "v1=" + HexFormat.of().formatHex(mac.doFinal((ts + "." + new String(body,
                        StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8)));
                if (!expected.equals(ex.getRequestHeaders().getFirst("Herald-Signature"))) {
                    badSignatures.incrementAndGet();
                }
                for (JsonNode e : TestGateway.JSON.readTree(body).get("events")) {
                    eventsReceived.computeIfAbsent(e.get("id").asText() + "/" + e.get("event").asText(),
                            k -> new AtomicInteger()).incrementAndGet();
                }
            } catch (Exception e) {
                badSignatures.incrementAndGet();
            }
            ex.sendResponseHeaders(204, -1);
            ex.close();
        });
        receiver.start();
    }

    @AfterAll
    static void stopReceiver() {
        receiver.stop(0);
    }

    private TestGateway.Response receipts(TestGateway gw, List<String> items) {
        return gw.send("POST", "/v1/receipts", "{\"receipts\":[" + String.join(",", items) + "]}", null);
    }

    private static String receipt(String id, String event, String token) {
        return "{\"messageId\":\"" + id + "\",\"event\":\"" + event + "\",\"token\":\"" + token + "\"}";
    }

    private List<String> sendCampaign(TestGateway gw, String campaign, int users, int perVariant) {
        List<String> messages = new ArrayList<>();
        for (String variant : List.of("A", "B")) {
            for (int i = 0; i < perVariant; i++) {
                String user = campaign + "-" + variant + "-" + (i % users);
                messages.add("{\"user\":\"" + user + "\",\"title\":\"Sale\",\"campaign\":\"" + campaign
                        + "\",\"variant\":\"" + variant + "\"}");
            }
        }
        for (String variant : List.of("A", "B")) {
            for (int u = 0; u < users; u++) {
                gw.device(campaign + "-" + variant + "-" + u, "phone", TestGateway.token());
            }
        }
        JsonNode accepted = gw.batch(messages);
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        List<String> ids = new ArrayList<>();
        accepted.get("messages").forEach(m -> ids.add(m.get("id").asText()));
        ids.add(0, batchId);
        return ids;
    }

    @Test
    void devicesReceiptsGiveExactFunnelsThatOnlyMoveForward(TestGateway gw) throws Exception {
        List<String> ids = sendCampaign(gw, "spring", 10, 10);
        String batchId = ids.remove(0);
        // The token is in the push payload Apple would hand the app.
        JsonNode payload = TestGateway.JSON.readTree(gw.sandbox().payload(UUID.fromString(ids.get(0))));
        assertThat(payload.get("herald").get("id").asText()).isEqualTo(ids.get(0));
        String token0 = payload.get("herald").get("t").asText();
        assertThat(token0).startsWith("k1.");

        ReceiptTokens tokens = TestGateway.receiptTokens();
        long exp = System.currentTimeMillis() / 1000 + 3600;
        String user0 = "spring-A-0";
        assertThat(tokens.verify(token0, ids.get(0), user0, System.currentTimeMillis() / 1000))
                .isEqualTo(ReceiptTokens.Verdict.VALID);
        List<String> r = new ArrayList<>();
        // Variant A (ids 0..9): all delivered, 6 opened, 3 clicked (one click without an open).
        for (int i = 0; i < 10; i++) {
            String t = tokens.sign(ids.get(i), "spring-A-" + i, exp);
            r.add(receipt(ids.get(i), "delivered", t));
            if (i < 5) {
                r.add(receipt(ids.get(i), "opened", t));
            }
            if (i < 2 || i == 7) {
                r.add(receipt(ids.get(i), "clicked", t));
            }
        }
        // Variant B (ids 10..19): 4 opened without delivered first; repeats and out-of-order ones change nothing.
        for (int i = 10; i < 14; i++) {
            String t = tokens.sign(ids.get(i), "spring-B-" + (i - 10), exp);
            r.add(receipt(ids.get(i), "opened", t));
            r.add(receipt(ids.get(i), "opened", t));
            r.add(receipt(ids.get(i), "delivered", t));
        }
        TestGateway.Response resp = receipts(gw, r);
        assertThat(resp.status()).as(resp.raw().body()).isEqualTo(200);

        JsonNode a = gw.get("/v1/campaigns/spring/funnel?variant=A").json().get("counts");
        assertThat(a.get("submitted").asInt()).isEqualTo(10);
        assertThat(a.get("accepted").asInt()).isEqualTo(10);
        assertThat(a.get("delivered").asInt()).isEqualTo(10);
        assertThat(a.get("opened").asInt()).isEqualTo(6);
        assertThat(a.get("clicked").asInt()).isEqualTo(3);
        JsonNode b = gw.get("/v1/campaigns/spring/funnel?variant=B").json().get("counts");
        assertThat(b.get("delivered").asInt()).isEqualTo(4);
        assertThat(b.get("opened").asInt()).isEqualTo(4);
        assertThat(b.get("clicked").asInt()).isZero();
        JsonNode all = gw.get("/v1/campaigns/spring/funnel").json();
        assertThat(all.get("counts").get("opened").asInt()).isEqualTo(10);
        assertThat(all.get("rates").get("clickThroughRate").asDouble()).isEqualTo(0.3);

        JsonNode batchFunnel = gw.get("/v1/batches/" + batchId + "/funnel").json().get("counts");
        assertThat(batchFunnel.get("accepted").asInt()).isEqualTo(20);
        assertThat(batchFunnel.get("delivered").asInt()).isEqualTo(14);
        assertThat(batchFunnel.get("opened").asInt()).isEqualTo(10);
        assertThat(gw.message(ids.get(7)).get("state").asText()).isEqualTo("clicked");
        assertThat(gw.message(ids.get(10)).get("state").asText()).isEqualTo("opened");

        JsonNode stats = gw.get("/v1/stats?bucket=minute&campaign=spring&from=" + (System.currentTimeMillis() - 600_000))
                .json();
        int opened = 0;
        for (JsonNode bucket : stats.get("buckets")) {
            opened += bucket.get("counts").get("opened").asInt();
        }
        assertThat(opened).isEqualTo(10);

        // The event log, read page by page with its cursor (other tests of this app write to it too).
        // A click without an open logs one "clicked" event (the funnel counts the open it implies).
        Set<String> openedOrClicked = new java.util.HashSet<>();
        Set<String> springEvents = new java.util.HashSet<>();
        String cursor = null;
        while (true) {
            JsonNode page = gw.get("/v1/events?limit=1000" + (cursor == null ? "" : "&cursor=" + cursor)).json();
            JsonNode events = page.get("events");
            if (events.isEmpty()) {
                break;
            }
            for (JsonNode e : events) {
                String ev = e.get("event").asText();
                if ("spring".equals(e.path("campaign").asText())) {
                    springEvents.add(e.get("id").asText() + "/" + ev);
                }
                if ((ev.equals("opened") || ev.equals("clicked")) && "spring".equals(e.path("campaign").asText())) {
                    openedOrClicked.add(e.get("id").asText());
                }
            }
            cursor = page.get("next").asText();
        }
        assertThat(openedOrClicked).hasSize(10);

        // Engagement history of a user who opened.
        String eng = gw.herald.redis().shared().sync().hget(Keys.engagement(gw.app, "spring-A-0"), "opens");
        assertThat(eng).isEqualTo("1");

        // Webhook: failed 3 times, then every event of the log arrives exactly once, signed.
        // 20 accepted, 10 delivered (A), 9 opened (5 A, 4 B), 3 clicked: repeats and implied stages log nothing.
        assertThat(springEvents).hasSize(20 + 10 + 9 + 3);
        await().atMost(Duration.ofSeconds(60)).until(() -> eventsReceived.keySet().containsAll(springEvents));
        assertThat(failuresLeft.get()).isNegative();
        assertThat(badSignatures.get()).isZero();
        assertThat(eventsReceived.values().stream().allMatch(n -> n.get() == 1)).isTrue();

        // Deleting the user deletes their engagement with the rest of them.
        assertThat(gw.send("DELETE", "/v1/apps/" + gw.app + "/users/spring-A-0", null, gw.key).status()).isEqualTo(204);
        assertThat(gw.herald.redis().shared().sync().exists(Keys.engagement(gw.app, "spring-A-0"),
                Keys.devices(gw.app, "spring-A-0"))).isZero();
    }

    @Test
    void forgedExpiredCrossMessageAndTamperedReceiptsAre401AndCountNothing(TestGateway gw) throws Exception {
        List<String> ids = sendCampaign(gw, "summer", 3, 3);
        ids.remove(0);
        String id = ids.get(0);
        String user = "summer-A-0";
        ReceiptTokens tokens = TestGateway.receiptTokens();
        long exp = System.currentTimeMillis() / 1000 + 3600;
        String good = tokens.sign(id, user, exp);
        ReceiptTokens forger = new ReceiptTokens(new ReceiptTokens.Key("k1", new byte[32]), List.of());
        String otherMessage = tokens.sign(ids.get(1), "summer-A-1", exp);
        String expired = tokens.sign(id, user, System.currentTimeMillis() / 1000 - 10);
        String tamperedId = id.substring(0, 35) + (id.endsWith("1") ? "2" : "1");
        TestGateway.Response resp = receipts(gw, List.of(
                receipt(id, "opened", forger.sign(id, user, exp)),
                receipt(id, "opened", otherMessage),
                receipt(id, "opened", expired),
                receipt(tamperedId, "opened", good),
                receipt(id, "opened", "not-a-token")));
        assertThat(resp.status()).isEqualTo(401);
        for (JsonNode item : resp.json().get("receipts")) {
            assertThat(item.get("status").asInt()).isEqualTo(401);
        }
        assertThat(resp.json().get("receipts").get(2).get("error").get("code").asText()).isEqualTo("expired_token");
        JsonNode counts = gw.get("/v1/campaigns/summer/funnel").json().get("counts");
        assertThat(counts.get("opened").asInt()).isZero();
        assertThat(counts.get("delivered").asInt()).isZero();
        // The genuine one still works, once.
        assertThat(receipts(gw, List.of(receipt(id, "opened", good))).status()).isEqualTo(200);
        assertThat(receipts(gw, List.of(receipt(id, "opened", good))).json().get("receipts").get(0).get("result").asText())
                .isEqualTo("no_change");
        assertThat(gw.get("/v1/campaigns/summer/funnel").json().get("counts").get("opened").asInt()).isEqualTo(1);
    }

    @Test
    void oneHundredThousandReceiptsInBatchesAreAllCounted(TestGateway gw) throws Exception {
        int messages = 25_000;
        List<String> users = new ArrayList<>();
        for (int u = 0; u < 500; u++) {
            users.add("bulk-r-" + u);
        }
        StringBuilder body = new StringBuilder("{\"users\":[");
        for (int u = 0; u < users.size(); u++) {
            body.append(u == 0 ? "" : ",").append("{\"user\":\"").append(users.get(u))
                    .append("\",\"devices\":[{\"id\":\"d\",\"platform\":\"apns\",\"token\":\"").append(TestGateway.token())
                    .append("\"}]}");
        }
        assertThat(gw.send("POST", "/v1/apps/" + gw.app + "/users", body.append("]}").toString(), gw.key).status())
                .isEqualTo(200);
        List<String> ids = new ArrayList<>();
        List<String> owners = new ArrayList<>();
        for (int b = 0; b < messages / 5000; b++) {
            List<String> batch = new ArrayList<>();
            for (int i = 0; i < 5000; i++) {
                String u = users.get(i % users.size());
                batch.add("{\"user\":\"" + u + "\",\"title\":\"t\",\"campaign\":\"bulk\"}");
                owners.add(u);
            }
            JsonNode accepted = gw.batch(batch);
            accepted.get("messages").forEach(m -> ids.add(m.get("id").asText()));
            String batchId = accepted.get("batchId").asText();
            await().atMost(Duration.ofSeconds(120)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        }
        ReceiptTokens tokens = TestGateway.receiptTokens();
        long exp = System.currentTimeMillis() / 1000 + 3600;
        List<String> all = new ArrayList<>(messages * 4);
        for (int i = 0; i < ids.size(); i++) {
            String t = tokens.sign(ids.get(i), owners.get(i), exp);
            for (String event : List.of("delivered", "opened", "clicked", "dismissed")) {
                all.add(receipt(ids.get(i), event, t));
            }
        }
        assertThat(all).hasSize(100_000);
        int applied = 0;
        for (int from = 0; from < all.size(); from += 1000) {
            TestGateway.Response resp = receipts(gw, all.subList(from, from + 1000));
            assertThat(resp.status()).isEqualTo(200);
            applied += resp.json().get("applied").asInt();
        }
        assertThat(applied).isEqualTo(100_000);
        JsonNode counts = gw.get("/v1/campaigns/bulk/funnel").json().get("counts");
        for (String stage : Set.of("delivered", "opened", "clicked", "dismissed")) {
            assertThat(counts.get(stage).asInt()).as(stage).isEqualTo(messages);
        }
    }

    @Test
    void receiptsFromEveryChannelGiveExactFunnelsPerChannel(TestGateway gw) {
        String run = UUID.randomUUID().toString().substring(0, 6);
        List<String> messages = new ArrayList<>();
        List<String> owners = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            String ios = "ios-" + run + "-" + i;
            String android = "android-" + run + "-" + i;
            String sms = "sms-" + run + "-" + i;
            gw.device(ios, "phone", TestGateway.token());
            TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + android + "/devices/pixel",
                    "{\"platform\":\"fcm\",\"token\":\"fcm:" + run + ":" + i + "-abcdefghijklmnop\"}", gw.key);
            assertThat(r.status()).isEqualTo(200);
            assertThat(gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + sms, "{\"phone\":\"+4477009" + (10000 + i)
                    + run.chars().sum() % 10 + "\"}", gw.key).status()).isEqualTo(200);
            for (String u : List.of(ios, android, sms)) {
                messages.add("{\"user\":\"" + u + "\",\"title\":\"Mixed\",\"campaign\":\"mixed-" + run + "\"}");
                owners.add(u);
            }
        }
        JsonNode accepted = gw.batch(messages);
        String batchId = accepted.get("batchId").asText();
        // SMS messages end delivered by the SMSC's receipts.
        await().atMost(Duration.ofSeconds(60)).until(() -> {
            JsonNode s = gw.batchStatus(batchId).get("states");
            return s.get("accepted").asInt() == 8 && s.get("delivered").asInt() == 4;
        });
        ReceiptTokens tokens = TestGateway.receiptTokens();
        long exp = System.currentTimeMillis() / 1000 + 3600;
        List<String> r = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            String owner = owners.get(i);
            boolean open = (owner.startsWith("ios-") && owner.endsWith("-0")) || (owner.startsWith("ios-") && owner.endsWith("-1"))
                    || (owner.startsWith("android-") && !owner.endsWith("-3"));
            if (open) {
                String id = accepted.get("messages").get(i).get("id").asText();
                r.add(receipt(id, "opened", tokens.sign(id, owner, exp)));
            }
        }
        assertThat(r).hasSize(5);
        assertThat(receipts(gw, r).json().get("applied").asInt()).isEqualTo(5);

        JsonNode c = gw.get("/v1/campaigns/mixed-" + run + "/funnel").json().get("counts");
        assertThat(c.get("submitted").asInt()).isEqualTo(12);
        assertThat(c.get("accepted").asInt()).isEqualTo(12);
        assertThat(c.get("delivered").asInt()).isEqualTo(9);
        assertThat(c.get("opened").asInt()).isEqualTo(5);
        JsonNode sms = gw.get("/v1/channels/sms/funnel").json().get("counts");
        assertThat(sms.get("delivered").asInt()).isGreaterThanOrEqualTo(4);

        // Opt-outs are counted once per channel that turns opted_out.
        int before = gw.get("/v1/funnel").json().get("counts").get("opt_out").asInt();
        String user = owners.get(2);
        for (int k = 0; k < 2; k++) {
            assertThat(gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user, "{\"consent\":{\"sms\":\"opted_out\"}}",
                    gw.key).status()).isEqualTo(200);
        }
        assertThat(gw.get("/v1/funnel").json().get("counts").get("opt_out").asInt()).isEqualTo(before + 1);
    }
}
