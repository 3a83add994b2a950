package io.herald.gateway.campaign;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.statistics.inference.ChiSquareTest;
import org.junit.jupiter.api.Test;

class HorseRaceTest {
    private static HorseRace.Arm arm(String v, long n, long k) {
        return new HorseRace.Arm(v, n, k);
    }

    @Test
    void aClearWinnerIsSignificantByChiSquareAndTheRestGetsIt() {
        HorseRace.Decision d = HorseRace.decide(List.of(arm("a", 1000, 50), arm("b", 1000, 100), arm("c", 1000, 60)),
                0.05, 100, "stop");
        assertThat(d.reason()).isEqualTo("significant");
        assertThat(d.winner()).isEqualTo("b");
        assertThat(d.chosen()).isEqualTo("b");
        assertThat(d.runnerUp()).isEqualTo("c");
        assertThat(d.test()).isEqualTo("chi_square");
        // b 100/1000 vs c 60/1000: chi-square (no correction) = 10.87, p = 0.000978
        assertThat(d.pValue()).isCloseTo(0.000978, within(0.000005));
    }

    @Test
    void withoutASignificantGapEachPolicyDecidesTheRest() {
        List<HorseRace.Arm> arms = List.of(arm("a", 1000, 50), arm("b", 1000, 55));
        HorseRace.Decision best = HorseRace.decide(arms, 0.05, 100, "send_best");
        assertThat(best.reason()).isEqualTo("not_significant");
        assertThat(best.winner()).isNull();
        assertThat(best.chosen()).isEqualTo("b");
        assertThat(best.pValue()).isGreaterThan(0.05);
        assertThat(HorseRace.decide(arms, 0.05, 100, "send_first").chosen()).isEqualTo("a");
        assertThat(HorseRace.decide(arms, 0.05, 100, "stop").chosen()).isNull();
    }

    @Test
    void aTieHasNoWinnerAndSendBestTakesTheFirstOfTheTied() {
        HorseRace.Decision d = HorseRace.decide(List.of(arm("a", 500, 10), arm("b", 800, 40), arm("c", 400, 20)),
                0.05, 100, "send_best");
        assertThat(d.reason()).isEqualTo("tie");
        assertThat(d.winner()).isNull();
        assertThat(d.best()).isEqualTo("b");
        assertThat(d.chosen()).isEqualTo("b");
        assertThat(d.pValue()).isCloseTo(1.0, within(1e-9));
    }

    @Test
    void zeroOpensAndNoSendsAreNoData() {
        HorseRace.Decision zero = HorseRace.decide(List.of(arm("a", 300, 0), arm("b", 300, 0)), 0.05, 100, "send_best");
        assertThat(zero.reason()).isEqualTo("no_data");
        assertThat(zero.test()).isEqualTo("none");
        assertThat(zero.chosen()).isEqualTo("a");
        HorseRace.Decision none = HorseRace.decide(List.of(arm("a", 0, 0), arm("b", 0, 0)), 0.05, 100, "send_first");
        assertThat(none.reason()).isEqualTo("no_data");
        assertThat(none.chosen()).isEqualTo("a");
        assertThat(HorseRace.decide(List.of(arm("a", 0, 0), arm("b", 0, 0)), 0.05, 100, "stop").chosen()).isNull();
    }

    @Test
    void smallCountsUseFishersExactTestAndTooFewIsNoWinner() {
        HorseRace.Decision d = HorseRace.decide(List.of(arm("a", 20, 7), arm("b", 20, 0)), 0.05, 10, "stop");
        assertThat(d.test()).isEqualTo("fisher_exact");
        // Fisher two-sided for [[7,13],[0,20]]: p = 0.008316 (expected successes 3.5 < 5)
        assertThat(d.pValue()).isCloseTo(0.008316, within(0.00001));
        assertThat(d.winner()).isEqualTo("a");
        HorseRace.Decision few = HorseRace.decide(List.of(arm("a", 20, 7), arm("b", 20, 0)), 0.05, 100, "send_first");
        assertThat(few.reason()).isEqualTo("too_few");
        assertThat(few.winner()).isNull();
        assertThat(few.chosen()).isEqualTo("a");
    }

    @Test
    void assignmentFollowsTheWeightsAndIsSticky() {
        List<String> ids = List.of("a", "b", "c");
        List<Long> weights = List.of(1L, 2L, 5L);
        Map<String, Long> seen = new HashMap<>();
        for (long u = 0; u < 100_000; u++) {
            seen.merge(CampaignLauncher.variantOf("cmp-1", u, ids, weights, 8), 1L, Long::sum);
        }
        long[] observed = {seen.get("a"), seen.get("b"), seen.get("c")};
        double p = ChiSquareTest.withDefaults().test(new double[] {1, 2, 5}, observed).getPValue();
        assertThat(p).as("chi-square goodness of fit of %s to weights 1:2:5", java.util.Arrays.toString(observed))
                .isGreaterThan(0.001);
        for (long u = 0; u < 1000; u++) {
            assertThat(CampaignLauncher.variantOf("cmp-1", u, ids, weights, 8))
                    .isEqualTo(CampaignLauncher.variantOf("cmp-1", u, new ArrayList<>(ids), List.of(1L, 2L, 5L), 8));
        }
        // Another campaign deals its users independently.
        long same = 0;
        for (long u = 0; u < 10_000; u++) {
            if (CampaignLauncher.variantOf("cmp-1", u, ids, List.of(1L, 1L, 1L), 3)
                    .equals(CampaignLauncher.variantOf("cmp-2", u, ids, List.of(1L, 1L, 1L), 3))) {
                same++;
            }
        }
        assertThat(same).isBetween(3000L, 3700L);
    }

    @Test
    void aGateIsOverriddenOnlyByAResumeAfterItsOwnPause() throws Exception {
        ObjectMapper m = new ObjectMapper();
        String gate = "rollout gate after the rollout stage to 10.0% of c-1: ";
        String history = "{\"history\":[{\"action\":\"launch\",\"by\":\"herald:n1\"},"
                + "{\"action\":\"pause\",\"by\":\"herald:guard\",\"reason\":\"" + gate + "failureRate 30%\"}";
        assertThat(CampaignLauncher.resumedAfter(m.readTree(history + "]}"), gate)).as("paused, not resumed").isFalse();
        assertThat(CampaignLauncher.resumedAfter(m.readTree(history + ",{\"action\":\"resume\",\"by\":\"k-1\"}]}"),
                gate)).isTrue();
        assertThat(CampaignLauncher.resumedAfter(m.readTree(history + ",{\"action\":\"resume\",\"by\":\"k-1\"}]}"),
                "rollout gate after the rollout stage to 50.0% of c-1: ")).as("another stage's gate").isFalse();
        assertThat(CampaignLauncher.resumedAfter(m.readTree("{\"history\":[{\"action\":\"pause\",\"by\":\"k-1\","
                + "\"reason\":\"" + gate + "x\"},{\"action\":\"resume\",\"by\":\"k-1\"}]}"), gate))
                .as("an operator's own pause is not a gate's").isFalse();
    }

    @Test
    void phasesSliceTheAudienceIntoTheTestShareAndTheRolloutStages() throws Exception {
        ObjectMapper m = new ObjectMapper();
        List<CampaignLauncher.Phase> phases = CampaignLauncher.Phase.of(m.readTree("{\"experiment\":{\"testPercent\":10,"
                + "\"decideAfter\":\"1h\"},\"rollout\":{\"stages\":[10,50,100],\"holdFor\":\"15m\"}}"));
        assertThat(phases).extracting(CampaignLauncher.Phase::kind).containsExactly("test", "stage", "stage", "stage");
        assertThat(phases.get(0).lo()).isZero();
        assertThat(phases.get(0).hi()).isEqualTo(1000);
        assertThat(phases.get(1).lo()).isEqualTo(1000);
        assertThat(phases.get(1).hi()).isEqualTo(1900);
        assertThat(phases.get(2).hi()).isEqualTo(5500);
        assertThat(phases.get(3).hi()).isEqualTo(10_000);
        assertThat(phases.get(0).holdMs()).isEqualTo(3_600_000L);
        assertThat(phases.get(1).holdMs()).isEqualTo(900_000L);
        assertThat(phases.get(3).holdMs()).as("nothing to hold after the last stage").isZero();
        assertThat(CampaignLauncher.Phase.of(m.readTree("{}"))).hasSize(1);
    }
}
