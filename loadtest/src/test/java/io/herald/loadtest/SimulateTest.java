package io.herald.loadtest;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The simulator in {@code mvn verify}: a small population (seconds), both strategies through a real
 * gateway on its embedded Redis, asserting the strategies' order. The full runs (100,000 users, 40
 * seeds) are outside CI (docs/simulator.md).
 */
class SimulateTest {
    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void heraldGetsMoreOpensWithFewerPushesAndFewerOptOutsThanBlanket() throws Exception {
        Simulate.Run r = Simulate.run(new Simulate.Params(2000, 11, 4, 1.3, 0.35, 0.05, 2, 10));
        assertThat(r.blanket().reached()).as("blanket reaches everyone").isEqualTo(2000);
        assertThat(r.blanket().sent()).as("two pushes each, but none after an opt-out").isBetween(3000L, 4000L);
        assertThat(r.herald().sent()).as("targeted and capped").isLessThan(r.blanket().sent());
        assertThat(r.herald().opensPerThousandSent()).isGreaterThan(r.blanket().opensPerThousandSent());
        assertThat(r.liftPerReached()).as(Simulate.row(r)).isGreaterThanOrEqualTo(2.0);
        assertThat(r.herald().opensPerMember()).as("more opens from the whole population too: " + Simulate.row(r))
                .isGreaterThan(r.blanket().opensPerMember());
        assertThat(r.herald().optedOut()).as(Simulate.row(r)).isLessThan(r.blanket().optedOut());
        assertThat(r.herald().chosen()).as("the horse race decided").matches("o[0-3]");
    }

    @Test
    void aSeedGivesTheSamePopulationAndTheCrowdsTheirShares() {
        Simulate.Params p = new Simulate.Params(20_000, 5, 4, 1.3, 0.35, 0.05, 2, 10);
        Simulate.Population a = Simulate.Population.generate(p);
        Simulate.Population b = Simulate.Population.generate(p);
        assertThat(a.users).isEqualTo(b.users);
        assertThat(a.best).isEqualTo(b.best);
        assertThat(a.clickFactor[a.best]).isEqualTo(1.3);
        for (int v = 0; v < a.clickFactor.length; v++) {
            if (v != a.best) {
                assertThat(a.clickFactor[v]).as("the best is bestGap over every other").isLessThanOrEqualTo(1.0);
            }
        }
        long[] crowds = new long[4];
        long mislabelled = 0;
        for (Simulate.User u : a.users) {
            crowds[u.crowd()]++;
            mislabelled += u.taggedCrowd().equals(Simulate.CROWDS[u.crowd()]) ? 0 : 1;
        }
        for (int c = 0; c < 4; c++) {
            assertThat(crowds[c] / 20_000.0).isCloseTo(Simulate.CROWD_SHARE[c], org.assertj.core.data.Offset.offset(0.02));
        }
        assertThat(mislabelled / 20_000.0).as("noise 5%, a quarter of it lands on the right crowd")
                .isBetween(0.025, 0.05);
        assertThat(Simulate.Population.generate(new Simulate.Params(20_000, 6, 4, 1.3, 0.35, 0.05, 2, 10)).users)
                .isNotEqualTo(a.users);
    }
}
