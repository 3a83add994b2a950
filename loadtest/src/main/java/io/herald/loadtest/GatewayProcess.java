package io.herald.loadtest;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A gateway started by the load driver as a separate JVM from the gateway's shaded jar, so the
 * driver's CPU and heap are not the gateway's:
 * {@code java -Xmx<heap> -jar <jar> --port 0 --data-dir <dir>/data --api-key <app>:<key> --config <file>}.
 *
 * <p>{@link #start} returns once the child printed {@code herald ready on http://HOST:PORT}; until
 * then and afterwards, everything the child writes (stdout and stderr, merged) is copied to
 * {@code <dir>/gateway.log} by a daemon thread, which also keeps the pipe from filling up and
 * stalling the child. The last lines are kept in memory for error messages.
 *
 * <p>Ownership: the caller owns the instance and must {@link #close()} it, which stops the child
 * with SIGTERM (graceful: the gateway drains), waits up to 15 s, then kills it and any descendant
 * still alive (the gateway's embedded {@code redis-server}, which a SIGKILLed gateway cannot stop
 * itself). The directory is the caller's. Thread-safe; {@link #close()} is idempotent.
 */
public final class GatewayProcess implements AutoCloseable {
    /** Exit status of a JVM that ran its shutdown hooks after SIGTERM (128 + 15): a clean stop. */
    public static final int EXIT_ON_SIGTERM = 143;
    private static final Pattern READY = Pattern.compile("^herald ready on (http://\\S+)\\s*$");
    private static final Duration STOP_GRACE = Duration.ofSeconds(15);
    private static final int TAIL_LINES = 40;

    private final Process process;
    private final String baseUrl;
    private final Path log;
    private final Deque<String> tail;
    private final Thread pump;
    private volatile boolean closed;

    private GatewayProcess(Process process, String baseUrl, Path log, Deque<String> tail, Thread pump) {
        this.process = process;
        this.baseUrl = baseUrl;
        this.log = log;
        this.tail = tail;
        this.pump = pump;
    }

    /**
     * Writes the config, launches the gateway and waits for its ready line.
     *
     * @param jar the gateway's shaded jar
     * @param dir a directory owned by the caller: config file, data directory and log go there
     * @param hocon the config file contents
     * @throws IOException if the child cannot be launched, exits, or is not ready within
     *     {@code readyTimeout}; the message carries the last lines it printed
     */
    public static GatewayProcess start(Path jar, Path dir, String heap, String app, String apiKey, String hocon,
                                       Duration readyTimeout) throws IOException {
        if (!Files.isReadable(jar)) {
            throw new IOException("gateway jar " + jar + " not found: build it with "
                    + "'mvn -q -B install -DskipTests' in the project root, or pass --gateway-jar");
        }
        Path config = dir.resolve("herald-loadtest.conf");
        Files.writeString(config, hocon, StandardCharsets.UTF_8);
        Path log = dir.resolve("gateway.log");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = new ArrayList<>(List.of(java.toString(), "-Xmx" + heap, "-jar", jar.toString(),
                "--port", "0", "--data-dir", dir.resolve("data").toString(),
                "--api-key", app + ":" + apiKey, "--config", config.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        // The gateway's environment overrides must not leak in from the caller's shell.
        for (String v : List.of("HERALD_HOST", "HERALD_PORT", "HERALD_DATA_DIR", "REDIS_URL", "HERALD_API_KEY",
                "HERALD_SANDBOX", "HERALD_NODE_ID")) {
            pb.environment().remove(v);
        }
        Process process = pb.start();
        Deque<String> tail = new ArrayDeque<>();
        CompletableFuture<String> ready = new CompletableFuture<>();
        Thread pump = new Thread(() -> pump(process, log, tail, ready), "gateway-output");
        pump.setDaemon(true);
        pump.start();
        try {
            String url = ready.get(readyTimeout.toMillis(), TimeUnit.MILLISECONDS);
            return new GatewayProcess(process, url, log, tail, pump);
        } catch (TimeoutException e) {
            stop(process);
            throw new IOException("gateway not ready within " + readyTimeout.toSeconds() + " s; last output:\n"
                    + lastLines(tail));
        } catch (InterruptedException e) {
            stop(process);
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for the gateway");
        } catch (java.util.concurrent.ExecutionException e) {
            stop(process);
            throw new IOException(e.getCause().getMessage() + "; last output:\n" + lastLines(tail));
        }
    }

    private static void pump(Process process, Path log, Deque<String> tail, CompletableFuture<String> ready) {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
                StandardCharsets.UTF_8));
             BufferedWriter out = Files.newBufferedWriter(log, StandardCharsets.UTF_8)) {
            String line;
            while ((line = in.readLine()) != null) {
                out.write(line);
                out.newLine();
                out.flush();
                synchronized (tail) {
                    tail.addLast(line);
                    if (tail.size() > TAIL_LINES) {
                        tail.removeFirst();
                    }
                }
                if (!ready.isDone()) {
                    Matcher m = READY.matcher(line);
                    if (m.matches()) {
                        ready.complete(m.group(1));
                    }
                }
            }
        } catch (IOException e) {
            // the child closed its output or the log is not writable; the exit check below reports
        }
        int code;
        try {
            code = process.waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        ready.completeExceptionally(new IOException("gateway exited with status " + code + " before it was ready"));
    }

    /** The gateway's base URL as it printed it, e.g. {@code http://127.0.0.1:41234}. */
    public String baseUrl() {
        return baseUrl;
    }

    /** Where the child's output goes. */
    public Path log() {
        return log;
    }

    /** The child's process id. */
    public long pid() {
        return process.pid();
    }

    /** True while the child runs. */
    public boolean alive() {
        return process.isAlive();
    }

    /** The last lines the child printed, for error messages. */
    public String lastOutput() {
        return lastLines(tail);
    }

    /**
     * Stops the child (SIGTERM, then SIGKILL after 15 s) and any descendant left behind.
     *
     * @return the child's exit status ({@link #EXIT_ON_SIGTERM} after a graceful stop), or -1 when it
     *     had to be killed
     */
    public int stopAndWait() {
        if (closed) {
            return process.isAlive() ? -1 : process.exitValue();
        }
        closed = true;
        int status = stop(process);
        try {
            // The child is gone; let the pump copy what is still in the pipe (its shutdown log) to the file.
            pump.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return status;
    }

    @Override
    public void close() {
        stopAndWait();
    }

    private static int stop(Process process) {
        // Snapshot first: once the gateway is gone its children are re-parented and no longer listed.
        List<ProcessHandle> descendants = process.descendants().toList();
        int status = -1;
        // SIGTERM through the handle: Process.destroy() would also close our end of the child's
        // output, losing whatever it prints while shutting down (its drain report).
        process.toHandle().destroy();
        try {
            if (process.waitFor(STOP_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
                status = process.exitValue();
            } else {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
        for (ProcessHandle child : descendants) {
            if (child.isAlive()) {
                child.destroy();
                try {
                    child.onExit().get(5, TimeUnit.SECONDS);
                } catch (Exception e) {
                    child.destroyForcibly();
                }
            }
        }
        return status;
    }

    private static String lastLines(Deque<String> tail) {
        synchronized (tail) {
            return tail.isEmpty() ? "  (no output)" : "  " + String.join("\n  ", tail);
        }
    }
}
