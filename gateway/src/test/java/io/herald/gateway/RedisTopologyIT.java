package io.herald.gateway;

import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import io.herald.gateway.redis.EmbeddedRedis;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

/**
 * Herald needs a standalone Redis: pointed at a Redis Cluster node it refuses to start with one
 * line saying what to configure, whether the node serves no slot yet or every slot (a node that
 * owns the journal's slot would otherwise take batches and never settle them).
 */
@Timeout(120)
class RedisTopologyIT {

    @ParameterizedTest(name = "cluster node serving {0} slots")
    @ValueSource(ints = {0, 16384})
    void aRedisClusterNodeIsRefusedAtStartWithOneLine(int slots, @TempDir Path dir) {
        try (EmbeddedRedis node = EmbeddedRedis.start(dir.resolve("redis"),
                List.of("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"))) {
            if (slots > 0) {
                assignSlots(node.uri(), slots);
            }
            Map<String, Object> options = Map.of("data-dir", dir.resolve("data").toString(), "http.port", 0,
                    "redis.url", node.uri());
            Throwable thrown = catchThrowable(() -> {
                try (Herald started = Herald.start(HeraldConfig.load(null, Map.of(), options, List.of()))) {
                    // reaching here is the failure
                }
            });
            assertThat(thrown).isInstanceOf(StartupException.class);
            assertThat(thrown.getMessage()).contains("redis.url", "Redis Cluster", "standalone").doesNotContain("\n");

            StartupErrorsTest.Run run = StartupErrorsTest.main("--redis-url", node.uri(), "--port", "0",
                    "--data-dir", dir.resolve("data").toString());
            assertThat(run.status()).isEqualTo(2);
            assertThat(run.errLines()).singleElement().asString()
                    .startsWith("herald: cannot start: ").contains("Redis Cluster");
        }
    }

    private static void assignSlots(String uri, int slots) {
        RedisClient client = RedisClient.create(uri);
        try (StatefulRedisConnection<String, String> c = client.connect()) {
            int[] all = new int[slots];
            for (int i = 0; i < slots; i++) {
                all[i] = i;
            }
            assertThat(c.sync().clusterAddSlots(all)).isEqualTo("OK");
            // Then the node serves every key, the journal's included, as a one-node cluster would.
            await().atMost(Duration.ofSeconds(30)).until(() -> c.sync().clusterInfo().contains("cluster_state:ok"));
        } finally {
            client.shutdown();
        }
    }
}
