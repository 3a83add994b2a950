package io.herald.benchmarks;

import io.herald.protocol.ReceiptTokens;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * Receipt tokens: signing one (done for every push Herald builds) and verifying one (done for
 * every device receipt). Pure CPU, no I/O. Each benchmark method runs on one thread; the state is
 * per benchmark (JMH owns it).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class ReceiptTokenBenchmark {
    private ReceiptTokens tokens;
    private String messageId;
    private String token;
    private long expiry;

    @Setup
    public void setUp() {
        byte[] key = new byte[32];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) (i * 7 + 3);
        }
        tokens = new ReceiptTokens(new ReceiptTokens.Key("k1", key), List.of());
        messageId = UUID.randomUUID().toString();
        expiry = System.currentTimeMillis() / 1000 + 86_400;
        token = tokens.sign(messageId, "user-12345", expiry);
    }

    @Benchmark
    public String sign() {
        return tokens.sign(messageId, "user-12345", expiry);
    }

    @Benchmark
    public ReceiptTokens.Verdict verify() {
        return tokens.verify(token, messageId, "user-12345", expiry - 1);
    }
}
