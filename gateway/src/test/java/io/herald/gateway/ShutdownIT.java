package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import io.herald.gateway.redis.Keys;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** Graceful stop drains what it accepted; misconfigured credentials stop the start with one line. */
@Timeout(120)
class ShutdownIT {
    /** A gateway per test: the drain test closes and restarts its own. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("").perTest();

    @Test
    void gracefulCloseDrainsAcceptedMessagesAndEmptiesTheJournal(TestGateway gw) throws Exception {
        for (int u = 0; u < 100; u++) {
            gw.device("u" + u, "phone", TestGateway.token());
        }
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 2000; i++) {
            messages.add(TestGateway.msg("u" + (i % 100), "m" + i));
        }
        JsonNode accepted = gw.batch(messages);
        var sandbox = gw.sandbox();
        gw.herald.close();
        // After a graceful close, every accepted message was delivered and settled ...
        assertThat(sandbox.acceptedTotal()).isEqualTo(2000);
        gw.herald = Herald.start(gw.config());
        // ... so the next start finds nothing to replay in the journal.
        assertThat(gw.herald.replayed()).isZero();
        assertThat(gw.journalLength()).isZero();
        assertThat(gw.batchStatus(accepted.get("batchId").asText()).get("states").get("accepted").asInt())
                .isEqualTo(2000);
    }

    @Test
    void anInvalidSigningKeyFileFailsTheStartWithOneLine(@TempDir Path dir) throws Exception {
        Path p8 = dir.resolve("AuthKey_TEST.p8");
        Files.writeString(p8, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
        String hocon = "herald { data-dir = \"" + dir.resolve("data") + "\", http.port = 0, sandbox = false\n"
                + "redis.url = \"redis://127.0.0.1:1\"\n"
                + "apps.shop.apns { signing-key-file = \"" + p8 + "\", team-id = TEAM123456, key-id = KEY1234567, "
                + "topic = com.shop } }";
        HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                .withFallback(ConfigFactory.defaultReference()).resolve(),
                List.of(new HeraldConfig.InitialKey("shop", "0123456789abcdef-key")));
        // Credentials are loaded before Redis is contacted (this Redis does not exist).
        assertThatThrownBy(() -> Herald.start(config))
                .isInstanceOf(StartupException.class)
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"))
                .hasMessageContaining("herald.apps.shop.apns: cannot load the credentials")
                .hasMessageContaining("AuthKey_TEST.p8");
    }
}
