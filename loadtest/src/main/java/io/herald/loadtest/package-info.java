/**
 * Herald's end-to-end load driver ({@code loadtest/target/loadtest.jar}, main class
 * {@link io.herald.loadtest.LoadTest}).
 *
 * <p>The {@code gateway} scenario ({@link io.herald.loadtest.GatewayScenario}) drives one gateway
 * over its public HTTP API exactly as a client would: it registers users' devices, posts batches
 * with bounded concurrency, then follows every accepted batch to completion through the status
 * API, and reports ingest latency, ingest and end-to-end throughput and every non-delivered
 * message by reason ({@link io.herald.loadtest.LoadReport}). By default it starts the gateway
 * itself as a child process from the gateway's shaded jar ({@link io.herald.loadtest.GatewayProcess});
 * deliveries go to the gateway's built-in APNs sandbox peer.
 *
 * <p>Safety: the driver only ever talks to loopback addresses ({@link io.herald.loadtest.HeraldClient}
 * refuses anything else) and every run is bounded by a deadline. Everything the driver starts (the
 * child gateway and its descendants, temporary directories) it also stops or deletes.
 */
package io.herald.loadtest;
