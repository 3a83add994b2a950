package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.campaign.Campaign;
import io.herald.gateway.campaign.HorseRace;
import io.herald.gateway.campaign.Campaigns;
import io.herald.gateway.content.Templates;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;

import static io.herald.gateway.http.ApiKeys.Role.APPROVE;
import static io.herald.gateway.http.ApiKeys.Role.MANAGE;
import static io.herald.gateway.http.ApiKeys.Role.READ;

/**
 * An app's campaigns ({@link Campaign}): {@code POST /v1/apps/{app}/campaigns} makes a draft
 * (422 naming the field), {@code GET} lists them, {@code GET/PUT/DELETE .../campaigns/{id}}
 * reads, edits (a pending or approved campaign returns to draft, its approval cleared; a running
 * or ended one is 409) and deletes one (drafts only), and {@code POST .../campaigns/{id}/<action>}
 * moves it: {@code submit}, {@code approve} and {@code reject {reason}} (role approve; an approver
 * that made or last edited it is 403), {@code pause}, {@code resume}, {@code cancel}. A move the
 * state does not allow is 409 {@code invalid_state} naming the current state. Every move records
 * who (the key id), when and why, and puts the campaign on the launcher's live index
 * ({@link io.herald.gateway.campaign.CampaignLauncher#watch}). {@code GET .../campaigns/{id}} adds
 * the fan-out progress and the funnel; {@code GET .../report} the full report; {@code POST
 * .../test} sends the content to a few users now. Stateless; answers from Redis callbacks.
 */
final class CampaignsApi {
    private final Campaigns campaigns;
    private final Audiences audiences;
    private final Templates templates;
    private final java.time.Clock clock;

    private final io.herald.protocol.BatchCodec codec;
    private final io.herald.gateway.journal.Journal journal;
    private final io.herald.gateway.pipeline.Pipeline pipeline;

    private final io.herald.gateway.campaign.CampaignLauncher launcher;
    private final io.herald.gateway.tracking.MessageStore store;

    CampaignsApi(io.herald.gateway.campaign.CampaignLauncher launcher, Audiences audiences, Templates templates,
                 java.time.Clock clock, io.herald.protocol.BatchCodec codec, io.herald.gateway.journal.Journal journal,
                 io.herald.gateway.pipeline.Pipeline pipeline, io.herald.gateway.tracking.MessageStore store) {
        this.launcher = launcher;
        this.store = store;
        Campaigns campaigns = launcher.campaigns();
        this.codec = codec;
        this.journal = journal;
        this.pipeline = pipeline;
        this.campaigns = campaigns;
        this.audiences = audiences;
        this.templates = templates;
        this.clock = clock;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/campaigns", MANAGE, this::create);
        r.get("/v1/apps/{app}/campaigns", READ, this::list);
        r.get("/v1/apps/{app}/campaigns/{id}", READ, this::get);
        r.put("/v1/apps/{app}/campaigns/{id}", MANAGE, this::edit);
        r.delete("/v1/apps/{app}/campaigns/{id}", MANAGE, this::delete);
        r.post("/v1/apps/{app}/campaigns/{id}/submit", MANAGE, x -> move(x, "submit"));
        r.post("/v1/apps/{app}/campaigns/{id}/approve", APPROVE, x -> move(x, "approve"));
        r.post("/v1/apps/{app}/campaigns/{id}/reject", APPROVE, x -> move(x, "reject"));
        r.post("/v1/apps/{app}/campaigns/{id}/pause", MANAGE, x -> move(x, "pause"));
        r.post("/v1/apps/{app}/campaigns/{id}/resume", MANAGE, x -> move(x, "resume"));
        r.post("/v1/apps/{app}/campaigns/{id}/cancel", MANAGE, x -> move(x, "cancel"));
        r.post("/v1/apps/{app}/campaigns/{id}/test", MANAGE, this::test);
        r.get("/v1/apps/{app}/campaigns/{id}/report", READ, this::report);
    }

    /** The most users one test send may name. */
    static final int MAX_TEST_USERS = 100;

    /**
     * Sends the campaign's content now to the listed users: class {@code system} (outside caps and
     * quiet hours), campaign label = the campaign id, variant {@code test} (so funnels show test
     * sends apart), through the journal and pipeline like a batch (202 with the batch id and each
     * message's id, or the item's error). A cancelled or completed campaign is 409.
     */
    private void test(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        JsonNode users = body.get("users");
        if (users == null || !users.isArray() || users.isEmpty() || users.size() > MAX_TEST_USERS) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "users",
                    "users: expected 1.." + MAX_TEST_USERS + " user ids"));
            return;
        }
        campaigns.get(x.app(), x.param("id")).whenComplete((v, err) -> {
            if (err != null) {
                x.unavailable(err);
                return;
            }
            if (v == null) {
                x.notFound("campaign '" + x.param("id") + "'");
                return;
            }
            Campaign.State state = v.campaign().state();
            if (state == Campaign.State.CANCELLED || state == Campaign.State.COMPLETED) {
                refused(x, state, "no test sends for an ended campaign");
                return;
            }
            ObjectNode c = v.campaign().toJson();
            // With variants: the one asked for ({"variant": id}), else the first.
            JsonNode content = c.get("content");
            if (content.has("variants")) {
                String want = body.path("variant").asText(content.get("variants").get(0).get("id").asText());
                content = null;
                for (JsonNode vn : c.get("content").get("variants")) {
                    if (vn.get("id").asText().equals(want)) {
                        content = vn;
                    }
                }
                if (content == null) {
                    x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "variant",
                            "variant: '" + want + "' is not a variant of the campaign"));
                    return;
                }
            }
            ObjectNode batch = x.mapper().createObjectNode();
            batch.put("app", x.app());
            ArrayNode messages = batch.putArray("messages");
            final JsonNode chosen = content;
            for (JsonNode u : users) {
                ObjectNode m = messages.addObject();
                m.set("user", u);
                chosen.fields().forEachRemaining(e -> {
                    if (!e.getKey().equals("id") && !e.getKey().equals("weight")) {
                        m.set(e.getKey(), e.getValue());
                    }
                });
                m.put("channel", c.get("channel").asText());
                if (c.has("fallback")) {
                    m.set("fallback", c.get("fallback"));
                }
                if (c.has("category")) {
                    m.put("category", c.get("category").asText());
                }
                m.put("class", "system");
                m.put("campaign", v.campaign().id());
                m.put("variant", "test");
            }
            io.herald.protocol.DecodedBatch decoded;
            try {
                decoded = codec.decode(x.mapper().writeValueAsBytes(batch));
            } catch (io.herald.protocol.BatchRejectedException e) {
                x.error(HttpResponseStatus.valueOf(e.httpStatus()), e.error());
                return;
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                x.failed(new IllegalStateException(e));
                return;
            }
            int accepted = decoded.acceptedCount();
            if (accepted == 0 || !pipeline.tryReserve(accepted)) {
                x.header(io.netty.handler.codec.http.HttpHeaderNames.RETRY_AFTER, 1);
                x.error(accepted == 0 ? HttpResponseStatus.UNPROCESSABLE_ENTITY : HttpResponseStatus.TOO_MANY_REQUESTS,
                        accepted == 0 ? decoded.items().get(0).error() : ApiError.of(ErrorCode.OVERLOADED, null,
                                "the pipeline is full; retry"));
                return;
            }
            String bid = io.herald.gateway.tracking.MessageIds.newBatchId().toString();
            io.herald.gateway.journal.Journal.Prepared prepared = journal.prepare(x.app(), bid, clock.millis(), decoded);
            journal.append(prepared, null).whenComplete((entry, error) -> {
                if (error != null || entry == null) {
                    pipeline.release(accepted);
                    x.unavailable(error != null ? error : new IllegalStateException("not journaled"));
                    return;
                }
                java.util.List<io.herald.gateway.journal.JournalItem> items = new java.util.ArrayList<>();
                ObjectNode out = x.mapper().createObjectNode();
                out.put("batchId", bid);
                ArrayNode ids = out.putArray("messages");
                for (io.herald.protocol.DecodedBatch.Item item : decoded.items()) {
                    ObjectNode o = ids.addObject().put("user", users.get(item.index()).asText());
                    if (item.ok()) {
                        io.herald.gateway.journal.JournalItem ji = new io.herald.gateway.journal.JournalItem(x.app(), bid,
                                item.index(), prepared.acceptedAt(), item.message(),
                                io.herald.gateway.journal.JournalItem.Phase.NEW);
                        items.add(ji);
                        o.put("id", ji.messageId());
                    } else {
                        o.set("error", x.mapper().valueToTree(item.error()));
                    }
                }
                pipeline.publish(entry, items, false);
                x.json(HttpResponseStatus.ACCEPTED, out);
            });
        });
    }

    /**
     * The campaign's report: state, progress (audience size, fanned out, percent), the funnel
     * (counts, rates; failed and dropped by reason, capped, held), per channel (from acceptance
     * on), per variant (test sends under {@code test}), the runs of a recurring campaign, and a
     * series from the launch (per minute; per hour when that would exceed 1,000 buckets; {@code
     * ?bucket=minute|hour|day} chooses).
     */
    private void report(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        campaigns.get(app, x.param("id")).thenCompose(v -> {
            if (v == null) {
                x.notFound("campaign '" + x.param("id") + "'");
                return CompletableFuture.completedFuture(null);
            }
            ObjectNode c = v.campaign().toJson();
            String id = v.campaign().id();
            return launcher.progress(app, id).thenCompose(run -> withProgress(x, c).thenCompose(full -> {
                List<String> labels = labels(id, run);
                ObjectNode out = x.mapper().createObjectNode();
                out.put("campaign", id);
                out.put("name", c.get("name").asText());
                out.put("state", c.get("state").asText());
                ObjectNode progress = out.putObject("progress");
                JsonNode p = full.path("progress");
                long size = p.path("audienceSize").asLong(0);
                long fed = p.path("fed").asLong(0);
                long heldOut = p.path("holdout").asLong(0);
                progress.put("audienceSize", size);
                progress.put("holdout", heldOut);
                progress.put("fannedOut", fed);
                progress.put("skipped", p.path("skipped").asLong(0));
                progress.put("backlog", p.path("backlog").asLong(0));
                progress.put("percent", size - heldOut <= 0 ? (p.has("finishedAt") ? 100.0 : 0.0)
                        : Math.round((fed + p.path("skipped").asLong(0)) * 1000.0 / (size - heldOut)) / 10.0);
                for (String f : new String[] {"startedAt", "finishedAt", "outcome"}) {
                    if (p.has(f)) {
                        progress.set(f, p.get(f));
                    }
                }
                ObjectNode guards = out.putObject("guards");
                guards.set("rules", c.path("guards"));
                if (p.has("guard")) {
                    guards.set("tripped", p.get("guard"));
                }
                guards.set("warnings", p.has("warnings") ? p.get("warnings") : x.mapper().createArrayNode());
                if (c.has("experiment")) {
                    ObjectNode e = out.putObject("experiment");
                    e.set("config", c.get("experiment"));
                    e.put("state", p.has("decision") ? "decided" : p.path("phase").asInt(0) == 0 && p.has("phaseFedAt")
                            ? "waiting" : p.has("audienceSize") ? "testing" : "not_started");
                    if (p.has("phaseFedAt") && p.path("phase").asInt(0) == 0) {
                        e.put("testFedAt", p.get("phaseFedAt").asText());
                    }
                    if (p.has("decision")) {
                        e.set("decision", p.get("decision"));
                    }
                }
                if (c.has("rollout")) {
                    ObjectNode ro = out.putObject("rollout");
                    ro.set("config", c.get("rollout"));
                    int stage = p.path("phase").asInt(0) - (c.has("experiment") ? 1 : 0);
                    JsonNode stages = c.get("rollout").get("stages");
                    if (stage >= 0) {
                        ro.put("stage", stage + 1).put("percent", stages.get(Math.min(stage, stages.size() - 1)).asDouble());
                    }
                    if (p.has("phaseFedAt") && stage >= 0) {
                        ro.put("heldSince", p.get("phaseFedAt").asText());
                    }
                    ro.set("gates", p.has("gates") ? p.get("gates") : x.mapper().createArrayNode());
                }
                JsonNode funnel = full.get("funnel");
                out.set("counts", funnel.get("counts"));
                out.set("rates", funnel.get("rates"));
                ObjectNode failed = out.putObject("failedBy");
                ObjectNode dropped = out.putObject("droppedBy");
                ObjectNode held = out.putObject("heldBy");
                funnel.get("counts").fields().forEachRemaining(e -> {
                    String k = e.getKey();
                    if (k.startsWith("failed:")) {
                        failed.set(k.substring(7), e.getValue());
                    } else if (k.startsWith("dropped:")) {
                        dropped.set(k.substring(8), e.getValue());
                    } else if (k.startsWith("deferred:")) {
                        held.set(k.substring(9), e.getValue());
                    }
                });
                io.herald.gateway.tracking.Funnels funnels = store.funnels();
                java.util.Map<String, CompletableFuture<ObjectNode>> channels = new java.util.LinkedHashMap<>();
                for (String ch : new String[] {"apns", "fcm", "sms"}) {
                    channels.put(ch, funnels.campaignFunnel(app, labels, ch));
                }
                java.util.Map<String, CompletableFuture<ObjectNode>> variants = new java.util.LinkedHashMap<>();
                for (JsonNode vn : c.path("content").path("variants")) {
                    variants.put(vn.get("id").asText(), funnels.campaignFunnel(app, labels, null,
                            vn.get("id").asText()));
                }
                variants.put("test", funnels.scopeFunnel(app, id, "test"));
                CompletableFuture<ObjectNode> uplift = c.hasNonNull("conversionEvent")
                        ? uplift(app, id, c, run) : CompletableFuture.completedFuture(null);
                long now = clock.millis();
                long from = p.has("startedAt") ? java.time.Instant.parse(p.get("startedAt").asText()).toEpochMilli()
                        : now;
                long to = p.has("finishedAt")
                        ? Math.min(now, java.time.Instant.parse(p.get("finishedAt").asText()).toEpochMilli() + 3_600_000L)
                        : now;
                io.herald.gateway.tracking.Funnels.Bucket bucket;
                String asked = x.query("bucket");
                if (asked != null) {
                    bucket = io.herald.gateway.tracking.Funnels.Bucket.parse(asked);
                    if (bucket == null) {
                        x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "bucket",
                                "bucket: '" + asked + "' (expected: minute, hour or day)"));
                        return CompletableFuture.completedFuture(null);
                    }
                } else {
                    bucket = (to - from) / 60_000L > 1000 ? io.herald.gateway.tracking.Funnels.Bucket.HOUR
                            : io.herald.gateway.tracking.Funnels.Bucket.MINUTE;
                }
                // A recurring campaign: the series of its latest run.
                CompletableFuture<ObjectNode> series = funnels.series(app, labels.get(labels.size() - 1), null, bucket,
                        from, to);
                java.util.Map<String, CompletableFuture<ObjectNode>> perRun = new java.util.LinkedHashMap<>();
                for (String label : labels.subList(1, labels.size())) {
                    perRun.put(label, funnels.scopeFunnel(app, label, null));
                }
                List<CompletableFuture<?>> all = new java.util.ArrayList<>(channels.values());
                all.addAll(perRun.values());
                all.add(uplift);
                all.addAll(variants.values());
                all.add(series);
                return CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0])).thenApply(done -> {
                    ObjectNode chs = out.putObject("channels");
                    channels.forEach((ch, f) -> chs.set(ch, f.join().get("counts")));
                    ObjectNode vs = out.putObject("variants");
                    variants.forEach((name, f) -> vs.set(name, withIntervals(f.join())));
                    versusBest(vs, c);
                    if (uplift.join() != null) {
                        out.set("holdout", uplift.join());
                    }
                    ObjectNode s = series.join();
                    s.remove("app");
                    s.remove("campaign");
                    out.set("series", s);
                    if (!perRun.isEmpty()) {
                        // One report per run: the finished runs' summaries and the current one, each with its funnel.
                        ArrayNode runs = out.putArray("runs");
                        java.util.Set<String> ended = new java.util.HashSet<>();
                        for (JsonNode r : full.path("progress").path("runs")) {
                            ObjectNode o = ((ObjectNode) r).deepCopy();
                            o.set("counts", perRun.get(r.get("label").asText()).join().get("counts"));
                            ended.add(r.get("label").asText());
                            runs.add(o);
                        }
                        perRun.forEach((label, f) -> {
                            if (!ended.contains(label)) {
                                runs.addObject().put("label", label).put("run", Long.parseLong(
                                        label.substring(label.lastIndexOf(".r") + 2))).put("current", true)
                                        .set("counts", f.join().get("counts"));
                            }
                        });
                    }
                    x.json(HttpResponseStatus.OK, out);
                    return null;
                });
            }));
        }).whenComplete((v, err) -> {
            if (err != null) {
                x.unavailable(err);
            }
        });
    }

    /**
     * A variant's funnel with 95% Wilson intervals of its open and click rates, both over the
     * messages the provider accepted (the denominator: accepted, not submitted).
     */
    private static ObjectNode withIntervals(ObjectNode funnel) {
        JsonNode counts = funnel.get("counts");
        long accepted = counts.get("accepted").asLong();
        ObjectNode ci = funnel.putObject("intervals");
        for (String stage : new String[] {"opened", "clicked"}) {
            double[] w = wilson(counts.get(stage).asLong(), accepted);
            ci.putObject(stage).put("rate", w[0]).put("low", w[1]).put("high", w[2]).put("of", accepted);
        }
        return funnel;
    }

    /**
     * Each variant's p-value against the best one by the experiment's metric (open or click; click
     * without an experiment): {@code vsBest: {best, metric, pValue}} ({@link HorseRace#pValue}: chi-square, or
     * Fisher's exact test on small counts). Test sends ({@code test}) are not compared.
     */
    private static void versusBest(ObjectNode variants, JsonNode c) {
        String metric = c.path("experiment").path("metric").asText("click");
        if (metric.equals("conversion") || !c.path("content").has("variants")) {
            return; // conversions are counted from events at the decision, not per minute
        }
        String stage = metric.equals("open") ? "opened" : "clicked";
        java.util.List<HorseRace.Arm> arms = new java.util.ArrayList<>();
        variants.fields().forEachRemaining(e -> {
            if (!e.getKey().equals("test")) {
                JsonNode n = e.getValue().get("counts");
                arms.add(new HorseRace.Arm(e.getKey(), n.get("accepted").asLong(), n.get(stage).asLong()));
            }
        });
        HorseRace.Arm best = arms.get(0);
        for (HorseRace.Arm a : arms) {
            if (a.rate() > best.rate()) {
                best = a;
            }
        }
        for (HorseRace.Arm a : arms) {
            ObjectNode vb = ((ObjectNode) variants.get(a.variant())).putObject("vsBest");
            vb.put("best", best.variant()).put("metric", metric);
            vb.put("pValue", a == best ? 1.0 : round(HorseRace.pValue(best, a)));
        }
    }

    /** {rate, low, high} of {@code k} in {@code n}: the Wilson score interval at 95% (zeros when n = 0). */
    static double[] wilson(long k, long n) {
        if (n == 0) {
            return new double[] {0, 0, 0};
        }
        double z = 1.959963984540054;
        double p = (double) k / n;
        double d = 1 + z * z / n;
        double centre = (p + z * z / (2.0 * n)) / d;
        double half = z * Math.sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
        return new double[] {round(p), round(Math.max(0, centre - half)), round(Math.min(1, centre + half))};
    }

    private static double round(double v) {
        return Math.round(v * 1_000_000) / 1_000_000.0;
    }

    /**
     * The holdout's measure: per run with a snapshot, the users sent it (treated) and those held
     * out, each intersected with the users who had {@code conversionEvent} on the UTC days from
     * the run's start to {@code conversionWindow} after it; conversion rates with 95% Wilson
     * intervals and the uplift (treated minus holdout) with a 95% normal interval.
     */
    private CompletableFuture<ObjectNode> uplift(String app, String id, JsonNode c, java.util.Map<String, String> run) {
        String event = c.get("conversionEvent").asText();
        long window = Campaign.durationMillis(c.path("conversionWindow").asText("7d"));
        java.util.Map<Long, Long> runs = new java.util.LinkedHashMap<>();
        try {
            for (JsonNode r : codec.mapper().readTree(run.getOrDefault("runs", "[]"))) {
                runs.put(r.get("run").asLong(), r.get("startedAt").asLong());
            }
        } catch (java.io.IOException e) {
            return CompletableFuture.failedFuture(e);
        }
        if (run.containsKey("frozen") && run.containsKey("startedAt")) {
            runs.put(Long.parseLong(run.get("run")), Long.parseLong(run.get("startedAt")));
        }
        long today = Math.floorDiv(clock.millis(), 86_400_000L);
        long[] n = new long[4]; // treated, treated converted, holdout, holdout converted
        CompletableFuture<Void> chain = CompletableFuture.completedFuture(null);
        for (java.util.Map.Entry<Long, Long> r : runs.entrySet()) {
            long from = Math.floorDiv(r.getValue(), 86_400_000L);
            long to = Math.min(today, Math.floorDiv(r.getValue() + window, 86_400_000L));
            chain = chain.thenCompose(v -> launcher.sentTo(app, id, r.getKey()).thenCombine(
                    launcher.heldOut(app, id, r.getKey()), (sent, held) -> new Object[] {sent, held}))
                    .thenCompose(pair -> {
                        @SuppressWarnings("unchecked")
                        java.util.Map<Integer, org.roaringbitmap.RoaringBitmap> sent =
                                (java.util.Map<Integer, org.roaringbitmap.RoaringBitmap>) pair[0];
                        @SuppressWarnings("unchecked")
                        java.util.Map<Integer, org.roaringbitmap.RoaringBitmap> held =
                                (java.util.Map<Integer, org.roaringbitmap.RoaringBitmap>) pair[1];
                        List<CompletableFuture<Void>> shards = new java.util.ArrayList<>();
                        for (Integer s : sent.keySet()) {
                            shards.add(audiences.eventDays(app, s, event, from, to).thenAccept(conv -> {
                                synchronized (n) {
                                    n[0] += sent.get(s).getLongCardinality();
                                    n[1] += org.roaringbitmap.RoaringBitmap.andCardinality(sent.get(s), conv);
                                    org.roaringbitmap.RoaringBitmap h = held.get(s);
                                    if (h != null) {
                                        n[2] += h.getLongCardinality();
                                        n[3] += org.roaringbitmap.RoaringBitmap.andCardinality(h, conv);
                                    }
                                }
                            }));
                        }
                        return CompletableFuture.allOf(shards.toArray(new CompletableFuture<?>[0]));
                    });
        }
        return chain.thenApply(v -> {
            ObjectNode out = codec.mapper().createObjectNode();
            out.put("percent", c.path("holdoutPercent").asDouble(0));
            out.put("conversionEvent", event);
            out.put("conversionWindow", c.path("conversionWindow").asText("7d"));
            double[] t = wilson(n[1], n[0]);
            double[] h = wilson(n[3], n[2]);
            out.putObject("treated").put("users", n[0]).put("converted", n[1]).put("rate", t[0]).put("low", t[1])
                    .put("high", t[2]);
            out.putObject("holdout").put("users", n[2]).put("converted", n[3]).put("rate", h[0]).put("low", h[1])
                    .put("high", h[2]);
            double diff = t[0] - h[0];
            double se = n[0] == 0 || n[2] == 0 ? 0
                    : Math.sqrt(t[0] * (1 - t[0]) / n[0] + h[0] * (1 - h[0]) / n[2]);
            out.putObject("uplift").put("value", round(diff)).put("low", round(diff - 1.959963984540054 * se))
                    .put("high", round(diff + 1.959963984540054 * se));
            return out;
        });
    }

    /** The validated definition of the request body; null once an error is answered. */
    private CompletableFuture<ObjectNode> definition(Exchange x, JsonNode body) {
        String app = x.app();
        JsonNode a = body.path("audience").path("id");
        CompletableFuture<String> saved = a.isTextual() ? audiences.get(app, a.asText())
                : CompletableFuture.completedFuture(null);
        JsonNode p = body.path("plan");
        CompletableFuture<String> plan = p.isTextual() ? campaigns.plan(app, p.asText())
                : CompletableFuture.completedFuture(null);
        return saved.thenCombine(plan, (json, planJson) -> {
            try {
                return Campaign.definition(body, x.mapper(), id -> json != null,
                        id -> templates.get(app, id) != null, id -> planJson != null);
            } catch (Campaign.Invalid e) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(e.errorCode(), e.field, e.getMessage()));
                return null;
            }
        });
    }

    private void create(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        definition(x, body).thenCompose(d -> {
            if (d == null) {
                return CompletableFuture.completedFuture(null);
            }
            String id = "c-" + Long.toString(ThreadLocalRandom.current().nextLong() >>> 1, 36);
            long now = clock.millis();
            Campaign c = Campaign.draft(id, x.app(), d, x.caller().keyId(), now);
            return campaigns.create(x.app(), c, now).thenApply(s -> {
                ObjectNode out = c.toJson();
                out.put("version", s.version());
                x.json(HttpResponseStatus.CREATED, out);
                return null;
            });
        }).whenComplete((v, err) -> {
            if (err != null) {
                x.unavailable(err);
            }
        });
    }

    private void list(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        campaigns.list(x.app()).whenComplete((all, err) -> {
            if (err != null) {
                x.unavailable(err);
                return;
            }
            ObjectNode out = x.mapper().createObjectNode();
            ArrayNode items = out.putArray("campaigns");
            all.forEach(c -> {
                ObjectNode o = c.toJson();
                o.remove("history");
                items.add(o);
            });
            x.json(HttpResponseStatus.OK, out);
        });
    }

    private void get(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        campaigns.get(x.app(), x.param("id")).whenComplete((v, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (v == null) {
                x.notFound("campaign '" + x.param("id") + "'");
            } else {
                ObjectNode out = v.campaign().toJson();
                out.put("version", v.version());
                withProgress(x, out).whenComplete((o, e) -> {
                    if (e != null) {
                        x.unavailable(e);
                    } else {
                        x.json(HttpResponseStatus.OK, o);
                    }
                });
            }
        });
    }

    /**
     * The campaign with its fan-out progress (once launched: {@code audienceSize} frozen at launch,
     * {@code fed} users journaled, {@code skipped} members deleted since, {@code chunks},
     * {@code backlog} messages fanned out while the pipeline was full and not yet in the journal,
     * {@code startedAt}, {@code finishedAt}, {@code outcome}) and its funnel (every message labelled
     * with the campaign, test sends included under variant {@code test}).
     */
    private CompletableFuture<ObjectNode> withProgress(Exchange x, ObjectNode out) {
        String id = out.get("id").asText();
        return launcher.progress(x.app(), id).thenCompose(run -> store.funnels().campaignFunnel(x.app(),
                labels(id, run), null).thenApply(funnel -> {
            if (!run.isEmpty()) {
                ObjectNode p = out.putObject("progress");
                if (run.containsKey("frozen")) {
                    p.put("audienceSize", Long.parseLong(run.get("frozen")));
                    p.put("holdout", Long.parseLong(run.getOrDefault("holdout", "0")));
                }
                p.put("fed", Long.parseLong(run.getOrDefault("fed", "0")));
                p.put("skipped", Long.parseLong(run.getOrDefault("skipped", "0")));
                p.put("chunks", Long.parseLong(run.getOrDefault("chunk", "0")));
                // fanned out while the pipeline was full, not yet moved into the journal
                p.put("backlog", Math.max(0, Long.parseLong(run.getOrDefault("parked", "0"))
                        - Long.parseLong(run.getOrDefault("drained", "0"))));
                for (String t : new String[] {"startedAt", "frozenAt", "finishedAt"}) {
                    if (run.containsKey(t)) {
                        p.put(t, java.time.Instant.ofEpochMilli(Long.parseLong(run.get(t))).toString());
                    }
                }
                if (run.containsKey("outcome")) {
                    p.put("outcome", run.get("outcome"));
                }
                p.put("phase", Integer.parseInt(run.getOrDefault("phase", "0")));
                if (run.containsKey("phaseAt")) {
                    p.put("phaseFedAt", java.time.Instant.ofEpochMilli(Long.parseLong(run.get("phaseAt"))).toString());
                }
                for (String f : new String[] {"guard", "warnings", "decision", "gates"}) {
                    if (run.containsKey(f)) {
                        try {
                            p.set(f, x.mapper().readTree(run.get(f)));
                        } catch (java.io.IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    }
                }
                if (run.containsKey("day") && !run.get("day").isEmpty()) {
                    p.put("run", Long.parseLong(run.get("run")));
                    p.put("day", run.get("day"));
                    if (run.containsKey("nextAt")) {
                        p.put("nextAt", java.time.Instant.ofEpochMilli(Long.parseLong(run.get("nextAt"))).toString());
                    }
                    try {
                        p.set("runs", x.mapper().readTree(run.getOrDefault("runs", "[]")));
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
            }
            out.set("funnel", funnel);
            return out;
        }));
    }

    /**
     * The campaign labels a campaign's messages carry: its id (one-off campaigns and test sends),
     * and {@code <id>.r<n>} for each run of a recurring one so far.
     */
    static List<String> labels(String id, java.util.Map<String, String> run) {
        List<String> out = new java.util.ArrayList<>();
        out.add(id);
        if (run.containsKey("day") && !run.get("day").isEmpty()) {
            long runs = Long.parseLong(run.getOrDefault("run", "0"));
            for (long n = 1; n <= runs; n++) {
                out.add(id + ".r" + n);
            }
        }
        return out;
    }

    private void edit(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        definition(x, body).thenCompose(d -> d == null ? CompletableFuture.completedFuture(null)
                : change(x, c -> c.edit(d, x.caller().keyId(), clock.millis()))).whenComplete((v, err) -> {
                    if (err != null) {
                        x.unavailable(err);
                    }
                });
    }

    private void delete(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        campaigns.get(x.app(), x.param("id")).thenCompose(v -> {
            if (v == null) {
                x.notFound("campaign '" + x.param("id") + "'");
                return CompletableFuture.completedFuture(null);
            }
            if (v.campaign().state() != Campaign.State.DRAFT) {
                refused(x, v.campaign().state(), "only a draft is deleted (this one is " + v.campaign().state().wire()
                        + "; cancel it instead)");
                return CompletableFuture.completedFuture(null);
            }
            return campaigns.delete(x.app(), v.campaign().id(), v.version()).thenApply(s -> {
                if (s.conflict()) {
                    x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.INVALID_STATE, null,
                            "the campaign changed meanwhile; read it and try again"));
                } else {
                    x.empty(HttpResponseStatus.NO_CONTENT);
                }
                return null;
            });
        }).whenComplete((v, err) -> {
            if (err != null) {
                x.unavailable(err);
            }
        });
    }

    private void move(Exchange x, String action) {
        if (!x.ownApp()) {
            return;
        }
        String reason = null;
        boolean acknowledged = false;
        if (x.body().length > 0) {
            if (!x.jsonContent()) {
                return;
            }
            JsonNode body = x.jsonObject();
            if (body == null) {
                return;
            }
            JsonNode r = body.get("reason");
            if (r != null && (!r.isTextual() || r.asText().length() > 1000)) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "reason",
                        "reason: expected a string of at most 1000 characters"));
                return;
            }
            reason = r == null ? null : r.asText();
            acknowledged = body.path("acknowledge").asBoolean(false);
        }
        String why = reason;
        boolean ack = acknowledged;
        change(x, c -> c.move(action, x.caller().keyId(), why, clock.millis(), ack)).whenComplete((v, err) -> {
            if (err != null) {
                x.unavailable(err);
            }
        });
    }

    /** A change of a stored campaign. */
    @FunctionalInterface
    private interface Change {
        Campaign apply(Campaign c) throws Campaign.Refused;
    }

    /** Reads, changes, compare-and-sets (re-reading up to three times when another write came first) and answers. */
    private CompletableFuture<Void> change(Exchange x, Change change) {
        return attempt(x, change, 3);
    }

    private CompletableFuture<Void> attempt(Exchange x, Change change, int left) {
        return campaigns.get(x.app(), x.param("id")).thenCompose(v -> {
            if (v == null) {
                x.notFound("campaign '" + x.param("id") + "'");
                return CompletableFuture.completedFuture(null);
            }
            Campaign next;
            try {
                next = change.apply(v.campaign());
            } catch (Campaign.Refused e) {
                if (e.forbidden) {
                    x.error(HttpResponseStatus.FORBIDDEN, ApiError.of(ErrorCode.FORBIDDEN, "approval", e.getMessage()));
                } else {
                    refused(x, e.state, e.getMessage());
                }
                return CompletableFuture.completedFuture(null);
            }
            return campaigns.replace(x.app(), next, v.version()).thenCompose(s -> {
                if (s.conflict() && left > 1) {
                    return attempt(x, change, left - 1);
                }
                if (s.conflict()) {
                    x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.INVALID_STATE, null,
                            "the campaign keeps changing; read it and try again"));
                } else {
                    ObjectNode out = next.toJson();
                    out.put("version", s.version());
                    // On the live index before the answer: the launcher looks there (and repairs it
                    // every minute, should this write be lost).
                    return launcher.watch(x.app(), next).handle((w, e) -> {
                        x.json(HttpResponseStatus.OK, out);
                        return null;
                    });
                }
                return CompletableFuture.completedFuture(null);
            });
        });
    }

    private static void refused(Exchange x, Campaign.State state, String message) {
        x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.INVALID_STATE, "state",
                message + " (state: " + state.wire() + ")"));
    }
}
