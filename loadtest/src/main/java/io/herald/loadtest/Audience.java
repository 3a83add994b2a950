package io.herald.loadtest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code audience}: the precision layer at scale, through the HTTP API of a gateway started here:
 * bulk tag changes over {@code --users} users (pass 1000000; the first pass gives every user an index), tag
 * changes on known users, events, estimates of a 4-term tag rule with and without an event-count
 * term, and paging through an audience's members. Prints rates, CPU per item (gateway and Redis
 * processes) and estimate times (median of {@code --estimates}). The data is generated with a
 * fixed seed, so runs are comparable side by side.
 */
@Command(name = "audience", mixinStandardHelpOptions = true,
        description = "Tags, events, estimates and members over --users users through a gateway started here.")
final class Audience implements Callable<Integer> {
    @Mixin
    Scenarios.Setup setup = new Scenarios.Setup();
    @Mixin
    Scenarios.Shape shape = new Scenarios.Shape();

    @Option(names = "--tag-concurrency", description = "Bulk tag requests in flight. Default: ${DEFAULT-VALUE}")
    int concurrency = 2;

    @Option(names = "--events", description = "Events posted (10,000 per request). Default: ${DEFAULT-VALUE}")
    int events = 100_000;

    @Option(names = "--estimates", description = "Estimates per rule (the median is reported), and rounds of member "
            + "paging. Default: ${DEFAULT-VALUE}")
    int estimates = 7;

    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @Override
    public Integer call() throws Exception {
        return Scenarios.withStack(setup, shape, java.util.EnumSet.allOf(PeerMain.Kind.class), true, stack -> {
            try {
                return run(stack);
            } catch (IOException | InterruptedException e) {
                System.err.println("audience: " + e.getMessage());
                return 1;
            }
        });
    }

    private JsonNode send(Stack stack, String method, String path, JsonNode body) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(stack.baseUrl() + path)).timeout(Duration.ofMinutes(5))
                .header("Authorization", "Bearer " + stack.apiKey);
        if (body != null) {
            b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body.toString()));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() >= 300) {
            throw new IOException(method + " " + path + " -> " + r.statusCode() + " " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /** CPU seconds of the gateway and the Redis processes so far. */
    private static double[] cpu(Stack stack) {
        double redis = 0;
        for (long pid : stack.redisPids()) {
            redis += ChildProcess.cpuSeconds(pid);
        }
        return new double[] {ChildProcess.cpuSeconds(stack.gateway().pid()), redis};
    }

    private static void report(String what, long items, long startNanos, double[] before, double[] after) {
        double s = (System.nanoTime() - startNanos) / 1e9;
        System.out.printf("%-34s %,10d in %6.2f s = %,9.0f/s; CPU per item: gateway %5.1f us, redis %5.1f us%n",
                what, items, s, items / s, (after[0] - before[0]) * 1e6 / items, (after[1] - before[1]) * 1e6 / items);
    }

    /** Users: {@code --users} of the shared shape (give 1000000 for the scale). */
    private int users() {
        return shape.users;
    }

    /**
     * One tag on a share {@code p} of the users: requests of 100,000 users, {@code --concurrency}
     * of them in flight (as several upstream workers would send them).
     */
    private long tagPass(Stack stack, String tag, double p, Random r) throws IOException, InterruptedException {
        List<String> bodies = new java.util.ArrayList<>();
        for (int from = 0; from < users(); from += 100_000) {
            ArrayNode add = JSON.createArrayNode();
            for (int i = from; i < Math.min(users(), from + 100_000); i++) {
                if (r.nextDouble() < p) {
                    add.add("user-" + i);
                }
            }
            ObjectNode body = JSON.createObjectNode();
            body.set("add", add);
            bodies.add(body.toString());
        }
        java.util.concurrent.Semaphore inFlight = new java.util.concurrent.Semaphore(concurrency);
        java.util.concurrent.atomic.AtomicLong changed = new java.util.concurrent.atomic.AtomicLong();
        List<java.util.concurrent.CompletableFuture<Void>> all = new java.util.ArrayList<>();
        for (String body : bodies) {
            inFlight.acquire();
            HttpRequest req = HttpRequest.newBuilder(URI.create(stack.baseUrl() + "/v1/apps/" + setup.app + "/tags/" + tag))
                    .timeout(Duration.ofMinutes(5)).header("Authorization", "Bearer " + stack.apiKey)
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
            all.add(http.sendAsync(req, HttpResponse.BodyHandlers.ofString()).thenAccept(resp -> {
                inFlight.release();
                if (resp.statusCode() != 200) {
                    throw new IllegalStateException("tag request -> " + resp.statusCode() + " " + resp.body());
                }
                try {
                    changed.addAndGet(JSON.readTree(resp.body()).get("added").asLong());
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }));
        }
        java.util.concurrent.CompletableFuture.allOf(all.toArray(new java.util.concurrent.CompletableFuture<?>[0])).join();
        return changed.get();
    }

    private double[] estimate(Stack stack, String rule) throws IOException, InterruptedException {
        long[] ms = new long[estimates];
        long count = 0;
        for (int i = 0; i < estimates; i++) {
            JsonNode e = send(stack, "POST", "/v1/apps/" + setup.app + "/audiences/estimate",
                    JSON.createObjectNode().put("rule", rule));
            ms[i] = e.get("computedInMs").asLong();
            count = e.get("count").asLong();
        }
        Arrays.sort(ms);
        return new double[] {count, ms[estimates / 2], ms[0], ms[estimates - 1]};
    }

    private int run(Stack stack) throws IOException, InterruptedException {
        Random r = new Random(7);
        String app = setup.app;
        // 1. Tags: the first pass assigns every user an index.
        double[] c0 = cpu(stack);
        long t0 = System.nanoTime();
        long changes = tagPass(stack, "t1", 0.9, r);
        report("tag changes, first sight", changes, t0, c0, cpu(stack));
        c0 = cpu(stack);
        t0 = System.nanoTime();
        changes = tagPass(stack, "t2", 0.8, r) + tagPass(stack, "t3", 0.7, r) + tagPass(stack, "t4", 0.3, r);
        report("tag changes, known users", changes, t0, c0, cpu(stack));
        // 2. Events.
        c0 = cpu(stack);
        t0 = System.nanoTime();
        long recorded = 0;
        for (int sent = 0; sent < events; sent += 10_000) {
            ArrayNode list = JSON.createArrayNode();
            for (int i = 0; i < Math.min(10_000, events - sent); i++) {
                ObjectNode e = list.addObject().put("user", "user-" + r.nextInt(users())).put("name", "purchase");
                e.putObject("properties").put("amount", r.nextInt(100));
            }
            recorded += send(stack, "POST", "/v1/apps/" + app + "/events", JSON.createObjectNode().set("events", list))
                    .get("recorded").asLong();
        }
        report("events", recorded, t0, c0, cpu(stack));
        // 3. Estimates.
        String rule = "tag:t1 AND tag:t2 AND tag:t3 AND NOT tag:t4";
        for (String q : List.of(rule, rule + " AND event.purchase.count(30d) >= 2", "tag:t1 AND event.purchase.within(30d)")) {
            double[] e = estimate(stack, q);
            System.out.printf("estimate %-60s count %,9d: median %4.0f ms (min %.0f, max %.0f)%n", q, (long) e[0], e[1],
                    e[2], e[3]);
        }
        // 4. Members.
        String id = send(stack, "POST", "/v1/apps/" + app + "/audiences", JSON.createObjectNode().put("name", "load")
                .put("rule", rule)).get("id").asText();
        for (int round = 1; round <= estimates; round++) {
            c0 = cpu(stack);
            t0 = System.nanoTime();
            long members = 0;
            String cursor = null;
            do {
                JsonNode page = send(stack, "GET", "/v1/apps/" + app + "/audiences/" + id + "/members?limit=10000"
                        + (cursor == null ? "" : "&cursor=" + cursor), null);
                members += page.get("users").size();
                cursor = page.get("next").isNull() ? null : page.get("next").asText();
            } while (cursor != null);
            report("members paged, round " + round, members, t0, c0, cpu(stack));
        }
        return 0;
    }
}
