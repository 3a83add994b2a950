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
 * parts) by batch id; a user's keys (devices, rate limit, engagement) by app and user; an app's
 * event log, funnels, flush markers, webhook lists and SMSC part ids by app; the journal, scheduler,
 * idempotency and dead-letter keys by {@code {sched}}. record.lua and receipt.lua touch one batch's
 * slot, flush.lua one app's; a script that touches keys of several tags (redrive.lua, gcra.lua over
 * many users) runs on a single Redis; on a cluster it would be refused as cross-slot. Stateless.
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

    public static String rateLimit(String app, String user) {
        return "herald:rl:{" + app + ":" + user + "}";
    }

    /** The verdicts of one rate-limit call, kept briefly so a retry of that call returns them again. */
    public static String rateLimitRequest(String requestId) {
        return "herald:rlreq:{" + requestId + "}";
    }

    /** The journal entry one promotion call wrote, kept briefly so a retry of that call finds it. */
    public static String promotion(String requestId) {
        return "herald:{sched}:promoted:" + requestId;
    }

    public static String journal(String nodeId) {
        return "herald:{sched}:journal:" + nodeId;
    }

    public static String deferred() {
        return "herald:{sched}:deferred";
    }

    public static String deferredData() {
        return "herald:{sched}:deferred-data";
    }

    /**
     * An Idempotency-Key of an app: {@code keyHash} is the SHA-256 (hex) of the header value. Tagged
     * {@code {sched}} like the journal, so one script can journal a batch and mark its key done.
     */
    public static String idempotency(String app, String keyHash) {
        return "herald:{sched}:idem:" + app + ":" + keyHash;
    }

    /** An app's dead letters: message id scored by when it died (ms * 1000, unique and rising). */
    public static String deadLetters(String app) {
        return "herald:{sched}:dead:" + app;
    }

    /** An app's dead letters' data: {@code <id>} -> letter JSON, {@code i:<id>} -> the item to redrive. */
    public static String deadLetterData(String app) {
        return "herald:{sched}:dead-data:" + app;
    }

    /** How often each unsettled journal entry of a node has been processed (entry id -> passes). */
    public static String replays(String nodeId) {
        return "herald:{sched}:replays:" + nodeId;
    }

    /** Journal entries of a node that could not be read at all (no app to file them under), kept as they were. */
    public static String unreadableEntries(String nodeId) {
        return "herald:{sched}:journal-unreadable:" + nodeId;
    }

    /** The app's event log: a Redis Stream of every state change, trimmed by time; webhooks read it. */
    public static String events(String app) {
        return "herald:ev:{" + app + "}";
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
}
