package io.herald.gateway.redis;

import io.herald.gateway.config.StartupException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;

/**
 * A real {@code redis-server} process owned by this gateway (or by a test): bound to 127.0.0.1 on
 * a free port, AOF on ({@code appendfsync everysec}), data in a directory of ours.
 *
 * <p>The port: Redis cannot be handed a socket we bound, and {@code port 0} turns its TCP listener
 * off rather than picking one (a unix socket would need a native transport in every client), so
 * the port is chosen here and may be taken by another socket between the choice and Redis's bind.
 * Two checks make that harmless: a redis-server that exits with "Address already in use" is
 * started again on another port (up to {@value #ATTEMPTS} times), and the server counts as up only
 * when the process answering {@code INFO server} on the port reports our process id, so whatever
 * else listens there is never taken for our Redis.
 *
 * <p>The binary is the {@code redis-server} on {@code PATH} when there is one, else the Linux
 * binary bundled in the {@code com.github.codemonstur:embedded-redis} jar, extracted into the
 * data directory. The owner must {@link #close()} it; a JVM shutdown hook also stops it so no
 * orphan survives a normal exit. Thread-safe.
 */
public final class EmbeddedRedis implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedRedis.class);
    private static final String BUNDLED = "/redis-server-6.2.6-v5-linux-amd64";
    static final int ATTEMPTS = 10;

    private final Process process;
    private final int port;
    private final Path dir;
    private final Thread hook;

    private EmbeddedRedis(Process process, int port, Path dir) {
        this.process = process;
        this.port = port;
        this.dir = dir;
        this.hook = new Thread(process::destroy, "herald-redis-stop");
        Runtime.getRuntime().addShutdownHook(hook);
    }

    /** Starts a server whose files live in {@code dir}, on a free port; waits until it accepts. */
    public static EmbeddedRedis start(Path dir) {
        return start(dir, EmbeddedRedis::freePort, List.of());
    }

    /**
     * As {@link #start(Path)}, with extra {@code redis-server} options after ours (e.g. {@code
     * --cluster-enabled yes}: tests of topologies Herald refuses).
     */
    public static EmbeddedRedis start(Path dir, List<String> extraArgs) {
        return start(dir, EmbeddedRedis::freePort, extraArgs);
    }

    /**
     * Starts a Redis Cluster node (not yet part of a cluster: the caller meets and assigns it) on a
     * free port, its cluster bus on another free port ({@code cluster-port}, Redis 7 or later: the
     * default, port + 10000, may be past 65535; with Redis 6.2, the bundled binary, on port + 10000,
     * both found free). Both ports are chosen again when either is taken.
     */
    public static EmbeddedRedis startClusterNode(Path dir, List<String> extraArgs) {
        boolean busPortOption = majorVersion(prepare(dir)) >= 7;
        // Redis 6.2 (the bundled binary) has no cluster-port: its bus is port + 10000, so the port
        // must leave room for it and the bus port must be free too.
        IntSupplier ports = busPortOption ? EmbeddedRedis::freePort : EmbeddedRedis::freePortWithFreeBus;
        return start(dir, ports, () -> {
            List<String> args = new ArrayList<>(List.of("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"));
            if (busPortOption) {
                args.addAll(List.of("--cluster-port", Integer.toString(freePort())));
            }
            args.addAll(extraArgs);
            return args;
        });
    }

    /** The major version {@code redis-server --version} reports (6 when it cannot be read). */
    private static int majorVersion(Path binary) {
        try {
            Process p = new ProcessBuilder(binary.toString(), "--version").redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor(10, TimeUnit.SECONDS);
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("v=(\\d+)\\.").matcher(out);
            return m.find() ? Integer.parseInt(m.group(1)) : 6;
        } catch (IOException | RuntimeException e) {
            return 6;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 6;
        }
    }

    /** A free port p (below 55,536) whose cluster bus port p + 10000 is free as well. */
    private static int freePortWithFreeBus() {
        for (int attempt = 0; attempt < 100; attempt++) {
            int p = freePort();
            if (p + 10_000 > 65_535) {
                continue;
            }
            try (ServerSocket bus = new ServerSocket(p + 10_000, 1, InetAddress.getLoopbackAddress())) {
                return p; // both released here: the same race as freePort, covered the same way
            } catch (IOException e) {
                // bus port taken: try another
            }
        }
        throw new StartupException("no free TCP port pair (p, p + 10000) on 127.0.0.1 for a Redis Cluster node");
    }

    /**
     * Starts a server on {@code port} (0 = pick a free one). A fixed port that is taken fails the
     * start; it is not retried elsewhere, since the caller asked for that port.
     */
    public static EmbeddedRedis start(Path dir, int port) {
        if (port == 0) {
            return start(dir);
        }
        Path binary = prepare(dir);
        try {
            return launch(binary, dir, port, List.of());
        } catch (PortTaken e) {
            throw new StartupException("port " + port + " on 127.0.0.1 is in use, the embedded Redis cannot bind it"
                    + " (free the port or set REDIS_URL)");
        }
    }

    /** Starts a server on the first port from {@code ports} that redis-server manages to bind. */
    static EmbeddedRedis start(Path dir, IntSupplier ports) {
        return start(dir, ports, List.of());
    }

    private static EmbeddedRedis start(Path dir, IntSupplier ports, List<String> extraArgs) {
        return start(dir, ports, () -> extraArgs);
    }

    private static EmbeddedRedis start(Path dir, IntSupplier ports, java.util.function.Supplier<List<String>> extraArgs) {
        Path binary = prepare(dir);
        for (int attempt = 1; ; attempt++) {
            int port = ports.getAsInt();
            try {
                return launch(binary, dir, port, extraArgs.get());
            } catch (PortTaken e) {
                if (attempt == ATTEMPTS) {
                    throw new StartupException("the embedded Redis found all " + ATTEMPTS + " free ports it tried taken"
                            + " before it could bind them, the last " + port + " (set REDIS_URL)");
                }
                log.debug("port {} was taken before redis-server could bind it; trying another", port);
            }
        }
    }

    private static Path prepare(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new StartupException("cannot create Redis data directory " + dir + ": " + e.getMessage()
                    + " (set --data-dir / HERALD_DATA_DIR to a writable directory)");
        }
        return findBinary(dir);
    }

    /** redis-server could not bind its port: someone else holds it. Internal; stackless. */
    private static final class PortTaken extends RuntimeException {
        PortTaken() {
            super(null, null, false, false);
        }
    }

    private static EmbeddedRedis launch(Path binary, Path dir, int port, List<String> extraArgs) {
        List<String> cmd = new ArrayList<>(List.of(binary.toString(),
                "--port", Integer.toString(port), "--bind", "127.0.0.1", "--dir", dir.toAbsolutePath().toString(),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--loglevel", "warning", "--logfile", "",
                // Message records (~70-130 bytes) stay in compact hash chunks: ~75 instead of ~120 bytes each.
                "--hash-max-ziplist-value", "256"));
        cmd.addAll(extraArgs);
        Process process;
        try {
            process = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new StartupException("cannot run " + binary + ": " + e.getMessage()
                    + " (install redis-server or set REDIS_URL)");
        }
        StringBuilder output = new StringBuilder();
        Thread reader = new Thread(() -> pump(process.getInputStream(), output), "herald-redis-log");
        reader.setDaemon(true);
        reader.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        try {
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    reader.join(2_000); // the rest of what it said
                    if (text(output).contains("Address already in use")) {
                        throw new PortTaken();
                    }
                    throw new StartupException("redis-server exited at start (port " + port + "): "
                            + lastLine(output) + " (set REDIS_URL to use another Redis)");
                }
                if (answersAs(port, process.pid())) {
                    log.info("embedded Redis {} on 127.0.0.1:{} (AOF in {})", binary.getFileName(), port, dir);
                    return new EmbeddedRedis(process, port, dir);
                }
                process.waitFor(20, TimeUnit.MILLISECONDS); // an exit ends the wait early
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
            throw new StartupException("interrupted while starting redis-server on port " + port);
        }
        process.destroyForcibly();
        throw new StartupException("redis-server did not answer on port " + port + " within 20s: " + lastLine(output));
    }

    private static void pump(InputStream in, StringBuilder output) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                synchronized (output) {
                    if (output.length() < 8192) {
                        output.append(line).append('\n');
                    }
                }
            }
        } catch (IOException ignored) {
            // process ended
        }
    }

    private static String text(StringBuilder output) {
        synchronized (output) {
            return output.toString();
        }
    }

    private static String lastLine(StringBuilder output) {
        String s = text(output).trim();
        int i = s.lastIndexOf('\n');
        return i < 0 ? s : s.substring(i + 1);
    }

    /**
     * Whether the server on {@code port} is the process {@code pid}: its {@code INFO server}
     * reports that {@code process_id}. False while nothing listens, or when a stranger does.
     */
    static boolean answersAs(int port, long pid) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
            s.setSoTimeout(250); // Redis answers in microseconds; a miss only means one more try
            s.getOutputStream().write("INFO server\r\n".getBytes(StandardCharsets.US_ASCII));
            InputStream in = s.getInputStream();
            String header = readLine(in, 32);
            if (header == null || !header.startsWith("$")) {
                return false; // an error (-LOADING ...) or not Redis
            }
            int length = Integer.parseInt(header.substring(1));
            String info = new String(in.readNBytes(Math.min(length, 65_536)), StandardCharsets.UTF_8);
            return info.contains("\nprocess_id:" + pid + "\r");
        } catch (IOException | NumberFormatException e) {
            return false;
        }
    }

    /** One CRLF-terminated line of at most {@code max} bytes, or null (end of stream, or longer). */
    private static String readLine(InputStream in, int max) throws IOException {
        StringBuilder line = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0 && line.length() <= max) {
            if (c == '\n') {
                int n = line.length();
                return n > 0 && line.charAt(n - 1) == '\r' ? line.substring(0, n - 1) : line.toString();
            }
            line.append((char) c);
        }
        return null;
    }

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort(); // released here: see the class comment for what covers the gap
        } catch (IOException e) {
            throw new StartupException("no free TCP port on 127.0.0.1 for the embedded Redis: " + e.getMessage());
        }
    }

    private static Path findBinary(Path dir) {
        String path = System.getenv("PATH");
        if (path != null) {
            for (String p : path.split(java.io.File.pathSeparator)) {
                Path candidate = Path.of(p, "redis-server");
                if (Files.isExecutable(candidate)) {
                    return candidate;
                }
            }
        }
        String os = System.getProperty("os.name", "").toLowerCase();
        String arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new StartupException("no redis-server on PATH and no bundled binary for " + os + "/" + arch
                    + " (install redis-server or set REDIS_URL)");
        }
        Path target = dir.resolve("redis-server");
        try (InputStream in = EmbeddedRedis.class.getResourceAsStream(BUNDLED)) {
            if (in == null) {
                throw new StartupException("bundled redis-server missing from the classpath "
                        + "(install redis-server or set REDIS_URL)");
            }
            Path tmp = Files.createTempFile(dir, "redis-server", ".tmp");
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            if (!tmp.toFile().setExecutable(true)) {
                throw new IOException("cannot make " + tmp + " executable");
            }
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            throw new StartupException("cannot extract the bundled redis-server into " + dir + ": " + e.getMessage()
                    + " (install redis-server or set REDIS_URL)");
        }
    }

    /** The {@code redis://} URI clients use. */
    public String uri() {
        return "redis://127.0.0.1:" + port;
    }

    public int port() {
        return port;
    }

    public Path dir() {
        return dir;
    }

    /** The server's process id (the load test reads its CPU time from /proc). */
    public long pid() {
        return process.pid();
    }

    /** Kills the server at once (SIGKILL), as a crash would. For fault tests. */
    public void kill() {
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Stops the server (SIGTERM: Redis flushes its AOF) and waits for it to exit. */
    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException ignored) {
            // JVM already shutting down
        }
    }
}
