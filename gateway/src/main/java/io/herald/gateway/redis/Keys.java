package io.herald.gateway.redis;

/**
 * Every Redis key Herald writes, in one place. Keys that a script touches together share a hash
 * tag so the script stays valid on Redis Cluster: a batch's keys are tagged by batch id, a
 * user's keys (devices, rate limit) by app and user, the scheduler's and journal's keys by
 * {@code {sched}}. Stateless.
 */
public final class Keys {
    private Keys() {
    }

    public static String batch(String batchId) {
        return "herald:b:{" + batchId + "}";
    }

    public static String message(String batchId, int index) {
        return "herald:m:{" + batchId + "}:" + index;
    }

    public static String history(String batchId, int index) {
        return "herald:h:{" + batchId + "}:" + index;
    }

    public static String devices(String app, String user) {
        return "herald:u:{" + app + ":" + user + "}";
    }

    public static String rateLimit(String app, String user) {
        return "herald:rl:{" + app + ":" + user + "}";
    }

    /** The verdicts of one rate-limit call, kept briefly so a retry of that call returns them again. */
    public static String rateLimitRequest(String requestId) {
        return "herald:rlreq:" + requestId;
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
