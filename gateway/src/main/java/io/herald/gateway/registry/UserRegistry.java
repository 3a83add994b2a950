package io.herald.gateway.registry;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Users per app, in Redis: one hash per (app, user) holding one JSON value per device id and the
 * profile under the field {@code @profile} (device ids never start with {@code @}), so one
 * HGETALL reads everything the resolve stage needs. The phone number is stored encrypted
 * ({@link PersonalDataCipher}, bound to app and user). Writes come from the API ({@link #put},
 * {@link #delete}, {@link #update}, {@link #deleteUser}; each keeps the user's targeting data and
 * derived flags in {@link UserData} in step) and from the record stage
 * (invalidation, by script, only while the token is unchanged). The resolve stage reads many
 * users at once on its own pipelined connection ({@link #read}). Thread-safe; stateless apart
 * from the shared Redis.
 */
public final class UserRegistry {
    /** A user may have at most this many devices; more is a 422 at registration. */
    public static final int MAX_DEVICES_PER_USER = 100;

    /** The hash field of the profile. */
    public static final String PROFILE = "@profile";
    /** The prefix of the hash fields of aliases: {@code @al:<namespace>} = the alias id. */
    public static final String ALIAS = "@al:";

    private final int recentMessages;
    private final Redis.Script aliasRelease = new Redis.Script("/scripts/alias-release.lua");

    /** An alias already names another user. Stackless. */
    public static final class AliasTakenException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final String namespace;

        AliasTakenException(String namespace) {
            super("alias " + namespace + " taken", null, false, false);
            this.namespace = namespace;
        }

        public String namespace() {
            return namespace;
        }
    }

    /**
     * Sets or removes (null) a user's aliases, namespace -> id. Each alias is claimed first
     * ({@code SET NX} on its key), so two users never hold the same alias of one namespace; when one
     * is taken, the claims this call made are released and it fails with {@link
     * AliasTakenException}. Then the user's old aliases of those namespaces are released (only while
     * they still name this user) and the user's hash records the new ones.
     */
    public CompletableFuture<Void> setAliases(String app, String user, Map<String, String> aliases) {
        if (aliases.isEmpty()) {
            return CompletableFuture.completedFuture(null);
        }
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        List<String> namespaces = new ArrayList<>(aliases.keySet());
        List<CompletableFuture<Boolean>> claims = new ArrayList<>();
        List<CompletableFuture<String>> owners = new ArrayList<>();
        for (String ns : namespaces) {
            String id = aliases.get(ns);
            if (id == null) {
                claims.add(CompletableFuture.completedFuture(false));
                owners.add(CompletableFuture.completedFuture(null));
            } else {
                String key = Keys.alias(app, ns, id);
                claims.add(cmd.setnx(key, user).toCompletableFuture());
                owners.add(cmd.get(key).toCompletableFuture());
            }
        }
        CompletableFuture<List<String>> old = cmd.hmget(Keys.devices(app, user), namespaces.stream()
                .map(ns -> ALIAS + ns).toArray(String[]::new)).toCompletableFuture()
                .thenApply(kvs -> kvs.stream().map(kv -> kv.hasValue() ? kv.getValue() : null).toList());
        return Redis.all(claims).thenCombine(Redis.all(owners), (claimed, owner) -> {
            String taken = null;
            for (int i = 0; i < namespaces.size(); i++) {
                if (aliases.get(namespaces.get(i)) != null && !user.equals(owner.get(i))) {
                    taken = namespaces.get(i);
                }
            }
            return new Object[] {claimed, taken};
        }).thenCombine(old, (ct, before) -> new Object[] {ct[0], ct[1], before}).thenCompose(x -> {
            @SuppressWarnings("unchecked")
            List<Boolean> claimed = (List<Boolean>) x[0];
            String taken = (String) x[1];
            @SuppressWarnings("unchecked")
            List<String> before = (List<String>) x[2];
            List<CompletableFuture<?>> writes = new ArrayList<>();
            if (taken != null) {
                for (int i = 0; i < namespaces.size(); i++) {
                    if (claimed.get(i)) {
                        writes.add(release(app, namespaces.get(i), aliases.get(namespaces.get(i)), user));
                    }
                }
                String t = taken;
                return CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0]))
                        .thenCompose(v -> CompletableFuture.failedFuture(new AliasTakenException(t)));
            }
            Map<String, String> set = new java.util.HashMap<>();
            List<String> unset = new ArrayList<>();
            for (int i = 0; i < namespaces.size(); i++) {
                String ns = namespaces.get(i);
                String id = aliases.get(ns);
                if (before.get(i) != null && !before.get(i).equals(id)) {
                    writes.add(release(app, ns, before.get(i), user));
                }
                if (id == null) {
                    unset.add(ALIAS + ns);
                } else {
                    set.put(ALIAS + ns, id);
                }
            }
            if (!set.isEmpty()) {
                writes.add(cmd.hset(Keys.devices(app, user), set).toCompletableFuture());
            }
            if (!unset.isEmpty()) {
                writes.add(cmd.hdel(Keys.devices(app, user), unset.toArray(new String[0])).toCompletableFuture());
            }
            return CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0]));
        });
    }

    /** The user-hash field listing the ids merged into this user (comma-joined). */
    public static final String MERGED_FROM = "@mergedFrom";
    /** The alias namespace a merged user's id lives on in. */
    public static final String MERGED_NAMESPACE = "merged";

    private final Redis.Script mergeOut = new Redis.Script("/scripts/attrs-lib.lua", "/scripts/merge-out.lua");
    private final Redis.Script mergeIn = new Redis.Script("/scripts/attrs-lib.lua", "/scripts/merge-in.lua");

    /** A merge that cannot be done: a user missing, or the result would break a limit. Stackless. */
    public static final class MergeException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final String reason;

        MergeException(String reason, String message) {
            super(message, null, false, false);
            this.reason = reason;
        }

        /** {@code not_found:user}, {@code not_found:from}, {@code too_many_tags}, {@code too_many_attributes}, {@code conflict}. */
        public String reason() {
            return reason;
        }
    }

    /**
     * Folds user {@code from} into {@code user}: tags united; attributes, phone, locale, time zone
     * and channel order of {@code user} win and {@code from} fills what it lacks; consent per channel
     * is the more restrictive (an opt-out on either side stays); devices united ({@code user}'s win
     * on the same device id); {@code from}'s aliases move where {@code user} has none in that
     * namespace; event counts and sums added per day. {@code from} then no longer exists: its id
     * becomes the alias {@code merged:<from>} of {@code user}, and a write still in flight to its
     * index is redirected to {@code user}. Completes with true, or false when {@code from} was already
     * merged into {@code user} (idempotent); a merge interrupted half-way completes when repeated.
     */
    public CompletableFuture<Boolean> merge(String app, String user, String from, long now, int windowDays) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        CompletableFuture<Map<String, String>> target = cmd.hgetall(Keys.devices(app, user)).toCompletableFuture();
        CompletableFuture<Map<String, String>> source = cmd.hgetall(Keys.devices(app, from)).toCompletableFuture();
        String aliasKey = Keys.alias(app, MERGED_NAMESPACE, from);
        return target.thenCombine(source, (t, f) -> new Object[] {t, f}).thenCompose(both -> {
            @SuppressWarnings("unchecked")
            Map<String, String> t = (Map<String, String>) both[0];
            @SuppressWarnings("unchecked")
            Map<String, String> f = (Map<String, String>) both[1];
            if (t.isEmpty()) {
                return CompletableFuture.failedFuture(new MergeException("not_found:user", "user: not found"));
            }
            if (f.isEmpty()) {
                return cmd.get(aliasKey).toCompletableFuture().thenCompose(owner -> user.equals(owner)
                        ? CompletableFuture.completedFuture(false)
                        : CompletableFuture.failedFuture(new MergeException("not_found:from", "from: not found")));
            }
            return data.read(app, user).thenCombine(data.read(app, from), (tv, fv) -> {
                // The limits, checked before anything moves.
                java.util.Set<String> tags = new java.util.HashSet<>();
                java.util.Set<String> attrs = new java.util.HashSet<>();
                for (UserData.View v : new UserData.View[] {tv, fv}) {
                    if (v != null) {
                        tags.addAll(v.tags());
                        v.attributes().fieldNames().forEachRemaining(attrs::add);
                    }
                }
                if (tags.size() > UserData.MAX_TAGS) {
                    throw new MergeException("too_many_tags", "the merged user would have " + tags.size()
                            + " tags (at most " + UserData.MAX_TAGS + ")");
                }
                if (attrs.size() > UserData.MAX_ATTRIBUTES) {
                    throw new MergeException("too_many_attributes", "the merged user would have " + attrs.size()
                            + " attributes (at most " + UserData.MAX_ATTRIBUTES + ")");
                }
                return true;
            }).thenCompose(ok -> cmd.setnx(aliasKey, user).toCompletableFuture()
                    .thenCompose(set -> cmd.get(aliasKey).toCompletableFuture())
                    .thenCompose(owner -> user.equals(owner) ? CompletableFuture.completedFuture(null)
                            : CompletableFuture.failedFuture(new MergeException("conflict",
                                    "from: its id is already the alias of another merged user"))))
                    .thenCompose(v -> data.indexes(app, List.of(user), true))
                    .thenCompose(idx -> foldData(app, user, idx.get(user), from, f.get(UserData.INDEX), now, windowDays))
                    .thenCompose(v -> foldProfile(app, user, t, from, f))
                    .thenCompose(v -> retire(app, user, from, f))
                    .thenCompose(v -> refreshFlags(app, List.of(user)))
                    .thenApply(v -> true);
        });
    }

    /** merge-out.lua on {@code from}'s shard, then merge-in.lua on {@code user}'s. */
    private CompletableFuture<Void> foldData(String app, String user, long userIndex, String from, String fromIndex,
                                             long now, int windowDays) {
        if (fromIndex == null) {
            return CompletableFuture.completedFuture(null);
        }
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        int fromShard = UserData.shardOf(Long.parseLong(fromIndex));
        int shard = UserData.shardOf(userIndex);
        return mergeOut.<String>run(cmd, io.lettuce.core.ScriptOutputType.VALUE,
                new String[] {Keys.userData(app, fromShard), Keys.userIds(app, fromShard), Keys.knownBits(app, fromShard)},
                Keys.userBits(app, fromShard), Integer.toString(Keys.USER_SHARD_BITS), fromIndex, user)
                .thenCompose(snapshot -> snapshot == null ? CompletableFuture.completedFuture("ok")
                        : mergeIn.<String>run(cmd, io.lettuce.core.ScriptOutputType.VALUE,
                                new String[] {Keys.userData(app, shard), Keys.userIds(app, shard), Keys.knownBits(app, shard)},
                                Keys.userBits(app, shard), Integer.toString(Keys.USER_SHARD_BITS), Long.toString(userIndex),
                                user, Integer.toString(UserData.bucket(app, user)), fromIndex, snapshot, Long.toString(now),
                                Integer.toString(windowDays), Integer.toString(UserData.MAX_TAGS),
                                Integer.toString(UserData.MAX_ATTRIBUTES)))
                .thenCompose(outcome -> {
                    if (!"ok".equals(outcome) && !"already".equals(outcome)) {
                        return CompletableFuture.failedFuture(new MergeException(outcome, "the merged user would exceed "
                                + (outcome.equals("too_many_tags") ? UserData.MAX_TAGS + " tags" : UserData.MAX_ATTRIBUTES
                                + " attributes")));
                    }
                    return cmd.hdel(Keys.mergeSnapshots(app, fromShard), fromIndex).toCompletableFuture()
                            .thenApply(n -> (Void) null);
                });
    }

    /** Profile, consent, devices and aliases of {@code from} into {@code user}. */
    private CompletableFuture<Void> foldProfile(String app, String user, Map<String, String> t, String from,
                                                Map<String, String> f) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        User mine = decodeUser(app, user, t);
        User theirs = decodeUser(app, from, f);
        ObjectNode patch = mapper.createObjectNode();
        UserProfile a = mine.profile();
        UserProfile b = theirs.profile();
        if (a.phone() == null && b.phone() != null) {
            patch.put("phone", b.phone());
        }
        if (a.locale() == null && b.locale() != null) {
            patch.put("locale", b.locale());
        }
        if (a.timeZone() == null && b.timeZone() != null) {
            patch.put("timeZone", b.timeZone());
        }
        if (a.channels().isEmpty() && !b.channels().isEmpty()) {
            b.channels().forEach(patch.putArray("channels")::add);
        }
        for (Map.Entry<String, UserProfile.Consent> c : b.consent().entrySet()) {
            UserProfile.Consent m = a.consent().get(c.getKey());
            if (c.getValue().optedOut() ? (m == null || !m.optedOut()) : m == null) {
                patch.with("consent").putObject(c.getKey()).put("state", c.getValue().state())
                        .put("at", c.getValue().at()).put("source", c.getValue().source());
            }
        }
        List<CompletableFuture<?>> writes = new ArrayList<>();
        if (!patch.isEmpty()) {
            writes.add(updateProfile(app, user, patch));
        }
        for (Map.Entry<String, String> e : f.entrySet()) {
            if (!e.getKey().startsWith("@")) {
                writes.add(cmd.hsetnx(Keys.devices(app, user), e.getKey(), e.getValue()).toCompletableFuture());
            }
        }
        for (Map.Entry<String, String> al : theirs.aliases().entrySet()) {
            String key = Keys.alias(app, al.getKey(), al.getValue());
            if (mine.aliases().containsKey(al.getKey())) {
                writes.add(release(app, al.getKey(), al.getValue(), from));
            } else {
                writes.add(cmd.set(key, user).toCompletableFuture());
                writes.add(cmd.hset(Keys.devices(app, user), ALIAS + al.getKey(), al.getValue()).toCompletableFuture());
            }
        }
        String merged = t.get(MERGED_FROM);
        List<String> list = merged == null ? new ArrayList<>() : new ArrayList<>(List.of(merged.split(",")));
        if (!list.contains(from)) {
            list.add(from);
        }
        if (f.get(MERGED_FROM) != null) {
            for (String m : f.get(MERGED_FROM).split(",")) {
                if (!list.contains(m)) {
                    list.add(m);
                }
                writes.add(cmd.set(Keys.alias(app, MERGED_NAMESPACE, m), user).toCompletableFuture());
            }
        }
        writes.add(cmd.hset(Keys.devices(app, user), MERGED_FROM, String.join(",", list)).toCompletableFuture());
        return CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0]));
    }

    /** Removes what is left of {@code from}: its hash, rate-limit state and engagement. */
    private CompletableFuture<Void> retire(String app, String user, String from, Map<String, String> f) {
        return redis.async().del(Keys.devices(app, from), Keys.admission(app, from), Keys.admissionLog(app, from),
                Keys.lastCampaign(app, from), Keys.recentMessages(app, from),
                Keys.engagement(app, from))
                .toCompletableFuture().thenApply(n -> null);
    }

    private CompletableFuture<Long> release(String app, String ns, String id, String user) {
        return aliasRelease.run(redis.async(), io.lettuce.core.ScriptOutputType.INTEGER,
                new String[] {Keys.alias(app, ns, id)}, user);
    }

    /**
     * The users that aliases ({@code namespace:id}) name; unknown aliases are absent. In chunks of
     * 4,096 lookups, one after the other.
     */
    public CompletableFuture<Map<String, String>> resolve(String app, Collection<String> refs) {
        List<String> all = new ArrayList<>(new java.util.LinkedHashSet<>(refs));
        Map<String, String> out = new java.util.concurrent.ConcurrentHashMap<>();
        CompletableFuture<Void> chain = CompletableFuture.completedFuture(null);
        for (int from = 0; from < all.size(); from += 4096) {
            List<String> chunk = all.subList(from, Math.min(all.size(), from + 4096));
            chain = chain.thenCompose(v -> {
                List<CompletableFuture<String>> gets = new ArrayList<>();
                for (String ref : chunk) {
                    int colon = ref.indexOf(':');
                    gets.add(redis.async().get(Keys.alias(app, ref.substring(0, colon), ref.substring(colon + 1)))
                            .toCompletableFuture());
                }
                return Redis.all(gets).thenAccept(users -> {
                    for (int i = 0; i < chunk.size(); i++) {
                        if (users.get(i) != null) {
                            out.put(chunk.get(i), users.get(i));
                        }
                    }
                });
            });
        }
        return chain.thenApply(v -> out);
    }

    private final Redis redis;
    private final ObjectMapper mapper;
    private final PersonalDataCipher cipher;
    private final Redis.Script invalidate = new Redis.Script("/scripts/invalidate.lua");
    private final Redis.Script profile = new Redis.Script("/scripts/profile.lua");
    private final UserData data;

    private final io.herald.gateway.tracking.MessageStore store;

    /**
     * How long after a user's latest campaign message an opt-out through this API is laid at that
     * message (its campaign's and variant's {@code opt_out}, which the opt-out guard reads).
     */
    public static final java.time.Duration OPT_OUT_ATTRIBUTION = java.time.Duration.ofDays(3);
    /** How long a user's recent messages are kept (the user lookup's list) after the latest. */
    public static final java.time.Duration RECENT_FOR = java.time.Duration.ofDays(7);

    /** {@code recentMessages}: how many of each user's latest messages are kept (0: none, nothing written). */
    public UserRegistry(Redis redis, ObjectMapper mapper, PersonalDataCipher cipher,
                        io.herald.gateway.tracking.MessageStore store, int recentMessages) {
        this.recentMessages = recentMessages;
        this.redis = redis;
        this.mapper = mapper;
        this.cipher = cipher;
        this.store = store;
        this.data = new UserData(redis, mapper);
    }

    /**
     * Queues (on a caller's pipelined connection) the note of a message about to be delivered to a
     * user: the user's {@code tracking.recent-messages} newest are kept {@link #RECENT_FOR} (the user
     * lookup lists them; a message resolved again, after a fallback or a hold, keeps one place).
     * Returns whether it queued anything (nothing when the setting is 0).
     */
    public boolean noteMessage(RedisClusterAsyncCommands<String, String> cmd, String app, String user, String messageId,
                               long at) {
        if (recentMessages == 0) {
            return false;
        }
        String key = Keys.recentMessages(app, user);
        cmd.zadd(key, at, messageId);
        cmd.pexpire(key, RECENT_FOR.toMillis());
        if ((messageId.hashCode() & 7) == 0) {
            // Trimmed on one note in eight (by message id): the list may hold a few more than the
            // setting between trims, never listed; two commands per message instead of three.
            cmd.zremrangebyrank(key, 0, -recentMessages - 1);
        }
        return true;
    }

    /** A user's recent messages, newest first: message id -> when it was noted (epoch ms). */
    public CompletableFuture<Map<String, Long>> recentMessages(String app, String user) {
        if (recentMessages == 0) {
            return CompletableFuture.completedFuture(Map.of());
        }
        return redis.async().zrevrangeWithScores(Keys.recentMessages(app, user), 0, recentMessages - 1)
                .toCompletableFuture().thenApply(list -> {
                    Map<String, Long> out = new java.util.LinkedHashMap<>();
                    list.forEach(v -> out.put(v.getValue(), (long) v.getScore()));
                    return out;
                });
    }

    /**
     * Queues (on a caller's pipelined connection) the note of a user's latest campaign message
     * (its id and when), kept {@link #OPT_OUT_ATTRIBUTION}.
     */
    public void noteCampaign(RedisClusterAsyncCommands<String, String> cmd, String app, String user, String messageId,
                             long at) {
        cmd.set(Keys.lastCampaign(app, user), messageId + '\u001f' + at,
                io.lettuce.core.SetArgs.Builder.px(OPT_OUT_ATTRIBUTION.toMillis()));
    }

    /**
     * Lays a consent withdrawal at the user's latest campaign message when it is at most {@link
     * #OPT_OUT_ATTRIBUTION} old: an {@code opted_out} receipt from the API applied to that message,
     * so the message counts one opt-out whatever else comes (a device's own receipt, a second
     * channel, a second withdrawal). The app's total is counted by the caller.
     */
    /**
     * Counts {@code n} opt-outs (one per channel that turned opted_out) in the app's funnel: one of
     * them through the receipt laid at the user's latest campaign message when there is one (its
     * facts count in the app's total too), the rest directly.
     */
    private CompletableFuture<Void> optOuts(String app, String user, long n) {
        return attribute(app, user).thenCompose(applied -> n - applied <= 0 ? CompletableFuture.<Void>completedFuture(null)
                : redis.async().hincrby(Keys.funnel(app, null, null), "opt_out", n - applied).toCompletableFuture()
                        .thenApply(x -> (Void) null));
    }

    /** As documented above; completes with 1 when the receipt applied, else 0. */
    private CompletableFuture<Integer> attribute(String app, String user) {
        if (store == null) {
            return CompletableFuture.completedFuture(0);
        }
        return redis.async().get(Keys.lastCampaign(app, user)).toCompletableFuture().thenCompose(v -> {
            long now = System.currentTimeMillis();
            String[] p = v == null ? null : v.split("\u001f", -1);
            if (p == null || p.length != 2 || now - Long.parseLong(p[1]) > OPT_OUT_ATTRIBUTION.toMillis()) {
                return CompletableFuture.completedFuture(0);
            }
            return store.receipts(List.of(new io.herald.gateway.tracking.MessageStore.ReceiptIn(
                    java.util.UUID.fromString(p[0]), "opted_out", null, now, null, "consent", "the users API")), null)
                    .thenApply(r -> r.get(0) == io.herald.gateway.tracking.MessageStore.ReceiptStatus.APPLIED ? 1 : 0);
        });
    }

    /** The users' targeting data (tags, attributes, flags), kept in step with this registry's writes. */
    public UserData data() {
        return data;
    }

    /**
     * Updates a user: the aliases (as {@link #setAliases}; a taken one fails the update before
     * anything changes), the profile patch (as {@link #updateProfile}; empty: none), then the targeting
     * data change (a {@link UserData.Change} body; empty: none; the user gets an index either way),
     * then the derived flags. Completes with the data change's outcome ({@link UserData#OK}, or
     * {@code too_many_tags} / {@code too_many_attributes}: the profile part applied regardless).
     */
    public CompletableFuture<String> update(String app, String user, ObjectNode patch, ObjectNode change,
                                            Map<String, String> aliases) {
        CompletableFuture<?> first = setAliases(app, user, aliases).thenCompose(v -> patch.isEmpty()
                ? CompletableFuture.completedFuture(null) : updateProfile(app, user, patch));
        return first.thenCompose(v -> data.apply(app, List.of(new UserData.Change(user, change))))
                .thenCompose(r -> refreshFlags(app, List.of(user)).thenApply(x -> r.get(0)));
    }

    /**
     * Recomputes the derived flags of users (consent, reachability) from a versioned snapshot of
     * each one's hash, in one pipelined round trip and one data call per shard.
     */
    public CompletableFuture<Void> refreshFlags(String app, List<String> users) {
        return refreshFlags(app, users, Map.of()).thenApply(r -> null);
    }

    /** {@link #refreshFlags} carrying each user's data change in the same call; outcome per user, in order. */
    private CompletableFuture<List<String>> refreshFlags(String app, List<String> users,
                                                         Map<String, ObjectNode> changes) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        List<CompletableFuture<List<Object>>> snaps = new ArrayList<>(users.size());
        for (String u : users) {
            snaps.add(snapshot.run(cmd, io.lettuce.core.ScriptOutputType.MULTI, new String[] {Keys.devices(app, u)}));
        }
        return Redis.all(snaps).thenCompose(replies -> {
            List<UserData.Change> out = new ArrayList<>(users.size());
            List<Integer> positions = new ArrayList<>(users.size());
            for (int i = 0; i < users.size(); i++) {
                List<Object> reply = replies.get(i);
                ObjectNode body = changes.containsKey(users.get(i)) ? changes.get(users.get(i)).deepCopy()
                        : mapper.createObjectNode();
                if (reply != null && !reply.isEmpty()) {
                    @SuppressWarnings("unchecked")
                    List<Object> flat = (List<Object>) reply.get(1);
                    Map<String, String> raw = new java.util.HashMap<>();
                    for (int j = 0; j + 1 < flat.size(); j += 2) {
                        raw.put(String.valueOf(flat.get(j)), String.valueOf(flat.get(j + 1)));
                    }
                    ObjectNode f = body.putObject("f");
                    f.put("v", (Long) reply.get(0));
                    UserData.flags(decodeUser(app, users.get(i), raw)).forEach(f.putArray("l")::add);
                } else if (body.isEmpty()) {
                    continue;
                }
                positions.add(i);
                out.add(new UserData.Change(users.get(i), body));
            }
            return data.apply(app, out).thenApply(r -> {
                String[] outcomes = new String[users.size()];
                java.util.Arrays.fill(outcomes, UserData.OK);
                for (int i = 0; i < positions.size(); i++) {
                    outcomes[positions.get(i)] = r.get(i);
                }
                return List.of(outcomes);
            });
        });
    }

    private final Redis.Script snapshot = new Redis.Script("/scripts/user-snapshot.lua");

    /**
     * Merges a profile patch: {@code phone} in plain (encrypted here; null removes it),
     * {@code locale}, {@code timeZone}, {@code quietHours}, {@code channels}, and {@code consent} entries
     * ({@code {"sms":{"state":"opted_out","at":..,"source":..}}}). Completes with the profile.
     */
    public CompletableFuture<UserProfile> updateProfile(String app, String user, ObjectNode patch) {
        ObjectNode p = patch.deepCopy();
        if (p.hasNonNull("phone")) {
            p.put("phone", cipher.encrypt(p.get("phone").asText(), owner(app, user)));
        }
        return profile.<List<Object>>run(redis.async(), io.lettuce.core.ScriptOutputType.MULTI,
                new String[] {Keys.devices(app, user)}, p.toString(), Long.toString(System.currentTimeMillis()))
                .thenCompose(reply -> {
                    long optOuts = (Long) reply.get(1);
                    UserProfile up = decodeProfile(app, user, (String) reply.get(0));
                    if (optOuts == 0) {
                        return CompletableFuture.completedFuture(up);
                    }
                    // Funnel: opt-outs of the app (the same hash the tracking counters use), and of
                    // the campaign whose message the user got last.
                    return optOuts(app, user, optOuts).thenApply(n -> up);
                });
    }

    /**
     * Removes the user with all devices, profile, rate-limit state and engagement (one slot: the
     * user's tag); completes with false when there was none of it.
     */
    public CompletableFuture<Boolean> deleteUser(String app, String user) {
        ObjectNode del = mapper.createObjectNode().put("del", true);
        CompletableFuture<Void> aliases = redis.async().hgetall(Keys.devices(app, user)).toCompletableFuture()
                .thenCompose(raw -> {
                    List<CompletableFuture<Long>> releases = new ArrayList<>();
                    raw.forEach((k, v) -> {
                        if (k.startsWith(ALIAS)) {
                            releases.add(release(app, k.substring(ALIAS.length()), v, user));
                        } else if (k.equals(MERGED_FROM)) {
                            for (String m : v.split(",")) {
                                releases.add(release(app, MERGED_NAMESPACE, m, user));
                            }
                        }
                    });
                    return CompletableFuture.allOf(releases.toArray(new CompletableFuture<?>[0]));
                });
        return aliases.thenCompose(v -> data.apply(app, List.of(new UserData.Change(user, del)))).thenCompose(r ->
                redis.async().del(Keys.devices(app, user), Keys.admission(app, user), Keys.admissionLog(app, user),
                        Keys.lastCampaign(app, user), Keys.recentMessages(app, user),
                        Keys.engagement(app, user))
                        .toCompletableFuture().thenApply(n -> n > 0 || UserData.OK.equals(r.get(0))));
    }

    /**
     * One user of a bulk import: profile patch (as for {@link #updateProfile}), devices, and a
     * targeting data change (a {@link UserData.Change} body; empty: none).
     */
    public record Import(String user, ObjectNode profile, List<ImportDevice> devices, ObjectNode data) { }

    /** One device of a bulk import. */
    public record ImportDevice(String id, String platform, String token, boolean sandbox) { }

    private Redis.Connection importConnection;

    /**
     * Imports many users in one pipelined round trip (profile merge script and one HSET of the
     * devices per user), so 100,000 users take seconds. Imports are serialised on their own
     * connection. Completes when Redis has taken all of them.
     */
    public synchronized CompletableFuture<List<String>> importUsers(String app, List<Import> users) {
        if (importConnection == null) {
            importConnection = redis.dedicated(); // on an intake thread, never a Redis I/O thread
            importConnection.setAutoFlushCommands(false);
        }
        // Chunks of 1,000 users, each one pipelined round trip, chained: no command waits behind
        // tens of thousands of others (which would run into the command timeout).
        CompletableFuture<Void> chain = CompletableFuture.completedFuture(null);
        for (int from = 0; from < users.size(); from += IMPORT_CHUNK) {
            List<Import> chunk = users.subList(from, Math.min(users.size(), from + IMPORT_CHUNK));
            chain = chain.thenCompose(v -> importChunk(app, chunk));
        }
        // Then the targeting data and flags: indexes first (so every user's hash exists), then one
        // snapshot per user and one data call per shard.
        List<String> ids = users.stream().map(Import::user).toList();
        Map<String, ObjectNode> changes = new java.util.HashMap<>();
        for (Import u : users) {
            changes.put(u.user(), u.data());
        }
        return chain.thenCompose(v -> data.indexes(app, ids, true))
                .thenCompose(v -> refreshFlags(app, ids, changes));
    }

    private static final int IMPORT_CHUNK = 1000;

    private CompletableFuture<Void> importChunk(String app, List<Import> users) {
        RedisClusterAsyncCommands<String, String> cmd = importConnection.async();
        String now = Long.toString(System.currentTimeMillis());
        List<CompletableFuture<?>> all = new ArrayList<>(users.size() * 2);
        synchronized (this) {
            for (Import u : users) {
                String key = Keys.devices(app, u.user());
                if (!u.profile().isEmpty()) {
                    ObjectNode p = u.profile().deepCopy();
                    if (p.hasNonNull("phone")) {
                        p.put("phone", cipher.encrypt(p.get("phone").asText(), owner(app, u.user())));
                    }
                    all.add(profile.<List<Object>>run(cmd, io.lettuce.core.ScriptOutputType.MULTI, new String[] {key},
                            p.toString(), now).thenCompose(reply -> (Long) reply.get(1) == 0
                            ? CompletableFuture.<Void>completedFuture(null)
                            : optOuts(app, u.user(), (Long) reply.get(1))));
                }
                if (!u.devices().isEmpty()) {
                    Map<String, String> fields = new java.util.HashMap<>();
                    long t = Long.parseLong(now);
                    for (ImportDevice d : u.devices()) {
                        fields.put(d.id(), encode(new Device(d.id(), d.platform(), d.token(), d.sandbox(), "active", t,
                                null, null)));
                    }
                    all.add(cmd.hset(key, fields).toCompletableFuture());
                }
            }
            importConnection.flushCommands();
        }
        return CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0]));
    }

    /** The whole user: profile (EMPTY when none) and devices; null when the user is unknown. */
    public CompletableFuture<User> get(String app, String user) {
        return redis.async().hgetall(Keys.devices(app, user)).toCompletableFuture()
                .thenApply(raw -> raw.isEmpty() ? null : decodeUser(app, user, raw));
    }

    /** A user as stored: profile, devices, and aliases (namespace -> id). */
    public record User(UserProfile profile, List<Device> devices, Map<String, String> aliases) {
        public User(UserProfile profile, List<Device> devices) {
            this(profile, devices, Map.of());
        }
    }

    /** Decodes a raw hash (from {@link #read}) into profile and devices. */
    public User decodeUser(String app, String user, Map<String, String> raw) {
        String p = raw.get(PROFILE);
        Map<String, String> aliases = new java.util.TreeMap<>();
        raw.forEach((k, v) -> {
            if (k.startsWith(ALIAS)) {
                aliases.put(k.substring(ALIAS.length()), v);
            }
        });
        return new User(p == null ? UserProfile.EMPTY : decodeProfile(app, user, p), decodeAll(raw), Map.copyOf(aliases));
    }

    private static String owner(String app, String user) {
        return app + '\u0000' + user;
    }

    UserProfile decodeProfile(String app, String user, String json) {
        try {
            JsonNode n = mapper.readTree(json);
            Map<String, UserProfile.Consent> consent = new java.util.TreeMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.path("consent").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                consent.put(e.getKey(), new UserProfile.Consent(e.getValue().path("state").asText(),
                        e.getValue().path("at").asLong(), e.getValue().path("source").asText(null)));
            }
            List<String> channels = new ArrayList<>();
            if (n.path("channels").isArray()) {
                n.get("channels").forEach(c -> channels.add(c.asText()));
            }
            String phone = n.hasNonNull("phone") ? cipher.decrypt(n.get("phone").asText(), owner(app, user)) : null;
            UserProfile.QuietHours quiet = null;
            JsonNode q = n.path("quietHours");
            if (q.hasNonNull("start") && q.hasNonNull("end")) {
                quiet = new UserProfile.QuietHours(java.time.LocalTime.parse(q.get("start").asText()),
                        java.time.LocalTime.parse(q.get("end").asText()));
            }
            return new UserProfile(phone, n.path("locale").asText(null), n.path("timeZone").asText(null),
                    Map.copyOf(consent), List.copyOf(channels), n.path("updatedAt").asLong(), quiet);
        } catch (IOException e) {
            return UserProfile.EMPTY;
        }
    }

    /** Registers or replaces a device; it becomes active. Completes with the stored device. */
    public CompletableFuture<Device> put(String app, String user, String deviceId, String platform, String token,
                                         boolean sandbox) {
        long now = System.currentTimeMillis();
        Device d = new Device(deviceId, platform, token, sandbox, "active", now, null, null);
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        String key = Keys.devices(app, user);
        return cmd.hkeys(key).toCompletableFuture().thenCompose(fields -> {
            long n = fields.stream().filter(f -> !f.startsWith("@")).count();
            if (n >= MAX_DEVICES_PER_USER) {
                return cmd.hexists(key, deviceId).toCompletableFuture().thenCompose(exists -> {
                    if (!exists) {
                        return CompletableFuture.failedFuture(new TooManyDevicesException());
                    }
                    return cmd.hset(key, deviceId, encode(d)).toCompletableFuture().thenApply(x -> d);
                });
            }
            return cmd.hset(key, deviceId, encode(d)).toCompletableFuture().thenApply(x -> d);
        }).thenCompose(x -> data.indexes(app, List.of(user), true))
                .thenCompose(x -> refreshFlags(app, List.of(user))).thenApply(x -> d);
    }

    /** Removes a device; completes with false when there was none. */
    public CompletableFuture<Boolean> delete(String app, String user, String deviceId) {
        return redis.async().hdel(Keys.devices(app, user), deviceId).toCompletableFuture()
                .thenCompose(n -> n == 0 ? CompletableFuture.completedFuture(false)
                        : refreshFlags(app, List.of(user)).thenApply(x -> true));
    }

    /** All devices of a user, sorted by id (empty when the user is unknown or has none). */
    public CompletableFuture<List<Device>> list(String app, String user) {
        return redis.async().hgetall(Keys.devices(app, user)).toCompletableFuture().thenApply(this::decodeAll);
    }

    /** Queues a read of a user's devices on a caller's (pipelined) connection. */
    public CompletableFuture<Map<String, String>> read(RedisClusterAsyncCommands<String, String> cmd, String app,
                                                       String user) {
        return cmd.hgetall(Keys.devices(app, user)).toCompletableFuture();
    }

    /**
     * Queues the read of a user's engagement by UTC hour (decayed weights, {@code h0..h23} of
     * {@link Keys#engagement}; zeros when none) on a caller's connection.
     */
    public CompletableFuture<double[]> engagementHours(RedisClusterAsyncCommands<String, String> cmd, String app,
                                                       String user) {
        String[] fields = new String[24];
        for (int h = 0; h < 24; h++) {
            fields[h] = "h" + h;
        }
        return cmd.hmget(Keys.engagement(app, user), fields).toCompletableFuture().thenApply(l -> {
            double[] out = new double[24];
            for (int h = 0; h < 24; h++) {
                out[h] = Double.parseDouble(l.get(h).getValueOrElse("0"));
            }
            return out;
        });
    }

    /** Queues an invalidation on a caller's connection; it only applies while the token is unchanged. */
    public CompletableFuture<Long> invalidate(RedisClusterAsyncCommands<String, String> cmd, String app, String user,
                                              String deviceId, String token, String reason, long at) {
        return invalidate.run(cmd, io.lettuce.core.ScriptOutputType.INTEGER, new String[] {Keys.devices(app, user)},
                deviceId, token, reason, Long.toString(at));
    }

    public List<Device> decodeAll(Map<String, String> raw) {
        List<Device> out = new ArrayList<>(raw.size());
        for (Map.Entry<String, String> e : raw.entrySet()) {
            if (e.getKey().startsWith("@")) {
                continue;
            }
            Device d = decode(e.getKey(), e.getValue());
            if (d != null) {
                out.add(d);
            }
        }
        out.sort(Comparator.comparing(Device::id));
        return out;
    }

    public Device decode(String id, String json) {
        try {
            JsonNode n = mapper.readTree(json);
            return new Device(id, n.path("platform").asText("apns"), n.path("token").asText(),
                    n.path("sandbox").asBoolean(false), n.path("state").asText("active"),
                    n.path("updatedAt").asLong(0), n.hasNonNull("reason") ? n.get("reason").asText() : null,
                    n.hasNonNull("invalidatedAt") ? n.get("invalidatedAt").asLong() : null);
        } catch (IOException e) {
            return null;
        }
    }

    private String encode(Device d) {
        ObjectNode n = mapper.createObjectNode();
        n.put("platform", d.platform());
        n.put("token", d.token());
        n.put("sandbox", d.sandbox());
        n.put("state", d.state());
        n.put("updatedAt", d.updatedAt());
        return n.toString();
    }

    /** The user already has {@link #MAX_DEVICES_PER_USER} devices. Stackless. */
    public static final class TooManyDevicesException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        TooManyDevicesException() {
            super("a user may have at most " + MAX_DEVICES_PER_USER + " devices", null, false, false);
        }
    }
}
