package io.herald.gateway.http;

import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioServerSocketChannel;

import java.net.BindException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/**
 * The HTTP/1.1 server (Netty, NIO transport): binds, serves {@link HttpApiHandler}, stops.
 * Outbound buffers are bounded by write water marks and the handler stops reading from a
 * connection while its request is being answered. Owned by {@code Herald}; thread-safe.
 */
public final class HttpServer implements AutoCloseable {
    private final NioEventLoopGroup boss = new NioEventLoopGroup(1, named("herald-http-accept"));
    private final NioEventLoopGroup workers = new NioEventLoopGroup(2, named("herald-http"));
    private final Channel channel;

    public HttpServer(HeraldConfig.Http config, HttpApiHandler api) {
        ServerBootstrap b = new ServerBootstrap()
                .group(boss, workers)
                .channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, 1024)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(64 * 1024, 256 * 1024))
                .childHandler(new HttpServerInitializer(config, api));
        try {
            channel = b.bind(config.host(), config.port()).sync().channel();
        } catch (Exception e) {
            close();
            if (e instanceof BindException) {
                throw new StartupException("cannot listen on " + config.host() + ":" + config.port() + " ("
                        + e.getMessage() + "): choose another --port / HERALD_PORT, or 0 for any free port");
            }
            throw new StartupException("cannot listen on " + config.host() + ":" + config.port() + ": " + e);
        }
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) channel.localAddress();
    }

    /** Stops accepting new connections; open ones are served until {@link #close()}. */
    public void stopAccepting() {
        channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    }

    @Override
    public void close() {
        if (channel != null) {
            channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        }
        boss.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        workers.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
    }

    private static java.util.concurrent.ThreadFactory named(String name) {
        java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
