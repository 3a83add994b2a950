package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

/** Identity across systems: aliases (unique per app and namespace, usable wherever a user is addressed) and merges. */
@Timeout(180)
class IdentityIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("apps.APP.events.sum { purchase = amount }");

    private static final ObjectMapper JSON = new ObjectMapper();

    private static String p() {
        return "p" + UUID.randomUUID().toString().substring(0, 6);
    }

    private static String base(TestGateway gw) {
        return "/v1/apps/" + gw.app;
    }

    private static TestGateway.Response put(TestGateway gw, String user, String body) {
        return gw.send("PUT", base(gw) + "/users/" + user, body, gw.key);
    }

    private static long count(TestGateway gw, String rule) {
        TestGateway.Response r = gw.post(base(gw) + "/audiences/estimate", JSON.createObjectNode().put("rule", rule).toString());
        assertThat(r.status()).as(rule + " -> " + r.raw().body()).isEqualTo(200);
        return r.json().get("count").asLong();
    }

    @Test
    void aliasesAreUniqueAndAddressUsersInEventsTagOperationsAndImports(TestGateway gw) {
        String p = p();
        String a = p + "-a";
        String b = p + "-b";
        TestGateway.Response ra = put(gw, a, "{\"tags\":[\"" + p + "\"],\"aliases\":{\"wechat\":\"o-" + p + "\",\"crm\":\"c-" + p + "\"}}");
        assertThat(ra.status()).as(ra.raw().body()).isEqualTo(200);
        assertThat(ra.json().get("aliases").get("wechat").asText()).isEqualTo("o-" + p);
        assertThat(ra.json().get("flags").toString()).contains("alias.wechat", "alias.crm");
        // Unique per namespace: b cannot take a's WeChat id, and nothing of b's update applies.
        TestGateway.Response rb = put(gw, b, "{\"locale\":\"en\",\"aliases\":{\"crm\":\"c2-" + p + "\",\"wechat\":\"o-" + p + "\"}}");
        assertThat(rb.status()).as(rb.raw().body()).isEqualTo(409);
        assertThat(rb.errorCode()).isEqualTo("alias_taken");
        assertThat(rb.json().get("error").get("field").asText()).isEqualTo("aliases.wechat");
        assertThat(gw.get(base(gw) + "/users/" + b).status()).isEqualTo(404);
        // The same id in another namespace is another alias.
        assertThat(put(gw, b, "{\"tags\":[\"" + p + "\"],\"aliases\":{\"crm\":\"o-" + p + "\"}}").status()).isEqualTo(200);
        assertThat(count(gw, "alias.wechat EXISTS AND tag:" + p)).isEqualTo(1);
        assertThat(count(gw, "alias.crm EXISTS AND tag:" + p)).isEqualTo(2);

        // Events, tag operations and imports by alias.
        TestGateway.Response ev = gw.post(base(gw) + "/events", "{\"events\":[{\"alias\":\"wechat:o-" + p + "\",\"name\":\"follow\"},"
                + "{\"alias\":\"wechat:nobody-" + p + "\",\"name\":\"follow\"},{\"alias\":\"bad\",\"name\":\"follow\"}]}");
        assertThat(ev.status()).as(ev.raw().body()).isEqualTo(200);
        assertThat(ev.json().get("recorded").asInt()).isEqualTo(1);
        List<String> codes = new ArrayList<>();
        ev.json().get("errors").forEach(e -> codes.add(e.get("field").asText() + "=" + e.get("code").asText()));
        assertThat(codes).containsExactlyInAnyOrder("events[1].alias=unknown_alias", "events[2].alias=invalid_field");
        assertThat(gw.get(base(gw) + "/users/" + a).json().get("events").get("follow").get("count").asInt()).isEqualTo(1);
        TestGateway.Response tag = gw.post(base(gw) + "/tags/" + p + "_crm", "{\"add\":[{\"alias\":\"crm:c-" + p + "\"},"
                + "{\"alias\":\"crm:none-" + p + "\"}]}");
        assertThat(tag.json().get("added").asInt()).isEqualTo(1);
        assertThat(tag.json().get("errors").get(0).get("field").asText()).isEqualTo("add[1].alias");
        TestGateway.Response imp = gw.post(base(gw) + "/users", "{\"users\":[{\"alias\":\"crm:c-" + p + "\",\"attributes\":{\"tier\":\"gold\"}},"
                + "{\"user\":\"" + p + "-c\",\"aliases\":{\"wechat\":\"o-" + p + "\"}},"
                + "{\"user\":\"" + p + "-d\",\"aliases\":{\"wechat\":\"d-" + p + "\"}}]}");
        assertThat(imp.status()).as(imp.raw().body()).isEqualTo(200);
        assertThat(imp.json().get("users").get(0).get("user").asText()).isEqualTo(a);
        assertThat(imp.json().get("users").get(1).get("error").get("code").asText()).isEqualTo("alias_taken");
        assertThat(imp.json().get("imported").asInt()).isEqualTo(2);
        JsonNode aNow = gw.get(base(gw) + "/users/" + a).json();
        assertThat(aNow.get("tags").toString()).contains(p + "_crm");
        assertThat(aNow.get("attributes").get("tier").asText()).isEqualTo("gold");

        // Changing an alias frees the old one; deleting the user frees all of them.
        assertThat(put(gw, a, "{\"aliases\":{\"wechat\":\"o2-" + p + "\"}}").status()).isEqualTo(200);
        assertThat(put(gw, b, "{\"aliases\":{\"wechat\":\"o-" + p + "\"}}").status()).isEqualTo(200);
        assertThat(gw.send("DELETE", base(gw) + "/users/" + a, null, gw.key).status()).isEqualTo(204);
        TestGateway.Response gone = gw.post(base(gw) + "/events", "{\"events\":[{\"alias\":\"crm:c-" + p + "\",\"name\":\"x\"}]}");
        assertThat(gone.status()).isEqualTo(422);
        assertThat(gone.json().get("errors").get(0).get("code").asText()).isEqualTo("unknown_alias");
        assertThat(put(gw, p + "-e", "{\"aliases\":{\"crm\":\"c-" + p + "\"}}").status()).isEqualTo(200);
        assertThat(put(gw, p + "-e", "{\"aliases\":{\"merged\":\"x\"}}").status()).isEqualTo(422);
    }

    @Test
    void mergeFoldsOneProfileIntoAnotherOnceAndTheOldIdBecomesAnAlias(TestGateway gw) {
        String p = p();
        String m1 = p + "-m1";
        String m2 = p + "-m2";
        assertThat(put(gw, m1, "{\"tags\":[\"" + p + "\",\"x\",\"y\"],\"attributes\":{\"city\":\"A\",\"ltv\":1},"
                + "\"consent\":{\"push\":\"opted_in\"},\"locale\":\"en-GB\"}").status()).isEqualTo(200);
        assertThat(put(gw, m2, "{\"tags\":[\"" + p + "\",\"y\",\"z\"],\"attributes\":{\"city\":\"B\",\"plan\":\"pro\"},"
                + "\"consent\":{\"push\":\"opted_out\"},\"phone\":\"+447700900123\",\"aliases\":{\"crm\":\"k-" + p + "\"}}")
                .status()).isEqualTo(200);
        gw.device(m1, "d1", TestGateway.token());
        gw.device(m2, "d2", TestGateway.token());
        String events = "{\"events\":[{\"user\":\"" + m1 + "\",\"name\":\"purchase\",\"properties\":{\"amount\":10}},"
                + "{\"user\":\"" + m2 + "\",\"name\":\"purchase\",\"properties\":{\"amount\":5}},"
                + "{\"user\":\"" + m2 + "\",\"name\":\"purchase\",\"properties\":{\"amount\":7}},"
                + "{\"user\":\"" + m2 + "\",\"name\":\"visit\"}]}";
        assertThat(gw.post(base(gw) + "/events", events).json().get("recorded").asInt()).isEqualTo(4);
        assertThat(count(gw, "tag:" + p)).isEqualTo(2);

        TestGateway.Response merged = gw.post(base(gw) + "/users/" + m1 + "/merge", "{\"from\":\"" + m2 + "\"}");
        assertThat(merged.status()).as(merged.raw().body()).isEqualTo(200);
        assertThat(merged.header("Herald-Merged")).isEqualTo("true");
        JsonNode u = merged.json();
        assertThat(u.get("tags").toString()).isEqualTo("[\"" + p + "\",\"x\",\"y\",\"z\"]");
        assertThat(u.get("attributes").get("city").asText()).isEqualTo("A");
        assertThat(u.get("attributes").get("plan").asText()).isEqualTo("pro");
        assertThat(u.get("attributes").get("ltv").asInt()).isEqualTo(1);
        assertThat(u.get("consent").get("push").get("state").asText()).isEqualTo("opted_out");
        assertThat(u.get("phone").asText()).startsWith("+44").endsWith("23");
        assertThat(u.get("locale").asText()).isEqualTo("en-GB");
        assertThat(u.get("devices")).hasSize(2);
        assertThat(u.get("aliases").get("crm").asText()).isEqualTo("k-" + p);
        assertThat(u.get("events").get("purchase").get("count").asInt()).isEqualTo(3);
        assertThat(u.get("events").get("purchase").get("sum").asDouble()).isEqualTo(22.0);
        assertThat(u.get("events").get("visit").get("count").asInt()).isEqualTo(1);
        assertThat(gw.get(base(gw) + "/users/" + m2).status()).isEqualTo(404);
        assertThat(count(gw, "tag:" + p)).isEqualTo(1);
        assertThat(count(gw, "tag:z AND tag:" + p)).isEqualTo(1);
        assertThat(count(gw, "event.purchase.count(1d) = 3 AND tag:" + p)).isEqualTo(1);
        assertThat(count(gw, "NOT consent.push AND reachable.sms AND tag:" + p)).isEqualTo(1);
        // Idempotent; the old id is an alias now.
        TestGateway.Response again = gw.post(base(gw) + "/users/" + m1 + "/merge", "{\"from\":\"" + m2 + "\"}");
        assertThat(again.status()).isEqualTo(200);
        assertThat(again.header("Herald-Merged")).isEqualTo("false");
        assertThat(again.json().get("events").get("purchase").get("count").asInt()).isEqualTo(3);
        assertThat(gw.post(base(gw) + "/events", "{\"events\":[{\"alias\":\"merged:" + m2 + "\",\"name\":\"purchase\"}]}")
                .json().get("recorded").asInt()).isEqualTo(1);
        assertThat(gw.get(base(gw) + "/users/" + m1).json().get("events").get("purchase").get("count").asInt()).isEqualTo(4);
        // Bad merges.
        assertThat(gw.post(base(gw) + "/users/" + m1 + "/merge", "{\"from\":\"" + p + "-none\"}").status()).isEqualTo(404);
        assertThat(gw.post(base(gw) + "/users/" + p + "-none/merge", "{\"from\":\"" + m1 + "\"}").status()).isEqualTo(404);
        assertThat(gw.post(base(gw) + "/users/" + m1 + "/merge", "{\"from\":\"" + m1 + "\"}").status()).isEqualTo(422);
        assertThat(gw.post(base(gw) + "/users/" + m1 + "/merge", "{}").status()).isEqualTo(422);
    }

    @Test
    void eventsPostedWhileAUserIsMergedAreNeitherLostNorCountedTwice(TestGateway gw) throws Exception {
        String p = p();
        String target = p + "-t";
        String from = p + "-f";
        assertThat(put(gw, target, "{\"tags\":[\"" + p + "\"]}").status()).isEqualTo(200);
        assertThat(put(gw, from, "{\"tags\":[\"" + p + "\"]}").status()).isEqualTo(200);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger recorded = new AtomicInteger();
        AtomicInteger posts = new AtomicInteger();
        Thread poster = new Thread(() -> {
            while (!stop.get() || posts.get() < 20) {
                StringBuilder b = new StringBuilder("{\"events\":[");
                for (int i = 0; i < 50; i++) {
                    b.append(i == 0 ? "" : ",").append("{\"user\":\"").append(from).append("\",\"name\":\"tick\"}");
                }
                TestGateway.Response r = gw.post(base(gw) + "/events", b.append("]}").toString());
                recorded.addAndGet(r.json().path("recorded").asInt());
                posts.incrementAndGet();
            }
        });
        poster.start();
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(30)).until(() -> posts.get() >= 5);
        TestGateway.Response merged = gw.post(base(gw) + "/users/" + target + "/merge", "{\"from\":\"" + from + "\"}");
        assertThat(merged.status()).as(merged.raw().body()).isEqualTo(200);
        stop.set(true);
        poster.join(60_000);
        assertThat(poster.isAlive()).isFalse();
        // Events recorded before the merge went into the target; those after it made a new user of the old id.
        JsonNode t = gw.get(base(gw) + "/users/" + target).json();
        TestGateway.Response f = gw.get(base(gw) + "/users/" + from);
        long inTarget = t.get("events").path("tick").path("count").asLong();
        long inNew = f.status() == 200 ? f.json().get("events").path("tick").path("count").asLong() : 0;
        assertThat(inTarget).isGreaterThan(0);
        assertThat(inTarget + inNew).isEqualTo(recorded.get());
    }
}
