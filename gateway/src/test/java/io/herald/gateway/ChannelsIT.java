package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.sandbox.SandboxFcm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Android, SMS, routing, fallback and consent, end to end through the gateway and the three
 * sandbox peers over their real protocols (APNs HTTP/2 + TLS, FCM v1 HTTP/2 + TLS with OAuth,
 * SMPP with delivery receipts).
 */
@Timeout(180)
class ChannelsIT {
    @RegisterExtension
    static final GatewayExtension gateway =
            GatewayExtension.withConfig("apns { backoff-base = 50ms, max-attempts = 2 }");

    static String fcmToken() {
        return "fcm:" + UUID.randomUUID() + "-" + ThreadLocalRandom.current().nextInt(1_000_000);
    }

    static String phone() {
        return "+4477009" + (10000 + ThreadLocalRandom.current().nextInt(89999));
    }

    private void fcmDevice(TestGateway gw, String user, String id, String token) {
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user + "/devices/" + id,
                "{\"platform\":\"fcm\",\"token\":\"" + token + "\"}", gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
    }

    private JsonNode profile(TestGateway gw, String user, String json) {
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user, json, gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    private JsonNode sendOne(TestGateway gw, String message) {
        JsonNode accepted = gw.batch(List.of(message));
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        return gw.message(accepted.get("messages").get(0).get("id").asText());
    }

    private static List<String> states(JsonNode message) {
        List<String> out = new ArrayList<>();
        message.get("history").forEach(h -> out.add(h.get("state").asText()
                + (h.has("channel") ? "@" + h.get("channel").asText() : "")));
        return out;
    }

    @Test
    void androidDevicesGetFcmAndUnregisteredTokensAreInvalidated(TestGateway gw) {
        String user = "android-" + UUID.randomUUID();
        String good = fcmToken();
        String dead = fcmToken();
        gw.herald.sandboxFcm().scriptAlways(dead, SandboxFcm.Answer.UNREGISTERED);
        fcmDevice(gw, user, "pixel", good);
        fcmDevice(gw, user, "old-pixel", dead);
        JsonNode m = sendOne(gw, "{\"user\":\"" + user + "\",\"title\":\"Hi\",\"body\":\"from FCM\","
                + "\"android\":{\"channelId\":\"orders\"}}");
        assertThat(m.get("state").asText()).isEqualTo("accepted");
        assertThat(gw.herald.sandboxFcm().acceptedCount(good)).isEqualTo(1);
        assertThat(gw.herald.sandboxFcm().receivedCount(dead)).isEqualTo(1);
        JsonNode devices = gw.get("/v1/apps/" + gw.app + "/users/" + user).json().get("devices");
        for (JsonNode d : devices) {
            assertThat(d.get("state").asText()).isEqualTo(d.get("id").asText().equals("old-pixel") ? "invalidated" : "active");
        }
        // The next message goes to the live token only.
        sendOne(gw, TestGateway.msg(user, "again"));
        assertThat(gw.herald.sandboxFcm().receivedCount(dead)).isEqualTo(1);
        assertThat(gw.herald.sandboxFcm().acceptedCount(good)).isEqualTo(2);
    }

    @Test
    void aUserWithOnlyAPhoneGetsAnSmsThatEndsDeliveredByItsReceipt(TestGateway gw) {
        String user = "sms-" + UUID.randomUUID();
        String phone = phone();
        profile(gw, user, "{\"phone\":\"" + phone + "\"}");
        JsonNode m = sendOne(gw, "{\"user\":\"" + user + "\",\"title\":\"Code\",\"body\":\"Your code is 4242\"}");
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.message(m.get("id").asText()).get("state").asText()
                .equals("delivered"));
        JsonNode done = gw.message(m.get("id").asText());
        assertThat(states(done)).containsSubsequence("queued", "skipped@push", "accepted@sms", "delivered@sms");
        assertThat(gw.herald.sandboxSmsc().texts(phone)).containsExactly("Code\nYour code is 4242");
        JsonNode batch = gw.batchStatus(done.get("batchId").asText());
        assertThat(batch.get("states").get("delivered").asInt()).isEqualTo(1);
        assertThat(batch.get("states").get("accepted").asInt()).isZero();
    }

    @Test
    void aLongChineseTextGoesAsUcs2SegmentsAndTheCountIsRecorded(TestGateway gw) {
        String user = "zh-" + UUID.randomUUID();
        String phone = phone();
        profile(gw, user, "{\"phone\":\"" + phone + "\"}");
        StringBuilder text = new StringBuilder();
        while (text.length() < 300) {
            text.append("您的订单已发货，请注意查收。");
        }
        String body = text.substring(0, 300);
        JsonNode m = sendOne(gw, "{\"user\":\"" + user + "\",\"channel\":\"sms\",\"title\":\"t\",\"smsBody\":\"" + body + "\"}");
        assertThat(gw.herald.sandboxSmsc().parts(phone)).hasSize(5);
        assertThat(gw.herald.sandboxSmsc().texts(phone)).containsExactly(body);
        JsonNode accepted = null;
        for (JsonNode h : m.get("history")) {
            if (h.get("state").asText().equals("accepted")) {
                accepted = h;
            }
        }
        assertThat(accepted).isNotNull();
        assertThat(accepted.get("detail").asText()).isEqualTo("segments=5");
    }

    @Test
    void anUnregisteredIosTokenFallsBackToSms(TestGateway gw) {
        String user = "fallback-" + UUID.randomUUID();
        String token = TestGateway.token();
        String phone = phone();
        gw.sandbox().scriptAlways(token, SandboxApns.Answer.UNREGISTERED);
        gw.device(user, "iphone", token);
        profile(gw, user, "{\"phone\":\"" + phone + "\"}");
        JsonNode m = sendOne(gw, "{\"user\":\"" + user + "\",\"channel\":\"push\",\"fallback\":[\"sms\"],"
                + "\"title\":\"Parcel\",\"body\":\"arrives today\"}");
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.message(m.get("id").asText()).get("state").asText()
                .equals("delivered"));
        List<String> states = states(gw.message(m.get("id").asText()));
        assertThat(states).containsSubsequence("queued", "failed:unregistered@apns", "fallback@sms", "accepted@sms",
                "delivered@sms");
        assertThat(gw.herald.sandboxSmsc().texts(phone)).containsExactly("Parcel\narrives today");
        assertThat(gw.get("/v1/apps/" + gw.app + "/users/" + user).json().get("devices").get(0).get("state").asText())
                .isEqualTo("invalidated");
    }

    @Test
    void anOptedOutUserGetsNothingAndTheReasonIsVisible(TestGateway gw) {
        String user = "optout-" + UUID.randomUUID();
        String token = TestGateway.token();
        String phone = phone();
        gw.device(user, "iphone", token);
        profile(gw, user, "{\"phone\":\"" + phone + "\",\"consent\":{\"push\":\"opted_out\",\"sms\":\"opted_out\"},"
                + "\"consentSource\":\"preferences-page\"}");
        JsonNode m = sendOne(gw, TestGateway.msg(user, "promo"));
        assertThat(m.get("state").asText()).isEqualTo("dropped");
        assertThat(m.get("reason").asText()).isEqualTo("opted_out");
        assertThat(states(m)).containsSubsequence("skipped@push", "skipped@sms", "dropped:opted_out");
        assertThat(gw.sandbox().arrivals(token)).isEmpty();
        assertThat(gw.herald.sandboxSmsc().parts(phone)).isEmpty();

        JsonNode profile = gw.get("/v1/apps/" + gw.app + "/users/" + user).json();
        assertThat(profile.get("consent").get("sms").get("state").asText()).isEqualTo("opted_out");
        assertThat(profile.get("consent").get("sms").get("source").asText()).isEqualTo("preferences-page");

        // Opted out of SMS only and no device: nothing allowed and nowhere to send -> no_channel.
        String other = "nochannel-" + UUID.randomUUID();
        profile(gw, other, "{\"phone\":\"" + phone() + "\",\"consent\":{\"sms\":\"opted_out\"}}");
        JsonNode n = sendOne(gw, TestGateway.msg(other, "promo"));
        assertThat(n.get("reason").asText()).isEqualTo("no_channel");
    }

    @Test
    void phoneNumbersAreEncryptedAtRestAndMaskedInReads(TestGateway gw) {
        String user = "pii-" + UUID.randomUUID();
        String phone = "+447700900123";
        JsonNode p = profile(gw, user, "{\"phone\":\"" + phone + "\",\"locale\":\"en-GB\",\"timeZone\":\"Europe/London\"}");
        assertThat(p.get("phone").asText()).isEqualTo("+44********23");
        assertThat(p.get("locale").asText()).isEqualTo("en-GB");
        String raw = gw.herald.redis().shared().sync().hget(Keys.devices(gw.app, user), "@profile");
        assertThat(raw).doesNotContain("7700900123").contains("\"phone\":\"v1:");
        // Another app's key sees nothing.
        assertThat(gw.send("GET", "/v1/apps/" + gw.app + "/users/" + user, null, gw.otherKey).status()).isEqualTo(404);
        // Bad profile fields are named.
        TestGateway.Response bad = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user,
                "{\"phone\":\"0770\",\"timeZone\":\"Mars/Olympus\"}", gw.key);
        assertThat(bad.status()).isEqualTo(422);
        assertThat(bad.json().get("error").get("field").asText()).isEqualTo("phone");
        assertThat(gw.send("DELETE", "/v1/apps/" + gw.app + "/users/" + user, null, gw.key).status()).isEqualTo(204);
        assertThat(gw.get("/v1/apps/" + gw.app + "/users/" + user).status()).isEqualTo(404);
    }

    @Test
    void bulkImportStoresEveryUserAndReportsBadItems(TestGateway gw) {
        // 20,000 here (paranoid leak detection makes every Redis command slow in tests); the
        // 100,000-user figure is measured against the jar, see README.
        int total = 20_000;
        int perRequest = 10_000;
        long start = System.nanoTime();
        for (int r = 0; r < total / perRequest; r++) {
            StringBuilder body = new StringBuilder("{\"users\":[");
            for (int i = 0; i < perRequest; i++) {
                int n = r * perRequest + i;
                if (i > 0) {
                    body.append(',');
                }
                body.append("{\"user\":\"bulk").append(n).append("\",\"phone\":\"+4477").append(10_000_000 + n)
                        .append("\",\"locale\":\"en-GB\",\"devices\":[{\"id\":\"d1\",\"platform\":\"apns\",\"token\":\"")
                        .append(String.format("%064x", n)).append("\"}]}");
            }
            body.append("]}");
            TestGateway.Response resp = gw.send("POST", "/v1/apps/" + gw.app + "/users", body.toString(), gw.key);
            assertThat(resp.status()).as(resp.raw().body().substring(0, Math.min(300, resp.raw().body().length())))
                    .isEqualTo(200);
            assertThat(resp.json().get("imported").asInt()).isEqualTo(perRequest);
        }
        long millis = (System.nanoTime() - start) / 1_000_000;
        System.out.printf("bulk import: %d users in %d ms (%.0f users/s)%n", total, millis, total * 1000.0 / millis);
        JsonNode last = gw.get("/v1/apps/" + gw.app + "/users/bulk" + (total - 1)).json();
        assertThat(last.get("devices")).hasSize(1);
        assertThat(last.get("phone").asText()).startsWith("+44");

        TestGateway.Response partial = gw.send("POST", "/v1/apps/" + gw.app + "/users",
                "{\"users\":[{\"user\":\"ok-" + UUID.randomUUID() + "\"},{\"user\":\"bad\",\"phone\":\"123\"}]}", gw.key);
        assertThat(partial.status()).isEqualTo(200);
        assertThat(partial.json().get("imported").asInt()).isEqualTo(1);
        assertThat(partial.json().get("users").get(1).get("error").get("field").asText()).isEqualTo("users[1].phone");
    }

    @Test
    void aTrackedSmsLinkRedirectsAndCountsOneClick(TestGateway gw) {
        String user = "links-" + UUID.randomUUID();
        String phone = phone();
        profile(gw, user, "{\"phone\":\"" + phone + "\"}");
        String original = "https://shop.example/o/42?x=1";
        JsonNode m = sendOne(gw, "{\"user\":\"" + user + "\",\"channel\":\"sms\",\"campaign\":\"links\",\"title\":\"Order\","
                + "\"smsBody\":\"Your order: " + original + " thanks\",\"trackLinks\":true}");
        String text = gw.herald.sandboxSmsc().texts(phone).get(0);
        assertThat(text).doesNotContain(original).contains(gw.herald.baseUrl() + "/r/").endsWith(" thanks");
        String path = text.substring(text.indexOf("/r/"), text.indexOf(" thanks"));
        TestGateway.Response r = gw.send("GET", path, null, null);
        assertThat(r.status()).isEqualTo(302);
        assertThat(r.header("Location")).isEqualTo(original);
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.get("/v1/campaigns/links/funnel").json()
                .get("counts").get("clicked").asInt() == 1);
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.message(m.get("id").asText()).get("state").asText()
                .equals("clicked"));
        assertThat(gw.send("GET", "/r/ABCDEFGHJK", null, null).status()).isEqualTo(404);
    }
}
