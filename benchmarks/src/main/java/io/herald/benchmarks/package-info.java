/**
 * JMH microbenchmarks of Herald's hot paths, packaged as {@code benchmarks/target/benchmarks.jar}.
 *
 * <p>{@link io.herald.benchmarks.BatchCodecBenchmark} measures the intake codec (parse and
 * validate a 1,000-message batch; render one APNs payload) in-process, with no I/O.
 * {@link io.herald.benchmarks.RateLimiterBenchmark} measures the GCRA admission script against a
 * real {@code redis-server} on loopback, one script call per check against one call per 500
 * checks. {@link io.herald.benchmarks.ReceiptTokenBenchmark} signs and verifies one receipt token.
 * {@link io.herald.benchmarks.ApnsPayloadBenchmark} builds the APNs payload (and the FCM request
 * body) with the receipt block, against plain Jackson writing the same bytes.
 * {@link io.herald.benchmarks.RingHandoffBenchmark} measures the hand-off of the delivery ring
 * (Disruptor, per wait strategy) against an {@code ArrayBlockingQueue} between threads. Every
 * benchmark verifies in its set-up that it exercises the success path (all items valid, nobody
 * rate limited, baselines writing the same bytes, every event seen by every stage), so a score
 * never silently measures an error path or less work.
 *
 * <p>Benchmark state objects are JMH-managed and not shared outside JMH; none of these classes is
 * API. See {@code benchmarks/README.md} for how to run them and the last recorded numbers.
 */
package io.herald.benchmarks;
