/**
 * The delivery pipeline: {@link io.herald.gateway.pipeline.Pipeline} wires two LMAX Disruptor
 * rings. Delivery ring: resolve (devices) -> admit (rate limit) -> dispatch (connectors).
 * Outcome ring: record (states, invalidations, deferrals, journal acknowledgement).
 */
package io.herald.gateway.pipeline;
