package io.herald.loadtest;

import com.fasterxml.jackson.databind.ObjectMapper;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * The load test's scenarios, as picocli commands sharing {@link Shape} (how much, how fast) and
 * {@link Setup} (what to start): {@link Gateway} (HTTP batches -> gateway -> peers),
 * {@link RawApns} (Pushy straight to the APNs peer: the ceiling of the APNs leg) and
 * {@link Compare} (both alternately, several rounds, with each ratio and their median).
 *
 * <p>Each command owns what it starts ({@link Stack}) and releases it before returning. Exit
 * status: 0 every run passed (its total-queue check included), 1 a run ran but failed, 2 it could
 * not be set up. Results go to {@code --out} (a directory: {@code result.json}, {@code *.hgrm},
 * {@code report.png}).
 */
final class Scenarios {
    private Scenarios() {
    }

    /** How much and how fast: shared by every scenario. */
    static final class Shape {
        @Option(names = "--messages", description = "Measured messages per run. Default: ${DEFAULT-VALUE}")
        long messages = 200_000;

        @Option(names = "--warmup", description = "Messages sent first in every run and left out of the figures "
                + "(JIT warm-up). Default: ${DEFAULT-VALUE}")
        long warmup = 50_000;

        @Option(names = "--rate", description = "Open loop at this many messages/s, latency from the intended "
                + "send time; or 'max': as fast as the requests in flight allow. Default: ${DEFAULT-VALUE}")
        String rate = "max";

        @Option(names = "--duration", description = "Seconds of measured load at --rate N (sets --messages to "
                + "rate x duration).")
        Long duration;

        @Option(names = "--users", description = "Users (one device each). Default: ${DEFAULT-VALUE}")
        int users = 1000;

        @Option(names = "--timeout", description = "Bound on one run, seconds. Default: ${DEFAULT-VALUE}")
        long timeoutSeconds = 900;

        @Option(names = "--drain-timeout", description = "After the last request is answered, how long to wait "
                + "for acknowledged messages to arrive, seconds. Default: ${DEFAULT-VALUE}")
        long drainSeconds = 120;

        @Option(names = "--out", description = "Result directory. Default: ${DEFAULT-VALUE}")
        Path out = Path.of("loadtest-out");

        double rate(picocli.CommandLine cl) {
            if (rate.equals("max")) {
                return 0;
            }
            try {
                double r = Double.parseDouble(rate);
                if (r > 0) {
                    return r;
                }
            } catch (NumberFormatException e) {
                // below
            }
            throw new ParameterException(cl, "--rate: '" + rate + "' (expected: max or messages/s > 0)");
        }

        long measured(picocli.CommandLine cl) {
            double r = rate(cl);
            if (duration != null) {
                if (r == 0) {
                    throw new ParameterException(cl, "--duration needs --rate N (open loop)");
                }
                return (long) (r * duration);
            }
            if (messages <= 0 || warmup < 0 || users <= 0 || timeoutSeconds <= 0) {
                throw new ParameterException(cl, "--messages, --users and --timeout must be > 0, --warmup >= 0");
            }
            return messages;
        }

        String describe(picocli.CommandLine cl) {
            return rate(cl) == 0 ? "max" : "open loop " + rate + "/s";
        }
    }

    /** What to start: the gateway's jar, heap and capacity, Redis. */
    static final class Setup {
        @Option(names = "--gateway-jar", description = "Gateway shaded jar. Default: ${DEFAULT-VALUE}")
        Path gatewayJar = Path.of("gateway/target/herald-gateway-0.1.0-SNAPSHOT-all.jar");

        @Option(names = "--gateway-heap", description = "-Xmx of the gateway. Default: ${DEFAULT-VALUE}")
        String gatewayHeap = "512m";

        @Option(names = "--capacity", description = "herald.pipeline.capacity of the gateway. Default: ${DEFAULT-VALUE}")
        int capacity = 32_768;

        @Option(names = "--gateway-config", description = "Extra HOCON lines inside herald { } of the gateway's "
                + "config (e.g. 'apns { connections = 2 }').")
        String extraConfig;

        @Option(names = "--gateway-jvm", split = " ", description = "Extra JVM options of the gateway, e.g. "
                + "'-XX:StartFlightRecording=filename=gw.jfr'.")
        List<String> gatewayJvm = List.of();

        @Option(names = "--redis-url", description = "Use this Redis instead of starting one (loopback); "
                + "with --url, the gateway's Redis, read for the Redis figures.")
        String redisUrl;

        @Option(names = "--app", description = "App to send as. Default: ${DEFAULT-VALUE}")
        String app = "load";

        @Option(names = "--nodes", description = "Gateway nodes (processes) on the one Redis; batches go to them "
                + "in turn. Default: ${DEFAULT-VALUE}")
        int nodes = 1;

        @Option(names = "--redis", description = "standalone (one redis-server) or cluster (a local Redis Cluster "
                + "of 3 masters). Default: ${DEFAULT-VALUE}")
        String redis = "standalone";

        /** True for {@code --redis cluster}; a ParameterException for anything but the two values. */
        boolean cluster(picocli.CommandLine cl) {
            if (nodes < 1) {
                throw new ParameterException(cl, "--nodes must be >= 1");
            }
            return switch (redis) {
                case "standalone" -> false;
                case "cluster" -> {
                    if (redisUrl != null) {
                        throw new ParameterException(cl, "--redis cluster starts its own cluster: leave out --redis-url");
                    }
                    yield true;
                }
                default -> throw new ParameterException(cl, "--redis: '" + redis + "' (expected: standalone or cluster)");
            };
        }

        @Option(names = "--keep-data", description = "Keep the run directory (configs, data, logs) after a passing run.")
        boolean keepData;
    }

    /** Raw-run options: Pushy's connections and notifications in flight. */
    static final class Raw {
        @Option(names = "--in-flight", description = "Raw: notifications in flight. Default: ${DEFAULT-VALUE}")
        int inFlight = 100;

        @Option(names = "--connections", description = "Raw: HTTP/2 connections. Default: ${DEFAULT-VALUE}")
        int connections = 1;
    }

    /** Gateway-run options. */
    static final class Batches {
        @Option(names = "--batch-size", description = "Messages per POST /v1/batches. Default: ${DEFAULT-VALUE}")
        int batchSize = 1000;

        @Option(names = "--concurrency", description = "Batches in flight (the bound in open loop too). "
                + "Default: ${DEFAULT-VALUE}")
        int concurrency = 4;

        @Option(names = "--mix", description = "Channel mix, e.g. apns or apns:8,fcm:1,sms:1. Default: ${DEFAULT-VALUE}")
        String mix = "apns";

        @Option(names = "--message-class", description = "Delivery-policy class of every message (system, "
                + "transactional, marketing). Default: none (the app's default class)")
        String messageClass;

        @Option(names = "--policy", description = "A JSON file with the app's delivery policy, PUT before the runs, "
                + "e.g. two caps and quiet hours that do not bind, to measure what the policy costs.")
        String policy;

        String[] pattern(picocli.CommandLine cl) {
            List<String> out = new ArrayList<>();
            for (String part : mix.split(",")) {
                String[] kv = part.trim().split(":");
                try {
                    PeerMain.Kind.valueOf(kv[0]);
                    int w = kv.length > 1 ? Integer.parseInt(kv[1]) : 1;
                    if (w < 0 || w > 100) {
                        throw new NumberFormatException();
                    }
                    for (int i = 0; i < w; i++) {
                        out.add(kv[0]);
                    }
                } catch (IllegalArgumentException e) {
                    throw new ParameterException(cl, "--mix: '" + part + "' (expected: apns|fcm|sms[:weight 0..100])");
                }
            }
            if (out.isEmpty()) {
                throw new ParameterException(cl, "--mix: '" + mix + "' has no channel with a weight > 0");
            }
            return out.toArray(new String[0]);
        }

        Set<PeerMain.Kind> kinds(picocli.CommandLine cl) {
            Set<PeerMain.Kind> k = EnumSet.noneOf(PeerMain.Kind.class);
            for (String c : pattern(cl)) {
                k.add(PeerMain.Kind.valueOf(c));
            }
            return k;
        }
    }

    // ---- commands --------------------------------------------------------------------------------

    /** {@code gateway}: HTTP batches -> gateway -> peers. */
    @Command(name = "gateway", mixinStandardHelpOptions = true,
            description = "HTTP batches into a gateway started here (or --url), delivered to peers in their own "
                    + "processes; throughput, latency, the gateway's CPU and memory, and the total-queue check.")
    static final class Gateway implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;
        @Mixin
        Shape shape = new Shape();
        @Mixin
        Setup setup = new Setup();
        @Mixin
        Batches batches = new Batches();

        @Option(names = "--url", description = "A running gateway (loopback only) instead of starting one; needs "
                + "--api-key and --report.")
        String url;

        @Option(names = "--api-key", description = "Key of --app on the gateway given with --url.")
        String apiKey;

        @Option(names = "--report", split = ",", description = "With --url: report ports of the peers the "
                + "gateway delivers to (started with 'loadtest peer'), e.g. 40001,40002.")
        List<Integer> reportPorts;

        @Override
        public Integer call() throws Exception {
            picocli.CommandLine cl = spec.commandLine();
            long measured = shape.measured(cl);
            String[] mix = batches.pattern(cl);
            if (url != null && (apiKey == null || reportPorts == null)) {
                throw new ParameterException(cl, "--url needs --api-key and --report (peer report ports)");
            }
            if (batches.batchSize < 1 || batches.batchSize > 10_000 || batches.concurrency < 1) {
                throw new ParameterException(cl, "--batch-size must be 1..10000 and --concurrency > 0");
            }
            boolean cluster = setup.cluster(cl);
            if (url != null && (setup.nodes > 1 || cluster)) {
                throw new ParameterException(cl, "--nodes and --redis cluster start their own gateways: leave out --url");
            }
            return withStack(setup, shape, url == null ? batches.kinds(cl) : Set.of(), url == null, stack -> {
                if (url != null) {
                    stack.connectReports(reportPorts);
                }
                Harness h = new Harness(stack, shape, setup, url != null ? List.of(HeraldClient.requireLoopback(url)
                        .toString()) : stack.baseUrls(), url != null ? apiKey : stack.apiKey);
                h.redisFigures = true;
                h.register(batches.kinds(cl));
                h.policy(batches.policy);
                Report.Run r = h.gatewayRun(1, measured, shape.rate(cl), batches, mix, cl);
                return h.finish("gateway", List.of(r), null, cl);
            });
        }
    }

    /** {@code raw-apns}: Pushy straight to the APNs peer. */
    @Command(name = "raw-apns", mixinStandardHelpOptions = true,
            description = "Pushy straight to the APNs peer in its own process: the ceiling of the APNs leg here.")
    static final class RawApns implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;
        @Mixin
        Shape shape = new Shape();
        @Mixin
        Setup setup = new Setup();
        @Mixin
        Raw raw = new Raw();

        @Override
        public Integer call() throws Exception {
            picocli.CommandLine cl = spec.commandLine();
            long measured = shape.measured(cl);
            return withStack(setup, shape, Set.of(PeerMain.Kind.apns), false, stack -> {
                Harness h = new Harness(stack, shape, setup, (String) null, null);
                Report.Run r = h.rawRun(1, measured, shape.rate(cl), raw.inFlight, raw.connections, cl);
                return h.finish("raw-apns", List.of(r), null, cl);
            });
        }
    }

    /** {@code compare}: raw and gateway alternately, the ratio of each round and their median. */
    @Command(name = "compare", mixinStandardHelpOptions = true,
            description = "Runs raw-apns and gateway alternately --rounds times against the same peer and prints "
                    + "gateway/raw throughput per round and the median.")
    static final class Compare implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;
        @Mixin
        Shape shape = new Shape();
        @Mixin
        Setup setup = new Setup();
        @Mixin
        Batches batches = new Batches();

        @Mixin
        Raw raw = new Raw();

        @Option(names = "--rounds", description = "Rounds (raw then gateway each). Default: ${DEFAULT-VALUE}")
        int rounds = 3;

        @Override
        public Integer call() throws Exception {
            picocli.CommandLine cl = spec.commandLine();
            long measured = shape.measured(cl);
            if (rounds < 1) {
                throw new ParameterException(cl, "--rounds must be >= 1");
            }
            batches.mix = "apns";
            String[] mix = batches.pattern(cl);
            return withStack(setup, shape, Set.of(PeerMain.Kind.apns), true, stack -> {
                Harness h = new Harness(stack, shape, setup, stack.baseUrl(), stack.apiKey);
                h.redisFigures = true;
                h.register(Set.of(PeerMain.Kind.apns));
                h.policy(batches.policy);
                List<Report.Run> runs = new ArrayList<>();
                List<Double> ratios = new ArrayList<>();
                int run = 0;
                for (int round = 1; round <= rounds; round++) {
                    Report.Run r = h.rawRun(++run, measured, shape.rate(cl), raw.inFlight, raw.connections, cl);
                    Report.Run gw = h.gatewayRun(++run, measured, shape.rate(cl), batches, mix, cl);
                    runs.add(r);
                    runs.add(gw);
                    double ratio = r.deliveredPerSecond() > 0 ? gw.deliveredPerSecond() / r.deliveredPerSecond() : 0;
                    ratios.add(Math.round(ratio * 1000) / 1000.0);
                    System.out.printf(Locale.ROOT, "round %d: raw %,.0f msg/s, gateway %,.0f msg/s, ratio %.3f%s%n",
                            round, r.deliveredPerSecond(), gw.deliveredPerSecond(), ratio, gw.redis() == null ? ""
                                    : String.format(Locale.ROOT, ", Redis writes %.2f/msg (calls %.2f/msg)",
                                    gw.redis().writesPerMessage(), gw.redis().callsPerMessage()));
                }
                return h.finish("compare", runs, ratios, cl);
            });
        }
    }

    /**
     * {@code campaign}: the batch path and a campaign side by side on one stack: {@code --users}
     * users registered (tag {@code crowd}), a gateway run of as many batch messages, then one
     * campaign to all of them; prints each delivered rate, their ratio and the campaign's fan-out
     * rate, with the total-queue check of both.
     */
    @Command(name = "campaign", mixinStandardHelpOptions = true,
            description = "Registers --users users, sends them --users batch messages, then one campaign to all of "
                    + "them, and compares the delivered rates (total-queue check on both).")
    static final class CampaignRun implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;
        @Mixin
        Shape shape = new Shape();
        @Mixin
        Setup setup = new Setup();
        @Mixin
        Batches batches = new Batches();

        @Override
        public Integer call() throws Exception {
            picocli.CommandLine cl = spec.commandLine();
            batches.mix = "apns";
            String[] mix = batches.pattern(cl);
            long measured = shape.measured(cl);
            return withStack(setup, shape, Set.of(PeerMain.Kind.apns), true, stack -> {
                Harness h = new Harness(stack, shape, setup, stack.baseUrl(), stack.apiKey);
                h.campaignCrowd = true;
                h.register(Set.of(PeerMain.Kind.apns));
                Report.Run batch = h.gatewayRun(1, measured, shape.rate(cl), batches, mix, cl);
                Report.Run campaign = h.campaignRun(2, cl);
                double ratio = batch.deliveredPerSecond() > 0 ? campaign.deliveredPerSecond() / batch.deliveredPerSecond() : 0;
                System.out.printf(Locale.ROOT, "batches %,.0f msg/s delivered, campaign %,.0f msg/s delivered: ratio %.3f%n",
                        batch.deliveredPerSecond(), campaign.deliveredPerSecond(), ratio);
                return h.finish("campaign", List.of(batch, campaign), List.of(Math.round(ratio * 1000) / 1000.0), cl);
            });
        }
    }

    /**
     * {@code crash}: load, SIGKILL the gateway at random moments, restart it on the same data and
     * Redis, and run the total-queue check. A batch whose request failed because the gateway was
     * down is retried with the same {@code Idempotency-Key} until it is answered. Passes when no
     * acknowledged message is lost and duplicates stay within {@code --max-duplicates} (messages
     * that were in flight to the peer when the gateway died are sent again after the replay).
     */
    @Command(name = "crash", mixinStandardHelpOptions = true,
            description = "Kill -9 the gateway at random moments under load, restart it, and check that every "
                    + "acknowledged message arrives (duplicates counted).")
    static final class Crash implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;
        @Mixin
        Shape shape = new Shape();
        @Mixin
        Setup setup = new Setup();
        @Mixin
        Batches batches = new Batches();

        @Option(names = "--kills", description = "SIGKILLs per run, at random moments. Default: ${DEFAULT-VALUE}")
        int kills = 3;

        @Option(names = "--runs", description = "Runs, each with its own random kill points. Default: ${DEFAULT-VALUE}")
        int runs = 1;

        @Option(names = "--max-duplicates", description = "Duplicate arrivals tolerated per kill (the in-flight "
                + "window). Default: ${DEFAULT-VALUE}")
        long maxDuplicates = 2_000;

        @Option(names = "--seed", description = "Random seed of the kill points. Default: random")
        Long seed;

        @Option(names = "--never-restart", description = "With --nodes 2 or more: the killed node (the first) stays "
                + "dead and another node takes its journal over once its lease lapses (one kill per run).")
        boolean neverRestart;

        @Option(names = "--campaign", description = "Kill during a campaign's fan-out instead of batch load: each run "
                + "sends one campaign to all --users users (no throttle) and kills at random moments while it fans "
                + "out and delivers; the total-queue check counts each user's copy.")
        boolean campaign;

        @Override
        public Integer call() throws Exception {
            picocli.CommandLine cl = spec.commandLine();
            long measured = shape.measured(cl);
            double rate = shape.rate(cl);
            String[] mix = batches.pattern(cl);
            if (kills < 1 || runs < 1) {
                throw new ParameterException(cl, "--kills and --runs must be >= 1");
            }
            setup.cluster(cl);
            if (neverRestart && (setup.nodes < 2 || kills != 1 || runs != 1)) {
                throw new ParameterException(cl, "--never-restart needs --nodes 2 or more, --kills 1 and --runs 1");
            }
            java.util.Random random = new java.util.Random(seed != null ? seed : System.nanoTime());
            return withStack(setup, shape, batches.kinds(cl), false, stack -> {
                stack.startRedis(setup.redisUrl);
                stack.keepGatewayPort();
                stack.startGateway();
                System.out.printf("gateway pid %d ready on %s%n", stack.gateway().pid(), stack.baseUrl());
                Harness h = new Harness(stack, shape, setup, stack.baseUrls(), stack.apiKey);
                h.campaignCrowd = campaign;
                h.register(batches.kinds(cl));
                h.policy(batches.policy);
                List<Report.Run> all = new ArrayList<>();
                h.passes = r -> r.completed() && r.queue().lost() == 0 && r.queue().unexpected() == 0
                        && r.failedRequests() == 0 && r.rejectedItems() == 0
                        && r.queue().duplicated() <= maxDuplicates * kills;
                long totalKills = 0;
                for (int run = 1; run <= runs; run++) {
                    // Kill window: the expected sending time (open loop), or a first guess at max rate.
                    double seconds = campaign ? shape.users / 4_000.0
                            : rate > 0 ? (shape.warmup + measured) / rate : (shape.warmup + measured) / 3_000.0;
                    long[] at = new long[kills];
                    for (int k = 0; k < kills; k++) {
                        at[k] = (long) ((0.1 + 0.8 * random.nextDouble()) * seconds * 1000);
                    }
                    java.util.Arrays.sort(at);
                    List<String> log = java.util.Collections.synchronizedList(new ArrayList<>());
                    Thread chaos = new Thread(() -> killAt(stack, at, log, neverRestart), "loadtest-chaos");
                    chaos.setDaemon(true);
                    Report.Run r = campaign ? h.campaignRun(run, cl, chaos)
                            : h.gatewayRun(run, measured, rate, batches, mix, cl, chaos);
                    log.forEach(l -> System.out.println("  " + l));
                    long k = log.stream().filter(l -> l.startsWith("killed")).count();
                    totalKills += k;
                    all.add(r);
                }
                int status = h.finish("crash", all, null, h.passes);
                long acked = all.stream().mapToLong(r -> r.queue().acknowledged()).sum();
                long lost = all.stream().mapToLong(r -> r.queue().lost()).sum();
                long dup = all.stream().mapToLong(r -> r.queue().duplicated()).sum();
                long unexpected = all.stream().mapToLong(r -> r.queue().unexpected()).sum();
                System.out.printf(Locale.ROOT, "crash totals over %d run(s), %d kill(s): acknowledged %,d, lost %,d, "
                        + "duplicated %,d, unexpected %,d%n", runs, totalKills, acked, lost, dup, unexpected);
                return status;
            });
        }

        /** Kills at the given offsets from the start of the load, each at least 2 s after the last restart. */
        private static void killAt(Stack stack, long[] atMillis, List<String> log, boolean neverRestart) {
            long start = System.nanoTime();
            long readyAt = start;
            try {
                for (long planned : atMillis) {
                    long at = Math.max(planned, (readyAt - start) / 1_000_000 + 2_000);
                    long wait = at - (System.nanoTime() - start) / 1_000_000;
                    if (wait > 0) {
                        Thread.sleep(wait);
                    }
                    long pid = stack.gateway().pid();
                    stack.killGateway();
                    if (neverRestart) {
                        log.add(String.format(Locale.ROOT, "killed gateway pid %d at %.1f s; not restarted: node 2 "
                                + "takes its journal over", pid, at / 1000.0));
                        return;
                    }
                    long t0 = System.nanoTime();
                    stack.startGateway();
                    readyAt = System.nanoTime();
                    log.add(String.format(Locale.ROOT, "killed gateway pid %d at %.1f s; restarted as pid %d, ready "
                            + "in %.1f s", pid, at / 1000.0, stack.gateway().pid(), (System.nanoTime() - t0) / 1e9));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // the load ended before the next kill point
            } catch (IOException e) {
                log.add("restart failed: " + e.getMessage());
            }
        }
    }

    /**
     * {@code soak}: a long open-loop gateway run (default 10 minutes) that checks the gateway's
     * heap and latency stay flat: the lowest heap sample of the last minute (the live set after a
     * collection, roughly) against that of the first measured minute, and the end-to-end p99 of the
     * last minute against the first.
     */
    @Command(name = "soak", mixinStandardHelpOptions = true,
            description = "Long open-loop run (--rate N --duration S): flat heap and flat latency, or it fails.")
    static final class Soak implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;
        @Mixin
        Shape shape = new Shape();
        @Mixin
        Setup setup = new Setup();
        @Mixin
        Batches batches = new Batches();

        @Option(names = "--max-heap-growth", description = "Allowed growth of the last minute's lowest heap over "
                + "the first's, MiB. Default: ${DEFAULT-VALUE}")
        long maxHeapGrowthMib = 64;

        @Option(names = "--max-p99-growth", description = "Allowed ratio of the last minute's e2e p99 to the "
                + "first's. Default: ${DEFAULT-VALUE}")
        double maxP99Growth = 2.0;

        @Override
        public Integer call() throws Exception {
            picocli.CommandLine cl = spec.commandLine();
            if (shape.rate.equals("max") || shape.duration == null || shape.duration < 180) {
                throw new ParameterException(cl, "soak needs --rate N and --duration >= 180 (seconds)");
            }
            long measured = shape.measured(cl);
            String[] mix = batches.pattern(cl);
            return withStack(setup, shape, batches.kinds(cl), true, stack -> {
                Harness h = new Harness(stack, shape, setup, stack.baseUrl(), stack.apiKey);
                h.register(batches.kinds(cl));
                h.policy(batches.policy);
                Report.Run r = h.gatewayRun(1, measured, shape.rate(cl), batches, mix, cl);
                List<Report.Second> tl = r.timeline();
                int warm = (int) Math.ceil(shape.warmup / shape.rate(cl));
                int last = tl.size() - 1;
                long firstHeap = minHeap(tl, warm, warm + 60);
                long lastHeap = minHeap(tl, last - 60, last);
                double firstP99 = maxP99(tl, warm, warm + 60);
                double lastP99 = maxP99(tl, last - 60, last);
                boolean heapFlat = firstHeap > 0 && lastHeap - firstHeap <= maxHeapGrowthMib * 1_048_576L;
                boolean latencyFlat = firstP99 > 0 && lastP99 <= Math.max(firstP99 * maxP99Growth, firstP99 + 20);
                System.out.printf(Locale.ROOT, "soak: lowest heap first minute %s, last minute %s (%s); worst "
                                + "per-second e2e p99 first minute %.1f ms, last minute %.1f ms (%s)%n",
                        Report.mib(firstHeap), Report.mib(lastHeap), heapFlat ? "flat" : "GROWING", firstP99, lastP99,
                        latencyFlat ? "flat" : "GROWING");
                return h.finish("soak", List.of(r), null, run -> run.ok() && heapFlat && latencyFlat);
            });
        }

        private static long minHeap(List<Report.Second> tl, int from, int to) {
            return tl.subList(Math.max(0, from), Math.max(0, Math.min(tl.size(), to))).stream()
                    .filter(s -> s.heapBytes() != null).mapToLong(Report.Second::heapBytes).min().orElse(-1);
        }

        private static double maxP99(List<Report.Second> tl, int from, int to) {
            return tl.subList(Math.max(0, from), Math.max(0, Math.min(tl.size(), to))).stream()
                    .filter(s -> s.e2eP99Ms() != null).mapToDouble(Report.Second::e2eP99Ms).max().orElse(-1);
        }
    }

    // ---- shared machinery ---------------------------------------------------------------------------

    interface StackBody {
        int run(Stack stack) throws Exception;
    }

    /** Creates the run directory and stack, runs {@code body}, releases everything. */
    static int withStack(Setup setup, Shape shape, Set<PeerMain.Kind> peers, boolean startGateway, StackBody body)
            throws Exception {
        Path dir = Files.createTempDirectory("herald-loadtest-");
        int status = 2;
        try (Stack stack = new Stack(dir, setup.app, setup.gatewayJar, setup.gatewayHeap, setup.capacity,
                setup.extraConfig == null ? null : "  " + setup.extraConfig + "\n", setup.gatewayJvm,
                setup.nodes, "cluster".equals(setup.redis))) {
            System.out.println("run directory " + dir);
            try {
                stack.startPeers(peers);
                if (startGateway) {
                    stack.startRedis(setup.redisUrl);
                    stack.startGateway();
                    System.out.printf("gateway pid %d ready on %s; peers: %s%n", stack.gateway().pid(), stack.baseUrl(),
                            peers);
                    for (int i = 1; i < stack.gateways().size(); i++) {
                        System.out.printf("gateway node %d pid %d ready on %s%n", i + 1, stack.gateways().get(i).pid(),
                                stack.baseUrls().get(i));
                    }
                }
            } catch (IOException | RuntimeException e) {
                System.err.println("loadtest: cannot start: " + e.getMessage());
                return 2;
            }
            status = body.run(stack);
            return status;
        } finally {
            if (status == 0 && !setup.keepData) {
                deleteTree(dir);
            } else {
                System.out.println("run directory kept: " + dir);
            }
        }
    }

    /** Runs against one stack: registration, gateway runs, raw runs, the final report. */
    static final class Harness {
        private final Stack stack;
        private final Shape shape;
        private final Setup setup;
        private final ObjectMapper mapper = new ObjectMapper();
        private final ExecutorService io = Executors.newFixedThreadPool(4, daemon("loadtest-http"));
        private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(daemon("loadtest-retry"));
        private final HeraldClient client;
        /** One client per gateway node (batches go to them in turn); {@code client} is the first. */
        private final List<HeraldClient> clients;
        private final String baseUrl;
        private final String startedAt = Instant.now().toString();
        private final int runBase = ThreadLocalRandom.current().nextInt(1_000, 1_000_000);
        /**
         * Whether gateway runs measure Redis ({@link RedisStats}): the load pauses between warm-up
         * and measured part until Redis is quiet. Off for crash and soak, whose load must not pause.
         */
        boolean redisFigures;
        /** Whether registration tags every user {@code crowd} with an attribute {@code seq} (the campaign scenario). */
        boolean campaignCrowd;
        /** Whether a run passed: the total-queue check by default; crash tolerates bounded duplicates. */
        java.util.function.Predicate<Report.Run> passes = Report.Run::ok;

        Harness(Stack stack, Shape shape, Setup setup, String baseUrl, String key) {
            this(stack, shape, setup, baseUrl == null ? List.of() : List.of(baseUrl), key);
        }

        Harness(Stack stack, Shape shape, Setup setup, List<String> baseUrls, String key) {
            this.stack = stack;
            this.shape = shape;
            this.setup = setup;
            this.baseUrl = baseUrls.isEmpty() ? null : baseUrls.get(0);
            this.clients = baseUrls.stream().map(u -> HeraldClient.create(u, key, Duration.ofSeconds(60), io, mapper))
                    .toList();
            this.client = clients.isEmpty() ? null : clients.get(0);
        }

        /** Registers users u0.. with a device (apns, fcm) and a phone (sms) as the mix needs, by bulk import. */
        /** PUTs the app's delivery policy ({@code --policy}: a JSON file) when one is given. */
        void policy(String policy) throws Exception {
            if (policy == null) {
                return;
            }
            String json = java.nio.file.Files.readString(java.nio.file.Path.of(policy));
            HeraldClient.Response r = client.putPolicy(setup.app, json).get(30, TimeUnit.SECONDS);
            if (r.status() != 200) {
                throw new IOException("--policy: PUT /v1/apps/" + setup.app + "/policy -> " + r.status() + " " + r.snippet());
            }
            System.out.println("delivery policy version " + r.json().path("version").asInt() + " set");
        }

        void register(Set<PeerMain.Kind> kinds) throws Exception {
            long t0 = System.nanoTime();
            for (int from = 0; from < shape.users; from += 10_000) {
                int n = Math.min(10_000, shape.users - from);
                HeraldClient.Response r = client.importUsers(setup.app, importBody(from, n, kinds))
                        .get(120, TimeUnit.SECONDS);
                if (r.status() != 200 || r.json() == null || r.json().path("imported").asInt() != n) {
                    throw new IOException("user import failed: " + r.status() + " " + r.snippet());
                }
            }
            System.out.printf(Locale.ROOT, "registered %,d users (%s) in %.2f s%n", shape.users, kinds,
                    (System.nanoTime() - t0) / 1e9);
        }

        private byte[] importBody(int from, int n, Set<PeerMain.Kind> kinds) throws IOException {
            ByteArrayOutputStream buf = new ByteArrayOutputStream(n * 200);
            try (var g = mapper.getFactory().createGenerator(buf)) {
                g.writeStartObject();
                g.writeArrayFieldStart("users");
                for (int u = from; u < from + n; u++) {
                    String user = "u" + u;
                    g.writeStartObject();
                    g.writeStringField("user", user);
                    if (campaignCrowd) {
                        g.writeArrayFieldStart("tags");
                        g.writeString("crowd");
                        g.writeEndArray();
                        g.writeObjectFieldStart("attributes");
                        g.writeNumberField("seq", u);
                        g.writeEndObject();
                    }
                    if (kinds.contains(PeerMain.Kind.sms)) {
                        g.writeStringField("phone", Drive.phone(u));
                    }
                    g.writeArrayFieldStart("devices");
                    if (kinds.contains(PeerMain.Kind.apns)) {
                        g.writeStartObject();
                        g.writeStringField("id", "d1");
                        g.writeStringField("platform", "apns");
                        g.writeStringField("token", Drive.apnsToken(user));
                        g.writeEndObject();
                    }
                    if (kinds.contains(PeerMain.Kind.fcm)) {
                        g.writeStartObject();
                        g.writeStringField("id", "d2");
                        g.writeStringField("platform", "fcm");
                        g.writeStringField("token", Drive.fcmToken(user));
                        g.writeEndObject();
                    }
                    g.writeEndArray();
                    g.writeEndObject();
                }
                g.writeEndArray();
                g.writeEndObject();
            }
            return buf.toByteArray();
        }

        Report.Run gatewayRun(int n, long measured, double rate, Batches b, String[] mix, picocli.CommandLine cl)
                throws Exception {
            return gatewayRun(n, measured, rate, b, mix, cl, null);
        }

        /** A gateway run; {@code chaos}, when given, is started with the load and stopped after it. */
        Report.Run gatewayRun(int n, long measured, double rate, Batches b, String[] mix, picocli.CommandLine cl,
                              Thread chaos) throws Exception {
            Tally t = new Tally(runBase + n, shape.warmup + measured, shape.warmup);
            stack.tally(t);
            long deadline = deadline();
            Drive.GatewaySink sink = new Drive.GatewaySink(clients, t, setup.app, shape.users, mix, b.batchSize, timer,
                    mapper, chaos != null, deadline, b.messageClass);
            Sampler sampler = new Sampler(t, stack.gateways().stream().map(ChildProcess::pid).toList(), baseUrl);
            String label = "gateway";
            if (chaos != null) {
                chaos.start();
            }
            boolean done;
            RedisStats redis = redisFigures ? openRedisStats() : null;
            java.util.concurrent.atomic.AtomicReference<RedisStats.Snapshot> before =
                    new java.util.concurrent.atomic.AtomicReference<>();
            // Between warm-up and measured part (gateway and compare; crash and soak must not pause):
            // Redis's counters once it is quiet, and every process's CPU from here on, so CPU per
            // message is the measured part's (JIT compilation and warm-up excluded).
            Drive.Boundary boundary = !redisFigures ? null : () -> {
                if (redis != null) {
                    before.set(redisSettle(redis));
                }
                sampler.rebase();
            };
            Report.Redis redisResult = null;
            try {
                try {
                    done = measure(t, sampler, () -> new Drive(t, rate, b.concurrency,
                            Duration.ofSeconds(shape.drainSeconds), System.out).run(sink, deadline, label, boundary));
                } finally {
                    if (chaos != null) {
                        chaos.interrupt();
                        chaos.join();
                    }
                }
                RedisStats.Snapshot after = before.get() == null ? null : redisSettle(redis);
                if (after != null) {
                    try {
                        redisResult = redis.figures(before.get(), after, t.measuredArrivals.sum());
                    } catch (RuntimeException e) {
                        System.err.println("loadtest: no Redis figures, Redis could not be read: " + e);
                    }
                }
            } finally {
                if (redis != null) {
                    redis.close();
                }
            }
            Report.Run r = Report.run("gateway", t, shape.describe(cl) + ", batches of " + b.batchSize + ", "
                    + b.concurrency + " in flight, mix " + b.mix, done, sink.firstFailure.get(),
                    sampler.processes(stack, t), redisResult,
                    Report.timeline(t, sampler.heapBySecond(), sampler.p99BySecond()));
            Report.print(r, passes.test(r), System.out);
            return r;
        }

        /**
         * A campaign to every registered user ({@code tag:crowd}), no throttle: a template whose push
         * body carries the run's marker with each user's {@code seq}, created, submitted and approved
         * by a second key; every user counts as acknowledged at the approval (the campaign's
         * intended time). Prints the fan-out rate (users journaled per second, from the campaign's
         * progress) and returns the run with its total-queue check at the peer.
         */
        Report.Run campaignRun(int n, picocli.CommandLine cl) throws Exception {
            return campaignRun(n, cl, null);
        }

        /** As above; {@code chaos}, when given, is started at the approval and stopped at the end (crash --campaign). */
        Report.Run campaignRun(int n, picocli.CommandLine cl, Thread chaos) throws Exception {
            int users = shape.users;
            Tally t = new Tally(runBase + n, users, 0);
            stack.tally(t);
            String app = setup.app;
            String base = "/v1/apps/" + app;
            String tpl = "lt" + t.run;
            String marker = Tally.marker(t.run, 0, 0);
            String body = "Campaign " + Tally.MARK + t.run + ":{{user.seq}}:INTENDED#";
            HeraldClient.Response k = client.call("POST", base + "/keys", "{\"roles\":[\"approve\",\"read\"]}", null)
                    .get(30, TimeUnit.SECONDS);
            if (k.status() != 201) {
                throw new IOException("approver key: " + k.status() + " " + k.snippet());
            }
            String approver = k.json().get("key").asText();
            long intended = Tally.nowMicros();
            HeraldClient.Response tr = client.call("POST", base + "/templates", "{\"id\":\"" + tpl + "\",\"name\":\"load\","
                    + "\"defaultLocale\":\"en\",\"locales\":{\"en\":{\"push\":{\"title\":\"Load\",\"body\":\""
                    + body.replace("INTENDED", Long.toString(intended)) + "\"}}}}", null).get(30, TimeUnit.SECONDS);
            if (tr.status() != 201) {
                throw new IOException("template: " + tr.status() + " " + tr.snippet() + " (marker " + marker + ")");
            }
            HeraldClient.Response c = client.call("POST", base + "/campaigns", "{\"name\":\"load " + t.run
                    + "\",\"audience\":{\"rule\":\"tag:crowd\"},\"content\":{\"template\":\"" + tpl + "\"},"
                    + "\"channel\":\"apns\",\"class\":\"transactional\"}", null).get(30, TimeUnit.SECONDS);
            if (c.status() != 201) {
                throw new IOException("campaign: " + c.status() + " " + c.snippet());
            }
            String id = c.json().get("id").asText();
            client.call("POST", base + "/campaigns/" + id + "/submit", "", null).get(30, TimeUnit.SECONDS);
            Sampler sampler = new Sampler(t, stack.gateways().stream().map(ChildProcess::pid).toList(), baseUrl);
            sampler.start(stack);
            long launched = System.nanoTime();
            t.sending(0, users, intended);
            for (int seq = 0; seq < users; seq++) {
                t.acknowledged(seq, intended);
            }
            HeraldClient.Response a = client.call("POST", base + "/campaigns/" + id + "/approve", "", approver)
                    .get(30, TimeUnit.SECONDS);
            if (a.status() != 200) {
                sampler.stop();
                throw new IOException("approve: " + a.status() + " " + a.snippet());
            }
            long deadline = deadline();
            // The fan-out's own rate: while the pipeline has room (half its capacity), before
            // delivery paces it.
            long room = Math.min(users, setup.capacity / 2);
            long roomAt = 0;
            long roomFed = 0;
            long fedAt = 0;
            long firstFed = 0;
            long startedFeeding = 0;
            boolean done = false;
            if (chaos != null) {
                chaos.start();
            }
            try {
                while (System.nanoTime() < deadline) {
                    long fed;
                    try {
                        HeraldClient.Response g = client.call("GET", base + "/campaigns/" + id, null, null)
                                .get(30, TimeUnit.SECONDS);
                        fed = g.json() == null ? 0 : g.json().path("progress").path("fed").asLong(0);
                    } catch (java.util.concurrent.ExecutionException e) {
                        Thread.sleep(200); // the gateway is down (crash --campaign): ask again once it is back
                        continue;
                    }
                    if (fed > 0 && startedFeeding == 0) {
                        startedFeeding = System.nanoTime();
                        firstFed = fed;
                    }
                    if (roomAt == 0 && fed >= room) {
                        roomAt = System.nanoTime();
                        roomFed = fed;
                    }
                    if (fedAt == 0 && fed >= users) {
                        fedAt = System.nanoTime();
                    }
                    if (fedAt > 0 && t.arrivedCount.sum() >= users) {
                        done = true;
                        break;
                    }
                    Thread.sleep(50); // polling the API's progress: a rate probe, not synchronisation
                }
                Thread.sleep(Math.min(2_000, shape.drainSeconds * 1000L)); // late duplicates would show here
            } finally {
                if (chaos != null) {
                    chaos.interrupt();
                    chaos.join();
                }
                sampler.stop();
            }
            double fanOut = fedAt > startedFeeding && startedFeeding > 0
                    ? (users - firstFed) / ((fedAt - startedFeeding) / 1e9) : 0;
            System.out.printf(Locale.ROOT, "campaign %s: %,d users fanned out in %.2f s after approval (%,.0f users/s "
                    + "between the first and last progress reads); while the pipeline had room: %,d users in %.2f s "
                    + "after approval = %,.0f users/s%n", id, users, (fedAt - launched) / 1e9, fanOut, roomFed,
                    (roomAt - launched) / 1e9, roomAt > launched ? roomFed / ((roomAt - launched) / 1e9) : 0.0);
            Report.Run r = Report.run("campaign", t, shape.describe(cl) + ", one campaign to every user, no throttle",
                    done, null, sampler.processes(stack, t), Report.timeline(t, sampler.heapBySecond(),
                            sampler.p99BySecond()));
            Report.print(r, passes.test(r), System.out);
            return r;
        }

        /** A connection for Redis figures: the stack's Redis, else --redis-url; null when neither is known. */
        private RedisStats openRedisStats() {
            String url = stack.redisUrl() != null ? stack.redisUrl() : setup.redisUrl;
            if (url == null) {
                System.out.println("no Redis figures: the gateway's Redis is unknown (pass --redis-url with --url)");
                return null;
            }
            try {
                // A cluster's masters are summed (the cluster this stack started has no replicas).
                return RedisStats.open(stack.redisNodeUrls().isEmpty() ? List.of(url) : stack.redisNodeUrls());
            } catch (RuntimeException e) {
                System.err.println("loadtest: no Redis figures, cannot connect to " + url + ": " + e);
                return null;
            }
        }

        /** Redis's counters once it is quiet; null (and a line why) when Redis cannot be read. */
        private static RedisStats.Snapshot redisSettle(RedisStats redis) throws InterruptedException {
            try {
                RedisStats.Snapshot s = redis.settle();
                if (!s.settled()) {
                    System.out.println("Redis was not quiet after 30 s; its counters are read anyway");
                }
                return s;
            } catch (RuntimeException e) {
                System.err.println("loadtest: no Redis figures, Redis could not be read: " + e);
                return null;
            }
        }

        Report.Run rawRun(int n, long measured, double rate, int inFlight, int connections, picocli.CommandLine cl)
                throws Exception {
            Tally t = new Tally(runBase + n, shape.warmup + measured, shape.warmup);
            stack.tally(t);
            Path peerDir = stack.peerDir(PeerMain.Kind.apns);
            Sampler sampler = new Sampler(t, List.of(), null);
            boolean done;
            Drive.RawApnsSink sink = new Drive.RawApnsSink(t, shape.users, stack.peerPort(PeerMain.Kind.apns),
                    peerDir.resolve("apns-cert.pem"), peerDir.resolve("apns-key.p8"), connections);
            try (sink) {
                done = measure(t, sampler, () -> new Drive(t, rate, inFlight, Duration.ofSeconds(shape.drainSeconds),
                        System.out).run(sink, deadline(), "raw-apns"));
            }
            Report.Run r = Report.run("raw-apns", t, shape.describe(cl) + ", " + inFlight + " in flight, "
                    + connections + " connection(s)", done, sink.firstFailure.get(), sampler.processes(stack, t),
                    Report.timeline(t, null, sampler.p99BySecond()));
            Report.print(r, passes.test(r), System.out);
            return r;
        }

        interface Body {
            boolean run() throws Exception;
        }

        private boolean measure(Tally t, Sampler sampler, Body body) throws Exception {
            sampler.start(stack);
            try {
                return body.run();
            } finally {
                sampler.stop();
            }
        }

        private long deadline() {
            return System.nanoTime() + TimeUnit.SECONDS.toNanos(shape.timeoutSeconds);
        }

        int finish(String scenario, List<Report.Run> runs, List<Double> ratios, picocli.CommandLine cl)
                throws IOException {
            return finish(scenario, runs, ratios, passes);
        }

        /** Writes the summary; {@code passes} says whether a run passed (crash tolerates duplicates). */
        int finish(String scenario, List<Report.Run> runs, List<Double> ratios,
                   java.util.function.Predicate<Report.Run> passes) throws IOException {
            timer.shutdownNow();
            io.shutdownNow();
            Double median = null;
            if (ratios != null && !ratios.isEmpty()) {
                List<Double> sorted = ratios.stream().sorted().toList();
                int m = sorted.size();
                median = m % 2 == 1 ? sorted.get(m / 2) : (sorted.get(m / 2 - 1) + sorted.get(m / 2)) / 2;
            }
            boolean ok = runs.stream().allMatch(passes);
            String verdict = ok ? "every run passed the total-queue check"
                    : runs.stream().filter(r -> !passes.test(r)).map(r -> r.name() + " #" + r.run() + ": " + r.verdict())
                    .reduce((a, b) -> a + "; " + b).orElse("");
            Map<String, Object> options = new LinkedHashMap<>();
            options.put("messages", shape.messages);
            options.put("warmup", shape.warmup);
            options.put("rate", shape.rate);
            options.put("users", shape.users);
            options.put("gatewayHeap", setup.gatewayHeap);
            options.put("capacity", setup.capacity);
            options.put("cpus", Runtime.getRuntime().availableProcessors());
            options.put("java", System.getProperty("java.version"));
            Report.Summary s = new Report.Summary(scenario, startedAt, options, runs, ratios, median, ok, verdict);
            Report.write(s, shape.out, mapper);
            System.out.println();
            if (median != null) {
                System.out.printf(Locale.ROOT, "ratios gateway/raw: %s; median %.3f%n", ratios, median);
            }
            System.out.println((ok ? "PASS: " : "FAIL: ") + verdict);
            System.out.println("results in " + shape.out.toAbsolutePath() + " (result.json, *.hgrm, report.png)");
            return ok ? 0 : 1;
        }
    }

    /**
     * Samples the gateway once a second while a run goes (heap and direct memory from its
     * {@code /metrics}) and measures the CPU time of every process of the stack over the run.
     */
    static final class Sampler {
        private final Tally tally;
        private final List<Long> gatewayPids;
        private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        private final URI metrics;
        private final long[] heapBySecond = new long[Tally.TIMELINE_SECONDS];
        private final long[] p99BySecond = new long[Tally.TIMELINE_SECONDS];
        private final AtomicLong peakHeap = new AtomicLong(-1);
        private final AtomicLong lastHeap = new AtomicLong(-1);
        private final AtomicLong peakDirect = new AtomicLong(-1);
        private final Map<String, Double> cpuAtStart = new LinkedHashMap<>();
        private final Map<String, Long> pids = new LinkedHashMap<>();
        private ScheduledExecutorService exec;
        private volatile boolean measuredOnly;

        Sampler(Tally tally, List<Long> gatewayPids, String baseUrl) {
            this.tally = tally;
            this.gatewayPids = gatewayPids;
            this.metrics = baseUrl == null ? null : URI.create(baseUrl + "/metrics");
        }

        void start(Stack stack) {
            pids.put("driver", ProcessHandle.current().pid());
            for (int i = 0; i < gatewayPids.size(); i++) {
                pids.put(gatewayPids.size() == 1 ? "gateway" : "gateway-" + (i + 1), gatewayPids.get(i));
            }
            List<Long> redisPids = stack.redisPids();
            for (int i = 0; i < redisPids.size() && !gatewayPids.isEmpty(); i++) {
                pids.put(redisPids.size() == 1 ? "redis" : "redis-" + (i + 1), redisPids.get(i));
            }
            for (PeerMain.Kind k : stack.started()) {
                pids.put(k + "-peer", stack.peerPid(k));
            }
            pids.forEach((name, pid) -> cpuAtStart.put(name, ChildProcess.cpuSeconds(pid)));
            exec = Executors.newSingleThreadScheduledExecutor(daemon("loadtest-sampler"));
            tally.endToEndSinceLast(); // start the per-second view now
            exec.scheduleAtFixedRate(() -> {
                org.HdrHistogram.Histogram h = tally.endToEndSinceLast();
                if (h.getTotalCount() > 0) {
                    p99BySecond[tally.second(Tally.nowMicros())] = h.getValueAtPercentile(99);
                }
                if (metrics != null) {
                    sample();
                }
            }, 1, 1, TimeUnit.SECONDS);
        }

        /** Measures CPU from now on, per measured message (called at the end of the warm-up). */
        void rebase() {
            pids.forEach((name, pid) -> cpuAtStart.put(name, ChildProcess.cpuSeconds(pid)));
            measuredOnly = true;
        }

        void stop() {
            exec.shutdownNow();
            if (metrics != null) {
                sample();
            }
        }

        private void sample() {
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(metrics).timeout(Duration.ofSeconds(2)).GET()
                        .build(), HttpResponse.BodyHandlers.ofString());
                long heap = 0;
                long direct = -1;
                for (String line : r.body().split("\n")) {
                    if (line.startsWith("jvm_memory_used_bytes{") && line.contains("area=\"heap\"")) {
                        heap += (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                    } else if (line.startsWith("jvm_buffer_memory_used_bytes{") && line.contains("id=\"direct\"")) {
                        direct = (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                    }
                }
                heapBySecond[tally.second(Tally.nowMicros())] = heap;
                peakHeap.accumulateAndGet(heap, Math::max);
                lastHeap.set(heap);
                peakDirect.accumulateAndGet(direct, Math::max);
            } catch (IOException | RuntimeException e) {
                // the gateway is busy or gone; a missing sample is a gap in the timeline
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        long[] heapBySecond() {
            return heapBySecond;
        }

        long[] p99BySecond() {
            return p99BySecond;
        }

        List<Report.Process> processes(Stack stack, Tally t) {
            List<Report.Process> out = new ArrayList<>();
            long messages = Math.max(1, measuredOnly ? t.total - t.warmup : t.total);
            pids.forEach((name, pid) -> {
                double now = ChildProcess.cpuSeconds(pid);
                if (now < 0) {
                    return; // gone (a killed gateway): nothing to measure
                }
                double cpu = now - cpuAtStart.get(name);
                boolean gw = name.equals("gateway") || name.equals("gateway-1");
                out.add(new Report.Process(name, Report.round(cpu), Report.round(cpu * 1e6 / messages),
                        ChildProcess.statusBytes(pid, "VmHWM"), gw ? peakHeap.get() : null, gw ? lastHeap.get() : null,
                        gw ? peakDirect.get() : null));
            });
            // Several gateways or Redis servers: their sum too (CPU per message of the whole tier).
            for (String tier : List.of("gateway", "redis")) {
                List<Report.Process> parts = out.stream().filter(p -> p.name().startsWith(tier + "-")).toList();
                if (parts.size() > 1) {
                    double cpu = parts.stream().mapToDouble(Report.Process::cpuSeconds).sum();
                    long rss = parts.stream().mapToLong(Report.Process::peakRssBytes).sum();
                    out.add(new Report.Process(tier + " (all)", Report.round(cpu), Report.round(cpu * 1e6 / messages),
                            rss, null, null, null));
                }
            }
            return out;
        }
    }

    static java.util.concurrent.ThreadFactory daemon(String name) {
        AtomicLong n = new AtomicLong();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            System.err.println("loadtest: cannot delete " + root + ": " + e.getMessage());
        }
    }
}
