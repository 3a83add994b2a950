package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Campaign definitions and their approval flow: validation per field (rule column, unknown
 * template), the state machine with its 409s, approval only by another key with the approve role
 * (self-approval 403, a manage-only key 403), an edit after approval returning it to draft,
 * reject with a reason and resubmit, cancel, delete of drafts only, and every move in the history
 * with who and why.
 */
@Timeout(120)
class CampaignsIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    private static String base(TestGateway gw) {
        return "/v1/apps/" + gw.app + "/campaigns";
    }

    private static final String DRAFT = "{\"name\":\"Winter sale\",\"audience\":{\"rule\":\"tag:vip\"},"
            + "\"content\":{\"title\":\"Sale\",\"body\":\"20% off\"},\"priority\":7,\"category\":\"promo\","
            + "\"schedule\":{\"type\":\"at\",\"at\":\"2026-12-24T09:00:00+08:00\"},\"throttle\":{\"perMinute\":6000}}";

    private static String key(TestGateway gw, String roles) {
        TestGateway.Response r = gw.post("/v1/apps/" + gw.app + "/keys", "{\"roles\":[" + roles + "]}");
        assertThat(r.status()).as(r.raw().body()).isEqualTo(201);
        return r.json().get("key").asText();
    }

    private static TestGateway.Response act(TestGateway gw, String id, String action, String body, String key) {
        return gw.send("POST", base(gw) + "/" + id + "/" + action, body, key);
    }

    private static List<String> moves(JsonNode c) {
        List<String> out = new ArrayList<>();
        c.get("history").forEach(h -> out.add(h.get("action").asText() + ":" + h.get("to").asText()));
        return out;
    }

    @Test
    void definitionsAreValidatedPerField(TestGateway gw) {
        TestGateway.Response rule = gw.post(base(gw), DRAFT.replace("tag:vip", "tag:vip AND ("));
        assertThat(rule.status()).isEqualTo(422);
        assertThat(rule.json().get("error").get("code").asText()).isEqualTo("invalid_rule");
        assertThat(rule.json().get("error").get("field").asText()).isEqualTo("audience.rule");
        assertThat(rule.json().get("error").get("message").asText()).contains("column");
        TestGateway.Response tpl = gw.post(base(gw), DRAFT.replace("{\"title\":\"Sale\",\"body\":\"20% off\"}",
                "{\"template\":\"nope\"}"));
        assertThat(tpl.json().get("error").get("code").asText()).isEqualTo("unknown_template");
        TestGateway.Response saved = gw.post(base(gw), DRAFT.replace("{\"rule\":\"tag:vip\"}", "{\"id\":\"nope\"}"));
        assertThat(saved.json().get("error").get("field").asText()).isEqualTo("audience.id");
        TestGateway.Response sched = gw.post(base(gw), DRAFT.replace("\"type\":\"at\"", "\"type\":\"whenever\""));
        assertThat(sched.json().get("error").get("field").asText()).isEqualTo("schedule.type");
        TestGateway.Response prio = gw.post(base(gw), DRAFT.replace("\"priority\":7", "\"priority\":11"));
        assertThat(prio.json().get("error").get("field").asText()).isEqualTo("priority");
        TestGateway.Response every = gw.post(base(gw), DRAFT.replace("{\"type\":\"at\",\"at\":\"2026-12-24T09:00:00+08:00\"}",
                "{\"type\":\"recurring\",\"every\":\"month\",\"at\":\"09:00\",\"until\":\"2027-01-31T00:00:00Z\"}"));
        assertThat(every.json().get("error").get("field").asText()).isEqualTo("schedule.every");
        TestGateway.Response weekday = gw.post(base(gw), DRAFT.replace("{\"type\":\"at\",\"at\":\"2026-12-24T09:00:00+08:00\"}",
                "{\"type\":\"recurring\",\"every\":\"week\",\"at\":\"09:00\",\"until\":\"2027-01-31T00:00:00Z\"}"));
        assertThat(weekday.json().get("error").get("field").asText()).isEqualTo("schedule.weekday");
        TestGateway.Response again = gw.post(base(gw), DRAFT.replace("\"priority\":7", "\"priority\":7,\"reEligibleAfter\":\"7d\""));
        assertThat(again.json().get("error").get("message").asText()).contains("only for a recurring schedule");
        TestGateway.Response weekly = gw.post(base(gw), DRAFT.replace("{\"type\":\"at\",\"at\":\"2026-12-24T09:00:00+08:00\"}",
                "{\"type\":\"recurring\",\"every\":\"week\",\"weekday\":\"Monday\",\"at\":\"09:00\","
                        + "\"localTime\":true,\"until\":\"2027-01-31T00:00:00Z\"}").replace("\"priority\":7",
                "\"priority\":7,\"reEligibleAfter\":\"2w\""));
        assertThat(weekly.status()).as(weekly.raw().body()).isEqualTo(201);
        assertThat(weekly.json().get("schedule").get("weekday").asText()).isEqualTo("monday");
        TestGateway.Response name = gw.post(base(gw), DRAFT.replace("\"name\":\"Winter sale\",", ""));
        assertThat(name.json().get("error").get("code").asText()).isEqualTo("missing_field");
    }

    @Test
    void approvalNeedsAnotherKeyWithTheRoleAndEveryMoveIsRecorded(TestGateway gw) {
        String approver = key(gw, "\"approve\",\"read\"");
        String manager = key(gw, "\"manage\",\"read\"");
        TestGateway.Response created = gw.send("POST", base(gw), DRAFT, manager);
        assertThat(created.status()).as(created.raw().body()).isEqualTo(201);
        JsonNode c = created.json();
        String id = c.get("id").asText();
        assertThat(c.get("state").asText()).isEqualTo("draft");
        assertThat(c.get("class").asText()).as("campaigns default to marketing").isEqualTo("marketing");
        String maker = c.get("createdBy").asText();

        // Nothing but submit from draft.
        TestGateway.Response early = act(gw, id, "approve", null, approver);
        assertThat(early.status()).isEqualTo(409);
        assertThat(early.json().get("error").get("code").asText()).isEqualTo("invalid_state");
        assertThat(early.json().get("error").get("message").asText()).contains("state: draft");
        assertThat(act(gw, id, "submit", null, manager).status()).isEqualTo(200);
        // A manage-only key may not approve; the approve role is checked by the route.
        TestGateway.Response noRole = act(gw, id, "approve", null, manager);
        assertThat(noRole.status()).isEqualTo(403);
        assertThat(noRole.json().get("error").get("message").asText()).contains("'approve'");
        // Reject needs a reason; with one it returns to draft.
        assertThat(act(gw, id, "reject", null, approver).status()).isEqualTo(409);
        JsonNode rejected = act(gw, id, "reject", "{\"reason\":\"wrong discount\"}", approver).json();
        assertThat(rejected.get("state").asText()).isEqualTo("draft");
        // Edited by the admin key, resubmitted, then the admin key (last editor) may not approve it.
        TestGateway.Response edited = gw.send("PUT", base(gw) + "/" + id, DRAFT.replace("20% off", "25% off"), gw.key);
        assertThat(edited.status()).as(edited.raw().body()).isEqualTo(200);
        assertThat(act(gw, id, "submit", null, gw.key).status()).isEqualTo(200);
        TestGateway.Response self = act(gw, id, "approve", null, gw.key);
        assertThat(self.status()).isEqualTo(403);
        assertThat(self.json().get("error").get("message").asText()).contains("last edited");
        JsonNode approved = act(gw, id, "approve", null, approver).json();
        assertThat(approved.get("state").asText()).isEqualTo("approved");
        assertThat(approved.get("approval").get("by").asText()).isNotEqualTo(maker);

        // An edit after approval returns it to draft and clears the approval.
        JsonNode again = gw.send("PUT", base(gw) + "/" + id, DRAFT.replace("25% off", "30% off"), manager).json();
        assertThat(again.get("state").asText()).isEqualTo("draft");
        assertThat(again.has("approval")).isFalse();
        // The maker may not approve either.
        assertThat(act(gw, id, "submit", null, manager).status()).isEqualTo(200);
        assertThat(act(gw, id, "approve", null, manager).status()).isEqualTo(403);
        TestGateway.Response selfMade = gw.send("POST", base(gw), DRAFT, approver);
        assertThat(selfMade.status()).as("an approve+read key cannot make campaigns").isEqualTo(403);

        // Not running yet: pause is refused; cancel ends it; a cancelled campaign is neither deleted nor edited.
        assertThat(act(gw, id, "pause", null, manager).json().get("error").get("message").asText())
                .contains("state: pending_approval");
        assertThat(act(gw, id, "cancel", "{\"reason\":\"season over\"}", manager).json().get("state").asText())
                .isEqualTo("cancelled");
        assertThat(gw.send("DELETE", base(gw) + "/" + id, null, manager).status()).isEqualTo(409);
        assertThat(gw.send("PUT", base(gw) + "/" + id, DRAFT, manager).status()).isEqualTo(409);

        JsonNode full = gw.get(base(gw) + "/" + id).json();
        assertThat(moves(full)).containsExactly("create:draft", "submit:pending_approval", "reject:draft",
                "edit:draft", "submit:pending_approval", "approve:approved", "edit:draft", "submit:pending_approval",
                "cancel:cancelled");
        assertThat(full.get("history").get(2).get("reason").asText()).isEqualTo("wrong discount");
        assertThat(full.get("history").get(6).get("reason").asText()).contains("approval is cleared");
        assertThat(full.get("history").get(8).get("reason").asText()).isEqualTo("season over");
        assertThat(full.get("history").get(0).get("by").asText()).isEqualTo(maker);

        // A draft is deleted; listed campaigns carry their state.
        String other = gw.post(base(gw), DRAFT).json().get("id").asText();
        boolean listed = false;
        for (JsonNode l : gw.get(base(gw)).json().get("campaigns")) {
            listed |= l.get("id").asText().equals(other) && l.get("state").asText().equals("draft");
        }
        assertThat(listed).isTrue();
        assertThat(gw.send("DELETE", base(gw) + "/" + other, null, gw.key).status()).isEqualTo(204);
        assertThat(gw.get(base(gw) + "/" + other).status()).isEqualTo(404);
    }

    @Test
    void aTestSendGoesNowToTheListedUsersOutsideTheCapsAndCountsAsVariantTest(TestGateway gw) throws Exception {
        // A cap of zero room: the test send is system class and passes anyway.
        TestGateway.Response pol = gw.send("PUT", "/v1/apps/" + gw.app + "/policy",
                "{\"caps\":[{\"id\":\"one\",\"limit\":1,\"window\":\"day\"}]}", gw.key);
        assertThat(pol.status()).isEqualTo(200);
        String u = "u-" + java.util.UUID.randomUUID().toString().substring(0, 8);
        gw.device(u, "phone", TestGateway.token());
        String id = gw.post(base(gw), DRAFT).json().get("id").asText();
        for (int round = 0; round < 2; round++) {
            TestGateway.Response sent = gw.post(base(gw) + "/" + id + "/test", "{\"users\":[\"" + u + "\"]}");
            assertThat(sent.status()).as(sent.raw().body()).isEqualTo(202);
            String msg = sent.json().get("messages").get(0).get("id").asText();
            String batchId = sent.json().get("batchId").asText();
            org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(30))
                    .until(() -> gw.batchStatus(batchId).get("done").asBoolean());
            assertThat(gw.message(msg).get("state").asText()).isEqualTo("accepted");
            JsonNode apns = TestGateway.JSON.readTree(gw.sandbox().payload(java.util.UUID.fromString(msg)));
            assertThat(apns.get("aps").get("alert").get("title").asText()).isEqualTo("Sale");
        }
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(30)).untilAsserted(() -> {
            JsonNode f = gw.get("/v1/campaigns/" + id + "/funnel?variant=test").json();
            assertThat(f.toString()).contains("\"accepted\":2");
        });
        assertThat(gw.post(base(gw) + "/" + id + "/test", "{\"users\":[]}").status()).isEqualTo(422);
        gw.send("PUT", "/v1/apps/" + gw.app + "/policy", "{}", gw.key);
    }
}
