package io.herald.gateway.admission;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.time.LocalTime;
import java.time.ZoneId;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The time arithmetic of the delivery policy (no Redis: pure functions of the clock) and policy parsing. */
class AdmissionTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ZoneId SHANGHAI = ZoneId.of("Asia/Shanghai");
    private static final ZoneId NEW_YORK = ZoneId.of("America/New_York");

    private static long at(String instant) {
        return Instant.parse(instant).toEpochMilli();
    }

    @Test
    void quietHoursAcrossMidnightEndNextMorningInTheUsersZone() {
        LocalTime start = LocalTime.of(22, 0);
        LocalTime end = LocalTime.of(7, 0);
        // 23:30 Shanghai (15:30Z): quiet until 07:00 Shanghai the next day (23:00Z).
        assertThat(Admission.quietEnd(at("2026-06-15T15:30:00Z"), SHANGHAI, start, end)).isEqualTo(at("2026-06-15T23:00:00Z"));
        // 02:00 Shanghai (18:00Z), after midnight: the window that started yesterday.
        assertThat(Admission.quietEnd(at("2026-06-15T18:00:00Z"), SHANGHAI, start, end)).isEqualTo(at("2026-06-15T23:00:00Z"));
        // 07:00 exactly: the window is over; 21:59 not yet begun.
        assertThat(Admission.quietEnd(at("2026-06-15T23:00:00Z"), SHANGHAI, start, end)).isZero();
        assertThat(Admission.quietEnd(at("2026-06-15T13:59:00Z"), SHANGHAI, start, end)).isZero();
        // A window within one day: 12:00-14:00.
        assertThat(Admission.quietEnd(at("2026-06-15T05:00:00Z"), SHANGHAI, LocalTime.NOON, LocalTime.of(14, 0)))
                .isEqualTo(at("2026-06-15T06:00:00Z"));
    }

    @Test
    void quietHoursFollowDaylightSavingChanges() {
        LocalTime start = LocalTime.of(22, 0);
        LocalTime end = LocalTime.of(7, 0);
        // New York springs forward on 2026-03-08 at 02:00 EST: 01:30 EST (06:30Z) is quiet until
        // 07:00 EDT, which is 11:00Z, not 12:00Z.
        assertThat(Admission.quietEnd(at("2026-03-08T06:30:00Z"), NEW_YORK, start, end)).isEqualTo(at("2026-03-08T11:00:00Z"));
        // It falls back on 2026-11-01 at 02:00 EDT: 07:00 EST is 12:00Z.
        assertThat(Admission.quietEnd(at("2026-11-01T05:00:00Z"), NEW_YORK, start, end)).isEqualTo(at("2026-11-01T12:00:00Z"));
        // A window ending in the gap (02:30 does not exist on 2026-03-08) ends when the clocks say
        // 03:30 EDT (java.time moves a time in a gap forward by the gap): 07:30Z.
        assertThat(Admission.quietEnd(at("2026-03-08T06:45:00Z"), NEW_YORK, LocalTime.of(1, 0), LocalTime.of(2, 30)))
                .isEqualTo(at("2026-03-08T07:30:00Z"));
        // A window starting in the overlap (01:30 happens twice on 2026-11-01) starts at the earlier one.
        assertThat(Admission.quietEnd(at("2026-11-01T05:40:00Z"), NEW_YORK, LocalTime.of(1, 30), LocalTime.of(4, 0)))
                .isEqualTo(at("2026-11-01T09:00:00Z"));
    }

    @Test
    void localTimeIsTheNextOccurrenceInTheUsersZone() {
        // 11:00 Shanghai: 09:00 has passed today, so tomorrow 09:00 (01:00Z).
        assertThat(Admission.nextLocal(at("2026-06-15T03:00:00Z"), SHANGHAI, LocalTime.of(9, 0)))
                .isEqualTo(at("2026-06-16T01:00:00Z"));
        // 08:00 Shanghai: today 09:00.
        assertThat(Admission.nextLocal(at("2026-06-15T00:00:00Z"), SHANGHAI, LocalTime.of(9, 0)))
                .isEqualTo(at("2026-06-15T01:00:00Z"));
    }

    @Test
    void bestHourIsTheUsersStrongestHourThenTheAppsThenTheDefault() throws Exception {
        AppPolicy policy = AppPolicy.parse(JSON.readTree("{\"bestHour\":{\"minEvents\":3,\"defaultHour\":19}}"), 1);
        double[] hours = new double[24];
        hours[20] = 4;
        hours[8] = 1;
        // 12:00Z: today 20:00Z; 21:00Z: the hour passed, tomorrow's; 20:30Z: in the hour, now.
        assertThat(Admission.bestHour(at("2026-06-15T12:00:00Z"), hours, policy, -1, SHANGHAI)).isEqualTo(at("2026-06-15T20:00:00Z"));
        assertThat(Admission.bestHour(at("2026-06-15T21:00:00Z"), hours, policy, -1, SHANGHAI)).isEqualTo(at("2026-06-16T20:00:00Z"));
        assertThat(Admission.bestHour(at("2026-06-15T20:30:00Z"), hours, policy, -1, SHANGHAI)).isEqualTo(at("2026-06-15T20:30:00Z"));
        // Too little of their own (2 < minEvents 3): the app's hour, else 19:00 in the user's zone.
        double[] thin = new double[24];
        thin[3] = 2;
        assertThat(Admission.bestHour(at("2026-06-15T12:00:00Z"), thin, policy, 14, SHANGHAI)).isEqualTo(at("2026-06-15T14:00:00Z"));
        assertThat(Admission.bestHour(at("2026-06-15T12:00:00Z"), null, policy, -1, SHANGHAI)).isEqualTo(at("2026-06-16T11:00:00Z"));
    }

    @Test
    void capWindowsAreCalendarDaysAndWeeksInTheZoneOrRolling() throws Exception {
        AppPolicy p = AppPolicy.parse(JSON.readTree("{\"caps\":[{\"id\":\"d\",\"limit\":3,\"window\":\"day\"},"
                + "{\"id\":\"w\",\"limit\":9,\"window\":\"week\"},{\"id\":\"r\",\"scope\":\"channel:push\",\"limit\":2,\"window\":\"90m\"}]}"), 1);
        long now = at("2026-06-17T15:30:00Z"); // Wednesday 23:30 in Shanghai
        assertThat(Admission.window(p.caps().get(0), now, SHANGHAI))
                .containsExactly(at("2026-06-16T16:00:00Z"), at("2026-06-17T16:00:00Z"));
        assertThat(Admission.window(p.caps().get(1), now, SHANGHAI))
                .containsExactly(at("2026-06-14T16:00:00Z"), at("2026-06-21T16:00:00Z"));
        assertThat(Admission.window(p.caps().get(2), now, SHANGHAI))
                .containsExactly(now - 90 * 60_000L, now + 90 * 60_000L);
        // A day with a DST change is 23 hours long.
        long[] day = Admission.window(p.caps().get(0), at("2026-03-08T15:00:00Z"), NEW_YORK);
        assertThat(day[1] - day[0]).isEqualTo(Duration.ofHours(23).toMillis());
    }

    @Test
    void releaseSpreadIsDeterministicPerUserAndWithinTheSpread() {
        Duration spread = Duration.ofMinutes(10);
        long a = Admission.spread("app", "alice", spread);
        assertThat(Admission.spread("app", "alice", spread)).isEqualTo(a);
        java.util.Set<Long> seen = new java.util.HashSet<>();
        for (int i = 0; i < 200; i++) {
            long s = Admission.spread("app", "user-" + i, spread);
            assertThat(s).isBetween(0L, spread.toMillis() - 1);
            seen.add(s / 60_000);
        }
        assertThat(seen).as("200 users land in every minute of the spread").hasSize(10);
        assertThat(Admission.spread("app", "alice", Duration.ZERO)).isZero();
    }

    @Test
    void policiesAreValidatedFieldByField() throws Exception {
        for (String[] bad : new String[][] {
            {"{\"caps\":[{\"id\":\"a\",\"limit\":3,\"window\":\"fortnight\"}]}", "caps[0].window"},
            {"{\"caps\":[{\"id\":\"a\",\"limit\":0,\"window\":\"day\"}]}", "caps[0].limit"},
            {"{\"caps\":[{\"id\":\"a b\",\"limit\":1,\"window\":\"day\"}]}", "caps[0].id"},
            {"{\"caps\":[{\"id\":\"a\",\"limit\":1,\"window\":\"day\"},{\"id\":\"a\",\"limit\":1,\"window\":\"week\"}]}", "caps[1].id"},
            {"{\"caps\":[{\"id\":\"a\",\"scope\":\"channel:fax\",\"limit\":1,\"window\":\"day\"}]}", "caps[0].scope"},
            {"{\"caps\":[{\"id\":\"a\",\"limit\":1,\"window\":\"31d\"}]}", "caps[0].window"},
            {"{\"quietHours\":{\"start\":\"22:00\",\"end\":\"25:00\"}}", "quietHours.end"},
            {"{\"quietHours\":{\"start\":\"22:00\",\"end\":\"07:00\",\"zone\":\"Mars/Olympus\"}}", "quietHours.zone"},
            {"{\"zone\":\"nowhere\"}", "zone"},
            {"{\"defaults\":{\"class\":\"spam\"}}", "defaults.class"},
            {"{\"defaults\":{\"onQuiet\":\"wait\"}}", "defaults.onQuiet"},
            {"{\"bestHour\":{\"defaultHour\":24}}", "bestHour.defaultHour"},
            {"{\"capz\":[]}", "capz"},
        }) {
            assertThatThrownBy(() -> AppPolicy.parse(JSON.readTree(bad[0]), 1)).as(bad[0])
                    .isInstanceOfSatisfying(AppPolicy.Invalid.class, e -> assertThat(e.field).isEqualTo(bad[1]));
        }
        AppPolicy ok = AppPolicy.parse(JSON.readTree("{\"zone\":\"Asia/Shanghai\",\"caps\":[{\"id\":\"daily\","
                + "\"scope\":\"category:promo\",\"limit\":3,\"window\":\"day\"}],\"quietHours\":{\"start\":\"22:00\","
                + "\"end\":\"08:00\",\"releaseSpread\":\"20m\"}}"), 4);
        // What GET shows parses back to the same policy.
        assertThat(AppPolicy.parse(ok.toJson(JSON).without("version"), 4)).isEqualTo(ok);
        assertThat(ok.toJson(JSON).get("caps").get(0).get("scope").asText()).isEqualTo("category:promo");
    }
}
