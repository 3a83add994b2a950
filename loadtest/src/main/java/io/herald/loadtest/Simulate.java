package io.herald.loadtest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.Herald;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.sandbox.SandboxApns;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code loadtest simulate}: proves on a reproducible population that targeting works. A
 * population with hidden traits is generated from a seed; the same population meets two
 * strategies, each on a fresh gateway (in this process, on its embedded Redis and APNs sandbox,
 * driven by a simulated clock so two days pass in seconds); a device model answers each push the
 * gateway delivers with signed receipts (opened, clicked, opted_out) and consent withdrawals, as a
 * real app would, from the hidden traits and the local time of arrival.
 *
 * <p><b>The population</b> (defaults; see docs/simulator.md): seed 004's four crowds, each user
 * tagged with their crowd (a share {@code --noise} tagged with a wrong one) plus noise tags; a time
 * zone of five; a habitual local hour (morning, noon or evening); an open propensity per crowd at
 * the habitual hour that falls off with the distance of the arrival hour from it; a click
 * propensity per copy variant (the truly best variant {@code --best-gap} times the runner-up's);
 * a tolerance (pushes per local day) past which the user opts out with probability 1/2, and a base
 * opt-out chance per push (higher for the disengaged crowds and at night). A simulated past of
 * {@code app_open} events at the habitual hours warms the gateway's engagement history.
 *
 * <p><b>The strategies</b>, over one simulated campaign pair (an offer with {@code --variants}
 * copies, then news): <i>blanket</i> sends both to everyone at 09:00 and 18:00 UTC with the
 * first copy, no caps or guards; <i>herald</i> sends the offer to the crowds tagged newbie or
 * active at each user's best hour with a horse race (test share {@code --test-percent} over the
 * variants, decided on clicks 2 h after its last test push, the rest the next day with the winner), and the news to
 * the same crowds at their best hour, under a cap of one marketing push per user per day (the
 * offer's higher priority takes the slot), quiet hours 22:00-08:00 and the default opt-out guard.
 *
 * <p>Not thread-safe; one run at a time. Gateways, Redis and directories are closed per strategy.
 */
@Command(name = "simulate", mixinStandardHelpOptions = true,
        description = "Blanket vs Herald on a seeded population with hidden traits: opens per 1,000 sent and per user, "
                + "lift, opt-outs, and whether the horse race picked the truly best variant.")
public final class Simulate implements Callable<Integer> {
    static final String[] CROWDS = {"newbie", "active", "silent", "churned"};
    static final double[] CROWD_SHARE = {0.2, 0.3, 0.3, 0.2};
    /** Chance a push is opened when it arrives at the user's habitual hour, per crowd. */
    static final double[] OPEN_AT_BEST = {0.22, 0.30, 0.06, 0.02};
    /** Chance a push makes the user opt out regardless of frequency, per crowd (x3 at night). */
    static final double[] OPT_OUT_BASE = {0.002, 0.001, 0.008, 0.02};
    /** app_open events in the simulated past (14 days), per crowd. */
    static final int[] PAST_OPENS = {4, 12, 2, 0};
    static final String[] ZONES = {"America/New_York", "Europe/London", "Europe/Berlin", "Asia/Shanghai", "Asia/Tokyo"};
    static final String APP = "sim";
    private static final Pattern COPY = Pattern.compile("\\[(o(\\d)|news)\\] for ([a-z0-9-]+)");
    private static final ObjectMapper JSON = new ObjectMapper();

    @Option(names = "--users", description = "Population size (default: ${DEFAULT-VALUE}).")
    int users = 100_000;
    @Option(names = "--runs", description = "Populations (seeds seed..seed+runs-1) (default: ${DEFAULT-VALUE}).")
    int runs = 1;
    @Option(names = "--seed", description = "First seed (default: ${DEFAULT-VALUE}).")
    long seed = 1;
    @Option(names = "--variants", description = "Copies of the offer, 2..8 (default: ${DEFAULT-VALUE}).")
    int variants = 4;
    @Option(names = "--best-gap", description = "The best copy's click propensity over the runner-up's (default: ${DEFAULT-VALUE}).")
    double bestGap = 1.3;
    @Option(names = "--click", description = "Chance an opened push is clicked, for the runner-up copy (default: ${DEFAULT-VALUE}).")
    double click = 0.35;
    @Option(names = "--noise", description = "Share of users tagged with a wrong crowd (default: ${DEFAULT-VALUE}).")
    double noise = 0.05;
    @Option(names = "--tolerance", description = "Mean pushes per local day a user tolerates (default: ${DEFAULT-VALUE}).")
    double tolerance = 2;
    @Option(names = "--test-percent", description = "The horse race's test share, percent (default: ${DEFAULT-VALUE}).")
    double testPercent = 10;
    @Option(names = "--out", description = "Write the results as JSON here.")
    Path out;
    @Option(names = "--chart", description = "Draw blanket vs herald (averages over the runs) into this PNG.")
    Path chart;
    @Option(names = "--race-only", description = "Only the horse race: herald's offer, stopped at its decision "
            + "(for the accuracy over many runs).")
    boolean raceOnly;

    /** The simulation's knobs (immutable). */
    public record Params(int users, long seed, int variants, double bestGap, double click, double noise, double tolerance,
                         double testPercent) { }

    /** One strategy's figures, from the devices' side (what users did). */
    public record Outcome(String strategy, long population, long sent, long reached, long opened, long clicked,
                          long optedOut, String chosen) {
        public double opensPerThousandSent() {
            return sent == 0 ? 0 : opened * 1000.0 / sent;
        }

        /** Opens per user reached (sent at least one push). */
        public double opensPerUser() {
            return reached == 0 ? 0 : (double) opened / reached;
        }

        /** Opens per member of the population, reached or not: what the app gets from all its users. */
        public double opensPerMember() {
            return population == 0 ? 0 : (double) opened / population;
        }
    }

    /** One population's run: both strategies, and the truly best variant. */
    public record Run(long seed, Outcome blanket, Outcome herald, String trulyBest) {
        /** Herald's opens per member of the population over blanket's (the target's lift: no smaller denominator). */
        public double lift() {
            return blanket.opensPerMember() == 0 ? 0 : herald.opensPerMember() / blanket.opensPerMember();
        }

        /** Herald's opens per user reached over blanket's (targeting also shrinks the denominator). */
        public double liftPerReached() {
            return blanket.opensPerUser() == 0 ? 0 : herald.opensPerUser() / blanket.opensPerUser();
        }

        public boolean raceRight() {
            return trulyBest.equals(herald.chosen());
        }
    }

    @Override
    public Integer call() throws Exception {
        Params p = new Params(users, seed, variants, bestGap, click, noise, tolerance, testPercent);
        List<Run> all = new ArrayList<>();
        if (raceOnly) {
            int right = 0;
            ArrayNode rows = JSON.createArrayNode();
            for (int r = 0; r < runs; r++) {
                Params one = new Params(users, seed + r, variants, bestGap, click, noise, tolerance, testPercent);
                Population pop = Population.generate(one);
                Outcome o = new Strategy(pop, one, true, true).run();
                boolean ok = ("o" + pop.best).equals(o.chosen());
                right += ok ? 1 : 0;
                rows.addObject().put("seed", one.seed()).put("chosen", o.chosen()).put("trulyBest", "o" + pop.best)
                        .put("right", ok);
                System.out.printf(Locale.ROOT, "seed %d: race chose %s, truly best o%d (%s); %d of %d right so far%n",
                        one.seed(), o.chosen(), pop.best, ok ? "right" : "wrong", right, r + 1);
            }
            if (out != null) {
                Files.writeString(out, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(JSON.createObjectNode()
                        .<ObjectNode>set("params", JSON.valueToTree(p)).put("right", right).put("runs", runs)
                        .set("rows", rows)));
            }
            boolean pass = right >= 0.95 * runs;
            System.out.printf(Locale.ROOT, "summary: the horse race picked the truly best copy in %d of %d runs (%.1f%%)%n%s%n",
                    right, runs, 100.0 * right / runs, pass ? "PASS" : "FAIL: target >= 95%");
            return pass ? 0 : 1;
        }
        for (int r = 0; r < runs; r++) {
            Run run = run(new Params(users, seed + r, variants, bestGap, click, noise, tolerance, testPercent));
            all.add(run);
            System.out.println(row(run));
        }
        double lift = all.stream().mapToDouble(Run::lift).average().orElse(0);
        long right = all.stream().filter(Run::raceRight).count();
        long blanketOut = all.stream().mapToLong(r -> r.blanket().optedOut()).sum();
        long heraldOut = all.stream().mapToLong(r -> r.herald().optedOut()).sum();
        double liftReached = all.stream().mapToDouble(Run::liftPerReached).average().orElse(0);
        System.out.printf(Locale.ROOT, "summary: %d runs of %d users: lift %.2fx opens per member (%.2fx per user "
                        + "reached); horse race right %d of %d (%.1f%%); opt-outs blanket %d vs herald %d%n", runs, users,
                lift, liftReached, right, runs, 100.0 * right / runs, blanketOut, heraldOut);
        if (out != null) {
            ObjectNode o = JSON.createObjectNode();
            o.set("params", JSON.valueToTree(p));
            o.set("runs", JSON.valueToTree(all));
            o.put("lift", lift).put("liftPerReached", liftReached).put("raceRight", right).put("optOutsBlanket", blanketOut).put("optOutsHerald", heraldOut);
            Files.writeString(out, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(o));
        }
        if (chart != null) {
            chart(all, chart);
        }
        boolean pass = lift >= 2 && heraldOut < blanketOut && (runs < 40 || right >= 0.95 * runs);
        System.out.println(pass ? "PASS" : "FAIL: targets are lift >= 2x, fewer opt-outs, race right >= 95% of 40+ runs");
        return pass ? 0 : 1;
    }

    /** Blanket vs herald side by side: opens per 1,000 sent, per 100 users reached, per 100 members; opt-outs per 1,000 members. */
    static void chart(List<Run> all, Path png) throws java.io.IOException {
        org.knowm.xchart.CategoryChart c = new org.knowm.xchart.CategoryChartBuilder().width(900).height(500)
                .title("Blanket vs Herald on the same population (" + all.size() + " run" + (all.size() == 1 ? "" : "s")
                        + ", averages)").yAxisTitle("per 1,000 / per 100").build();
        c.getStyler().setChartBackgroundColor(java.awt.Color.WHITE).setLegendPosition(
                org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        List<String> x = List.of("opens per 1,000 sent", "opens per 100 users reached", "opens per 100 members",
                "opt-outs per 1,000 members");
        for (boolean h : new boolean[] {false, true}) {
            double[] y = new double[4];
            for (Run r : all) {
                Outcome o = h ? r.herald() : r.blanket();
                y[0] += o.opensPerThousandSent() / all.size();
                y[1] += o.opensPerUser() * 100 / all.size();
                y[2] += o.opensPerMember() * 100 / all.size();
                y[3] += (o.population() == 0 ? 0 : o.optedOut() * 1000.0 / o.population()) / all.size();
            }
            c.addSeries(h ? "herald" : "blanket", x, List.of(y[0], y[1], y[2], y[3]));
        }
        org.knowm.xchart.BitmapEncoder.saveBitmap(c, png.toString(), org.knowm.xchart.BitmapEncoder.BitmapFormat.PNG);
    }

    static String row(Run r) {
        return String.format(Locale.ROOT, "seed %d: blanket sent %d, reached %d, opens %d (per 1000 sent %.1f, per user "
                        + "reached %.3f, per member %.3f), clicks %d, opt-outs %d | herald sent %d, reached %d, opens %d (per "
                        + "1000 sent %.1f, per user reached %.3f, per member %.3f), clicks %d, opt-outs %d | lift per member "
                        + "%.2fx, per user reached %.2fx | race chose %s, truly best %s", r.seed(), r.blanket().sent(),
                r.blanket().reached(), r.blanket().opened(), r.blanket().opensPerThousandSent(), r.blanket().opensPerUser(),
                r.blanket().opensPerMember(), r.blanket().clicked(), r.blanket().optedOut(), r.herald().sent(),
                r.herald().reached(), r.herald().opened(), r.herald().opensPerThousandSent(), r.herald().opensPerUser(),
                r.herald().opensPerMember(), r.herald().clicked(), r.herald().optedOut(), r.lift(), r.liftPerReached(),
                r.herald().chosen(), r.trulyBest());
    }

    /** Generates the population of {@code p.seed()} and runs both strategies on it. */
    public static Run run(Params p) throws Exception {
        Population pop = Population.generate(p);
        Outcome blanket = new Strategy(pop, p, false, false).run();
        Outcome herald = new Strategy(pop, p, true, false).run();
        return new Run(p.seed(), blanket, herald, "o" + pop.best);
    }

    /** A user's hidden traits. */
    record User(String id, int crowd, String taggedCrowd, ZoneId zone, int hour, int tolerance, List<String> tags) { }

    /** The generated population: users and the copies' click multipliers (index {@code best} is the truly best). */
    static final class Population {
        final List<User> users = new ArrayList<>();
        final double[] clickFactor;
        final int best;

        private Population(double[] clickFactor, int best) {
            this.clickFactor = clickFactor;
            this.best = best;
        }

        static Population generate(Params p) {
            SplittableRandom rnd = new SplittableRandom(p.seed());
            // The copies: the runner-up at 1, the others below it, the best bestGap above; which index is best is random.
            double[] f = new double[p.variants()];
            int best = rnd.nextInt(p.variants());
            int runnerUp = (best + 1 + rnd.nextInt(p.variants() - 1)) % p.variants();
            for (int v = 0; v < f.length; v++) {
                f[v] = v == best ? p.bestGap() : v == runnerUp ? 1.0 : 0.6 + 0.3 * rnd.nextDouble();
            }
            Population pop = new Population(f, best);
            for (int i = 0; i < p.users(); i++) {
                double x = rnd.nextDouble();
                int crowd = 0;
                for (double acc = CROWD_SHARE[0]; x >= acc && crowd < 3; acc += CROWD_SHARE[++crowd]) {
                    // pick the crowd
                }
                String tagged = rnd.nextDouble() < p.noise() ? CROWDS[rnd.nextInt(4)] : CROWDS[crowd];
                double h = rnd.nextDouble();
                int hour = (h < 0.3 ? 7 + rnd.nextInt(3) : h < 0.6 ? 12 + rnd.nextInt(2) : 19 + rnd.nextInt(4));
                int tol = Math.max(1, (int) Math.round(p.tolerance() + rnd.nextGaussian() * 0.7));
                List<String> tags = new ArrayList<>();
                tags.add(tagged);
                for (int n = 0; n < 5; n++) {
                    if (rnd.nextDouble() < 0.3) {
                        tags.add("noise" + n);
                    }
                }
                pop.users.add(new User("u-" + i, crowd, tagged, ZoneId.of(ZONES[rnd.nextInt(ZONES.length)]), hour, tol,
                        tags));
            }
            return pop;
        }
    }

    /** A clock the simulation moves (thread-safe: volatile). */
    static final class SimClock extends Clock {
        private volatile long now;

        SimClock(long now) {
            this.now = now;
        }

        void advance(Duration d) {
            now += d.toMillis();
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return Instant.ofEpochMilli(now);
        }

        @Override
        public long millis() {
            return now;
        }
    }

    /** A device-side reaction due at {@code at}: a receipt (opened, clicked, opted_out) or a consent withdrawal. */
    private record Reaction(long at, String kind, String messageId, String token, String user) { }

    /** One strategy on one population: a gateway of its own, the device model, the figures. */
    static final class Strategy {
        private static final Duration STEP = Duration.ofMinutes(15);
        private final Population pop;
        private final Params p;
        private final boolean herald;
        private final Map<String, User> byId = new HashMap<>();
        private final SplittableRandom rnd;
        private final PriorityQueue<Reaction> due = new PriorityQueue<>((a, b) -> Long.compare(a.at, b.at));
        private final Map<String, Integer> perDay = new HashMap<>();
        private final Set<String> optedOut = new java.util.HashSet<>();
        private final Set<String> reached = new java.util.HashSet<>();
        private long sent;
        private long opened;
        private long clicked;
        private Herald gateway;
        private SimClock clock;
        private HttpJson http;

        private final boolean raceOnly;

        Strategy(Population pop, Params p, boolean herald, boolean raceOnly) {
            this.pop = pop;
            this.p = p;
            this.herald = herald;
            this.raceOnly = raceOnly;
            this.rnd = new SplittableRandom(p.seed() * 31 + (herald ? 1 : 2));
            pop.users.forEach(u -> byId.put(u.id(), u));
        }

        Outcome run() throws Exception {
            Path dir = Files.createTempDirectory("herald-sim");
            // The simulated days lie in the recent past: receipts and events must not be in the future.
            long start = LocalDate.now(ZoneOffset.UTC).minusDays(4).atStartOfDay(ZoneOffset.UTC).toInstant().toEpochMilli();
            clock = new SimClock(start);
            ExecutorService pool = Executors.newFixedThreadPool(4, Scenarios.daemon("sim-http"));
            try (EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"))) {
                String key = "sim-" + UUID.randomUUID();
                String hocon = "herald { node-id = \"sim\", data-dir = \"" + dir.resolve("data") + "\"\n"
                        + "http.port = 0\nredis.url = \"" + redis.uri() + "\"\nsandbox = true\nsandbox-record-ids = true\n"
                        + "scheduler.campaign-tick = 1h\n"
                        + "receipts { rate-per-source = 1000000, burst-per-source = 1000000 }\n"
                        + "apps.\"" + APP + "\" { rate-limit { rate = 1000000, period = 1s, burst = 1000000 } }\n}";
                HeraldConfig config = HeraldConfig.fromConfig(ConfigFactory.parseString(hocon)
                        .withFallback(ConfigFactory.defaultReference()).resolve(),
                        List.of(new HeraldConfig.InitialKey(APP, key, Set.of("send", "manage", "approve", "read", "admin"))));
                gateway = Herald.start(config, clock);
                try {
                    http = new HttpJson(gateway.baseUrl(), key, pool);
                    setUp();
                    String offer = campaigns();
                    // Two days and a tail for late reactions; a race alone stops just after its decision.
                    long end = start + Duration.ofHours(raceOnly ? 28 : 60).toMillis();
                    while (clock.millis() < end) {
                        step();
                        clock.advance(STEP);
                    }
                    step();
                    String chosen = null;
                    if (herald) {
                        JsonNode d = http.call("GET", "/v1/apps/" + APP + "/campaigns/" + offer + "/report", null)
                                .path("experiment").path("decision");
                        chosen = d.path("chosen").isTextual() ? d.get("chosen").asText() : null;
                    }
                    return new Outcome(herald ? "herald" : "blanket", pop.users.size(), sent, reached.size(), opened,
                            clicked, optedOut.size(), chosen);
                } finally {
                    gateway.halt();
                }
            } finally {
                pool.shutdownNow();
                Scenarios.deleteTree(dir);
            }
        }

        /** Templates, the policy (herald), the users and their simulated past. */
        private void setUp() throws Exception {
            for (int v = 0; v < p.variants(); v++) {
                http.ok("POST", "/v1/apps/" + APP + "/templates", "{\"id\":\"o" + v + "\",\"name\":\"offer " + v
                        + "\",\"defaultLocale\":\"en\",\"locales\":{\"en\":{\"push\":{\"title\":\"Offer\",\"body\":\"[o"
                        + v + "] for {{user.id}}\"}}}}");
            }
            http.ok("POST", "/v1/apps/" + APP + "/templates", "{\"id\":\"news\",\"name\":\"news\",\"defaultLocale\":\"en\","
                    + "\"locales\":{\"en\":{\"push\":{\"title\":\"News\",\"body\":\"[news] for {{user.id}}\"}}}}");
            if (herald) {
                http.ok("PUT", "/v1/apps/" + APP + "/policy", "{\"caps\":[{\"id\":\"daily\",\"limit\":1,\"window\":\"day\"}],"
                        + "\"quietHours\":{\"start\":\"22:00\",\"end\":\"08:00\"}}");
            }
            List<User> us = pop.users;
            for (int from = 0; from < us.size(); from += 5000) {
                ArrayNode arr = JSON.createArrayNode();
                for (User u : us.subList(from, Math.min(us.size(), from + 5000))) {
                    ObjectNode o = arr.addObject().put("user", u.id()).put("timeZone", u.zone().getId());
                    ArrayNode tags = o.putArray("tags");
                    u.tags().forEach(tags::add);
                    o.putArray("devices").addObject().put("id", "phone").put("platform", "apns")
                            .put("token", token(u));
                }
                http.ok("POST", "/v1/apps/" + APP + "/users", JSON.createObjectNode().set("users", arr).toString());
            }
            // The simulated past: app opens at (about) each user's habitual hour over the last 14 days.
            ArrayNode events = JSON.createArrayNode();
            SplittableRandom past = new SplittableRandom(p.seed() * 7);
            for (User u : us) {
                for (int k = 0; k < PAST_OPENS[u.crowd()]; k++) {
                    LocalDate day = Instant.ofEpochMilli(clock.millis()).atZone(u.zone()).toLocalDate()
                            .minusDays(1 + past.nextInt(14));
                    long at = ZonedDateTime.of(day.atTime(u.hour(), 0), u.zone()).toInstant().toEpochMilli()
                            + (long) (past.nextGaussian() * 20 * 60_000);
                    events.addObject().put("user", u.id()).put("name", "app_open").put("at", at);
                    if (events.size() == 10_000) {
                        http.ok("POST", "/v1/apps/" + APP + "/events", JSON.createObjectNode().set("events", events).toString());
                        events = JSON.createArrayNode();
                    }
                }
            }
            if (!events.isEmpty()) {
                http.ok("POST", "/v1/apps/" + APP + "/events", JSON.createObjectNode().set("events", events).toString());
            }
        }

        /** Creates and approves the strategy's two campaigns; returns the offer's id. */
        private String campaigns() throws Exception {
            String approver = http.ok("POST", "/v1/apps/" + APP + "/keys", "{\"roles\":[\"approve\",\"read\"]}")
                    .get("key").asText();
            String offer;
            String news;
            LocalDate day = Instant.ofEpochMilli(clock.millis()).atZone(ZoneOffset.UTC).toLocalDate();
            if (herald) {
                StringBuilder vs = new StringBuilder();
                for (int v = 0; v < p.variants(); v++) {
                    vs.append(v == 0 ? "" : ",").append("{\"id\":\"o").append(v).append("\",\"template\":\"o").append(v)
                            .append("\"}");
                }
                offer = "{\"name\":\"offer\",\"audience\":{\"rule\":\"tag:newbie OR tag:active\"},\"content\":{\"variants\":["
                        + vs + "]},\"priority\":8,\"category\":\"promo\",\"schedule\":{\"type\":\"best_hour\"},"
                        + "\"experiment\":{\"testPercent\":" + p.testPercent() + ",\"metric\":\"click\",\"decideAfter\":"
                        + "\"2h\",\"minPerVariant\":20,\"noWinner\":\"send_best\"}}";
                news = "{\"name\":\"news\",\"audience\":{\"rule\":\"tag:newbie OR tag:active\"},\"content\":{\"template\":"
                        + "\"news\"},\"priority\":3,\"category\":\"news\",\"schedule\":{\"type\":\"best_hour\"}}";
            } else {
                offer = "{\"name\":\"offer\",\"audience\":{\"rule\":\"tag:newbie OR tag:active OR tag:silent OR tag:churned\"},"
                        + "\"content\":{\"template\":\"o0\"},\"guards\":[],\"schedule\":{\"type\":\"at\",\"at\":\""
                        + day + "T09:00:00Z\"}}";
                news = "{\"name\":\"news\",\"audience\":{\"rule\":\"tag:newbie OR tag:active OR tag:silent OR tag:churned\"},"
                        + "\"content\":{\"template\":\"news\"},\"guards\":[],\"schedule\":{\"type\":\"at\",\"at\":\""
                        + day + "T18:00:00Z\"}}";
            }
            String offerId = approve(offer, approver);
            if (!raceOnly) {
                approve(news, approver);
            }
            return offerId;
        }

        private String approve(String body, String approver) throws Exception {
            String id = http.ok("POST", "/v1/apps/" + APP + "/campaigns", body).get("id").asText();
            http.ok("POST", "/v1/apps/" + APP + "/campaigns/" + id + "/submit", "");
            http.ok("POST", "/v1/apps/" + APP + "/campaigns/" + id + "/approve", "", approver);
            return id;
        }

        /** One step of simulated time: feed, release what is due, let it settle, let devices react. */
        private void step() throws Exception {
            for (int round = 0; round < 100; round++) {
                boolean more = false;
                while (gateway.campaignLauncher().tick()) {
                    more = true;
                }
                more |= gateway.scheduler().tick() > 0;
                settle();
                if (!more) {
                    break;
                }
            }
            SandboxApns apns = gateway.sandbox();
            long now = clock.millis();
            for (UUID id : apns.takeArrivals()) {
                arrived(apns.payload(id), now);
            }
            List<String> receipts = new ArrayList<>();
            while (!due.isEmpty() && due.peek().at() <= clock.millis()) {
                Reaction r = due.poll();
                if (r.kind().equals("consent")) {
                    http.ok("PUT", "/v1/apps/" + APP + "/users/" + r.user(), "{\"consent\":{\"push\":\"opted_out\"}}");
                    continue;
                }
                receipts.add("{\"messageId\":\"" + r.messageId() + "\",\"event\":\"" + r.kind() + "\",\"token\":\""
                        + r.token() + "\",\"at\":" + r.at() + "}");
                if (receipts.size() == 1000) {
                    post(receipts);
                }
            }
            post(receipts);
        }

        private void post(List<String> receipts) throws Exception {
            if (!receipts.isEmpty()) {
                http.call("POST", "/v1/receipts", "{\"receipts\":[" + String.join(",", receipts) + "]}", null);
                receipts.clear();
            }
        }

        /** Waits (up to a minute) until nothing is in the pipeline: every message fed or released has its outcome. */
        private void settle() throws InterruptedException {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (gateway.pipeline().inUse() > 0 && System.nanoTime() < until) {
                TimeUnit.MILLISECONDS.sleep(2); // polling a condition, bounded; not a timing assumption
            }
        }

        /** The device model: a push arrives at {@code at}; the user may open, click, or opt out. */
        private void arrived(String payload, long at) throws Exception {
            Matcher m = COPY.matcher(String.valueOf(payload));
            if (!m.find()) {
                return;
            }
            User u = byId.get(m.group(3));
            JsonNode h = JSON.readTree(payload).get("herald");
            String id = h.get("id").asText();
            String token = h.get("t").asText();
            sent++;
            reached.add(u.id());
            if (optedOut.contains(u.id())) {
                return; // pushes turned off: nothing shows
            }
            ZonedDateTime local = Instant.ofEpochMilli(at).atZone(u.zone());
            int today = perDay.merge(u.id() + "@" + local.toLocalDate(), 1, Integer::sum);
            int hour = local.getHour();
            int d = Math.abs(hour - u.hour());
            d = Math.min(d, 24 - d);
            double hourFactor = 0.2 + 0.8 * Math.exp(-(d * d) / (2 * 1.5 * 1.5));
            boolean night = hour >= 22 || hour < 7;
            double optOut = OPT_OUT_BASE[u.crowd()] * (night ? 3 : 1);
            if (today > u.tolerance() && rnd.nextDouble() < 0.5 || rnd.nextDouble() < optOut) {
                optedOut.add(u.id());
                long when = at + (1 + rnd.nextInt(30)) * 60_000L;
                due.add(new Reaction(when, "opted_out", id, token, u.id()));
                due.add(new Reaction(when + 1, "consent", id, token, u.id()));
                return;
            }
            if (rnd.nextDouble() < OPEN_AT_BEST[u.crowd()] * hourFactor) {
                opened++;
                long openAt = at + (long) (-Math.log(1 - rnd.nextDouble()) * 15 * 60_000);
                due.add(new Reaction(openAt, "opened", id, token, u.id()));
                double factor = m.group(2) == null ? 1.0 : pop.clickFactor[Integer.parseInt(m.group(2))];
                if (rnd.nextDouble() < Math.min(1, p.click() * factor)) {
                    clicked++;
                    due.add(new Reaction(openAt + (1 + rnd.nextInt(5)) * 60_000L, "clicked", id, token, u.id()));
                }
            }
        }

        private static String token(User u) {
            // A stable, valid-looking APNs token per user (64 hex digits).
            String h = Long.toHexString(u.id().hashCode() & 0xffffffffL);
            StringBuilder b = new StringBuilder();
            while (b.length() < 64) {
                b.append(h).append(Integer.toHexString(b.length()));
            }
            return b.substring(0, 64);
        }
    }

    /** A small JSON-over-HTTP client for the in-process gateway (loopback only). */
    static final class HttpJson {
        private final HeraldClient client;
        private final String key;

        HttpJson(String baseUrl, String key, ExecutorService pool) {
            this.client = HeraldClient.create(baseUrl, key, Duration.ofSeconds(60), pool, JSON);
            this.key = key;
        }

        JsonNode call(String method, String path, String body, String as) throws Exception {
            HeraldClient.Response r = client.call(method, path, body, as).get(120, TimeUnit.SECONDS);
            return r.json() == null ? JSON.createObjectNode() : r.json();
        }

        JsonNode call(String method, String path, String body) throws Exception {
            return call(method, path, body, key);
        }

        JsonNode ok(String method, String path, String body) throws Exception {
            return ok(method, path, body, key);
        }

        JsonNode ok(String method, String path, String body, String as) throws Exception {
            HeraldClient.Response r = client.call(method, path, body, as).get(120, TimeUnit.SECONDS);
            if (r.status() / 100 != 2) {
                throw new IllegalStateException(method + " " + path + ": " + r.status() + " " + r.snippet());
            }
            return r.json() == null ? JSON.createObjectNode() : r.json();
        }
    }
}
