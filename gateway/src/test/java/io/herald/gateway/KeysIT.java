package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Roles on API keys: an admin key issues keys with chosen roles (the key shown once), lists them
 * without secrets and revokes them; each route needs its role (403 {@code forbidden} naming it);
 * a key without roles given keeps send, manage and read; a revoked key is refused.
 */
@Timeout(120)
class KeysIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    private static JsonNode issue(TestGateway gw, String body) {
        TestGateway.Response r = gw.post("/v1/apps/" + gw.app + "/keys", body);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(201);
        return r.json();
    }

    @Test
    void anAdminIssuesListsAndRevokesKeysAndEveryRouteChecksItsRole(TestGateway gw) {
        String base = "/v1/apps/" + gw.app;
        JsonNode reader = issue(gw, "{\"name\":\"dashboard\",\"roles\":[\"read\"]}");
        JsonNode sender = issue(gw, "{\"roles\":[\"send\"]}");
        assertThat(reader.get("key").asText()).startsWith("hk_");
        assertThat(reader.get("id").asText()).startsWith("k-");
        String batch = "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("u-" + UUID.randomUUID(), "t") + "]}";

        // read: status and templates yes; sending, managing and administering no, each naming the role.
        TestGateway.Response send = gw.send("POST", "/v1/batches", batch, reader.get("key").asText());
        assertThat(send.status()).isEqualTo(403);
        assertThat(send.json().get("error").get("code").asText()).isEqualTo("forbidden");
        assertThat(send.json().get("error").get("message").asText()).contains("'send'");
        assertThat(gw.send("GET", base + "/templates", null, reader.get("key").asText()).status()).isEqualTo(200);
        TestGateway.Response manage = gw.send("POST", base + "/templates",
                "{\"locales\":{\"en\":{\"push\":{\"body\":\"x\"}}}}", reader.get("key").asText());
        assertThat(manage.status()).isEqualTo(403);
        assertThat(manage.json().get("error").get("message").asText()).contains("'manage'");
        assertThat(gw.send("PUT", base + "/policy", "{}", reader.get("key").asText()).status()).isEqualTo(403);
        assertThat(gw.send("GET", base + "/keys", null, reader.get("key").asText()).status()).isEqualTo(403);

        // send: batches yes, reading status no.
        TestGateway.Response sent = gw.send("POST", "/v1/batches", batch, sender.get("key").asText());
        assertThat(sent.status()).as(sent.raw().body()).isEqualTo(202);
        assertThat(gw.send("GET", "/v1/batches/" + sent.json().get("batchId").asText(), null,
                sender.get("key").asText()).status()).isEqualTo(403);

        // A key given without roles (the other app's) keeps send, manage and read: not admin.
        TestGateway.Response other = gw.send("POST", "/v1/apps/" + gw.otherApp + "/keys", "{\"roles\":[\"read\"]}",
                gw.otherKey);
        assertThat(other.status()).isEqualTo(403);
        assertThat(other.json().get("error").get("message").asText()).contains("'admin'")
                .contains("its roles: send, manage, read");

        // The list: configured and issued keys, who issued them, never a key or a hash.
        JsonNode list = gw.get(base + "/keys").json().get("keys");
        String admin = null;
        boolean sawReader = false;
        for (JsonNode k : list) {
            assertThat(k.has("key")).isFalse();
            assertThat(k.toString()).doesNotContain(reader.get("key").asText());
            if (k.get("source").asText().equals("config")) {
                admin = k.get("id").asText();
            }
            if (k.get("id").asText().equals(reader.get("id").asText())) {
                sawReader = true;
                assertThat(k.get("name").asText()).isEqualTo("dashboard");
                assertThat(k.get("roles").toString()).isEqualTo("[\"read\"]");
            }
        }
        assertThat(sawReader).isTrue();
        assertThat(admin).startsWith("cfg-");
        assertThat(reader.get("createdBy").asText()).isEqualTo(admin);

        // Bad roles; a configured key cannot be revoked here; revoking an issued one takes effect.
        TestGateway.Response bad = gw.post(base + "/keys", "{\"roles\":[\"read\",\"root\"]}");
        assertThat(bad.status()).isEqualTo(422);
        assertThat(bad.json().get("error").get("field").asText()).isEqualTo("roles");
        assertThat(gw.send("DELETE", base + "/keys/" + admin, null, gw.key).status()).isEqualTo(409);
        assertThat(gw.send("DELETE", base + "/keys/" + reader.get("id").asText(), null, gw.key).status()).isEqualTo(204);
        assertThat(gw.send("GET", base + "/templates", null, reader.get("key").asText()).status()).isEqualTo(401);
        assertThat(gw.send("DELETE", base + "/keys/" + reader.get("id").asText(), null, gw.key).status()).isEqualTo(404);
        assertThat(List.of(sender.get("roles").get(0).asText())).containsExactly("send");
    }

    @Test
    void aKeyIssuedOnOneNodeIsAcceptedAndRevokedOnAnother(TestGateway gw) throws Exception {
        try (TestGateway b = TestGateway.nodeBeside(gw, "")) {
            JsonNode k = issue(gw, "{\"roles\":[\"read\"]}");
            String path = "/v1/apps/" + gw.app + "/templates";
            org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10))
                    .until(() -> b.send("GET", path, null, k.get("key").asText()).status() == 200);
            assertThat(gw.send("DELETE", "/v1/apps/" + gw.app + "/keys/" + k.get("id").asText(), null, gw.key).status())
                    .isEqualTo(204);
            org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10))
                    .until(() -> b.send("GET", path, null, k.get("key").asText()).status() == 401);
        }
    }
}
