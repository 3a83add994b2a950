/**
 * Admission: whether and when a message may go, per user.
 * {@link io.herald.gateway.admission.Admission} decides (class, send time, quiet hours, frequency
 * caps with priority claims, the GCRA rate limit; {@code admit.lua}, one call per slot group) by
 * the app's {@link io.herald.gateway.admission.AppPolicy}, which
 * {@link io.herald.gateway.admission.Policies} keeps versioned in Redis and cached on every node.
 * A held or rate-limited message is deferred; {@code pipeline.DeferredScheduler} re-admits it then.
 */
package io.herald.gateway.admission;
