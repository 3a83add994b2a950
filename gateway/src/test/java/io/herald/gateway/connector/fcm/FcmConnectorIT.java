package io.herald.gateway.connector.fcm;

import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.connector.DeliveryResult.Status;
import io.herald.gateway.connector.Target;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.sandbox.SandboxFcm;
import io.herald.gateway.sandbox.SandboxFcm.Answer;
import io.herald.gateway.sandbox.SandboxFcm.Arrival;
import io.herald.protocol.Message;
import io.herald.protocol.Priority;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The connector against the real-protocol peer: HTTP/2 over TLS, OAuth2 through
 * google-auth-library's service-account flow against the sandbox's token endpoint.
 */
@Timeout(120)
class FcmConnectorIT {
    static final String APP = "shop";
    static final String PROJECT = "herald-test";
    static final Duration BACKOFF = Duration.ofMillis(200);
    static final Duration QUOTA_BACKOFF = Duration.ofMillis(300);

    @TempDir
    Path dir;
    SandboxFcm sandbox;
    FcmConnector connector;
    final Map<UUID, DeliveryResult> results = new ConcurrentHashMap<>();
    final Map<UUID, AtomicInteger> calls = new ConcurrentHashMap<>();

    @BeforeEach
    void startPeer() {
        sandbox = SandboxFcm.start();
    }

    @AfterEach
    void stop() {
        if (connector != null) {
            connector.close();
        }
        sandbox.close();
    }

    private FcmConnector connect(Duration refreshMargin) {
        FcmConnector.Settings settings = new FcmConnector.Settings(2, 50, 4, BACKOFF, Duration.ofSeconds(2),
                QUOTA_BACKOFF, refreshMargin);
        FcmConnector.Project project = new FcmConnector.Project(APP, PROJECT,
                FcmConnector.credentials(sandbox.writeServiceAccountJson(dir, PROJECT)), sandbox.baseUrl(),
                new java.security.cert.X509Certificate[] {sandbox.certificate()});
        connector = new FcmConnector(settings, Map.of(APP, project), new Metrics());
        await().atMost(Duration.ofSeconds(20)).until(connector::ready);
        return connector;
    }

    private FcmConnector connect() {
        return connect(Duration.ofMinutes(5));
    }

    private static Message message(String token, String title) {
        return new Message(null, null, null, token, title, "body of " + title, null, Priority.HIGH, 3600, null,
                "default", null, null, null, null, null, null, null, null, null);
    }

    private UUID send(String token) {
        UUID id = UUID.randomUUID();
        connector.send(new Delivery(APP, id, message(token, "t-" + id), new Target("fcm", "dev-" + token, token, false),
                System.currentTimeMillis() + 3_600_000, (d, r) -> {
                    calls.computeIfAbsent(d.messageId(), k -> new AtomicInteger()).incrementAndGet();
                    results.put(d.messageId(), r);
                }));
        return id;
    }

    private DeliveryResult resultOf(UUID id) {
        await().atMost(Duration.ofSeconds(30)).until(() -> results.containsKey(id));
        return results.get(id);
    }

    private static String token() {
        return "fcm-" + UUID.randomUUID();
    }

    private static long retryNotes(DeliveryResult r) {
        return r.notes().stream().filter(n -> n.contains("\"state\":\"retry\"")).count();
    }

    @Test
    void deliversEveryMessageExactlyOnceWithItsName() {
        connect();
        int n = 600;
        Map<UUID, String> tokens = new ConcurrentHashMap<>();
        for (int i = 0; i < n; i++) {
            String t = token();
            tokens.put(send(t), t);
        }
        await().atMost(Duration.ofSeconds(60)).until(() -> results.size() == n);
        assertThat(connector.pending()).isZero();
        tokens.forEach((id, t) -> {
            DeliveryResult r = results.get(id);
            assertThat(r.status()).isEqualTo(Status.ACCEPTED);
            assertThat(r.providerId()).startsWith("projects/" + PROJECT + "/messages/");
            assertThat(r.notes()).isEmpty();
            assertThat(calls.get(id)).hasValue(1);
            assertThat(sandbox.acceptedCount(t)).isEqualTo(1);
        });
        assertThat(results.values().stream().map(DeliveryResult::providerId).distinct()).hasSize(n);
        assertThat(sandbox.acceptedMessages()).hasSize(n).allSatisfy((body, count) -> assertThat(count).isEqualTo(1));
        assertThat(sandbox.requestsTotal()).isEqualTo(n);
        assertThat(sandbox.tokensIssued()).isEqualTo(1);
        String body = sandbox.lastBody(tokens.values().iterator().next());
        assertThat(body).contains("\"token\":\"fcm-").contains("\"priority\":\"HIGH\"").contains("\"ttl\":\"3600s\"");
    }

    /**
     * A permanent answer ends the delivery at the first attempt, with no retry: a dead or invalid
     * token invalidates the device, a sender mismatch fails the message and leaves the device alone.
     */
    @ParameterizedTest(name = "{0} -> {1} {2}")
    @CsvSource({
        "UNREGISTERED,       INVALIDATED, unregistered",
        "INVALID_ARGUMENT,   INVALIDATED, invalid_argument",
        "SENDER_ID_MISMATCH, FAILED,      sender_id_mismatch",
    })
    void aPermanentAnswerEndsTheDeliveryAtTheFirstAttempt(Answer answer, Status status, String reason) {
        connect();
        String t = token();
        sandbox.scriptAlways(t, answer);
        DeliveryResult r = resultOf(send(t));
        assertThat(r.status()).isEqualTo(status);
        assertThat(r.reason()).isEqualTo(reason);
        assertThat(r.notes()).as("retry notes").isEmpty();
        assertThat(r.invalidatedAt() > 0).as("invalidatedAt set").isEqualTo(status == Status.INVALIDATED);
        assertThat(sandbox.receivedCount(t)).isEqualTo(1);
    }

    @Test
    void retriesInternalErrorsWithBackoffThenDelivers() {
        connect();
        String t = token();
        sandbox.scriptOnce(t, Answer.INTERNAL, Answer.INTERNAL);
        DeliveryResult r = resultOf(send(t));
        assertThat(r.status()).isEqualTo(Status.ACCEPTED);
        assertThat(retryNotes(r)).isEqualTo(2);
        List<Arrival> arrivals = sandbox.arrivals(t);
        assertThat(arrivals).hasSize(3);
        // Equal jitter: the n-th retry waits at least half of base * 2^(n-1).
        assertThat(arrivals.get(1).nanoTime() - arrivals.get(0).nanoTime()).isGreaterThanOrEqualTo(BACKOFF.toNanos() / 2);
        assertThat(arrivals.get(2).nanoTime() - arrivals.get(1).nanoTime()).isGreaterThanOrEqualTo(BACKOFF.toNanos());
        assertThat(sandbox.acceptedCount(t)).isEqualTo(1);
    }

    @Test
    void givesUpAfterMaxAttempts() {
        connect();
        String t = token();
        sandbox.scriptAlways(t, Answer.INTERNAL);
        DeliveryResult r = resultOf(send(t));
        assertThat(r.status()).isEqualTo(Status.FAILED);
        assertThat(r.reason()).isEqualTo("retries_exhausted");
        assertThat(sandbox.receivedCount(t)).isEqualTo(4);
        assertThat(r.notes()).hasSize(4).last().asString().contains("retry_failed");
    }

    @Test
    void unavailableWaitsForRetryAfter() {
        sandbox.unavailableRetryAfter(1);
        connect();
        String t = token();
        sandbox.scriptOnce(t, Answer.UNAVAILABLE);
        DeliveryResult r = resultOf(send(t));
        assertThat(r.status()).isEqualTo(Status.ACCEPTED);
        assertThat(r.notes()).singleElement().asString().contains("503 UNAVAILABLE").contains("Retry-After");
        List<Arrival> arrivals = sandbox.arrivals(t);
        assertThat(arrivals).hasSize(2);
        assertThat(arrivals.get(1).nanoTime() - arrivals.get(0).nanoTime())
                .isGreaterThanOrEqualTo(Duration.ofSeconds(1).toNanos());
    }

    @Test
    void quotaExceededPausesTheWholeProjectAndLosesNothing() {
        sandbox.quotaRetryAfter(0); // the connector's quota backoff (300 ms) decides
        connect();
        String hot = token();
        sandbox.scriptOnce(hot, Answer.QUOTA_EXCEEDED);
        UUID first = send(hot);
        await().atMost(Duration.ofSeconds(10)).until(() -> connector.paused(APP));
        long quotaAt = sandbox.arrivals(hot).get(0).nanoTime();

        List<UUID> others = new ArrayList<>();
        List<String> otherTokens = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            String t = token();
            otherTokens.add(t);
            others.add(send(t));
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> results.size() == 51);

        assertThat(results.values()).allSatisfy(r -> assertThat(r.status()).isEqualTo(Status.ACCEPTED));
        assertThat(sandbox.arrivals()).hasSize(52);
        for (Arrival a : sandbox.arrivals()) {
            if (a.nanoTime() != quotaAt) {
                assertThat(a.nanoTime() - quotaAt).as("request during the pause")
                        .isGreaterThanOrEqualTo(QUOTA_BACKOFF.toNanos());
            }
        }
        DeliveryResult r = results.get(first);
        assertThat(r.notes()).singleElement().asString().contains("429").contains("paused");
        assertThat(sandbox.acceptedCount(hot)).isEqualTo(1);
        otherTokens.forEach(t -> assertThat(sandbox.acceptedCount(t)).isEqualTo(1));
        assertThat(connector.pending()).isZero();
    }

    @Test
    void repeatedQuotaExceededDoublesThePauseAndSpendsNoAttempts() {
        sandbox.quotaRetryAfter(-1);
        connect();
        String hot = token();
        // As many 429s as max-attempts (4): none of them spends an attempt.
        sandbox.scriptOnce(hot, Answer.QUOTA_EXCEEDED, Answer.QUOTA_EXCEEDED, Answer.QUOTA_EXCEEDED,
                Answer.QUOTA_EXCEEDED);
        DeliveryResult r = resultOf(send(hot));
        assertThat(r.status()).isEqualTo(Status.ACCEPTED);
        List<Arrival> a = sandbox.arrivals(hot);
        assertThat(a).hasSize(5);
        assertThat(a.get(1).nanoTime() - a.get(0).nanoTime()).isGreaterThanOrEqualTo(QUOTA_BACKOFF.toNanos());
        assertThat(a.get(2).nanoTime() - a.get(1).nanoTime()).isGreaterThanOrEqualTo(QUOTA_BACKOFF.toNanos() * 2);
        assertThat(a.get(3).nanoTime() - a.get(2).nanoTime()).isGreaterThanOrEqualTo(QUOTA_BACKOFF.toNanos() * 4);
        assertThat(a.get(4).nanoTime() - a.get(3).nanoTime()).isGreaterThanOrEqualTo(QUOTA_BACKOFF.toNanos() * 8);
        assertThat(r.notes()).hasSize(4);
    }

    @Test
    void refreshesTheAccessTokenBeforeItExpires() {
        sandbox.tokenLifetime(Duration.ofSeconds(2));
        connect(Duration.ofSeconds(1));
        List<UUID> ids = new ArrayList<>();
        for (int wave = 0; wave < 3; wave++) {
            long issued = sandbox.tokensIssued();
            for (int i = 0; i < 20; i++) {
                ids.add(send(token()));
            }
            await().atMost(Duration.ofSeconds(20)).until(() -> ids.stream().allMatch(results::containsKey));
            // Next wave with the next token.
            await().atMost(Duration.ofSeconds(10)).until(() -> sandbox.tokensIssued() > issued);
        }
        assertThat(results.values()).hasSize(60).allSatisfy(r -> {
            assertThat(r.status()).isEqualTo(Status.ACCEPTED);
            assertThat(r.notes()).isEmpty();
        });
        assertThat(sandbox.tokensIssued()).isGreaterThanOrEqualTo(3);
        assertThat(sandbox.unauthorizedTotal()).as("requests with an expired token").isZero();
    }

    @Test
    void unauthenticatedRefreshesTheTokenAndResendsOnce() {
        connect();
        String t = token();
        sandbox.scriptOnce(t, Answer.UNAUTHENTICATED);
        DeliveryResult r = resultOf(send(t));
        assertThat(r.status()).isEqualTo(Status.ACCEPTED);
        assertThat(r.notes()).singleElement().asString().contains("401");
        assertThat(sandbox.tokensIssued()).isEqualTo(2);
        assertThat(sandbox.receivedCount(t)).isEqualTo(2);
    }

    @Test
    void revokedTokenIsReplacedOnceForAllInFlightRequests() {
        connect();
        sandbox.revokeAccessTokens();
        List<UUID> ids = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            ids.add(send(token()));
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> results.size() == 30);
        assertThat(results.values()).allSatisfy(r -> assertThat(r.status()).isEqualTo(Status.ACCEPTED));
        assertThat(sandbox.tokensIssued()).isEqualTo(2);
    }

    @Test
    void reconnectsAndRetriesWhenConnectionsDrop() {
        sandbox.slowDelay(Duration.ofSeconds(5));
        connect();
        List<String> slow = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            String t = token();
            sandbox.scriptOnce(t, Answer.SLOW);
            slow.add(t);
            send(t);
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> slow.stream().allMatch(t -> sandbox.receivedCount(t) == 1));
        sandbox.dropConnections();
        await().atMost(Duration.ofSeconds(30)).until(() -> results.size() == 10);
        assertThat(results.values()).allSatisfy(r -> {
            assertThat(r.status()).isEqualTo(Status.ACCEPTED);
            assertThat(r.notes()).singleElement().asString().contains("connection");
        });
        slow.forEach(t -> assertThat(sandbox.receivedCount(t)).isEqualTo(2));
        assertThat(connector.pending()).isZero();
    }

    @Test
    void movesToANewConnectionAfterGoAwayWithoutLosingInFlightRequests() {
        sandbox.slowDelay(Duration.ofMillis(500));
        connect();
        List<String> slow = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            String t = token();
            sandbox.scriptOnce(t, Answer.SLOW);
            slow.add(t);
            send(t);
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> slow.stream().allMatch(t -> sandbox.receivedCount(t) == 1));
        sandbox.goAway();
        List<String> after = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            String t = token();
            after.add(t);
            send(t);
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> results.size() == 30);
        assertThat(results.values()).allSatisfy(r -> assertThat(r.status()).isEqualTo(Status.ACCEPTED));
        slow.forEach(t -> assertThat(sandbox.acceptedCount(t)).isEqualTo(1));
        after.forEach(t -> assertThat(sandbox.acceptedCount(t)).isEqualTo(1));
    }
}
