package io.herald.gateway.redis;

import io.herald.gateway.config.StartupException;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The embedded redis-server and its port: the port is chosen before redis-server binds it, so
 * another socket can take it in between. Here a stranger holds the port on purpose: it must never
 * be taken for our Redis, and a start on a free port must move on to another one.
 */
@Timeout(120)
class EmbeddedRedisIT {
    @TempDir
    Path dir;

    @Test
    void aStrangerOnAFixedPortFailsTheStartInsteadOfPassingForOurRedis() throws IOException {
        try (Stranger stranger = new Stranger()) {
            // The old start took any listener on the port for its redis-server and returned it.
            assertThatThrownBy(() -> EmbeddedRedis.start(dir.resolve("redis"), stranger.port()).close())
                    .isInstanceOf(StartupException.class)
                    .hasMessageContaining("port " + stranger.port() + " on 127.0.0.1 is in use");
        }
    }

    @Test
    void aPortTakenBeforeRedisBindsItIsGivenUpForAnother() throws IOException {
        AtomicInteger asked = new AtomicInteger();
        try (Stranger stranger = new Stranger();
             EmbeddedRedis redis = EmbeddedRedis.start(dir.resolve("redis"), () -> {
                 // The first choice has been taken meanwhile (by the stranger); then any free port.
                 if (asked.getAndIncrement() == 0) {
                     return stranger.port();
                 }
                 try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                     return s.getLocalPort();
                 } catch (IOException e) {
                     throw new java.io.UncheckedIOException(e);
                 }
             })) {
            assertThat(redis.port()).isNotEqualTo(stranger.port());
            assertThat(asked.get()).as("ports tried").isEqualTo(2);
            assertThat(ping(redis)).isEqualTo("PONG");
            assertThat(EmbeddedRedis.answersAs(redis.port(), redis.pid())).isTrue();
            assertThat(EmbeddedRedis.answersAs(stranger.port(), redis.pid())).isFalse();
        }
    }

    @Test
    void aPortNobodyCanBindEndsTheStartWithOneLineAfterTheLastAttempt() throws IOException {
        AtomicInteger asked = new AtomicInteger();
        try (Stranger stranger = new Stranger()) {
            assertThatThrownBy(() -> EmbeddedRedis.start(dir.resolve("redis"), () -> {
                asked.incrementAndGet();
                return stranger.port();
            }).close())
                    .isInstanceOf(StartupException.class)
                    .hasMessage("the embedded Redis found all " + EmbeddedRedis.ATTEMPTS + " free ports it tried taken"
                            + " before it could bind them, the last " + stranger.port() + " (set REDIS_URL)");
            assertThat(asked.get()).isEqualTo(EmbeddedRedis.ATTEMPTS);
        }
    }

    private static String ping(EmbeddedRedis redis) {
        RedisClient client = RedisClient.create(redis.uri());
        try (StatefulRedisConnection<String, String> c = client.connect()) {
            return c.sync().ping();
        } finally {
            client.shutdown();
        }
    }

    /** Another program's listener: accepts connections and never says a word. */
    private static final class Stranger implements AutoCloseable {
        private final ServerSocket socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        private final java.util.List<Socket> accepted = new java.util.concurrent.CopyOnWriteArrayList<>();

        Stranger() throws IOException {
            Thread t = new Thread(() -> {
                while (!socket.isClosed()) {
                    try {
                        accepted.add(socket.accept());
                    } catch (IOException e) {
                        return;
                    }
                }
            }, "stranger");
            t.setDaemon(true);
            t.start();
        }

        int port() {
            return socket.getLocalPort();
        }

        @Override
        public void close() throws IOException {
            socket.close();
            for (Socket s : accepted) {
                s.close();
            }
        }
    }
}
