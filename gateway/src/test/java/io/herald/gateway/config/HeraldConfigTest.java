package io.herald.gateway.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class HeraldConfigTest {

    @Test
    void defaultsGiveOneDemoAppOnLoopback() {
        HeraldConfig c = HeraldConfig.load(null, Map.of(), List.of());
        assertThat(c.apps()).containsOnlyKeys("demo");
        assertThat(c.http().host()).isEqualTo("127.0.0.1");
        assertThat(c.http().maxItemsPerBatch()).isEqualTo(10_000);
        assertThat(c.redis().embedded()).isTrue();
        assertThat(c.sandbox()).isEqualTo(HeraldConfig.SandboxMode.AUTO);
    }

    @Test
    void commandLineOverridesWin() {
        HeraldConfig c = HeraldConfig.load(null, Map.of("http.port", 0, "redis.url", "redis://127.0.0.1:1"),
                List.of(new HeraldConfig.InitialKey("shop", "0123456789abcdef0123")));
        assertThat(c.http().port()).isZero();
        assertThat(c.redis().embedded()).isFalse();
        assertThat(c.apps()).containsKeys("demo", "shop");
    }

    @Test
    void environmentOverridesTheFileAndTheCommandLineOverridesBoth(@TempDir Path dir) throws Exception {
        Path conf = dir.resolve("herald.conf");
        Files.writeString(conf, "herald { node-id = from-file, http { host = \"10.0.0.1\", port = 1111 }\n"
                + "redis.url = \"redis://file-host:6379\", sandbox = false }");
        Map<String, String> env = Map.of("HERALD_HOST", "10.0.0.2", "HERALD_PORT", "2222",
                "REDIS_URL", "redis://env-host:6379", "HERALD_SANDBOX", "true");
        HeraldConfig c = HeraldConfig.load(conf, env, Map.of("http.port", 3333), List.of());
        assertThat(c.nodeId()).as("file over defaults").isEqualTo("from-file");
        assertThat(c.http().host()).as("env over file").isEqualTo("10.0.0.2");
        assertThat(c.redis().url()).as("env over file").isEqualTo("redis://env-host:6379");
        assertThat(c.sandbox()).as("env over file").isEqualTo(HeraldConfig.SandboxMode.ALWAYS);
        assertThat(c.http().port()).as("command line over env and file").isEqualTo(3333);
    }

    @Test
    void environmentVariablesStillResolveSubstitutionsInTheFile(@TempDir Path dir) throws Exception {
        Path conf = dir.resolve("herald.conf");
        Files.writeString(conf, "herald.tracking.link-base-url = ${?LINKS}");
        HeraldConfig c = HeraldConfig.load(conf, Map.of("LINKS", "https://go.example.com"), Map.of(), List.of());
        assertThat(c.tracking().linkBaseUrl()).isEqualTo("https://go.example.com");
    }

    @Test
    void unreadableSigningKeyFailsWithOneActionableLine(@TempDir Path dir) throws Exception {
        Path conf = dir.resolve("herald.conf");
        Files.writeString(conf, "herald.apps.shop.apns { signing-key-file = \"" + dir.resolve("missing.p8")
                + "\", team-id = T, key-id = K, topic = com.shop }");
        assertThatThrownBy(() -> HeraldConfig.load(conf, Map.of(), List.of()))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("herald.apps.shop.apns.signing-key-file")
                .hasMessageContaining("not readable")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
    }

    @Test
    void retentionIsSplitIntoMessagesAndAggregatesAndTheOldScalarFailsWithOneLine(@TempDir Path dir)
            throws Exception {
        HeraldConfig d = HeraldConfig.load(null, Map.of(), List.of());
        assertThat(d.retention().messages()).isEqualTo(java.time.Duration.ofHours(72));
        assertThat(d.retention().aggregates()).isEqualTo(java.time.Duration.ofDays(90));
        Path conf = dir.resolve("herald.conf");
        Files.writeString(conf, "herald.retention = 7d");
        assertThatThrownBy(() -> HeraldConfig.load(conf, Map.of(), List.of()))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("retention.messages")
                .hasMessageContaining("retention.aggregates")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
        Files.writeString(conf, "herald.retention { messages = 1d, aggregates = 30d }");
        HeraldConfig c = HeraldConfig.load(conf, Map.of(), List.of());
        assertThat(c.retention().messages()).isEqualTo(java.time.Duration.ofDays(1));
        assertThat(c.retention().aggregates()).isEqualTo(java.time.Duration.ofDays(30));
    }

    @Test
    void badRedisUriIsRejectedAtLoad() {
        assertThatThrownBy(() -> HeraldConfig.load(null, Map.of("redis.url", "localhost:6379"), List.of()))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("is not a Redis URI");
    }

    @Test
    void plainApiKeysInConfigAreRefused() {
        assertThatThrownBy(() -> HeraldConfig.load(null, Map.of("apps.demo.api-keys", List.of("my-secret")), List.of()))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("sha256:");
    }

    @Test
    void shortInitialKeyIsRefused() {
        assertThatThrownBy(() -> HeraldConfig.load(null, Map.of(), List.of(new HeraldConfig.InitialKey("demo", "short"))))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("too short");
    }

    @Test
    void secretsDoNotAppearInToString(@TempDir Path dir) throws Exception {
        Path p12 = Files.writeString(dir.resolve("cert.p12"), "not really a certificate");
        String dataKey = "ZGF0YS1rZXktZGF0YS1rZXktZGF0YS1rZXktMDEyMzQ=";
        String receiptKey = "cmVjZWlwdC1rZXktcmVjZWlwdC1rZXktMDEyMzQ1Njc=";
        String previousKey = "cHJldmlvdXMta2V5LXByZXZpb3VzLWtleS0wMTIzNDU=";
        String keyHash = "ab".repeat(32);
        Path conf = dir.resolve("herald.conf");
        Files.writeString(conf, "herald {\n"
                + "data-key = \"" + dataKey + "\"\n"
                + "receipts { key = \"" + receiptKey + "\", previous-keys = [\"k0:" + previousKey + "\"] }\n"
                + "apps.shop {\n"
                + "  api-keys = [\"sha256:" + keyHash + "\"]\n"
                + "  apns { certificate-file = \"" + p12 + "\", certificate-password = \"p12-password-secret\" }\n"
                + "  sms { host = smsc.example.com, system-id = shop, password = \"smpp-password-secret\" }\n"
                + "  webhook { url = \"https://hook-user:hook-password@example.com/h?token=query-secret\",\n"
                + "            secret = \"webhook-signing-secret\" }\n"
                + "} }");
        HeraldConfig c = HeraldConfig.load(conf, Map.of("REDIS_URL", "redis://:redis-password@10.0.0.5:6379"),
                Map.of(), List.of(new HeraldConfig.InitialKey("shop", "initial-api-key-secret")));
        assertThat(c.dataKey()).isEqualTo(dataKey);
        assertThat(c.apps().get("shop").apiKeyHashes()).containsExactly(keyHash);

        assertThat(c.toString()).contains("shop", "smsc.example.com", "example.com")
                .doesNotContain(dataKey, receiptKey, previousKey, keyHash, "p12-password-secret",
                        "smpp-password-secret", "hook-password", "query-secret", "webhook-signing-secret",
                        "redis-password", "initial-api-key-secret");
    }

    @Test
    void anAppIsBuiltAndChangedThroughAValidatingBuilder() {
        AppConfig demo = HeraldConfig.load(null, Map.of(), List.of()).apps().get("demo");
        AppConfig.Sms wide = new AppConfig.Sms("", 2775, "", "", 1, 50, 1001, "Herald", false);
        assertThatThrownBy(() -> demo.toBuilder().sms(wide).build())
                .isInstanceOf(AppConfig.InvalidAppConfigException.class)
                .hasMessage("sms.window: 1001 (expected: 1..1000)")
                .satisfies(e -> assertThat(((AppConfig.InvalidAppConfigException) e).setting()).isEqualTo("sms.window"));

        AppConfig limited = demo.toBuilder().name("shop")
                .rateLimit(new AppConfig.RateLimit(10, java.time.Duration.ofMinutes(1), 5)).build();
        assertThat(limited.name()).isEqualTo("shop");
        assertThat(limited.rateLimit().rate()).isEqualTo(10);
        assertThat(limited.channels()).isEqualTo(demo.channels());
        assertThat(demo.toBuilder().build()).isEqualTo(demo);
    }
}
