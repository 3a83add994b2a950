package io.herald.gateway.http;

import io.herald.gateway.config.HeraldConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class ApiKeysTest {

    @Test
    void firstRunGeneratesOneKeyPrintsItOnceAndStoresOnlyItsHash(@TempDir Path dir) throws Exception {
        HeraldConfig config = HeraldConfig.load(null, Map.of("data-dir", dir.toString()), List.of());
        PrintStream out = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        ApiKeys keys;
        try {
            keys = ApiKeys.load(config);
        } finally {
            System.setOut(out);
        }
        String printed = captured.toString(StandardCharsets.UTF_8);
        String key = printed.substring(printed.indexOf("hk_")).trim();
        assertThat(keys.authenticate("Bearer " + key).app()).isEqualTo("demo");
        assertThat(keys.authenticate("Bearer " + key).roles()).as("the bootstrap key has every role")
                .containsExactlyInAnyOrder(ApiKeys.Role.values());
        String stored = Files.readString(dir.resolve(ApiKeys.FILE));
        assertThat(stored).doesNotContain(key).contains("sha256:" + ApiKeys.sha256(key));

        // Second run: the stored hash is used, nothing new is generated or printed.
        captured.reset();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            assertThat(ApiKeys.load(config).authenticate("Bearer " + key).roles()).contains(ApiKeys.Role.ADMIN);
        } finally {
            System.setOut(out);
        }
        assertThat(captured.toString(StandardCharsets.UTF_8)).isEmpty();
    }

    @Test
    void keysAreScopedToTheirApp(@TempDir Path dir) {
        HeraldConfig config = HeraldConfig.load(null, Map.of("data-dir", dir.toString()), List.of(
                new HeraldConfig.InitialKey("a", "key-for-app-a-0123456789"),
                new HeraldConfig.InitialKey("b", "key-for-app-b-0123456789")));
        ApiKeys keys = ApiKeys.load(config);
        assertThat(keys.authenticate("Bearer key-for-app-a-0123456789").app()).isEqualTo("a");
        assertThat(keys.authenticate("bearer key-for-app-b-0123456789").app()).isEqualTo("b");
        assertThat(keys.authenticate("Bearer key-for-app-a-0123456789").roles()).as("keys without roles keep what they had")
                .isEqualTo(ApiKeys.DEFAULT_ROLES);
        assertThat(keys.authenticate("Bearer key-for-app-c-0123456789")).isNull();
        assertThat(keys.authenticate("Basic key-for-app-a-0123456789")).isNull();
        assertThat(keys.authenticate(null)).isNull();
    }

    @Test
    void keysGivenAtStartOrInTheFileMayNameTheirRoles(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve(ApiKeys.FILE), "demo sha256:" + ApiKeys.sha256("filed-key-0123456789")
                + " roles=read,approve\n");
        HeraldConfig config = HeraldConfig.load(null, Map.of("data-dir", dir.toString()), List.of(
                HeraldConfig.InitialKey.parse("demo:given:key-0123456789:roles=send,admin", "--api-key")));
        ApiKeys keys = ApiKeys.load(config);
        assertThat(keys.authenticate("Bearer given:key-0123456789").roles())
                .containsExactlyInAnyOrder(ApiKeys.Role.SEND, ApiKeys.Role.ADMIN);
        assertThat(keys.authenticate("Bearer filed-key-0123456789").roles())
                .containsExactlyInAnyOrder(ApiKeys.Role.READ, ApiKeys.Role.APPROVE);
        HeraldConfig bad = HeraldConfig.load(null, Map.of("data-dir", dir.toString()), List.of(
                HeraldConfig.InitialKey.parse("demo:other-key-0123456789:roles=send,root", "--api-key")));
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> ApiKeys.load(bad))
                .isInstanceOf(io.herald.gateway.config.StartupException.class).hasMessageContaining("'root' is not a role");
    }
}
