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
 * bucket (minute, hour, day) for app, campaign and variant. The counters are incremented inside
 * the same script that changes a message's state, so a replayed or repeated event never counts
 * twice and no increment is lost. Each counter is a Redis hash (field = stage); buckets expire
 * after their retention. Stateless, thread-safe.
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

    private final Redis redis;
    private final ObjectMapper mapper;
    private final long retention;
    private final long[] bucketTtl;

    public Funnels(Redis redis, ObjectMapper mapper, Duration retention, Duration minutes, Duration hours, Duration days) {
        this.redis = redis;
        this.mapper = mapper;
        this.retention = retention.toMillis();
        this.bucketTtl = new long[] {minutes.toMillis(), hours.toMillis(), days.toMillis()};
    }

    /** Counter keys an event of this message counts in, with their expiries (0 = none). */
    public record Counters(List<String> keys, List<Long> ttls) { }

    public Counters counters(String app, String batchId, String campaign, String variant, String channel, long at) {
        List<String> keys = new ArrayList<>(16);
        List<Long> ttls = new ArrayList<>(16);
        if (batchId != null) {
            keys.add(Keys.funnelBatch(batchId));
            ttls.add(retention);
        }
        scope(keys, ttls, app, null, null, at);
        if (campaign != null) {
            scope(keys, ttls, app, campaign, null, at);
            if (variant != null) {
                scope(keys, ttls, app, campaign, variant, at);
            }
        }
        if (channel != null) {
            keys.add(Keys.funnelChannel(app, channel));
            ttls.add(0L);
        }
        return new Counters(keys, ttls);
    }

    private void scope(List<String> keys, List<Long> ttls, String app, String campaign, String variant, long at) {
        keys.add(Keys.funnel(app, campaign, variant));
        ttls.add(0L);
        for (Bucket b : Bucket.values()) {
            keys.add(Keys.funnelBucket(app, campaign, variant, b.code, at - at % b.millis));
            ttls.add(bucketTtl[b.ordinal()]);
        }
    }

    /** The stages a state label counts in: the label and, for failures and drops, its kind. */
    public static List<String> stages(String label) {
        int colon = label.indexOf(':');
        return colon < 0 ? List.of(label) : List.of(label.substring(0, colon), label);
    }

    /** The funnel of a batch (counts and rates), or of an app / campaign / variant scope. */
    public CompletableFuture<ObjectNode> batchFunnel(String batchId) {
        return read(Keys.funnelBatch(batchId));
    }

    /** The funnel of one channel (apns, fcm, sms) of an app: counts from acceptance on. */
    public CompletableFuture<ObjectNode> channelFunnel(String app, String channel) {
        return read(Keys.funnelChannel(app, channel));
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
                "failed", "dropped", "invalidated", "opt_out")) {
            c.put(s, 0L);
        }
        raw.forEach((k, v) -> c.put(k, Long.parseLong(v)));
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
