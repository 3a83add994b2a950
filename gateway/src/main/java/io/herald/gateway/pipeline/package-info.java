/**
 * The delivery pipeline: {@link io.herald.gateway.pipeline.Pipeline} wires two LMAX Disruptor
 * rings. Delivery ring: resolve (devices) -> admit (rate limit) -> dispatch (connectors).
 * Outcome ring: record (states, invalidations, deferrals, journal acknowledgement).
 * {@link io.herald.gateway.pipeline.DeferredScheduler} publishes deferred messages back into the
 * delivery ring when their slot comes.
 */
package io.herald.gateway.pipeline;
