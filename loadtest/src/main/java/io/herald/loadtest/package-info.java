/**
 * The load and fault driver ({@code loadtest.jar}): measures Herald end to end against the limit
 * of the machine, with every part in its own process.
 *
 * <p>Flow of a run: {@link io.herald.loadtest.Scenarios} (the picocli commands {@code gateway},
 * {@code raw-apns}, {@code compare}, {@code crash}, {@code soak}) builds a
 * {@link io.herald.loadtest.Stack} of child processes ({@link io.herald.loadtest.ChildProcess}:
 * provider peers from {@link io.herald.loadtest.PeerMain}, the embedded {@code redis-server}, the
 * gateway jar), registers users over the HTTP API ({@link io.herald.loadtest.HeraldClient},
 * loopback only), then {@link io.herald.loadtest.Drive} sends on a load shape (open loop at a
 * fixed rate, or max with bounded requests in flight) through a sink (HTTP batches, or Pushy
 * straight to the APNs peer). Every message carries a marker the peers report back on arrival;
 * {@link io.herald.loadtest.Tally} keeps the books (acknowledged, arrived, latency) and runs the
 * total-queue check; {@link io.herald.loadtest.RedisStats} reads what Redis did per message in a
 * gateway run (commandstats, memory); {@link io.herald.loadtest.Report} prints and writes the
 * figures.
 */
package io.herald.loadtest;
