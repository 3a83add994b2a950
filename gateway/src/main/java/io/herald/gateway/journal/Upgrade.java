package io.herald.gateway.journal;

import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.KeyScanCursor;
import io.lettuce.core.ScanArgs;
import io.lettuce.core.ScanCursor;
import io.lettuce.core.ScoredValue;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.cluster.api.sync.RedisClusterCommands;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * Moves what a Herald before the cluster layout (issue 12) left in a standalone Redis into the
 * sharded keys, once, at start, before the journal is replayed: due and future deferred messages
 * ({@code migrate-deferred.lua}, atomic per call), the dead letters of every configured app
 * (re-filed per shard by {@code dead-letters.lua}, idempotent, then the old keys deleted) and the
 * Idempotency-Keys ({@code RENAMENX}, expiry kept). The old journal of this node is replayed where
 * it is ({@link Journal#replay}). On a cluster there is nothing to move (earlier versions refused
 * one). Each step is safe to repeat after a crash part-way; when all are done the leases hash
 * says so ({@code @layout}), and later starts skip the scan. All nodes of a deployment are upgraded
 * together (an old node still running would write the old keys). Stateless; blocking, for the
 * start-up thread.
 */
public final class Upgrade {
    private static final Logger log = LoggerFactory.getLogger(Upgrade.class);
    private static final String US = "\u001f";
    /** The layout this version writes: the leases hash's {@code @layout} once the move is done. */
    private static final String LAYOUT = "2";

    private Upgrade() {
    }

    /** Runs every step; logs what it moved. */
    public static void run(Redis redis, String nodeId, Collection<String> apps, long letterRetentionMillis,
                           int maxLetters) {
        if (redis.cluster()) {
            return;
        }
        RedisClusterCommands<String, String> sync = redis.shared().sync();
        if (LAYOUT.equals(sync.hget(Keys.leases(), "@layout"))) {
            sync.del(Keys.legacyReplays(nodeId));
            return; // moved by an earlier start (every node of a deployment is upgraded together)
        }
        long deferred = deferred(redis, sync);
        long letters = 0;
        for (String app : apps) {
            letters += deadLetters(redis, sync, app, letterRetentionMillis, maxLetters);
        }
        long keys = idempotencyKeys(redis, sync);
        sync.del(Keys.legacyReplays(nodeId));
        sync.hset(Keys.leases(), "@layout", LAYOUT);
        if (deferred + letters + keys > 0) {
            log.info("moved what an earlier version left into the sharded layout: {} deferred messages, {} dead "
                    + "letters, {} Idempotency-Keys", deferred, letters, keys);
        }
    }

    private static long deferred(Redis redis, RedisClusterCommands<String, String> sync) {
        int shards = redis.shards();
        Redis.Script move = new Redis.Script("/scripts/migrate-deferred.lua");
        String[] keys = new String[2 + 2 * shards];
        keys[0] = Keys.legacyDeferred();
        keys[1] = Keys.legacyDeferredData();
        for (int s = 0; s < shards; s++) {
            keys[2 + s] = Keys.deferred(s);
            keys[2 + shards + s] = Keys.deferredData(s);
        }
        long moved = 0;
        while (true) {
            List<String> ids = sync.zrange(Keys.legacyDeferred(), 0, 999);
            if (ids.isEmpty()) {
                // data without a due time (an old crash between its two writes) has nothing to go by
                sync.del(Keys.legacyDeferredData());
                return moved;
            }
            String[] args = new String[ids.size() + 1];
            args[0] = Integer.toString(shards);
            for (int i = 0; i < ids.size(); i++) {
                args[i + 1] = ids.get(i) + US + Keys.shard(ids.get(i), shards);
            }
            moved += move.<Long>run(redis.async(), ScriptOutputType.INTEGER, keys, args).join();
        }
    }

    private static long deadLetters(Redis redis, RedisClusterCommands<String, String> sync, String app,
                                    long retentionMillis, int max) {
        String zset = Keys.legacyDeadLetters(app);
        String data = Keys.legacyDeadLetterData(app);
        List<ScoredValue<String>> all = sync.zrangeWithScores(zset, 0, -1);
        if (all.isEmpty()) {
            sync.del(data);
            return 0;
        }
        int shards = redis.shards();
        Redis.Script file = new Redis.Script("/scripts/dead-letters.lua");
        Map<String, String> fields = sync.hgetall(data);
        List<List<String>> byShard = new ArrayList<>();
        for (int s = 0; s < shards; s++) {
            byShard.add(new ArrayList<>());
        }
        long filed = 0;
        for (ScoredValue<String> v : all) {
            String id = v.getValue();
            String letter = fields.get(id);
            String item = fields.get("i:" + id);
            if (letter != null && item != null) {
                byShard.get(Keys.shard(id, shards)).add(id + US + letter + US + item);
                filed++;
            }
        }
        for (int s = 0; s < shards; s++) {
            if (byShard.get(s).isEmpty()) {
                continue;
            }
            List<String> args = new ArrayList<>(List.of(Long.toString(System.currentTimeMillis()),
                    Long.toString(retentionMillis), Integer.toString(Math.max(1, (max + shards - 1) / shards)),
                    Integer.toString(s), Integer.toString(shards)));
            args.addAll(byShard.get(s));
            file.run(redis.async(), ScriptOutputType.INTEGER, new String[] {Keys.deadLetters(app, s),
                Keys.deadLetterData(app, s)}, args.toArray(String[]::new)).join();
        }
        sync.del(zset, data);
        return filed;
    }

    private static long idempotencyKeys(Redis redis, RedisClusterCommands<String, String> sync) {
        String prefix = Keys.legacyIdempotencyPattern().substring(0, Keys.legacyIdempotencyPattern().length() - 1);
        long moved = 0;
        ScanCursor cursor = ScanCursor.INITIAL;
        do {
            KeyScanCursor<String> page = sync.scan(cursor, ScanArgs.Builder.matches(Keys.legacyIdempotencyPattern())
                    .limit(1000));
            for (String key : page.getKeys()) {
                String rest = key.substring(prefix.length()); // <app>:<sha256>
                int colon = rest.lastIndexOf(':');
                if (colon <= 0) {
                    continue;
                }
                String app = rest.substring(0, colon);
                String hash = rest.substring(colon + 1);
                String target = Keys.idempotency(app, hash, Keys.shard(app + ":" + hash, redis.shards()));
                if (Boolean.TRUE.equals(sync.renamenx(key, target))) {
                    moved++;
                } else {
                    sync.del(key); // the new layout already has this key: it is the newer one
                }
            }
            cursor = page;
        } while (!cursor.isFinished());
        return moved;
    }
}
