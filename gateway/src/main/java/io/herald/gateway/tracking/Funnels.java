package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;

/**
 * Funnel counters: how many messages reached each stage (submitted, deferred, accepted by the
 * provider, delivered, opened, clicked, dismissed, failed and dropped by reason, devices
 * invalidated, opt-outs), per batch, app, campaign, campaign variant and channel, and per time
 * bucket (minute, hour, day) for app, campaign and variant. A batch's funnel is counted in its
 * batch hash by the script that changes its messages' states; the app-side counters are added up
 * per handler batch and written by {@code flush.lua} exactly once per applied change (see
 * {@code MessageStore}), so a replayed or repeated event never counts twice and no increment is
 * lost. Each counter is a Redis hash (field = stage); totals expire {@code retention.aggregates}
 * after their last change, buckets after their own retention. Stateless, thread-safe.
 */
public final class Funnels {
    /** Time bucket sizes. */
    public enum Bucket {
        MINUTE("m", 60_000L), HOUR("h", 3_600_000L), DAY("d", 86_400_000L);

        final String code;
        final long millis;

        Bucket(String code, long millis) {
            this.code = code;
            this.millis = millis;
        }

        public static Bucket parse(String s) {
            return switch (s == null ? "hour" : s) {
                case "minute" -> MINUTE;
                case "hour" -> HOUR;
                case "day" -> DAY;
                default -> null;
            };
        }
    }

    private static final long DAY = 86_400_000L;
    private final Redis redis;
    private final ObjectMapper mapper;
    private final long aggregates;
    private final long[] bucketTtl;

    /**
     * Funnels whose totals (per app, campaign, variant, channel) are kept {@code aggregates} after
     * their last change, and whose time buckets are kept {@code minutes}, {@code hours} and
     * {@code days} after they end.
     */
    public Funnels(Redis redis, ObjectMapper mapper, Duration aggregates, Duration minutes, Duration hours,
                   Duration days) {
        this.redis = redis;
        this.mapper = mapper;
        this.aggregates = aggregates.toMillis();
        this.bucketTtl = new long[] {minutes.toMillis(), hours.toMillis(), days.toMillis()};
    }

    /**
     * A counter hash an event counts in, and its expiry: {@code PEXPIREAT expireAt} when the key has
     * none or less than {@code refreshBelow} ms left (so a total's expiry is moved on about once a
     * day, a bucket's set once). Immutable.
     */
    public record Counter(String key, long expireAt, long refreshBelow) { }

    /**
     * The app-side counters an event at {@code at} of a message of {@code app} (campaign, variant and
     * channel may be null) counts in, written at {@code now}. The batch's own funnel lives in the
     * batch hash ({@code f:<stage>}).
     */
    public List<Counter> counters(String app, String campaign, String variant, String channel, long at, long now) {
        List<Counter> out = new ArrayList<>(14);
        scope(out, app, null, null, at, now);
        if (campaign != null) {
            scope(out, app, campaign, null, at, now);
            if (variant != null) {
                scope(out, app, campaign, variant, at, now);
            }
        }
        if (channel != null) {
            out.add(total(Keys.funnelChannel(app, channel), now));
            if (campaign != null) {
                out.add(total(Keys.funnelChannel(app, campaign, channel), now));
            }
        }
        return out;
    }

    private Counter total(String key, long now) {
        return new Counter(key, now + aggregates, aggregates - Math.min(DAY, aggregates / 2));
    }

    private void scope(List<Counter> out, String app, String campaign, String variant, long at, long now) {
        out.add(total(Keys.funnel(app, campaign, variant), now));
        for (Bucket b : Bucket.values()) {
            long start = at - at % b.millis;
            out.add(new Counter(Keys.funnelBucket(app, campaign, variant, b.code, start),
                    start + b.millis + bucketTtl[b.ordinal()], 0));
        }
    }

    /** The stages a state label counts in: the label and, for failures and drops, its kind. */
    public static List<String> stages(String label) {
        int colon = label.indexOf(':');
        return colon < 0 ? List.of(label) : List.of(label.substring(0, colon), label);
    }

    /** The funnel of a batch (counts and rates), or of an app / campaign / variant scope. */
    public CompletableFuture<ObjectNode> batchFunnel(String batchId) {
        return redis.async().hgetall(Keys.batch(batchId)).toCompletableFuture().thenApply(h -> {
            Map<String, String> f = new TreeMap<>();
            h.forEach((k, v) -> {
                if (k.startsWith("f:")) {
                    f.put(k.substring(2), v);
                }
            });
            return funnelJson(f);
        });
    }

    /** The funnel of one channel (apns, fcm, sms) of an app: counts from acceptance on. */
    public CompletableFuture<ObjectNode> channelFunnel(String app, String channel) {
        return read(Keys.funnelChannel(app, channel));
    }

    /**
     * The funnel of campaign labels summed (the runs of a recurring campaign carry one label each);
     * with {@code channel}, of that channel only (counts from acceptance on).
     */
    public CompletableFuture<ObjectNode> campaignFunnel(String app, List<String> labels, String channel) {
        return campaignFunnel(app, labels, channel, null);
    }

    /** As above, of one variant (then {@code channel} must be null). */
    public CompletableFuture<ObjectNode> campaignFunnel(String app, List<String> labels, String channel, String variant) {
        List<CompletableFuture<Map<String, String>>> reads = new ArrayList<>(labels.size());
        for (String l : labels) {
            reads.add(redis.async().hgetall(channel == null ? Keys.funnel(app, l, variant)
                    : Keys.funnelChannel(app, l, channel)).toCompletableFuture());
        }
        return CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
            Map<String, String> sum = new TreeMap<>();
            for (CompletableFuture<Map<String, String>> r : reads) {
                r.join().forEach((k, n) -> sum.merge(k, n, (a, b) -> Long.toString(Long.parseLong(a) + Long.parseLong(b))));
            }
            return funnelJson(sum);
        });
    }

    public CompletableFuture<ObjectNode> scopeFunnel(String app, String campaign, String variant) {
        return read(Keys.funnel(app, campaign, variant));
    }

    private CompletableFuture<ObjectNode> read(String key) {
        return redis.async().hgetall(key).toCompletableFuture().thenApply(this::funnelJson);
    }

    /** Counts (every stage, zero when absent) and the derived rates. */
    public ObjectNode funnelJson(Map<String, String> raw) {
        ObjectNode out = mapper.createObjectNode();
        ObjectNode counts = out.putObject("counts");
        Map<String, Long> c = new TreeMap<>();
        for (String s : List.of("submitted", "deferred", "accepted", "delivered", "opened", "clicked", "dismissed",
                "failed", "dropped", "invalidated", "opt_out", "complaint")) {
            c.put(s, 0L);
        }
        raw.forEach((k, v) -> c.put(k, Long.parseLong(v)));
        // The delivery policy's verdicts, summed over their reasons: held (deferred:<reason>, a
        // message counted once per reason it was held for) and capped (by a rule, or by priority).
        long held = 0;
        for (Map.Entry<String, Long> e : c.entrySet()) {
            if (e.getKey().startsWith("deferred:")) {
                held += e.getValue();
            }
        }
        c.put("held", held);
        c.put("capped", c.getOrDefault("dropped:capped", 0L) + c.getOrDefault("dropped:capped_by_priority", 0L));
        c.forEach(counts::put);
        ObjectNode rates = out.putObject("rates");
        rates.put("deliveryRate", ratio(c.get("delivered"), c.get("accepted")));
        rates.put("openRate", ratio(c.get("opened"), c.get("delivered") > 0 ? c.get("delivered") : c.get("accepted")));
        rates.put("clickThroughRate", ratio(c.get("clicked"), c.get("opened")));
        return out;
    }

    private static double ratio(long a, long b) {
        return b == 0 ? 0.0 : Math.round(a * 10_000.0 / b) / 10_000.0;
    }

    /** Time series for a scope between two instants (inclusive buckets), at most 1,000 buckets. */
    public CompletableFuture<ObjectNode> series(String app, String campaign, String variant, Bucket bucket, long from,
                                                long to) {
        List<Long> starts = new ArrayList<>();
        for (long t = from - from % bucket.millis; t <= to && starts.size() < 1000; t += bucket.millis) {
            starts.add(t);
        }
        List<CompletableFuture<Map<String, String>>> reads = new ArrayList<>(starts.size());
        var cmd = redis.async();
        for (long t : starts) {
            reads.add(cmd.hgetall(Keys.funnelBucket(app, campaign, variant, bucket.code, t)).toCompletableFuture());
        }
        return CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
            ObjectNode out = mapper.createObjectNode();
            out.put("app", app);
            if (campaign != null) {
                out.put("campaign", campaign);
            }
            if (variant != null) {
                out.put("variant", variant);
            }
            out.put("bucket", bucket.name().toLowerCase(java.util.Locale.ROOT));
            ArrayNode arr = out.putArray("buckets");
            for (int i = 0; i < starts.size(); i++) {
                Map<String, String> m = reads.get(i).join();
                ObjectNode b = arr.addObject();
                b.put("start", starts.get(i));
                ObjectNode f = funnelJson(m);
                b.set("counts", f.get("counts"));
                b.set("rates", f.get("rates"));
            }
            return out;
        });
    }
}
