package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The production path: an app with a real .p8 signing key (no sandbox mode) delivers over TLS to
 * an APNs endpoint it is configured for, with an ES256 provider token Apple would verify.
 */
@Timeout(120)
class TokenAuthIT {

    @Test
    void deliversWithAnEs256ProviderTokenSignedByTheConfiguredP8Key(@TempDir Path dir) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair keys = gen.generateKeyPair();
        Path p8 = dir.resolve("AuthKey_KEY1234567.p8");
        Files.writeString(p8, "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(keys.getPrivate().getEncoded())
                + "\n-----END PRIVATE KEY-----\n");

        try (SandboxApns apple = SandboxApns.start(0); EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"))) {
            Path cert = dir.resolve("peer.pem");
            Files.copy(apple.certificateFile().toPath(), cert);
            String hocon = "herald { data-dir = \"" + dir.resolve("data") + "\", http.port = 0, sandbox = false\n"
                    + "redis.url = \"" + redis.uri() + "\"\n"
                    + "apps.shop { rate-limit { rate = 1000, period = 1s, burst = 1000 }\n"
                    + "  apns { topic = com.example.shop, signing-key-file = \"" + p8 + "\", team-id = TEAM123456,"
                    + " key-id = KEY1234567, production-host = localhost, port = " + apple.port() + ","
                    + " trusted-certificate-file = \"" + cert + "\" } } }";
            HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                    .withFallback(ConfigFactory.defaultReference()).resolve(),
                    List.of(new HeraldConfig.InitialKey("shop", "shop-key-0123456789abcdef")));
            try (Herald herald = Herald.start(config)) {
                assertThat(herald.sandbox()).as("no sandbox peer when every app has credentials").isNull();
                HttpClient http = HttpClient.newHttpClient();
                String token = TestGateway.token();
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(herald.baseUrl() + "/v1/batches"))
                        .header("Authorization", "Bearer shop-key-0123456789abcdef")
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString("{\"app\":\"shop\",\"messages\":[{\"apnsToken\":\""
                                + token + "\",\"title\":\"hi\"}]}")).build(), HttpResponse.BodyHandlers.ofString());
                assertThat(r.statusCode()).as(r.body()).isEqualTo(202);
                JsonNode body = TestGateway.JSON.readTree(r.body());
                UUID id = UUID.fromString(body.get("messages").get(0).get("id").asText());
                await().atMost(Duration.ofSeconds(30)).until(() -> apple.acceptedCount(id) == 1);

                String auth = apple.lastAuthorization();
                assertThat(auth).startsWith("bearer ");
                String[] jwt = auth.substring(7).split("\\.");
                JsonNode header = TestGateway.JSON.readTree(Base64.getUrlDecoder().decode(jwt[0]));
                JsonNode claims = TestGateway.JSON.readTree(Base64.getUrlDecoder().decode(jwt[1]));
                assertThat(header.get("alg").asText()).isEqualTo("ES256");
                assertThat(header.get("kid").asText()).isEqualTo("KEY1234567");
                assertThat(claims.get("iss").asText()).isEqualTo("TEAM123456");
                byte[] signature = Base64.getUrlDecoder().decode(jwt[2]);
                // Verify in whichever encoding the token uses (raw R||S, or the JDK's DER as Pushy emits).
                Signature verify = Signature.getInstance(signature.length == 64
                        ? "SHA256withECDSAinP1363Format" : "SHA256withECDSA");
                verify.initVerify(keys.getPublic());
                verify.update((jwt[0] + "." + jwt[1]).getBytes(StandardCharsets.US_ASCII));
                assertThat(verify.verify(signature)).as("JWT signature (%s bytes)", signature.length).isTrue();
            }
        }
    }

    @Test
    void anUnreachableApnsEndpointIsRetriedWithBackoffThenFailsRetriesExhausted(@TempDir Path dir) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        Path p8 = dir.resolve("AuthKey.p8");
        Files.writeString(p8, "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder().encodeToString(gen.generateKeyPair().getPrivate().getEncoded())
                + "\n-----END PRIVATE KEY-----\n");
        // A port that refuses connections for the whole test: bound, so no other socket can take
        // it, but never listening (a port found free and released could be anyone's by now).
        try (java.net.Socket refusing = new java.net.Socket();
             EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"))) {
            refusing.setReuseAddress(false);
            refusing.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0));
            int closedPort = refusing.getLocalPort();
            String hocon = "herald { data-dir = \"" + dir.resolve("data") + "\", http.port = 0, sandbox = false\n"
                    + "redis.url = \"" + redis.uri() + "\"\napns { max-attempts = 3, backoff-base = 100ms }\n"
                    + "apps.shop.apns { topic = com.example.shop, signing-key-file = \"" + p8 + "\", team-id = TEAM123456,"
                    + " key-id = KEY1234567, production-host = \"127.0.0.1\", port = " + closedPort + " } }";
            HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                    .withFallback(ConfigFactory.defaultReference()).resolve(),
                    List.of(new HeraldConfig.InitialKey("shop", "shop-key-0123456789abcdef")));
            try (Herald herald = Herald.start(config)) {
                HttpClient http = HttpClient.newHttpClient();
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(herald.baseUrl() + "/v1/batches"))
                        .header("Authorization", "Bearer shop-key-0123456789abcdef")
                        .POST(HttpRequest.BodyPublishers.ofString("{\"app\":\"shop\",\"messages\":[{\"apnsToken\":\""
                                + TestGateway.token() + "\",\"title\":\"hi\"}]}")).build(), HttpResponse.BodyHandlers.ofString());
                assertThat(r.statusCode()).as(r.body()).isEqualTo(202);
                String id = TestGateway.JSON.readTree(r.body()).get("messages").get(0).get("id").asText();
                HttpRequest get = HttpRequest.newBuilder(URI.create(herald.baseUrl() + "/v1/messages/" + id))
                        .header("Authorization", "Bearer shop-key-0123456789abcdef").build();
                await().atMost(Duration.ofSeconds(60)).until(() -> TestGateway.JSON.readTree(
                        http.send(get, HttpResponse.BodyHandlers.ofString()).body()).get("state").asText().equals("failed"));
                JsonNode m = TestGateway.JSON.readTree(http.send(get, HttpResponse.BodyHandlers.ofString()).body());
                assertThat(m.get("reason").asText()).isEqualTo("retries_exhausted");
                long retries = 0;
                for (JsonNode h : m.get("history")) {
                    if (h.get("state").asText().startsWith("retry")) {
                        retries++;
                        assertThat(h.get("detail").asText()).startsWith("connection:");
                    }
                }
                assertThat(retries).isEqualTo(3); // two "retry" notes and the final "retry_failed"
            }
        }
    }
}
