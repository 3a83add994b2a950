package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.sandbox.SandboxApns;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.math.BigInteger;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Base64;
import java.util.Date;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The production path for certificate auth: an app configured with a PKCS#12 (.p12) certificate
 * and its password delivers over TLS to an APNs endpoint that requires a client certificate, and
 * the endpoint sees exactly that certificate. A token-auth app on the same endpoint, which
 * presents no certificate, is refused: the peer really checks.
 */
@Timeout(120)
class CertificateAuthIT {
    private static final String PASSWORD = "p12-secret";

    @Test
    void deliversWithTheClientCertificateOfTheConfiguredP12(@TempDir Path dir) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair keys = gen.generateKeyPair();
        // What Apple issues, near enough: the topic in the subject, signed here by its own key.
        X500Name subject = new X500Name("UID=com.example.shop, CN=Apple Push Services: com.example.shop, O=Herald Test");
        Instant now = Instant.now();
        X509Certificate cert = new JcaX509CertificateConverter().getCertificate(new JcaX509v3CertificateBuilder(
                subject, BigInteger.valueOf(now.toEpochMilli()), Date.from(now.minus(1, ChronoUnit.DAYS)),
                Date.from(now.plus(1, ChronoUnit.DAYS)), subject, keys.getPublic())
                .build(new JcaContentSignerBuilder("SHA256withECDSA").build(keys.getPrivate())));
        KeyStore p12 = KeyStore.getInstance("PKCS12");
        p12.load(null, null);
        p12.setKeyEntry("apns", keys.getPrivate(), PASSWORD.toCharArray(), new Certificate[] {cert});
        Path p12File = dir.resolve("apns-cert.p12");
        try (OutputStream out = Files.newOutputStream(p12File)) {
            p12.store(out, PASSWORD.toCharArray());
        }
        Path p8 = dir.resolve("AuthKey_KEY1234567.p8");
        Files.writeString(p8, "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
                .encodeToString(gen.generateKeyPair().getPrivate().getEncoded())
                + "\n-----END PRIVATE KEY-----\n");

        try (SandboxApns apple = SandboxApns.start(0, cert); EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"))) {
            Path peer = dir.resolve("peer.pem");
            Files.copy(apple.certificateFile().toPath(), peer);
            String endpoint = "production-host = localhost, port = " + apple.port() + ", trusted-certificate-file = \""
                    + peer + "\"";
            String hocon = "herald { data-dir = \"" + dir.resolve("data") + "\", http.port = 0, sandbox = false\n"
                    + "redis.url = \"" + redis.uri() + "\"\n"
                    + "apps.shop.apns { topic = com.example.shop, certificate-file = \"" + p12File + "\","
                    + " certificate-password = \"" + PASSWORD + "\", " + endpoint + " }\n"
                    + "apps.tokens.apns { topic = com.example.shop, signing-key-file = \"" + p8 + "\","
                    + " team-id = TEAM123456, key-id = KEY1234567, " + endpoint + " } }";
            HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                    .withFallback(ConfigFactory.defaultReference()).resolve(),
                    List.of(new HeraldConfig.InitialKey("shop", "shop-key-0123456789abcdef"),
                            new HeraldConfig.InitialKey("tokens", "tokens-key-0123456789abcdef")));
            try (Herald herald = Herald.start(config)) {
                assertThat(herald.sandbox()).as("no sandbox peer when every app has credentials").isNull();
                HttpClient http = HttpClient.newHttpClient();

                JsonNode sent = send(http, herald, "shop", "shop-key-0123456789abcdef");
                await().atMost(Duration.ofSeconds(30)).until(() -> state(http, herald, sent, "shop-key-0123456789abcdef")
                        .get("state").asText().equals("accepted"));
                assertThat(apple.acceptedCount(java.util.UUID.fromString(sent.get("messages").get(0).get("id")
                        .asText()))).isEqualTo(1);
                assertThat(apple.lastClientCertificate()).as("the certificate the peer saw").isEqualTo(cert);
                assertThat(apple.lastAuthorization()).as("no provider token with a certificate").isNull();

                JsonNode refused = send(http, herald, "tokens", "tokens-key-0123456789abcdef");
                await().atMost(Duration.ofSeconds(30)).until(() -> state(http, herald, refused,
                        "tokens-key-0123456789abcdef").get("state").asText().equals("failed"));
                assertThat(state(http, herald, refused, "tokens-key-0123456789abcdef").get("reason").asText())
                        .isEqualTo("missing_provider_token");
            }
        }
    }

    private static JsonNode send(HttpClient http, Herald herald, String app, String key) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(herald.baseUrl() + "/v1/batches"))
                .header("Authorization", "Bearer " + key)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"app\":\"" + app + "\",\"messages\":[{\"apnsToken\":\""
                        + TestGateway.token() + "\",\"title\":\"hi\"}]}")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(202);
        return TestGateway.JSON.readTree(r.body());
    }

    private static JsonNode state(HttpClient http, Herald herald, JsonNode batch, String key) throws Exception {
        String id = batch.get("messages").get(0).get("id").asText();
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(herald.baseUrl() + "/v1/messages/" + id))
                .header("Authorization", "Bearer " + key).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return TestGateway.JSON.readTree(r.body());
    }
}
