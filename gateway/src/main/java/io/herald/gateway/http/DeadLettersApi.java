package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.journal.DeadLetters;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * Messages that could not be delivered and were set aside ({@link DeadLetters}):
 * {@code GET /v1/dead-letters} pages through the app's letters, {@code POST /v1/dead-letters/redrive}
 * sends chosen (or the oldest) letters back through the journal. A redrive reserves pipeline
 * capacity first (none: 429, as intake).
 *
 * <p>Threads: handlers run on the event loop (a redrive body is at most 1000 ids) and answer from
 * Redis callbacks. Stateless; thread-safe.
 */
final class DeadLettersApi {
    private final DeadLetters deadLetters;
    private final Pipeline pipeline;

    DeadLettersApi(DeadLetters deadLetters, Pipeline pipeline) {
        this.deadLetters = deadLetters;
        this.pipeline = pipeline;
    }

    void routes(Routes r) {
        r.get("/v1/dead-letters", READ, this::page);
        r.post("/v1/dead-letters/redrive", SEND, this::redrive);
    }

    private void page(Exchange x) {
        String app = x.app();
        String cursor = x.query("cursor");
        if (cursor != null && !cursor.matches("\\d{1,18}")) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "cursor",
                    "cursor: '" + cursor + "' (expected: the next value of a previous page)"));
            return;
        }
        int limit;
        try {
            limit = x.query("limit") == null ? 100 : Integer.parseInt(x.query("limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > DeadLetters.MAX_PER_CALL) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "limit",
                    "limit: '" + x.query("limit") + "' (expected: 1.." + DeadLetters.MAX_PER_CALL + ")"));
            return;
        }
        deadLetters.page(app, cursor == null ? null : Long.parseLong(cursor), limit).whenComplete((page, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, page);
            }
        });
    }

    /**
     * {@code POST /v1/dead-letters/redrive} with {@code {"ids":[...]}} (those letters) or no body /
     * {@code {}} (the oldest, up to 1000): back through the journal with a fresh attempt budget.
     */
    private void redrive(Exchange x) {
        String app = x.app();
        List<String> ids = null;
        if (x.body().length > 0) {
            if (!x.jsonContent()) {
                return;
            }
            JsonNode body = x.jsonObject();
            if (body == null) {
                return;
            }
            for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (!f.equals("ids")) {
                    x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.UNKNOWN_FIELD, f,
                            f + ": unknown field (expected: ids, or an empty body for the oldest letters)"));
                    return;
                }
            }
            JsonNode list = body.get("ids");
            if (list != null) {
                if (!list.isArray() || list.isEmpty() || list.size() > DeadLetters.MAX_PER_CALL) {
                    x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "ids",
                            "ids: expected an array of 1.." + DeadLetters.MAX_PER_CALL + " message ids"));
                    return;
                }
                LinkedHashSet<String> unique = new LinkedHashSet<>();
                for (int i = 0; i < list.size(); i++) {
                    UUID id = MessageIds.parse(list.get(i).textValue());
                    if (id == null || MessageIds.isBatchId(id)) {
                        x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD,
                                "ids[" + i + "]", "ids[" + i + "]: expected a message id"));
                        return;
                    }
                    unique.add(id.toString());
                }
                ids = List.copyOf(unique);
            }
        }
        if (BatchesApi.stalled(x, pipeline)) {
            return;
        }
        int want = ids != null ? ids.size() : DeadLetters.MAX_PER_CALL;
        boolean reserved = pipeline.tryReserve(want);
        while (!reserved && ids == null && want > 1) {
            want /= 2;
            reserved = pipeline.tryReserve(want);
        }
        if (!reserved) {
            BatchesApi.pipelineFull(x, pipeline);
            return;
        }
        int permits = want;
        CompletableFuture<DeadLetters.Redriven> f;
        try {
            f = deadLetters.redrive(app, ids, permits);
        } catch (RuntimeException e) {
            f = CompletableFuture.failedFuture(e);
        }
        f.whenComplete((done, e) -> {
            if (e != null) {
                pipeline.release(permits);
                x.unavailable(e);
                return;
            }
            for (DeadLetters.Published p : done.published()) {
                pipeline.publish(p.entry(), p.items(), false);
            }
            pipeline.release(permits - done.count());
            x.json(HttpResponseStatus.OK, done.answer());
        });
    }
}
