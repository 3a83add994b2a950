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
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A process the load driver starts: the gateway (from its shaded jar) or a provider peer (this
 * jar's {@code peer} command), each a JVM of its own so its CPU and memory are its own and can be
 * read from {@code /proc}.
 *
 * <p>{@link #start} returns once the child printed a line matching its ready pattern; until then
 * and afterwards everything the child writes (stdout and stderr, merged) is copied to a log file
 * by a daemon thread, which also keeps the pipe from filling up and stalling the child. The last
 * lines are kept in memory for error messages.
 *
 * <p>Ownership: the caller owns the instance and must {@link #close()} it, which stops the child
 * with SIGTERM (graceful: the gateway drains), waits up to 15 s, then kills it and any descendant
 * still alive. {@link #kill()} is SIGKILL, as a crash would be. Thread-safe; {@link #close()} is
 * idempotent.
 */
public final class ChildProcess implements AutoCloseable {
    /** Exit status of a JVM that ran its shutdown hooks after SIGTERM (128 + 15): a clean stop. */
    public static final int EXIT_ON_SIGTERM = 143;
    private static final Duration STOP_GRACE = Duration.ofSeconds(15);
    private static final int TAIL_LINES = 40;
    /** USER_HZ: the unit of utime/stime in /proc/PID/stat on Linux. */
    private static final double CLOCK_TICKS = 100.0;

    private final String name;
    private final Process process;
    private final Matcher ready;
    private final Path log;
    private final Deque<String> tail;
    private final Thread pump;
    private volatile boolean closed;

    private ChildProcess(String name, Process process, Matcher ready, Path log, Deque<String> tail, Thread pump) {
        this.name = name;
        this.process = process;
        this.ready = ready;
        this.log = log;
        this.tail = tail;
        this.pump = pump;
    }

    /**
     * Launches {@code command} and waits for its ready line.
     *
     * @param name what it is, for messages ("gateway", "apns peer")
     * @param env variables to set ({@code null} value: remove the variable)
     * @throws IOException if the child cannot be launched, exits, or is not ready within
     *     {@code readyTimeout}; the message carries the last lines it printed
     */
    public static ChildProcess start(String name, List<String> command, Map<String, String> env, Path log,
                                     Pattern readyLine, Duration readyTimeout) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        env.forEach((k, v) -> {
            if (v == null) {
                pb.environment().remove(k);
            } else {
                pb.environment().put(k, v);
            }
        });
        Process process = pb.start();
        Deque<String> tail = new ArrayDeque<>();
        CompletableFuture<Matcher> ready = new CompletableFuture<>();
        Thread pump = new Thread(() -> pump(process, log, tail, readyLine, ready), name + "-output");
        pump.setDaemon(true);
        pump.start();
        try {
            Matcher m = ready.get(readyTimeout.toMillis(), TimeUnit.MILLISECONDS);
            return new ChildProcess(name, process, m, log, tail, pump);
        } catch (TimeoutException e) {
            stop(process);
            throw new IOException(name + " not ready within " + readyTimeout.toSeconds() + " s; last output:\n"
                    + lastLines(tail));
        } catch (InterruptedException e) {
            stop(process);
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for the " + name);
        } catch (java.util.concurrent.ExecutionException e) {
            stop(process);
            throw new IOException(e.getCause().getMessage() + "; last output:\n" + lastLines(tail));
        }
    }

    /** The java launcher of this JVM, for children that are JVMs too. */
    static String java() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    private static void pump(Process process, Path log, Deque<String> tail, Pattern readyLine,
                             CompletableFuture<Matcher> ready) {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
                StandardCharsets.UTF_8));
             BufferedWriter out = Files.newBufferedWriter(log, StandardCharsets.UTF_8,
                     java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND)) {
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
                    Matcher m = readyLine.matcher(line);
                    if (m.matches()) {
                        ready.complete(m);
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
        ready.completeExceptionally(new IOException("exited with status " + code + " before it was ready"));
    }

    /** The ready line, matched: its groups carry what the child announced (URL, ports). */
    public Matcher ready() {
        return ready;
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

    /** User + system CPU seconds the process {@code pid} has used so far, or -1 when unreadable. */
    public static double cpuSeconds(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            // Fields after the command name, which is in parentheses and may contain spaces.
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / CLOCK_TICKS; // utime, stime (fields 14, 15)
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** A {@code /proc/PID/status} size field ({@code VmRSS}, {@code VmHWM}) in bytes, or -1. */
    public static long statusBytes(long pid, String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
                if (line.startsWith(field + ":")) {
                    String v = line.substring(field.length() + 1).trim();
                    return Long.parseLong(v.substring(0, v.indexOf(' '))) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            // gone or not Linux
        }
        return -1;
    }

    /** SIGKILL, as a crash: no shutdown hook runs. Waits until the child is gone. */
    public void kill() {
        closed = true;
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
            pump.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
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

    @Override
    public String toString() {
        return name + " (pid " + process.pid() + ")";
    }

    private static int stop(Process process) {
        // Snapshot first: once the parent is gone its children are re-parented and no longer listed.
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
