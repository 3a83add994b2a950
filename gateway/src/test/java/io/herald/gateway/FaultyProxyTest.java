package io.herald.gateway;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.awaitility.Awaitility.await;

/**
 * The fault proxy itself: its port stays its own from creation to close, across cuts, so a
 * test that restores it never finds the port taken (RedisFaultsIT once failed with
 * {@code BindException} in {@code restore()} because a cut released the port).
 */
@Timeout(30)
class FaultyProxyTest {
    ServerSocket target;
    final AtomicInteger targetAccepted = new AtomicInteger();
    FaultyProxy proxy;

    /** A target that greets every connection with "hi\n" and closes it. */
    @BeforeEach
    void start() throws IOException {
        target = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread t = new Thread(() -> {
            while (!target.isClosed()) {
                try (Socket s = target.accept()) {
                    targetAccepted.incrementAndGet();
                    s.getOutputStream().write("hi\n".getBytes(StandardCharsets.US_ASCII));
                } catch (IOException e) {
                    return;
                }
            }
        }, "faulty-proxy-test-target");
        t.setDaemon(true);
        t.start();
        proxy = new FaultyProxy(target.getLocalPort());
    }

    @AfterEach
    void stop() throws IOException {
        proxy.close();
        target.close();
    }

    @Test
    void aCutKeepsThePortSoNoOtherSocketCanTakeItAndRestoreWorks() throws IOException {
        int port = proxy.port();
        assertThat(greeting(port)).isEqualTo("hi");

        proxy.cut();
        // The old proxy closed its listener here: the kernel could hand the port to anyone
        // (this socket stands for that anyone), and restore() then failed with BindException.
        // A closed listener lingers while its accept thread wakes up, so the stranger keeps trying.
        try (ServerSocket stranger = new ServerSocket()) {
            await().during(Duration.ofMillis(500)).atMost(Duration.ofSeconds(2)).pollInterval(Duration.ofMillis(20))
                    .until(() -> !tryBind(stranger, port));
            assertThatCode(proxy::restore).doesNotThrowAnyException();
        }
        assertThat(proxy.port()).isEqualTo(port);
        assertThat(greeting(port)).isEqualTo("hi");
    }

    @Test
    void whileCutNewConnectionsAreDroppedWithoutReachingTheTarget() throws IOException {
        int port = proxy.port();
        assertThat(greeting(port)).isEqualTo("hi");
        int forwarded = proxy.acceptedConnections();
        proxy.cut();
        int reachedTarget = targetAccepted.get();

        assertThat(greeting(port)).as("what a client reads from a cut proxy").isNull();
        assertThat(targetAccepted.get()).isEqualTo(reachedTarget);
        assertThat(proxy.acceptedConnections()).as("connections forwarded while cut").isEqualTo(forwarded);

        proxy.restore();
        assertThat(greeting(port)).isEqualTo("hi");
        assertThat(proxy.acceptedConnections()).isEqualTo(forwarded + 1);
    }

    @Test
    void aCutClosesTheConnectionsItCarries() throws IOException {
        // A target that never answers: the connection stays open until someone closes it.
        try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
             FaultyProxy quiet = new FaultyProxy(silent.getLocalPort());
             Socket client = new Socket(InetAddress.getLoopbackAddress(), quiet.port());
             Socket server = silent.accept()) {
            client.setSoTimeout(10_000);
            server.setSoTimeout(10_000);
            quiet.cut();
            assertThat(readOrEnd(client.getInputStream())).as("client side after a cut").isEqualTo(-1);
            assertThat(readOrEnd(server.getInputStream())).as("server side after a cut").isEqualTo(-1);
        }
    }

    /** The first line read through the proxy on {@code port}; null when the connection ends or is refused first. */
    private static String greeting(int port) throws IOException {
        try (Socket s = new Socket()) {
            s.setSoTimeout(10_000);
            try {
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 5_000);
                byte[] line = s.getInputStream().readAllBytes();
                return line.length == 0 ? null : new String(line, StandardCharsets.US_ASCII).trim();
            } catch (java.net.SocketException e) {
                return null; // refused, or reset by the proxy
            }
        }
    }

    private static int readOrEnd(InputStream in) throws IOException {
        try {
            return in.read();
        } catch (java.net.SocketException e) {
            return -1; // reset: ended as well
        }
    }

    private static boolean tryBind(ServerSocket s, int port) {
        try {
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }
}
