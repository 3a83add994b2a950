package io.herald.gateway.redis;

import io.herald.gateway.config.StartupException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A real {@code redis-server} process owned by this gateway (or by a test): bound to 127.0.0.1 on
 * a free port, AOF on ({@code appendfsync everysec}), data in a directory of ours.
 *
 * <p>The binary is the {@code redis-server} on {@code PATH} when there is one, else the Linux
 * binary bundled in the {@code com.github.codemonstur:embedded-redis} jar, extracted into the
 * data directory. The owner must {@link #close()} it; a JVM shutdown hook also stops it so no
 * orphan survives a normal exit. Thread-safe.
 */
public final class EmbeddedRedis implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedRedis.class);
    private static final String BUNDLED = "/redis-server-6.2.6-v5-linux-amd64";

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
        return start(dir, 0);
    }

    /** Starts a server on {@code port} (0 = pick a free one). */
    public static EmbeddedRedis start(Path dir, int port) {
        return start(dir, port, List.of());
    }

    /**
     * Starts a server with extra {@code redis-server} options after ours (e.g. {@code
     * --cluster-enabled yes}: tests of topologies Herald refuses).
     */
    public static EmbeddedRedis start(Path dir, List<String> extraArgs) {
        return start(dir, 0, extraArgs);
    }

    private static EmbeddedRedis start(Path dir, int port, List<String> extraArgs) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new StartupException("cannot create Redis data directory " + dir + ": " + e.getMessage()
                    + " (set --data-dir / HERALD_DATA_DIR to a writable directory)");
        }
        Path binary = findBinary(dir);
        StartupException last = null;
        for (int attempt = 0; attempt < 5; attempt++) {
            int p = port != 0 ? port : freePort();
            try {
                return launch(binary, dir, p, extraArgs);
            } catch (StartupException e) {
                last = e;
                if (port != 0) {
                    break;
                }
            }
        }
        throw last;
    }

    private static EmbeddedRedis launch(Path binary, Path dir, int port, List<String> extraArgs) {
        List<String> cmd = new ArrayList<>(List.of(binary.toString(),
                "--port", Integer.toString(port), "--bind", "127.0.0.1", "--dir", dir.toAbsolutePath().toString(),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--loglevel", "warning", "--logfile", ""));
        cmd.addAll(extraArgs);
        Process process;
        try {
            process = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new StartupException("cannot run " + binary + ": " + e.getMessage()
                    + " (install redis-server or set REDIS_URL)");
        }
        CompletableFuture<Void> ready = new CompletableFuture<>();
        StringBuilder output = new StringBuilder();
        Thread reader = new Thread(() -> pump(process.getInputStream(), output, ready), "herald-redis-log");
        reader.setDaemon(true);
        reader.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new StartupException("redis-server exited at start (port " + port + "): "
                        + lastLine(output) + " (free the port or set REDIS_URL)");
            }
            if (canConnect(port)) {
                log.info("embedded Redis {} on 127.0.0.1:{} (AOF in {})", binary.getFileName(), port, dir);
                return new EmbeddedRedis(process, port, dir);
            }
            try {
                ready.get(20, TimeUnit.MILLISECONDS);
            } catch (TimeoutException ignored) {
                // poll again
            } catch (Exception e) {
                // reader ended; loop checks liveness
            }
        }
        process.destroyForcibly();
        throw new StartupException("redis-server did not accept connections on port " + port
                + " within 20s: " + lastLine(output));
    }

    private static void pump(InputStream in, StringBuilder output, CompletableFuture<Void> ready) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                synchronized (output) {
                    if (output.length() < 8192) {
                        output.append(line).append('\n');
                    }
                }
                if (line.contains("Ready to accept connections")) {
                    ready.complete(null);
                }
            }
        } catch (IOException ignored) {
            // process ended
        }
    }

    private static String lastLine(StringBuilder output) {
        synchronized (output) {
            String s = output.toString().trim();
            int i = s.lastIndexOf('\n');
            return i < 0 ? s : s.substring(i + 1);
        }
    }

    private static boolean canConnect(int port) {
        try (java.net.Socket s = new java.net.Socket()) {
            s.connect(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
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
