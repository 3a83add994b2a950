package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.UUID;
import java.util.function.Predicate;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Behavioural events and the rule terms over them, on a gateway whose clock the test sets (UTC
 * days, windows and the 5-minute future limit never depend on when the test runs). Counts are
 * compared with what the test computes from the events it generated.
 */
@Timeout(180)
class EventsIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Instant NOW = Instant.parse("2026-06-15T12:00:00Z");

    private static final TestClock CLOCK = new TestClock(NOW.toString());
    private static TestGateway gw;

    @BeforeAll
    static void start() throws Exception {
        gw = TestGateway.withClock("apps.APP.events { window-days = 30, sum { purchase = amount } }", CLOCK);
    }

    @AfterAll
    static void stop() {
        gw.close();
    }

    private static String base() {
        return "/v1/apps/" + gw.app;
    }

    private static TestGateway.Response post(ArrayNode events) {
        return gw.post(base() + "/events", JSON.createObjectNode().set("events", events).toString());
    }

    private static long count(String rule) {
        TestGateway.Response r = gw.post(base() + "/audiences/estimate", JSON.createObjectNode().put("rule", rule).toString());
        assertThat(r.status()).as(rule + " -> " + r.raw().body()).isEqualTo(200);
        return r.json().get("count").asLong();
    }

    /** One generated event. */
    record Ev(String user, String name, Instant at, double amount) {
    }

    @Test
    void countsSumsAndWindowsMatchTheEventsPosted() {
        String p = "p" + UUID.randomUUID().toString().substring(0, 6);
        Random r = new Random(13);
        List<Ev> events = new ArrayList<>();
        List<String> users = new ArrayList<>();
        for (int u = 0; u < 300; u++) {
            users.add(p + "-u" + u);
        }
        for (String u : users) {
            int n = r.nextInt(6);
            for (int i = 0; i < n; i++) {
                Instant at = NOW.minus(Duration.ofHours(r.nextInt(29 * 24)));
                events.add(new Ev(u, r.nextBoolean() ? "purchase" : "app_open", at, r.nextInt(100)));
            }
        }
        ArrayNode body = JSON.createArrayNode();
        for (Ev e : events) {
            ObjectNode o = body.addObject().put("user", e.user()).put("name", e.name()).put("at", e.at().toString());
            o.putObject("properties").put("amount", e.amount()).put("sku", "ignored");
        }
        // Every user carries the test's tag, so counts stay within this test's users.
        TestGateway.Response tag = gw.post(base() + "/tags/" + p, JSON.createObjectNode().set("add", JSON.valueToTree(users)).toString());
        assertThat(tag.status()).isEqualTo(200);
        TestGateway.Response posted = post(body);
        assertThat(posted.status()).as(posted.raw().body()).isEqualTo(200);
        assertThat(posted.json().get("recorded").asInt()).isEqualTo(events.size());

        long today = Math.floorDiv(NOW.toEpochMilli(), 86_400_000L);
        java.util.function.BiFunction<String, Integer, Map<String, double[]>> agg = (name, days) -> {
            Map<String, double[]> m = new HashMap<>();
            for (Ev e : events) {
                long d = Math.floorDiv(e.at().toEpochMilli(), 86_400_000L);
                if (e.name().equals(name) && d > today - days) {
                    double[] v = m.computeIfAbsent(e.user(), k -> new double[2]);
                    v[0]++;
                    v[1] += e.amount();
                }
            }
            return m;
        };
        Map<String, double[]> p7 = agg.apply("purchase", 7);
        Map<String, double[]> p30 = agg.apply("purchase", 30);
        Map<String, double[]> o7 = agg.apply("app_open", 7);
        Predicate<String> none = u -> false;
        check("event.purchase.within(7d) AND tag:" + p, users, p7::containsKey);
        check("event.purchase.count(30d) >= 2 AND tag:" + p, users, u -> p30.containsKey(u) && p30.get(u)[0] >= 2);
        check("event.purchase.count(30d) = 3 AND tag:" + p, users, u -> p30.containsKey(u) && p30.get(u)[0] == 3);
        check("event.purchase.count(30d) < 2 AND tag:" + p, users, u -> !p30.containsKey(u) || p30.get(u)[0] < 2);
        check("event.purchase.count(7d) = 0 AND tag:" + p, users, u -> !p7.containsKey(u));
        check("event.purchase.sum(30d) >= 100 AND tag:" + p, users, u -> p30.containsKey(u) && p30.get(u)[1] >= 100);
        check("NOT event.purchase.sum(30d) >= 100 AND tag:" + p, users, u -> !p30.containsKey(u) || p30.get(u)[1] < 100);
        check("event.purchase.count(30d) >= 2 AND NOT event.app_open.within(7d) AND tag:" + p, users,
                u -> p30.containsKey(u) && p30.get(u)[0] >= 2 && !o7.containsKey(u));
        check("(event.app_open.count(7d) > 1 OR event.purchase.sum(7d) > 150) AND tag:" + p, users,
                u -> (o7.containsKey(u) && o7.get(u)[0] > 1) || (p7.containsKey(u) && p7.get(u)[1] > 150));
        check("event.nothing.within(30d) AND tag:" + p, users, none);

        // The user read shows the summary.
        String someone = p30.keySet().iterator().next();
        JsonNode user = gw.get(base() + "/users/" + someone).json();
        assertThat(user.get("events").get("purchase").get("count").asLong()).isEqualTo((long) p30.get(someone)[0]);
        assertThat(user.get("events").get("purchase").get("sum").asDouble()).isEqualTo(p30.get(someone)[1]);
        assertThat(user.get("windowDays").asInt()).isEqualTo(30);
    }

    private static void check(String rule, List<String> users, Predicate<String> expected) {
        Set<String> want = new HashSet<>();
        users.stream().filter(expected).forEach(want::add);
        assertThat(count(rule)).as(rule).isEqualTo(want.size());
    }

    @Test
    void idsMakeRetriesIdempotentAndBadEventsFailAlone() {
        String p = "p" + UUID.randomUUID().toString().substring(0, 6);
        ArrayNode body = JSON.createArrayNode();
        body.addObject().put("user", p + "-a").put("name", "paid").put("id", "order-1");
        body.addObject().put("user", p + "-a").put("name", "paid").put("id", "order-2");
        body.addObject().put("user", p + "-a").put("name", "paid").put("at", NOW.minus(Duration.ofDays(31)).toString());
        body.addObject().put("user", p + "-a").put("name", "paid").put("at", NOW.plus(Duration.ofMinutes(6)).toString());
        body.addObject().put("user", p + "-a").put("name", "paid").put("at", NOW.plus(Duration.ofMinutes(4)).toString());
        body.addObject().put("user", p + "-a").put("name", "9lives");
        body.addObject().put("user", p + "-a").put("name", "purchase").putObject("properties").put("amount", "ten");
        body.addObject().put("user", p + "-a").put("name", "paid").put("colour", "red");
        body.addObject().put("name", "paid");
        TestGateway.Response first = post(body);
        assertThat(first.status()).as(first.raw().body()).isEqualTo(200);
        assertThat(first.json().get("recorded").asInt()).isEqualTo(3);
        assertThat(first.json().get("rejected").asInt()).isEqualTo(6);
        List<String> fields = new ArrayList<>();
        first.json().get("errors").forEach(e -> fields.add(e.get("field").asText()));
        assertThat(fields).containsExactly("events[2].at", "events[3].at", "events[5].name",
                "events[6].properties.amount", "events[7].colour", "events[8].user");
        // The retry: the two with ids are duplicates; the one without is counted again.
        ArrayNode retry = JSON.createArrayNode();
        retry.add(body.get(0)).add(body.get(1)).add(body.get(4));
        TestGateway.Response second = post(retry);
        assertThat(second.json().get("recorded").asInt()).isEqualTo(1);
        assertThat(second.json().get("duplicates").asInt()).isEqualTo(2);
        assertThat(second.json().get("duplicateIndexes").toString()).isEqualTo("[0,1]");
        JsonNode user = gw.get(base() + "/users/" + p + "-a").json();
        assertThat(user.get("events").get("paid").get("count").asInt()).isEqualTo(4);
        // Limits of the request.
        assertThat(post(JSON.createArrayNode()).status()).isEqualTo(422);
        ArrayNode many = JSON.createArrayNode();
        for (int i = 0; i < 10_001; i++) {
            many.addObject().put("user", "u").put("name", "n");
        }
        assertThat(post(many).status()).isEqualTo(413);
    }

    @Test
    void appOpensFeedADecayedEngagementHistogramInTheUsersLocalHours() {
        String u = "p" + UUID.randomUUID().toString().substring(0, 6) + "-eng";
        assertThat(gw.send("PUT", base() + "/users/" + u, "{\"timeZone\":\"Asia/Shanghai\"}", gw.key).status()).isEqualTo(200);
        ArrayNode body = JSON.createArrayNode();
        // Three opens four weeks and 9 hours ago at 03:00Z = 11:00 in Shanghai, one now at 12:00Z = 20:00.
        for (int i = 0; i < 3; i++) {
            body.addObject().put("user", u).put("name", "app_open").put("at", NOW.minus(Duration.ofDays(28)).minus(Duration.ofHours(9)).toString());
        }
        body.addObject().put("user", u).put("name", "app_open").put("at", NOW.toString());
        assertThat(post(body).json().get("recorded").asInt()).isEqualTo(4);
        JsonNode eng = gw.get(base() + "/users/" + u).json().get("engagement");
        assertThat(eng.get("timeZone").asText()).isEqualTo("Asia/Shanghai");
        assertThat(eng.get("hours").get(20).asDouble()).isEqualTo(1.0);
        // 28 days and 9 hours old at a half-life of 14 days.
        double old = 3 * Math.pow(0.5, (28 * 24 + 9) / (14.0 * 24));
        assertThat(eng.get("hours").get(11).asDouble()).isCloseTo(old, org.assertj.core.data.Offset.offset(0.001));
        assertThat(eng.get("habitualHour").asInt()).isEqualTo(20);
        // Another app open at 11:00 local tips the habit.
        ArrayNode more = JSON.createArrayNode();
        more.addObject().put("user", u).put("name", "app_open").put("at", NOW.minus(Duration.ofHours(1)).minus(Duration.ofMinutes(0)).toString());
        more.addObject().put("user", u).put("name", "app_open").put("at", NOW.minus(Duration.ofHours(9)).toString());
        assertThat(post(more).json().get("recorded").asInt()).isEqualTo(2);
        JsonNode after = gw.get(base() + "/users/" + u).json().get("engagement");
        assertThat(after.get("hours").get(11).asDouble()).isGreaterThan(after.get("hours").get(19).asDouble());
        assertThat(after.get("habitualHour").asInt()).isEqualTo(11);
    }

    @Test
    void windowsMoveWithTheClockAndDeletedUsersLoseTheirEvents() {
        String p = "p" + UUID.randomUUID().toString().substring(0, 6);
        ArrayNode body = JSON.createArrayNode();
        body.addObject().put("user", p + "-old").put("name", "visit").put("at", NOW.minus(Duration.ofDays(6)).toString());
        body.addObject().put("user", p + "-new").put("name", "visit").put("at", NOW.toString());
        assertThat(post(body).json().get("recorded").asInt()).isEqualTo(2);
        String rule = "event.visit.within(7d) AND NOT tag:" + p + "_none";
        assertThat(count("event.visit.within(7d) AND bucket(0..99)")).isGreaterThanOrEqualTo(2);
        long before = count(rule);
        Instant saved = CLOCK.now();
        try {
            CLOCK.set(NOW.plus(Duration.ofDays(1)));
            // The old visit is now 7 days back: outside a 7-day window (today and the 6 days before).
            assertThat(count(rule)).isEqualTo(before - 1);
            assertThat(count("event.visit.within(8d) AND NOT tag:" + p + "_none")).isEqualTo(before);
        } finally {
            CLOCK.set(saved);
        }
        var redis = gw.herald.redis().shared().sync();
        long idx = Long.parseLong(redis.hget(io.herald.gateway.redis.Keys.devices(gw.app, p + "-new"), "@idx"));
        int shard = (int) (idx >>> io.herald.gateway.redis.Keys.USER_SHARD_BITS);
        assertThat(redis.hexists(io.herald.gateway.redis.Keys.eventCounts(gw.app, shard, "visit"), Long.toString(idx))).isTrue();
        assertThat(gw.send("DELETE", base() + "/users/" + p + "-new", null, gw.key).status()).isEqualTo(204);
        assertThat(redis.hexists(io.herald.gateway.redis.Keys.eventCounts(gw.app, shard, "visit"), Long.toString(idx))).isFalse();
        assertThat(redis.hexists(io.herald.gateway.redis.Keys.eventNames(gw.app, shard), Long.toString(idx))).isFalse();
        assertThat(redis.hexists(io.herald.gateway.redis.Keys.userIds(gw.app, shard), Long.toString(idx))).isFalse();
        assertThat(count(rule)).isEqualTo(before - 1);
        assertThat(gw.get(base() + "/users/" + p + "-new").status()).isEqualTo(404);
    }
}
