package io.herald.gateway.registry;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class UserDataTest {

    @Test
    void summaryCountsOnlyTheDaysOfTheWindowWithAndWithoutSums() {
        // newest first; day 100 = today
        String rec = "8640000123|100:3:12.5,99:1,95:2:7,80:4";
        UserData.EventSummary all = UserData.summary("purchase", rec, 100, 90);
        assertThat(all.count()).isEqualTo(10);
        assertThat(all.sum()).isEqualTo(19.5);
        assertThat(all.last()).isEqualTo(8640000123L);
        assertThat(all.perDay()).isEqualTo(Map.of(100L, 3L, 99L, 1L, 95L, 2L, 80L, 4L));
        UserData.EventSummary week = UserData.summary("purchase", rec, 100, 7);
        assertThat(week.count()).isEqualTo(6);
        assertThat(week.sum()).isEqualTo(19.5);
        UserData.EventSummary today = UserData.summary("purchase", rec, 100, 1);
        assertThat(today.count()).isEqualTo(3);
        // a later clock: day 100 is 5 days back
        assertThat(UserData.summary("purchase", rec, 105, 5).count()).isZero();
        assertThat(UserData.summary("x", "5|", 100, 30).count()).isZero();
    }

    @Test
    void bucketsAreStableAndSpread() {
        assertThat(UserData.bucket("app", "alice")).isEqualTo(UserData.bucket("app", "alice")).isBetween(0, 99);
        int[] counts = new int[100];
        for (int i = 0; i < 100_000; i++) {
            counts[UserData.bucket("app", "u" + i)]++;
        }
        for (int c : counts) {
            assertThat(c).isBetween(850, 1150);
        }
    }
}
