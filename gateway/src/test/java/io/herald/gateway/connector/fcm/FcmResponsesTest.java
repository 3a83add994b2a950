package io.herald.gateway.connector.fcm;

import io.herald.gateway.config.StartupException;
import io.herald.gateway.connector.fcm.FcmResponses.Kind;
import io.herald.gateway.connector.fcm.FcmResponses.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** FCM answers to outcomes, without a network. */
class FcmResponsesTest {
    private static final long NOW = 1_700_000_000_000L;

    private static Outcome classify(int status, String retryAfter, String body) {
        return FcmResponses.classify(status, retryAfter, body == null ? null : body.getBytes(StandardCharsets.UTF_8), NOW);
    }

    private static String error(int code, String status, String fcmCode, String message) {
        return "{\"error\":{\"code\":" + code + ",\"message\":\"" + message + "\",\"status\":\"" + status + "\","
                + "\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\""
                + fcmCode + "\"}]}}";
    }

    @Test
    void acceptedCarriesTheMessageName() {
        Outcome o = classify(200, null, "{\"name\":\"projects/p/messages/0:1%ab\"}");
        assertThat(o.kind()).isEqualTo(Kind.ACCEPTED);
        assertThat(o.providerId()).isEqualTo("projects/p/messages/0:1%ab");
    }

    @Test
    void unregisteredInvalidates() {
        Outcome o = classify(404, null, error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."));
        assertThat(o.kind()).isEqualTo(Kind.INVALIDATED);
        assertThat(o.reason()).isEqualTo("unregistered");
    }

    @Test
    void notFoundWithoutUnregisteredIsPermanentNotInvalidating() {
        Outcome o = classify(404, null, "<html>no such project</html>");
        assertThat(o.kind()).isEqualTo(Kind.FAILED);
        assertThat(o.reason()).isEqualTo("not_found");
    }

    @Test
    void invalidArgumentNamingTheTokenInvalidates() {
        String body = "{\"error\":{\"code\":400,\"message\":\"The registration token is not a valid FCM registration"
                + " token\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
                + "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"INVALID_ARGUMENT\"},"
                + "{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
                + "\"message.token\",\"description\":\"Invalid registration token\"}]}]}}";
        Outcome o = classify(400, null, body);
        assertThat(o.kind()).isEqualTo(Kind.INVALIDATED);
        assertThat(o.reason()).isEqualTo("invalid_argument");
    }

    @Test
    void invalidArgumentAboutThePayloadFailsWithoutInvalidating() {
        Outcome o = classify(400, null, error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                "Invalid value at 'message.android.ttl'"));
        assertThat(o.kind()).isEqualTo(Kind.FAILED);
        assertThat(o.reason()).isEqualTo("invalid_argument");
    }

    @Test
    void senderIdMismatchIsPermanent() {
        Outcome o = classify(403, null, error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"));
        assertThat(o.kind()).isEqualTo(Kind.FAILED);
        assertThat(o.reason()).isEqualTo("sender_id_mismatch");
    }

    @Test
    void quotaCarriesRetryAfter() {
        Outcome o = classify(429, "7", error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded"));
        assertThat(o.kind()).isEqualTo(Kind.QUOTA);
        assertThat(o.retryAfterMillis()).isEqualTo(7000);
        assertThat(o.reason()).isEqualTo("quota_exceeded");
    }

    @Test
    void unavailableHonoursRetryAfterInternalDoesNot() {
        assertThat(classify(503, "2", error(503, "UNAVAILABLE", "UNAVAILABLE", "x")))
                .extracting(Outcome::kind, Outcome::retryAfterMillis).containsExactly(Kind.RETRY, 2000L);
        assertThat(classify(503, null, null)).extracting(Outcome::kind, Outcome::retryAfterMillis)
                .containsExactly(Kind.RETRY, -1L);
        assertThat(classify(500, "9", error(500, "INTERNAL", "INTERNAL", "x")))
                .extracting(Outcome::kind, Outcome::reason, Outcome::retryAfterMillis)
                .containsExactly(Kind.RETRY, "internal", -1L);
    }

    @Test
    void unauthenticatedAsksForANewToken() {
        assertThat(classify(401, null, "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\"}}").kind())
                .isEqualTo(Kind.UNAUTHENTICATED);
    }

    @Test
    void retryAfterAcceptsSecondsAndHttpDates() {
        assertThat(FcmResponses.retryAfterMillis("120", NOW)).isEqualTo(120_000);
        assertThat(FcmResponses.retryAfterMillis("Tue, 14 Nov 2023 22:13:30 GMT", NOW)).isEqualTo(10_000);
        assertThat(FcmResponses.retryAfterMillis("soon", NOW)).isEqualTo(-1);
        assertThat(FcmResponses.retryAfterMillis(null, NOW)).isEqualTo(-1);
    }

    @Test
    void missingServiceAccountFileIsAnActionableStartupError(@TempDir Path dir) {
        assertThatThrownBy(() -> FcmConnector.credentials(dir.resolve("nope.json")))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("does not exist").hasMessageNotContaining("\n");
    }

    @Test
    void malformedServiceAccountFileIsAnActionableStartupError(@TempDir Path dir) throws Exception {
        Path f = Files.writeString(dir.resolve("sa.json"), "{\"type\":\"authorized_user\"}");
        assertThatThrownBy(() -> FcmConnector.credentials(f))
                .isInstanceOf(StartupException.class)
                .hasMessageContaining("service_account").hasMessageNotContaining("\n");
    }
}
