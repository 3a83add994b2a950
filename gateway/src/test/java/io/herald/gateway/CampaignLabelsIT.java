package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Campaign and variant labels are parts of funnel key names, where {@code :} separates the parts:
 * campaign {@code a:v:b} would count in the funnel of variant {@code b} of campaign {@code a}. Such
 * labels are refused at intake (per item) and on the funnel and stats routes.
 */
@Timeout(120)
class CampaignLabelsIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    @Test
    void aCampaignLabelThatWouldCollideWithAVariantIsRefusedPerItem(TestGateway gw) {
        String c = "c" + UUID.randomUUID().toString().substring(0, 8);
        String user = "labels-" + UUID.randomUUID();
        gw.device(user, "phone", TestGateway.token());
        TestGateway.Response r = gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":["
                + "{\"user\":\"" + user + "\",\"title\":\"t\",\"campaign\":\"" + c + ":v:b\"},"
                + "{\"user\":\"" + user + "\",\"title\":\"t\",\"campaign\":\"" + c + "\",\"variant\":\"b\"},"
                + "{\"user\":\"" + user + "\",\"title\":\"t\",\"campaign\":\"" + c + "\",\"variant\":\"b:x\"}]}");
        assertThat(r.status()).as(r.raw().body()).isEqualTo(202);
        assertThat(r.json().get("accepted").asInt()).isEqualTo(1);
        JsonNode items = r.json().get("messages");
        assertThat(items.get(0).get("error").get("code").asText()).isEqualTo("invalid_field");
        assertThat(items.get(0).get("error").get("field").asText()).isEqualTo("messages[0].campaign");
        assertThat(items.get(1).has("id")).isTrue();
        assertThat(items.get(2).get("error").get("field").asText()).isEqualTo("messages[2].variant");

        // Only the variant's message counts in the variant's funnel.
        assertThat(gw.get("/v1/campaigns/" + c + "/funnel?variant=b").json().get("counts").get("submitted").asInt())
                .isEqualTo(1);
        // A batch of nothing but bad labels is refused whole.
        TestGateway.Response none = gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":[{\"user\":\""
                + user + "\",\"title\":\"t\",\"campaign\":\"" + c + ":v:b\"}]}");
        assertThat(none.status()).isEqualTo(422);
        assertThat(none.json().get("messages").get(0).get("error").get("field").asText())
                .isEqualTo("messages[0].campaign");
    }

    @Test
    void funnelAndStatsRoutesRefuseLabelsOutsideTheAlphabetNamingTheParameter(TestGateway gw) {
        for (String path : List.of("/v1/campaigns/a:v:b/funnel", "/v1/stats?campaign=a:v:b")) {
            TestGateway.Response r = gw.get(path);
            assertThat(r.status()).as(path).isEqualTo(400);
            assertThat(r.errorCode()).isEqualTo("invalid_field");
            assertThat(r.json().get("error").get("field").asText()).as(path).isEqualTo("campaign");
        }
        for (String path : List.of("/v1/campaigns/a/funnel?variant=b:m:0", "/v1/stats?campaign=a&variant=b%3Ax")) {
            TestGateway.Response r = gw.get(path);
            assertThat(r.status()).as(path).isEqualTo(400);
            assertThat(r.json().get("error").get("field").asText()).as(path).isEqualTo("variant");
            assertThat(r.json().get("error").get("message").asText()).contains("A-Z a-z 0-9 . _ -");
        }
        assertThat(gw.get("/v1/campaigns/spring_2025.v-1/funnel?variant=B").status()).isEqualTo(200);
        assertThat(gw.get("/v1/stats?campaign=spring_2025.v-1&variant=B").status()).isEqualTo(200);
    }
}
