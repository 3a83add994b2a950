package io.herald.gateway.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.tracking.EventLog;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.tracking.Funnels;
import io.herald.gateway.tracking.MessageStore;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.herald.protocol.Message;
import io.lettuce.core.Range;
import io.lettuce.core.StreamMessage;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.time.Instant;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * What happened to an app's messages, read from the tracking counters and the event log: the
 * app's funnel ({@code GET /v1/funnel}), a batch's, a campaign's (optionally one variant) and a
 * channel's funnel, time series ({@code GET /v1/stats}), and the event log page by page
 * ({@code GET /v1/events}). Every read is scoped to the key's app.
 *
 * <p>Threads: handlers run on the event loop and answer from Redis callbacks. Stateless;
 * thread-safe.
 */
final class FunnelsApi {
    private static final List<String> CHANNELS = List.of("apns", "fcm", "sms");

    private final MessageStore store;

    FunnelsApi(MessageStore store) {
        this.store = store;
    }

    void routes(Routes r) {
        r.get("/v1/funnel", READ, this::appFunnel);
        r.get("/v1/batches/{id}/funnel", READ, this::batchFunnel);
        r.get("/v1/campaigns/{campaign}/funnel", READ, this::campaignFunnel);
        r.get("/v1/channels/{channel}/funnel", READ, this::channelFunnel);
        r.get("/v1/stats", READ, this::stats);
        r.get("/v1/events", READ, this::events);
    }

    private void appFunnel(Exchange x) {
        store.funnels().scopeFunnel(x.app(), null, null).whenComplete((f, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, f.put("app", x.app()));
            }
        });
    }

    private void channelFunnel(Exchange x) {
        String channel = x.param("channel");
        if (!CHANNELS.contains(channel)) {
            x.notFound("channel");
            return;
        }
        store.funnels().channelFunnel(x.app(), channel).whenComplete((f, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, f.put("channel", channel));
            }
        });
    }

    private void batchFunnel(Exchange x) {
        String app = x.app();
        UUID uuid = MessageIds.parse(x.param("id"));
        if (uuid == null || !MessageIds.isBatchId(uuid)) {
            x.notFound("batch");
            return;
        }
        store.batchStatus(app, uuid.toString()).thenCompose(status -> status == null
                ? CompletableFuture.completedFuture((ObjectNode) null)
                : store.funnels().batchFunnel(uuid.toString()).thenApply(f -> f.put("batchId", uuid.toString())))
                .whenComplete((f, e) -> {
                    if (e != null) {
                        x.unavailable(e);
                    } else if (f == null) {
                        x.notFound("batch");
                    } else {
                        x.json(HttpResponseStatus.OK, f);
                    }
                });
    }

    /** Answers 400 {@code invalid_field} naming {@code name} when {@code value} is not a campaign/variant label. */
    private static boolean badLabel(Exchange x, String name, String value) {
        if (Message.isLabel(value)) {
            return false;
        }
        x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, name,
                String.format("%s: not a label (expected: %s)", name, Message.LABEL_RULE)));
        return true;
    }

    private void campaignFunnel(Exchange x) {
        String app = x.app();
        String campaign = x.param("campaign");
        String variant = x.query("variant");
        if (badLabel(x, "campaign", campaign) || variant != null && badLabel(x, "variant", variant)) {
            return;
        }
        store.funnels().scopeFunnel(app, campaign, variant).whenComplete((f, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                f.put("campaign", campaign);
                if (variant != null) {
                    f.put("variant", variant);
                }
                x.json(HttpResponseStatus.OK, f);
            }
        });
    }

    private void stats(Exchange x) {
        String app = x.app();
        String qApp = x.query("app");
        if (qApp != null && !qApp.equals(app)) {
            x.notFound("app");
            return;
        }
        Funnels.Bucket bucket = Funnels.Bucket.parse(x.query("bucket"));
        long now = System.currentTimeMillis();
        long from;
        long to;
        try {
            from = x.query("from") == null ? now - 86_400_000L : parseTime(x.query("from"));
            to = x.query("to") == null ? now : parseTime(x.query("to"));
        } catch (RuntimeException e) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "from",
                    "from/to: expected epoch milliseconds or an ISO-8601 instant"));
            return;
        }
        if (bucket == null || to < from) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, bucket == null ? "bucket" : "to",
                    "bucket: minute, hour or day; to >= from"));
            return;
        }
        String campaign = x.query("campaign");
        String variant = x.query("variant");
        if (campaign != null && badLabel(x, "campaign", campaign) || variant != null && badLabel(x, "variant", variant)) {
            return;
        }
        store.funnels().series(app, campaign, variant, bucket, from, to).whenComplete((s2, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, s2);
            }
        });
    }

    private static long parseTime(String s) {
        return s.matches("\\d+") ? Long.parseLong(s) : Instant.parse(s).toEpochMilli();
    }

    private void events(Exchange x) {
        String app = x.app();
        String cursor = x.query("cursor");
        int limit;
        try {
            limit = x.query("limit") == null ? 100 : Integer.parseInt(x.query("limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > 1000 || (cursor != null && !cursor.matches("\\d+-\\d+(\\.\\d+)?"))) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "cursor",
                    "cursor: an id from a previous page (n-n or n-n.n); limit: 1..1000"));
            return;
        }
        int n = limit;
        // A cursor inside a packed entry (entry.position) reads that entry again and skips what was seen.
        int dot = cursor == null ? -1 : cursor.indexOf('.');
        String entry = dot < 0 ? cursor : cursor.substring(0, dot);
        int seen = dot < 0 ? 0 : Integer.parseInt(cursor.substring(dot + 1));
        Range<String> range = cursor == null ? Range.create("-", "+")
                : Range.from(dot < 0 ? Range.Boundary.excluding(entry) : Range.Boundary.including(entry),
                        Range.Boundary.unbounded());
        store.events(app, range, n).whenComplete((page, e) -> {
            if (e != null) {
                x.unavailable(e);
                return;
            }
            ObjectNode out = x.mapper().createObjectNode();
            ArrayNode events = out.putArray("events");
            String last = cursor;
            for (StreamMessage<String, String> m : page) {
                List<ObjectNode> expanded = EventLog.expand(x.mapper(), app, m);
                int from = m.getId().equals(entry) ? seen : 0;
                for (int i = from; i < expanded.size() && events.size() < n; i++) {
                    events.add(expanded.get(i));
                    last = expanded.get(i).get("cursor").asText();
                }
                if (events.size() >= n) {
                    break;
                }
                if (expanded.isEmpty()) {
                    last = m.getId();
                }
            }
            if (last != null) {
                out.put("next", last);
            }
            x.json(HttpResponseStatus.OK, out);
        });
    }

    /** {@code GET /v1/dead-letters?cursor=&limit=}: the app's dead letters, oldest first. */
}
