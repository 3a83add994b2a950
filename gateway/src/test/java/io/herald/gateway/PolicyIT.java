package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The per-user delivery policy end to end (issue 14): a gateway on a real Redis and the sandbox
 * APNs peer, on a clock the test moves, so no test waits for an hour. Policies are set through the
 * API; outcomes are read from batch status and message histories.
 */
@Timeout(180)
class PolicyIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static void policy(TestGateway gw, String json) {
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/policy", json, gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
    }

    /** A user with an APNs device and, when given, a time zone. */
    private static String user(TestGateway gw, String zone) {
        String u = "u-" + UUID.randomUUID().toString().substring(0, 8);
        gw.device(u, "phone", TestGateway.token());
        if (zone != null) {
            TestGateway.Response r = gw.send("PATCH", "/v1/apps/" + gw.app + "/users/" + u, "{\"timeZone\":\"" + zone + "\"}", gw.key);
            assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        }
        return u;
    }

    private static String msg(String user, String title, String extra) {
        return "{\"user\":\"" + user + "\",\"title\":\"" + title + "\",\"body\":\"b\"" + (extra.isEmpty() ? "" : "," + extra) + "}";
    }

    private static String marketing(String user, String title) {
        return msg(user, title, "\"class\":\"marketing\"");
    }

    /** Posts a batch and waits until no message is queued (each is deferred or ended). */
    private static JsonNode settle(TestGateway gw, List<String> messages) {
        JsonNode accepted = gw.batch(messages);
        String id = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
                .until(() -> gw.batchStatus(id).get("states").get("queued").asInt() == 0);
        return accepted;
    }

    /** Each message's state label ("accepted", "dropped:capped", "deferred:quiet_hours", ...), in order. */
    private static List<String> labels(TestGateway gw, JsonNode accepted) {
        List<String> out = new ArrayList<>();
        for (JsonNode m : accepted.get("messages")) {
            JsonNode s = gw.message(m.get("id").asText());
            out.add(s.get("state").asText() + (s.has("reason") ? ":" + s.get("reason").asText() : ""));
        }
        return out;
    }

    /** The detail of the last history entry of a message. */
    private static String lastDetail(TestGateway gw, JsonNode accepted, int i) {
        JsonNode h = gw.message(accepted.get("messages").get(i).get("id").asText()).get("history");
        JsonNode last = h.get(h.size() - 1);
        return last.path("detail").asText("");
    }

    private static long until(TestGateway gw, JsonNode accepted, int i) {
        String d = lastDetail(gw, accepted, i);
        return Long.parseLong(d.substring(d.lastIndexOf("until ") + 6).trim());
    }

    /** Moves the clock and promotes whatever became due (the scheduler would on its next round). */
    private static void advance(TestGateway gw, TestClock clock, Duration d) {
        clock.advance(d);
        gw.herald.scheduler().tick();
    }

    private static void awaitLabels(TestGateway gw, JsonNode accepted, List<String> want) {
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100)).untilAsserted(() -> {
            gw.herald.scheduler().tick();
            assertThat(labels(gw, accepted)).isEqualTo(want);
        });
    }

    @Test
    void capsCountPerRollingHourAndPerCalendarDayInEachUsersZone() throws Exception {
        // 15:30Z is 23:30 in Shanghai and 08:30 in Los Angeles: an hour later Shanghai has a new day.
        TestClock clock = new TestClock("2026-06-15T15:30:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"caps\":[{\"id\":\"hourly\",\"limit\":2,\"window\":\"1h\"},"
                    + "{\"id\":\"daily\",\"limit\":3,\"window\":\"day\"}]}");
            String sh = user(gw, "Asia/Shanghai");
            String la = user(gw, "America/Los_Angeles");
            JsonNode first = settle(gw, List.of(marketing(sh, "1"), marketing(sh, "2"), marketing(sh, "3"),
                    marketing(la, "1"), marketing(la, "2"), marketing(la, "3")));
            assertThat(labels(gw, first)).containsExactly("accepted", "accepted", "dropped:capped",
                    "accepted", "accepted", "dropped:capped");
            assertThat(lastDetail(gw, first, 2)).isEqualTo("rule hourly");
            clock.advance(Duration.ofMinutes(61));
            JsonNode second = settle(gw, List.of(marketing(sh, "4"), marketing(sh, "5"), marketing(la, "4"),
                    marketing(la, "5")));
            // Shanghai is in a new day (2 of 3 today); Los Angeles still in the same one (3 of 3).
            assertThat(labels(gw, second)).containsExactly("accepted", "accepted", "accepted", "dropped:capped");
            assertThat(lastDetail(gw, second, 3)).isEqualTo("rule daily");
            JsonNode status = gw.batchStatus(second.get("batchId").asText());
            assertThat(status.get("reasons").get("dropped:capped").asInt()).isEqualTo(1);
            JsonNode funnel = gw.get("/v1/batches/" + first.get("batchId").asText() + "/funnel").json().get("counts");
            assertThat(funnel.get("capped").asInt()).isEqualTo(2);
            assertThat(funnel.get("accepted").asInt()).isEqualTo(4);
        }
    }

    @Test
    void systemIsNeverCappedOrHeldAndTransactionalIsOutsideTheCaps() throws Exception {
        // 23:00 in Shanghai: inside the app's quiet hours.
        TestClock clock = new TestClock("2026-06-15T15:00:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"zone\":\"Asia/Shanghai\",\"caps\":[{\"id\":\"one\",\"limit\":1,\"window\":\"day\"}],"
                    + "\"quietHours\":{\"start\":\"22:00\",\"end\":\"07:00\"}}");
            String u = user(gw, null);
            JsonNode a = settle(gw, List.of(
                    msg(u, "otp1", "\"class\":\"system\""), msg(u, "otp2", "\"class\":\"system\""),
                    msg(u, "order1", ""), msg(u, "order2", "\"class\":\"transactional\""),
                    marketing(u, "promo")));
            // Batch items default to transactional: outside the caps and (by default) quiet hours.
            assertThat(labels(gw, a)).containsExactly("accepted", "accepted", "accepted", "accepted",
                    "deferred:quiet_hours");
            policy(gw, "{\"zone\":\"Asia/Shanghai\",\"caps\":[{\"id\":\"one\",\"limit\":1,\"window\":\"day\"}]}");
            JsonNode b = settle(gw, List.of(marketing(u, "p1"), marketing(u, "p2"), msg(u, "otp3", "\"class\":\"system\"")));
            assertThat(labels(gw, b)).containsExactly("accepted", "dropped:capped", "accepted");
        }
    }

    @Test
    void twoPipelinesNeverBothTakeAUsersLastSlot() throws Exception {
        TestClock clock = new TestClock("2026-06-15T10:00:00Z");
        try (TestGateway a = TestGateway.withClock("", clock); TestGateway b = TestGateway.nodeBeside(a, "")) {
            policy(a, "{\"caps\":[{\"id\":\"daily\",\"limit\":3,\"window\":\"day\"}]}");
            b.herald.policies().refresh();
            List<String> users = new ArrayList<>();
            for (int i = 0; i < 30; i++) {
                users.add(user(a, null));
            }
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                List<Future<JsonNode>> posts = new ArrayList<>();
                for (TestGateway node : List.of(a, b)) {
                    List<String> messages = new ArrayList<>();
                    for (int round = 0; round < 3; round++) {
                        for (String u : users) {
                            messages.add(marketing(u, "r" + round));
                        }
                    }
                    posts.add(pool.submit(() -> settle(node, messages)));
                }
                Map<String, Integer> sent = new HashMap<>();
                int capped = 0;
                for (Future<JsonNode> f : posts) {
                    JsonNode accepted = f.get(60, TimeUnit.SECONDS);
                    List<String> l = labels(a, accepted);
                    JsonNode ms = accepted.get("messages");
                    for (int i = 0; i < l.size(); i++) {
                        if (l.get(i).equals("accepted")) {
                            sent.merge(users.get(i % users.size()), 1, Integer::sum);
                        } else {
                            assertThat(l.get(i)).isEqualTo("dropped:capped");
                            capped++;
                        }
                    }
                    assertThat(ms.size()).isEqualTo(90);
                }
                assertThat(sent).hasSize(30);
                assertThat(sent.values()).as("each user got exactly its 3 of 6").containsOnly(3);
                assertThat(capped).isEqualTo(90);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void aRefusedSendGivesItsPlaceBackARuleAddedLaterCountsTheDayAndAReplayIsNotCountedTwice() throws Exception {
        TestClock clock = new TestClock("2026-06-15T09:00:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"caps\":[{\"id\":\"daily\",\"limit\":2,\"window\":\"day\"}]}");
            String u = "u-" + UUID.randomUUID().toString().substring(0, 8);
            String token = TestGateway.token();
            gw.device(u, "phone", token);
            // Admitted, then refused by the provider (a permanent error that keeps the device):
            // the place it took is given back.
            gw.sandbox().scriptOnce(token, io.herald.gateway.sandbox.SandboxApns.Answer.PAYLOAD_TOO_LARGE);
            JsonNode refused = settle(gw, List.of(msg(u, "big", "\"class\":\"marketing\",\"category\":\"promo\"")));
            assertThat(labels(gw, refused).get(0)).startsWith("failed:");
            JsonNode two = settle(gw, List.of(msg(u, "p1", "\"class\":\"marketing\",\"category\":\"promo\""),
                    msg(u, "p2", "\"class\":\"marketing\",\"category\":\"promo\""), marketing(u, "over")));
            assertThat(labels(gw, two)).containsExactly("accepted", "accepted", "dropped:capped");
            // The give-back emptied the user's send log; the log made again by p1 still expires.
            var sync = gw.herald.redis().shared().sync();
            assertThat(sync.zcard(io.herald.gateway.redis.Keys.admissionLog(gw.app, u))).isEqualTo(2);
            assertThat(sync.pttl(io.herald.gateway.redis.Keys.admissionLog(gw.app, u))).isPositive();
            assertThat(sync.pttl(io.herald.gateway.redis.Keys.admission(gw.app, u))).isPositive();
            // A rule added at noon counts the day's sends already made in its scope (p1, p2).
            clock.advance(Duration.ofHours(3));
            policy(gw, "{\"caps\":[{\"id\":\"daily\",\"limit\":5,\"window\":\"day\"},"
                    + "{\"id\":\"promo\",\"scope\":\"category:promo\",\"limit\":2,\"window\":\"day\"}]}");
            JsonNode later = settle(gw, List.of(msg(u, "p3", "\"class\":\"marketing\",\"category\":\"promo\""),
                    msg(u, "n1", "\"class\":\"marketing\",\"category\":\"news\"")));
            assertThat(labels(gw, later)).containsExactly("dropped:capped", "accepted");
            assertThat(lastDetail(gw, later, 0)).isEqualTo("rule promo");
            // The same message admitted again (a journal replay after a crash) holds one place:
            // of the two places left today (5 - p1, p2, n1), it takes one, however often it comes.
            io.herald.gateway.admission.Admission admission = new io.herald.gateway.admission.Admission(
                    Map.of(gw.app, gw.config().apps().get(gw.app)), gw.herald.policies(), gw.herald.redis()::slotOf, clock);
            io.herald.protocol.Message m = new io.herald.protocol.Message(null, u, null, null, "t", "b", null, null, 86_400,
                    null, null, null, "news", null, null, null, null, null, null, null,
                    new io.herald.protocol.Message.Policy(io.herald.protocol.Message.MessageClass.MARKETING, null, null,
                            false, null, null, null));
            io.herald.gateway.journal.JournalItem replayed = new io.herald.gateway.journal.JournalItem(gw.app,
                    UUID.randomUUID().toString(), 0, clock.millis(), m, io.herald.gateway.journal.JournalItem.Phase.NEW);
            List<io.herald.gateway.admission.Admission.Check> again = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                again.add(new io.herald.gateway.admission.Admission.Check(replayed, "apns", null, null));
            }
            io.herald.gateway.admission.Admission.Verdict[] v = admission.admit(gw.herald.redis().dedicated().async(), again,
                    io.herald.gateway.admission.Admission.requestId(), Duration.ofSeconds(10)).get(10, TimeUnit.SECONDS);
            for (io.herald.gateway.admission.Admission.Verdict x : v) {
                assertThat(x.kind()).isEqualTo(io.herald.gateway.admission.Admission.Kind.SEND);
            }
            JsonNode rest = settle(gw, List.of(msg(u, "n2", "\"class\":\"marketing\",\"category\":\"news\""),
                    msg(u, "n3", "\"class\":\"marketing\",\"category\":\"news\"")));
            assertThat(labels(gw, rest)).containsExactly("accepted", "dropped:capped");
        }
    }

    @Test
    void aHigherPriorityClaimKeepsTheLastSlotUntilItEnds() throws Exception {
        TestClock clock = new TestClock("2026-06-15T09:00:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"caps\":[{\"id\":\"daily\",\"limit\":2,\"window\":\"day\"}]}");
            String u = user(gw, null);
            String at = Instant.parse("2026-06-15T11:00:00Z").toString();
            JsonNode scheduled = settle(gw, List.of(msg(u, "vip", "\"class\":\"marketing\",\"priority\":8,\"sendAt\":\"" + at + "\"")));
            assertThat(labels(gw, scheduled)).containsExactly("deferred:scheduled");
            JsonNode low = settle(gw, List.of(msg(u, "low1", "\"class\":\"marketing\",\"priority\":3"),
                    msg(u, "low2", "\"class\":\"marketing\",\"priority\":3")));
            // One slot is free for priority 3; the last is kept for the priority-8 message due today.
            assertThat(labels(gw, low)).containsExactly("accepted", "dropped:capped_by_priority");
            assertThat(lastDetail(gw, low, 1)).startsWith("rule daily");
            // An equal priority does not outrank: a priority-8 send now takes the last slot.
            // (not sent here: the claim must end without sending) The claim's message ends unsent:
            // its user's device is gone when it comes due.
            TestGateway.Response del = gw.send("DELETE", "/v1/apps/" + gw.app + "/users/" + u + "/devices/phone", null, gw.key);
            assertThat(del.status()).isIn(200, 204);
            advance(gw, clock, Duration.ofHours(2));
            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                gw.herald.scheduler().tick();
                assertThat(labels(gw, scheduled).get(0)).startsWith("dropped:");
            });
            gw.device(u, "phone2", TestGateway.token());
            JsonNode after = settle(gw, List.of(msg(u, "low3", "\"class\":\"marketing\",\"priority\":3")));
            assertThat(labels(gw, after)).containsExactly("accepted");
        }
    }

    @Test
    void quietHoursHoldAndReleaseSpreadAcrossMidnightOrDrop() throws Exception {
        // 23:00 in Shanghai, quiet 22:00-07:00: held until 07:00 (23:00Z) plus each user's spread.
        TestClock clock = new TestClock("2026-06-15T15:00:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"quietHours\":{\"start\":\"22:00\",\"end\":\"07:00\",\"zone\":\"Asia/Shanghai\","
                    + "\"releaseSpread\":\"10m\"}}");
            List<String> users = new ArrayList<>();
            List<String> messages = new ArrayList<>();
            for (int i = 0; i < 12; i++) {
                String u = user(gw, null);
                users.add(u);
                messages.add(marketing(u, "night"));
            }
            String dropper = user(gw, null);
            messages.add(msg(dropper, "now-or-never", "\"class\":\"marketing\",\"onQuiet\":\"drop\""));
            JsonNode held = settle(gw, messages);
            long end = Instant.parse("2026-06-15T23:00:00Z").toEpochMilli();
            Set<Long> releases = new HashSet<>();
            for (int i = 0; i < users.size(); i++) {
                assertThat(labels(gw, held).get(i)).isEqualTo("deferred:quiet_hours");
                long release = until(gw, held, i);
                CRC32C crc = new CRC32C();
                crc.update((gw.app + '\u0000' + users.get(i)).getBytes(java.nio.charset.StandardCharsets.UTF_8));
                assertThat(release).isEqualTo(end + crc.getValue() % 600_000);
                releases.add(release);
            }
            assertThat(releases).as("spread, not one burst").hasSizeGreaterThan(6);
            assertThat(labels(gw, held).get(12)).isEqualTo("dropped:quiet_hours");
            // Before the window ends nothing goes; ten minutes after, all of them.
            advance(gw, clock, Duration.ofHours(7).plusMinutes(59));
            assertThat(labels(gw, held).subList(0, 12)).containsOnly("deferred:quiet_hours");
            advance(gw, clock, Duration.ofMinutes(11));
            List<String> want = new ArrayList<>(java.util.Collections.nCopies(12, "accepted"));
            want.add("dropped:quiet_hours");
            awaitLabels(gw, held, want);
            JsonNode status = gw.batchStatus(held.get("batchId").asText());
            assertThat(status.get("reasons").path("deferred:quiet_hours").asInt()).isZero();
            assertThat(status.get("states").get("accepted").asInt()).isEqualTo(12);
            JsonNode funnel = gw.get("/v1/batches/" + held.get("batchId").asText() + "/funnel").json().get("counts");
            assertThat(funnel.get("held").asInt()).isEqualTo(12);
            assertThat(funnel.get("deferred:quiet_hours").asInt()).isEqualTo(12);
            assertThat(funnel.get("dropped:quiet_hours").asInt()).isEqualTo(1);
        }
    }

    @Test
    void quietHoursOfTheUserAcrossADaylightSavingChange() throws Exception {
        // 01:30 EST on 2026-03-08 in New York: the user's own quiet hours 23:00-07:00 end at 07:00 EDT = 11:00Z.
        TestClock clock = new TestClock("2026-03-08T06:30:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"quietHours\":{\"start\":\"21:00\",\"end\":\"06:00\",\"releaseSpread\":\"1m\"}}");
            String u = user(gw, "America/New_York");
            TestGateway.Response r = gw.send("PATCH", "/v1/apps/" + gw.app + "/users/" + u,
                    "{\"quietHours\":{\"start\":\"23:00\",\"end\":\"07:00\"}}", gw.key);
            assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
            assertThat(r.json().get("quietHours").get("end").asText()).isEqualTo("07:00");
            JsonNode held = settle(gw, List.of(marketing(u, "dst")));
            assertThat(labels(gw, held)).containsExactly("deferred:quiet_hours");
            long release = until(gw, held, 0);
            assertThat(release).isBetween(Instant.parse("2026-03-08T11:00:00Z").toEpochMilli(),
                    Instant.parse("2026-03-08T11:01:00Z").toEpochMilli() - 1);
            TestGateway.Response bad = gw.send("PATCH", "/v1/apps/" + gw.app + "/users/" + u,
                    "{\"quietHours\":{\"start\":\"23:00\",\"end\":\"7\"}}", gw.key);
            assertThat(bad.status()).isEqualTo(422);
            assertThat(bad.raw().body()).contains("quietHours.end");
        }
    }

    @Test
    void capWaitsForTheWindowToReopenWhenTheMessageSaysDefer() throws Exception {
        TestClock clock = new TestClock("2026-06-15T10:00:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            policy(gw, "{\"caps\":[{\"id\":\"hourly\",\"limit\":1,\"window\":\"1h\"}]}");
            String u = user(gw, null);
            JsonNode a = settle(gw, List.of(marketing(u, "first"),
                    msg(u, "second", "\"class\":\"marketing\",\"onCap\":\"defer\""),
                    msg(u, "third", "\"class\":\"marketing\",\"onCap\":\"defer\",\"ttlSeconds\":600")));
            assertThat(labels(gw, a)).containsExactly("accepted", "deferred:capped", "dropped:capped");
            assertThat(until(gw, a, 1)).isEqualTo(Instant.parse("2026-06-15T11:00:00Z").toEpochMilli());
            advance(gw, clock, Duration.ofMinutes(59));
            assertThat(labels(gw, a).get(1)).isEqualTo("deferred:capped");
            advance(gw, clock, Duration.ofMinutes(2));
            awaitLabels(gw, a, List.of("accepted", "accepted", "dropped:capped"));
        }
    }

    @Test
    void sendTimesInstantLocalTimeAndBestHour() throws Exception {
        // 12:00Z = 20:00 in Shanghai.
        TestClock clock = new TestClock("2026-06-15T12:00:00Z");
        try (TestGateway gw = TestGateway.withClock("", clock)) {
            String sh = user(gw, "Asia/Shanghai");
            String fan = user(gw, null);
            String fresh = user(gw, null);
            // The fan opens the app around 20:xxZ: five app opens over the last days.
            StringBuilder events = new StringBuilder("{\"events\":[");
            for (int d = 1; d <= 5; d++) {
                events.append(d > 1 ? "," : "").append("{\"user\":\"").append(fan).append("\",\"name\":\"app_open\",\"at\":\"")
                        .append(Instant.parse("2026-06-15T20:10:00Z").minus(Duration.ofDays(d))).append("\"}");
            }
            events.append("]}");
            TestGateway.Response e = gw.post("/v1/apps/" + gw.app + "/events", events.toString());
            assertThat(e.status()).as(e.raw().body()).isEqualTo(200);
            await().atMost(Duration.ofSeconds(10)).until(() -> {
                gw.herald.policies().refresh();
                return gw.herald.policies().appBestHour(gw.app) == 20;
            });
            String in30 = Instant.parse("2026-06-15T12:30:00Z").toString();
            JsonNode a = settle(gw, List.of(
                    msg(sh, "at", "\"sendAt\":\"" + in30 + "\""),
                    msg(sh, "nine", "\"localTime\":\"09:00\""),
                    msg(fan, "best", "\"sendAt\":\"best_hour\""),
                    msg(fresh, "best", "\"sendAt\":\"best_hour\""),
                    msg(sh, "past", "\"sendAt\":\"2026-06-15T11:00:00Z\"")));
            assertThat(labels(gw, a)).containsExactly("deferred:scheduled", "deferred:local_time", "deferred:best_hour",
                    "deferred:best_hour", "accepted");
            assertThat(until(gw, a, 0)).isEqualTo(Instant.parse(in30).toEpochMilli());
            // 09:00 in Shanghai has passed today (20:00): tomorrow's, 01:00Z.
            assertThat(until(gw, a, 1)).isEqualTo(Instant.parse("2026-06-16T01:00:00Z").toEpochMilli());
            assertThat(until(gw, a, 2)).isEqualTo(Instant.parse("2026-06-15T20:00:00Z").toEpochMilli());
            // No engagement of their own: the app's most engaged hour.
            assertThat(until(gw, a, 3)).isEqualTo(Instant.parse("2026-06-15T20:00:00Z").toEpochMilli());
            advance(gw, clock, Duration.ofMinutes(31));
            awaitLabels(gw, a, List.of("accepted", "deferred:local_time", "deferred:best_hour", "deferred:best_hour",
                    "accepted"));
            // Later than 20:00Z, the best hour is tomorrow's.
            clock.advance(Duration.ofHours(9));
            JsonNode late = settle(gw, List.of(msg(fan, "best", "\"sendAt\":\"best_hour\"")));
            assertThat(until(gw, late, 0)).isEqualTo(Instant.parse("2026-06-16T20:00:00Z").toEpochMilli());
        }
    }

    @Test
    void thePolicyApiValidatesVersionsAndReachesRunningPipelines() throws Exception {
        TestClock clock = new TestClock("2026-06-15T10:00:00Z");
        try (TestGateway a = TestGateway.withClock("", clock); TestGateway b = TestGateway.nodeBeside(a, "")) {
            String path = "/v1/apps/" + a.app + "/policy";
            TestGateway.Response none = a.get(path);
            assertThat(none.status()).isEqualTo(200);
            assertThat(none.json().get("version").asInt()).isZero();
            assertThat(none.raw().headers().firstValue("ETag")).hasValue("\"0\"");
            assertThat(none.json().get("defaults").get("class").asText()).isEqualTo("transactional");
            TestGateway.Response bad = a.send("PUT", path, "{\"caps\":[{\"id\":\"d\",\"limit\":1,\"window\":\"fortnight\"}]}",
                    a.key);
            assertThat(bad.status()).isEqualTo(422);
            assertThat(bad.json().get("error").get("code").asText()).isEqualTo("invalid_field");
            assertThat(bad.json().get("error").get("field").asText()).isEqualTo("caps[0].window");
            String one = "{\"caps\":[{\"id\":\"d\",\"limit\":1,\"window\":\"day\"}]}";
            TestGateway.Response put = a.send("PUT", path, one, a.key, List.of("If-Match", "\"0\""));
            assertThat(put.status()).as(put.raw().body()).isEqualTo(200);
            assertThat(put.json().get("version").asInt()).isEqualTo(1);
            TestGateway.Response stale = a.send("PUT", path, one, a.key, List.of("If-Match", "\"0\""));
            assertThat(stale.status()).isEqualTo(412);
            assertThat(stale.json().get("error").get("code").asText()).isEqualTo("precondition_failed");
            assertThat(stale.raw().headers().firstValue("ETag")).hasValue("\"1\"");
            // The other node applies it within seconds, without a restart.
            await().atMost(Duration.ofSeconds(10)).until(() -> b.get(path).json().get("version").asInt() == 1);
            String u = user(a, null);
            JsonNode sent = settle(b, List.of(marketing(u, "1"), marketing(u, "2")));
            assertThat(labels(b, sent)).containsExactly("accepted", "dropped:capped");
            TestGateway.Response other = a.send("GET", "/v1/apps/" + a.otherApp + "/policy", null, a.key);
            assertThat(other.status()).isEqualTo(404);
        }
    }
}
