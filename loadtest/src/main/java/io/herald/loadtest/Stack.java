package io.herald.loadtest;

import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.LocalRedisCluster;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.BufferedInputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Pattern;

/**
 * Everything a run needs besides the driver, each in a process of its own: the provider peers
 * ({@code peer} command of this jar), Redis (the gateway's embedded {@code redis-server}, started
 * here so it outlives a killed gateway, or {@code --redis-url}) and the gateway (its shaded jar,
 * configured to deliver to the peers with real credentials: a token-signing key for APNs, a
 * service account for FCM, an SMPP account). The driver reads every peer's arrival records over a
 * loopback connection and hands them to the current {@link Tally}.
 *
 * <p>Ownership: a stack owns its processes and its directory; {@link #close()} stops the gateway
 * (SIGTERM, drain), the peers and Redis. The gateway can be killed and restarted
 * ({@link #killGateway()}, {@link #startGateway()}) while Redis and the peers live on. Thread-safe
 * for {@link #tally(Tally)} (arrival readers see the new tally at once); start and stop from one
 * thread.
 */
final class Stack implements AutoCloseable {
    private static final Pattern PEER_READY = Pattern.compile(
            "^peer (\\w+) ready port=(\\d+) report=(\\d+) dir=(.+)$");
    private static final Pattern GATEWAY_READY = Pattern.compile("^herald ready on (http://\\S+)\\s*$");

    final Path dir;
    final String app;
    final String apiKey;
    private final Path gatewayJar;
    private final String gatewayHeap;
    private final int capacity;
    private final String extraConfig;
    private final List<String> gatewayJvm;
    private final Map<PeerMain.Kind, ChildProcess> peers = new EnumMap<>(PeerMain.Kind.class);
    private final Map<PeerMain.Kind, Integer> peerPorts = new EnumMap<>(PeerMain.Kind.class);
    private final List<Socket> reports = new ArrayList<>();
    private final AtomicReference<Tally> tally = new AtomicReference<>();
    private EmbeddedRedis redis;
    private LocalRedisCluster cluster;
    private String redisUrl;
    private final int nodes;
    private final boolean onCluster;
    /** Shared by every node: personal data one node seals, another opens; receipts one signs, any verifies. */
    private final String dataKey = randomBase64(32);
    private final String receiptKey = randomBase64(32);
    private final ChildProcess[] gateways;
    private final String[] baseUrls;
    private final int[] gatewayPorts;
    private boolean keepGatewayPort;

    Stack(Path dir, String app, Path gatewayJar, String gatewayHeap, int capacity, String extraConfig,
          List<String> gatewayJvm) {
        this(dir, app, gatewayJar, gatewayHeap, capacity, extraConfig, gatewayJvm, 1, false);
    }

    /** {@code nodes} gateway processes on one Redis; {@code onCluster}: a local Redis Cluster of 3 masters. */
    Stack(Path dir, String app, Path gatewayJar, String gatewayHeap, int capacity, String extraConfig,
          List<String> gatewayJvm, int nodes, boolean onCluster) {
        this.nodes = nodes;
        this.onCluster = onCluster;
        this.gateways = new ChildProcess[nodes];
        this.baseUrls = new String[nodes];
        this.gatewayPorts = new int[nodes];
        this.gatewayJvm = List.copyOf(gatewayJvm);
        this.dir = dir;
        this.app = app;
        this.apiKey = randomKey(32);
        this.gatewayJar = gatewayJar;
        this.gatewayHeap = gatewayHeap;
        this.capacity = capacity;
        this.extraConfig = extraConfig == null ? "" : extraConfig;
    }

    /** Routes arrival records to {@code t} from now on (one run at a time). */
    void tally(Tally t) {
        tally.set(t);
    }

    /** Starts one peer process per kind and connects to its report port. */
    void startPeers(Iterable<PeerMain.Kind> kinds) throws IOException {
        Path jar = ownJar();
        for (PeerMain.Kind kind : kinds) {
            Path peerDir = dir.resolve("peer-" + kind);
            Files.createDirectories(peerDir);
            List<String> cmd = List.of(ChildProcess.java(), "-Xmx256m", "-XX:+UseSerialGC", "-cp", jar.toString(),
                    LoadTest.class.getName(), "peer", "--kind", kind.name(), "--dir", peerDir.toString());
            ChildProcess p = ChildProcess.start(kind + " peer", cmd, Map.of(), dir.resolve("peer-" + kind + ".log"),
                    PEER_READY, Duration.ofSeconds(30));
            peers.put(kind, p);
            peerPorts.put(kind, Integer.parseInt(p.ready().group(2)));
            Socket s = new Socket(InetAddress.getLoopbackAddress(), Integer.parseInt(p.ready().group(3)));
            reports.add(s);
            Thread reader = new Thread(() -> read(s), "arrivals-" + kind);
            reader.setDaemon(true);
            reader.start();
        }
    }

    /** Connects to peers started by hand ({@code loadtest peer}) through their report ports. */
    void connectReports(List<Integer> ports) throws IOException {
        for (int port : ports) {
            Socket s = new Socket(InetAddress.getLoopbackAddress(), port);
            reports.add(s);
            Thread reader = new Thread(() -> read(s), "arrivals-" + port);
            reader.setDaemon(true);
            reader.start();
        }
    }

    private void read(Socket s) {
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream(), 1 << 16))) {
            while (true) {
                int run = in.readInt();
                long seq = in.readLong();
                long intended = in.readLong();
                long arrival = in.readLong();
                Tally t = tally.get();
                if (t != null) {
                    t.arrived(run, seq, intended, arrival);
                }
            }
        } catch (EOFException e) {
            // peer stopped
        } catch (IOException e) {
            // closed at the end of the run
        }
    }

    /** The peers this stack started. */
    PeerMain.Kind[] started() {
        return peers.keySet().toArray(new PeerMain.Kind[0]);
    }

    int peerPort(PeerMain.Kind kind) {
        return peerPorts.get(kind);
    }

    Path peerDir(PeerMain.Kind kind) {
        return dir.resolve("peer-" + kind);
    }

    long peerPid(PeerMain.Kind kind) {
        return peers.get(kind).pid();
    }

    /**
     * Starts Redis: the embedded server in a process of its own, a local Redis Cluster (3 masters,
     * no replicas) when the stack is on a cluster, or uses {@code url}.
     */
    void startRedis(String url) {
        if (url != null) {
            redisUrl = url;
        } else if (onCluster) {
            cluster = LocalRedisCluster.start(dir.resolve("redis"), 3, 0);
            redisUrl = cluster.uri();
        } else {
            redis = EmbeddedRedis.start(dir.resolve("redis"));
            redisUrl = redis.uri();
        }
    }

    /** The servers of the cluster this stack started (none otherwise). */
    List<String> redisNodeUrls() {
        return cluster == null ? List.of() : cluster.nodes().stream().map(EmbeddedRedis::uri).toList();
    }

    /** The Redis processes this stack started (none with a given URL). */
    List<Long> redisPids() {
        if (cluster != null) {
            return cluster.nodes().stream().map(EmbeddedRedis::pid).toList();
        }
        return redis == null ? List.of() : List.of(redis.pid());
    }

    /** The Redis URL the gateway was given, or null before {@link #startRedis}. */
    String redisUrl() {
        return redisUrl;
    }

    long redisPid() {
        return redis == null ? -1 : redis.pid();
    }

    /** Starts (or restarts) every gateway node that is not running and waits for their ready lines. */
    void startGateway() throws IOException {
        for (int i = 0; i < nodes; i++) {
            if (gateways[i] == null || !gateways[i].alive()) {
                startNode(i);
            }
        }
    }

    private void startNode(int i) throws IOException {
        if (!Files.isReadable(gatewayJar)) {
            throw new IOException("gateway jar " + gatewayJar + " not found: build it with "
                    + "'mvn -q -B install -DskipTests' in the project root, or pass --gateway-jar");
        }
        String suffix = nodes == 1 ? "" : "-" + (i + 1);
        Path config = dir.resolve("herald-loadtest" + suffix + ".conf");
        Files.writeString(config, hocon(i + 1));
        List<String> cmd = new ArrayList<>(List.of(ChildProcess.java(), "-Xmx" + gatewayHeap));
        cmd.addAll(gatewayJvm);
        cmd.addAll(List.of("-jar", gatewayJar.toString(), "--port", Integer.toString(gatewayPorts[i]), "--data-dir",
                dir.resolve("data" + suffix).toString(), "--api-key",
                app + ":" + apiKey + ":roles=send,manage,approve,read,admin", "--config", config.toString()));
        Map<String, String> env = new HashMap<>();
        // The gateway's environment overrides must not leak in from the caller's shell.
        for (String v : List.of("HERALD_HOST", "HERALD_PORT", "HERALD_DATA_DIR", "HERALD_API_KEY",
                "HERALD_SANDBOX", "HERALD_NODE_ID")) {
            env.put(v, null);
        }
        env.put("REDIS_URL", redisUrl);
        env.put("REDIS_CLUSTER", Boolean.toString(onCluster || cluster != null));
        env.put("HERALD_DATA_KEY", dataKey);
        env.put("HERALD_RECEIPT_KEY", receiptKey);
        gateways[i] = ChildProcess.start("gateway" + suffix, cmd, env, dir.resolve("gateway" + suffix + ".log"),
                GATEWAY_READY, Duration.ofSeconds(90));
        baseUrls[i] = gateways[i].ready().group(1);
        if (keepGatewayPort) {
            gatewayPorts[i] = java.net.URI.create(baseUrls[i]).getPort();
        }
    }

    /**
     * Keeps the gateway on one port across restarts (the crash scenario's clients keep their
     * URL): the first start binds port 0, later starts the port it got. No port is picked free
     * and released before the first bind; a restart binds its old port again, as a restarted
     * production gateway does, and fails with the gateway's own bind error if it was taken.
     */
    void keepGatewayPort() {
        keepGatewayPort = true;
    }

    /** SIGKILL: the (first) gateway dies mid-flight, as in a crash; Redis, the peers and other nodes live on. */
    void killGateway() {
        gateways[0].kill();
    }

    /** SIGTERM and wait; returns the exit status (143 after a clean drain). */
    int stopGateway() {
        return gateways[0] == null ? 0 : gateways[0].stopAndWait();
    }

    /** The first gateway node. */
    ChildProcess gateway() {
        return gateways[0];
    }

    /** Every gateway node started so far. */
    List<ChildProcess> gateways() {
        return java.util.Arrays.stream(gateways).filter(java.util.Objects::nonNull).toList();
    }

    String baseUrl() {
        return baseUrls[0];
    }

    List<String> baseUrls() {
        return java.util.Arrays.stream(baseUrls).filter(java.util.Objects::nonNull).toList();
    }

    /**
     * The gateway's config: the app's credentials point at the peers; no per-user limit in the
     * way; the SMPP account without the carrier-style throttle (1 bind at 50/s would cap an sms
     * run at 50 msg/s); the ring capacity asked for.
     */
    String hocon(int node) {
        StringBuilder app = new StringBuilder();
        app.append("    rate-limit { rate = 1000000, period = 1s, burst = 1000000 }\n");
        if (peers.containsKey(PeerMain.Kind.apns)) {
            Path d = peerDir(PeerMain.Kind.apns);
            app.append("    apns { topic = \"io.herald.load\", signing-key-file = \"").append(d.resolve("apns-key.p8"))
                    .append("\", team-id = \"").append(PeerMain.TEAM_ID).append("\", key-id = \"")
                    .append(PeerMain.KEY_ID).append("\", production-host = \"localhost\", development-host = "
                            + "\"localhost\", port = ").append(peerPort(PeerMain.Kind.apns))
                    .append(", trusted-certificate-file = \"").append(d.resolve("apns-cert.pem")).append("\" }\n");
        }
        if (peers.containsKey(PeerMain.Kind.fcm)) {
            Path d = peerDir(PeerMain.Kind.fcm);
            app.append("    fcm { project-id = \"herald-load\", service-account-file = \"")
                    .append(d.resolve("fcm-service-account.json")).append("\", base-url = \"https://localhost:")
                    .append(peerPort(PeerMain.Kind.fcm)).append("\", trusted-certificate-file = \"")
                    .append(d.resolve("fcm-cert.pem")).append("\" }\n");
        }
        app.append("    sms { binds = 2, rate-per-bind = 100000, window = 50");
        if (peers.containsKey(PeerMain.Kind.sms)) {
            app.append(", host = \"127.0.0.1\", port = ").append(peerPort(PeerMain.Kind.sms))
                    .append(", system-id = \"herald\", password = \"sandbox\"");
        }
        app.append(" }\n");
        return "herald {\n"
                + "  node-id = \"load-" + node + "\"\n"
                + "  sandbox = false\n"
                + "  apps { \"" + this.app + "\" {\n" + app + "  } }\n"
                + "  pipeline { capacity = " + capacity + " }\n"
                // The gateway refuses a capacity below its largest batch (such a batch could never fit).
                + "  http { max-items-per-batch = " + Math.min(capacity, 10_000) + " }\n"
                + extraConfig
                + "}\n";
    }

    @Override
    public void close() {
        for (ChildProcess g : gateways) {
            if (g != null) {
                g.stopAndWait();
            }
        }
        for (Socket s : reports) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        peers.values().forEach(ChildProcess::close);
        if (redis != null) {
            redis.close();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    /** This jar (the peers run from it). */
    static Path ownJar() throws IOException {
        try {
            Path p = Path.of(LoadTest.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            if (!Files.isRegularFile(p)) {
                throw new IOException("the peers are started from loadtest.jar; run the load test with "
                        + "'java -jar loadtest/target/loadtest.jar' (found classes in " + p + ")");
            }
            return p;
        } catch (java.net.URISyntaxException e) {
            throw new IOException(e);
        }
    }

    static String randomBase64(int bytes) {
        byte[] b = new byte[bytes];
        new SecureRandom().nextBytes(b);
        return java.util.Base64.getEncoder().encodeToString(b);
    }

    static String randomKey(int length) {
        String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        SecureRandom random = new SecureRandom();
        StringBuilder sb = new StringBuilder(length);
        for (int i = 0; i < length; i++) {
            sb.append(alphabet.charAt(random.nextInt(alphabet.length())));
        }
        return sb.toString();
    }
}
