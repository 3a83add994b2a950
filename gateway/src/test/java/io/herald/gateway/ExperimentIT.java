package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.herald.gateway.TestGateway.JSON;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The horse race and the gray rollout (issue 16), end to end on a real Redis (standalone and
 * cluster) with the launcher ticked by hand on a test clock: the test share goes out split over the
 * variants, devices post click receipts, the decision at {@code decideAfter} sends the rest the
 * winner; a rollout advances through a passing gate and pauses at a failing one.
 */
@Timeout(180)
class ExperimentIT {
    private static final Pattern COPY = Pattern.compile("([A-Z]) Hi ([a-z0-9-]+)");

    private static String base(TestGateway gw) {
        return "/v1/apps/" + gw.app;
    }

    /** {@code n} users {@code prefix-<i>} tagged {@code tag}, each with an APNs device; those in {@code failing} fail permanently. */
    private static void users(TestGateway gw, String prefix, int n, String tag, java.util.function.IntPredicate failing) {
        ArrayNode users = JSON.createArrayNode();
        for (int i = 0; i < n; i++) {
            String token = TestGateway.token();
            ObjectNode o = users.addObject().put("user", prefix + "-" + i);
            o.putArray("tags").add(tag);
            o.putArray("devices").addObject().put("id", "phone").put("platform", "apns").put("token", token);
            if (failing.test(i)) {
                gw.sandbox().scriptAlways(token, SandboxApns.Answer.PAYLOAD_TOO_LARGE);
            }
        }
        String body = JSON.createObjectNode().set("users", users).toString();
        TestGateway.Response r = gw.post(base(gw) + "/users", body);
        for (int retry = 0; retry < 3 && r.status() == 503; retry++) {
            r = gw.post(base(gw) + "/users", body);
        }
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
    }

    private static void template(TestGateway gw, String id, String letter) {
        TestGateway.Response t = gw.post(base(gw) + "/templates", "{\"id\":\"" + id + "\",\"name\":\"v\",\"defaultLocale\":"
                + "\"en\",\"locales\":{\"en\":{\"push\":{\"title\":\"Sale\",\"body\":\"" + letter + " Hi {{user.id}}\"}}}}");
        assertThat(t.status()).as(t.raw().body()).isEqualTo(201);
    }

    private static String approved(TestGateway gw, String body) {
        TestGateway.Response c = gw.post(base(gw) + "/campaigns", body);
        assertThat(c.status()).as(c.raw().body()).isEqualTo(201);
        String id = c.json().get("id").asText();
        TestGateway.Response k = gw.post(base(gw) + "/keys", "{\"roles\":[\"approve\",\"read\"]}");
        assertThat(gw.post(base(gw) + "/campaigns/" + id + "/submit", "").status()).isEqualTo(200);
        assertThat(gw.send("POST", base(gw) + "/campaigns/" + id + "/approve", "", k.json().get("key").asText())
                .status()).isEqualTo(200);
        return id;
    }

    private static JsonNode campaign(TestGateway gw, String id) {
        TestGateway.Response r = gw.get(base(gw) + "/campaigns/" + id);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    private static void ticks(TestGateway gw) throws Exception {
        for (int i = 0; i < 1000 && gw.herald.campaignLauncher().tick(); i++) {
            // feed until nothing but time holds it
        }
    }

    /** The accepted pushes whose body starts with one of {@code letters}: message id -> {letter, user, receipt token}. */
    private static Map<String, String[]> pushes(TestGateway gw, String letters) throws Exception {
        Map<String, String[]> out = new HashMap<>();
        for (UUID m : gw.sandbox().acceptedIds().keySet()) {
            String payload = String.valueOf(gw.sandbox().payload(m));
            Matcher mm = COPY.matcher(payload);
            if (mm.find() && letters.contains(mm.group(1))) {
                JsonNode h = JSON.readTree(payload).get("herald");
                out.put(h.get("id").asText(), new String[] {mm.group(1), mm.group(2), h.get("t").asText()});
            }
        }
        return out;
    }

    /**
     * Posts device receipts as the SDK does: an item answered 409 (its push is accepted at the peer
     * but the record stage has not written it yet) is sent again until every item is applied.
     */
    private static void postReceipts(TestGateway gw, List<String> receipts) {
        List<String> left = new ArrayList<>(receipts);
        await().atMost(Duration.ofSeconds(30)).until(() -> {
            TestGateway.Response r = gw.send("POST", "/v1/receipts", "{\"receipts\":[" + String.join(",", left) + "]}",
                    null);
            assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
            List<String> again = new ArrayList<>();
            for (JsonNode x : r.json().get("receipts")) {
                if (x.get("status").asInt() == 409) {
                    again.add(left.get(x.get("index").asInt()));
                } else {
                    assertThat(x.get("status").asInt()).as(x.toString()).isEqualTo(200);
                }
            }
            left.clear();
            left.addAll(again);
            return left.isEmpty();
        });
    }

    @Test
    void theHorseRaceSendsTheTestShareThenTheSignificantWinnerToTheRest() throws Exception {
        TestClock clock = new TestClock(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "h", 400, "vip", i -> false);
            template(gw, "ta", "A");
            template(gw, "tb", "B");
            String variants = "\"content\":{\"variants\":[{\"id\":\"a\",\"template\":\"ta\"},{\"id\":\"b\",\"template\":\"tb\"}]}";
            TestGateway.Response bad = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":\"tag:vip\"},"
                    + "\"content\":{\"template\":\"ta\"},\"experiment\":{}}");
            assertThat(bad.status()).isEqualTo(422);
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("experiment");
            bad = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":\"tag:vip\"}," + variants
                    + ",\"experiment\":{\"metric\":\"likes\"}}");
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("experiment.metric");
            bad = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":\"tag:vip\"}," + variants
                    + ",\"experiment\":{\"metric\":\"conversion\"}}");
            assertThat(bad.json().get("error").get("message").asText()).contains("conversionEvent");

            String id = approved(gw, "{\"name\":\"race\",\"audience\":{\"rule\":\"tag:vip\"}," + variants
                    + ",\"experiment\":{\"testPercent\":25,\"metric\":\"click\",\"decideAfter\":\"10m\","
                    + "\"minPerVariant\":10,\"alpha\":0.05,\"noWinner\":\"stop\"}}");
            ticks(gw);
            JsonNode p = campaign(gw, id).get("progress");
            long test = p.get("fed").asLong();
            assertThat(test).as("about 25% of 400").isBetween(60L, 140L);
            assertThat(p.get("phase").asInt()).isZero();
            Map<String, String[]> sent = new HashMap<>();
            await().atMost(Duration.ofSeconds(30)).until(() -> {
                sent.clear();
                sent.putAll(pushes(gw, "AB"));
                return sent.size() == test;
            });
            // Every B push is clicked, one A push in ten.
            List<String> receipts = new ArrayList<>();
            long clicksB = 0;
            long clicksA = 0;
            int nthA = 0;
            for (Map.Entry<String, String[]> e : sent.entrySet()) {
                boolean b = e.getValue()[0].equals("B");
                if (b || nthA++ % 10 == 0) {
                    receipts.add("{\"messageId\":\"" + e.getKey() + "\",\"event\":\"clicked\",\"token\":\""
                            + e.getValue()[2] + "\"}");
                    if (b) {
                        clicksB++;
                    } else {
                        clicksA++;
                    }
                }
            }
            long b = sent.values().stream().filter(v -> v[0].equals("B")).count();
            assertThat(b).as("both variants race").isBetween(test / 4, 3 * test / 4);
            postReceipts(gw, receipts);
            long wantB = clicksB;
            long wantA = clicksA;
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                JsonNode v = gw.get(base(gw) + "/campaigns/" + id + "/report").json().get("variants");
                assertThat(v.get("b").get("counts").get("clicked").asLong()).isEqualTo(wantB);
                assertThat(v.get("a").get("counts").get("clicked").asLong()).isEqualTo(wantA);
                assertThat(v.get("a").get("counts").get("accepted").asLong() + v.get("b").get("counts").get("accepted")
                        .asLong()).isEqualTo(test);
            });
            // Every test message has its outcome: the wait for the decision starts now.
            ticks(gw);
            assertThat(campaign(gw, id).get("progress").has("phaseFedAt")).isTrue();
            // Before decideAfter nothing moves; after it the decision is taken and the rest gets B only.
            clock.advance(Duration.ofMinutes(9));
            ticks(gw);
            assertThat(campaign(gw, id).get("progress").has("decision")).isFalse();
            assertThat(campaign(gw, id).get("progress").get("fed").asLong()).isEqualTo(test);
            JsonNode early = gw.get(base(gw) + "/campaigns/" + id + "/report").json();
            assertThat(early.get("experiment").get("state").asText()).isEqualTo("waiting");
            clock.advance(Duration.ofMinutes(1));
            ticks(gw);
            ticks(gw);
            JsonNode report = gw.get(base(gw) + "/campaigns/" + id + "/report").json();
            JsonNode d = report.get("experiment").get("decision");
            assertThat(d.get("reason").asText()).as(d.toString()).isEqualTo("significant");
            assertThat(d.get("winner").asText()).isEqualTo("b");
            assertThat(d.get("chosen").asText()).isEqualTo("b");
            assertThat(d.get("pValue").asDouble()).isLessThan(0.05);
            assertThat(d.get("arms")).hasSize(2);
            assertThat(d.get("arms").get(1).get("clicked").asLong()).isEqualTo(wantB);
            assertThat(report.get("variants").get("a").get("vsBest").get("best").asText()).isEqualTo("b");
            assertThat(report.get("variants").get("a").get("vsBest").get("pValue").asDouble()).isLessThan(0.05);
            assertThat(campaign(gw, id).get("state").asText()).isEqualTo("completed");
            await().atMost(Duration.ofSeconds(30)).until(() -> pushes(gw, "AB").size() == 400);
            Map<String, String[]> all = pushes(gw, "AB");
            assertThat(all.values().stream().map(v -> v[1]).distinct().count()).as("each user once").isEqualTo(400);
            long aAll = all.values().stream().filter(v -> v[0].equals("A")).count();
            assertThat(aAll).as("A only in the test share").isEqualTo(test - b);

            // No clicks at all: no data, and noWinner stop leaves the rest unsent.
            users(gw, "s", 200, "late", i -> false);
            template(gw, "tc", "C");
            template(gw, "td", "D");
            String stop = approved(gw, "{\"name\":\"quiet\",\"audience\":{\"rule\":\"tag:late\"},\"content\":{\"variants\":"
                    + "[{\"id\":\"c\",\"template\":\"tc\"},{\"id\":\"d\",\"template\":\"td\"}]},\"experiment\":{"
                    + "\"testPercent\":20,\"decideAfter\":\"5m\",\"minPerVariant\":1,\"noWinner\":\"stop\"}}");
            ticks(gw);
            long share = campaign(gw, stop).get("progress").get("fed").asLong();
            assertThat(share).isBetween(15L, 70L);
            awaitSettled(gw, stop, share);
            ticks(gw);
            clock.advance(Duration.ofMinutes(5));
            ticks(gw);
            JsonNode s = campaign(gw, stop);
            assertThat(s.get("state").asText()).isEqualTo("completed");
            assertThat(s.get("progress").get("decision").get("reason").asText()).isEqualTo("no_data");
            assertThat(s.get("progress").get("outcome").asText()).contains("noWinner stop");
            assertThat(s.get("progress").get("fed").asLong()).isEqualTo(share);
        }
    }

    @Test
    void aRaceOnConversionsCountsTheTestMembersWithTheEvent() throws Exception {
        TestClock clock = new TestClock(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "c", 300, "buyers", i -> false);
            template(gw, "ta", "A");
            template(gw, "tb", "B");
            String id = approved(gw, "{\"name\":\"conv\",\"audience\":{\"rule\":\"tag:buyers\"},\"content\":{"
                    + "\"variants\":[{\"id\":\"a\",\"template\":\"ta\"},{\"id\":\"b\",\"template\":\"tb\"}]},"
                    + "\"conversionEvent\":\"purchase\",\"experiment\":{\"testPercent\":30,\"metric\":\"conversion\","
                    + "\"decideAfter\":\"30m\",\"minPerVariant\":10}}");
            ticks(gw);
            long test = campaign(gw, id).get("progress").get("fed").asLong();
            Map<String, String[]> sent = new HashMap<>();
            await().atMost(Duration.ofSeconds(30)).until(() -> {
                sent.clear();
                sent.putAll(pushes(gw, "AB"));
                return sent.size() == test;
            });
            // Every B user buys; no A user does.
            ArrayNode events = JSON.createArrayNode();
            long b = 0;
            for (String[] v : sent.values()) {
                if (v[0].equals("B")) {
                    events.addObject().put("user", v[1]).put("name", "purchase").put("at", clock.now().toString());
                    b++;
                }
            }
            assertThat(gw.post(base(gw) + "/events", JSON.createObjectNode().set("events", events).toString()).status())
                    .isIn(200, 202);
            awaitSettled(gw, id, test);
            ticks(gw);
            clock.advance(Duration.ofMinutes(30));
            ticks(gw);
            JsonNode d = campaign(gw, id).get("progress").get("decision");
            assertThat(d.get("winner").asText()).as(d.toString()).isEqualTo("b");
            assertThat(d.get("arms").get(1).get("members").asLong()).isEqualTo(b);
            assertThat(d.get("arms").get(1).get("converted").asLong()).isEqualTo(b);
            assertThat(d.get("arms").get(0).get("converted").asLong()).isZero();
            assertThat(d.get("arms").get(0).get("members").asLong()).isEqualTo(test - b);
        }
    }

    @Test
    void aRolloutAdvancesThroughPassingGatesAndPausesAtAFailingOne() throws Exception {
        TestClock clock = new TestClock(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "ok", 200, "fine", i -> false);
            users(gw, "bad", 200, "flaky", i -> i % 2 == 0);
            template(gw, "hello", "H");
            TestGateway.Response bad = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":\"tag:fine\"},"
                    + "\"content\":{\"template\":\"hello\"},\"rollout\":{\"stages\":[10,50]}}");
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("rollout.stages");
            bad = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":\"tag:fine\"},"
                    + "\"content\":{\"template\":\"hello\"},\"rollout\":{\"stages\":[10,100],\"gates\":{\"maxFailure\":0.1}}}");
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("rollout.gates.maxFailure");

            String rollout = ",\"rollout\":{\"stages\":[20,60,100],\"holdFor\":\"15m\",\"gates\":{\"maxFailureRate\":0.2,"
                    + "\"minSample\":10}}";
            String fine = approved(gw, "{\"name\":\"fine\",\"audience\":{\"rule\":\"tag:fine\"},\"content\":{\"template\":"
                    + "\"hello\"}" + rollout + "}");
            ticks(gw);
            long first = campaign(gw, fine).get("progress").get("fed").asLong();
            assertThat(first).as("about 20% of 200").isBetween(20L, 65L);
            awaitSettled(gw, fine, first);
            ticks(gw); // the stage has settled: its hold starts
            clock.advance(Duration.ofMinutes(14));
            ticks(gw);
            assertThat(campaign(gw, fine).get("progress").get("fed").asLong()).as("held for 15m").isEqualTo(first);
            clock.advance(Duration.ofMinutes(1));
            ticks(gw);
            long second = campaign(gw, fine).get("progress").get("fed").asLong();
            assertThat(second).as("about 60%").isBetween(90L, 150L);
            awaitSettled(gw, fine, second);
            ticks(gw);
            clock.advance(Duration.ofMinutes(15));
            ticks(gw);
            ticks(gw);
            JsonNode done = campaign(gw, fine);
            assertThat(done.get("state").asText()).isEqualTo("completed");
            assertThat(done.get("progress").get("fed").asLong()).isEqualTo(200);
            JsonNode gates = gw.get(base(gw) + "/campaigns/" + fine + "/report").json().get("rollout").get("gates");
            assertThat(gates).hasSize(2);
            assertThat(gates.get(0).get("passed").asBoolean()).isTrue();
            assertThat(gates.get(0).get("sample").asLong()).isEqualTo(first);
            assertThat(gates.get(1).get("sample").asLong()).as("the second stage's own sample").isEqualTo(second - first);

            // Half the devices fail: the first stage's gate pauses the campaign.
            String flaky = approved(gw, "{\"name\":\"flaky\",\"audience\":{\"rule\":\"tag:flaky\"},\"content\":{\"template\":"
                    + "\"hello\"}" + rollout + "}");
            ticks(gw);
            long stage1 = campaign(gw, flaky).get("progress").get("fed").asLong();
            awaitSettled(gw, flaky, stage1);
            ticks(gw);
            clock.advance(Duration.ofMinutes(15));
            ticks(gw);
            JsonNode c = campaign(gw, flaky);
            assertThat(c.get("state").asText()).isEqualTo("paused");
            JsonNode last = c.get("history").get(c.get("history").size() - 1);
            assertThat(last.get("by").asText()).isEqualTo("herald:guard");
            assertThat(last.get("reason").asText()).contains("rollout gate").contains("maxFailureRate");
            assertThat(c.get("progress").get("fed").asLong()).isEqualTo(stage1);
            JsonNode g = gw.get(base(gw) + "/campaigns/" + flaky + "/report").json().get("rollout").get("gates").get(0);
            assertThat(g.get("passed").asBoolean()).isFalse();
            assertThat(g.get("failureRate").asDouble()).isGreaterThan(0.2);
            // Resuming needs an acknowledgement; it overrides that gate and the next stage goes out.
            assertThat(gw.post(base(gw) + "/campaigns/" + flaky + "/resume", "{\"reason\":\"go\"}").status()).isEqualTo(409);
            assertThat(gw.post(base(gw) + "/campaigns/" + flaky + "/resume", "{\"acknowledge\":true,\"reason\":\"known bad "
                    + "tokens\"}").status()).isEqualTo(200);
            ticks(gw);
            ticks(gw);
            long stage2 = campaign(gw, flaky).get("progress").get("fed").asLong();
            assertThat(stage2).isGreaterThan(stage1).isLessThan(200);
            awaitSettled(gw, flaky, stage2);
            ticks(gw);
            clock.advance(Duration.ofMinutes(15));
            ticks(gw);
            JsonNode again = campaign(gw, flaky);
            assertThat(again.get("state").asText()).as("the second stage's own gate fails too").isEqualTo("paused");
            JsonNode gs = again.get("progress").get("gates");
            assertThat(gs.get(0).path("overridden").asBoolean()).isFalse();
            assertThat(gs.get(1).get("overridden").asBoolean()).isTrue();
            assertThat(gs.get(2).get("passed").asBoolean()).isFalse();
        }
    }

    @Test
    void seed003sDefaultGuardPausesACampaignWhoseRecipientsOptOutAndComplaintsAreCounted() throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            users(gw, "o", 400, "all", i -> false);
            template(gw, "hello", "H");
            // No guards given: the default (opt_out >= 3% with >= 200 accepted, over 1h).
            // 600 a minute: 400 users take 40 s, the guard trips after about 200.
            String id = approved(gw, "{\"name\":\"optout\",\"audience\":{\"rule\":\"tag:all\"},\"content\":{\"template\":"
                    + "\"hello\"},\"throttle\":{\"perMinute\":600}}");
            JsonNode rules = campaign(gw, id).get("guards");
            assertThat(rules).hasSize(1);
            assertThat(rules.get(0).get("metric").asText()).isEqualTo("opt_out");
            Map<String, String[]> first = new HashMap<>();
            await().atMost(Duration.ofSeconds(60)).until(() -> {
                first.clear();
                first.putAll(pushes(gw, "H"));
                return first.size() >= 20;
            });
            // Ten recipients withdraw consent through the API, two turn pushes off in the app
            // (receipt opted_out, sent twice: counted once), one reports the message.
            List<Map.Entry<String, String[]>> got = new ArrayList<>(first.entrySet());
            for (int i = 0; i < 10; i++) {
                TestGateway.Response r = gw.send("PUT", base(gw) + "/users/" + got.get(i).getValue()[1],
                        "{\"consent\":{\"push\":\"opted_out\"}}", gw.key);
                assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
            }
            List<String> receipts = new ArrayList<>();
            for (int i = 10; i < 12; i++) {
                String one = "{\"messageId\":\"" + got.get(i).getKey() + "\",\"event\":\"opted_out\",\"token\":\""
                        + got.get(i).getValue()[2] + "\"}";
                receipts.add(one);
                receipts.add(one);
            }
            receipts.add("{\"messageId\":\"" + got.get(12).getKey() + "\",\"event\":\"complained\",\"token\":\""
                    + got.get(12).getValue()[2] + "\"}");
            postReceipts(gw, receipts);
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                JsonNode n = campaign(gw, id).get("funnel").get("counts");
                assertThat(n.get("opt_out").asLong()).isEqualTo(12);
                assertThat(n.get("complaint").asLong()).isEqualTo(1);
            });
            // A user who turned pushes off in the app also withdraws consent (push and SMS) through the
            // API, and one who withdrew already does so again: still one opt-out per message.
            for (int i : new int[] {10, 0}) {
                assertThat(gw.send("PUT", base(gw) + "/users/" + got.get(i).getValue()[1],
                        "{\"consent\":{\"push\":\"opted_out\",\"sms\":\"opted_out\"}}", gw.key).status()).isEqualTo(200);
            }
            JsonNode message = gw.message(got.get(10).getKey());
            assertThat(message.toString()).contains("opt_out");
            assertThat(campaign(gw, id).get("funnel").get("counts").get("opt_out").asLong()).isEqualTo(12);
            await().atMost(Duration.ofSeconds(90)).pollInterval(Duration.ofMillis(200))
                    .until(() -> campaign(gw, id).get("state").asText().equals("paused"));
            JsonNode c = campaign(gw, id);
            JsonNode last = c.get("history").get(c.get("history").size() - 1);
            assertThat(last.get("by").asText()).isEqualTo("herald:guard");
            assertThat(last.get("reason").asText()).contains("opt_out").contains(">= pauseAt 3.0%");
            JsonNode tripped = c.get("progress").get("guard");
            assertThat(tripped.get("count").asLong()).isEqualTo(12);
            assertThat(tripped.get("volume").asLong()).isGreaterThanOrEqualTo(200);
            assertThat(c.get("progress").get("fed").asLong()).as("paused before the end").isLessThan(400);
            // The pause is on the app's event feed (and so its webhook), and counted in the metrics.
            JsonNode events = gw.get("/v1/events?limit=1000").json().get("events");
            List<String> names = new ArrayList<>();
            events.forEach(e -> names.add(e.get("event").asText()));
            assertThat(names).contains("guard_paused", "opt_out", "complaint");
            String scrape = gw.send("GET", "/metrics", null, null).raw().body();
            assertThat(scrape).contains("herald_campaign_guards_total{event=\"paused\",metric=\"opt_out\"}");
        }
    }

    /** Waits until every message fed so far has an outcome (accepted or failed) in the campaign's funnel. */
    private static void awaitSettled(TestGateway gw, String id, long fed) {
        await().atMost(Duration.ofSeconds(30)).until(() -> {
            JsonNode n = campaign(gw, id).get("funnel").get("counts");
            return n.get("accepted").asLong() + n.get("failed").asLong() == fed;
        });
    }
}
