package io.herald.gateway.campaign;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.audience.Rule;
import io.herald.gateway.content.Templates;
import io.herald.gateway.journal.IdempotencyKeys;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.tracking.MessageIds;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.DecodedBatch;
import io.herald.protocol.Message;
import io.lettuce.core.KeyValue;
import io.lettuce.core.Range;
import io.lettuce.core.ScriptOutputType;
import org.roaringbitmap.PeekableIntIterator;
import org.roaringbitmap.RoaringBitmap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * Launches approved campaigns at their schedule and fans them out, so that every member of the
 * audience gets the campaign once, whichever node does it and however often nodes die.
 *
 * <p>The flow, per campaign, on the one node that holds its lease ({@code campaign-run.lua}, on
 * Redis's clock; renewed every tick, lost after {@code scheduler.campaign-lease} without renewal):
 * <ol>
 *   <li><b>Launch</b>: an approved campaign whose schedule is due ({@link #dueAt}) moves to
 *       running (compare-and-set, recorded as by {@code herald:<node>}).</li>
 *   <li><b>Freeze</b>: the audience is evaluated shard by shard and each shard's members stored
 *       as a bitmap in the run's snapshot, first writer wins ({@code HSETNX}); its size is
 *       recorded. Members who join later are not in this run; members deleted meanwhile are
 *       skipped (counted).</li>
 *   <li><b>Feed</b>: chunk n = the next {@code scheduler.campaign-chunk} members after the
 *       checkpointed cursor, in user-index order (so a chunk is the same users whoever computes
 *       it). Each chunk is claimed under the idempotency key {@code campaign:<id>:<run>:<n>},
 *       journaled with that claim (one script writes the entry and marks the key done) and
 *       published to this node's pipeline; then the checkpoint moves on (only for the lease
 *       holder, only from chunk n). A node that dies after the journal write and before the
 *       checkpoint leaves the chunk marked done: the next holder skips it, and the messages are
 *       replayed from the dead node's journal like any batch's. A node that dies before the
 *       write leaves a claim that lapses within seconds; the next holder journals the chunk.</li>
 *   <li><b>Pace</b>: with {@code throttle.perMinute} the users fed since the campaign started
 *       (or resumed, or moved node) never exceed one chunk plus the rate times the time elapsed.
 *       A chunk the pipeline has no room for ({@link Pipeline#tryReserve}) goes to the campaign's
 *       backlog ({@link Keys#campaignBacklog}, the claim's slot) instead of the journal, up to
 *       {@code scheduler.campaign-backlog} messages; each tick first drains the backlog into the
 *       journal as room frees ({@link Journal#drain}), only while the campaign runs.</li>
 *   <li><b>Finish</b>: when the snapshot is exhausted and the backlog drained, or {@code endAt} has passed (the cut-off:
 *       the rest are not fed, and every message's ttl ends there too), the campaign moves to
 *       completed with the counts.</li>
 * </ol>
 * Paused campaigns keep their lease and feed nothing (their backlog waits); a cancelled one is let
 * go at the next tick, or once its backlog is drained (its messages end {@code dropped:cancelled}
 * in the pipeline).
 * Local-time and best-hour campaigns fan out at once: each message carries its send time
 * ({@code localTime} with the date, or {@code best_hour}) and waits in the deferred set.
 * Recurring campaigns run the flow once per occurrence ({@link #nextRun}): the run's summary joins
 * {@code runs}, the next run's fields are reset and the campaign waits on the live index until
 * {@code nextAt}; each run's audience leaves out whoever an earlier run within
 * {@code reEligibleAfter} was sent to, and its messages carry the label {@code <id>.r<n>}. A run's
 * snapshot is kept {@link #KEEP_SNAPSHOT} for plan reports ({@link #sentTo}).
 *
 * <p>Trade-off: the backlog lets a campaign reach Redis at the launcher's speed ({@link
 * #journalChunk} alone: some 3.6 µs per user, FanOutBenchmark; about 110,000 users/s inside a
 * delivering gateway, with rounds of chunks whose round trips overlap) while the JVM never holds
 * more than the pipeline's capacity and one round, and a pause acts within a tick; the price is
 * Redis memory for the waiting members (about 25 bytes each in the compact chunk entry, bounded by
 * {@code scheduler.campaign-backlog}) and one more move per chunk.
 *
 * <p>Which campaigns to look at: {@link Keys#liveCampaigns} (approved, running, paused; scored by
 * when due), filled by the campaigns API on every move and repaired from the full list every
 * minute (a move whose index write was lost still launches).
 *
 * <p>Threads: one thread ("campaigns") runs {@link #tick} (again at once while a campaign has more
 * to feed than one tick's budget) and blocks on Redis with a timeout, on a connection of its own so
 * its round trips do not queue behind the pipeline's; {@link #tick} is synchronized so tests may
 * drive it. The clock is injectable. Owned by {@code Herald}, which closes it before the pipeline.
 */
public final class CampaignLauncher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CampaignLauncher.class);
    /** How long a chunk's idempotency claim lives unfinished (its journal write follows within milliseconds). */
    static final Duration CLAIM_TTL = Duration.ofSeconds(5);
    /** How long one tick may feed before the next look. */
    private static final long FEED_BUDGET_MS = 400;
    /**
     * At most this many chunks, and about this many users, per round of overlapped round trips
     * (the JVM holds one round's items at most).
     */
    private static final int ROUND_CHUNKS = 100;
    private static final int ROUND_USERS = 50_000;
    private static final int REPAIR_EVERY_TICKS = 120;
    /** How long a finished run's snapshot (who was sent it) is kept: plan reports read it (plan windows are at most 30 days). */
    public static final Duration KEEP_SNAPSHOT = Duration.ofDays(35);

    private final Redis redis;
    private final Campaigns campaigns;
    private final Audiences audiences;
    private final Templates templates;
    private final io.herald.gateway.tracking.Funnels funnels;
    /** How often a running campaign's guards are evaluated. */
    static final long GUARD_EVERY_MS = 2_000;
    /** Its own connection: fan-out round trips do not queue behind the pipeline's commands. */
    private final io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands<String, String> cmd;
    private final Journal journal;
    private final IdempotencyKeys idempotency;
    private final Pipeline pipeline;
    private final BatchCodec codec;
    private final ObjectMapper mapper;
    private final Clock clock;
    private final Set<String> apps;
    private final String by;
    private final String owner;
    private final long leaseMillis;
    private final int chunk;
    /** How many messages of one campaign may wait in its backlog (0: none; the feed waits for room). */
    private final int backlogLimit;
    /** How long a backlog move's journal entry id is kept for a retry of the same call. */
    private static final long DRAIN_REMEMBER_MS = Duration.ofHours(1).toMillis();
    private final Duration wait;
    private final Redis.Script script = new Redis.Script("/scripts/campaign-run.lua");
    private final ScheduledExecutorService executor = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "campaigns");
        t.setDaemon(true);
        return t;
    });
    /**
     * The campaigns this node runs, by app + "/" + id. Changed only by {@link #tick} (under this);
     * concurrent so that {@link #running} reads it without waiting for a tick that is feeding.
     */
    private final Map<String, Running> mine = new java.util.concurrent.ConcurrentHashMap<>();
    private long ticks;
    private int failures;
    private volatile boolean closed;

    public CampaignLauncher(Redis redis, Campaigns campaigns, Audiences audiences, Templates templates, Journal journal,
                            IdempotencyKeys idempotency, Pipeline pipeline, BatchCodec codec, Clock clock,
                            Set<String> apps, String nodeId, Duration lease, int chunk, int backlog, Duration wait,
                            io.herald.gateway.tracking.Funnels funnels, io.herald.gateway.metrics.Metrics metrics) {
        this.redis = redis;
        this.funnels = funnels;
        this.metrics = metrics;
        this.cmd = redis.dedicated().async();
        this.templates = templates;
        this.campaigns = campaigns;
        this.audiences = audiences;
        this.journal = journal;
        this.idempotency = idempotency;
        this.pipeline = pipeline;
        this.codec = codec;
        this.mapper = codec.mapper();
        this.clock = clock;
        this.apps = Set.copyOf(apps);
        this.by = "herald:" + nodeId;
        this.owner = nodeId + ":" + Long.toString(ThreadLocalRandom.current().nextLong() >>> 1, 36);
        this.leaseMillis = lease.toMillis();
        this.chunk = chunk;
        this.backlogLimit = backlog;
        this.wait = wait;
    }

    /** Guard events are counted here (null in the benchmark). */
    private final io.herald.gateway.metrics.Metrics metrics;

    public void start(Duration tick) {
        executor.scheduleWithFixedDelay(this::safeTick, tick.toMillis(), tick.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void safeTick() {
        try {
            // Again at once while a campaign had more to feed than one tick's budget (no idle gap
            // between ticks when nothing but the budget stopped it).
            while (tick() && !closed) {
                failures = 0;
            }
            failures = 0;
        } catch (Exception e) {
            if (failures++ % 100 == 0) {
                log.warn("campaign launcher: {} (retrying every tick)", e.toString());
            }
        }
    }

    /**
     * When an approved campaign starts: {@code now}: at once; {@code at}: then; {@code local_time}:
     * an hour before the date's wall-clock time reaches the first time zone (UTC+14), so that every
     * message waits for its user's time in the deferred set; {@code best_hour}: at once.
     */
    public static long dueAt(JsonNode campaign) {
        JsonNode s = campaign.path("schedule");
        return switch (s.path("type").asText("now")) {
            case "recurring" -> nextRun(s, approvedAt(campaign)).launch();
            case "at" -> java.time.OffsetDateTime.parse(s.get("at").asText()).toInstant().toEpochMilli();
            case "local_time" -> LocalDateTime.of(LocalDate.parse(s.get("date").asText()),
                    LocalTime.parse(s.get("localTime").asText())).toInstant(ZoneOffset.ofHours(14)).toEpochMilli()
                    - Duration.ofHours(1).toMillis();
            default -> 0;
        };
    }

    /** Where the campaigns are stored. */
    public Campaigns campaigns() {
        return campaigns;
    }

    /** When the campaign was approved (its recurring runs count from then); 0 when it was not. */
    private static long approvedAt(JsonNode campaign) {
        JsonNode at = campaign.path("approval").path("at");
        return at.isTextual() ? Instant.parse(at.asText()).toEpochMilli() : 0;
    }

    /** A run of a recurring campaign: the day it is for and when it launches. */
    record Occurrence(LocalDate day, long launch) { }

    /**
     * The first run of a recurring schedule that launches after {@code after}: every day, or every
     * week on {@code weekday}, at {@code at} in {@code zone} (default UTC); with {@code localTime}
     * at {@code at} in each user's zone, so it launches an hour before the day's {@code at} reaches
     * UTC+14 and every message waits for its user's time.
     */
    static Occurrence nextRun(JsonNode s, long after) {
        boolean local = s.path("localTime").asBoolean(false);
        java.time.ZoneId zone = local ? ZoneOffset.ofHours(14) : java.time.ZoneId.of(s.path("zone").asText("UTC"));
        LocalTime at = LocalTime.parse(s.get("at").asText());
        java.time.DayOfWeek weekday = s.has("weekday")
                ? java.time.DayOfWeek.valueOf(s.get("weekday").asText().toUpperCase(java.util.Locale.ROOT)) : null;
        LocalDate day = Instant.ofEpochMilli(after).atZone(zone).toLocalDate().minusDays(1);
        for (int i = 0; i < 10; i++, day = day.plusDays(1)) {
            if (weekday != null && day.getDayOfWeek() != weekday) {
                continue;
            }
            long launch = java.time.ZonedDateTime.of(day, at, zone).toInstant().toEpochMilli()
                    - (local ? Duration.ofHours(1).toMillis() : 0);
            if (launch > after) {
                return new Occurrence(day, launch);
            }
        }
        throw new IllegalStateException("no run within 10 days of " + Instant.ofEpochMilli(after));
    }

    /**
     * Puts a campaign on the live index (the API after a move to approved, running, paused or
     * cancelled: a cancelled campaign is looked at once more, so that a backlog it left is drained
     * even when the node that ran it is gone).
     */
    public CompletableFuture<Void> watch(String app, Campaign c) {
        Campaign.State s = c.state();
        if (s != Campaign.State.APPROVED && s != Campaign.State.RUNNING && s != Campaign.State.PAUSED
                && s != Campaign.State.CANCELLED) {
            return CompletableFuture.completedFuture(null);
        }
        double due = s == Campaign.State.APPROVED ? dueAt(c.toJson()) : 0;
        return cmd.zadd(Keys.liveCampaigns(app), due, c.id()).toCompletableFuture().thenApply(n -> null);
    }

    /**
     * Who a run was sent to, by user shard (its frozen audience less the holdout: kept
     * {@link #KEEP_SNAPSHOT} after the run), or empty when it is gone.
     */
    public CompletableFuture<Map<Integer, RoaringBitmap>> sentTo(String app, String id, long run) {
        return split(app, id, run, 0);
    }

    /** A run's holdout (who was left out on purpose), by user shard; empty without one. */
    public CompletableFuture<Map<Integer, RoaringBitmap>> heldOut(String app, String id, long run) {
        return split(app, id, run, 1);
    }

    private CompletableFuture<Map<Integer, RoaringBitmap>> split(String app, String id, long run, int part) {
        return cmd.hgetall(Keys.campaignSnapshot(app, id, run)).toCompletableFuture().thenApply(snap -> {
            Map<Integer, RoaringBitmap> out = new HashMap<>();
            for (Map.Entry<String, String> e : snap.entrySet()) {
                if (!e.getKey().equals("shards")) {
                    try {
                        out.put(Integer.parseInt(e.getKey()), decodeShard(e.getValue())[part]);
                    } catch (IOException ex) {
                        throw new java.io.UncheckedIOException(ex);
                    }
                }
            }
            return out;
        });
    }

    /**
     * A user's experiment bucket in a campaign: the first 8 bytes of SHA-256({@code "<campaign
     * id>:<user index>"}) as an unsigned number (the user index is the app's number for the user,
     * given at first sight and never reused). The user is in the holdout when {@code bucket mod
     * 10,000 < holdoutPercent x 100}; otherwise the variant is the one whose slice of the weights,
     * in the order given, holds {@code (bucket / 10,000) mod (sum of weights)}. So a user keeps
     * both across runs, resends, restarts and nodes.
     */
    public static long bucket(String campaign, long index) {
        try {
            byte[] h = java.security.MessageDigest.getInstance("SHA-256")
                    .digest((campaign + ":" + index).getBytes(StandardCharsets.UTF_8));
            long v = 0;
            for (int i = 0; i < 8; i++) {
                v = (v << 8) | (h[i] & 0xff);
            }
            return v;
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A snapshot field: {@code base64(sent)} or {@code base64(sent)|base64(holdout)}. */
    static RoaringBitmap[] decodeShard(String v) throws IOException {
        int bar = v.indexOf('|');
        return bar < 0 ? new RoaringBitmap[] {decode(v), new RoaringBitmap()}
                : new RoaringBitmap[] {decode(v.substring(0, bar)), decode(v.substring(bar + 1))};
    }

    /** The run's state as stored (empty before launch): what {@code GET .../campaigns/{id}} shows as progress. */
    public CompletableFuture<Map<String, String>> progress(String app, String id) {
        return cmd.hgetall(Keys.campaignRun(app, id)).toCompletableFuture();
    }

    /**
     * One look: launch what is due, feed what this node runs, now and then repair the live index.
     * True when a campaign stopped only because the tick's feeding budget ran out.
     */
    public synchronized boolean tick() throws Exception {
        if (closed) {
            return false;
        }
        long now = clock.millis();
        if (ticks++ % REPAIR_EVERY_TICKS == 0) {
            repair();
        }
        for (String app : apps) {
            List<String> due = get(cmd.zrangebyscore(Keys.liveCampaigns(app),
                    Range.create(Double.NEGATIVE_INFINITY, (double) now)).toCompletableFuture());
            for (String id : due) {
                if (!mine.containsKey(app + "/" + id)) {
                    consider(app, id, now);
                }
            }
        }
        boolean more = false;
        for (Running r : new ArrayList<>(mine.values())) {
            more |= feed(r);
        }
        return more;
    }

    /** Puts every approved, running or paused campaign on the live index (a lost index write still launches). */
    private void repair() throws Exception {
        for (String app : apps) {
            for (Campaign c : get(campaigns.list(app))) {
                get(watch(app, c));
            }
        }
    }

    private void consider(String app, String id, long now) throws Exception {
        Campaigns.Versioned v = get(campaigns.get(app, id));
        if (v == null) {
            get(cmd.zrem(Keys.liveCampaigns(app), id).toCompletableFuture());
            return;
        }
        Campaign c = v.campaign();
        switch (c.state()) {
            case APPROVED -> {
                long due = dueAt(c.toJson());
                if (due > now) {
                    get(cmd.zadd(Keys.liveCampaigns(app), (double) due, id).toCompletableFuture());
                    return;
                }
                Map<String, String> run = acquire(app, id);
                if (run == null) {
                    return;
                }
                Campaign launched;
                try {
                    launched = c.move("launch", by, due > 0 ? "scheduled for " + Instant.ofEpochMilli(due)
                            : "scheduled now", now);
                } catch (Campaign.Refused e) {
                    release(app, id);
                    return;
                }
                if (get(campaigns.replace(app, launched, v.version())).conflict()) {
                    release(app, id); // moved meanwhile (an edit, a cancel): look again next tick
                    return;
                }
                log.info("campaign {} of app {} launched", id, app);
                adopt(app, launched, run, now);
            }
            case RUNNING, PAUSED -> {
                Map<String, String> run = acquire(app, id);
                if (run != null) {
                    log.info("campaign {} of app {}: this node feeds it now (fed so far: {})", id, app,
                            run.getOrDefault("fed", "0"));
                    adopt(app, c, run, now);
                }
            }
            case CANCELLED -> {
                // Its backlog (chunks fanned out beyond the pipeline's room) goes through the pipeline,
                // where every message ends dropped:cancelled; the node that ran it may be gone.
                boolean waiting = java.util.Arrays.stream(backlog(app, id)).sum() > 0;
                Map<String, String> run = waiting ? acquire(app, id) : null;
                if (run != null) {
                    adopt(app, c, run, now);
                } else if (!waiting) {
                    get(cmd.zrem(Keys.liveCampaigns(app), id).toCompletableFuture());
                }
            }
            default -> get(cmd.zrem(Keys.liveCampaigns(app), id).toCompletableFuture());
        }
    }

    /**
     * Reads the backlog's length per shard again (a chunk a former holder parked after this node
     * adopted the campaign is counted only here); true when anything waits.
     */
    private boolean backlogLeft(Running r) throws Exception {
        r.backlog = backlog(r.app, r.id);
        return r.parked() > 0;
    }

    /** Chunk entries waiting in a campaign's backlog, per shard (one pipelined XLEN each). */
    private long[] backlog(String app, String id) throws Exception {
        List<CompletableFuture<Long>> lens = new ArrayList<>(journal.shards());
        for (int shard = 0; shard < journal.shards(); shard++) {
            lens.add(cmd.xlen(Keys.campaignBacklog(shard, app, id)).toCompletableFuture());
        }
        long[] out = new long[lens.size()];
        for (int shard = 0; shard < out.length; shard++) {
            out[shard] = get(lens.get(shard));
        }
        return out;
    }

    /** Starts running a campaign whose lease this node holds: the run's fields first (first writer wins). */
    private void adopt(String app, Campaign c, Map<String, String> run, long now) throws Exception {
        String id = c.id();
        JsonNode schedule = c.toJson().get("schedule");
        boolean recurring = schedule.path("type").asText().equals("recurring");
        if (!run.containsKey("run")) {
            String day = recurring ? nextRun(schedule, approvedAt(c.toJson())).day().toString() : "";
            set(app, id, "?run", "1", "?chunk", "0", "?cursor", "-1", "?fed", "0", "?skipped", "0", "?day", day);
        }
        long next = Long.parseLong(get(progress(app, id)).getOrDefault("nextAt", "0"));
        if (next > now) {
            // A recurring campaign between runs: look again when the next one is due.
            release(app, id);
            get(cmd.zadd(Keys.liveCampaigns(app), (double) next, id).toCompletableFuture());
            return;
        }
        set(app, id, "?startedAt", Long.toString(now));
        run = get(progress(app, id));
        Running r = new Running(app, c, Long.parseLong(run.get("run")), Long.parseLong(run.getOrDefault("chunk", "0")),
                Long.parseLong(run.getOrDefault("cursor", "-1")), Long.parseLong(run.getOrDefault("fed", "0")));
        r.skipped = Long.parseLong(run.getOrDefault("skipped", "0"));
        r.phase = Integer.parseInt(run.getOrDefault("phase", "0"));
        r.phaseAt = Long.parseLong(run.getOrDefault("phaseAt", "0"));
        if (run.containsKey("decision")) {
            r.decided(mapper.readTree(run.get("decision")));
        }
        r.day = recurring ? run.get("day") : null;
        r.runs = run.getOrDefault("runs", "[]");
        r.warnings = run.getOrDefault("warnings", "[]"); // a takeover does not announce old warnings again
        r.backlog = backlog(app, id);
        r.unanswered = new String[journal.shards()];
        mine.put(app + "/" + id, r);
    }

    /** Feeds one campaign for up to the tick's budget; true when the budget (nothing else) stopped it. */
    private boolean feed(Running r) throws Exception {
        Campaigns.Versioned v = get(campaigns.get(r.app, r.id));
        Campaign.State state = v == null ? Campaign.State.CANCELLED : v.campaign().state();
        if (state == Campaign.State.CANCELLED && r.parked() > 0) {
            // Drained through the pipeline, where each message ends dropped:cancelled (accounted).
            if (renew(r)) {
                if (drain(r) && !backlogLeft(r)) {
                    let(r, true);
                }
            }
            return false;
        }
        if (state != Campaign.State.RUNNING && state != Campaign.State.PAUSED) {
            let(r, state == Campaign.State.CANCELLED || state == Campaign.State.COMPLETED || v == null);
            return false;
        }
        if (!renew(r)) {
            return false;
        }
        long now = clock.millis();
        if (state == Campaign.State.PAUSED) {
            r.pacedFrom = -1; // a resume paces from then, not from the start
            return false;
        }
        r.campaign = v.campaign();
        if (r.members == null) {
            freeze(r, now);
        }
        JsonNode c = r.campaign.toJson();
        if (now - r.guardsAt >= GUARD_EVERY_MS) {
            r.guardsAt = now;
            if (!guardsHold(r, v.version(), now)) {
                return false;
            }
        }
        List<String> named = new ArrayList<>();
        if (c.path("content").has("template")) {
            named.add(c.get("content").get("template").asText());
        }
        c.path("content").path("variants").forEach(variant -> {
            if (variant.has("template")) {
                named.add(variant.get("template").asText());
            }
        });
        for (String template : named) {
            if (templates.get(r.app, template) == null) {
                templates.refresh(); // made on another node a moment ago: this node's copy is up to a second old
                if (templates.get(r.app, template) == null) {
                    log.warn("campaign {} of app {}: its template '{}' is gone; nothing fed until it is back (or the "
                            + "campaign is cancelled)", r.id, r.app, template);
                    return false;
                }
            }
        }
        // The backlog first: chunks fanned out earlier go before new ones (which, while the
        // pipeline stays full, join the backlog).
        boolean drained = drain(r);
        if (c.hasNonNull("endAt")
                && now >= java.time.OffsetDateTime.parse(c.get("endAt").asText()).toInstant().toEpochMilli()) {
            if (!drained) {
                return false; // the backlog drains first: its messages end dropped:expired (their ttl is endAt)
            }
            finishCampaign(r, v.version(), "endAt reached: " + r.fed + " of " + r.size + " members fed, the rest cut off");
            return false;
        }
        long perMinute = c.path("throttle").path("perMinute").asLong(0);
        int size = perMinute > 0 ? (int) Math.max(1, Math.min(chunk, perMinute / 120)) : chunk;
        if (r.pacedFrom < 0) {
            r.pacedFrom = now;
            r.pacedFed = r.fed;
        }
        if (r.phaseAt > 0) {
            // This phase is fed and held: after its hold, decide (horse race) or read its gates (rollout).
            Phase ph = r.phases.get(r.phase);
            if (now < r.phaseAt + ph.holdMs()) {
                return false;
            }
            if (!afterPhase(r, ph, v.version(), now)) {
                return false;
            }
            set(r.app, r.id, "phase", Integer.toString(r.phase + 1), "cursor", "-1", "-phaseAt", "",
                    "phaseBase", phaseBase(r).toString());
            r.phase++;
            r.cursor = -1;
            r.phaseAt = 0;
            r.pacedFrom = -1; // the next phase paces from its own start, not from the campaign's
            return true;
        }
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(FEED_BUDGET_MS);
        while (System.nanoTime() < until && !closed) {
            // A round of chunks (one under a throttle, which paces chunk by chunk)
            List<List<Long>> round = new ArrayList<>();
            long from = r.cursor;
            int most = perMinute > 0 ? 1 : Math.max(1, Math.min(ROUND_CHUNKS, ROUND_USERS / size));
            while (round.size() < most) {
                List<Long> chunkOf = r.next(from, size);
                if (chunkOf.isEmpty()) {
                    break;
                }
                round.add(chunkOf);
                from = chunkOf.get(chunkOf.size() - 1);
            }
            List<Long> next = round.isEmpty() ? List.of() : round.get(0);
            if (next.isEmpty()) {
                if (r.phase < r.phases.size() - 1) {
                    if (!phaseSettled(r)) {
                        return false; // still on its way (held for quiet hours, a best hour, in flight)
                    }
                    set(r.app, r.id, "?phaseAt", Long.toString(now));
                    String at = get(progress(r.app, r.id)).get("phaseAt");
                    if (at == null) {
                        return false; // the lease was lost meanwhile: the new holder carries on
                    }
                    r.phaseAt = Long.parseLong(at);
                    log.info("campaign {} of app {}: {} fed ({} members so far); held for {} ms", r.id, r.app,
                            r.phases.get(r.phase).describe(), r.fed, r.phases.get(r.phase).holdMs());
                    return false;
                }
                if (r.parked() > 0 || backlogLeft(r)) {
                    return false; // every member fanned out; the backlog still drains
                }
                finish(r, v.version(), "every member fed: " + r.fed + " of " + r.size
                        + (r.skipped > 0 ? " (" + r.skipped + " deleted since the snapshot)" : ""));
                return false;
            }
            if (perMinute > 0) {
                long allowed = size + perMinute * (clock.millis() - r.pacedFrom) / 60_000 - (r.fed - r.pacedFed);
                if (allowed < next.size()) {
                    return false;
                }
            }
            if (!feedRound(r, round, c)) {
                return false;
            }
        }
        return !closed;
    }

    /**
     * The end of a held phase: a horse race's test share is decided ({@link HorseRace}: the decision
     * is stored first-writer-wins, so a takeover keeps it); a rollout stage's gates are read over
     * its sample (the counters since the stage began). True: go on to the next phase. False: the
     * campaign was paused by a failing gate, or completed by a race without a winner under {@code
     * noWinner: stop}. A gate that paused the campaign is taken as overridden when the campaign is
     * running again at this phase (an operator resumed it with an acknowledgement).
     */
    private boolean afterPhase(Running r, Phase ph, long version, long now) throws Exception {
        JsonNode c = r.campaign.toJson();
        if (ph.kind().equals("test")) {
            if (r.decision == null) {
                ObjectNode d = decide(r, c.get("experiment"), now);
                set(r.app, r.id, "?decision", d.toString());
                String stored = get(progress(r.app, r.id)).get("decision");
                if (stored == null) {
                    return false; // the lease was lost meanwhile: the new holder decides
                }
                r.decided(mapper.readTree(stored));
                log.info("campaign {} of app {}: horse race decided: {}", r.id, r.app, r.decision);
            }
            if (r.chosen == null) {
                long rest = r.size - r.fed - r.skipped;
                finish(r, version, "horse race without a winner (" + r.decision.get("reason").asText()
                        + "), noWinner stop: the other " + rest + " members get nothing");
                return false;
            }
            return true;
        }
        JsonNode gates = c.path("rollout").path("gates");
        Map<String, String> run = get(progress(r.app, r.id));
        long[] base = counts(run.containsKey("phaseBase") ? mapper.readTree(run.get("phaseBase")) : null);
        long[] cur = counts(get(funnels.campaignFunnel(r.app, List.of(r.label()), null)).get("counts"));
        long accepted = cur[0] - base[0];
        long failed = cur[1] - base[1];
        long optOuts = cur[2] - base[2];
        long disabled = cur[3] - base[3];
        long sample = accepted + failed;
        ObjectNode g = mapper.createObjectNode().put("stage", r.phase + 1 - (r.phases.get(0).kind().equals("test") ? 1 : 0))
                .put("percent", ph.percent()).put("sample", sample).put("accepted", accepted).put("failed", failed)
                .put("optOuts", optOuts).put("disabled", disabled)
                .put("failureRate", sample == 0 ? 0 : (double) failed / sample)
                .put("optOutRate", accepted == 0 ? 0 : (double) optOuts / accepted)
                .put("disableRate", sample == 0 ? 0 : (double) disabled / sample).put("at", now);
        String failing = null;
        if (sample < gates.path("minSample").asLong(100)) {
            g.put("note", "sample " + sample + " < minSample " + gates.path("minSample").asLong(100) + ": not judged");
        } else {
            failing = gate(g, gates, "maxFailureRate", "failureRate", failed, sample);
            failing = failing != null ? failing : gate(g, gates, "maxOptOutRate", "optOutRate", optOuts, accepted);
            failing = failing != null ? failing : gate(g, gates, "maxDisableRate", "disableRate", disabled, sample);
        }
        String gateReason = "rollout gate after " + ph.describe() + " of " + r.label() + ": ";
        if (failing != null && resumedAfter(r.campaign.toJson(), gateReason)) {
            g.put("overridden", true); // paused by this gate, then resumed with an acknowledgement
            failing = null;
        }
        g.put("passed", failing == null);
        if (failing != null) {
            g.put("reason", failing);
        }
        ArrayNode all = (ArrayNode) mapper.readTree(run.getOrDefault("gates", "[]"));
        all.add(g);
        set(r.app, r.id, "gates", all.toString());
        if (failing == null) {
            return true;
        }
        String why = gateReason + failing;
        try {
            Campaign paused = r.campaign.move("pause", Campaign.GUARD, why, now);
            if (!get(campaigns.replace(r.app, paused, version)).conflict()) {
                log.warn("campaign {} of app {} paused: {}", r.id, r.app, why);
                guardEvent(r, "gate_paused", "gate", why, now);
            }
        } catch (Campaign.Refused e) {
            // no longer running: nothing to pause
        }
        return false;
    }

    /**
     * True when the campaign's history has a pause by a guard whose reason starts with {@code
     * reason} followed by a resume (which for a guard's pause needs an acknowledgement): the
     * operator overrode that gate. Read from the campaign document, written atomically with the
     * moves, so a node that takes over sees the same.
     */
    static boolean resumedAfter(JsonNode campaign, String reason) {
        boolean paused = false;
        for (JsonNode h : campaign.path("history")) {
            String action = h.path("action").asText();
            if (action.equals("pause") && Campaign.GUARD.equals(h.path("by").asText())
                    && h.path("reason").asText().startsWith(reason)) {
                paused = true;
            } else if (paused && action.equals("resume")) {
                return true;
            }
        }
        return false;
    }

    /**
     * True when every message of the current phase has an outcome: the campaign's accepted, failed
     * and dropped counters (this run's label) have grown since the phase began by at least what the
     * phase fed. A hold starts only then, so a race or a gate never judges messages still waiting
     * for their send time.
     */
    private boolean phaseSettled(Running r) throws Exception {
        Map<String, String> run = get(progress(r.app, r.id));
        JsonNode base = run.containsKey("phaseBase") ? mapper.readTree(run.get("phaseBase")) : mapper.createObjectNode();
        JsonNode n = get(funnels.campaignFunnel(r.app, List.of(r.label()), null)).get("counts");
        long done = n.path("accepted").asLong() + n.path("failed").asLong() + n.path("dropped").asLong()
                - base.path("accepted").asLong() - base.path("failed").asLong() - base.path("dropped").asLong();
        long fed = r.fed - base.path("fed").asLong();
        return done >= fed;
    }

    /** A gate's verdict: null when it holds (or is not set), else why it fails. */
    private static String gate(ObjectNode g, JsonNode gates, String name, String rate, long count, long of) {
        if (!gates.has(name) || g.get(rate).asDouble() <= gates.get(name).asDouble()) {
            return null;
        }
        return String.format(java.util.Locale.ROOT, "%s %.2f%% (%d of %d) > %s %.2f%%", rate, g.get(rate).asDouble() * 100,
                count, of, name, gates.get(name).asDouble() * 100);
    }

    /** {accepted, failed, opt_out, invalidated} of a funnel's counts (zeros for null). */
    private static long[] counts(JsonNode counts) {
        if (counts == null) {
            return new long[4];
        }
        return new long[] {counts.path("accepted").asLong(), counts.path("failed").asLong(),
                counts.path("opt_out").asLong(), counts.path("invalidated").asLong()};
    }

    /** The counters a phase starts from (its gates and its settling read the difference), and the members fed so far. */
    private ObjectNode phaseBase(Running r) throws Exception {
        JsonNode c = get(funnels.campaignFunnel(r.app, List.of(r.label()), null)).get("counts");
        long[] n = counts(c);
        return mapper.createObjectNode().put("accepted", n[0]).put("failed", n[1]).put("opt_out", n[2])
                .put("invalidated", n[3]).put("dropped", c.path("dropped").asLong()).put("fed", r.fed);
    }

    /**
     * The horse race's decision over the test share: per variant the accepted test messages and
     * the opened or clicked among them; for conversions, the variant's test members and those of
     * them with the campaign's {@code conversionEvent} from the launch day to today (UTC days).
     */
    private ObjectNode decide(Running r, JsonNode e, long now) throws Exception {
        String metric = e.get("metric").asText();
        Map<String, long[]> conv = new HashMap<>();
        Map<String, long[]> members = new HashMap<>();
        if (metric.equals("conversion")) {
            String event = r.campaign.toJson().get("conversionEvent").asText();
            long started = Long.parseLong(get(progress(r.app, r.id)).getOrDefault("startedAt", Long.toString(now)));
            Phase test = r.phases.get(0);
            for (int s = 0; s < r.members.length; s++) {
                RoaringBitmap converted = get(audiences.eventDays(r.app, s, event, Math.floorDiv(started, 86_400_000L),
                        Math.floorDiv(now, 86_400_000L)));
                long base = (long) s << Keys.USER_SHARD_BITS;
                r.members[s].forEach((int local) -> {
                    long index = base + local;
                    if (test.holds(r.point(index))) {
                        String v = r.assigned(index);
                        members.computeIfAbsent(v, k -> new long[1])[0]++;
                        if (converted.contains(local)) {
                            conv.computeIfAbsent(v, k -> new long[1])[0]++;
                        }
                    }
                });
            }
        }
        List<HorseRace.Arm> arms = new ArrayList<>();
        for (String variant : r.variants) {
            if (metric.equals("conversion")) {
                // Conversions are counted over the test members given the variant, whatever became of
                // their message: an intent-to-treat comparison (the event log does not say who saw it).
                arms.add(new HorseRace.Arm(variant, members.getOrDefault(variant, new long[1])[0],
                        conv.getOrDefault(variant, new long[1])[0]));
                continue;
            }
            JsonNode n = get(funnels.campaignFunnel(r.app, List.of(r.label()), null, variant)).get("counts");
            arms.add(new HorseRace.Arm(variant, n.get("accepted").asLong(),
                    n.get(metric.equals("open") ? "opened" : "clicked").asLong()));
        }
        HorseRace.Decision d = HorseRace.decide(arms, e.get("alpha").asDouble(), e.get("minPerVariant").asLong(),
                e.get("noWinner").asText());
        ObjectNode out = mapper.createObjectNode().put("at", now).put("metric", metric).put("reason", d.reason());
        out.put("winner", d.winner()).put("chosen", d.chosen()).put("policy", d.winner() != null ? "winner"
                : e.get("noWinner").asText());
        out.put("best", d.best()).put("runnerUp", d.runnerUp()).put("test", d.test()).put("pValue", d.pValue())
                .put("alpha", e.get("alpha").asDouble()).put("minPerVariant", e.get("minPerVariant").asLong());
        ArrayNode a = out.putArray("arms");
        for (HorseRace.Arm arm : d.arms()) {
            a.addObject().put("variant", arm.variant()).put(metric.equals("conversion") ? "members" : "accepted", arm.n())
                    .put(metric.equals("open") ? "opened"
                    : metric.equals("click") ? "clicked" : "converted", arm.k()).put("rate", arm.rate());
        }
        return out;
    }

    /**
     * Evaluates the campaign's guards over the minute counters of its current label: a rate at or
     * above a guard's {@code pauseAt} (with at least {@code minVolume} behind it) pauses the
     * campaign, recorded as by {@link Campaign#GUARD} with the figures, and stops the feed
     * (false); {@code warnAt} and floors ({@code below}) are kept as the run's {@code warnings}.
     * Rates: opt_out = opt-outs / accepted; failure = failed / (accepted + failed); open_rate and
     * click_rate = opened or clicked / accepted.
     */
    private boolean guardsHold(Running r, long version, long now) throws Exception {
        JsonNode guards = r.campaign.toJson().path("guards");
        if (guards.isEmpty() || funnels == null) {
            return true;
        }
        long longest = 0;
        for (JsonNode g : guards) {
            longest = Math.max(longest, Campaign.durationMillis(g.get("window").asText()));
        }
        JsonNode buckets = get(funnels.series(r.app, r.label(), null, io.herald.gateway.tracking.Funnels.Bucket.MINUTE,
                now - longest + 1, now)).get("buckets");
        ArrayNode warnings = mapper.createArrayNode();
        for (JsonNode g : guards) {
            long window = Campaign.durationMillis(g.get("window").asText());
            long[] sum = new long[6]; // accepted, failed, opt_out, opened, clicked, complaint
            for (JsonNode b : buckets) {
                if (b.get("start").asLong() + 60_000 > now - window) {
                    JsonNode n = b.get("counts");
                    sum[0] += n.path("accepted").asLong();
                    sum[1] += n.path("failed").asLong();
                    sum[2] += n.path("opt_out").asLong();
                    sum[3] += n.path("opened").asLong();
                    sum[4] += n.path("clicked").asLong();
                    sum[5] += n.path("complaint").asLong();
                }
            }
            String metric = g.get("metric").asText();
            long count = switch (metric) {
                case "failure" -> sum[1];
                case "opt_out" -> sum[2];
                case "complaint" -> sum[5];
                case "open_rate" -> sum[3];
                default -> sum[4];
            };
            long volume = metric.equals("failure") ? sum[0] + sum[1] : sum[0];
            if (volume < g.get("minVolume").asLong() || volume == 0) {
                continue;
            }
            double rate = (double) count / volume;
            String figures = String.format(java.util.Locale.ROOT, "%s %.2f%% (%d of %d) over %s", metric, rate * 100,
                    count, volume, g.get("window").asText());
            if (g.has("pauseAt") && rate >= g.get("pauseAt").asDouble()) {
                String why = "guard " + figures + " >= pauseAt " + g.get("pauseAt").asDouble() * 100 + "%";
                try {
                    Campaign paused = r.campaign.move("pause", Campaign.GUARD, why, now);
                    if (!get(campaigns.replace(r.app, paused, version)).conflict()) {
                        set(r.app, r.id, "guard", mapper.createObjectNode().put("metric", metric).put("rate", rate)
                                .put("count", count).put("volume", volume).put("window", g.get("window").asText())
                                .put("pauseAt", g.get("pauseAt").asDouble()).put("at", now).toString());
                        log.warn("campaign {} of app {} paused: {}", r.id, r.app, why);
                        guardEvent(r, "guard_paused", metric, why, now);
                    }
                } catch (Campaign.Refused e) {
                    // no longer running: nothing to pause
                }
                return false;
            }
            if (g.has("warnAt") && rate >= g.get("warnAt").asDouble()) {
                warnings.addObject().put("metric", metric).put("rate", rate).put("count", count).put("volume", volume)
                        .put("warnAt", g.get("warnAt").asDouble()).put("at", now);
            }
            if (g.has("below") && rate < g.get("below").asDouble()) {
                warnings.addObject().put("metric", metric).put("rate", rate).put("count", count).put("volume", volume)
                        .put("below", g.get("below").asDouble()).put("at", now);
            }
        }
        String w = warnings.toString();
        if (!w.equals(r.warnings)) {
            if (!warnings.isEmpty()) {
                log.warn("campaign {} of app {}: guard warnings {}", r.id, r.app, w);
            }
            // A warning is news when its metric and threshold were not warning at the last look.
            java.util.Set<String> before = new java.util.HashSet<>();
            for (JsonNode o : mapper.readTree(r.warnings)) {
                before.add(o.get("metric").asText() + (o.has("below") ? "<" : ">"));
            }
            for (JsonNode o : warnings) {
                if (!before.contains(o.get("metric").asText() + (o.has("below") ? "<" : ">"))) {
                    guardEvent(r, "guard_warning", o.get("metric").asText(), String.format(java.util.Locale.ROOT,
                            "%s %.2f%% (%d of %d) %s %.2f%%", o.get("metric").asText(), o.get("rate").asDouble() * 100,
                            o.get("count").asLong(), o.get("volume").asLong(), o.has("below") ? "< below" : ">= warnAt",
                            (o.has("below") ? o.get("below") : o.get("warnAt")).asDouble() * 100), now);
                }
            }
            r.warnings = w;
            set(r.app, r.id, "warnings", w);
        }
        return true;
    }

    /**
     * A guard's event for the app's webhook and event feed ({@code guard_warning}, {@code
     * guard_paused}, {@code gate_paused}: one JSON entry on the app's event log, with the
     * campaign, the metric and the figures as {@code reason}) and the {@code
     * herald_campaign_guards_total} metric.
     */
    private void guardEvent(Running r, String event, String metric, String reason, long now) throws Exception {
        if (metrics != null) {
            metrics.guard(event.substring(event.indexOf('_') + 1), metric);
        }
        ObjectNode e = mapper.createObjectNode().put("id", r.id + ":" + event + ":" + metric + ":" + now)
                .put("app", r.app).put("event", event).put("reason", reason).put("at", now).put("campaign", r.label())
                .put("metric", metric);
        get(cmd.xadd(Keys.events(r.app), "e", e.toString()).toCompletableFuture());
    }

    /**
     * Moves backlog chunks into this node's journal and publishes them while the pipeline has room;
     * false when room ran out (or the tick's budget) with chunks still waiting.
     */
    private boolean drain(Running r) throws Exception {
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(FEED_BUDGET_MS);
        for (int shard = 0; shard < r.backlog.length; shard++) {
            while (r.backlog[shard] > 0 || r.unanswered[shard] != null) {
                if (System.nanoTime() > until || closed || !pipeline.tryReserve(chunk)) {
                    return false;
                }
                int reserved = chunk;
                try {
                    String request = r.unanswered[shard] != null ? r.unanswered[shard] : UUID.randomUUID().toString();
                    r.unanswered[shard] = request; // until the reply is in: a retry asks under the same id
                    Journal.Drained d = get(journal.drain(Keys.campaignBacklog(shard, r.app, r.id), shard, request,
                            DRAIN_REMEMBER_MS, cmd));
                    r.unanswered[shard] = null;
                    cmd.del(Keys.promotion(shard, request)); // answered: no retry will ask for it
                    if (d == null) {
                        r.backlog[shard] = 0;
                        break;
                    }
                    r.backlog[shard] = Math.max(0, r.backlog[shard] - 1);
                    if (!d.items().isEmpty()) {
                        while (d.items().size() > reserved) {
                            // a chunk fanned out under a larger scheduler.campaign-chunk: wait for its room
                            if (pipeline.tryReserve(d.items().size() - reserved)) {
                                reserved = d.items().size();
                            } else {
                                java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
                            }
                        }
                        pipeline.publish(d.entry(), d.items(), false);
                        reserved = Math.max(0, reserved - d.items().size());
                        cmd.hincrby(Keys.campaignRun(r.app, r.id), "drained", d.items().size());
                    }
                } finally {
                    if (reserved > 0) {
                        pipeline.release(reserved);
                    }
                }
            }
        }
        return true;
    }

    /**
     * Feeds a round of consecutive chunks (up to {@link #ROUND_CHUNKS}; one under a throttle) with
     * their Redis round trips overlapped: the user ids and claims of every chunk in one pipelined
     * burst, then every append, then every checkpoint, in chunk order. Each chunk goes to the
     * pipeline when it reserves room for it, else to the campaign's backlog (while the backlog is
     * under {@code scheduler.campaign-backlog}); the round ends before the first chunk that can do
     * neither, whose claim another holder has, or whose claim lapsed. False: stop for this tick.
     */
    private boolean feedRound(Running r, List<List<Long>> chunks, JsonNode c) throws Exception {
        long t0 = System.nanoTime();
        int n = chunks.size();
        boolean[] park = new boolean[n];
        int[] reserved = new int[n];
        long parked = r.parked();
        int usable = 0;
        for (; usable < n; usable++) {
            int size = chunks.get(usable).size();
            if (pipeline.tryReserve(size)) {
                reserved[usable] = size;
            } else if ((parked + 1) * chunk <= backlogLimit) {
                park[usable] = true;
                parked++;
            } else {
                break;
            }
        }
        try {
            if (usable == 0) {
                return false;
            }
            // 1. user ids and claims, every chunk at once
            UUID[] batchIds = new UUID[usable];
            List<CompletableFuture<List<String>>> ids = new ArrayList<>(usable);
            List<CompletableFuture<IdempotencyKeys.Verdict>> claims = new ArrayList<>(usable);
            long cursor = r.cursor;
            for (int j = 0; j < usable; j++) {
                List<Long> indexes = chunks.get(j);
                long last = indexes.get(indexes.size() - 1);
                batchIds[j] = MessageIds.newBatchId();
                ids.add(users(r.app, indexes));
                claims.add(idempotency.claim(r.app, "campaign:" + r.id + ":" + r.run + ":" + (r.chunk + j),
                        (cursor + ":" + last + ":" + indexes.size()).getBytes(StandardCharsets.US_ASCII),
                        batchIds[j].toString(), CLAIM_TTL, cmd));
                cursor = last;
            }
            // 2. the appends, in chunk order, up to the first chunk another holder has
            Started[] started = new Started[usable];
            int[] fed = new int[usable];
            int[] present = new int[usable];
            int[] shardOf = new int[usable];
            for (int j = 0; j < usable; j++) {
                List<String> aligned = get(ids.get(j));
                IdempotencyKeys.Verdict verdict = get(claims.get(j));
                List<String> users = new ArrayList<>(aligned.size());
                List<String> variants = r.variants.isEmpty() ? null : new ArrayList<>(aligned.size());
                for (int i = 0; i < aligned.size(); i++) {
                    if (aligned.get(i) != null) {
                        users.add(aligned.get(i));
                        if (variants != null) {
                            variants.add(r.assigned(chunks.get(j).get(i)));
                        }
                    }
                }
                present[j] = users.size();
                if (users.isEmpty()) {
                    continue;
                }
                if (verdict.state() == IdempotencyKeys.State.DONE) {
                    // journaled by an earlier holder: its journal sends it, or it waits in the
                    // backlog (counted at adopt)
                    fed[j] = users.size();
                    continue;
                }
                if (verdict.state() != IdempotencyKeys.State.CLAIMED) {
                    usable = j; // another holder's claim is still live: look again next tick
                    break;
                }
                shardOf[j] = verdict.claim().shard();
                String into = park[j] ? Keys.campaignBacklog(shardOf[j], r.app, r.id) : null;
                started[j] = startChunk(r.app, r.label(), r.day, c, batchIds[j], verdict.claim(), users, variants, into);
                if (started[j].rejected() > 0) {
                    log.warn("campaign {}: {} of {} messages of chunk {} refused: {}", r.id, started[j].rejected(),
                            users.size(), r.chunk + j, started[j].firstError());
                }
            }
            // 3. each append's answer; the pipeline gets a chunk once its entry is in
            for (int j = 0; j < usable; j++) {
                Started st = started[j];
                if (st == null || st.append() == null) {
                    continue;
                }
                JournalEntry entry = get(st.append());
                if (entry == null) {
                    usable = j; // our claim lapsed and another holder took the chunk: it feeds it
                    break;
                }
                fed[j] = st.items().size();
                if (!park[j]) {
                    if (fed[j] < reserved[j]) {
                        pipeline.release(reserved[j] - fed[j]);
                    }
                    reserved[j] = 0; // the pipeline releases them as they settle
                    pipeline.publish(entry, st.items(), false);
                }
            }
            // 4. the checkpoints, in order (each only from its chunk, only for the lease holder)
            List<CompletableFuture<List<Object>>> steps = new ArrayList<>(usable);
            cursor = r.cursor;
            for (int j = 0; j < usable; j++) {
                List<Long> indexes = chunks.get(j);
                long last = indexes.get(indexes.size() - 1);
                steps.add(script.run(cmd, ScriptOutputType.MULTI, new String[] {Keys.campaignRun(r.app, r.id)}, "step",
                        owner, Long.toString(leaseMillis), Long.toString(r.run), Long.toString(r.chunk + j),
                        Long.toString(last), Integer.toString(fed[j])));
                long skipped = indexes.size() - present[j];
                if (skipped > 0) {
                    cmd.hincrby(Keys.campaignRun(r.app, r.id), "skipped", skipped);
                }
                if (park[j] && started[j] != null && started[j].append() != null) {
                    cmd.hincrby(Keys.campaignRun(r.app, r.id), "parked", fed[j]);
                }
            }
            for (int j = 0; j < usable; j++) {
                List<Object> step = get(steps.get(j));
                if (((Long) step.get(0)) != 1) {
                    mine.remove(r.app + "/" + r.id);
                    return false;
                }
                List<Long> indexes = chunks.get(j);
                if (park[j] && started[j] != null && started[j].append() != null) {
                    r.backlog[shardOf[j]]++;
                }
                r.chunk++;
                r.cursor = indexes.get(indexes.size() - 1);
                r.fed += fed[j];
                r.fedHere += fed[j];
                r.skipped += indexes.size() - present[j];
            }
            return usable == n;
        } finally {
            for (int j = 0; j < n; j++) {
                if (reserved[j] > 0) {
                    pipeline.release(reserved[j]);
                }
            }
            r.feedNanos += System.nanoTime() - t0;
        }
    }

    /** A chunk journaled: its entry (null when no item was valid), its items, and the items refused. */
    public record Journaled(JournalEntry entry, List<JournalItem> items, int rejected, String firstError) { }

    /**
     * Journals one chunk of a campaign under a claim this node holds: the items (the campaign's
     * content, channel and policy fields, {@code label}, each user), validated by the codec, then
     * appended with the claim. Null when the claim lapsed and another holder took the key (nothing
     * was written). The fan-out's cost per chunk without the pipeline: public for the benchmark.
     */
    public Journaled journalChunk(String app, String label, String day, JsonNode campaign, UUID batchId,
                                  IdempotencyKeys.Claim claim, List<String> users) throws Exception {
        return journalChunk(app, label, day, campaign, batchId, claim, users, null);
    }

    /** As above, each user with the variant ({@code variants}, in step with {@code users}) it was assigned. */
    public Journaled journalChunk(String app, String label, String day, JsonNode campaign, UUID batchId,
                                  IdempotencyKeys.Claim claim, List<String> users, List<String> variants)
            throws Exception {
        return journalChunk(app, label, day, campaign, batchId, claim, users, variants, null);
    }

    /** As above, into a backlog shard ({@code into}) instead of the journal when given. */
    public Journaled journalChunk(String app, String label, String day, JsonNode campaign, UUID batchId,
                                  IdempotencyKeys.Claim claim, List<String> users, List<String> variants,
                                  String into) throws Exception {
        Started s = startChunk(app, label, day, campaign, batchId, claim, users, variants, into);
        if (s.append() == null) {
            return new Journaled(null, s.items(), s.rejected(), s.firstError());
        }
        JournalEntry entry = get(s.append());
        return entry == null ? null : new Journaled(entry, s.items(), s.rejected(), s.firstError());
    }

    /**
     * A chunk's append sent (not awaited): the append's future (null when no item was valid: nothing
     * is sent; completes with null when the claim lapsed), the items, the items refused.
     */
    private record Started(CompletableFuture<JournalEntry> append, List<JournalItem> items, int rejected,
                           String firstError) { }

    /** Builds a chunk's entry and sends its append on this launcher's connection, without waiting. */
    private Started startChunk(String app, String label, String day, JsonNode campaign, UUID batchId,
                               IdempotencyKeys.Claim claim, List<String> users, List<String> variants, String into)
            throws Exception {
        // Each variant's item is validated once, with a stand-in user, and encoded once; every
        // member's item is that message with the member's id, and the entry lists the members.
        Map<String, Stamp> stamps = new HashMap<>();
        for (Map.Entry<String, ObjectNode> p : prototypes(label, day, campaign, variants != null).entrySet()) {
            ObjectNode one = mapper.createObjectNode().put("app", app);
            one.putArray("messages").add(p.getValue().put("user", STAND_IN));
            DecodedBatch checked = codec.decode(mapper.writeValueAsBytes(one));
            if (checked.acceptedCount() == 0) {
                return new Started(null, new ArrayList<>(), users.size(), firstError(checked));
            }
            Message m = checked.items().get(0).message();
            stamps.put(p.getKey(), new Stamp(m, new String(codec.encodeMessage(m), StandardCharsets.UTF_8), stamps.size()));
        }
        List<DecodedBatch.Item> checkedItems = new ArrayList<>(users.size());
        int[] messageOf = variants == null ? null : new int[users.size()];
        for (int i = 0; i < users.size(); i++) {
            Stamp st = stamps.get(variants == null ? "" : variants.get(i));
            checkedItems.add(new DecodedBatch.Item(i, st.message().withUser(users.get(i)), null));
            if (messageOf != null) {
                messageOf[i] = st.index();
            }
        }
        String[] messages = new String[stamps.size()];
        stamps.values().forEach(st -> messages[st.index()] = st.json());
        DecodedBatch batch = new DecodedBatch(app, checkedItems);
        long at = clock.millis();
        List<JournalItem> items = new ArrayList<>(batch.acceptedCount());
        Journal.Prepared prepared = journal.prepareChunk(app, batchId.toString(), at, batch, List.of(messages), users,
                messageOf);
        CompletableFuture<JournalEntry> append = journal.append(prepared, claim, cmd, into);
        for (DecodedBatch.Item item : batch.items()) {
            items.add(new JournalItem(app, batchId.toString(), item.index(), at, item.message(), JournalItem.Phase.NEW));
        }
        return new Started(append, items, 0, "");
    }

    /** The user a chunk's message is validated with (each member's id replaces it). */
    private static final String STAND_IN = "herald-campaign-member";

    /** A variant's message, its JSON (for any member) and its place in the chunk entry. */
    private record Stamp(Message message, String json, int index) { }

    private static String firstError(DecodedBatch batch) {
        for (DecodedBatch.Item item : batch.items()) {
            if (!item.ok()) {
                return item.error().message();
            }
        }
        return "";
    }

    /**
     * The chunk's item, without its user: the campaign's content, channel and policy; one per
     * variant id with {@code variants}, else one under "".
     */
    private Map<String, ObjectNode> prototypes(String label, String day, JsonNode c, boolean variants) {
        ObjectNode item = mapper.createObjectNode();
        if (!c.get("content").has("variants")) {
            c.get("content").fields().forEachRemaining(e -> item.set(e.getKey(), e.getValue()));
        }
        item.put("channel", c.get("channel").asText());
        if (c.has("fallback")) {
            item.set("fallback", c.get("fallback"));
        }
        for (String f : new String[] {"category", "onQuiet", "onCap", "class"}) {
            if (c.hasNonNull(f)) {
                item.put(f, c.get(f).asText());
            }
        }
        if (c.hasNonNull("priority")) {
            item.put("priority", c.get("priority").asInt());
        }
        item.put("campaign", label);
        JsonNode s = c.path("schedule");
        switch (s.path("type").asText("now")) {
            case "local_time" -> item.put("localTime", s.get("date").asText() + "T" + s.get("localTime").asText());
            case "recurring" -> {
                if (s.path("localTime").asBoolean(false)) {
                    item.put("localTime", day + "T" + s.get("at").asText());
                }
            }
            case "best_hour" -> item.put("sendAt", "best_hour");
            default -> { }
        }
        if (c.hasNonNull("endAt")) {
            long left = java.time.OffsetDateTime.parse(c.get("endAt").asText()).toInstant().toEpochMilli()
                    - clock.millis();
            item.put("ttlSeconds", Math.max(1, left / 1000));
        }
        Map<String, ObjectNode> perVariant = new HashMap<>();
        if (variants) {
            for (JsonNode v : c.get("content").get("variants")) {
                ObjectNode o = item.deepCopy();
                v.fields().forEachRemaining(e -> {
                    if (!e.getKey().equals("id") && !e.getKey().equals("weight")) {
                        o.set(e.getKey(), e.getValue());
                    }
                });
                o.put("variant", v.get("id").asText());
                perVariant.put(v.get("id").asText(), o);
            }
        }
        if (perVariant.isEmpty()) {
            perVariant.put("", item);
        }
        return perVariant;
    }

    /** The user ids of member indexes, in order; null for members deleted since the snapshot. */
    private CompletableFuture<List<String>> users(String app, List<Long> indexes) {
        Map<Integer, List<String>> byShard = new LinkedHashMap<>();
        for (long i : indexes) {
            byShard.computeIfAbsent((int) (i >>> Keys.USER_SHARD_BITS), s -> new ArrayList<>()).add(Long.toString(i));
        }
        List<CompletableFuture<List<KeyValue<String, String>>>> reads = new ArrayList<>();
        for (Map.Entry<Integer, List<String>> e : byShard.entrySet()) {
            reads.add(cmd.hmget(Keys.userIds(app, e.getKey()), e.getValue().toArray(new String[0])).toCompletableFuture());
        }
        return CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
            List<String> out = new ArrayList<>(indexes.size());
            for (CompletableFuture<List<KeyValue<String, String>>> r : reads) {
                for (KeyValue<String, String> kv : r.join()) {
                    out.add(kv.hasValue() ? kv.getValue() : null);
                }
            }
            return out;
        });
    }

    /** Loads the run's snapshot, freezing the shards nobody froze yet (first writer wins). */
    private void freeze(Running r, long now) throws Exception {
        String key = Keys.campaignSnapshot(r.app, r.id, r.run);
        Map<String, String> stored = get(cmd.hgetall(key).toCompletableFuture());
        if (!r.frozen(stored)) {
            JsonNode a = r.campaign.toJson().get("audience");
            String text = a.has("rule") ? a.get("rule").asText() : null;
            if (text == null) {
                String saved = get(audiences.get(r.app, a.get("id").asText()));
                if (saved == null) {
                    throw new IllegalStateException("campaign " + r.id + ": its audience " + a.get("id")
                            + " was deleted before launch");
                }
                text = mapper.readTree(saved).get("rule").asText();
            }
            Rule.Node rule = Rule.parse(text);
            int shards = get(audiences.shards(r.app));
            List<Map<String, String>> recent = recentRuns(r, now);
            for (int s = 0; s < shards; s++) {
                if (!stored.containsKey(Integer.toString(s))) {
                    RoaringBitmap b = get(audiences.evaluate(r.app, s, rule));
                    for (Map<String, String> earlier : recent) {
                        String got = earlier.get(Integer.toString(s));
                        if (got != null) {
                            b.andNot(decodeShard(got)[0]); // got it within reEligibleAfter: skipped this run
                        }
                    }
                    RoaringBitmap held = r.holdout(b, s);
                    get(cmd.hsetnx(key, Integer.toString(s), encode(b) + (held.isEmpty() ? "" : "|" + encode(held)))
                            .toCompletableFuture());
                }
            }
            get(cmd.hsetnx(key, "shards", Integer.toString(shards)).toCompletableFuture());
            stored = get(cmd.hgetall(key).toCompletableFuture());
            r.frozen(stored);
        }
        set(r.app, r.id, "?frozen", Long.toString(r.size + r.holdoutSize), "?holdout", Long.toString(r.holdoutSize),
                "?frozenAt", Long.toString(now));
    }

    /**
     * The snapshots (who got it) of the earlier runs of a recurring campaign that started within
     * its {@code reEligibleAfter}; empty without one.
     */
    private List<Map<String, String>> recentRuns(Running r, long now) throws Exception {
        long window = r.campaign.toJson().hasNonNull("reEligibleAfter")
                ? Campaign.durationMillis(r.campaign.toJson().get("reEligibleAfter").asText()) : 0;
        List<Map<String, String>> out = new ArrayList<>();
        if (window <= 0) {
            return out;
        }
        for (JsonNode earlier : mapper.readTree(r.runs)) {
            if (earlier.path("startedAt").asLong() > now - window) {
                Map<String, String> snap = get(cmd.hgetall(Keys.campaignSnapshot(r.app, r.id,
                        earlier.get("run").asLong())).toCompletableFuture());
                if (!snap.isEmpty()) {
                    out.add(snap);
                }
            }
        }
        return out;
    }

    /**
     * The end of a run of a recurring campaign: its summary joins {@code runs}, and the next run is
     * set up to launch at its time, or the campaign completes when that is after {@code until}.
     * Its snapshot is kept for {@code reEligibleAfter} (who got it is skipped until then).
     */
    private void endRun(Running r, long version, String why) throws Exception {
        JsonNode c = r.campaign.toJson();
        JsonNode s = c.get("schedule");
        long now = clock.millis();
        Map<String, String> run = get(progress(r.app, r.id));
        ArrayNode runs = (ArrayNode) mapper.readTree(run.getOrDefault("runs", "[]"));
        runs.addObject().put("run", r.run).put("day", r.day).put("audienceSize", r.size + r.holdoutSize)
                .put("holdout", r.holdoutSize).put("fed", r.fed)
                .put("skipped", r.skipped).put("startedAt", Long.parseLong(run.getOrDefault("startedAt", "0")))
                .put("finishedAt", now).put("label", r.label());
        long thisLaunch = java.time.ZonedDateTime.of(LocalDate.parse(r.day), LocalTime.parse(s.get("at").asText()),
                s.path("localTime").asBoolean(false) ? ZoneOffset.ofHours(14)
                        : java.time.ZoneId.of(s.path("zone").asText("UTC"))).toInstant().toEpochMilli();
        Occurrence next = nextRun(s, Math.max(thisLaunch, now));
        long until = Instant.parse(s.get("until").asText()).toEpochMilli();
        long keep = c.hasNonNull("reEligibleAfter") ? Campaign.durationMillis(c.get("reEligibleAfter").asText()) : 0;
        String snapshot = Keys.campaignSnapshot(r.app, r.id, r.run);
        cmd.pexpire(snapshot, Math.max(keep + Duration.ofDays(1).toMillis(), KEEP_SNAPSHOT.toMillis()));
        if (next.launch() > until) {
            set(r.app, r.id, "runs", runs.toString());
            finishCampaign(r, version, "last run done (" + runs.size() + " runs; the next would be after until)");
            return;
        }
        set(r.app, r.id, "runs", runs.toString(), "run", Long.toString(r.run + 1), "day", next.day().toString(),
                "nextAt", Long.toString(next.launch()), "chunk", "0", "cursor", "-1", "fed", "0", "skipped", "0",
                "-frozen", "", "-frozenAt", "", "-startedAt", "", "-finishedAt", "", "-outcome", "",
                "-phase", "", "-phaseAt", "", "-phaseBase", "", "-decision", "", "-gates", "");
        log.info("campaign {} of app {}: run {} done ({}); run {} at {}", r.id, r.app, r.run, why, r.run + 1,
                Instant.ofEpochMilli(next.launch()));
        mine.remove(r.app + "/" + r.id);
        release(r.app, r.id);
        get(cmd.zadd(Keys.liveCampaigns(r.app), (double) next.launch(), r.id).toCompletableFuture());
    }

    private void finish(Running r, long version, String why) throws Exception {
        if (r.day != null) {
            endRun(r, version, why);
        } else {
            finishCampaign(r, version, why);
        }
    }

    private void finishCampaign(Running r, long version, String why) throws Exception {
        try {
            Campaign done = r.campaign.move("finish", by, why, clock.millis());
            if (get(campaigns.replace(r.app, done, version)).conflict()) {
                return; // moved meanwhile (a pause, a cancel): next tick sees it
            }
        } catch (Campaign.Refused e) {
            return;
        }
        set(r.app, r.id, "finishedAt", Long.toString(clock.millis()), "outcome", why);
        log.info("campaign {} of app {} completed: {}; this node fed {} users in {} ms of feeding", r.id, r.app, why,
                r.fedHere, r.feedNanos / 1_000_000);
        if (r.day == null) {
            // Who was sent it: kept for plan reports (goal events of reached users), then gone.
            cmd.pexpire(Keys.campaignSnapshot(r.app, r.id, r.run), KEEP_SNAPSHOT.toMillis());
        }
        let(r, true);
    }

    /** Stops running a campaign here: lets the lease go and, when it ended, takes it off the live index. */
    private void let(Running r, boolean ended) throws Exception {
        mine.remove(r.app + "/" + r.id);
        release(r.app, r.id);
        if (ended) {
            get(cmd.zrem(Keys.liveCampaigns(r.app), r.id).toCompletableFuture());
        }
    }

    /** The run's fields when this node now holds the lease, else null. */
    private Map<String, String> acquire(String app, String id) throws Exception {
        List<Object> reply = get(script.run(cmd, ScriptOutputType.MULTI,
                new String[] {Keys.campaignRun(app, id)}, "acquire", owner, Long.toString(leaseMillis)));
        if (((Long) reply.get(0)) != 1) {
            return null;
        }
        Map<String, String> run = new HashMap<>();
        for (int i = 1; i + 1 < reply.size(); i += 2) {
            run.put(String.valueOf(reply.get(i)), String.valueOf(reply.get(i + 1)));
        }
        return run;
    }

    private boolean renew(Running r) throws Exception {
        List<Object> reply = get(script.run(cmd, ScriptOutputType.MULTI,
                new String[] {Keys.campaignRun(r.app, r.id)}, "renew", owner, Long.toString(leaseMillis)));
        if (((Long) reply.get(0)) != 1) {
            log.warn("campaign {} of app {}: lease lost (another node feeds it now)", r.id, r.app);
            mine.remove(r.app + "/" + r.id);
            return false;
        }
        return true;
    }

    private void set(String app, String id, String... fieldValues) throws Exception {
        String[] args = new String[3 + fieldValues.length];
        args[0] = "set";
        args[1] = owner;
        args[2] = Long.toString(leaseMillis);
        System.arraycopy(fieldValues, 0, args, 3, fieldValues.length);
        get(script.run(cmd, ScriptOutputType.MULTI, new String[] {Keys.campaignRun(app, id)}, args));
    }

    private void release(String app, String id) throws Exception {
        get(script.run(cmd, ScriptOutputType.MULTI, new String[] {Keys.campaignRun(app, id)}, "release",
                owner, Long.toString(leaseMillis)));
    }

    private <T> T get(CompletableFuture<T> f) throws Exception {
        return f.get(wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    private <T> T get(java.util.concurrent.CompletionStage<T> f) throws Exception {
        return get(f.toCompletableFuture());
    }

    static String encode(RoaringBitmap b) throws IOException {
        b.runOptimize();
        ByteArrayOutputStream out = new ByteArrayOutputStream(b.serializedSizeInBytes());
        b.serialize(new DataOutputStream(out));
        return Base64.getEncoder().encodeToString(out.toByteArray());
    }

    static RoaringBitmap decode(String s) throws IOException {
        RoaringBitmap b = new RoaringBitmap();
        b.deserialize(new DataInputStream(new ByteArrayInputStream(Base64.getDecoder().decode(s))));
        return b;
    }

    /** The campaigns this node feeds now (ids), for tests and metrics. */
    public List<String> running() {
        List<String> out = new ArrayList<>();
        mine.values().forEach(r -> out.add(r.id));
        return out;
    }

    @Override
    public void close() {
        closed = true;
        executor.shutdownNow();
        try {
            executor.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A campaign this node feeds: its checkpoint as this node last wrote it, and the loaded snapshot. */
    private static final class Running {
        final String app;
        final String id;
        final long run;
        Campaign campaign;
        long chunk;
        long cursor;
        long fed;
        long skipped;
        long size;
        RoaringBitmap[] members;
        long holdoutSize;
        /** The variants' ids and weights, in order (empty: one content). */
        final List<String> variants = new ArrayList<>();
        final List<Long> weights = new ArrayList<>();
        long totalWeight;
        long pacedFrom = -1;
        long pacedFed;
        /** Users this node fed and the time it spent feeding them (journal, publish, checkpoint). */
        long fedHere;
        long feedNanos;
        /** The run's phases (one without an experiment or rollout), the current one and when it was fed. */
        final List<Phase> phases;
        int phase;
        long phaseAt;
        /** The horse race's decision (null before it) and the variant the rest gets (null: none). */
        JsonNode decision;
        String chosen;
        /** When the guards were last evaluated, and the warnings they gave (JSON). */
        long guardsAt;
        String warnings = "[]";
        /** The day of this run of a recurring campaign; null for a one-off. */
        String day;
        /** The earlier runs' summaries (JSON array) of a recurring campaign. */
        String runs = "[]";
        /** Chunk entries waiting in the backlog per shard (read at adopt, then kept here), and per shard the request id of a move whose reply was lost. */
        long[] backlog;
        String[] unanswered;

        /** Backlog chunks not yet moved into the journal. */
        long parked() {
            long n = 0;
            for (long b : backlog) {
                n += b;
            }
            for (String u : unanswered) {
                n += u == null ? 0 : 1;
            }
            return n;
        }

        /** The campaign label its messages carry: the id, or id.r<run> for the runs of a recurring one. */
        String label() {
            return day == null ? id : id + ".r" + run;
        }

        Running(String app, Campaign campaign, long run, long chunk, long cursor, long fed) {
            this.app = app;
            this.id = campaign.id();
            this.campaign = campaign;
            for (JsonNode v : campaign.toJson().path("content").path("variants")) {
                variants.add(v.get("id").asText());
                weights.add(v.path("weight").asLong(1));
                totalWeight += v.path("weight").asLong(1);
            }
            this.run = run;
            this.chunk = chunk;
            this.cursor = cursor;
            this.fed = fed;
            this.phases = Phase.of(campaign.toJson());
        }

        void decided(JsonNode d) {
            decision = d;
            chosen = d.hasNonNull("chosen") ? d.get("chosen").asText() : null;
        }

        /** A member's stage point, 0..9,999: which phase (test share, rollout stage) it falls in. */
        int point(long index) {
            return phases.size() == 1 ? 0 : (int) Long.remainderUnsigned(bucket(id + "#stage", index), 10_000);
        }

        /** The variant a member is sent: its own in the test share, the horse race's choice after it. */
        String assigned(long index) {
            return chosen != null && phase > 0 ? chosen : variantOf(index);
        }

        /** Takes the snapshot when every shard is in it; false when it is not complete yet. */
        boolean frozen(Map<String, String> stored) throws IOException {
            String n = stored.get("shards");
            if (n == null) {
                return false;
            }
            int shards = Integer.parseInt(n);
            RoaringBitmap[] m = new RoaringBitmap[shards];
            long total = 0;
            long held = 0;
            for (int s = 0; s < shards; s++) {
                String b = stored.get(Integer.toString(s));
                if (b == null) {
                    return false;
                }
                RoaringBitmap[] parts = decodeShard(b);
                m[s] = parts[0];
                total += m[s].getLongCardinality();
                held += parts[1].getLongCardinality();
            }
            members = m;
            size = total;
            holdoutSize = held;
            return true;
        }

        /** Takes the holdout out of a shard's members ({@code b} keeps the rest) and returns it. */
        RoaringBitmap holdout(RoaringBitmap b, int shard) {
            double percent = campaign.toJson().path("holdoutPercent").asDouble(0);
            RoaringBitmap out = new RoaringBitmap();
            if (percent <= 0) {
                return out;
            }
            long cut = Math.round(percent * 100);
            long base = (long) shard << Keys.USER_SHARD_BITS;
            b.forEach((int local) -> {
                if (Long.remainderUnsigned(bucket(id, base + local), 10_000) < cut) {
                    out.add(local);
                }
            });
            b.andNot(out);
            return out;
        }

        /** The variant of a member (campaigns with variants). */
        String variantOf(long index) {
            return CampaignLauncher.variantOf(id, index, variants, weights, totalWeight);
        }

        /** Up to {@code n} member indexes of the current phase after the cursor, in order. */
        List<Long> next(int n) {
            return next(cursor, n);
        }

        /** The next {@code n} members of this phase after member index {@code after}. */
        List<Long> next(long after, int n) {
            List<Long> out = new ArrayList<>(n);
            Phase ph = phases.get(phase);
            long from = after + 1;
            for (int s = (int) (from >>> Keys.USER_SHARD_BITS); s < members.length && out.size() < n; s++) {
                long base = (long) s << Keys.USER_SHARD_BITS;
                PeekableIntIterator it = members[s].getIntIterator();
                if (from > base) {
                    it.advanceIfNeeded((int) (from - base));
                }
                while (it.hasNext() && out.size() < n) {
                    long index = base + it.next();
                    if (ph.holds(point(index))) {
                        out.add(index);
                    }
                }
            }
            return out;
        }
    }

    /**
     * The variant of member {@code index}: the one whose slice of the weights, in order, holds
     * {@code (bucket / 10,000) mod (sum of weights)} (see {@link #bucket}).
     */
    static String variantOf(String campaign, long index, List<String> variants, List<Long> weights, long totalWeight) {
        long point = Long.remainderUnsigned(Long.divideUnsigned(bucket(campaign, index), 10_000), totalWeight);
        for (int i = 0; i < variants.size(); i++) {
            point -= weights.get(i);
            if (point < 0) {
                return variants.get(i);
            }
        }
        return variants.get(variants.size() - 1);
    }

    /**
     * A slice of a run: the members whose stage point (first 8 bytes of SHA-256({@code "<campaign
     * id>#stage:<user index>"}) mod 10,000, independent of the variant and holdout buckets) is in
     * {@code [lo, hi)}, fed in order, then held {@code holdMs} before the next slice. A horse race's
     * test share is {@code [0, testPercent x 100)}; rollout stages split the rest by their percents.
     */
    record Phase(String kind, int lo, int hi, long holdMs, double percent) {
        boolean holds(int point) {
            return point >= lo && point < hi;
        }

        String describe() {
            return kind.equals("test") ? "the horse race's test share (" + percent + "%)"
                    : kind.equals("stage") ? "the rollout stage to " + percent + "%" : "the audience";
        }

        static List<Phase> of(JsonNode c) {
            List<Phase> out = new ArrayList<>();
            int t = 0;
            if (c.hasNonNull("experiment")) {
                JsonNode e = c.get("experiment");
                t = (int) Math.round(e.get("testPercent").asDouble() * 100);
                out.add(new Phase("test", 0, t, Campaign.durationMillis(e.get("decideAfter").asText()),
                        e.get("testPercent").asDouble()));
            }
            if (c.hasNonNull("rollout")) {
                JsonNode ro = c.get("rollout");
                long hold = Campaign.durationMillis(ro.get("holdFor").asText());
                int lo = t;
                JsonNode stages = ro.get("stages");
                for (int i = 0; i < stages.size(); i++) {
                    double p = stages.get(i).asDouble();
                    int hi = i == stages.size() - 1 ? 10_000 : t + (int) Math.round((10_000 - t) * p / 100);
                    out.add(new Phase("stage", lo, hi, i == stages.size() - 1 ? 0 : hold, p));
                    lo = hi;
                }
            } else {
                out.add(new Phase(t == 0 ? "all" : "rest", t, 10_000, 0, 100));
            }
            return out;
        }
    }
}
