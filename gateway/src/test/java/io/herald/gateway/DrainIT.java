package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * SIGTERM drain ({@code Herald.close()}, what the shutdown hook runs): while the pipeline drains the
 * work in flight, every {@code /v1} call answers 503 + {@code Retry-After}, {@code /readyz} answers
 * 503 {@code draining} (load balancers stop sending), and {@code /healthz} stays 200 (the process
 * is alive, not to be killed). The listener is closed by then, so the calls go over a connection
 * opened before the drain began.
 */
@Timeout(120)
class DrainIT {
    /** A gateway of its own: the test drains it. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig(
            "apns { backoff-base = 200ms, backoff-max = 200ms, max-attempts = 1000 }\n"
            + "shutdown.drain-timeout = 60s").perTest();

    @Test
    void whileDrainingV1AndReadyzAnswer503AndHealthzStays200(TestGateway gw) throws Exception {
        SandboxApns sandbox = gw.sandbox();
        String user = "draining-" + UUID.randomUUID();
        String token = TestGateway.token();
        sandbox.scriptAlways(token, SandboxApns.Answer.INTERNAL_SERVER_ERROR); // in flight until we say so
        gw.device(user, "phone", token);
        JsonNode batch = gw.batch(List.of(TestGateway.msg(user, "in flight")));
        UUID id = UUID.fromString(batch.get("messages").get(0).get("id").asText());
        await().atMost(Duration.ofSeconds(30)).until(() -> !sandbox.arrivals(token).isEmpty());

        try (RawConnection c = new RawConnection(gw.herald.address())) {
            assertThat(c.send("GET", "/readyz", null, null).status).isEqualTo(200);
            Thread closer = new Thread(gw.herald::close, "test-close");
            closer.start();
            await().atMost(Duration.ofSeconds(10)).until(() -> c.send("GET", "/readyz", null, null).status == 503);

            RawConnection.Reply ready = c.send("GET", "/readyz", null, null);
            assertThat(ready.body).contains("draining");
            assertThat(c.send("GET", "/healthz", null, null).status).isEqualTo(200);
            String body = "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg(user, "late") + "]}";
            for (RawConnection.Reply r : List.of(c.send("POST", "/v1/batches", gw.key, body),
                    c.send("GET", "/v1/batches/" + batch.get("batchId").asText(), gw.key, null),
                    c.send("GET", "/v1/messages/" + id, gw.key, null),
                    c.send("POST", "/v1/receipts", null, "{\"receipts\":[]}"))) {
                assertThat(r.status).as(r.toString()).isEqualTo(503);
                assertThat(r.headers.get("retry-after")).as(r.toString()).isEqualTo("1");
                assertThat(TestGateway.JSON.readTree(r.body).path("error").path("code").asText()).isEqualTo("unavailable");
            }
            assertThat(closer.isAlive()).as("still draining: the message is in flight").isTrue();

            // The provider recovers: the message settles, the drain ends, close returns.
            sandbox.scriptAlways(token, SandboxApns.Answer.ACCEPT);
            closer.join(Duration.ofSeconds(30).toMillis());
            assertThat(closer.isAlive()).isFalse();
            assertThat(sandbox.acceptedCount(id)).isEqualTo(1);
        }
    }

    /** One HTTP/1.1 keep-alive connection, request after request; enough HTTP for these answers. */
    static final class RawConnection implements AutoCloseable {
        private final Socket socket = new Socket();
        private final InputStream in;
        private final OutputStream out;

        record Reply(int status, Map<String, String> headers, String body) { }

        RawConnection(InetSocketAddress address) throws IOException {
            socket.connect(address, 5000);
            socket.setSoTimeout(10_000);
            in = socket.getInputStream();
            out = socket.getOutputStream();
        }

        Reply send(String method, String path, String apiKey, String body) throws IOException {
            byte[] content = body == null ? new byte[0] : body.getBytes(StandardCharsets.UTF_8);
            StringBuilder req = new StringBuilder(method).append(' ').append(path).append(" HTTP/1.1\r\n")
                    .append("Host: 127.0.0.1\r\n");
            if (apiKey != null) {
                req.append("Authorization: Bearer ").append(apiKey).append("\r\n");
            }
            if (body != null) {
                req.append("Content-Type: application/json\r\n");
            }
            req.append("Content-Length: ").append(content.length).append("\r\n\r\n");
            out.write(req.toString().getBytes(StandardCharsets.US_ASCII));
            out.write(content);
            out.flush();
            String status = line();
            Map<String, String> headers = new HashMap<>();
            for (String h = line(); !h.isEmpty(); h = line()) {
                int colon = h.indexOf(':');
                headers.put(h.substring(0, colon).trim().toLowerCase(Locale.ROOT), h.substring(colon + 1).trim());
            }
            byte[] answer = in.readNBytes(Integer.parseInt(headers.getOrDefault("content-length", "0")));
            return new Reply(Integer.parseInt(status.split(" ")[1]), headers, new String(answer, StandardCharsets.UTF_8));
        }

        private String line() throws IOException {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            for (int c = in.read(); c != '\n'; c = in.read()) {
                if (c < 0) {
                    throw new IOException("connection closed by the gateway");
                }
                if (c != '\r') {
                    b.write(c);
                }
            }
            return b.toString(StandardCharsets.US_ASCII);
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }
}
