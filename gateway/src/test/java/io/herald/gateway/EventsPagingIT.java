package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * {@code GET /v1/events} over the packed event log: the record stage writes the events of a whole
 * handler batch in one stream entry, and a page may end inside one. Small pages walk every event
 * once, in order, and a cursor from the middle of an entry resumes right after that event.
 */
@Timeout(120)
class EventsPagingIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    @Test
    void smallPagesWalkEveryEventOnceAcrossPackedEntries(TestGateway gw) {
        String user = "paging-" + UUID.randomUUID();
        gw.device(user, "phone", TestGateway.token());
        List<String> sent = new ArrayList<>();
        for (int b = 0; b < 2; b++) {
            List<String> items = new ArrayList<>();
            for (int i = 0; i < 7; i++) {
                items.add(TestGateway.msg(user, "t" + i));
            }
            JsonNode accepted = gw.batch(items);
            accepted.get("messages").forEach(m -> sent.add(m.get("id").asText()));
            String batchId = accepted.get("batchId").asText();
            await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        }
        List<String> seen = new ArrayList<>();
        Set<String> cursors = new HashSet<>();
        String cursor = null;
        for (int page = 0; page < 100; page++) {
            TestGateway.Response r = gw.get("/v1/events?limit=3" + (cursor == null ? "" : "&cursor=" + cursor));
            assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
            JsonNode events = r.json().get("events");
            assertThat(events.size()).isLessThanOrEqualTo(3);
            for (JsonNode e : events) {
                if (sent.contains(e.get("id").asText())) {
                    seen.add(e.get("id").asText());
                    assertThat(e.get("event").asText()).isEqualTo("accepted");
                    assertThat(e.get("user").asText()).isEqualTo(user);
                }
                assertThat(cursors.add(e.get("cursor").asText())).as("cursor repeated").isTrue();
            }
            if (events.isEmpty()) {
                break;
            }
            cursor = r.json().get("next").asText();
        }
        assertThat(seen).containsExactlyInAnyOrderElementsOf(sent);

        TestGateway.Response bad = gw.get("/v1/events?cursor=12-3.x");
        assertThat(bad.status()).isEqualTo(400);
        assertThat(bad.json().get("error").get("field").asText()).isEqualTo("cursor");
    }
}
