package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.admission.Admission;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.config.AppConfig;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Per-user GCRA: exact counts now, exact slots later, drops when the ttl comes first. */
@Timeout(120)
class RateLimitIT {
    static final int N = 5;
    static final long PERIOD_MS = 3000;
    static final long INTERVAL_MS = PERIOD_MS / N;
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig(
            "apps.APP.rate-limit { rate = " + N + ", period = " + PERIOD_MS + "ms, burst = " + N + " }");

    @Test
    void userSent3NGetsNNowAndTheRestAtTheirSlots(TestGateway gw) {
        String user = "rl-" + UUID.randomUUID();
        gw.device(user, "phone", TestGateway.token());
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 3 * N; i++) {
            messages.add(TestGateway.msg(user, "m" + i));
        }
        JsonNode accepted = gw.batch(messages);
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
                .until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        assertThat(gw.batchStatus(batchId).get("states").get("accepted").asInt()).isEqualTo(3 * N);

        int immediate = 0;
        List<Long> slots = new ArrayList<>();
        for (JsonNode m : accepted.get("messages")) {
            JsonNode status = gw.message(m.get("id").asText());
            JsonNode deferred = null;
            JsonNode done = null;
            for (JsonNode h : status.get("history")) {
                if (h.get("state").asText().equals("deferred")) {
                    deferred = h;
                } else if (h.get("state").asText().equals("accepted")) {
                    done = h;
                }
            }
            assertThat(done).as("accepted entry of %s", status).isNotNull();
            if (deferred == null) {
                immediate++;
            } else {
                long until = Long.parseLong(deferred.get("detail").asText().replace("until ", ""));
                assertThat(done.get("at").asLong()).as("sent no earlier than its slot").isGreaterThanOrEqualTo(until);
                slots.add(until);
            }
        }
        assertThat(immediate).isEqualTo(N);
        assertThat(slots).hasSize(2 * N);
        slots.sort(Long::compare);
        for (int i = 1; i < slots.size(); i++) {
            assertThat(slots.get(i) - slots.get(i - 1)).as("slot spacing").isBetween(INTERVAL_MS - 1, INTERVAL_MS + 1);
        }
    }

    @Test
    void aMessageWhoseSlotComesAfterItsTtlIsDroppedRateLimited(TestGateway gw) {
        String user = "ttl-" + UUID.randomUUID();
        gw.device(user, "phone", TestGateway.token());
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < N; i++) {
            messages.add(TestGateway.msg(user, "fill" + i));
        }
        messages.add("{\"user\":\"" + user + "\",\"title\":\"late\",\"ttlSeconds\":0}");
        JsonNode accepted = gw.batch(messages);
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        JsonNode status = gw.batchStatus(batchId);
        assertThat(status.get("states").get("accepted").asInt()).isEqualTo(N);
        assertThat(status.get("reasons").get("dropped:rate_limited").asInt()).isEqualTo(1);
    }

    @Test
    void oneScriptCallChecksManyUsersExactly(TestGateway gw) throws Exception {
        AppConfig app = gw.config().apps().get(gw.app);
        Admission admission = new Admission(java.util.Map.of(gw.app, app), gw.herald.policies(),
                gw.herald.redis()::slotOf, java.time.Clock.systemUTC());
        {
            io.herald.gateway.redis.Redis.Connection c = gw.herald.redis().dedicated();
            List<Admission.Check> checks = new ArrayList<>();
            String a = "a-" + UUID.randomUUID();
            String b = "b-" + UUID.randomUUID();
            for (int i = 0; i < 2 * N; i++) {
                checks.add(new Admission.Check(item(gw.app, a), "apns", null, null));
                checks.add(new Admission.Check(item(gw.app, b), "apns", null, null));
            }
            Admission.Verdict[] v = admission.admit(c.async(), checks, Admission.requestId(), Duration.ofSeconds(10))
                    .get(5, TimeUnit.SECONDS);
            int nowA = 0;
            int nowB = 0;
            for (int i = 0; i < v.length; i++) {
                assertThat(v[i].kind()).isNotEqualTo(Admission.Kind.DROP);
                if (v[i].kind() == Admission.Kind.SEND) {
                    if (i % 2 == 0) {
                        nowA++;
                    } else {
                        nowB++;
                    }
                }
            }
            assertThat(nowA).isEqualTo(N);
            assertThat(nowB).isEqualTo(N);
        }
    }

    /** A transactional message to {@code user}, accepted now, with a day to live. */
    static JournalItem item(String app, String user) {
        io.herald.protocol.Message m = new io.herald.protocol.Message(null, user, null, null, "t", "b", null, null, 86_400,
                null, null, null, null, null, null, null, null, null, null, null);
        return new JournalItem(app, UUID.randomUUID().toString(), 0, System.currentTimeMillis(), m, JournalItem.Phase.NEW);
    }
}
