package io.herald.gateway.admission;

import io.herald.gateway.config.AppConfig;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.UserProfile;
import io.herald.protocol.Message;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;

import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.DayOfWeek;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalTime;
import java.time.ZoneId;
import java.time.ZonedDateTime;
import java.time.temporal.TemporalAdjusters;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.function.ToIntFunction;
import java.util.zip.CRC32C;

/**
 * The per-user delivery policy, decided in the admission stage: whether and when each message may
 * go. In order, per message addressed to a user:
 * <ol>
 *   <li><b>class</b> ({@code system} passes everything below; {@code transactional} is outside
 *       the caps; {@code marketing} is counted and capped), from the message or the app's default;</li>
 *   <li><b>send time</b> ({@code sendAt} instant, {@code localTime} in the user's zone,
 *       {@code best_hour} from the user's engagement or the app's): a message not yet due is held
 *       until then ({@code deferred:scheduled|local_time|best_hour});</li>
 *   <li><b>quiet hours</b> (user override, else the app's; in the user's zone, else the quiet
 *       hours' zone, else the app's): hold until the window ends plus a deterministic per-user
 *       spread ({@code deferred:quiet_hours}), or drop ({@code dropped:quiet_hours});</li>
 *   <li><b>frequency caps with priority</b>, then the <b>rate limit</b> (GCRA), in
 *       {@code admit.lua}, one call per slot group: a message that passes reserves its place in
 *       the user's cap log; one that does not is {@code dropped:capped} or
 *       {@code dropped:capped_by_priority} (with the rule id), or waits for the window to reopen
 *       ({@code onCap: defer}). A held message registers a claim (its priority and due time) that
 *       keeps lower-priority sends from taking the user's last slots before it.</li>
 * </ol>
 * Steps 1-3 are computed here from the policy, the user's profile and the clock (no Redis);
 * a message held for its send time or quiet hours comes back through every step again (the caps
 * may have filled meanwhile), except the send time.
 *
 * <p>Thread-safe and stateless apart from Redis and the {@link Policies} cache. Trade-off: a cap
 * place is reserved at admission and given back when the message ends without being accepted
 * ({@link #release}), so two nodes never both take a user's last slot, and a message that later
 * fails costs the user nothing; a message whose class default changes while it is in flight keeps
 * its reservation until it ages out (errs towards sending less).
 */
public final class Admission {
    private final Map<String, AppConfig> apps;
    private final Policies policies;
    private final ToIntFunction<String> slotOf;
    private final Clock clock;
    private final Redis.Script admitScript = new Redis.Script("/scripts/admit.lua");
    private final Redis.Script releaseScript = new Redis.Script("/scripts/release.lua");

    /** Per app: the rate limit's emission interval and burst tolerance (ms), as script arguments. */
    private final Map<String, String[]> rateArgs = new java.util.concurrent.ConcurrentHashMap<>();

    /** How long a claim or cap log outlives its last change (the longest window is 30 days). */
    private static final long KEEP_MS = Duration.ofDays(32).toMillis();

    public Admission(Map<String, AppConfig> apps, Policies policies, ToIntFunction<String> slotOf, Clock clock) {
        this.apps = apps;
        this.policies = policies;
        this.slotOf = slotOf;
        this.clock = clock;
    }

    /** True when {@code app} is configured (a journal may hold messages of an app removed since). */
    public boolean knows(String app) {
        return apps.containsKey(app);
    }

    /** The clock of every policy decision. */
    public Clock clock() {
        return clock;
    }

    /**
     * What admission knows of one message: the item, the channel its plan starts with (the cap
     * log counts it there), the user's profile and, for {@code best_hour}, the user's engagement
     * by UTC hour (null when not read).
     */
    public record Check(JournalItem item, String channel, UserProfile profile, double[] engagement) {
    }

    /** What a verdict does. */
    public enum Kind { SEND, DEFER, DROP }

    /**
     * A verdict: send now; defer until {@code until} (epoch ms) with the state label
     * {@code label} ({@code deferred} for a rate-limit slot, {@code deferred:<reason>} for a hold),
     * coming back {@code held} (checked again) or not (its slot is reserved); or drop with
     * {@code label} ({@code dropped:<reason>}). {@code detail} is the history line's detail.
     */
    public record Verdict(Kind kind, long until, String label, boolean held, String detail) {
        static final Verdict SEND = new Verdict(Kind.SEND, 0, null, false, null);

        static Verdict drop(String reason, String detail) {
            return new Verdict(Kind.DROP, 0, "dropped:" + reason, false, detail);
        }

        static Verdict hold(long until, String reason, String detail) {
            return new Verdict(Kind.DEFER, until, "deferred:" + reason, true, detail);
        }
    }

    /** The class a message is treated as: its own, else the app's default for batch items. */
    public Message.MessageClass classOf(String app, Message m) {
        Message.MessageClass c = m.policy() == null ? null : m.policy().messageClass();
        return c != null ? c : policies.of(app).defaults().messageClass();
    }

    /** One script operation, for one message (null: decided without Redis). */
    /**
     * One script operation for one message: mode {@code g} (rate limit), {@code c} (caps, then the
     * rate limit; {@code zone} picks its window group, {@code mask} the rules that apply) or
     * {@code h} (register a claim). Null for a message decided without Redis.
     */
    private record Op(int check, String mode, String[] args, String app, String user, ZoneId zone, String mask) {
    }

    private record QuietKey(ZoneId zone, LocalTime start, LocalTime end) {
    }

    /** Computations shared by the messages of one call: quiet-hour ends per zone and window. */
    private static final class CallCache {
        final Map<QuietKey, Long> quietEnds = new java.util.HashMap<>();
        /** Per app, channel and category: which of the app's rules apply ('1'/'0' each). */
        final Map<String, String> masks = new java.util.HashMap<>();
    }

    /**
     * The verdicts of {@code checks}, one per check, in order. Queues one {@code admit.lua} call per
     * slot group on {@code cmd} (the caller flushes). Idempotent per {@code requestId} for
     * {@code remember}: a caller that retries a call whose reply it did not get passes the same id
     * and checks, and gets the verdicts of the calls that ran, without reserving anything twice.
     */
    public CompletableFuture<Verdict[]> admit(RedisClusterAsyncCommands<String, String> cmd, List<Check> checks,
                                              String requestId, Duration remember) {
        long now = clock.millis();
        Verdict[] out = new Verdict[checks.size()];
        List<Op> ops = new ArrayList<>();
        CallCache cache = new CallCache();
        for (int i = 0; i < checks.size(); i++) {
            decide(i, checks.get(i), now, out, ops, cache);
        }
        Map<Integer, List<Op>> groups = new LinkedHashMap<>();
        for (Op op : ops) {
            groups.computeIfAbsent(slotOf.applyAsInt(Keys.admission(op.app(), op.user())), k -> new ArrayList<>()).add(op);
        }
        List<CompletableFuture<?>> calls = new ArrayList<>();
        for (List<Op> group : groups.values()) {
            List<String> keys = new ArrayList<>(group.size() * 2 + 1);
            List<String> args = new ArrayList<>();
            args.add(Long.toString(Math.max(1, remember.toMillis())));
            args.add(Long.toString(now));
            long longest = 0;
            for (Op op : group) {
                longest = Math.max(longest, policies.of(op.app()).longestWindow().toMillis());
            }
            args.add(Long.toString(now - longest - Duration.ofDays(1).toMillis()));
            args.add(Long.toString(KEEP_MS));
            // The rule table (each app's caps once), the window groups (per app and zone) and the
            // rule sets (per group and the rules that apply).
            Map<String, Integer> firstRule = new LinkedHashMap<>();
            List<String> table = new ArrayList<>();
            Map<String, Integer> groupOf = new LinkedHashMap<>();
            List<String> windows = new ArrayList<>();
            Map<String, Integer> setOf = new LinkedHashMap<>();
            List<String> sets = new ArrayList<>();
            List<String> perCheck = new ArrayList<>();
            for (Op op : group) {
                keys.add(Keys.admission(op.app(), op.user()));
                perCheck.add(op.mode());
                if (!op.mode().equals("c")) {
                    perCheck.addAll(List.of(op.args()));
                    continue;
                }
                keys.add(Keys.admissionLog(op.app(), op.user()));
                AppPolicy policy = policies.of(op.app());
                int first = firstRule.computeIfAbsent(op.app(), x -> {
                    int f = table.size() / 5 + 1;
                    for (AppPolicy.Cap cap : policy.caps()) {
                        table.add(cap.id());
                        table.add(Integer.toString(cap.limit()));
                        table.add(cap.scope().name().toLowerCase(java.util.Locale.ROOT));
                        table.add(cap.scopeValue() == null ? "" : cap.scopeValue());
                        table.add(Long.toString(cap.window() == AppPolicy.WindowKind.ROLLING ? cap.rolling().toMillis() : 0));
                    }
                    return f;
                });
                int g = groupOf.computeIfAbsent(op.app() + '\u0000' + op.zone().getId(), x -> {
                    windows.add(Integer.toString(first));
                    windows.add(Integer.toString(policy.caps().size()));
                    String[] rl = rateArgs(op.app());
                    windows.add(rl[0]);
                    windows.add(rl[1]);
                    for (AppPolicy.Cap cap : policy.caps()) {
                        long[] w = window(cap, now, op.zone());
                        windows.add(Long.toString(w[0]));
                        windows.add(Long.toString(w[1]));
                    }
                    return groupOf.size() + 1;
                });
                int set = setOf.computeIfAbsent(g + ":" + op.mask(), x -> {
                    sets.add(Integer.toString(g));
                    sets.add(op.mask());
                    return setOf.size() + 1;
                });
                perCheck.add(Integer.toString(set));
                perCheck.addAll(List.of(op.args()));
            }
            args.add(Integer.toString(table.size() / 5));
            args.addAll(table);
            args.add(Integer.toString(groupOf.size()));
            args.addAll(windows);
            args.add(Integer.toString(setOf.size()));
            args.addAll(sets);
            args.addAll(perCheck);
            Op first = group.get(0);
            keys.add(Keys.rateLimitRequest(first.app(), first.user(), requestId));
            calls.add(admitScript.<List<Object>>run(cmd, ScriptOutputType.MULTI, keys.toArray(new String[0]),
                    args.toArray(new String[0])).thenAccept(reply -> {
                        for (int j = 0; j < group.size(); j++) {
                            Op op = group.get(j);
                            out[op.check()] = verdict(String.valueOf(reply.get(j)), out[op.check()]);
                        }
                    }));
        }
        return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenApply(v -> out);
    }

    /** Queues the deletion of the request keys of an answered call (nobody retries it now). */
    public void forget(RedisClusterAsyncCommands<String, String> cmd, List<Check> checks, String requestId) {
        Map<Integer, String[]> firsts = new LinkedHashMap<>();
        for (Check c : checks) {
            String app = c.item().app();
            String user = c.item().message().user();
            firsts.putIfAbsent(slotOf.applyAsInt(Keys.admission(app, user)), new String[] {app, user});
        }
        for (String[] f : firsts.values()) {
            cmd.del(Keys.rateLimitRequest(f[0], f[1], requestId));
        }
    }

    private static Verdict verdict(String v, Verdict pending) {
        if (v.equals("n")) {
            return Verdict.SEND;
        }
        if (v.equals("h")) {
            return pending; // the hold decided here, its claim now registered
        }
        if (v.equals("r")) {
            return Verdict.drop("rate_limited", null);
        }
        String[] p = v.split(":", 3);
        return switch (p[0]) {
            case "d" -> new Verdict(Kind.DEFER, Long.parseLong(p[1]), "deferred", false, "until " + p[1]);
            case "c" -> Verdict.drop("capped", "rule " + p[1]);
            case "p" -> Verdict.drop("capped_by_priority", "rule " + p[1] + ": a higher-priority message is due in its window");
            case "w" -> Verdict.hold(Long.parseLong(p[1]), "capped", "rule " + p[2] + ": until " + p[1]);
            default -> throw new IllegalStateException("admit.lua: unknown verdict " + v);
        };
    }

    private void decide(int i, Check c, long now, Verdict[] out, List<Op> ops, CallCache cache) {
        JournalItem item = c.item();
        Message m = item.message();
        String app = item.app();
        AppPolicy policy = policies.of(app);
        Message.Policy mp = m.policyOrDefault();
        Message.MessageClass cls = classOf(app, m);
        UserProfile profile = c.profile() == null ? UserProfile.EMPTY : c.profile();
        ZoneId zone = zone(profile.timeZone(), policy.zone());
        boolean marketing = cls == Message.MessageClass.MARKETING;
        long deadline = item.deadline();
        if (cls == Message.MessageClass.SYSTEM) {
            out[i] = Verdict.SEND;
            return;
        }
        // 2. The send time (once: a held message that comes back is due).
        if (item.phase() == JournalItem.Phase.NEW) {
            long due = 0;
            String reason = null;
            if (mp.sendAt() != null) {
                due = mp.sendAt();
                reason = "scheduled";
            } else if (mp.localTime() != null) {
                due = mp.localTime().indexOf('T') > 0
                        ? java.time.LocalDateTime.parse(mp.localTime()).atZone(zone).toInstant().toEpochMilli()
                        : nextLocal(now, zone, LocalTime.parse(mp.localTime()));
                reason = "local_time";
            } else if (mp.bestHour()) {
                due = bestHour(now, c.engagement(), policy, policies.appBestHour(app), zone);
                reason = "best_hour";
            }
            if (due > now) {
                if (due > deadline && m.ttlSeconds() > 0) {
                    out[i] = Verdict.drop("expired", reason + " send time " + Instant.ofEpochMilli(due)
                            + " is after the message's ttl");
                    return;
                }
                out[i] = Verdict.hold(due, reason, "until " + due);
                if (marketing) {
                    ops.add(holdOp(i, item, mp.rank(), due));
                }
                return;
            }
        }
        // 3. Quiet hours.
        AppPolicy.QuietHours quiet = quietHours(profile, policy);
        if (quiet != null && (marketing || quiet.transactional())) {
            ZoneId qz = zone(profile.timeZone(), quiet.zone() != null ? quiet.zone() : policy.zone());
            long end = cache.quietEnds.computeIfAbsent(new QuietKey(qz, quiet.start(), quiet.end()),
                    x -> quietEnd(now, qz, quiet.start(), quiet.end()));
            if (end > 0) {
                String onQuiet = mp.onQuiet() != null ? mp.onQuiet() : policy.defaults().onQuiet();
                if (onQuiet.equals("drop")) {
                    out[i] = Verdict.drop("quiet_hours", "quiet hours until " + Instant.ofEpochMilli(end));
                    return;
                }
                long release = end + spread(app, m.user(), quiet.releaseSpread());
                if (release > deadline && m.ttlSeconds() > 0) {
                    out[i] = Verdict.drop("expired", "quiet hours end after the message's ttl");
                    return;
                }
                out[i] = Verdict.hold(release, "quiet_hours", "until " + release);
                if (marketing) {
                    ops.add(holdOp(i, item, mp.rank(), release));
                }
                return;
            }
        }
        // 4. Caps (marketing) and the rate limit.
        if (!marketing) {
            String[] rl = rateArgs(app);
            ops.add(new Op(i, "g", new String[] {rl[0], rl[1], Long.toString(deadline)}, app, m.user(), null, null));
            return;
        }
        String channel = c.channel() == null ? "" : c.channel();
        String category = orEmpty(m.category());
        String mask = cache.masks.computeIfAbsent(app + '\u0000' + channel + '\u0000' + category, x -> {
            StringBuilder b = new StringBuilder(policy.caps().size());
            for (AppPolicy.Cap cap : policy.caps()) {
                b.append(applies(cap, channel, category) ? '1' : '0');
            }
            return b.toString();
        });
        String onCap = mp.onCap() != null ? mp.onCap() : policy.defaults().onCap();
        int flags = mp.rank() * 4 + (onCap.equals("defer") ? 2 : 0) + (item.phase() == JournalItem.Phase.HELD ? 1 : 0);
        ops.add(new Op(i, "c", new String[] {Long.toString(deadline), item.messageId(), channel, category,
            Integer.toString(flags)}, app, m.user(), zone, mask));
    }

    /** The app's rate limit as script arguments: emission interval and burst tolerance, ms. */
    private String[] rateArgs(String app) {
        return rateArgs.computeIfAbsent(app, x -> {
            AppConfig.RateLimit r = apps.get(x).rateLimit();
            double interval = r.emissionIntervalMillis();
            return new String[] {Double.toString(interval), Double.toString(interval * r.burst())};
        });
    }

    private static Op holdOp(int i, JournalItem item, int rank, long due) {
        return new Op(i, "h", new String[] {item.messageId(), Integer.toString(rank), orEmpty(item.message().category()),
            Long.toString(due)}, item.app(), item.message().user(), null, null);
    }

    private static boolean applies(AppPolicy.Cap cap, String channel, String category) {
        return switch (cap.scope()) {
            case ALL -> true;
            case CHANNEL -> cap.scopeValue().equals(channel)
                    || cap.scopeValue().equals("push") && (channel.equals("apns") || channel.equals("fcm"));
            case CATEGORY -> cap.scopeValue().equals(category);
        };
    }

    private static String orEmpty(String s) {
        return s == null ? "" : s.replace("|", "/");
    }

    private static final Map<String, java.util.Optional<ZoneId>> ZONES = new java.util.concurrent.ConcurrentHashMap<>();

    /** The user's zone if valid, else {@code fallback}. */
    static ZoneId zone(String userZone, ZoneId fallback) {
        if (userZone == null) {
            return fallback;
        }
        return ZONES.computeIfAbsent(userZone, z -> {
            try {
                return java.util.Optional.of(ZoneId.of(z));
            } catch (java.time.DateTimeException e) {
                return java.util.Optional.empty(); // an unknown zone in a profile: the app's
            }
        }).orElse(fallback);
    }

    private static AppPolicy.QuietHours quietHours(UserProfile profile, AppPolicy policy) {
        UserProfile.QuietHours own = profile.quietHours();
        if (own == null) {
            return policy.quietHours();
        }
        AppPolicy.QuietHours app = policy.quietHours();
        return new AppPolicy.QuietHours(own.start(), own.end(), app == null ? null : app.zone(),
                app != null && app.transactional(), app == null ? Duration.ofMinutes(10) : app.releaseSpread());
    }

    /**
     * When the quiet window {@code start}..{@code end} (wall clock in {@code zone}; across midnight
     * when end &lt;= start) that contains {@code now} ends, or 0 when {@code now} is outside it.
     * Gaps and overlaps of daylight-saving changes resolve as {@link ZonedDateTime#of} does
     * (a time in a gap moves forward by the gap; in an overlap, the earlier offset).
     */
    public static long quietEnd(long now, ZoneId zone, LocalTime start, LocalTime end) {
        ZonedDateTime t = Instant.ofEpochMilli(now).atZone(zone);
        LocalDate today = t.toLocalDate();
        // the window that started today, and the one that started yesterday (across midnight)
        for (LocalDate day : List.of(today, today.minusDays(1))) {
            ZonedDateTime s = ZonedDateTime.of(day, start, zone);
            ZonedDateTime e = ZonedDateTime.of(end.isAfter(start) ? day : day.plusDays(1), end, zone);
            if (!t.isBefore(s) && t.isBefore(e)) {
                return e.toInstant().toEpochMilli();
            }
        }
        return 0;
    }

    /** The next occurrence (after {@code now}) of wall-clock {@code time} in {@code zone}. */
    public static long nextLocal(long now, ZoneId zone, LocalTime time) {
        ZonedDateTime t = Instant.ofEpochMilli(now).atZone(zone);
        ZonedDateTime at = ZonedDateTime.of(t.toLocalDate(), time, zone);
        if (!at.isAfter(t)) {
            at = ZonedDateTime.of(t.toLocalDate().plusDays(1), time, zone);
        }
        return at.toInstant().toEpochMilli();
    }

    /**
     * The send time of a {@code best_hour} message: the start of the user's most engaged UTC hour
     * within the next 24 h (the current hour counts when it is the best: now); with less decayed
     * engagement than {@code minEvents}, the app's most engaged hour ({@code appHour}, -1 when
     * unknown), else the policy's default hour in the user's zone.
     */
    public static long bestHour(long now, double[] engagement, AppPolicy policy, int appHour, ZoneId zone) {
        int best = -1;
        if (engagement != null) {
            double total = 0;
            double max = 0;
            for (int h = 0; h < 24; h++) {
                total += engagement[h];
                if (engagement[h] > max) {
                    max = engagement[h];
                    best = h;
                }
            }
            if (total < policy.bestHour().minEvents()) {
                best = -1;
            }
        }
        if (best < 0) {
            best = appHour;
        }
        if (best < 0) {
            ZonedDateTime local = Instant.ofEpochMilli(now).atZone(zone);
            int h = policy.bestHour().defaultHour();
            return local.getHour() == h ? now : nextLocal(now, zone, LocalTime.of(h, 0));
        }
        ZonedDateTime t = Instant.ofEpochMilli(now).atZone(ZoneId.of("UTC"));
        if (t.getHour() == best) {
            return now;
        }
        ZonedDateTime at = t.withMinute(0).withSecond(0).withNano(0).withHour(best);
        if (at.isBefore(t)) {
            at = at.plusDays(1);
        }
        return at.toInstant().toEpochMilli();
    }

    /** A deterministic spread in [0, spread) per app and user (CRC-32C), so releases are not one burst. */
    static long spread(String app, String user, Duration spread) {
        if (spread.isZero()) {
            return 0;
        }
        CRC32C crc = new CRC32C();
        crc.update((app + '\u0000' + user).getBytes(StandardCharsets.UTF_8));
        return crc.getValue() % spread.toMillis();
    }

    /**
     * The window of a cap at {@code now} as admit.lua reads it: [start, end). Calendar day and week
     * (ISO weeks, from Monday) in {@code zone}; rolling: [now - length, now + length) (sends
     * reserved for later count, and claims due before this send would age out).
     */
    public static long[] window(AppPolicy.Cap cap, long now, ZoneId zone) {
        ZonedDateTime t = Instant.ofEpochMilli(now).atZone(zone);
        return switch (cap.window()) {
            case ROLLING -> new long[] {now - cap.rolling().toMillis(), now + cap.rolling().toMillis()};
            case DAY -> new long[] {t.toLocalDate().atStartOfDay(zone).toInstant().toEpochMilli(),
                t.toLocalDate().plusDays(1).atStartOfDay(zone).toInstant().toEpochMilli()};
            case WEEK -> {
                LocalDate monday = t.toLocalDate().with(TemporalAdjusters.previousOrSame(DayOfWeek.MONDAY));
                yield new long[] {monday.atStartOfDay(zone).toInstant().toEpochMilli(),
                    monday.plusWeeks(1).atStartOfDay(zone).toInstant().toEpochMilli()};
            }
        };
    }

    /**
     * Gives back what a marketing message that ended held: its claim, and, with {@code giveBack}
     * (admitted, then ended without being accepted), its place (its log entry and one from each
     * counter of its app's rules that counted it). Queued on {@code cmd} (one {@code release.lua}
     * call, the user's slot).
     */
    public CompletableFuture<Long> release(RedisClusterAsyncCommands<String, String> cmd, JournalItem item,
                                           boolean giveBack) {
        Message m = item.message();
        List<String> args = new ArrayList<>();
        args.add(item.messageId());
        args.add(giveBack ? "0" : "1");
        args.add("c|" + item.messageId() + '|' + m.policyOrDefault().rank() + '|' + orEmpty(m.category()));
        if (giveBack) {
            for (AppPolicy.Cap cap : policies.of(item.app()).caps()) {
                args.add(cap.id());
                args.add(cap.scope().name().toLowerCase(java.util.Locale.ROOT));
                args.add(cap.scopeValue() == null ? "" : cap.scopeValue());
            }
        }
        return releaseScript.run(cmd, ScriptOutputType.INTEGER, new String[] {Keys.admission(item.app(), m.user()),
            Keys.admissionLog(item.app(), m.user())}, args.toArray(new String[0]));
    }

    /** A fresh request id for a call. */
    public static String requestId() {
        return UUID.randomUUID().toString();
    }
}
