/**
 * Admission: whether and when a message may go. {@link io.herald.gateway.admission.RateLimiter}
 * (per-user GCRA in Redis, batched) and {@link io.herald.gateway.admission.DeferredScheduler}
 * (re-admits deferred messages when their time comes, through the journal).
 */
package io.herald.gateway.admission;
