package io.herald.gateway.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.metrics.Metrics;
import io.netty.handler.codec.http.HttpResponseStatus;

import static io.herald.gateway.http.Routes.Access.OPS;

/**
 * Probes and metrics, for the platform rather than API clients: {@code GET /healthz} (the process
 * answers), {@code GET /readyz} (200 {@code ready}, or 503 {@code draining} / {@code not_ready}
 * with the reason, from {@link Readiness}), {@code GET /metrics} (Prometheus text), {@code GET
 * /openapi.yaml} (the API contract, docs/openapi.yaml, bundled in the jar). No key, and served
 * while draining.
 *
 * <p>Handlers run on the event loop and answer at once: readiness is kept off the loop (its probes
 * run on their own thread), so a slow Redis cannot stall a probe or the connections that share
 * its loop. Stateless; thread-safe.
 */
final class OpsApi {
    /** docs/openapi.yaml, read once from the jar. */
    private static final String CONTRACT = contract();
    private final Metrics metrics;
    private final Readiness readiness;

    OpsApi(Metrics metrics, Readiness readiness) {
        this.metrics = metrics;
        this.readiness = readiness;
    }

    void routes(Routes r) {
        r.get("/healthz", OPS, x -> x.json(HttpResponseStatus.OK, x.mapper().createObjectNode().put("status", "ok")));
        r.get("/readyz", OPS, this::readyz);
        r.get("/openapi.yaml", OPS, x -> x.text(HttpResponseStatus.OK, "application/yaml; charset=utf-8", CONTRACT));
        r.get("/metrics", OPS, x -> x.text(HttpResponseStatus.OK, "text/plain; version=0.0.4; charset=utf-8",
                metrics.scrape()));
    }

    private static String contract() {
        try (java.io.InputStream in = OpsApi.class.getResourceAsStream("/openapi.yaml")) {
            if (in == null) {
                throw new IllegalStateException("openapi.yaml is missing from the jar (built without docs/?)");
            }
            return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private void readyz(Exchange x) {
        String notReady = readiness.notReady();
        ObjectNode out = x.mapper().createObjectNode();
        if (notReady == null) {
            x.json(HttpResponseStatus.OK, out.put("status", "ready"));
        } else if (readiness.draining()) {
            x.json(HttpResponseStatus.SERVICE_UNAVAILABLE, out.put("status", "draining"));
        } else {
            x.json(HttpResponseStatus.SERVICE_UNAVAILABLE, out.put("status", "not_ready").put("reason", notReady));
        }
    }
}
