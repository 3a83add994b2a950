package io.herald.gateway;

import io.herald.gateway.redis.Keys;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A ring stage that cannot complete its Redis round trips for longer than {@code
 * pipeline.stall-after} makes the node unready: {@code /readyz} and intake answer 503 until the
 * stage gets through again. The stall here is a damaged key (a string where the resolve stage
 * reads a hash: WRONGTYPE on every retry), which Redis keeps answering while the stage is stuck.
 */
@Timeout(120)
class PipelineStallIT {
    /** A gateway of its own: the test stalls its pipeline. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("pipeline.stall-after = 500ms").perTest();

    @Test
    void aStalledStageMakesReadyzAndIntakeAnswer503UntilItRecovers(TestGateway gw) throws Exception {
        gw.device("healthy", "phone", TestGateway.token());
        assertThat(readyz(gw)).isEqualTo(200);

        RedisClient client = gw.redisClient();
        try (StatefulRedisConnection<String, String> redis = client.connect()) {
            redis.sync().set(Keys.devices(gw.app, "damaged"), "not a hash");
            gw.batch(List.of(TestGateway.msg("damaged", "stuck")));

            await().atMost(Duration.ofSeconds(30)).until(() -> readyz(gw) == 503);
            TestGateway.Response refused = gw.post("/v1/batches", batchBody(gw, "healthy"));
            assertThat(refused.status()).as(refused.raw().body()).isEqualTo(503);
            assertThat(refused.errorCode()).isEqualTo("unavailable");
            assertThat(refused.header("Retry-After")).isNotNull();
            assertThat(refused.json().path("error").path("message").asText()).contains("resolve");

            redis.sync().del(Keys.devices(gw.app, "damaged"));
            await().atMost(Duration.ofSeconds(30)).until(() -> readyz(gw) == 200);
            TestGateway.Response accepted = gw.post("/v1/batches", batchBody(gw, "healthy"));
            assertThat(accepted.status()).as(accepted.raw().body()).isEqualTo(202);
        } finally {
            client.shutdown();
        }
    }

    private static int readyz(TestGateway gw) {
        return gw.send("GET", "/readyz", null, null).status();
    }

    private static String batchBody(TestGateway gw, String user) {
        return "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg(user, "hi") + "]}";
    }
}
