package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.sandbox.SandboxFcm;
import io.herald.gateway.sandbox.SandboxSmsc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.Base64;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Two apps in one gateway, each with its own credentials: "demo" runs on the gateway's sandbox
 * peers, "shop" has its own APNs key, FCM project and service account, and SMPP account, each
 * pointing at peers of its own. Every message goes to its app's provider, and neither app's key
 * sees the other's users or batches.
 */
@Timeout(120)
class MultiAppIT {
    static final String DEMO_KEY = "demo-key-0123456789abcdef";
    static final String SHOP_KEY = "shop-key-0123456789abcdef";
    final HttpClient http = HttpClient.newHttpClient();

    private HttpResponse<String> call(Herald h, String method, String path, String key, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(h.baseUrl() + path)).header("Authorization", "Bearer " + key);
        if (body != null) {
            b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    private JsonNode sendAndWait(Herald h, String key, String app, String message) throws Exception {
        HttpResponse<String> r = call(h, "POST", "/v1/batches", key, "{\"app\":\"" + app + "\",\"messages\":[" + message + "]}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(202);
        JsonNode accepted = TestGateway.JSON.readTree(r.body());
        String id = accepted.get("messages").get(0).get("id").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> {
            String state = TestGateway.JSON.readTree(call(h, "GET", "/v1/messages/" + id, key, null).body())
                    .get("state").asText();
            return state.equals("accepted") || state.equals("delivered") || state.equals("failed") || state.equals("dropped");
        });
        return accepted;
    }

    @Test
    void eachAppDeliversWithItsOwnCredentialsAndSeesOnlyItsOwnUsers(@TempDir Path dir) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        Path p8 = dir.resolve("AuthKey_SHOP.p8");
        Files.writeString(p8, "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder().encodeToString(gen.generateKeyPair().getPrivate().getEncoded())
                + "\n-----END PRIVATE KEY-----\n");
        try (SandboxApns shopApns = SandboxApns.start(0);
             SandboxFcm shopFcm = SandboxFcm.start();
             SandboxSmsc shopSmsc = SandboxSmsc.start(0).credentials("shop", "s3cret");
             EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"))) {
            Path apnsCert = dir.resolve("apns.pem");
            Files.copy(shopApns.certificateFile().toPath(), apnsCert);
            Path fcmCert = dir.resolve("fcm.pem");
            Files.copy(shopFcm.certificateFile().toPath(), fcmCert);
            Path serviceAccount = shopFcm.writeServiceAccountJson(dir, "shop-project");
            String hocon = "herald { data-dir = \"" + dir.resolve("data") + "\", http.port = 0, sandbox = auto\n"
                    + "sandbox-record-ids = true\nredis.url = \"" + redis.uri() + "\"\n"
                    + "apps.demo {}\n"
                    + "apps.shop {\n"
                    + "  apns { topic = com.example.shop, signing-key-file = \"" + p8 + "\", team-id = TEAM123456,"
                    + "         key-id = KEY1234567, production-host = localhost, port = " + shopApns.port() + ","
                    + "         trusted-certificate-file = \"" + apnsCert + "\" }\n"
                    + "  fcm { project-id = shop-project, service-account-file = \"" + serviceAccount + "\","
                    + "        base-url = \"" + shopFcm.baseUrl() + "\", trusted-certificate-file = \"" + fcmCert + "\" }\n"
                    + "  sms { host = 127.0.0.1, port = " + shopSmsc.port() + ", system-id = shop, password = s3cret }\n"
                    + "} }";
            HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                    .withFallback(ConfigFactory.defaultReference()).resolve(),
                    List.of(new HeraldConfig.InitialKey("demo", DEMO_KEY), new HeraldConfig.InitialKey("shop", SHOP_KEY)));
            try (Herald h = Herald.start(config)) {
                String iosToken = TestGateway.token();
                String androidToken = "android:" + TestGateway.token();
                String phone = "+447700900555";
                for (String[] app : new String[][] {{"demo", DEMO_KEY}, {"shop", SHOP_KEY}}) {
                    String base = "/v1/apps/" + app[0] + "/users/";
                    assertThat(call(h, "PUT", base + "ios/devices/d", app[1],
                            "{\"platform\":\"apns\",\"token\":\"" + iosToken + "\"}").statusCode()).isEqualTo(200);
                    assertThat(call(h, "PUT", base + "android/devices/d", app[1],
                            "{\"platform\":\"fcm\",\"token\":\"" + androidToken + "\"}").statusCode()).isEqualTo(200);
                    assertThat(call(h, "PUT", base + "texter", app[1], "{\"phone\":\"" + phone + "\"}").statusCode())
                            .isEqualTo(200);
                }
                for (String[] app : new String[][] {{"demo", DEMO_KEY}, {"shop", SHOP_KEY}}) {
                    sendAndWait(h, app[1], app[0], "{\"user\":\"ios\",\"title\":\"" + app[0] + "\"}");
                    sendAndWait(h, app[1], app[0], "{\"user\":\"android\",\"title\":\"" + app[0] + "\"}");
                    sendAndWait(h, app[1], app[0], "{\"user\":\"texter\",\"body\":\"hello from " + app[0] + "\"}");
                }
                // Each app's messages went to its own providers, once.
                assertThat(h.sandbox().requestsTotal()).isEqualTo(1);
                assertThat(shopApns.requestsTotal()).isEqualTo(1);
                assertThat(h.sandboxFcm().acceptedCount(androidToken)).isEqualTo(1);
                assertThat(shopFcm.acceptedCount(androidToken)).isEqualTo(1);
                assertThat(h.sandboxSmsc().texts(phone)).containsExactly("hello from demo");
                assertThat(shopSmsc.texts(phone)).containsExactly("hello from shop");
                assertThat(shopApns.lastAuthorization()).startsWith("bearer ");

                // Neither key sees the other app's users or batches.
                assertThat(call(h, "GET", "/v1/apps/shop/users/ios", DEMO_KEY, null).statusCode()).isEqualTo(404);
                assertThat(call(h, "GET", "/v1/apps/demo/users/ios", SHOP_KEY, null).statusCode()).isEqualTo(404);
                JsonNode demoBatch = sendAndWait(h, DEMO_KEY, "demo", "{\"user\":\"ios\",\"title\":\"again\"}");
                assertThat(call(h, "GET", "/v1/batches/" + demoBatch.get("batchId").asText(), SHOP_KEY, null).statusCode())
                        .isEqualTo(404);
                assertThat(call(h, "POST", "/v1/batches", DEMO_KEY,
                        "{\"app\":\"shop\",\"messages\":[{\"user\":\"ios\",\"title\":\"x\"}]}").statusCode()).isEqualTo(404);
                // Phone numbers are sealed per app and user: same number, different ciphertexts.
                var sync = h.redis().shared().sync();
                String demoProfile = sync.hget(io.herald.gateway.redis.Keys.devices("demo", "texter"), "@profile");
                String shopProfile = sync.hget(io.herald.gateway.redis.Keys.devices("shop", "texter"), "@profile");
                assertThat(demoProfile).doesNotContain("7700900555");
                assertThat(demoProfile).isNotEqualTo(shopProfile);
            }
        }
    }
}
