package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.redis.EmbeddedRedis;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * {@code GET /readyz} while Redis does not answer (a proxy holds every byte): the probe answers
 * 503 from state kept off the event loops, at once, and the other connections of those loops are
 * served meanwhile. A readiness check that waited for PING on the event loop (as before) held each
 * of the two HTTP loops for its timeout per probe: a burst of probes stalled every connection.
 */
@Timeout(180)
class ReadinessIT {
    /** Probes sent at once, spread over both HTTP event loops (connections are dealt round-robin). */
    static final int PROBES = 30;
    /** Far above what an answer from memory takes, far below PROBES / 2 one-second waits. */
    static final Duration PROMPT = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    EmbeddedRedis redis;
    FaultyProxy proxy;
    TestGateway gw;

    @AfterEach
    void stop() throws Exception {
        if (proxy != null) {
            proxy.restore();
        }
        if (gw != null) {
            gw.close();
        }
        if (proxy != null) {
            proxy.close();
        }
        if (redis != null) {
            redis.close();
        }
    }

    @Test
    void aRedisThatStopsAnsweringMakesReadyz503AtOnceWithoutHoldingUpTheEventLoops() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        proxy = new FaultyProxy(redis.port());
        gw = new TestGateway("", proxy.redisUri());
        await().atMost(Duration.ofSeconds(20)).until(() -> gw.send("GET", "/readyz", null, null).status() == 200);

        proxy.pause();
        TestGateway.Response notReady = await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(100))
                .until(() -> gw.send("GET", "/readyz", null, null), r -> r.status() == 503);
        assertThat(notReady.json().get("status").asText()).isEqualTo("not_ready");
        assertThat(notReady.json().get("reason").asText()).contains("redis");

        // A burst of probes, then requests that share their event loops.
        List<Socket> probes = new ArrayList<>();
        List<Socket> others = new ArrayList<>();
        try {
            long t0 = System.nanoTime();
            for (int i = 0; i < PROBES; i++) {
                probes.add(send("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
            }
            for (int i = 0; i < 2; i++) {
                others.add(send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
            }
            for (Socket s : others) {
                assertThat(read(s)).startsWith("HTTP/1.1 200");
            }
            Duration othersIn = Duration.ofNanos(System.nanoTime() - t0);
            for (Socket s : probes) {
                String answer = read(s);
                assertThat(answer).startsWith("HTTP/1.1 503");
                JsonNode body = TestGateway.JSON.readTree(answer.substring(answer.indexOf("\r\n\r\n") + 4));
                assertThat(body.get("status").asText()).isEqualTo("not_ready");
            }
            Duration probesIn = Duration.ofNanos(System.nanoTime() - t0);
            assertThat(othersIn).as("requests on the probes' event loops answered meanwhile").isLessThan(PROMPT);
            assertThat(probesIn).as(PROBES + " probes answered without waiting for Redis").isLessThan(PROMPT);
        } finally {
            for (Socket s : probes) {
                s.close();
            }
            for (Socket s : others) {
                s.close();
            }
        }

        // Redis answers again: ready again, by itself.
        proxy.restore();
        await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(100))
                .until(() -> gw.send("GET", "/readyz", null, null).status() == 200);
    }

    private Socket send(String request) throws IOException {
        Socket s = new Socket(gw.herald.address().getAddress(), gw.herald.address().getPort());
        s.setSoTimeout(60_000);
        s.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
        s.getOutputStream().flush();
        return s;
    }

    /** The whole answer (the server closes after it: the request said Connection: close). */
    private static String read(Socket s) throws IOException {
        return new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
}
