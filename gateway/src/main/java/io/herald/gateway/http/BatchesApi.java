package io.herald.gateway.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.journal.IdempotencyKeys;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.gateway.tracking.MessageStore;
import io.herald.protocol.ApiError;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.BatchRejectedException;
import io.herald.protocol.DecodedBatch;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * Intake and status of batches and messages: {@code POST /v1/batches}, {@code GET /v1/batches/{id}},
 * {@code GET /v1/messages/{id}}.
 *
 * <p>Intake: decode and validate per item on an intake thread (not the event loop), reserve
 * pipeline capacity (none: 429 + Retry-After at once), journal to Redis (failure: 503), publish to
 * the ring, answer 202. With an {@code Idempotency-Key}, the key is claimed before the journal
 * append and completed by it ({@link IdempotencyKeys}): a repeat gets the first answer (with
 * {@code Idempotent-Replayed: true}), another body 422, a repeat while the first is running 409.
 *
 * <p>Threads: {@code POST} runs on an intake thread, the status reads on the event loop; both
 * answer from Redis callbacks and never block. Stateless; thread-safe.
 */
final class BatchesApi {
    private static final Logger log = LoggerFactory.getLogger(BatchesApi.class);
    /** Set on an answer that repeats an earlier one (same Idempotency-Key and body). */
    static final String REPLAYED = "Idempotent-Replayed";

    private final BatchCodec codec;
    private final Journal journal;
    private final IdempotencyKeys idempotency;
    private final Pipeline pipeline;
    private final MessageStore store;
    private final Metrics metrics;
    /** When a batch is accepted (its messages' ttl counts from then): the policy's clock. */
    private final java.time.Clock clock;

    BatchesApi(BatchCodec codec, Journal journal, IdempotencyKeys idempotency, Pipeline pipeline, MessageStore store,
               Metrics metrics, java.time.Clock clock, io.herald.gateway.content.Templates templates) {
        this.clock = clock;
        this.templates = templates;
        this.codec = codec;
        this.journal = journal;
        this.idempotency = idempotency;
        this.pipeline = pipeline;
        this.store = store;
        this.metrics = metrics;
    }

    private final io.herald.gateway.content.Templates templates;

    /**
     * The batch with every item that names a template the app does not have (on this node's view,
     * refreshed every second) turned into a per-item 422 {@code unknown_template}.
     */
    private DecodedBatch withKnownTemplates(DecodedBatch batch) {
        boolean any = false;
        for (DecodedBatch.Item item : batch.items()) {
            if (item.ok() && item.message().template() != null
                    && templates.get(batch.app(), item.message().template().id()) == null) {
                any = true;
                break;
            }
        }
        if (!any) {
            return batch;
        }
        java.util.List<DecodedBatch.Item> items = new java.util.ArrayList<>(batch.items().size());
        for (DecodedBatch.Item item : batch.items()) {
            if (item.ok() && item.message().template() != null
                    && templates.get(batch.app(), item.message().template().id()) == null) {
                String f = "messages[" + item.index() + "].template";
                items.add(new DecodedBatch.Item(item.index(), null, ApiError.of(ErrorCode.UNKNOWN_TEMPLATE, f,
                        f + ": '" + item.message().template().id() + "' is not a template of app '" + batch.app()
                                + "' (expected: an id from GET /v1/apps/" + batch.app() + "/templates)")));
            } else {
                items.add(item);
            }
        }
        return new DecodedBatch(batch.app(), items);
    }

    void routes(Routes r) {
        r.post("/v1/batches", SEND, x -> {
            x.timed(metrics::ingestLatency);
            if (!x.offload(() -> post(x))) {
                metrics.batch(429);
            }
        });
        r.get("/v1/batches/{id}", READ, this::getBatch);
        r.get("/v1/messages/{id}", READ, this::getMessage);
    }

    /** 429 {@code overloaded} + {@code Retry-After: 1}: the pipeline has no permits for this request. */
    static void pipelineFull(Exchange x, Pipeline pipeline) {
        x.header(HttpHeaderNames.RETRY_AFTER, 1);
        x.error(HttpResponseStatus.TOO_MANY_REQUESTS, ApiError.of(ErrorCode.OVERLOADED, null,
                "pipeline full: " + pipeline.inUse() + " of " + pipeline.capacity()
                        + " messages in flight; retry after 1 s"));
    }

    /**
     * 503 {@code unavailable} + {@code Retry-After: 1} while a pipeline stage is stalled (its Redis
     * round trips have failed for longer than {@code pipeline.stall-after}): nothing taken now would
     * settle. Answers true when it answered.
     */
    static boolean stalled(Exchange x, Pipeline pipeline) {
        Optional<String> why = pipeline.stalled();
        why.ifPresent(w -> {
            x.header(HttpHeaderNames.RETRY_AFTER, 1);
            x.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                    "not ready: " + w + "; nothing was accepted, retry later"));
        });
        return why.isPresent();
    }

    /** On an intake thread. */
    private void post(Exchange x) {
        String app = x.app();
        if (!x.jsonContent()) {
            return;
        }
        if (stalled(x, pipeline)) {
            metrics.batch(503);
            return;
        }
        List<String> keys = x.headers(IdempotencyKeys.HEADER);
        String idempotencyKey = null;
        if (!keys.isEmpty()) {
            String problem = IdempotencyKeys.invalid(keys);
            if (problem != null) {
                metrics.batch(400);
                x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_HEADER, IdempotencyKeys.HEADER,
                        problem));
                return;
            }
            idempotencyKey = keys.get(0);
        }
        // Overloaded: refuse before decoding, so that under sustained overload a 429 costs no JSON
        // work (the load test at 2x capacity spent most of intake's CPU decoding batches it then
        // refused). "Almost full" = less than 1% of the permits free: a small batch that might
        // still fit is refused too, and retries after a second like any other 429.
        long free = pipeline.capacity() - pipeline.inUse();
        if (free < Math.max(1, pipeline.capacity() / 100)) {
            metrics.batch(429);
            pipelineFull(x, pipeline);
            return;
        }
        DecodedBatch decoded;
        try {
            decoded = codec.decode(x.body());
        } catch (BatchRejectedException e) {
            metrics.batch(e.httpStatus());
            x.error(HttpResponseStatus.valueOf(e.httpStatus()), e.error());
            return;
        }
        if (!decoded.app().equals(app)) {
            // Same answer whether the app exists or belongs to someone else.
            metrics.batch(404);
            x.error(HttpResponseStatus.NOT_FOUND, ApiError.of(ErrorCode.UNKNOWN_APP, "app",
                    "app: '" + decoded.app() + "' is not an app of this API key"));
            return;
        }
        DecodedBatch batch = withKnownTemplates(decoded);
        int accepted = batch.acceptedCount();
        UUID batchId = MessageIds.newBatchId();
        if (accepted == 0) {
            metrics.ingested(0, batch.rejectedCount());
            metrics.batch(422);
            x.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, response(batchId, batch, false));
            return;
        }
        if (!pipeline.tryReserve(accepted)) {
            metrics.batch(429);
            pipelineFull(x, pipeline);
            return;
        }
        String bid = batchId.toString();
        Journal.Prepared prepared;
        try {
            prepared = journal.prepare(app, bid, clock.millis(), batch);
        } catch (RuntimeException e) {
            pipeline.release(accepted);
            throw e;
        }
        if (idempotencyKey == null) {
            append(x, prepared, null);
            return;
        }
        idempotency.claim(app, idempotencyKey, x.body(), bid).whenComplete((verdict, error) -> {
            if (error != null) {
                pipeline.release(accepted);
                metrics.batch(503);
                x.unavailable(error);
                return;
            }
            if (verdict.state() == IdempotencyKeys.State.CLAIMED) {
                append(x, prepared, verdict.claim());
                return;
            }
            pipeline.release(accepted);
            switch (verdict.state()) {
                case DONE -> {
                    metrics.batch(202);
                    x.header(REPLAYED, "true");
                    x.json(HttpResponseStatus.ACCEPTED, response(UUID.fromString(verdict.batchId()), batch, true));
                }
                case IN_PROGRESS -> inProgress(x, "a request with this key is still being processed");
                default -> {
                    metrics.batch(422);
                    x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                            IdempotencyKeys.HEADER, IdempotencyKeys.HEADER + ": already used with another request body "
                                    + "(expected: the same body, or a new key for a new batch)"));
                }
            }
        });
    }

    private void inProgress(Exchange x, String why) {
        metrics.batch(409);
        x.header(HttpHeaderNames.RETRY_AFTER, 1);
        x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS, IdempotencyKeys.HEADER,
                IdempotencyKeys.HEADER + ": " + why + "; retry after 1 s for its answer"));
    }

    /**
     * Journals a batch whose capacity is reserved, then publishes it and answers 202. With an
     * idempotency claim, the key is marked done by the same script as the XADD; a failure frees the
     * claim (a key already done stays: the entry may be in even if the reply was lost).
     */
    private void append(Exchange x, Journal.Prepared prepared, IdempotencyKeys.Claim claim) {
        DecodedBatch batch = prepared.batch();
        int accepted = batch.acceptedCount();
        CompletableFuture<JournalEntry> journaled;
        try {
            journaled = journal.append(prepared, claim);
        } catch (RuntimeException e) {
            journaled = CompletableFuture.failedFuture(e);
        }
        journaled.whenComplete((entry, error) -> {
            if (error != null || entry == null) {
                pipeline.release(accepted);
                if (error == null) {
                    // Our claim lapsed and another request holds the key now: it answers for it.
                    inProgress(x, "another request with this key took over");
                    return;
                }
                if (claim != null) {
                    idempotency.release(claim);
                }
                metrics.batch(503);
                log.warn("batch not journaled: {}", error.toString());
                x.header(HttpHeaderNames.RETRY_AFTER, 1);
                x.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                        "cannot record the batch durably right now (storage unavailable); nothing was accepted, retry"));
                return;
            }
            String bid = prepared.batchId();
            List<JournalItem> items = new ArrayList<>(accepted);
            for (DecodedBatch.Item item : batch.items()) {
                if (item.ok()) {
                    items.add(new JournalItem(prepared.app(), bid, item.index(), prepared.acceptedAt(), item.message(),
                            JournalItem.Phase.NEW));
                }
            }
            pipeline.publish(entry, items, false);
            metrics.ingested(accepted, batch.rejectedCount());
            metrics.batch(202);
            x.json(HttpResponseStatus.ACCEPTED, response(UUID.fromString(bid), batch, true));
        });
    }

    private ObjectNode response(UUID batchId, DecodedBatch batch, boolean withIds) {
        ObjectNode out = codec.mapper().createObjectNode();
        if (withIds) {
            out.put("batchId", batchId.toString());
        }
        out.put("accepted", batch.acceptedCount());
        out.put("rejected", batch.rejectedCount());
        ArrayNode messages = out.putArray("messages");
        for (DecodedBatch.Item item : batch.items()) {
            ObjectNode m = messages.addObject();
            m.put("index", item.index());
            if (item.ok()) {
                if (item.message().id() != null) {
                    m.put("clientId", item.message().id());
                }
                m.put("id", MessageIds.messageId(batchId, item.index()).toString());
            } else {
                m.set("error", codec.mapper().valueToTree(item.error()));
            }
        }
        return out;
    }

    // ---- status ---------------------------------------------------------------------------

    private void getBatch(Exchange x) {
        String app = x.app();
        UUID uuid = MessageIds.parse(x.param("id"));
        if (uuid == null || !MessageIds.isBatchId(uuid)) {
            x.notFound("batch");
            return;
        }
        store.batchStatus(app, uuid.toString()).whenComplete((status, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (status == null) {
                x.notFound("batch");
            } else {
                x.json(HttpResponseStatus.OK, status);
            }
        });
    }

    private void getMessage(Exchange x) {
        String app = x.app();
        UUID uuid = MessageIds.parse(x.param("id"));
        if (uuid == null || MessageIds.isBatchId(uuid)) {
            x.notFound("message");
            return;
        }
        store.messageStatus(app, uuid).whenComplete((status, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (status == null) {
                x.notFound("message");
            } else {
                x.json(HttpResponseStatus.OK, status);
            }
        });
    }
}
