package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Lifecycle and RFM tiers of a generated population on a fixed clock, against counts the test
 * computes from the users and events it generated (its own app: tiers are per app).
 */
@Timeout(180)
class TiersIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Instant NOW = Instant.parse("2026-06-15T12:00:00Z");
    private static final long DAY = 86_400_000L;
    private static final String[][] GRID = {
        {"hibernating", "hibernating", "at_risk", "cannot_lose", "cannot_lose"},
        {"about_to_sleep", "needs_attention", "at_risk", "cannot_lose", "cannot_lose"},
        {"promising", "needs_attention", "loyal", "loyal", "loyal"},
        {"new", "potential_loyalists", "loyal", "champions", "champions"},
        {"new", "potential_loyalists", "potential_loyalists", "champions", "champions"},
    };

    private static TestGateway gw;

    @BeforeAll
    static void start() throws Exception {
        Clock fixed = Clock.fixed(NOW, ZoneOffset.UTC);
        gw = TestGateway.withClock("apps.APP.events.sum { purchase = amount }\n"
                + "apps.APP.tiers.lifecycle { new-days = 7, active-days = 14, silent-days = 45 }", fixed);
    }

    @AfterAll
    static void stop() {
        gw.close();
    }

    private static String base() {
        return "/v1/apps/" + gw.app;
    }

    private static long count(String rule) {
        TestGateway.Response r = gw.post(base() + "/audiences/estimate", JSON.createObjectNode().put("rule", rule).toString());
        assertThat(r.status()).as(rule + " -> " + r.raw().body()).isEqualTo(200);
        return r.json().get("count").asLong();
    }

    /** The quintile score as documented: 1 + 5 * (rank of the value's first occurrence) / n. */
    private static int score(long[] sorted, long v) {
        int rank = 0;
        while (sorted[rank] != v) {
            rank++;
        }
        return 1 + (int) (5L * rank / sorted.length);
    }

    @Test
    void lifecycleAndRfmMatchThePopulationAndRulesSelectThem() {
        Random r = new Random(21);
        int n = 400;
        Map<String, String> lifecycle = new HashMap<>();
        Map<String, long[]> rfm = new HashMap<>(); // user -> {days since last purchase, count, sum * 1000}
        ArrayNode users = JSON.createArrayNode();
        List<ObjectNode> events = new ArrayList<>();
        long today = Math.floorDiv(NOW.toEpochMilli(), DAY);
        for (int i = 0; i < n; i++) {
            String u = "t-u" + i;
            ObjectNode o = users.addObject().put("user", u);
            o.putArray("tags").add("pop");
            int signupDaysAgo = r.nextInt(60);
            o.putObject("attributes").put("signup_at", NOW.minus(Duration.ofDays(signupDaysAgo)).minusSeconds(60).toString());
            int lastActive = r.nextInt(10) == 0 ? -1 : r.nextInt(80); // -1: never
            if (lastActive >= 0) {
                events.add(JSON.createObjectNode().put("user", u).put("name", "app_open")
                        .put("at", NOW.minus(Duration.ofDays(lastActive)).toString()));
            }
            if (r.nextInt(3) > 0) {
                int purchases = 1 + r.nextInt(5);
                long last = Long.MAX_VALUE;
                long sum = 0;
                for (int k = 0; k < purchases; k++) {
                    int ago = r.nextInt(85);
                    int amount = 1 + r.nextInt(300);
                    events.add(JSON.createObjectNode().put("user", u).put("name", "purchase")
                            .put("at", NOW.minus(Duration.ofDays(ago)).toString())
                            .set("properties", JSON.createObjectNode().put("amount", amount)));
                    last = Math.min(last, ago);
                    sum += amount * 1000L;
                }
                rfm.put(u, new long[] {last, purchases, sum});
                lastActive = lastActive < 0 ? (int) last : Math.min(lastActive, (int) last);
            }
            // Activity is any event, purchases included.
            String stage = signupDaysAgo < 7 ? "new" : lastActive >= 0 && lastActive < 14 ? "active"
                    : lastActive >= 0 && lastActive < 45 ? "silent" : "churned";
            lifecycle.put(u, stage);
        }
        assertThat(gw.post(base() + "/users", JSON.createObjectNode().set("users", users).toString()).status()).isEqualTo(200);
        TestGateway.Response posted = gw.post(base() + "/events", JSON.createObjectNode()
                .set("events", JSON.valueToTree(events)).toString());
        assertThat(posted.json().get("recorded").asInt()).as(posted.raw().body()).isEqualTo(events.size());

        TestGateway.Response computed = gw.post(base() + "/tiers/compute", null);
        assertThat(computed.status()).as(computed.raw().body()).isEqualTo(200);
        assertThat(computed.json().get("computedAt").asText()).isEqualTo(NOW.toString());

        // Lifecycle: exactly one stage each.
        Map<String, Long> stages = new HashMap<>();
        lifecycle.values().forEach(s -> stages.merge(s, 1L, Long::sum));
        for (String s : List.of("new", "active", "silent", "churned")) {
            assertThat(computed.json().get("lifecycle").get(s).asLong()).as(s).isEqualTo(stages.getOrDefault(s, 0L));
            assertThat(count("lifecycle = \"" + s + "\" AND tag:pop")).as(s).isEqualTo(stages.getOrDefault(s, 0L));
        }
        assertThat(count("lifecycle != \"churned\" AND tag:pop")).isEqualTo(n - stages.getOrDefault("churned", 0L));
        for (String u : List.of("t-u0", "t-u1", "t-u2", "t-u3")) {
            assertThat(gw.get(base() + "/users/" + u).json().get("tiers").get("lifecycle").asText()).as(u)
                    .isEqualTo(lifecycle.get(u));
        }
        assertThat(count("lifecycle IN (\"new\", \"active\")")).isEqualTo(stages.getOrDefault("new", 0L)
                + stages.getOrDefault("active", 0L));

        // RFM: quintiles among purchasers.
        long[] rec = rfm.values().stream().mapToLong(v -> -v[0]).sorted().toArray();
        long[] freq = rfm.values().stream().mapToLong(v -> v[1]).sorted().toArray();
        long[] mon = rfm.values().stream().mapToLong(v -> v[2]).sorted().toArray();
        Map<String, Long> segments = new HashMap<>();
        for (long[] v : rfm.values()) {
            int rs = score(rec, -v[0]);
            int fm = (score(freq, v[1]) + score(mon, v[2]) + 1) / 2;
            segments.merge(GRID[rs - 1][fm - 1], 1L, Long::sum);
        }
        JsonNode got = computed.json().get("rfm");
        long total = 0;
        for (String seg : List.of("champions", "loyal", "potential_loyalists", "new", "promising", "needs_attention",
                "about_to_sleep", "cannot_lose", "at_risk", "hibernating")) {
            assertThat(got.get(seg).asLong()).as(seg).isEqualTo(segments.getOrDefault(seg, 0L));
            total += got.get(seg).asLong();
        }
        assertThat(total).isEqualTo(rfm.size());
        assertThat(count("rfm IN (\"champions\", \"loyal\") AND tag:pop"))
                .isEqualTo(segments.getOrDefault("champions", 0L) + segments.getOrDefault("loyal", 0L));
        assertThat(count("rfm = \"at_risk\" AND lifecycle = \"churned\"")).isLessThanOrEqualTo(
                segments.getOrDefault("at_risk", 0L));
        assertThat(gw.get(base() + "/tiers").json().get("rfm")).isEqualTo(got);

        // Rules name only real stages and segments.
        TestGateway.Response bad = gw.post(base() + "/audiences/estimate", "{\"rule\":\"rfm = \\\"vip\\\"\"}");
        assertThat(bad.status()).isEqualTo(422);
        assertThat(bad.json().get("error").get("message").asText()).contains("column 7", "champions");
        assertThat(Arrays.asList(GRID[4])).contains("champions");
    }
}
