package io.herald.gateway.campaign;

import java.util.ArrayList;
import java.util.List;
import org.apache.commons.statistics.inference.ChiSquareTest;
import org.apache.commons.statistics.inference.FisherExactTest;

/**
 * The horse race's decision: which variant the rest of a campaign's audience gets, from the
 * test share's counts. Pure and stateless (thread-safe); the launcher feeds it the counts and
 * records what it returns.
 *
 * <p>Each variant is an {@link Arm}: {@code n} the test messages the provider accepted (the
 * denominator: accepted, not submitted, so failures and drops do not count against a copy) and
 * {@code k} those that were opened, clicked or converted (the metric). The arms are ranked by
 * rate, ties in the campaign's order. The best is tested against the runner-up in a 2x2 table
 * (variant x success): Pearson's chi-square without continuity correction when every expected
 * cell is at least 5, Fisher's exact test (two-sided) otherwise. The best wins when that p-value
 * is below {@code alpha}. With more than two variants only best vs runner-up is tested (the
 * runner-up is the hardest to beat; no multiple-comparison correction is applied). Defined
 * outcomes without a winner, each then settled by the {@code noWinner} policy:
 * <ul>
 *   <li>{@code no_data}: no variant has a success (or none was accepted);</li>
 *   <li>{@code too_few}: a variant has fewer than {@code minPerVariant} accepted;</li>
 *   <li>{@code tie}: the best and the runner-up have the same rate;</li>
 *   <li>{@code not_significant}: p >= alpha.</li>
 * </ul>
 * Policies: {@code send_best} (the best by rate, ties to the first), {@code send_first} (the
 * first variant) and {@code stop} (the rest gets nothing).
 */
public final class HorseRace {
    private HorseRace() {
    }

    /**
     * One variant's test counts: {@code n} accepted, {@code k} successes (capped at {@code n}: the
     * counters are flushed apart, so an open can be counted a moment before its acceptance).
     */
    public record Arm(String variant, long n, long k) {
        public Arm {
            k = Math.max(0, Math.min(k, n));
        }

        public double rate() {
            return n == 0 ? 0 : (double) k / n;
        }
    }

    /**
     * What was decided: the significant {@code winner} (null: none), why ({@code significant} or
     * one of the no-winner reasons), the variant the rest gets ({@code chosen}; null with {@code
     * stop}), the test used and its p-value for best vs runner-up (1 when not tested), and the
     * arms in the campaign's order.
     */
    public record Decision(String winner, String reason, String chosen, String best, String runnerUp, String test,
                           double pValue, List<Arm> arms) { }

    /** Decides with the given policy; {@code arms} in the campaign's order (at least two). */
    public static Decision decide(List<Arm> arms, double alpha, long minPerVariant, String noWinner) {
        if (arms.size() < 2) {
            throw new IllegalArgumentException("a horse race needs two variants at least");
        }
        List<Arm> ranked = new ArrayList<>(arms);
        ranked.sort((a, b) -> Double.compare(b.rate(), a.rate())); // stable: ties keep the campaign's order
        Arm best = ranked.get(0);
        Arm second = ranked.get(1);
        long successes = 0;
        long smallest = Long.MAX_VALUE;
        for (Arm a : arms) {
            successes += a.k();
            smallest = Math.min(smallest, a.n());
        }
        String test = "none";
        double p = 1;
        String reason;
        if (successes == 0) {
            reason = "no_data";
        } else {
            test = small(best, second) ? "fisher_exact" : "chi_square";
            p = pValue(best, second);
            if (smallest < minPerVariant) {
                reason = "too_few";
            } else if (best.rate() == second.rate()) {
                reason = "tie";
            } else {
                reason = p < alpha ? "significant" : "not_significant";
            }
        }
        String winner = reason.equals("significant") ? best.variant() : null;
        String chosen = winner != null ? winner : switch (noWinner) {
            case "send_first" -> arms.get(0).variant();
            case "stop" -> null;
            default -> best.variant(); // send_best (no data: the first, as ranking keeps the order)
        };
        return new Decision(winner, reason, chosen, best.variant(), second.variant(), test, p, List.copyOf(arms));
    }

    /**
     * The two-sided p-value of "a and b have the same rate": chi-square on the 2x2 table, or
     * Fisher's exact test when an expected cell is below 5; 1 when the table has an empty row
     * or column (nothing to compare).
     */
    public static double pValue(Arm a, Arm b) {
        long[][] t = {{a.k(), a.n() - a.k()}, {b.k(), b.n() - b.k()}};
        if (a.n() == 0 || b.n() == 0 || t[0][0] + t[1][0] == 0 || t[0][1] + t[1][1] == 0) {
            return 1;
        }
        if (small(a, b)) {
            if (a.n() > Integer.MAX_VALUE || b.n() > Integer.MAX_VALUE) {
                return ChiSquareTest.withDefaults().test(t).getPValue();
            }
            int[][] i = {{(int) t[0][0], (int) t[0][1]}, {(int) t[1][0], (int) t[1][1]}};
            return FisherExactTest.withDefaults().test(i).getPValue();
        }
        return ChiSquareTest.withDefaults().test(t).getPValue();
    }

    /** True when an expected cell of the 2x2 table is below 5 (Cochran's rule). */
    static boolean small(Arm a, Arm b) {
        double total = a.n() + b.n();
        if (total == 0) {
            return true;
        }
        double yes = a.k() + b.k();
        double no = total - yes;
        for (long n : new long[] {a.n(), b.n()}) {
            if (n * yes / total < 5 || n * no / total < 5) {
                return true;
            }
        }
        return false;
    }
}
