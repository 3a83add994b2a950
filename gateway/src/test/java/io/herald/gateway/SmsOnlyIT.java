package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
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
 * A message that can only go by SMS needs only its SMS text: {@code smsBody} without title or body
 * is delivered through the SMSC as that text. When a push channel may carry it (its own fallback,
 * refused at intake naming {@code body}; or the app's default fallback, skipped at routing) it
 * needs a push text.
 */
@Timeout(120)
class SmsOnlyIT {
    /** The app's default fallback for a named channel is push: an SMS-only message must not meet it. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("apps.APP.channels.fallback = [push]");

    private static String phone() {
        return "+4477009" + (10000 + ThreadLocalRandom.current().nextInt(89999));
    }

    private static String userWithPhone(TestGateway gw, String phone) {
        String user = "sms-only-" + UUID.randomUUID();
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user,
                "{\"phone\":\"" + phone + "\"}", gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return user;
    }

    private static JsonNode sendAndSettle(TestGateway gw, String message) {
        JsonNode accepted = gw.batch(List.of(message));
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        return gw.message(accepted.get("messages").get(0).get("id").asText());
    }

    private static List<String> states(JsonNode message) {
        List<String> out = new ArrayList<>();
        message.get("history").forEach(h -> out.add(h.get("state").asText()
                + (h.has("channel") ? "@" + h.get("channel").asText() : "")
                + (h.has("detail") && h.get("state").asText().equals("skipped") ? ":" + h.get("detail").asText() : "")));
        return out;
    }

    @Test
    void anSmsMessageWithOnlyAnSmsBodyIsDeliveredAsThatText(TestGateway gw) {
        String phone = phone();
        String user = userWithPhone(gw, phone);
        gw.device(user, "phone", TestGateway.token()); // a push device the app's fallback would use
        JsonNode m = sendAndSettle(gw, "{\"user\":\"" + user
                + "\",\"channel\":\"sms\",\"smsBody\":\"Your code is 4242\"}");
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.message(m.get("id").asText()).get("state").asText()
                .equals("delivered"));
        assertThat(gw.herald.sandboxSmsc().texts(phone)).containsExactly("Your code is 4242");
        assertThat(states(gw.message(m.get("id").asText()))).containsSubsequence("queued", "accepted@sms",
                "delivered@sms");
        assertThat(gw.sandbox().requestsTotal()).as("nothing went to APNs").isZero();
    }

    @Test
    void theAppsPushFallbackIsSkippedForAMessageWithoutPushText(TestGateway gw) {
        String user = "no-phone-" + UUID.randomUUID();
        gw.device(user, "phone", TestGateway.token());
        JsonNode m = sendAndSettle(gw, "{\"user\":\"" + user + "\",\"channel\":\"sms\",\"smsBody\":\"hello\"}");
        assertThat(m.get("state").asText()).isEqualTo("dropped");
        assertThat(m.get("reason").asText()).isEqualTo("no_channel");
        assertThat(states(m)).containsSubsequence("skipped@sms:no_phone", "skipped@push:no_push_text");
    }

    @Test
    void anSmsBodyWithAPushFallbackStillNeedsAPushTextNamingBody(TestGateway gw) {
        String user = userWithPhone(gw, phone());
        TestGateway.Response r = gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\"" + user
                + "\",\"channel\":\"sms\",\"fallback\":[\"push\"],\"smsBody\":\"hi\"}]}");
        assertThat(r.status()).as(r.raw().body()).isEqualTo(422);
        JsonNode error = r.json().get("messages").get(0).get("error");
        assertThat(error.get("code").asText()).isEqualTo("missing_field");
        assertThat(error.get("field").asText()).isEqualTo("messages[0].body");
        assertThat(error.get("message").asText()).contains("fallback");
    }
}
