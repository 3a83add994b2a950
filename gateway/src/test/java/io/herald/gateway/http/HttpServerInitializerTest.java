package io.herald.gateway.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.HttpServerCodec;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

class HttpServerInitializerTest {

    private static String request(int length, String extraHeader) {
        return "POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + length
                + "\r\n" + extraHeader + "\r\n";
    }

    private static String drain(EmbeddedChannel ch) {
        StringBuilder b = new StringBuilder();
        ByteBuf buf;
        while ((buf = ch.readOutbound()) != null) {
            b.append(buf.toString(StandardCharsets.UTF_8));
            buf.release();
        }
        return b.toString();
    }

    @Test
    void oversizedBodyGetsJson413BeforeTheBodyIsReadAndTheConnectionCloses() {
        EmbeddedChannel ch = new EmbeddedChannel(new HttpServerCodec(), new HttpServerInitializer.LimitedAggregator(16));
        ch.writeInbound(Unpooled.copiedBuffer(request(1_000_000, ""), StandardCharsets.US_ASCII));
        String response = drain(ch);
        assertThat(response).startsWith("HTTP/1.1 413");
        assertThat(response).contains("\"code\":\"body_too_large\"");
        assertThat(ch.isOpen()).isFalse();
        assertThat(ch.finishAndReleaseAll()).isFalse();
    }

    @Test
    void expectContinueWithAHugeLengthIsRefusedWithoutBuffering() {
        EmbeddedChannel ch = new EmbeddedChannel(new HttpServerCodec(), new HttpServerInitializer.LimitedAggregator(16));
        ch.writeInbound(Unpooled.copiedBuffer(request(1_000_000, "Expect: 100-continue\r\n"), StandardCharsets.US_ASCII));
        String response = drain(ch);
        // Refused at the headers with 413 instead of "100 Continue": the client never sends the body.
        assertThat(response).startsWith("HTTP/1.1 413");
        assertThat((Object) ch.readInbound()).as("nothing buffered or passed on").isNull();
        assertThat(ch.isOpen()).isFalse();
        assertThat(ch.finishAndReleaseAll()).isFalse();
    }

    @Test
    void bodyWithinTheLimitPassesThrough() {
        EmbeddedChannel ch = new EmbeddedChannel(new HttpServerCodec(), new HttpServerInitializer.LimitedAggregator(64));
        String body = "{\"app\":\"demo\"}";
        ch.writeInbound(Unpooled.copiedBuffer(request(body.length(), "") + body, StandardCharsets.US_ASCII));
        io.netty.handler.codec.http.FullHttpRequest req = ch.readInbound();
        try {
            assertThat(req.content().toString(StandardCharsets.UTF_8)).isEqualTo(body);
        } finally {
            req.release();
        }
        assertThat(ch.finishAndReleaseAll()).isFalse();
    }
}
