package io.herald.loadtest;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** The books of a run: markers survive the round trip, and the total-queue check names each failure. */
class TallyTest {

    @Test
    void aMarkerIsFoundInsideAnyTextAndBrokenOnesAreNot() {
        String text = "{\"aps\":{\"alert\":{\"body\":\"Message 7 " + Tally.marker(4242, 7, 1732300000123456L) + "\"}}}";
        assertThat(Tally.parseMarker(text)).containsExactly(4242, 7, 1732300000123456L);
        assertThat(Tally.parseMarker("no marker here")).isNull();
        assertThat(Tally.parseMarker("#lt:1:2:3")).isNull();          // unterminated
        assertThat(Tally.parseMarker("#lt:1:x:3#")).isNull();         // not a number
        assertThat(Tally.parseMarker("#lt:1::3#")).isNull();          // empty field
    }

    @Test
    void theQueueCheckCountsLostDuplicatedAndUnexpected() {
        Tally t = new Tally(9, 6, 2);
        long now = Tally.nowMicros();
        for (long s = 0; s < 5; s++) {
            t.acknowledged(s, now);                 // #5 is never acknowledged
        }
        t.arrived(9, 0, now, now + 10);
        t.arrived(9, 1, now, now + 10);
        t.arrived(9, 2, now, now + 2_000);
        t.arrived(9, 2, now, now + 3_000);           // duplicate
        t.arrived(9, 3, now, now + 4_000);
        t.arrived(9, 5, now, now + 5_000);           // arrived without a 2xx: unexpected
        t.arrived(8, 1, now, now + 5_000);           // another run: unexpected
        t.arrived(9, 99, now, now + 5_000);          // out of range: unexpected

        Report.Queue q = t.queueCheck();
        assertThat(q.acknowledged()).isEqualTo(5);
        assertThat(q.lost()).isEqualTo(1);           // #4
        assertThat(q.firstLostSeq()).isEqualTo(4);
        assertThat(q.duplicated()).isEqualTo(1);
        assertThat(q.unexpected()).isEqualTo(3);
        assertThat(q.ok()).isFalse();
        assertThat(t.acknowledgedArrived()).isEqualTo(4);
    }

    @Test
    void warmUpMessagesAreCheckedButLeftOutOfTheLatencyFigures() {
        Tally t = new Tally(1, 4, 2);
        long now = Tally.nowMicros();
        for (long s = 0; s < 4; s++) {
            t.acknowledged(s, now);
            t.arrived(1, s, now, now + (s < 2 ? 900_000 : 1_000));
        }
        assertThat(t.queueCheck().ok()).isTrue();
        assertThat(t.endToEndHistogram().getTotalCount()).isEqualTo(2);
        assertThat(t.endToEndHistogram().getMaxValue()).isLessThan(2_000);
    }
}
