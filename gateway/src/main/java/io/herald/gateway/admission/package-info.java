/**
 * Admission: whether and when a message may go. {@link io.herald.gateway.admission.RateLimiter}
 * (per-user GCRA in Redis, batched). A message over its limit is deferred to its reserved slot;
 * {@code pipeline.DeferredScheduler} re-admits it then.
 */
package io.herald.gateway.admission;
