package io.herald.gateway.http;

import io.herald.gateway.audience.Tiers;
import io.herald.gateway.config.HeraldConfig;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.io.IOException;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * An app's derived tiers ({@link Tiers}): {@code GET /v1/apps/{app}/tiers} gives the counts per
 * lifecycle stage and RFM segment and when they were computed ({@code computedAt} null before the
 * first run); {@code POST .../tiers/compute} recomputes them now (409 {@code in_progress} while
 * another computation of the app runs). Stateless; answers from Redis callbacks.
 */
final class TiersApi {
    private final HeraldConfig config;
    private final Tiers tiers;

    TiersApi(HeraldConfig config, Tiers tiers) {
        this.config = config;
        this.tiers = tiers;
    }

    void routes(Routes r) {
        r.get("/v1/apps/{app}/tiers", READ, this::get);
        r.post("/v1/apps/{app}/tiers/compute", MANAGE, this::compute);
    }

    private void get(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        tiers.summary(x.app()).whenComplete((json, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (json == null) {
                var out = x.mapper().createObjectNode();
                out.putNull("computedAt");
                out.putObject("lifecycle");
                out.putObject("rfm");
                x.json(HttpResponseStatus.OK, out);
            } else {
                answer(x, json);
            }
        });
    }

    private void compute(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        tiers.compute(x.app(), config.apps().get(x.app())).whenComplete((json, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (json == null) {
                x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.IN_PROGRESS, null,
                        "tiers of this app are being computed; GET .../tiers when it is done"));
            } else {
                answer(x, json);
            }
        });
    }

    private static void answer(Exchange x, String json) {
        try {
            x.json(HttpResponseStatus.OK, x.mapper().readTree(json));
        } catch (IOException e) {
            x.failed(new IllegalStateException("stored tier summary is not JSON", e));
        }
    }
}
