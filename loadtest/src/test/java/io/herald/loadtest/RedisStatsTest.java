package io.herald.loadtest;

import io.herald.gateway.redis.EmbeddedRedis;
import io.lettuce.core.RedisClient;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Redis figures of a run: INFO and COMMAND INFO replies parsed, the driver's own commands left
 * out, per-message arithmetic; and the same against a real redis-server, scripts included.
 */
@Timeout(60)
class RedisStatsTest {

    private static final String COMMANDSTATS = "# Commandstats\r\n"
            + "cmdstat_hset:calls=300,usec=900,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"
            + "cmdstat_evalsha:calls=100,usec=50000,usec_per_call=500.00,rejected_calls=0,failed_calls=0\r\n"
            + "cmdstat_info:calls=7,usec=70,usec_per_call=10.00\r\n"
            + "cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n"
            + "\r\n";

    @Test
    void commandStatsGiveCallsPerCommandAndInfoGivesItsFields() {
        assertThat(RedisStats.commandStats(COMMANDSTATS))
                .containsExactlyInAnyOrderEntriesOf(Map.of("hset", 300L, "evalsha", 100L, "info", 7L, "client|setname", 2L));
        String memory = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\r\n";
        assertThat(RedisStats.infoFields(memory)).containsEntry("used_memory", "1048576").hasSize(2);
        assertThat(RedisStats.commandStats("")).isEmpty();
    }

    @Test
    void aCommandIsAWriteWhenItsCommandInfoHasTheWriteFlag() {
        List<Object> reply = new java.util.ArrayList<>();
        reply.add(List.of("hset", -4L, List.of("write", "denyoom", "fast"), 1L, 1L, 1L));
        reply.add(List.of("get", 2L, List.of("readonly", "fast"), 1L, 1L, 1L));
        reply.add(List.of("evalsha", -3L, List.of("noscript", "may_replicate"), 0L, 0L, 0L));
        reply.add(null); // an unknown name
        assertThat(RedisStats.writeCommands(reply)).containsExactly("hset");
    }

    @Test
    void theDeltaLeavesOutWhatTheDriverSentItself() {
        RedisStats.Snapshot before = new RedisStats.Snapshot(Map.of("hset", 10L, "info", 3L, "command", 1L),
                Map.of("info", 3L, "command|info", 1L), 1_000, 0, true);
        RedisStats.Snapshot after = new RedisStats.Snapshot(Map.of("hset", 310L, "info", 9L, "command", 2L,
                "ping", 4L), Map.of("info", 9L, "command|info", 2L, "dbsize", 1L), 2_000, 5, true);
        // info: 6 more, all sent by the driver; command|info is filed as 'command' by Redis 6; the
        // driver's dbsize was sent after the counters were read (not in 'after' yet), so nothing of it shows.
        assertThat(RedisStats.delta(before, after)).containsExactlyInAnyOrderEntriesOf(Map.of("hset", 300L, "ping", 4L));
    }

    @Test
    void figuresArePerDeliveredMessageWithTheTopTenByCalls() {
        Map<String, Long> delta = new HashMap<>();
        delta.put("evalsha", 1_000L);
        delta.put("hset", 3_000L);
        delta.put("pexpire", 6_000L);
        delta.put("xadd", 1_000L);
        delta.put("get", 500L);
        for (int i = 0; i < 8; i++) {
            delta.put("cmd" + i, 10L + i);
        }
        RedisStats.Snapshot before = new RedisStats.Snapshot(Map.of(), Map.of(), 10_000_000, 0, true);
        RedisStats.Snapshot after = new RedisStats.Snapshot(Map.of(), Map.of(), 10_700_000, 4_321, true);
        Report.Redis r = RedisStats.figures(before, after, delta, Set.of("hset", "pexpire", "xadd"), 1_000);

        assertThat(r.messages()).isEqualTo(1_000);
        assertThat(r.calls()).isEqualTo(11_500 + 10 + 11 + 12 + 13 + 14 + 15 + 16 + 17);
        assertThat(r.callsPerMessage()).isEqualTo(11.61);
        assertThat(r.writes()).isEqualTo(10_000);
        assertThat(r.writesPerMessage()).isEqualTo(10.0);
        assertThat(r.scriptCalls()).isEqualTo(1_000);
        assertThat(r.scriptCallsPerMessage()).isEqualTo(1.0);
        assertThat(r.bytesPerMessage()).isEqualTo(700.0);
        assertThat(r.usedMemoryBeforeBytes()).isEqualTo(10_000_000);
        assertThat(r.usedMemoryBytes()).isEqualTo(10_700_000);
        assertThat(r.dbsize()).isEqualTo(4_321);
        assertThat(r.settled()).isTrue();
        assertThat(r.topCommands()).hasSize(10);
        assertThat(r.topCommands()).extracting(Report.RedisCommand::name)
                .startsWith("pexpire", "hset", "evalsha", "xadd", "get", "cmd7");   // ties by name
        assertThat(r.topCommands().get(0)).isEqualTo(new Report.RedisCommand("pexpire", 6_000, 6.0, true));
        assertThat(r.topCommands().get(2).write()).isFalse();                       // a script call is no write

        Report.Redis none = RedisStats.figures(before, after, Map.of(), Set.of(), 0);
        assertThat(none.callsPerMessage()).isZero();
        assertThat(none.bytesPerMessage()).isZero();
        RedisStats.Snapshot unsettled = new RedisStats.Snapshot(Map.of(), Map.of(), 0, 0, false);
        assertThat(RedisStats.figures(before, unsettled, delta, Set.of(), 1).settled()).isFalse();
    }

    @Test
    void againstARealRedisTheWritesAScriptMakesCountAndTheDriversCommandsDoNot(@TempDir Path dir) throws Exception {
        try (EmbeddedRedis server = EmbeddedRedis.start(dir)) {
            RedisClient other = RedisClient.create(server.uri());
            try (RedisStats stats = RedisStats.open(server.uri());
                 StatefulRedisConnection<String, String> gateway = other.connect()) {
                RedisStats.Snapshot before = stats.settle();
                for (int i = 0; i < 3; i++) {
                    gateway.sync().set("k" + i, "v");
                }
                gateway.sync().get("k0");
                gateway.sync().eval("redis.call('hset', KEYS[1], 'f', 'v'); redis.call('pexpire', KEYS[1], 60000); "
                        + "return 1", ScriptOutputType.INTEGER, "h");
                stats.snapshot(); // the driver's own reads in between are not counted
                RedisStats.Snapshot after = stats.settle();
                Report.Redis r = stats.figures(before, after, 2);

                Map<String, Long> byName = new HashMap<>();
                r.topCommands().forEach(c -> byName.put(c.name(), c.calls()));
                assertThat(byName).containsExactlyInAnyOrderEntriesOf(
                        Map.of("set", 3L, "get", 1L, "eval", 1L, "hset", 1L, "pexpire", 1L));
                assertThat(r.writes()).isEqualTo(5);              // set x3, hset and pexpire inside the script
                assertThat(r.writesPerMessage()).isEqualTo(2.5);
                assertThat(r.scriptCalls()).isEqualTo(1);
                assertThat(r.calls()).isEqualTo(7);
                assertThat(r.dbsize()).isEqualTo(4);
                assertThat(r.usedMemoryBytes()).isGreaterThan(0);
                assertThat(r.settled()).isTrue();
            } finally {
                other.shutdown(Duration.ZERO, Duration.ofSeconds(2));
            }
        }
    }
}
