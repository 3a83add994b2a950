package io.herald.gateway.connector.sms;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class SmscReceiptTest {

    @Test
    void parsesTheStandardReceiptText() {
        SmscReceipt r = SmscReceipt.parse("id:2684354561 sub:001 dlvrd:001 submit date:2501011200 "
                + "done date:2501011201 stat:DELIVRD err:000 text:hello", null, null);
        assertThat(r.id()).isEqualTo("2684354561");
        assertThat(r.stat()).isEqualTo("DELIVRD");
        assertThat(r.err()).isEqualTo("000");
        assertThat(r.outcome()).isEqualTo("delivered");
        assertThat(r.reason()).isNull();
    }

    @Test
    void parsingIsTolerantOfCase() {
        SmscReceipt r = SmscReceipt.parse("ID:abc Sub:001 Stat:undeliv Err:012", null, null);
        assertThat(r.id()).isEqualTo("abc");
        assertThat(r.outcome()).isEqualTo("failed");
        assertThat(r.reason()).isEqualTo("undelivered");
    }

    @Test
    void mapsFinalStatesAndIgnoresIntermediateOnes() {
        assertThat(SmscReceipt.parse("id:1 stat:EXPIRED", null, null).reason()).isEqualTo("expired");
        assertThat(SmscReceipt.parse("id:1 stat:REJECTD", null, null).reason()).isEqualTo("rejected");
        assertThat(SmscReceipt.parse("id:1 stat:DELETED", null, null).reason()).isEqualTo("deleted");
        assertThat(SmscReceipt.parse("id:1 stat:UNKNOWN", null, null).reason()).isEqualTo("unknown");
        assertThat(SmscReceipt.parse("id:1 stat:ACCEPTD", null, null).isFinal()).isFalse();
        assertThat(SmscReceipt.parse("id:1 stat:ENROUTE", null, null).isFinal()).isFalse();
    }

    @Test
    void fallsBackToTlvsAndRejectsReceiptsWithoutId() {
        assertThat(SmscReceipt.parse("", "77", "DELIVRD").id()).isEqualTo("77");
        assertThat(SmscReceipt.parse("stat:DELIVRD", null, null)).isNull();
    }

    @Test
    void normalisesHexAndDecimalIdsToTheSameString() {
        assertThat(SmscReceipt.normaliseId("A0000001")).isEqualTo("2684354561");
        assertThat(SmscReceipt.normaliseId("a0000001")).isEqualTo("2684354561");
        assertThat(SmscReceipt.normaliseId("2684354561")).isEqualTo("2684354561");
        assertThat(SmscReceipt.normaliseId("000123")).isEqualTo("123");
        assertThat(SmscReceipt.normaliseId(" 42 ")).isEqualTo("42");
        assertThat(SmscReceipt.normaliseId("msg-7f")).isEqualTo("MSG-7F");
        assertThat(SmscReceipt.normaliseId("FFFFFFFFFFFFFFFFFF")).isEqualTo("FFFFFFFFFFFFFFFFFF");
        assertThat(SmscReceipt.normaliseId("123456789012345678901234")).isEqualTo("123456789012345678901234");
    }

    @Test
    void namesStatusesInSnakeCase() {
        assertThat(SmppStatus.name(0x0B)).isEqualTo("invalid_dest_addr");
        assertThat(SmppStatus.name(0x58)).isEqualTo("throttled");
        assertThat(SmppStatus.name(0x432)).isEqualTo("status_0x432");
        assertThat(SmppStatus.isThrottle(0x14)).isTrue();
    }
}
