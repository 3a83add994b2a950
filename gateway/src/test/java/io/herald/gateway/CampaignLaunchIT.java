package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.herald.gateway.TestGateway.JSON;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Campaign launch and fan-out: an approved campaign launches at its schedule, freezes its audience,
 * and reaches every member once with the copy rendered for each; the throttle paces the feed (on
 * a test clock: no waiting); a node that dies mid fan-out is replaced by another, and across both
 * nodes nobody gets the campaign twice.
 */
@Timeout(300)
class CampaignLaunchIT {
    private static final Pattern USER = Pattern.compile("Hi ([a-z0-9-]+)");

    private static String base(TestGateway gw) {
        return "/v1/apps/" + gw.app;
    }

    /** Imports {@code n} users named {@code prefix-<i>}, each with an APNs device; every {@code vipEvery}-th tagged vip. */
    private static List<String> users(TestGateway gw, String prefix, int n, int vipEvery) {
        List<String> vips = new ArrayList<>();
        for (int from = 0; from < n; from += 10_000) {
            ArrayNode users = JSON.createArrayNode();
            for (int i = from; i < Math.min(n, from + 10_000); i++) {
                String u = prefix + "-" + i;
                ObjectNode o = users.addObject().put("user", u);
                if (i % vipEvery == 0) {
                    o.putArray("tags").add("vip");
                    vips.add(u);
                }
                o.putArray("devices").addObject().put("id", "phone").put("platform", "apns").put("token", TestGateway.token());
            }
            String body = JSON.createObjectNode().set("users", users).toString();
            TestGateway.Response r = gw.post(base(gw) + "/users", body);
            for (int retry = 0; retry < 3 && r.status() == 503; retry++) {
                r = gw.post(base(gw) + "/users", body); // "storage unavailable; retry": an import is an upsert
            }
            assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
            assertThat(r.json().get("rejected").asInt()).as(r.raw().body()).isZero();
        }
        return vips;
    }

    /** A template whose push body names the user, so the peer tells who got what. */
    private static void template(TestGateway gw) {
        TestGateway.Response t = gw.post(base(gw) + "/templates", "{\"id\":\"hello\",\"name\":\"hello\",\"defaultLocale\":\"en\","
                + "\"locales\":{\"en\":{\"push\":{\"title\":\"Sale\",\"body\":\"Hi {{user.id}}\"}}}}");
        assertThat(t.status()).as(t.raw().body()).isEqualTo(201);
    }

    /** Creates, submits and approves (with a second key) a campaign; returns its id. */
    private static String approved(TestGateway gw, String extra) {
        TestGateway.Response c = gw.post(base(gw) + "/campaigns", "{\"name\":\"launch\",\"audience\":{\"rule\":\"tag:vip\"},"
                + "\"content\":{\"template\":\"hello\"}" + extra + "}");
        assertThat(c.status()).as(c.raw().body()).isEqualTo(201);
        String id = c.json().get("id").asText();
        TestGateway.Response k = gw.post(base(gw) + "/keys", "{\"roles\":[\"approve\",\"read\"]}");
        assertThat(k.status()).as(k.raw().body()).isEqualTo(201);
        assertThat(gw.post(base(gw) + "/campaigns/" + id + "/submit", "").status()).isEqualTo(200);
        TestGateway.Response a = gw.send("POST", base(gw) + "/campaigns/" + id + "/approve", "", k.json().get("key").asText());
        assertThat(a.status()).as(a.raw().body()).isEqualTo(200);
        return id;
    }

    private static JsonNode campaign(TestGateway gw, String id) {
        TestGateway.Response r = gw.get(base(gw) + "/campaigns/" + id);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    private static long fed(TestGateway gw, String id) {
        return campaign(gw, id).path("progress").path("fed").asLong(0);
    }

    /** User -> the distinct message ids (apns-ids) the peers accepted for them, from the rendered bodies. */
    private static Map<String, Set<UUID>> received(SandboxApns... peers) {
        Map<String, Set<UUID>> out = new HashMap<>();
        for (SandboxApns peer : peers) {
            for (UUID id : peer.acceptedIds().keySet()) {
                Matcher m = USER.matcher(String.valueOf(peer.payload(id)));
                if (m.find()) {
                    out.computeIfAbsent(m.group(1), u -> new HashSet<>()).add(id);
                }
            }
        }
        return out;
    }

    @Test
    void aCampaignReachesEveryMemberOnceWithItsOwnCopyAndCompletes() throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            List<String> vips = users(gw, "m", 90, 3);
            template(gw);
            String id = approved(gw, "");
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> campaign(gw, id).get("state").asText().equals("completed"));
            JsonNode c = campaign(gw, id);
            assertThat(c.get("progress").get("audienceSize").asLong()).isEqualTo(30);
            assertThat(c.get("progress").get("fed").asLong()).isEqualTo(30);
            assertThat(c.get("progress").get("outcome").asText()).contains("every member fed");
            List<String> moves = new ArrayList<>();
            c.get("history").forEach(h -> moves.add(h.get("action").asText() + ":" + h.get("by").asText()));
            assertThat(moves).contains("launch:herald:" + gw.nodeId, "finish:herald:" + gw.nodeId);
            await().atMost(Duration.ofSeconds(30)).until(() -> received(gw.sandbox()).size() == vips.size());
            Map<String, Set<UUID>> got = received(gw.sandbox());
            assertThat(got.keySet()).containsExactlyInAnyOrderElementsOf(vips);
            assertThat(got.values()).allMatch(ids -> ids.size() == 1);
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                JsonNode counts = campaign(gw, id).get("funnel").get("counts");
                assertThat(counts.get("submitted").asLong()).isEqualTo(30);
                assertThat(counts.get("accepted").asLong()).isEqualTo(30);
            });
            TestGateway.Response test = gw.post(base(gw) + "/campaigns/" + id + "/test", "{\"users\":[\"m-1\"]}");
            assertThat(test.status()).as("no test sends for an ended campaign").isEqualTo(409);
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                TestGateway.Response r = gw.get(base(gw) + "/campaigns/" + id + "/report");
                assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
                JsonNode report = r.json();
                assertThat(report.get("state").asText()).isEqualTo("completed");
                assertThat(report.get("progress").get("audienceSize").asLong()).isEqualTo(30);
                assertThat(report.get("progress").get("fannedOut").asLong()).isEqualTo(30);
                assertThat(report.get("progress").get("percent").asDouble()).isEqualTo(100.0);
                assertThat(report.get("counts").get("accepted").asLong()).isEqualTo(30);
                assertThat(report.get("channels").get("apns").get("accepted").asLong()).isEqualTo(30);
                assertThat(report.get("channels").get("sms").get("accepted").asLong()).isZero();
                long perMinute = 0;
                for (JsonNode b : report.get("series").get("buckets")) {
                    perMinute += b.get("counts").get("submitted").asLong();
                }
                assertThat(report.get("series").get("bucket").asText()).isEqualTo("minute");
                assertThat(perMinute).as("the series adds up").isEqualTo(30);
            });
            assertThat(gw.get(base(gw) + "/campaigns/" + id + "/report?bucket=week").status()).isEqualTo(422);
        }
    }

    @Test
    void theScheduleAndTheThrottleRunOnTheClock() throws Exception {
        TestClock clock = new TestClock("2026-12-24T08:00:00Z");
        // Ticks are driven by the test: the launcher's own thread ticks rarely.
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "t", 50, 1);
            template(gw);
            // 600 a minute: chunks of 5 (half a second's worth), at most 5 + 10/s since the start.
            String id = approved(gw, ",\"schedule\":{\"type\":\"at\",\"at\":\"2026-12-24T09:00:00Z\"},"
                    + "\"throttle\":{\"perMinute\":600}");
            var launcher = gw.herald.campaignLauncher();
            launcher.tick();
            assertThat(campaign(gw, id).get("state").asText()).as("not due before 09:00").isEqualTo("approved");
            clock.set(java.time.Instant.parse("2026-12-24T09:00:00Z"));
            launcher.tick();
            JsonNode c = campaign(gw, id);
            assertThat(c.get("state").asText()).isEqualTo("running");
            assertThat(c.get("progress").get("fed").asLong()).as("one chunk at the start").isEqualTo(5);
            launcher.tick();
            launcher.tick();
            assertThat(fed(gw, id)).as("the clock has not moved: nothing more").isEqualTo(5);
            clock.advance(Duration.ofSeconds(3));
            launcher.tick();
            assertThat(fed(gw, id)).as("5 + 10/s x 3 s").isEqualTo(35);
            launcher.tick();
            assertThat(fed(gw, id)).isEqualTo(35);
            // Paused: nothing goes, however long; resumed: the pace starts again from then (no burst).
            assertThat(gw.post(base(gw) + "/campaigns/" + id + "/pause", "{\"reason\":\"check copy\"}").status())
                    .isEqualTo(200);
            launcher.tick();
            clock.advance(Duration.ofSeconds(30));
            launcher.tick();
            assertThat(fed(gw, id)).as("paused").isEqualTo(35);
            assertThat(gw.post(base(gw) + "/campaigns/" + id + "/resume", "").status()).isEqualTo(200);
            launcher.tick();
            assertThat(fed(gw, id)).as("one chunk on resume, not 30 s worth").isEqualTo(40);
            clock.advance(Duration.ofSeconds(10));
            launcher.tick();
            launcher.tick();
            c = campaign(gw, id);
            assertThat(c.get("progress").get("fed").asLong()).isEqualTo(50);
            assertThat(c.get("state").asText()).isEqualTo("completed");
            await().atMost(Duration.ofSeconds(30)).until(() -> received(gw.sandbox()).size() == 50);
        }
    }

    @Test
    void aLocalTimeCampaignWaitsForEachUsersMorningAndACancelStopsTheFeed() throws Exception {
        TestClock clock = new TestClock("2026-12-23T12:00:00Z");
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "z", 2, 1);
            assertThat(gw.send("PUT", base(gw) + "/users/z-0", "{\"timeZone\":\"Asia/Tokyo\"}", gw.key).status())
                    .isEqualTo(200);
            assertThat(gw.send("PUT", base(gw) + "/users/z-1", "{\"timeZone\":\"America/New_York\"}", gw.key).status())
                    .isEqualTo(200);
            template(gw);
            String id = approved(gw, ",\"schedule\":{\"type\":\"local_time\",\"localTime\":\"09:00\","
                    + "\"date\":\"2026-12-24\"}");
            var launcher = gw.herald.campaignLauncher();
            launcher.tick();
            assertThat(campaign(gw, id).get("state").asText()).as("launches when the first zone nears 09:00")
                    .isEqualTo("approved");
            clock.set(java.time.Instant.parse("2026-12-23T18:00:00Z")); // 09:00 at UTC+14 minus an hour
            launcher.tick();
            assertThat(campaign(gw, id).get("state").asText()).isEqualTo("completed");
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(campaign(gw, id).get("funnel")
                    .get("counts").get("deferred:local_time").asLong()).isEqualTo(2));
            clock.set(java.time.Instant.parse("2026-12-24T00:00:01Z")); // 09:00:01 in Tokyo, 19:00 in New York
            gw.herald.scheduler().tick();
            await().atMost(Duration.ofSeconds(30)).until(() -> received(gw.sandbox()).containsKey("z-0"));
            assertThat(received(gw.sandbox())).doesNotContainKey("z-1");
            clock.set(java.time.Instant.parse("2026-12-24T14:00:01Z")); // 09:00:01 in New York
            gw.herald.scheduler().tick();
            await().atMost(Duration.ofSeconds(30)).until(() -> received(gw.sandbox()).containsKey("z-1"));

            // A cancelled campaign stops feeding at the next tick and leaves the launcher.
            users(gw, "c", 20, 1);
            String slow = approved(gw, ",\"throttle\":{\"perMinute\":600}");
            launcher.tick();
            assertThat(launcher.running()).contains(slow);
            long fed = fed(gw, slow);
            assertThat(fed).isEqualTo(5);
            assertThat(gw.post(base(gw) + "/campaigns/" + slow + "/cancel", "{\"reason\":\"wrong crowd\"}").status())
                    .isEqualTo(200);
            clock.advance(Duration.ofMinutes(5));
            launcher.tick();
            assertThat(launcher.running()).doesNotContain(slow);
            assertThat(fed(gw, slow)).isEqualTo(fed);
            assertThat(campaign(gw, slow).get("state").asText()).isEqualTo("cancelled");
        }
    }

    @Test
    void aRecurringCampaignReEvaluatesItsAudienceEachRunAndSkipsWhoGotItRecently() throws Exception {
        TestClock clock = new TestClock("2026-12-01T08:00:00Z");
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "r", 10, 1);
            template(gw);
            String id = approved(gw, ",\"schedule\":{\"type\":\"recurring\",\"every\":\"day\",\"at\":\"09:00\","
                    + "\"until\":\"2026-12-03T12:00:00Z\"},\"reEligibleAfter\":\"36h\"");
            var launcher = gw.herald.campaignLauncher();
            launcher.tick();
            assertThat(campaign(gw, id).get("state").asText()).isEqualTo("approved");

            clock.set(java.time.Instant.parse("2026-12-01T09:00:00Z"));
            launcher.tick();
            JsonNode p = campaign(gw, id).get("progress");
            assertThat(campaign(gw, id).get("state").asText()).as("running between runs").isEqualTo("running");
            assertThat(p.get("run").asLong()).isEqualTo(2);
            assertThat(p.get("nextAt").asText()).isEqualTo("2026-12-02T09:00:00Z");
            assertThat(p.get("runs").get(0).get("fed").asLong()).isEqualTo(10);
            launcher.tick();
            assertThat(campaign(gw, id).get("progress").get("run").asLong()).as("not before the next run's time")
                    .isEqualTo(2);

            users(gw, "n", 5, 1); // joined the crowd since
            clock.set(java.time.Instant.parse("2026-12-02T09:00:00Z"));
            launcher.tick();
            p = campaign(gw, id).get("progress");
            assertThat(p.get("runs").get(1).get("audienceSize").asLong()).as("the 10 got it 24 h ago: skipped")
                    .isEqualTo(5);
            assertThat(p.get("runs").get(1).get("day").asText()).isEqualTo("2026-12-02");

            clock.set(java.time.Instant.parse("2026-12-03T09:00:00Z"));
            launcher.tick();
            JsonNode c = campaign(gw, id);
            assertThat(c.get("state").asText()).as("the next run would be after until").isEqualTo("completed");
            assertThat(c.get("progress").get("runs").get(2).get("fed").asLong())
                    .as("48 h since the first run: the 10 again; the 5 of yesterday skipped").isEqualTo(10);

            await().atMost(Duration.ofSeconds(30)).until(() -> received(gw.sandbox()).values().stream()
                    .mapToInt(Set::size).sum() == 25);
            Map<String, Set<UUID>> got = received(gw.sandbox());
            assertThat(got.get("r-0")).hasSize(2);
            assertThat(got.get("n-0")).hasSize(1);
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                JsonNode report = gw.get(base(gw) + "/campaigns/" + id + "/report").json();
                assertThat(report.get("counts").get("submitted").asLong()).as("the total over the runs").isEqualTo(25);
                assertThat(report.get("runs")).hasSize(3);
                assertThat(report.get("runs").get(1).get("counts").get("submitted").asLong()).isEqualTo(5);
                assertThat(report.get("runs").get(2).get("counts").get("submitted").asLong()).isEqualTo(10);
            });
        }
    }

    @Test
    void aPlanSumsItsCampaignsAndCountsTheGoalEventsOfWhoItReached() throws Exception {
        TestClock clock = new TestClock("2026-12-01T08:00:00Z");
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "p", 10, 1);
            template(gw);
            TestGateway.Response bad = gw.post(base(gw) + "/plans", "{\"name\":\"Winter\",\"goal\":\"fame\","
                    + "\"goalEvent\":\"purchase\"}");
            assertThat(bad.status()).isEqualTo(422);
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("goal");
            TestGateway.Response made = gw.post(base(gw) + "/plans", "{\"name\":\"Winter\",\"goal\":\"conversion\","
                    + "\"goalEvent\":\"purchase\",\"window\":\"3d\"}");
            assertThat(made.status()).as(made.raw().body()).isEqualTo(201);
            String plan = made.json().get("id").asText();
            TestGateway.Response unknown = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":"
                    + "\"tag:vip\"},\"content\":{\"template\":\"hello\"},\"plan\":\"nope\"}");
            assertThat(unknown.json().get("error").get("field").asText()).isEqualTo("plan");
            String id = approved(gw, ",\"plan\":\"" + plan + "\"");
            gw.herald.campaignLauncher().tick();
            assertThat(campaign(gw, id).get("state").asText()).isEqualTo("completed");

            // Two reached users buy within the window, one after it, and one who was not reached buys too.
            ArrayNode events = JSON.createArrayNode();
            events.addObject().put("user", "p-0").put("name", "purchase").put("at", "2026-12-01T10:00:00Z");
            events.addObject().put("user", "p-1").put("name", "purchase").put("at", "2026-12-02T10:00:00Z");
            events.addObject().put("user", "stranger").put("name", "purchase").put("at", "2026-12-01T10:00:00Z");
            clock.set(java.time.Instant.parse("2026-12-06T12:00:00Z"));
            events.addObject().put("user", "p-2").put("name", "purchase").put("at", "2026-12-06T10:00:00Z");
            TestGateway.Response posted = gw.post(base(gw) + "/events", JSON.createObjectNode().set("events", events).toString());
            assertThat(posted.status()).as(posted.raw().body()).isIn(200, 202);

            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                TestGateway.Response r = gw.get(base(gw) + "/plans/" + plan + "/report");
                assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
                JsonNode report = r.json();
                assertThat(report.get("campaigns")).hasSize(1);
                assertThat(report.get("campaigns").get(0).get("counts").get("submitted").asLong()).isEqualTo(10);
                assertThat(report.get("counts").get("submitted").asLong()).isEqualTo(10);
                assertThat(report.get("goal").get("reached").asLong()).isEqualTo(10);
                assertThat(report.get("goal").get("converted").asLong()).as("p-0 and p-1; not p-2 (after the window)")
                        .isEqualTo(2);
                assertThat(report.get("goal").get("conversionRate").asDouble()).isEqualTo(0.2);
                assertThat(report.get("goal").get("type").asText()).as("the plan's goal, kept").isEqualTo("conversion");
            });
            assertThat(gw.send("DELETE", base(gw) + "/plans/" + plan, null, gw.key).status())
                    .as("named by a campaign").isEqualTo(409);
        }
    }

    @Test
    void variantsAndTheHoldoutAreStickyPerUserAndTheReportMeasuresThem() throws Exception {
        TestClock clock = new TestClock("2026-12-01T08:00:00Z");
        try (TestGateway gw = TestGateway.withClock("scheduler.campaign-tick = 1h", clock)) {
            users(gw, "x", 200, 1);
            for (String v : new String[] {"a", "b"}) {
                TestGateway.Response t = gw.post(base(gw) + "/templates", "{\"id\":\"v" + v + "\",\"name\":\"v\","
                        + "\"defaultLocale\":\"en\",\"locales\":{\"en\":{\"push\":{\"title\":\"Sale\","
                        + "\"body\":\"" + v.toUpperCase() + " Hi {{user.id}}\"}}}}");
                assertThat(t.status()).as(t.raw().body()).isEqualTo(201);
            }
            String variants = "\"variants\":[{\"id\":\"a\",\"template\":\"va\",\"weight\":3},"
                    + "{\"id\":\"b\",\"template\":\"vb\"}]";
            TestGateway.Response one = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":"
                    + "\"tag:vip\"},\"content\":{\"variants\":[{\"id\":\"a\",\"template\":\"va\"}]}}");
            assertThat(one.json().get("error").get("field").asText()).isEqualTo("content.variants");
            TestGateway.Response much = gw.post(base(gw) + "/campaigns", "{\"name\":\"x\",\"audience\":{\"rule\":"
                    + "\"tag:vip\"},\"content\":{" + variants + "},\"holdoutPercent\":25}");
            assertThat(much.json().get("error").get("field").asText()).isEqualTo("holdoutPercent");
            // Two daily runs: a user keeps the variant (and the holdout keeps its users) across them.
            TestGateway.Response c = gw.post(base(gw) + "/campaigns", "{\"name\":\"ab\",\"audience\":{\"rule\":"
                    + "\"tag:vip\"},\"content\":{" + variants + "},\"holdoutPercent\":10,\"conversionEvent\":"
                    + "\"purchase\",\"conversionWindow\":\"3d\",\"schedule\":{\"type\":\"recurring\",\"every\":"
                    + "\"day\",\"at\":\"09:00\",\"until\":\"2026-12-02T12:00:00Z\"}}");
            assertThat(c.status()).as(c.raw().body()).isEqualTo(201);
            String id = c.json().get("id").asText();
            TestGateway.Response k = gw.post(base(gw) + "/keys", "{\"roles\":[\"approve\",\"read\"]}");
            assertThat(gw.post(base(gw) + "/campaigns/" + id + "/submit", "").status()).isEqualTo(200);
            assertThat(gw.send("POST", base(gw) + "/campaigns/" + id + "/approve", "", k.json().get("key").asText())
                    .status()).isEqualTo(200);
            var launcher = gw.herald.campaignLauncher();
            clock.set(java.time.Instant.parse("2026-12-01T09:00:00Z"));
            launcher.tick();
            clock.set(java.time.Instant.parse("2026-12-02T09:00:00Z"));
            launcher.tick();
            JsonNode p = campaign(gw, id).get("progress");
            assertThat(campaign(gw, id).get("state").asText()).isEqualTo("completed");
            long holdout = p.get("runs").get(0).get("holdout").asLong();
            long fed = p.get("runs").get(0).get("fed").asLong();
            assertThat(holdout + fed).isEqualTo(200);
            assertThat(holdout).as("about 10%").isBetween(5L, 40L);
            assertThat(p.get("runs").get(1).get("holdout").asLong()).as("the same users held out").isEqualTo(holdout);

            Pattern copy = Pattern.compile("([AB]) Hi (x-\\d+)");
            Map<String, List<String>> got = new HashMap<>();
            await().atMost(Duration.ofSeconds(30)).until(() -> {
                got.clear();
                for (UUID m : gw.sandbox().acceptedIds().keySet()) {
                    Matcher mm = copy.matcher(String.valueOf(gw.sandbox().payload(m)));
                    if (mm.find()) {
                        got.computeIfAbsent(mm.group(2), u -> new ArrayList<>()).add(mm.group(1));
                    }
                }
                return got.values().stream().mapToInt(List::size).sum() == 2 * fed;
            });
            assertThat(got).hasSize((int) fed);
            assertThat(got.values()).as("two runs, the same variant each time")
                    .allMatch(v -> v.size() == 2 && v.get(0).equals(v.get(1)));
            long a = got.values().stream().filter(v -> v.get(0).equals("A")).count();
            assertThat((double) a / fed).as("weights 3:1").isBetween(0.6, 0.9);

            // Conversions: two held-out users and three treated ones buy.
            clock.set(java.time.Instant.parse("2026-12-02T12:00:00Z"));
            List<String> held = new ArrayList<>();
            for (int i = 0; i < 200 && held.size() < 2; i++) {
                if (!got.containsKey("x-" + i)) {
                    held.add("x-" + i);
                }
            }
            List<String> treated = new ArrayList<>(got.keySet()).subList(0, 3);
            ArrayNode events = JSON.createArrayNode();
            for (String u : held) {
                events.addObject().put("user", u).put("name", "purchase").put("at", "2026-12-02T10:00:00Z");
            }
            for (String u : treated) {
                events.addObject().put("user", u).put("name", "purchase").put("at", "2026-12-02T10:00:00Z");
            }
            assertThat(gw.post(base(gw) + "/events", JSON.createObjectNode().set("events", events).toString()).status())
                    .isIn(200, 202);
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                JsonNode report = gw.get(base(gw) + "/campaigns/" + id + "/report").json();
                JsonNode va = report.get("variants").get("a");
                assertThat(va.get("counts").get("accepted").asLong()).isEqualTo(2 * a);
                assertThat(report.get("variants").get("b").get("counts").get("accepted").asLong()).isEqualTo(2 * (fed - a));
                assertThat(va.get("intervals").get("opened").get("of").asLong()).isEqualTo(2 * a);
                JsonNode h = report.get("holdout");
                // Counted per run (an exposure): each user once per run.
                assertThat(h.get("holdout").get("users").asLong()).isEqualTo(2 * holdout);
                assertThat(h.get("holdout").get("converted").asLong()).isEqualTo(4);
                assertThat(h.get("treated").get("users").asLong()).isEqualTo(2 * fed);
                assertThat(h.get("treated").get("converted").asLong()).isEqualTo(6);
                assertThat(h.get("uplift").get("value").asDouble()).isCloseTo(6.0 / (2 * fed) - 4.0 / (2 * holdout),
                        org.assertj.core.data.Offset.offset(0.0001));
                assertThat(h.get("uplift").get("low").asDouble()).isLessThan(h.get("uplift").get("value").asDouble());
            });
        }
    }

    @Test
    void aGuardPausesACampaignWhoseFailuresPassItsLimitAndResumeNeedsAnAcknowledgement() throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            ArrayNode users = JSON.createArrayNode();
            for (int i = 0; i < 400; i++) {
                String token = TestGateway.token();
                users.addObject().put("user", "g-" + i).putArray("tags").add("vip");
                ((ObjectNode) users.get(i)).putArray("devices").addObject().put("id", "phone").put("platform", "apns")
                        .put("token", token);
                if (i % 2 == 1) {
                    gw.sandbox().scriptAlways(token, SandboxApns.Answer.PAYLOAD_TOO_LARGE); // a permanent failure
                }
            }
            assertThat(gw.post(base(gw) + "/users", JSON.createObjectNode().set("users", users).toString()).status())
                    .isEqualTo(200);
            template(gw);
            TestGateway.Response bad = gw.post(base(gw) + "/campaigns", "{\"name\":\"g\",\"audience\":{\"rule\":"
                    + "\"tag:vip\"},\"content\":{\"template\":\"hello\"},\"guards\":[{\"metric\":\"failure\"}]}");
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("guards[0]");
            // 1,200 a minute: 400 users take 20 s, the guard (checked every 2 s) trips long before.
            String id = approved(gw, ",\"throttle\":{\"perMinute\":1200},\"guards\":[{\"metric\":\"failure\","
                    + "\"window\":\"5m\",\"minVolume\":20,\"pauseAt\":0.3}]");
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                    .until(() -> campaign(gw, id).get("state").asText().equals("paused"));
            JsonNode c = campaign(gw, id);
            JsonNode last = c.get("history").get(c.get("history").size() - 1);
            assertThat(last.get("by").asText()).isEqualTo("herald:guard");
            assertThat(last.get("reason").asText()).contains("failure").contains(">= pauseAt 30.0%");
            assertThat(c.get("progress").get("guard").get("metric").asText()).isEqualTo("failure");
            assertThat(c.get("progress").get("guard").get("rate").asDouble()).isGreaterThanOrEqualTo(0.3);
            assertThat(c.get("progress").get("fed").asLong()).as("paused before the end").isLessThan(400);
            assertThat(gw.get(base(gw) + "/campaigns/" + id + "/report").json().get("guards").get("tripped")
                    .get("metric").asText()).isEqualTo("failure");

            TestGateway.Response resume = gw.post(base(gw) + "/campaigns/" + id + "/resume", "{\"reason\":\"go on\"}");
            assertThat(resume.status()).isEqualTo(409);
            assertThat(resume.json().get("error").get("message").asText()).contains("acknowledge");
            TestGateway.Response ack = gw.post(base(gw) + "/campaigns/" + id + "/resume",
                    "{\"acknowledge\":true,\"reason\":\"bad tokens cleaned up\"}");
            assertThat(ack.status()).as(ack.raw().body()).isEqualTo(200);
            assertThat(ack.json().get("state").asText()).isEqualTo("running");
        }
    }

    @Test
    void aFullPipelineParksTheFanOutInTheBacklogWhichAPauseHoldsAndACancelDrops() throws Exception {
        TestClock clock = new TestClock(java.time.Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS).toString());
        try (TestGateway gw = TestGateway.withClock("scheduler { campaign-tick = 1h, campaign-chunk = 50 }", clock)) {
            List<String> vips = users(gw, "q", 300, 1);
            template(gw);
            String id = approved(gw, "");
            var launcher = gw.herald.campaignLauncher();
            var pipeline = gw.herald.pipeline();
            // The pipeline is full (every permit taken, as by a long queue of deliveries): the fan-out
            // does not wait for it, every chunk goes to the backlog.
            int held = pipeline.capacity() - (int) pipeline.inUse();
            assertThat(pipeline.tryReserve(held)).isTrue();
            try {
                launcher.tick();
                JsonNode p = campaign(gw, id).get("progress");
                assertThat(p.get("fed").asLong()).isEqualTo(300);
                assertThat(p.get("backlog").asLong()).isEqualTo(300);
                assertThat(campaign(gw, id).get("state").asText()).as("running until the backlog is drained")
                        .isEqualTo("running");
                assertThat(campaign(gw, id).get("funnel").get("counts").get("submitted").asLong()).isEqualTo(300);
                assertThat(gw.post(base(gw) + "/campaigns/" + id + "/pause", "{\"reason\":\"check copy\"}").status())
                        .isEqualTo(200);
            } finally {
                pipeline.release(held);
            }
            // Paused: the backlog waits, with room in the pipeline.
            launcher.tick();
            assertThat(campaign(gw, id).get("progress").get("backlog").asLong()).isEqualTo(300);
            assertThat(pipeline.inUse()).isZero();
            assertThat(received(gw.sandbox())).isEmpty();
            assertThat(gw.post(base(gw) + "/campaigns/" + id + "/resume", "").status()).isEqualTo(200);
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(50)).until(() -> {
                launcher.tick();
                return campaign(gw, id).get("state").asText().equals("completed");
            });
            assertThat(campaign(gw, id).get("progress").get("backlog").asLong()).isZero();
            await().atMost(Duration.ofSeconds(30)).until(() -> received(gw.sandbox()).size() == vips.size());
            Map<String, Set<UUID>> got = received(gw.sandbox());
            assertThat(got.keySet()).containsExactlyInAnyOrderElementsOf(vips);
            assertThat(got.values()).as("each member once").allMatch(ids -> ids.size() == 1);
            TestGateway.Response report = gw.get(base(gw) + "/campaigns/" + id + "/report");
            assertThat(report.json().get("progress").get("backlog").asLong()).isZero();

            // A campaign cancelled with a backlog: the backlog is drained through the pipeline and
            // every message in it ends dropped:cancelled; nobody receives it.
            int before = gw.sandbox().acceptedIds().size();
            String cancel = approved(gw, "");
            held = pipeline.capacity() - (int) pipeline.inUse();
            assertThat(pipeline.tryReserve(held)).isTrue();
            try {
                launcher.tick();
                assertThat(campaign(gw, cancel).get("progress").get("backlog").asLong()).isEqualTo(300);
                assertThat(gw.post(base(gw) + "/campaigns/" + cancel + "/cancel", "{\"reason\":\"wrong crowd\"}")
                        .status()).isEqualTo(200);
            } finally {
                pipeline.release(held);
            }
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(50)).untilAsserted(() -> {
                launcher.tick();
                JsonNode counts = campaign(gw, cancel).get("funnel").get("counts");
                assertThat(counts.path("dropped:cancelled").asLong()).isEqualTo(300);
            });
            assertThat(launcher.running()).doesNotContain(cancel);
            assertThat(campaign(gw, cancel).get("progress").get("backlog").asLong()).isZero();
            assertThat(gw.sandbox().acceptedIds().size()).as("nothing of the cancelled campaign sent").isEqualTo(before);
        }
    }

    @Test
    void aBacklogLeftByANodeThatDiesIsDrainedByTheNodeThatTakesOver() throws Exception {
        String config = "redis.node-lease = 2s\nscheduler { campaign-lease = 2s, campaign-tick = 1h, campaign-chunk = 50 }";
        TestGateway a = new TestGateway(config);
        try (TestGateway b = TestGateway.nodeBeside(a, config)) {
            List<String> vips = users(a, "t", 400, 1);
            template(a);
            String id = approved(a, "");
            var pipeline = a.herald.pipeline();
            int held = pipeline.capacity() - (int) pipeline.inUse();
            assertThat(pipeline.tryReserve(held)).isTrue();
            a.herald.campaignLauncher().tick(); // launches, fans everyone out into the backlog
            JsonNode p = campaign(a, id).get("progress");
            assertThat(p.get("fed").asLong()).isEqualTo(400);
            assertThat(p.get("backlog").asLong()).isEqualTo(400);
            a.herald.halt(); // dies with its backlog undrained and its lease unreleased
            var launcher = b.herald.campaignLauncher();
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100)).until(() -> {
                launcher.tick(); // takes the campaign over once the lease lapses, then drains
                return campaign(b, id).get("state").asText().equals("completed");
            });
            assertThat(campaign(b, id).get("progress").get("backlog").asLong()).isZero();
            await().atMost(Duration.ofSeconds(60)).until(() -> received(a.sandbox(), b.sandbox()).size() == vips.size());
            Map<String, Set<UUID>> got = received(a.sandbox(), b.sandbox());
            assertThat(got.keySet()).containsExactlyInAnyOrderElementsOf(vips);
            assertThat(got.values()).as("each member once").allMatch(ids -> ids.size() == 1);
            assertThat(a.sandbox().acceptedIds()).as("the dead node sent nothing").isEmpty();
        } finally {
            a.close();
        }
    }

    @Test
    void aNodeThatDiesMidFanOutIsReplacedAndNobodyGetsItTwice() throws Exception {
        String config = "redis.node-lease = 2s\nscheduler { campaign-lease = 2s, campaign-tick = 100ms }";
        TestGateway a = new TestGateway(config);
        try (TestGateway b = TestGateway.nodeBeside(a, config)) {
            List<String> vips = users(a, "k", 20_000, 1);
            template(a);
            // 600,000 a minute: 10,000 a second, so the kill lands mid fan-out.
            String id = approved(a, ",\"throttle\":{\"perMinute\":600000}");
            TestGateway[] runner = new TestGateway[1];
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(10)).until(() -> {
                for (TestGateway node : new TestGateway[] {a, b}) {
                    if (node.herald.campaignLauncher().running().contains(id)) {
                        runner[0] = node;
                    }
                }
                return runner[0] != null && fed(a, id) >= 2_000;
            });
            TestGateway dead = runner[0];
            TestGateway alive = dead == a ? b : a;
            assertThat(alive.herald.campaignLauncher().running()).as("one node feeds a campaign").doesNotContain(id);
            long fedAtDeath = fed(alive, id);
            dead.herald.halt(); // dies for good: no lease released, its journal taken over by the other
            assertThat(fedAtDeath).as("the kill lands mid fan-out").isLessThan(20_000);

            await().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(200))
                    .until(() -> campaign(alive, id).get("state").asText().equals("completed"));
            JsonNode c = campaign(alive, id);
            assertThat(c.get("progress").get("fed").asLong()).isEqualTo(20_000);
            assertThat(alive.herald.campaignLauncher().running()).doesNotContain(id);
            await().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(500))
                    .until(() -> received(a.sandbox(), b.sandbox()).size() == vips.size());
            Map<String, Set<UUID>> got = received(a.sandbox(), b.sandbox());
            assertThat(got.keySet()).containsExactlyInAnyOrderElementsOf(vips);
            List<String> twice = new ArrayList<>();
            got.forEach((u, ids) -> {
                if (ids.size() > 1) {
                    twice.add(u);
                }
            });
            System.out.printf("campaign takeover: fed at death=%d, users=%d, users with two messages=%d%n",
                    fedAtDeath, got.size(), twice.size());
            assertThat(twice).as("users fed twice by the fan-out").isEmpty();
        } finally {
            a.close();
        }
    }
}
