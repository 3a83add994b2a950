package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Templates end to end: the API (create, conflict, read, list, replace, delete, 422 with the
 * position), preview for a user with attributes, tags and a locale, batch items rendered per user
 * and delivered to the APNs peer, locale fallback, unknown templates refused per item, and a render
 * past the payload limit ending failed:render, never truncated.
 */
@Timeout(120)
class TemplatesIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    private static String base(TestGateway gw) {
        return "/v1/apps/" + gw.app;
    }

    private static String id() {
        return "t" + UUID.randomUUID().toString().substring(0, 8);
    }

    private static final String WELCOME = "{\"id\":\"%s\",\"name\":\"welcome\",\"defaultLocale\":\"en\",\"locales\":{"
            + "\"en\":{\"push\":{\"title\":\"Hi {{user.firstName}}{{^user.firstName}}there{{/user.firstName}}\","
            + "\"body\":\"{{#user.tags.vip}}VIP: {{/user.tags.vip}}{{views}}{{^views}}many{{/views}} people viewed {{vars.item}}\","
            + "\"data\":{\"link\":\"app://items/{{item}}\"}},\"sms\":{\"body\":\"{{item}} is back\"}},"
            + "\"de\":{\"push\":{\"title\":\"Hallo {{user.firstName}}\",\"body\":\"{{item}} ist wieder da\"}}},"
            + "\"defaults\":{\"views\":null,\"item\":\"your item\"}}";

    /** A user with an APNs device, attributes, tags and a locale (null: none). */
    private static String user(TestGateway gw, String locale, boolean vip) {
        String u = "u-" + UUID.randomUUID().toString().substring(0, 8);
        ObjectNode o = TestGateway.JSON.createObjectNode().put("user", u);
        o.putObject("attributes").put("firstName", "Ada");
        ArrayNode tags = o.putArray("tags");
        if (vip) {
            tags.add("vip");
        }
        ArrayNode users = TestGateway.JSON.createArrayNode().add(o);
        TestGateway.Response r = gw.post(base(gw) + "/users", TestGateway.JSON.createObjectNode().set("users", users).toString());
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        gw.device(u, "phone", TestGateway.token());
        if (locale != null) {
            TestGateway.Response p = gw.send("PATCH", base(gw) + "/users/" + u, "{\"locale\":\"" + locale + "\"}", gw.key);
            assertThat(p.status()).as(p.raw().body()).isEqualTo(200);
        }
        return u;
    }

    @Test
    void theApiCreatesReadsReplacesDeletesAndRefusesWithThePosition(TestGateway gw) {
        String id = id();
        TestGateway.Response created = gw.post(base(gw) + "/templates", String.format(WELCOME, id));
        assertThat(created.status()).as(created.raw().body()).isEqualTo(201);
        assertThat(created.json().get("locales").get("de").get("push").get("title").asText()).isEqualTo("Hallo {{user.firstName}}");
        TestGateway.Response again = gw.post(base(gw) + "/templates", String.format(WELCOME, id));
        assertThat(again.status()).isEqualTo(409);
        assertThat(again.json().get("error").get("code").asText()).isEqualTo("already_exists");
        assertThat(gw.get(base(gw) + "/templates/" + id).json().get("name").asText()).isEqualTo("welcome");
        boolean listed = false;
        for (JsonNode t : gw.get(base(gw) + "/templates").json().get("templates")) {
            listed |= t.get("id").asText().equals(id);
        }
        assertThat(listed).isTrue();

        TestGateway.Response bad = gw.send("PUT", base(gw) + "/templates/" + id,
                "{\"locales\":{\"en\":{\"push\":{\"title\":\"ok\",\"body\":\"Hi\\n {{usr.firstName}}\"}}}}", gw.key);
        assertThat(bad.status()).isEqualTo(422);
        assertThat(bad.json().get("error").get("code").asText()).isEqualTo("invalid_template");
        assertThat(bad.json().get("error").get("field").asText()).isEqualTo("locales.en.push.body");
        assertThat(bad.json().get("error").get("message").asText()).contains("'usr.firstName' at line 2, column 2");
        TestGateway.Response syntax = gw.post(base(gw) + "/templates",
                "{\"locales\":{\"en\":{\"sms\":{\"body\":\"{{#vars.a}} x\"}}}}");
        assertThat(syntax.status()).isEqualTo(422);
        assertThat(syntax.json().get("error").get("message").asText()).contains("opened at line 1, column 1 is not closed");

        TestGateway.Response put = gw.send("PUT", base(gw) + "/templates/" + id,
                "{\"locales\":{\"en\":{\"push\":{\"body\":\"Replaced\"}}}}", gw.key);
        assertThat(put.status()).as(put.raw().body()).isEqualTo(200);
        assertThat(gw.get(base(gw) + "/templates/" + id).json().get("locales").has("de")).isFalse();
        assertThat(gw.send("PUT", base(gw) + "/templates/nope-" + id, "{\"locales\":{\"en\":{\"push\":{\"body\":\"x\"}}}}",
                gw.key).status()).isEqualTo(404);
        assertThat(gw.send("DELETE", base(gw) + "/templates/" + id, null, gw.key).status()).isEqualTo(204);
        assertThat(gw.get(base(gw) + "/templates/" + id).status()).isEqualTo(404);
        assertThat(gw.send("DELETE", base(gw) + "/templates/" + id, null, gw.key).status()).isEqualTo(404);
    }

    @Test
    void previewRendersForOneUserWithFallbacksAndNoJavaObjects(TestGateway gw) {
        String id = id();
        assertThat(gw.post(base(gw) + "/templates", String.format(WELCOME, id)).status()).isEqualTo(201);
        String vip = user(gw, "en-GB", true);
        JsonNode p = gw.post(base(gw) + "/templates/" + id + "/preview",
                "{\"user\":\"" + vip + "\",\"vars\":{\"item\":\"the red shoe\",\"views\":12}}").json();
        assertThat(p.get("locale").asText()).isEqualTo("en");
        assertThat(p.get("push").get("title").asText()).isEqualTo("Hi Ada");
        assertThat(p.get("push").get("body").asText()).isEqualTo("VIP: 12 people viewed the red shoe");
        assertThat(p.get("push").get("data").get("link").asText()).isEqualTo("app://items/the red shoe");
        assertThat(p.get("sms").get("body").asText()).isEqualTo("the red shoe is back");
        // Defaults, a user without tags, and the language of de-CH.
        String swiss = user(gw, "de-CH", false);
        JsonNode de = gw.post(base(gw) + "/templates/" + id + "/preview", "{\"user\":\"" + swiss + "\"}").json();
        assertThat(de.get("locale").asText()).isEqualTo("de");
        assertThat(de.get("push").get("body").asText()).isEqualTo("your item ist wieder da");
        JsonNode unknown = gw.post(base(gw) + "/templates/" + id + "/preview", "{\"user\":\"nobody-" + id + "\"}").json();
        assertThat(unknown.get("push").get("title").asText()).isEqualTo("Hi there");
        assertThat(unknown.get("push").get("body").asText()).isEqualTo("many people viewed your item");

        String probe = id();
        assertThat(gw.post(base(gw) + "/templates", "{\"id\":\"" + probe + "\",\"locales\":{\"en\":{\"push\":{\"body\":"
                + "\"[{{this.class.name}}][{{user.class.name}}][{{user.id.bytes}}][{{vars.class}}]\"}}}}").status())
                .isEqualTo(201);
        JsonNode safe = gw.post(base(gw) + "/templates/" + probe + "/preview", "{\"user\":\"" + vip + "\"}").json();
        assertThat(safe.get("push").get("body").asText()).isEqualTo("[][][][]");
    }

    @Test
    void batchItemsAreRenderedPerUserAndARenderPastTheLimitFails(TestGateway gw) throws Exception {
        String id = id();
        assertThat(gw.post(base(gw) + "/templates", String.format(WELCOME, id)).status()).isEqualTo(201);
        String big = id();
        assertThat(gw.post(base(gw) + "/templates", "{\"id\":\"" + big + "\",\"locales\":{\"en\":{\"push\":"
                + "{\"title\":\"Long\",\"body\":\"{{vars.text}}\"}}}}").status()).isEqualTo(201);
        String vip = user(gw, "en", true);
        String swiss = user(gw, "de-CH", false);
        String item = "{\"user\":\"%s\",\"template\":\"%s\",\"vars\":{\"item\":\"%s\"}}";
        JsonNode accepted = gw.batch(List.of(String.format(item, vip, id, "the red shoe"),
                String.format(item, swiss, id, "Der rote Schuh"),
                "{\"user\":\"" + vip + "\",\"template\":\"" + big + "\",\"vars\":{\"text\":\"" + "x".repeat(5000) + "\"}}",
                "{\"user\":\"" + vip + "\",\"template\":\"missing-" + id + "\"}",
                "{\"user\":\"" + vip + "\",\"template\":\"" + id + "\",\"title\":\"own\"}"));
        JsonNode ms = accepted.get("messages");
        assertThat(ms.get(3).get("error").get("code").asText()).isEqualTo("unknown_template");
        assertThat(ms.get(3).get("error").get("field").asText()).isEqualTo("messages[3].template");
        assertThat(ms.get(4).get("error").get("field").asText()).isEqualTo("messages[4].title");
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());

        JsonNode first = TestGateway.JSON.readTree(gw.sandbox().payload(UUID.fromString(ms.get(0).get("id").asText())));
        assertThat(first.get("aps").get("alert").get("title").asText()).isEqualTo("Hi Ada");
        assertThat(first.get("aps").get("alert").get("body").asText()).isEqualTo("VIP: many people viewed the red shoe");
        assertThat(first.get("link").asText()).isEqualTo("app://items/the red shoe");
        JsonNode second = TestGateway.JSON.readTree(gw.sandbox().payload(UUID.fromString(ms.get(1).get("id").asText())));
        assertThat(second.get("aps").get("alert").get("title").asText()).isEqualTo("Hallo Ada");
        assertThat(second.get("aps").get("alert").get("body").asText()).isEqualTo("Der rote Schuh ist wieder da");

        JsonNode failed = gw.message(ms.get(2).get("id").asText());
        assertThat(failed.get("state").asText() + ":" + failed.get("reason").asText()).isEqualTo("failed:render");
        JsonNode h = failed.get("history");
        assertThat(h.get(h.size() - 1).get("detail").asText()).contains("template '" + big + "'").contains("push payload")
                .contains("limit 3936");
        assertThat(gw.sandbox().payload(UUID.fromString(ms.get(2).get("id").asText()))).isNull();
    }
}
