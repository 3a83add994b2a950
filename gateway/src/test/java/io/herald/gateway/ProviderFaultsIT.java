package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.sandbox.SandboxFcm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Provider faults end to end, through a real gateway and the scriptable APNs and FCM peers: each
 * class of answer is retried (or not) as documented, with equal-jitter backoff and within the
 * attempt budget; dead tokens are invalidated; dropped connections and GOAWAYs lead to
 * reconnects without losing a message; and a storm of all of it leaves the gateway JVM with the
 * threads it had before. ApnsOutcomesIT and FcmConnectorIT cover the single cases in more detail.
 */
@Timeout(240)
class ProviderFaultsIT {
    static final Duration BASE = Duration.ofMillis(200);
    static final int MAX_ATTEMPTS = 4;
    // One gateway per test: a storm must not leave connections behind for the next test.
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig(
            "apns { backoff-base = 200ms, backoff-max = 2s, max-attempts = 4 }\n"
            + "fcm { backoff-base = 200ms, backoff-max = 2s, max-attempts = 4, quota-backoff = 300ms }").perTest();

    @Test
    void apnsAnswersAreRetriedPerClassWithJitterWithinTheBudget(TestGateway gw) {
        SandboxApns apns = gw.sandbox();
        Map<String, String> tokens = new LinkedHashMap<>(); // user -> token
        Map<String, SandboxApns.Answer[]> once = new LinkedHashMap<>();
        once.put("throttled", new SandboxApns.Answer[] {SandboxApns.Answer.TOO_MANY_REQUESTS});
        once.put("unavailable", new SandboxApns.Answer[] {SandboxApns.Answer.SERVICE_UNAVAILABLE,
                SandboxApns.Answer.SERVICE_UNAVAILABLE});
        for (int i = 0; i < 10; i++) {
            once.put("jitter" + i, new SandboxApns.Answer[] {SandboxApns.Answer.INTERNAL_SERVER_ERROR});
        }
        String tag = "-" + UUID.randomUUID().toString().substring(0, 6);
        once.forEach((name, answers) -> {
            String token = TestGateway.token();
            apns.scriptOnce(token, answers);
            tokens.put(name + tag, token);
        });
        String dead = TestGateway.token();
        apns.scriptAlways(dead, SandboxApns.Answer.UNREGISTERED);
        tokens.put("dead" + tag, dead);
        String down = TestGateway.token();
        apns.scriptAlways(down, SandboxApns.Answer.SERVICE_UNAVAILABLE);
        tokens.put("down" + tag, down);
        tokens.forEach((user, token) -> gw.device(user, "phone", token));

        Map<String, JsonNode> messages = sendAndSettle(gw, tokens.keySet());

        // 429, 503 and ExpiredProviderToken: retried, then accepted, one retry note per failure.
        assertAccepted(messages.get("throttled" + tag), 1, "429");
        assertAccepted(messages.get("unavailable" + tag), 2, "503");
        assertThat(apns.arrivals(tokens.get("throttled" + tag))).hasSize(2);
        assertThat(apns.arrivals(tokens.get("unavailable" + tag))).hasSize(3);

        // Equal jitter: every first retry waits between half and all of the base, and they spread.
        Set<Long> gapsMs = new HashSet<>();
        for (int i = 0; i < 10; i++) {
            List<Long> a = apns.arrivals(tokens.get("jitter" + i + tag));
            assertThat(a).hasSize(2);
            long gap = a.get(1) - a.get(0);
            assertThat(gap).isGreaterThanOrEqualTo(BASE.toNanos() / 2);
            gapsMs.add(Duration.ofNanos(gap).toMillis() / 10);
            assertAccepted(messages.get("jitter" + i + tag), 1, "500");
        }
        assertThat(gapsMs).as("distinct retry delays (10 ms buckets)").hasSizeGreaterThan(1);

        // The budget: an endless 503 is tried max-attempts times, then fails retries_exhausted.
        JsonNode exhausted = messages.get("down" + tag);
        assertThat(exhausted.get("state").asText()).isEqualTo("failed");
        assertThat(exhausted.get("reason").asText()).isEqualTo("retries_exhausted");
        assertThat(apns.arrivals(down)).hasSize(MAX_ATTEMPTS);
        assertThat(retryNotes(exhausted)).isEqualTo(MAX_ATTEMPTS - 1);

        // 410 Unregistered: never retried, the device is invalidated.
        JsonNode unregistered = messages.get("dead" + tag);
        assertThat(unregistered.get("state").asText()).isEqualTo("failed");
        assertThat(unregistered.get("reason").asText()).isEqualTo("unregistered");
        assertThat(apns.arrivals(dead)).hasSize(1);
        JsonNode device = gw.get("/v1/apps/" + gw.app + "/users/dead" + tag).json().get("devices").get(0);
        assertThat(device.get("state").asText()).isEqualTo("invalidated");

        // 403 ExpiredProviderToken: Pushy drops the connection and signs a new token; the
        // notification is retried once on a new connection. (Alone in its batch: requests in
        // flight on that connection would fail with it and be retried too.)
        String expired = TestGateway.token();
        apns.scriptOnce(expired, SandboxApns.Answer.EXPIRED_PROVIDER_TOKEN);
        gw.device("expired-jwt" + tag, "phone", expired);
        int connections = apns.connectionsAccepted();
        JsonNode renewed = sendAndSettle(gw, Set.of("expired-jwt" + tag)).get("expired-jwt" + tag);
        assertAccepted(renewed, 1, "ExpiredProviderToken");
        assertThat(apns.arrivals(expired)).hasSize(2);
        assertThat(apns.connectionsAccepted()).as("a new connection after the expired token").isGreaterThan(connections);
    }

    @Test
    void fcmAnswersAreRetriedPerClassAndHonourRetryAfter(TestGateway gw) {
        SandboxFcm fcm = gw.herald.sandboxFcm();
        fcm.unavailableRetryAfter(1);
        fcm.slowDelay(Duration.ofMillis(1500));
        String tag = "-" + UUID.randomUUID().toString().substring(0, 6);
        Map<String, String> tokens = new LinkedHashMap<>();
        Map<String, SandboxFcm.Answer> once = new LinkedHashMap<>();
        once.put("unavailable", SandboxFcm.Answer.UNAVAILABLE);
        once.put("internal", SandboxFcm.Answer.INTERNAL);
        once.put("unauthenticated", SandboxFcm.Answer.UNAUTHENTICATED);
        once.put("slow", SandboxFcm.Answer.SLOW);
        once.forEach((name, answer) -> {
            String token = fcmToken();
            fcm.scriptOnce(token, answer);
            tokens.put(name + tag, token);
        });
        String dead = fcmToken();
        fcm.scriptAlways(dead, SandboxFcm.Answer.UNREGISTERED);
        tokens.put("dead" + tag, dead);
        String down = fcmToken();
        fcm.scriptAlways(down, SandboxFcm.Answer.INTERNAL);
        tokens.put("down" + tag, down);
        tokens.forEach((user, token) -> fcmDevice(gw, user, token));
        long issued = fcm.tokensIssued();

        Map<String, JsonNode> messages = sendAndSettle(gw, tokens.keySet());

        // 503 with Retry-After: 1 waits the second Google asked for, not the 100-200 ms backoff.
        assertAccepted(messages.get("unavailable" + tag), 1, "503");
        List<SandboxFcm.Arrival> a = fcm.arrivals(tokens.get("unavailable" + tag));
        assertThat(a).hasSize(2);
        assertThat(a.get(1).nanoTime() - a.get(0).nanoTime()).isGreaterThanOrEqualTo(Duration.ofSeconds(1).toNanos());
        assertAccepted(messages.get("internal" + tag), 1, "500");
        // 401: a new access token, the request sent again once.
        assertAccepted(messages.get("unauthenticated" + tag), 1, "401");
        assertThat(fcm.tokensIssued()).isGreaterThan(issued);
        assertThat(fcm.receivedCount(tokens.get("unauthenticated" + tag))).isEqualTo(2);
        // A slow answer (1.5 s) is waited for: no timeout, no retry, no second request.
        assertAccepted(messages.get("slow" + tag), 0, null);
        assertThat(fcm.receivedCount(tokens.get("slow" + tag))).isEqualTo(1);
        // The budget.
        JsonNode exhausted = messages.get("down" + tag);
        assertThat(exhausted.get("reason").asText()).isEqualTo("retries_exhausted");
        assertThat(fcm.receivedCount(down)).isEqualTo(MAX_ATTEMPTS);
        // Unregistered: invalidated, never retried.
        assertThat(messages.get("dead" + tag).get("reason").asText()).isEqualTo("unregistered");
        assertThat(fcm.receivedCount(dead)).isEqualTo(1);
        JsonNode device = gw.get("/v1/apps/" + gw.app + "/users/dead" + tag).json().get("devices").get(0);
        assertThat(device.get("state").asText()).isEqualTo("invalidated");
    }

    @Test
    void aStormOfResetsGoAwaysAndErrorsReconnectsLosesNothingAndLeavesNoThreads(TestGateway gw) {
        SandboxApns apns = gw.sandbox();
        SandboxFcm fcm = gw.herald.sandboxFcm();
        fcm.slowDelay(Duration.ofMillis(500));
        // Warm up: every connection and thread the gateway needs exists before the baseline.
        storm(gw, apns, fcm, 0, 1);
        int threadsBefore = liveThreads().size();
        Set<String> namesBefore = liveThreads();
        int apnsConnections = apns.connectionsAccepted();

        for (int round = 1; round <= 3; round++) {
            storm(gw, apns, fcm, round, 2);
        }

        assertThat(apns.connectionsAccepted()).as("APNs reconnects").isGreaterThan(apnsConnections);
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.herald.pipeline().inUse() == 0);
        // Threads that only lived for a fault (a reconnect, a timer) have time to end.
        await().atMost(Duration.ofSeconds(20)).until(() -> liveThreads().size() <= threadsBefore + 2);
        Set<String> added = new HashSet<>(liveThreads());
        added.removeAll(namesBefore);
        System.out.printf("threads before %d, after %d, new names %s%n", threadsBefore, liveThreads().size(), added);
    }

    /**
     * One round: a batch to APNs and FCM users, some FCM answers slow so requests are in flight, then
     * every connection dropped and a GOAWAY on the new ones, while 429/503/500 answers are
     * scripted on others. Every acknowledged message is accepted by its peer at least once.
     */
    private void storm(TestGateway gw, SandboxApns apns, SandboxFcm fcm, int round, int faults) {
        String tag = "-s" + round + "-" + UUID.randomUUID().toString().substring(0, 6);
        Map<String, String> apnsUsers = new LinkedHashMap<>();
        Map<String, String> fcmUsers = new LinkedHashMap<>();
        SandboxApns.Answer[] apnsFaults = {SandboxApns.Answer.TOO_MANY_REQUESTS, SandboxApns.Answer.SERVICE_UNAVAILABLE,
            SandboxApns.Answer.INTERNAL_SERVER_ERROR, SandboxApns.Answer.EXPIRED_PROVIDER_TOKEN};
        SandboxFcm.Answer[] fcmFaults = {SandboxFcm.Answer.INTERNAL, SandboxFcm.Answer.UNAUTHENTICATED};
        for (int i = 0; i < 20; i++) {
            String token = TestGateway.token();
            if (i < faults * 2) {
                apns.scriptOnce(token, apnsFaults[ThreadLocalRandom.current().nextInt(apnsFaults.length)]);
            }
            apnsUsers.put("a" + i + tag, token);
            String ft = fcmToken();
            if (i < 5) {
                fcm.scriptOnce(ft, SandboxFcm.Answer.SLOW);
            } else if (i < 5 + faults) {
                fcm.scriptOnce(ft, fcmFaults[ThreadLocalRandom.current().nextInt(fcmFaults.length)]);
            }
            fcmUsers.put("f" + i + tag, ft);
        }
        apnsUsers.forEach((u, t) -> gw.device(u, "phone", t));
        fcmUsers.forEach((user, token) -> fcmDevice(gw, user, token));
        List<String> users = new ArrayList<>(apnsUsers.keySet());
        users.addAll(fcmUsers.keySet());
        JsonNode accepted = gw.batch(users.stream().map(u -> TestGateway.msg(u, "storm")).toList());
        if (faults > 0) {
            String firstSlowFcm = fcmUsers.values().iterator().next();
            await().atMost(Duration.ofSeconds(10)).until(() -> fcm.receivedCount(firstSlowFcm) >= 1);
            // GOAWAY first (requests in flight are still answered, new ones need new connections),
            // then every connection dropped without a word (those in flight fail and are retried).
            apns.goAway();
            fcm.goAway();
            apns.dropConnections();
            fcm.dropConnections();
        }
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        JsonNode states = gw.batchStatus(batchId).get("states");
        assertThat(states.get("accepted").asInt()).as("round %d: %s", round, states).isEqualTo(users.size());
        long duplicates = 0;
        for (int i = 0; i < users.size(); i++) {
            UUID id = UUID.fromString(accepted.get("messages").get(i).get("id").asText());
            String user = users.get(i);
            int n = apnsUsers.containsKey(user) ? apns.acceptedCount(id) : fcm.acceptedCount(fcmUsers.get(user));
            assertThat(n).as("deliveries of %s", user).isBetween(1, 2);
            duplicates += n - 1;
        }
        // At least once: a request the peer served just before its connection dropped is sent
        // again. One drop per round, so no message arrives more than twice.
        System.out.printf("storm round %d: %d messages, %d duplicates%n", round, users.size(), duplicates);
    }

    // ---- helpers ----------------------------------------------------------------------------

    private static Map<String, JsonNode> sendAndSettle(TestGateway gw, Set<String> users) {
        List<String> order = new ArrayList<>(users);
        JsonNode accepted = gw.batch(order.stream().map(u -> TestGateway.msg(u, "fault")).toList());
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        Map<String, JsonNode> out = new LinkedHashMap<>();
        for (int i = 0; i < order.size(); i++) {
            out.put(order.get(i), gw.message(accepted.get("messages").get(i).get("id").asText()));
        }
        return out;
    }

    private static void assertAccepted(JsonNode message, int retries, String detail) {
        assertThat(message.get("state").asText()).as(message.toString()).isEqualTo("accepted");
        assertThat(retryNotes(message)).as(message.toString()).isEqualTo(retries);
        if (detail != null) {
            for (JsonNode h : message.get("history")) {
                if (h.get("state").asText().equals("retry")) {
                    assertThat(h.get("detail").asText()).contains(detail);
                }
            }
        }
    }

    private static long retryNotes(JsonNode message) {
        long n = 0;
        for (JsonNode h : message.get("history")) {
            if (h.get("state").asText().equals("retry")) {
                n++;
            }
        }
        return n;
    }

    private static String fcmToken() {
        return "fcm:" + UUID.randomUUID();
    }

    private static void fcmDevice(TestGateway gw, String user, String token) {
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user + "/devices/pixel",
                "{\"platform\":\"fcm\",\"token\":\"" + token + "\"}", gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
    }

    private static Set<String> liveThreads() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive)
                .map(t -> t.getName() + "#" + t.getId()).collect(Collectors.toSet());
    }
}
