package io.herald.gateway.trigger;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.campaign.Campaign;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The rule document: validation per field, where conditions, correlation values and inline copy. */
class TriggerRuleTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static TriggerRule rule(String json) throws Exception {
        return TriggerRule.parse(JSON.readTree(json), "r1", t -> t.equals("known"), JSON);
    }

    private static JsonNode props(String json) throws Exception {
        return JSON.readTree(json);
    }

    @Test
    void whereConditionsAllHold() throws Exception {
        TriggerRule r = rule("{\"name\":\"n\",\"on\":{\"event\":\"order\",\"where\":{\"country\":\"CN\",\"total\":{\"gte\":10,"
                + "\"lt\":100},\"tier\":{\"in\":[\"gold\",\"silver\"]},\"coupon\":{\"exists\":false}}},\"delay\":\"10m\","
                + "\"content\":{\"body\":\"b\"}}");
        assertThat(r.passes(props("{\"country\":\"CN\",\"total\":10,\"tier\":\"gold\"}"))).isTrue();
        assertThat(r.passes(props("{\"country\":\"CN\",\"total\":100,\"tier\":\"gold\"}"))).as("lt 100").isFalse();
        assertThat(r.passes(props("{\"country\":\"CN\",\"total\":50,\"tier\":\"bronze\"}"))).as("in").isFalse();
        assertThat(r.passes(props("{\"country\":\"CN\",\"total\":50,\"tier\":\"gold\",\"coupon\":\"X\"}"))).isFalse();
        assertThat(r.passes(props("{\"country\":\"US\",\"total\":50,\"tier\":\"gold\"}"))).isFalse();
        assertThat(r.passes(props("{\"country\":\"CN\",\"total\":\"50\",\"tier\":\"gold\"}"))).as("a string is no number")
                .isFalse();
        assertThat(r.passes(null)).isFalse();
        assertThat(r.delayMs()).isEqualTo(600_000);
    }

    @Test
    void correlationIsTheMatchValuesElseTheEventId() throws Exception {
        TriggerRule matched = rule("{\"name\":\"n\",\"on\":{\"event\":\"order\"},\"unless\":{\"event\":\"paid\",\"within\":"
                + "\"10m\",\"match\":[\"order_id\",\"shop\"]},\"delay\":\"10m\",\"content\":{\"body\":\"b\"}}");
        assertThat(matched.correlation(props("{\"order_id\":17,\"shop\":\"a\"}"), "e1", 5)).isEqualTo("17|a");
        assertThat(matched.correlation(props("{\"order_id\":\"17\"}"), "e1", 5)).isEqualTo("17|");
        assertThat(matched.correlation(props("{\"order_id\":\"" + "x".repeat(300) + "\"}"), null, 5)).hasSize(64);
        TriggerRule plain = rule("{\"name\":\"n\",\"on\":{\"event\":\"signup\"},\"delay\":\"0\",\"content\":{\"body\":\"b\"}}");
        assertThat(plain.correlation(null, "e9", 5)).isEqualTo("e9");
        assertThat(plain.correlation(null, null, 5)).isEqualTo("5");
        assertThat(plain.withinMs()).isZero();
    }

    @Test
    void inlineCopyTakesEventPropertiesOnly() throws Exception {
        assertThat(TriggerRule.Inline.render("Order {{event.order_id}} of {{ event.shop.name }}{{event.none}}.",
                props("{\"order_id\":17,\"shop\":{\"name\":\"A\"}}"))).isEqualTo("Order 17 of A.");
        assertThatThrownBy(() -> TriggerRule.Inline.check("Hi {{user.name}}", "content.body"))
                .isInstanceOf(Campaign.Invalid.class).hasMessageContaining("column 4");
        assertThatThrownBy(() -> TriggerRule.Inline.check("ok {{event.a}} then {{event.b", "content.title"))
                .isInstanceOf(Campaign.Invalid.class).hasMessageContaining("unclosed '{{' at column 21");
        TriggerRule.Inline.check("{{event.a}} and {{event.b.c}}", "content.body");
    }

    @Test
    void eachFieldIsCheckedAndNamed() {
        String[][] bad = {
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"content\":{\"body\":\"b\"}}", "delay"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"10x\",\"content\":{\"body\":\"b\"}}", "delay"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\",\"if\":1},\"delay\":\"1m\",\"content\":{\"body\":\"b\"}}", "on.if"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\",\"where\":{\"a\":{\"gt\":\"z\"}}},\"delay\":\"1m\",\"content\":{\"body\":"
                + "\"b\"}}", "on.where.a.gt"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"unless\":{\"event\":\"x\",\"within\":\"1m\"},\"delay\":\"1m\","
                + "\"content\":{\"body\":\"b\"}}", "unless.event"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"unless\":{\"event\":\"y\",\"within\":\"1m\",\"match\":[\"a b\"]},"
                + "\"delay\":\"1m\",\"content\":{\"body\":\"b\"}}", "unless.match[0]"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\"}", "content"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"template\":\"unknown\"}}",
                "content.template"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"body\":\"b\"},\"channel\":\"fax\"}",
                "channel"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"body\":\"b\"},\"entryLimit\":{"
                + "\"count\":2,\"per\":\"400d\"}}", "entryLimit.per"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"body\":\"b\"},\"activeFrom\":"
                + "\"2026-12-02T00:00:00Z\",\"activeUntil\":\"2026-12-01T00:00:00Z\"}", "activeUntil"},
            {"{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"body\":\"b\"},\"state\":\"on\"}", "state"},
        };
        for (String[] b : bad) {
            assertThatThrownBy(() -> rule(b[0])).as(b[0]).isInstanceOf(Campaign.Invalid.class)
                    .satisfies(e -> assertThat(((Campaign.Invalid) e).field).isEqualTo(b[1]));
        }
    }

    @Test
    void activeWindowAndStateDecideWhenInstancesStart() throws Exception {
        TriggerRule r = rule("{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"template\":\"known\"},"
                + "\"activeFrom\":\"2026-12-01T00:00:00Z\",\"activeUntil\":\"2026-12-02T00:00:00+08:00\"}");
        long from = java.time.Instant.parse("2026-12-01T00:00:00Z").toEpochMilli();
        assertThat(r.startsAt(from - 1)).isFalse();
        assertThat(r.startsAt(from)).isTrue();
        assertThat(r.startsAt(java.time.Instant.parse("2026-12-01T16:00:00Z").toEpochMilli())).as("until is exclusive")
                .isFalse();
        assertThat(r.toJson().get("class").asText()).isEqualTo("marketing");
        TriggerRule paused = rule("{\"name\":\"n\",\"on\":{\"event\":\"x\"},\"delay\":\"1m\",\"content\":{\"body\":\"b\"},"
                + "\"state\":\"paused\"}");
        assertThat(paused.startsAt(from)).isFalse();
        assertThat(paused.active()).isFalse();
    }
}
