/** Metrics: {@link io.herald.gateway.metrics.Metrics}, the Micrometer meters behind {@code GET /metrics}. */
package io.herald.gateway.metrics;
