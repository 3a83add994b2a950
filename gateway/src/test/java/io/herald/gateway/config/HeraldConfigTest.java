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
    void secretsDoNotAppearInToString() {
        assertThat(new HeraldConfig.InitialKey("demo", "super-secret-value-123").toString())
                .doesNotContain("super-secret-value-123");
    }
}
