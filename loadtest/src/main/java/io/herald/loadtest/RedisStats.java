package io.herald.loadtest;

import io.lettuce.core.ClientOptions;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisURI;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import io.lettuce.core.protocol.ProtocolVersion;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Redis's own books over the measured part of a gateway run: command calls from {@code INFO
 * commandstats} (which counts the commands a Lua script runs, each under its own name, besides
 * the {@code EVALSHA} itself), {@code used_memory} from {@code INFO memory}, and {@code DBSIZE}.
 * A {@link Snapshot} is taken when Redis has gone quiet ({@link #settle()}) right before the
 * measured part and again after its drain; {@link #figures} turns the two into per-message
 * figures ({@link Report.Redis}).
 *
 * <p>The driver's own commands (the {@code INFO}, {@code COMMAND INFO} and {@code DBSIZE} it
 * sends) are counted here as they are sent and taken out of every delta, so the figures hold
 * only what others (the gateway) asked of Redis. A command is a write when {@code COMMAND INFO}
 * lists the {@code write} flag; script calls ({@code EVAL}, {@code EVALSHA}, {@code FCALL}) are
 * counted apart and never as writes (the writes they make are counted under their own names).
 *
 * <p>Ownership: one Lettuce connection (RESP2), opened by {@link #open} and released by
 * {@link #close()}. Not thread-safe: one run's thread uses it.
 */
final class RedisStats implements AutoCloseable {
    /** Script calls: counted apart, never as writes. */
    static final Set<String> SCRIPT_COMMANDS = Set.of("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro");
    /** How often {@link #settle()} looks at the counters. */
    private static final Duration POLL = Duration.ofMillis(200);
    /**
     * Writes by others in one poll that still count as an idle Redis (a stray periodic write);
     * the record path makes thousands per second under load.
     */
    static final long QUIET_WRITES = 5;
    private static final int QUIET_POLLS = 3;
    private static final Duration SETTLE_TIMEOUT = Duration.ofSeconds(30);

    /**
     * Redis's counters at one moment: calls per command (commandstats names, e.g. {@code hset},
     * {@code client|setname} on Redis 7), the calls this driver had sent before reading them,
     * {@code used_memory}, {@code DBSIZE}, and whether Redis was quiet when they were read.
     */
    record Snapshot(Map<String, Long> calls, Map<String, Long> own, long usedMemory, long dbsize, boolean settled) { }

    private final List<RedisClient> clients;
    private final List<StatefulRedisConnection<String, String>> connections;
    /** The first server (COMMAND INFO); the counters are summed over {@link #connections}. */
    private final RedisCommands<String, String> redis;
    private final Map<String, Long> own = new HashMap<>();
    private final Map<String, Boolean> writes = new HashMap<>();

    private RedisStats(List<RedisClient> clients, List<StatefulRedisConnection<String, String>> connections) {
        this.clients = clients;
        this.connections = connections;
        this.redis = connections.get(0).sync();
    }

    /** Connects to {@code url} ({@code redis://host:port}, as the gateway's REDIS_URL). */
    static RedisStats open(String url) {
        return open(List.of(url));
    }

    /** Connects to every server of {@code urls} (the masters of a cluster): their counters are summed. */
    static RedisStats open(List<String> urls) {
        List<RedisClient> clients = new java.util.ArrayList<>();
        List<StatefulRedisConnection<String, String>> connections = new java.util.ArrayList<>();
        try {
            for (String url : urls) {
                RedisClient client = RedisClient.create(RedisURI.create(url));
                clients.add(client);
                client.setOptions(ClientOptions.builder().protocolVersion(ProtocolVersion.RESP2).build());
                connections.add(client.connect());
            }
            return new RedisStats(clients, connections);
        } catch (RuntimeException e) {
            clients.forEach(c -> c.shutdown(Duration.ZERO, Duration.ofSeconds(2)));
            throw e;
        }
    }

    /** Reads the counters now. */
    Snapshot snapshot() {
        return snapshot(true);
    }

    private Snapshot snapshot(boolean settled) {
        Map<String, Long> ownBefore = Map.copyOf(own);
        Map<String, Long> calls = new HashMap<>();
        long used = 0;
        long dbsize = 0;
        for (StatefulRedisConnection<String, String> c : connections) {
            RedisCommands<String, String> node = c.sync();
            own.merge("info", 1L, Long::sum);
            commandStats(node.info("commandstats")).forEach((k, v) -> calls.merge(k, v, Long::sum));
            own.merge("info", 1L, Long::sum);
            used += Long.parseLong(infoFields(node.info("memory")).getOrDefault("used_memory", "-1"));
            own.merge("dbsize", 1L, Long::sum);
            dbsize += node.dbsize();
        }
        return new Snapshot(calls, ownBefore, used, dbsize, settled);
    }

    /**
     * Waits until Redis is quiet (at most {@value #QUIET_WRITES} writes by others in each of
     * {@value #QUIET_POLLS} polls {@code POLL} apart: the gateway has recorded its last outcome
     * and deleted its last journal entry) and reads the counters; after 30 s it reads them
     * anyway, marked not settled.
     */
    Snapshot settle() throws InterruptedException {
        long end = System.nanoTime() + SETTLE_TIMEOUT.toNanos();
        Snapshot prev = snapshot();
        int quiet = 0;
        while (quiet < QUIET_POLLS) {
            if (System.nanoTime() > end) {
                return snapshot(false);
            }
            Thread.sleep(POLL.toMillis()); // polling Redis's counters, not synchronisation
            Snapshot cur = snapshot();
            Map<String, Long> d = delta(prev, cur);
            long w = d.entrySet().stream().filter(e -> isWrite(e.getKey())).mapToLong(Map.Entry::getValue).sum();
            quiet = w <= QUIET_WRITES ? quiet + 1 : 0;
            prev = cur;
        }
        return prev;
    }

    /** Per-message figures of the part between {@code before} and {@code after}. */
    Report.Redis figures(Snapshot before, Snapshot after, long messages) {
        Map<String, Long> d = delta(before, after);
        return figures(before, after, d, writeFlags(d.keySet()), messages);
    }

    private boolean isWrite(String command) {
        return writeFlags(List.of(command)).contains(command);
    }

    /** The commands of {@code names} whose {@code COMMAND INFO} has the write flag (cached per name). */
    Set<String> writeFlags(Collection<String> names) {
        List<String> unknown = names.stream().filter(n -> !writes.containsKey(n)).toList();
        if (!unknown.isEmpty()) {
            own.merge("command|info", 1L, Long::sum);
            List<Object> info = redis.commandInfo(unknown.toArray(new String[0]));
            Set<String> flagged = writeCommands(info);
            for (String n : unknown) {
                writes.put(n, !SCRIPT_COMMANDS.contains(n) && flagged.contains(n));
            }
        }
        Set<String> out = new HashSet<>();
        for (String n : names) {
            if (writes.get(n)) {
                out.add(n);
            }
        }
        return out;
    }

    @Override
    public void close() {
        connections.forEach(StatefulRedisConnection::close);
        clients.forEach(c -> c.shutdown(Duration.ZERO, Duration.ofSeconds(2)));
    }

    // ---- parsing and arithmetic (pure) -------------------------------------------------------------

    /** {@code key:value} lines of an INFO reply; comments and blank lines skipped. */
    static Map<String, String> infoFields(String info) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String line : info.split("\r?\n")) {
            int colon = line.indexOf(':');
            if (line.isEmpty() || line.startsWith("#") || colon < 0) {
                continue;
            }
            out.put(line.substring(0, colon), line.substring(colon + 1).trim());
        }
        return out;
    }

    /**
     * Calls per command of an {@code INFO commandstats} reply: {@code cmdstat_hset:calls=3,usec=9,...}
     * gives {@code hset -> 3} (names lower case, Redis 7 subcommands as {@code client|setname}).
     */
    static Map<String, Long> commandStats(String info) {
        Map<String, Long> out = new HashMap<>();
        infoFields(info).forEach((key, value) -> {
            if (!key.startsWith("cmdstat_")) {
                return;
            }
            for (String kv : value.split(",")) {
                if (kv.startsWith("calls=")) {
                    out.put(key.substring("cmdstat_".length()).toLowerCase(java.util.Locale.ROOT),
                            Long.parseLong(kv.substring("calls=".length())));
                }
            }
        });
        return out;
    }

    /**
     * The names among a {@code COMMAND INFO} reply's entries whose flags include {@code write}.
     * Each entry is {@code [name, arity, [flags...], ...]} or null (an unknown command).
     */
    static Set<String> writeCommands(List<?> commandInfo) {
        Set<String> out = new HashSet<>();
        for (Object entry : commandInfo) {
            if (entry instanceof List<?> e && e.size() > 2 && e.get(2) instanceof Collection<?> flags
                    && flags.stream().anyMatch(f -> "write".equals(String.valueOf(f)))) {
                out.add(String.valueOf(e.get(0)).toLowerCase(java.util.Locale.ROOT));
            }
        }
        return out;
    }

    /**
     * Calls by others between two snapshots, per command (only those with calls): the difference
     * of the counters less what this driver sent in between. A driver command Redis files under a
     * container name ({@code command} on Redis 6 for {@code command|info}) is taken from that.
     */
    static Map<String, Long> delta(Snapshot before, Snapshot after) {
        Map<String, Long> out = new HashMap<>();
        after.calls().forEach((cmd, calls) -> out.put(cmd, calls - before.calls().getOrDefault(cmd, 0L)));
        after.own().forEach((cmd, sent) -> {
            long n = sent - before.own().getOrDefault(cmd, 0L);
            String key = out.containsKey(cmd) || !cmd.contains("|") ? cmd : cmd.substring(0, cmd.indexOf('|'));
            out.merge(key, -n, Long::sum);
        });
        out.values().removeIf(v -> v <= 0);
        return out;
    }

    /**
     * The figures per message: calls, writes and script calls by others, the 10 commands with the
     * most calls, and {@code used_memory} growth per message (bytes per retained message when
     * {@code after} was read once everything of the part had been recorded and settled).
     */
    static Report.Redis figures(Snapshot before, Snapshot after, Map<String, Long> delta, Set<String> writes,
                                long messages) {
        long calls = delta.values().stream().mapToLong(Long::longValue).sum();
        long written = delta.entrySet().stream().filter(e -> writes.contains(e.getKey()))
                .mapToLong(Map.Entry::getValue).sum();
        long scripts = delta.entrySet().stream().filter(e -> SCRIPT_COMMANDS.contains(e.getKey()))
                .mapToLong(Map.Entry::getValue).sum();
        List<Report.RedisCommand> top = new ArrayList<>();
        delta.entrySet().stream()
                .sorted(Map.Entry.<String, Long>comparingByValue(Comparator.reverseOrder())
                        .thenComparing(Map.Entry.comparingByKey()))
                .limit(10)
                .forEach(e -> top.add(new Report.RedisCommand(e.getKey(), e.getValue(), per(e.getValue(), messages),
                        writes.contains(e.getKey()))));
        long grown = after.usedMemory() - before.usedMemory();
        return new Report.Redis(messages, calls, per(calls, messages), written, per(written, messages), scripts,
                per(scripts, messages), top, before.usedMemory(), after.usedMemory(),
                messages > 0 ? Math.round((double) grown / messages * 10) / 10.0 : 0, after.dbsize(),
                before.settled() && after.settled());
    }

    private static double per(long n, long messages) {
        return messages > 0 ? Report.round((double) n / messages) : 0;
    }
}
