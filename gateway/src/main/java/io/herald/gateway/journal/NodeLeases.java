package io.herald.gateway.journal;

import io.herald.gateway.config.StartupException;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Who processes each node's journal: a lease per node id in Redis ({@link Keys#leases},
 * {@code lease.lua}, timed by Redis's clock), and the takeover of the journal of a node that
 * stopped renewing its lease.
 *
 * <p>A node takes its own lease before it replays its journal ({@link #acquireOwn}) and renews it
 * every third of {@code redis.node-lease}. A restart after a crash on the same host takes the lease
 * of its dead predecessor at once (the data directory names it and its process is gone); anywhere
 * else the predecessor's lease must lapse first. A node that dies (SIGKILL, lost host, partition) stops
 * renewing; once its lease has expired, the first live node to see it ({@link #start}: every
 * renewal round looks) takes the lease and replays that node's journal into its own pipeline
 * ({@link Takeover}), with the duplicate rules of a restart (a message already settled is not sent
 * again; one in flight at the death may be). It holds the lease until every entry of that journal
 * has settled, then drops it and the node's replay counts: a node that never returns leaves
 * nothing behind. A node that does return with the same id waits at start until the taker is done
 * ({@link #acquireOwn}).
 *
 * <p>The same lease keeps two processes from running one node id: the second waits, then fails
 * start-up with one line. A node that could not renew for longer than the lease (Redis unreachable,
 * a stop-the-world pause) may find its journal taken over: it takes its lease back at once (the
 * taker sees its renewal fail and lets the journal go), and both process the entries that were
 * unsettled then, which can send a message twice but never loses one; it says so in the log.
 *
 * <p>Per-node state other than the journal needs no takeover: the deferred set and dead letters
 * are shared by all nodes (any node promotes and re-drives), webhook deliveries are claimed from a
 * dead consumer by the consumer group ({@code WebhookDispatcher}). Thread-safe; owned by
 * {@code Herald}, which closes it ({@link #close}: releases the lease, so the leftovers of a node
 * scaled down are taken over at once) or halts it ({@link #halt}: as a crash).
 */
public final class NodeLeases implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NodeLeases.class);

    /** Replays the journal of a node taken over into this node's pipeline; returns the messages published. */
    public interface Takeover {
        int replay(Journal journal) throws Exception;
    }

    private final Redis redis;
    private final Journal own;
    private final String instance;
    private final long ttlMillis;
    private final Duration wait;
    private final Takeover takeover;
    private final java.nio.file.Path instanceFile;
    private final Redis.Script lease = new Redis.Script("/scripts/lease.lua");
    /** Journals of other nodes whose lease this node holds, until they are empty. */
    private final Map<String, Journal> held = new ConcurrentHashMap<>();
    /** Those of {@link #held} whose replay is done: emptied by the pipeline, then let go. */
    private final java.util.Set<String> replayed = ConcurrentHashMap.newKeySet();
    private final ScheduledExecutorService renewals = Executors.newSingleThreadScheduledExecutor(r -> daemon(r,
            "herald-lease"));
    private final ExecutorService takeovers = Executors.newSingleThreadExecutor(r -> daemon(r, "herald-takeover"));
    private volatile boolean halted;

    /**
     * {@code instanceFile}: where this run notes its holder id and process id (in the data
     * directory), so that a restart after a crash on the same host knows its predecessor is dead;
     * null: always wait for a predecessor's lease to lapse.
     */
    public NodeLeases(Redis redis, Journal own, Duration ttl, Duration wait, Takeover takeover,
                      java.nio.file.Path instanceFile) {
        this.instanceFile = instanceFile;
        this.redis = redis;
        this.own = own;
        this.instance = own.nodeId() + "/" + UUID.randomUUID().toString().substring(0, 8);
        this.ttlMillis = ttl.toMillis();
        this.wait = wait;
        this.takeover = takeover;
    }

    private static Thread daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    /** This process's holder id: {@code <node id>/<random>}. */
    public String instance() {
        return instance;
    }

    private List<Object> call(String op, String node) throws Exception {
        return call(op, node, "");
    }

    private List<Object> call(String op, String node, String deadHolder) throws Exception {
        return lease.<List<Object>>run(redis.async(), ScriptOutputType.MULTI, new String[] {Keys.leases()}, op, node,
                instance, Long.toString(ttlMillis), Integer.toString(redis.shards()), deadHolder)
                .get(wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * The run of this node that last started from this data directory, if its process is gone:
     * its holder id, so a restart after a crash takes the lease at once instead of waiting for it
     * to lapse. The file holds {@code holder pid host}; another host's or a live process's run is
     * never assumed dead.
     */
    private String deadPredecessor() {
        if (instanceFile == null) {
            return "";
        }
        try {
            String[] f = java.nio.file.Files.readString(instanceFile).trim().split(" ");
            if (f.length == 3 && f[2].equals(host()) && ProcessHandle.of(Long.parseLong(f[1])).isEmpty()) {
                return f[0];
            }
        } catch (java.io.IOException | RuntimeException e) {
            // no file yet, or unreadable: wait for the lease as usual
        }
        return "";
    }

    private void rememberInstance() {
        if (instanceFile == null) {
            return;
        }
        try {
            java.nio.file.Files.createDirectories(instanceFile.getParent());
            java.nio.file.Files.writeString(instanceFile, instance + " " + ProcessHandle.current().pid() + " " + host());
        } catch (java.io.IOException e) {
            log.warn("cannot write {} ({}): a restart after a crash will wait for the lease to lapse", instanceFile,
                    e.getMessage());
        }
    }

    private static String host() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (java.io.IOException e) {
            return "localhost";
        }
    }

    /**
     * Takes this node's lease, waiting while another holder's lease runs (a crashed run of this
     * node whose lease has not expired yet, or a node replaying this journal after taking it over)
     * for up to {@code maxWait}; then fails start-up with one line.
     */
    public void acquireOwn(Duration maxWait) {
        long deadline = System.nanoTime() + maxWait.toNanos();
        long lastSaid = 0;
        String predecessor = deadPredecessor();
        while (true) {
            List<Object> reply;
            try {
                reply = predecessor.isEmpty() ? call("acquire", own.nodeId())
                        : call("replace", own.nodeId(), predecessor);
            } catch (Exception e) {
                throw new StartupException("cannot take the lease of node " + own.nodeId() + " in Redis: "
                        + e.getMessage() + " (check Redis)");
            }
            long code = (Long) reply.get(0);
            if (code == 1) {
                rememberInstance();
                return;
            }
            if (code == -1) {
                throw new StartupException("herald.redis.shards is " + redis.shards() + " but the nodes already on "
                        + "this Redis use " + reply.get(1) + ": set the same value on every node (it is fixed for the "
                        + "lifetime of a deployment)");
            }
            String holder = String.valueOf(reply.get(1));
            if (System.nanoTime() > deadline) {
                throw new StartupException("node id " + own.nodeId() + " is held by " + holder + " (another process "
                        + "runs with this herald.node-id / HERALD_NODE_ID, or a node is replaying its journal after "
                        + "taking it over): give every node its own node id, or start again once it is done");
            }
            if (System.nanoTime() - lastSaid > TimeUnit.SECONDS.toNanos(10)) {
                lastSaid = System.nanoTime();
                log.info("waiting for the lease of node {} held by {} ({} ms left)", own.nodeId(), holder, reply.get(2));
            }
            try {
                Thread.sleep(Math.min(500, Math.max(50, ttlMillis / 10)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new StartupException("interrupted while waiting for the lease of node " + own.nodeId());
            }
        }
    }

    /** Renews the leases every third of the lease time and takes over expired ones; after the node's own replay. */
    public void start() {
        long every = Math.max(50, ttlMillis / 3);
        renewals.scheduleWithFixedDelay(this::round, every, every, TimeUnit.MILLISECONDS);
    }

    /** Journals of other nodes this node holds right now (for tests and metrics). */
    public java.util.Set<String> heldNodes() {
        return java.util.Set.copyOf(held.keySet());
    }

    /** One renewal round: this node's lease, the journals it holds, then expired leases to take over. */
    private void round() {
        try {
            List<Object> mine = call("renew", own.nodeId());
            if ((Long) mine.get(0) != 1) {
                // Alive after a pause longer than the lease (Redis unreachable, a long GC): another
                // node may have replayed this journal. Take the lease back at once, so that node
                // stops (it would otherwise wait for a journal this node keeps writing to).
                log.error("the lease of node {} was taken by {} after this node could not renew it for {} ms: "
                        + "both may process the entries unsettled then (a message may go twice, none is lost); "
                        + "taking it back", own.nodeId(), mine.get(1), ttlMillis);
                call("reclaim", own.nodeId());
            }
            for (Map.Entry<String, Journal> h : held.entrySet()) {
                String node = h.getKey();
                if ((Long) call("renew", node).get(0) != 1) {
                    held.remove(node);
                    replayed.remove(node);
                    log.warn("lost the lease of node {} (taken over by another node meanwhile)", node);
                } else if (replayed.contains(node) && h.getValue().unsettledEntries(wait) == 0) {
                    h.getValue().forgetReplays(wait);
                    held.remove(node);
                    replayed.remove(node);
                    call("drop", node);
                    log.info("the journal of node {} is settled; the node is forgotten", node);
                }
            }
            for (Object o : call("expired", own.nodeId())) {
                String node = (String) o;
                if (node.equals(own.nodeId()) || held.containsKey(node)) {
                    continue;
                }
                if ((Long) call("acquire", node).get(0) == 1) {
                    Journal journal = own.of(node);
                    held.put(node, journal);
                    takeovers.execute(() -> takeOver(journal));
                }
            }
        } catch (Exception e) {
            log.warn("lease round failed ({}); next round retries", e.toString());
        }
    }

    /**
     * Replays a dead node's journal into this node's pipeline (on the takeover thread: the replay
     * waits for pipeline capacity). The renewal rounds then hold its lease until every entry has
     * settled, and let the node go.
     */
    private void takeOver(Journal journal) {
        String node = journal.nodeId();
        try {
            int messages = takeover.replay(journal);
            replayed.add(node);
            log.warn("took over the journal of node {} (its lease expired): {} messages replayed", node, messages);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            // Stop renewing: the entries stay, the lease lapses, and a node (maybe this one) tries again.
            held.remove(node);
            log.error("taking over the journal of node {} failed ({}); it stays for another try", node, e.toString());
        }
    }

    /** Stops renewing without releasing anything, as a crash would (tests). */
    public void halt() {
        halted = true;
        stop();
    }

    private void stop() {
        renewals.shutdownNow();
        takeovers.shutdownNow();
    }

    /** Stops, releasing this node's lease and those it holds: what is left in the journals is taken over. */
    @Override
    public void close() {
        if (halted) {
            return; // a crash releases nothing
        }
        stop();
        try {
            renewals.awaitTermination(5, TimeUnit.SECONDS);
            takeovers.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (String node : held.keySet()) {
            try {
                call("release", node);
            } catch (Exception e) {
                log.debug("lease of {} not released ({}): it lapses", node, e.toString());
            }
        }
        try {
            call("release", own.nodeId());
        } catch (Exception e) {
            log.debug("own lease not released ({}): it lapses", e.toString());
        }
    }
}
