package io.herald.gateway.redis;

/**
 * Every Redis key Herald reads or writes, built here and nowhere else: code that needs a key calls
 * one of these builders, and Lua scripts receive every key they touch in {@code KEYS[]} (no script
 * builds a key name from a prefix; the comment at the top of each script in
 * {@code resources/scripts} says which key each {@code KEYS[i]} is).
 *
 * <p>Hash tags: every key carries exactly one hash tag {@code {...}}, so Redis Cluster slots it
 * by that part alone ({@code KeysTest} checks each builder). Keys that one script or one
 * {@code MULTI} touches together share a tag: a batch's keys (batch, message chunks, outbox, SMS
 * parts) by batch id; a user's keys (devices, admission state, engagement) by app and user; an app's
 * event log, funnels, flush markers, webhook lists and SMSC part ids by app; the journal, deferred
 * set, idempotency keys and dead letters by shard ({@code {s.<n>}}, n = 0 .. {@code redis.shards}
 * - 1: {@link #shard}), so each shard slot carries 1/shards of every node's intake and the shards
 * spread over the cluster's masters; a node's replay counts by node ({@code {n.<node>}}); the
 * node leases in {@code {nodes}}. record.lua and receipt.lua touch one batch's slot, flush.lua
 * one app's, idempotent-append.lua, promote.lua and redrive.lua one shard's, admit.lua the slot of
 * the users it is given (callers group users by {@code Redis.slotOf}). A user's targeting data
 * and the structures that select it live in the user's index shard ({@code {app#s<n>}});
 * {@code userdata.lua}, {@code events.lua}, {@code merge-out.lua} and {@code merge-in.lua} are handed that shard's prefix ({@link #userBits})
 * and append the suffixes the builders below use, because which tags or events a user had is only
 * known inside the script: the one exception to "every key in KEYS[]", confined to one slot.
 * Stateless.
 */
public final class Keys {
    private Keys() {
    }

    public static String batch(String batchId) {
        return "herald:b:{" + batchId + "}";
    }

    /**
     * One chunk of a batch's message records: a hash, field = the message's index, value = its
     * compact record (state, history; {@code MessageStore}). Chunk {@code n} holds indexes
     * {@code n * 128 .. n * 128 + 127}.
     */
    public static String messages(String batchId, int chunk) {
        return "herald:m:{" + batchId + "}:" + chunk;
    }

    /**
     * A batch's outbox: per record or receipt call (field = its request id) the facts of the changes
     * that applied, until they are counted in the app's funnels ({@code MessageStore}).
     */
    public static String outbox(String batchId) {
        return "herald:ob:{" + batchId + "}";
    }

    /** An app's markers of record and receipt calls not yet counted in its funnels (batch|request id, scored by ms). */
    public static String flushMarkers(String app) {
        return "herald:fm:{" + app + "}";
    }

    public static String devices(String app, String user) {
        return "herald:u:{" + app + ":" + user + "}";
    }

    /**
     * A user's admission state (sorted set, {@code admit.lua}): {@code t} the rate limit's TAT,
     * {@code x} the key's expiry, {@code m} the next trim, {@code n} the number of claims, a counter
     * {@code k|ruleId} per cap rule (boundary and count packed in the score), and claims of held
     * marketing messages {@code c|messageId|priority|category} scored by minus their due time. In the
     * user's slot. Small by design: every marketing admission reads it.
     */
    public static String admission(String app, String user) {
        return "herald:adm:{" + app + ":" + user + "}";
    }

    /** A campaign (hash: {@code json}, {@code v} its version for compare-and-set). In the campaign's own slot. */
    public static String campaign(String app, String id) {
        return "herald:cmp:{" + app + ":cmp:" + id + "}";
    }

    /**
     * A campaign's run (hash, {@code campaign-run.lua}): {@code owner} and {@code until} the lease of
     * the node feeding it (Redis time), {@code run} the run number, {@code frozen} the audience
     * snapshot's size, {@code chunk} the next chunk, {@code cursor} the user index fed up to,
     * {@code fed} users fed, {@code startedAt}/{@code finishedAt}. In the campaign's slot.
     */
    public static String campaignRun(String app, String id) {
        return campaign(app, id) + ":run";
    }

    /**
     * A run's frozen audience (hash: user-index shard -> the members as a base64 RoaringBitmap,
     * first writer wins). In the campaign's slot.
     */
    public static String campaignSnapshot(String app, String id, long run) {
        return campaign(app, id) + ":snap:" + run;
    }

    /**
     * An app's campaigns to look after (sorted set: campaign id scored by when it is due): approved
     * ones waiting for their schedule, running and paused ones. In the app's own slot.
     */
    public static String liveCampaigns(String app) {
        return "herald:cmps:{" + app + "#cmp}:live";
    }

    /** An app's marketing plans (hash: plan id -> JSON). In the app's own slot. */
    public static String plans(String app) {
        return "herald:plans:{" + app + "#cmp}";
    }

    /** An app's campaigns (sorted set: campaign id scored by creation time), for listing. In the app's own slot. */
    public static String campaigns(String app) {
        return "herald:cmps:{" + app + "#cmp}";
    }

    /**
     * An app's templates (hash): {@code @v} the version (moved on by every change, polled by every
     * node), {@code t:<id>} each template's JSON. In the app's own slot; read whole only when the
     * version moved.
     */
    public static String templates(String app) {
        return "herald:tpl:{" + app + "#tpl}";
    }

    /**
     * An app's API keys issued through the keys API (hash): {@code @v} the version (polled by every
     * node), {@code k:<key id>} each key's JSON (its SHA-256, roles, name, who made it when); never
     * the key itself. In the app's own slot.
     */
    public static String apiKeys(String app) {
        return "herald:keys:{" + app + "#keys}";
    }

    /**
     * A user's log of marketing sends (sorted set, {@code admit.lua}): {@code s|messageId|channel|category}
     * scored by when each was admitted; read only to age rolling caps, to start a rule's counter
     * and to give a place back. Trimmed past the longest cap window. In the user's slot.
     */
    public static String admissionLog(String app, String user) {
        return "herald:adm:{" + app + ":" + user + "}:log";
    }

    /**
     * An app's engagement over all its users, as {@link #engagement} is a user's (opens, clicks and
     * app opens by UTC hour, decayed): the best-hour fallback for users with too little of their own.
     */
    public static String appEngagement(String app) {
        return "herald:enga:{" + app + "#eng}";
    }

    /** An app's delivery policy: hash {@code v} (version) and {@code json}. */
    public static String policy(String app) {
        return "herald:pol:{" + app + "#pol}";
    }

    /**
     * The verdicts of one rate-limit call, kept briefly so a retry of that call returns them again.
     * In the slot of the call's first user ({@code app}, {@code user}): a call touches one slot.
     */
    public static String rateLimitRequest(String app, String user, String requestId) {
        return "herald:rlreq:{" + app + ":" + user + "}:" + requestId;
    }

    /**
     * The shard (0 .. {@code shards - 1}) that {@code id} belongs to: a stable hash (Java's
     * {@code String.hashCode}, fixed by the language) modulo the shard count.
     */
    public static int shard(String id, int shards) {
        return Math.floorMod(id.hashCode(), shards);
    }

    private static String shardTag(int shard) {
        return "{s." + shard + "}";
    }

    /** The journal entry one promotion call wrote, kept briefly so a retry of that call finds it. */
    public static String promotion(int shard, String requestId) {
        return "herald:promoted:" + shardTag(shard) + ":" + requestId;
    }

    /**
     * One shard of a campaign's backlog (a Redis Stream of chunk entries, as the journal's): the
     * chunks fanned out while the pipeline had no room, waiting for the node running the campaign
     * to move them into its journal. In the slot of the chunks' idempotency keys and of the journal
     * shard they move to.
     */
    public static String campaignBacklog(int shard, String app, String campaignId) {
        return "herald:cbk:" + shardTag(shard) + ":" + app + ":" + campaignId;
    }

    /** One shard of a node's journal (a Redis Stream). */
    public static String journal(String nodeId, int shard) {
        return "herald:j:" + shardTag(shard) + ":" + nodeId;
    }

    /**
     * An app's trigger rules (hash): {@code @v} the version (polled by every node), {@code r:<id>}
     * each rule's JSON. In the app's own slot.
     */
    public static String triggers(String app) {
        return "herald:trg:{" + app + "#trg}";
    }

    /**
     * One shard of the trigger timers (sorted set): {@code app US user US rule US correlation}
     * scored by when the instance is due (epoch ms). Shard = {@link #shard} of {@code app:user}, so
     * a user's instances, their timers and this node's journal shard share one slot.
     */
    public static String triggerTimers(int shard) {
        return "herald:tq:" + shardTag(shard);
    }

    /**
     * The prefix of the trigger instance hashes of one shard: {@link #triggerInstances} is this plus
     * {@code app:user}. {@code trigger-fire.lua} is handed it to find an instance from its timer
     * (the timer names app and user); every key it builds is in the shard's slot.
     */
    public static String triggerInstancePrefix(int shard) {
        return "herald:ti:" + shardTag(shard) + ":";
    }

    /**
     * A user's trigger instances (hash), in the shard of {@code app:user}: {@code i|rule|corr} the
     * instance (state, times, message id; while pending also the message to send), {@code
     * b|rule|corr} when the latest cancelling event happened.
     */
    public static String triggerInstances(String app, String user, int shard) {
        return triggerInstancePrefix(shard) + app + ":" + user;
    }

    /** The prefix of the per-app trigger counters of one shard: {@link #triggerStats} is this plus the app. */
    public static String triggerStatsPrefix(int shard) {
        return "herald:tst:" + shardTag(shard) + ":";
    }

    /** One shard's counters of an app's trigger rules (hash: {@code rule|counter} -> n), summed over shards when read. */
    public static String triggerStats(String app, int shard) {
        return triggerStatsPrefix(shard) + app;
    }

    /** The journal entry one trigger firing call wrote, kept briefly so a retry of that call finds it. */
    public static String triggerFiring(int shard, String requestId) {
        return "herald:tfired:" + shardTag(shard) + ":" + requestId;
    }

    /** One shard of the deferred messages: message id scored by when it is due (epoch ms). */
    public static String deferred(int shard) {
        return "herald:dq:" + shardTag(shard);
    }

    /** One shard of the deferred messages' data: message id -> journal item JSON. */
    public static String deferredData(int shard) {
        return "herald:dd:" + shardTag(shard);
    }

    /**
     * An Idempotency-Key of an app: {@code keyHash} is the SHA-256 (hex) of the header value, and
     * {@code shard} is {@link #shard} of {@code app:keyHash}: the batch it names is journaled into
     * that shard, so one script can journal the batch and mark its key done.
     */
    public static String idempotency(String app, String keyHash, int shard) {
        return "herald:idem:" + shardTag(shard) + ":" + app + ":" + keyHash;
    }

    /** One shard of an app's dead letters: message id scored by when it died (unique, rising, = shard mod shards). */
    public static String deadLetters(String app, int shard) {
        return "herald:dead:" + shardTag(shard) + ":" + app;
    }

    /** One shard of an app's dead letters' data: {@code <id>} -> letter JSON, {@code i:<id>} -> the item to redrive. */
    public static String deadLetterData(String app, int shard) {
        return "herald:dead-data:" + shardTag(shard) + ":" + app;
    }

    /** How often each unsettled journal entry of a node has been processed (stream|entry id -> passes). */
    public static String replays(String nodeId) {
        return "herald:replays:{n." + nodeId + "}";
    }

    /** Journal entries of a node that could not be read at all (no app to file them under), kept as they were. */
    public static String unreadableEntries(String nodeId) {
        return "herald:junread:{n." + nodeId + "}";
    }

    /**
     * The nodes' leases: node id -> {@code holder US expires-at (ms, Redis time)}; the holder is
     * the node's running instance, or the instance of another node that took its journal over.
     * Fields {@code @shards} (the deployment's shard count) and {@code @layout} (keys of an earlier
     * layout moved) are not nodes. A few writes per node per lease period: not hot.
     */
    public static String leases() {
        return "herald:leases:{nodes}";
    }

    /** Users per index shard: index {@code i} lives in shard {@code i >>> USER_SHARD_BITS}. */
    public static final int USER_SHARD_BITS = 16;

    /**
     * The tag of one index shard of an app's users, {@code {app#s<n>}}: a user's tags, attributes,
     * flags and the bitmaps that select them live there, so one script call updates a user's data
     * and every bitmap it touches atomically, and an audience evaluates shard by shard. ({@code #}
     * never follows the app id in a user's tag, whose app id is followed by {@code :}.)
     */
    private static String userShardTag(String app, int shard) {
        return "{" + app + "#s" + shard + "}";
    }

    /** An app's user-index counter: the last index given (indexes are never reused). */
    public static String userIndexCounter(String app) {
        return "herald:uix:{" + app + "#ix}";
    }

    /** One index shard's user data: hash, field = index, value = JSON (user id, tags, attributes, flags). */
    public static String userData(String app, int shard) {
        return "herald:ud:" + userShardTag(app, shard);
    }

    /** One index shard's reverse map: hash, field = index, value = user id. */
    public static String userIds(String app, int shard) {
        return "herald:ui:" + userShardTag(app, shard);
    }

    /**
     * The prefix of one index shard's selection structures; {@code userdata.lua} appends the same
     * suffixes as the builders below (it is handed the prefix: which tags and attributes a user had
     * is only known inside the script). All share the shard's tag, so the slot is the script's.
     */
    public static String userBits(String app, int shard) {
        return "herald:x:" + userShardTag(app, shard) + ":";
    }

    /** Hash index -> the user's tags, sorted and comma-joined (kept apart so a tag change reads no JSON). */
    public static String userTags(String app, int shard) {
        return userBits(app, shard) + "tg";
    }

    /** Bitmap of the shard's known (indexed, not deleted) users; bit = index within the shard. */
    public static String knownBits(String app, int shard) {
        return userBits(app, shard) + "k";
    }

    /** Bitmap of the users carrying {@code tag}. */
    public static String tagBits(String app, int shard, String tag) {
        return userBits(app, shard) + "t:" + tag;
    }

    /** Bitmap of the users having attribute {@code name} (any type). */
    public static String attributeBits(String app, int shard, String name) {
        return userBits(app, shard) + "a:" + name;
    }

    /** Bitmap of the users whose string or boolean attribute {@code name} equals {@code value}. */
    public static String valueBits(String app, int shard, String name, String value) {
        return userBits(app, shard) + "v:" + name + "=" + value;
    }

    /** Sorted set of index -> numeric or timestamp (epoch ms) value of attribute {@code name}. */
    public static String numberIndex(String app, int shard, String name) {
        return userBits(app, shard) + "n:" + name;
    }

    /** Geo set of index -> location of attribute {@code name}. */
    public static String geoIndex(String app, int shard, String name) {
        return userBits(app, shard) + "g:" + name;
    }

    /** Bitmap of a derived flag: {@code consent.push}, {@code reachable.apns}, ... */
    public static String flagBits(String app, int shard, String flag) {
        return userBits(app, shard) + "f:" + flag;
    }

    /** Bitmap of the users in sample bucket {@code bucket} (0..99). */
    public static String bucketBits(String app, int shard, int bucket) {
        return userBits(app, shard) + "b:" + bucket;
    }

    /** Hash index -> the snapshot of a user being merged away, until the target has taken it (merge-out.lua). */
    public static String mergeSnapshots(String app, int shard) {
        return userBits(app, shard) + "mgd";
    }

    /** Hash index -> the event names the user has (comma-joined). */
    public static String eventNames(String app, int shard) {
        return userBits(app, shard) + "en";
    }

    /** Bitmap of the users with event {@code name} on UTC epoch day {@code day} (expires after the window). */
    public static String eventDayBits(String app, int shard, String name, long day) {
        return userBits(app, shard) + "ed:" + name + ":" + day;
    }

    /**
     * Hash index -> {@code last|day:count[:sum],...} (newest day first): each user's counts of event
     * {@code name} in the window.
     */
    public static String eventCounts(String app, int shard, String name) {
        return userBits(app, shard) + "e:" + name;
    }

    /**
     * The owner of alias {@code id} in {@code namespace} (a string: the user id), unique per app and
     * namespace. Tagged by a digest of the id, which may hold any character.
     */
    public static String alias(String app, String namespace, String id) {
        try {
            byte[] d = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(id.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return "herald:al:{" + app + "#" + namespace + ":" + java.util.HexFormat.of().formatHex(d, 0, 12) + "}";
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Bitmap of the users in derived tier {@code value} of {@code kind} ({@code lifecycle}, {@code rfm}). */
    public static String tierBits(String app, int shard, String kind, String value) {
        return userBits(app, shard) + "tier:" + kind + ":" + value;
    }

    /** An app's tier summary: hash of counts per tier, thresholds and when they were computed. */
    public static String tiers(String app) {
        return "herald:tiers:{" + app + "#tiers}";
    }

    /** The lock of an app's tier computation (one node at a time). */
    public static String tiersLock(String app) {
        return "herald:tiers:{" + app + "#tiers}:lock";
    }

    /** The event names an app has used (a set). */
    public static String eventNamesOfApp(String app) {
        return "herald:evn:{" + app + "#ev}";
    }

    /** An app's saved audiences: hash, field = audience id, value = JSON. */
    public static String audiences(String app) {
        return "herald:aud:{" + app + "#aud}";
    }

    /** The app's event log: a Redis Stream of every state change, trimmed by time; webhooks read it. */
    public static String events(String app) {
        return "herald:ev:{" + app + "}";
    }

    /**
     * A user's latest campaign message (string {@code messageId US at}, kept {@code
     * UserRegistry.OPT_OUT_ATTRIBUTION}): the message an opt-out through the API is laid at. In
     * the user's slot.
     */
    public static String lastCampaign(String app, String user) {
        return "herald:lc:{" + app + ":" + user + "}";
    }

    /**
     * A user's recent messages (sorted set: message id scored by when it was resolved for delivery),
     * the newest {@code UserRegistry.RECENT_MESSAGES}, kept {@code UserRegistry.RECENT_FOR}: the user
     * lookup's list. In the user's slot.
     */
    public static String recentMessages(String app, String user) {
        return "herald:rm:{" + app + ":" + user + "}";
    }

    /** A user's engagement: last open and click, opens by hour of day (UTC), total opens. */
    public static String engagement(String app, String user) {
        return "herald:eng:{" + app + ":" + user + "}";
    }

    /**
     * An app's funnel counters: the whole app ({@code campaign == null}), a campaign, or a variant of
     * a campaign.
     */
    public static String funnel(String app, String campaign, String variant) {
        String k = "herald:f:{" + app + "}:" + (campaign == null ? "all" : "c:" + campaign);
        return variant == null ? k : k + ":v:" + variant;
    }

    /** One time bucket ({@code bucket} m, h or d, starting at {@code start} epoch ms) of {@link #funnel}. */
    public static String funnelBucket(String app, String campaign, String variant, String bucket, long start) {
        return funnel(app, campaign, variant) + ":" + bucket + ":" + start;
    }

    /** An app's funnel counters of one channel (apns, fcm, sms), from acceptance on. */
    public static String funnelChannel(String app, String channel) {
        return "herald:f:{" + app + "}:ch:" + channel;
    }

    /** A campaign's funnel counters of one channel, from acceptance on (its report's per-channel rows). */
    public static String funnelChannel(String app, String campaign, String channel) {
        return funnel(app, campaign, null) + ":ch:" + channel;
    }

    /** A tracked link: its short code -> the target URL and the message it was sent in. */
    public static String link(String code) {
        return "herald:link:{" + code + "}";
    }

    /** An app's webhook dead letters: a list, newest first. */
    public static String webhookDeadLetters(String app) {
        return "herald:whdead:{" + app + "}";
    }

    /** An app's webhook dead letters queued again for posting: a list, oldest at the right end. */
    public static String webhookRedrive(String app) {
        return "herald:whredrive:{" + app + "}";
    }

    /** The message an SMSC's id of one submitted SMS part belongs to (normalised id), for its delivery receipt. */
    public static String smscPart(String app, String normalisedId) {
        return "herald:smsc:{" + app + "}:" + normalisedId;
    }

    /**
     * The SMS part receipts of one message: {@code n} = its part count, {@code <part>} = that part's
     * receipt (JSON), {@code @parked} = when the first one arrived before {@code accepted} was
     * recorded. In the batch's slot, so the script that records {@code accepted} applies them.
     */
    public static String smsParts(String batchId, int index) {
        return "herald:sp:{" + batchId + "}:" + index;
    }

    /** An app's messages with SMS receipts parked before their acceptance, scored by when to look at them next. */
    public static String parkedReceipts(String app) {
        return "herald:parked:{" + app + "}";
    }

    // ---- Keys of Herald before the cluster layout (issue 12), read once at start to move their
    // contents into the layout above (standalone Redis only: earlier versions refused a cluster).

    /** A node's journal before the shards. */
    public static String legacyJournal(String nodeId) {
        return "herald:{sched}:journal:" + nodeId;
    }

    /** The deferred set before the shards. */
    public static String legacyDeferred() {
        return "herald:{sched}:deferred";
    }

    /** The deferred set's data before the shards. */
    public static String legacyDeferredData() {
        return "herald:{sched}:deferred-data";
    }

    /** An app's dead letters before the shards. */
    public static String legacyDeadLetters(String app) {
        return "herald:{sched}:dead:" + app;
    }

    /** An app's dead letters' data before the shards. */
    public static String legacyDeadLetterData(String app) {
        return "herald:{sched}:dead-data:" + app;
    }

    /** A node's replay counts before the shards. */
    public static String legacyReplays(String nodeId) {
        return "herald:{sched}:replays:" + nodeId;
    }

    /** SCAN pattern of the Idempotency-Keys before the shards ({@code herald:{sched}:idem:<app>:<sha256>}). */
    public static String legacyIdempotencyPattern() {
        return "herald:{sched}:idem:*";
    }
}
