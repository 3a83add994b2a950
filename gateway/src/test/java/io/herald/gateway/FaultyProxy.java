package io.herald.gateway;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP proxy for fault tests: listens on 127.0.0.1 (port 0, kept until {@link #close()}) and
 * forwards every connection to a target port on 127.0.0.1, with faults switched on and off while
 * it runs: {@link #cut()} closes every connection and drops new ones (each is accepted and reset
 * at once, so a client sees its connection die before a byte arrives), {@link #pause()} stops
 * forwarding in both directions without closing anything (a black hole: bytes wait in the proxy),
 * {@link #pauseReplies()} holds only the answers (the server runs the commands, the client never
 * hears back), {@link #latency(long)} delays each chunk by that many milliseconds from the moment
 * it was read (a long link, not a slow one: chunks stay pipelined), {@link #target(int)} forwards
 * new connections elsewhere (a server restarted on another port),
 * {@link #holdRequestsContaining(String)} stalls the one connection that sends a given request (that
 * request and every later one on it wait here, other connections go on; {@link #dropHeld()} then
 * closes it without forwarding them), and {@link #restore()} undoes the faults.
 *
 * <p>The listener stays bound for the proxy's whole life, through cuts: a port released during a
 * cut could be handed to any other socket before the proxy bound it again (RedisFaultsIT once
 * failed with {@code BindException} that way). The trade-off: a cut proxy resets connections
 * instead of refusing them, which clients handle alike (connection failed, reconnect later).
 *
 * <p>Plain blocking sockets, two threads per direction per connection (reader, delayed writer);
 * meant for a handful of client connections. Thread-safe; the test that creates it must
 * {@link #close()} it.
 */
final class FaultyProxy implements AutoCloseable {
    private final ServerSocket listener;
    private final int port;
    private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
    private final Object gate = new Object();
    private final AtomicInteger accepted = new AtomicInteger();
    private volatile int targetPort;
    /** Guarded by {@code this}: connections are registered and cut under the same lock. */
    private boolean cutOff;
    private volatile boolean pausedUp;
    private volatile boolean pausedDown;
    private volatile byte[] pauseRepliesOn;
    private volatile byte[] holdOn;
    /** Each connection's hold flag (set once it sent the held request), with its two sockets. */
    private final java.util.Map<java.util.concurrent.atomic.AtomicBoolean, Socket[]> holds = new ConcurrentHashMap<>();
    private volatile long latencyMillis;
    private volatile boolean closed;

    FaultyProxy(int targetPort) throws IOException {
        this.targetPort = targetPort;
        ServerSocket s = new ServerSocket();
        s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
        listener = s;
        port = s.getLocalPort();
        Thread t = new Thread(this::acceptLoop, "faulty-proxy-accept-" + port);
        t.setDaemon(true);
        t.start();
    }

    int port() {
        return port;
    }

    String redisUri() {
        return "redis://127.0.0.1:" + port;
    }

    /** Connections forwarded so far (a client that reconnects shows up here again; dropped ones do not). */
    int acceptedConnections() {
        return accepted.get();
    }

    /** Forwards connections made from now on to {@code port} (those already open stay where they are). */
    void target(int port) {
        targetPort = port;
    }

    /** Closes every connection; new ones are dropped until {@link #restore()}. The port stays ours. */
    synchronized void cut() {
        cutOff = true;
        closeAll();
    }

    /** Stops forwarding: nothing is closed, bytes wait here until {@link #restore()}. */
    void pause() {
        pausedUp = true;
        pausedDown = true;
    }

    /** Stops forwarding replies only: requests reach the server and run, their answers wait here. */
    void pauseReplies() {
        pausedDown = true;
    }

    /**
     * Pauses replies (as {@link #pauseReplies()}) as soon as a client sends a chunk containing
     * {@code marker}: that request still reaches the server, its answer is held.
     */
    void pauseRepliesAfterRequestContaining(String marker) {
        pauseRepliesOn = marker.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    /**
     * Stalls the first connection that sends a request containing {@code marker} (spread over two
     * reads or not): that request does not reach the server, nor does anything else sent on that
     * connection, until {@link #restore()} (or a cut, which drops it all). Other connections go on.
     */
    void holdRequestsContaining(String marker) {
        holdOn = marker.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    /** True once a connection is stalled by {@link #holdRequestsContaining(String)}. */
    boolean holding() {
        return holds.keySet().stream().anyMatch(java.util.concurrent.atomic.AtomicBoolean::get);
    }

    /**
     * Closes the stalled connection: what it held never reaches the server (as if the client had
     * died with its requests unsent). The listener and other connections are not touched.
     */
    void dropHeld() {
        holds.forEach((held, pair) -> {
            if (held.get()) {
                closeQuietly(pair[0]);
                closeQuietly(pair[1]);
                synchronized (gate) {
                    held.set(false);
                    gate.notifyAll();
                }
            }
        });
    }

    /** Delays every chunk by {@code millis} from when it was read, in both directions. */
    void latency(long millis) {
        latencyMillis = millis;
    }

    /** No faults: forwards again, without delay, and takes new connections again after a cut. */
    synchronized void restore() {
        latencyMillis = 0;
        pauseRepliesOn = null;
        holdOn = null;
        synchronized (gate) {
            pausedUp = false;
            pausedDown = false;
            holds.keySet().forEach(h -> h.set(false));
            gate.notifyAll();
        }
        if (!closed) {
            cutOff = false;
        }
    }

    @Override
    public synchronized void close() throws IOException {
        closed = true;
        cut();
        listener.close();
        synchronized (gate) {
            pausedUp = false;
            pausedDown = false;
            gate.notifyAll();
        }
    }

    private void closeAll() {
        for (Socket s : sockets) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        sockets.clear();
    }

    private void acceptLoop() {
        while (!listener.isClosed()) {
            Socket client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                return; // listener closed by close()
            }
            if (isCutOff()) {
                reset(client);
                continue;
            }
            Socket server = new Socket();
            try {
                client.setTcpNoDelay(true);
                server.setTcpNoDelay(true);
                server.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), targetPort), 2000);
            } catch (IOException e) {
                closeQuietly(client);
                closeQuietly(server);
                continue; // target down: the client sees its connection closed
            }
            synchronized (this) {
                // A cut while this connection was being set up must close it too.
                if (cutOff) {
                    reset(client);
                    closeQuietly(server);
                    continue;
                }
                accepted.incrementAndGet();
                sockets.add(client);
                sockets.add(server);
            }
            String name = "faulty-proxy-" + client.getPort();
            pipe(client, server, true, name + "-up");
            pipe(server, client, false, name + "-down");
        }
    }

    private synchronized boolean isCutOff() {
        return cutOff;
    }

    /** Closes with RST (linger 0): the client's connection fails at once, as near to a refusal as a listening port gets. */
    private static void reset(Socket s) {
        try {
            s.setSoLinger(true, 0);
        } catch (IOException ignored) {
            // closing anyway
        }
        closeQuietly(s);
    }

    private record Chunk(long readAtNanos, byte[] bytes) {
    }

    private static final Chunk END = new Chunk(0, new byte[0]);

    private void pipe(Socket from, Socket to, boolean up, String name) {
        LinkedBlockingQueue<Chunk> queue = new LinkedBlockingQueue<>();
        java.util.concurrent.atomic.AtomicBoolean held = new java.util.concurrent.atomic.AtomicBoolean();
        holds.put(held, new Socket[] {from, to});
        Thread reader = new Thread(() -> {
            byte[] buf = new byte[16384];
            byte[] tail = new byte[0];
            try {
                InputStream in = from.getInputStream();
                int n;
                while ((n = in.read(buf)) >= 0) {
                    byte[] chunk = Arrays.copyOf(buf, n);
                    byte[] marker = pauseRepliesOn;
                    if (up && marker != null && contains(chunk, marker)) {
                        pauseRepliesOn = null;
                        pausedDown = true;
                    }
                    byte[] hold = holdOn;
                    if (up && hold != null) {
                        byte[] seen = Arrays.copyOf(tail, tail.length + n);
                        System.arraycopy(chunk, 0, seen, tail.length, n);
                        if (contains(seen, hold)) {
                            synchronized (this) { // one connection only
                                if (holdOn != null) {
                                    holdOn = null;
                                    held.set(true);
                                }
                            }
                        }
                        tail = Arrays.copyOfRange(seen, Math.max(0, seen.length - hold.length + 1), seen.length);
                    }
                    queue.add(new Chunk(System.nanoTime(), chunk));
                }
            } catch (IOException ignored) {
                // closed
            } finally {
                queue.add(END);
            }
        }, name + "-read");
        Thread writer = new Thread(() -> {
            try {
                OutputStream out = to.getOutputStream();
                while (true) {
                    Chunk c = queue.take();
                    if (c == END) {
                        break;
                    }
                    waitWhilePaused(up, held);
                    long due = c.readAtNanos() + TimeUnit.MILLISECONDS.toNanos(latencyMillis);
                    long wait = due - System.nanoTime();
                    if (wait > 0) {
                        TimeUnit.NANOSECONDS.sleep(wait); // the injected latency itself
                    }
                    waitWhilePaused(up, held);
                    out.write(c.bytes());
                    out.flush();
                }
            } catch (SocketException ignored) {
                // closed by a cut
            } catch (IOException | InterruptedException ignored) {
                // closed
            } finally {
                closeQuietly(from);
                closeQuietly(to);
                sockets.remove(from);
                sockets.remove(to);
                holds.remove(held);
            }
        }, name + "-write");
        reader.setDaemon(true);
        writer.setDaemon(true);
        reader.start();
        writer.start();
    }

    private void waitWhilePaused(boolean up, java.util.concurrent.atomic.AtomicBoolean held)
            throws InterruptedException {
        synchronized (gate) {
            while ((up ? pausedUp || held.get() : pausedDown) && !closed) {
                gate.wait(10); // pauseRepliesAfterRequestContaining flips the flag without notifying
            }
        }
    }

    private static boolean contains(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return true;
        }
        return false;
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }
}
