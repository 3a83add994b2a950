package io.herald.gateway;

import io.herald.gateway.pipeline.DeferredScheduler;
import io.herald.gateway.admission.Admission;
import io.herald.gateway.admission.Policies;
import io.herald.gateway.content.Templates;
import io.herald.gateway.campaign.CampaignLauncher;
import io.herald.gateway.trigger.TriggerTimers;
import io.herald.gateway.trigger.Triggers;
import io.herald.gateway.campaign.Campaigns;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.connector.Connector;
import io.herald.gateway.config.StartupException;
import io.herald.gateway.connector.apns.ApnsConnector;
import io.herald.gateway.connector.fcm.FcmConnector;
import io.herald.gateway.connector.sms.SmsConnector;
import io.herald.gateway.sandbox.SandboxFcm;
import io.herald.gateway.sandbox.SandboxSmsc;
import java.net.URI;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.HashMap;
import io.herald.gateway.http.ApiKeys;
import io.herald.gateway.http.HttpApiHandler;
import io.herald.gateway.http.HttpServer;
import io.herald.gateway.http.Readiness;
import io.herald.gateway.journal.DeadLetters;
import io.herald.gateway.journal.IdempotencyKeys;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.journal.NodeLeases;
import io.herald.gateway.journal.Upgrade;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.PersonalDataCipher;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.audience.Tiers;
import io.herald.gateway.registry.UserRegistry;
import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.tracking.Funnels;
import io.herald.gateway.tracking.MessageStore;
import io.herald.gateway.tracking.LinkTracker;
import io.herald.gateway.tracking.ReceiptKeys;
import io.herald.gateway.tracking.SmsReceipts;
import io.herald.gateway.tracking.WebhookDispatcher;
import io.herald.protocol.ReceiptTokens;
import io.herald.protocol.BatchCodec;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One running gateway node, assembled in flow order: the sandbox peer (when needed), the connectors
 * (credentials are checked before anything else is touched), Redis, the pipeline, replay of the journal, the scheduler, then the HTTP server. Start it
 * with {@link #start}; stop it with {@link #close()} (graceful: refuse new work, drain, stop) or
 * {@link #halt()} (abrupt, as a crash would, for tests). Thread-safe; the creator owns it.
 */
public final class Herald implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Herald.class);

    private final HeraldConfig config;
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    private Redis redis;
    private SandboxApns sandbox;
    private ApnsConnector apns;
    private FcmConnector fcm;
    private SmsConnector sms;
    private SandboxFcm sandboxFcm;
    private SandboxSmsc sandboxSmsc;
    private Pipeline pipeline;
    private DeferredScheduler scheduler;
    private Policies policies;
    private Templates templates;
    private CampaignLauncher launcher;
    private Triggers triggers;
    private TriggerTimers triggerTimers;
    private NodeLeases leases;
    private final Readiness readiness = new Readiness();
    private HttpApiHandler api;
    private HttpServer http;
    private int replayed;

    private Herald(HeraldConfig config, java.time.Clock clock) {
        this.config = config;
        this.clock = clock;
    }

    /** The clock of time-relative targeting (event windows); the system's UTC clock outside tests. */
    private final java.time.Clock clock;

    /**
     * Starts a node; on failure everything already started is stopped and a {@link StartupException}
     * thrown (one line; a library's own exception is wrapped, its stack trace logged at DEBUG only).
     */
    public static Herald start(HeraldConfig config) {
        return start(config, java.time.Clock.systemUTC());
    }

    /** {@link #start(HeraldConfig)} with the clock event windows and audience terms read (tests fix it). */
    public static Herald start(HeraldConfig config, java.time.Clock clock) {
        Herald h = new Herald(config, clock);
        try {
            h.startAll();
            return h;
        } catch (StartupException e) {
            h.stopAll(Duration.ZERO);
            throw e;
        } catch (RuntimeException e) {
            h.stopAll(Duration.ZERO);
            log.debug("start-up failed", e);
            throw new StartupException("start-up failed: " + e.getClass().getSimpleName() + ": "
                    + String.valueOf(e.getMessage()).replaceAll("\\s*\\R\\s*", " ")
                    + " (a setting Herald does not check yet; the stack trace is logged with HERALD_LOG_LEVEL=DEBUG)", e);
        }
    }

    private void startAll() {
        Metrics metrics = new Metrics();
        resources.add(metrics);
        BatchCodec codec = BatchCodec.create(config.http().maxItemsPerBatch());
        ApiKeys keys = ApiKeys.load(config);
        boolean needSandbox = config.sandbox() == HeraldConfig.SandboxMode.ALWAYS
                || (config.sandbox() == HeraldConfig.SandboxMode.AUTO
                && config.apps().values().stream().anyMatch(a -> !a.apns().hasCredentials()));
        if (needSandbox) {
            sandbox = SandboxApns.start(0);
            sandbox.onAccepted(id -> { }, config.sandboxRecordIds());
            resources.add(sandbox);
            log.warn("APNs sandbox: apps without credentials deliver to the local peer on 127.0.0.1:{}, not to Apple",
                    sandbox.port());
        }
        // loads credentials: fails before Redis is touched
        apns = new ApnsConnector(config, sandbox == null ? null : new ApnsConnector.SandboxPeer(sandbox.host(),
                sandbox.port(), sandbox.certificate(), sandbox.signingKey()), metrics);
        resources.add(apns);
        fcm = startFcm(metrics);
        redis = Redis.connect(config);
        resources.add(redis);

        Funnels funnels = new Funnels(redis, codec.mapper(), config.retention().aggregates(), config.tracking().minuteBuckets(),
                config.tracking().hourBuckets(), config.tracking().dayBuckets());
        ReceiptTokens tokens = ReceiptKeys.load(config);
        Journal journal = new Journal(redis, codec, config.nodeId(), config.retention().messages(), funnels);
        MessageStore store = new MessageStore(redis, codec.mapper(), config.retention().messages(),
                config.tracking().eventRetention(), funnels, metrics);
        resources.add(store);
        store.startSweeper(List.copyOf(config.apps().keySet()), Duration.ofSeconds(30));
        UserRegistry registry = new UserRegistry(redis, codec.mapper(),
                PersonalDataCipher.load(config.dataKey(), config.dataDir()), store, config.tracking().recentMessages());
        policies = new Policies(redis, codec.mapper(), config.apps().keySet());
        resources.add(policies);
        // Loaded before the pipeline sees its first message (the replay below included).
        policies.start(Duration.ofSeconds(1));
        templates = new Templates(redis, codec.mapper(), config.apps().keySet());
        resources.add(templates);
        templates.start(Duration.ofSeconds(1));
        keys.start(redis, codec.mapper(), config.apps().keySet(), Duration.ofSeconds(1));
        resources.add(keys);
        Admission admission = new Admission(config.apps(), policies, redis::slotOf, clock);
        List<WebhookDispatcher.Endpoint> endpoints = new java.util.ArrayList<>();
        for (AppConfig app : config.apps().values()) {
            AppConfig.Webhook w = app.webhook();
            if (w.enabled()) {
                endpoints.add(new WebhookDispatcher.Endpoint(app.name(), URI.create(w.url()), w.secret(), w.batchSize(),
                        w.maxAttempts(), w.backoffBase(), w.backoffMax()));
            }
        }
        WebhookDispatcher webhooks = new WebhookDispatcher(redis.dedicated(), config.nodeId(), endpoints, metrics);
        webhooks.start();
        resources.add(webhooks);
        sms = startSms(store, metrics);
        Map<String, Connector> connectors = Map.of(apns.platform(), apns, fcm.platform(), fcm, sms.platform(), sms);
        LinkTracker links = new LinkTracker(redis, codec.mapper(), config.receipts().tokenTtl(),
                config.tracking().linkBaseUrl());
        DeadLetters deadLetters = new DeadLetters(redis, journal, store, codec.mapper(), config.deadLetters().max());
        IdempotencyKeys idempotency = new IdempotencyKeys(redis, config.idempotency().ttl(),
                config.idempotency().inProgressTtl());
        pipeline = new Pipeline(config, redis, journal, registry, admission, store, connectors, metrics, tokens, links,
                deadLetters, templates);
        resources.add(pipeline);

        // Built before loadAll so that its script is loaded too (not found at its first EVALSHA).
        scheduler = new DeferredScheduler(redis, journal, pipeline, config.scheduler().batch(), clock);
        leases = new NodeLeases(redis, journal, config.redis().nodeLease(), config.pipeline().redisWait(),
                other -> replay(other, deadLetters), config.dataDir().resolve("instance"));
        Audiences audiences = new Audiences(redis, clock);
        triggers = new Triggers(redis, codec, clock, config.apps().keySet());
        resources.add(triggers);
        triggerTimers = new TriggerTimers(redis, triggers, audiences, registry.data(), journal, pipeline, metrics, clock,
                config.scheduler().batch());
        Redis.Script.loadAll(redis);
        // Long enough for a crashed run's lease to lapse; a takeover of this journal that takes
        // longer fails the start with one line (start again once it is done).
        Duration lease = config.redis().nodeLease();
        leases.acquireOwn(lease.multipliedBy(3).compareTo(Duration.ofSeconds(10)) > 0 ? lease.multipliedBy(3)
                : Duration.ofSeconds(10));
        resources.add(leases);
        Upgrade.run(redis, config.nodeId(), config.apps().keySet(), config.retention().messages().toMillis(),
                config.deadLetters().max());
        try {
            replayed = replay(journal, deadLetters);
        } catch (Exception e) {
            throw new io.herald.gateway.config.StartupException("cannot replay the journal of node " + config.nodeId()
                    + ": " + e.getMessage() + " (check Redis; entries stay until a start succeeds)", e);
        }
        leases.start();
        scheduler.start(config.scheduler().interval());
        resources.add(scheduler);
        triggers.start(Duration.ofSeconds(1));
        triggerTimers.start(config.scheduler().interval());
        resources.add(triggerTimers);

        readiness.require(pipeline::stalled)
                .require("apns: connector closed", apns::ready)
                .require("fcm: no access token yet", fcm::ready)
                .require("sms: no bind to the SMSC", sms::ready)
                .probe("redis: no answer to PING within 1 s", () -> redis.async().ping(), Duration.ofMillis(250),
                        Duration.ofSeconds(1));
        resources.add(readiness);
        Tiers tiers = new Tiers(redis, audiences, codec.mapper());
        tiers.start(config.apps());
        resources.add(tiers);
        launcher = new CampaignLauncher(redis, new Campaigns(redis, codec.mapper()), audiences, templates, journal, idempotency,
                pipeline, codec, clock, config.apps().keySet(), config.nodeId(), config.scheduler().campaignLease(),
                config.scheduler().campaignChunk(), config.scheduler().campaignBacklog(), config.pipeline().redisWait(),
                funnels, metrics);
        launcher.start(config.scheduler().campaignTick());
        resources.add(launcher);
        api = new HttpApiHandler(config, codec, keys, journal, idempotency, deadLetters, pipeline, store, registry,
                audiences, tiers, policies, templates, launcher, triggers, clock,
                tokens, webhooks, links, metrics, readiness);
        resources.add(api::close);
        http = new HttpServer(config.http(), api);
        resources.add(http);
        links.listeningOn(baseUrl());
    }

    private boolean sandboxed(boolean hasCredentials) {
        return config.sandbox() == HeraldConfig.SandboxMode.ALWAYS
                || (config.sandbox() == HeraldConfig.SandboxMode.AUTO && !hasCredentials);
    }

    /** FCM: a project per app, the local peer for apps without a service account. */
    private FcmConnector startFcm(Metrics metrics) {
        Map<String, FcmConnector.Project> projects = new HashMap<>();
        for (AppConfig app : config.apps().values()) {
            AppConfig.Fcm f = app.fcm();
            if (sandboxed(f.hasCredentials())) {
                if (sandboxFcm == null) {
                    sandboxFcm = SandboxFcm.start();
                    sandboxFcm.onAccepted(id -> { }, config.sandboxRecordIds());
                    resources.add(sandboxFcm);
                    log.warn("FCM sandbox: apps without a service account deliver to the local peer at {}, not to "
                            + "Google", sandboxFcm.baseUrl());
                }
                String project = f.projectId().isBlank() ? "herald-sandbox" : f.projectId();
                Path sa;
                try {
                    sa = sandboxFcm.writeServiceAccountJson(config.dataDir().resolve("sandbox"), project);
                } catch (Exception e) {
                    throw new StartupException("cannot write the FCM sandbox service account into "
                            + config.dataDir().resolve("sandbox") + ": " + e.getMessage());
                }
                projects.put(app.name(), new FcmConnector.Project(app.name(), project, FcmConnector.credentials(sa),
                        sandboxFcm.baseUrl(), new X509Certificate[] {sandboxFcm.certificate()}));
            } else if (f.hasCredentials()) {
                X509Certificate[] trust = null;
                if (f.trustedCertificateFile() != null) {
                    trust = readCertificates(f.trustedCertificateFile(), "herald.apps." + app.name()
                            + ".fcm.trusted-certificate-file");
                }
                projects.put(app.name(), new FcmConnector.Project(app.name(), f.projectId(),
                        FcmConnector.credentials(f.serviceAccountFile()), URI.create(f.baseUrl()), trust));
            }
        }
        HeraldConfig.FcmTuning t = config.fcm();
        FcmConnector c = new FcmConnector(new FcmConnector.Settings(t.connections(), t.maxConcurrentStreams(),
                t.maxAttempts(), t.backoffBase(), t.backoffMax(), t.quotaBackoff(), t.tokenRefreshMargin()), projects,
                metrics);
        resources.add(c);
        return c;
    }

    /** SMS: an SMPP account per app, the local SMSC for apps without one; receipts move messages on. */
    private SmsConnector startSms(MessageStore store, Metrics metrics) {
        Map<String, SmsConnector.Account> accounts = new HashMap<>();
        for (AppConfig app : config.apps().values()) {
            AppConfig.Sms s = app.sms();
            if (sandboxed(s.hasAccount())) {
                if (sandboxSmsc == null) {
                    sandboxSmsc = SandboxSmsc.start(0).credentials("herald", "sandbox");
                    resources.add(sandboxSmsc);
                    log.warn("SMS sandbox: apps without an SMPP account deliver to the local SMSC on 127.0.0.1:{}, "
                            + "not to a carrier", sandboxSmsc.port());
                }
                accounts.put(app.name(), new SmsConnector.Account(app.name(), sandboxSmsc.host(), sandboxSmsc.port(),
                        "herald", "sandbox", s.binds(), s.ratePerBind(), s.window(), s.sourceAddress()));
            } else if (s.hasAccount()) {
                accounts.put(app.name(), new SmsConnector.Account(app.name(), s.host(), s.port(), s.systemId(),
                        s.password(), s.binds(), s.ratePerBind(), s.window(), s.sourceAddress()));
            }
        }
        HeraldConfig.SmsTuning t = config.sms();
        // Receipts are parked in Redis until the message's acceptance is recorded, at most as long as an SMSC id lives.
        SmsReceipts receipts = new SmsReceipts(redis, store, metrics, accounts.keySet(), t.receiptIdTtl(),
                SmsReceipts.DEFAULT_MAX_PARKED, SmsReceipts.DEFAULT_SWEEP_EVERY);
        resources.add(receipts);
        receipts.start();
        SmsConnector c = new SmsConnector(new SmsConnector.Settings(t.maxAttempts(), t.backoffBase(), t.backoffMax(),
                t.receiptIdTtl()), accounts, redis.dedicated(), receipts::onReceipt, metrics);
        resources.add(c);
        return c;
    }

    private static X509Certificate[] readCertificates(Path file, String key) {
        try (var in = java.nio.file.Files.newInputStream(file)) {
            return java.security.cert.CertificateFactory.getInstance("X.509").generateCertificates(in).stream()
                    .map(c -> (X509Certificate) c).toArray(X509Certificate[]::new);
        } catch (Exception e) {
            throw new StartupException(key + ": " + file + " is not a PEM certificate chain (" + e.getMessage() + ")");
        }
    }

    /** The sandbox FCM peer, or null. */
    public SandboxFcm sandboxFcm() {
        return sandboxFcm;
    }

    /** The sandbox SMSC, or null. */
    public SandboxSmsc sandboxSmsc() {
        return sandboxSmsc;
    }

    /**
     * Replays a node's journal: this node's at start, another's taken over ({@link NodeLeases}).
     * An entry replayed more than {@code dead-letters.max-replays} times
     * (it never settles: it kills or wedges the node) and items that no longer decode become dead
     * letters instead of being published again, so one bad entry can neither stop the start nor
     * replay for ever.
     */
    private int replay(Journal journal, DeadLetters deadLetters) throws Exception {
        int[] messages = {0};
        Duration wait = config.pipeline().redisWait();
        int entries = journal.replay(entry -> {
            boolean poison = entry.passes() - 1 > config.deadLetters().maxReplays();
            if (poison || !entry.unreadable().isEmpty()) {
                deadLetters.file(entry, poison, wait);
            }
            List<JournalItem> list = entry.items();
            if (poison || list.isEmpty()) {
                return;
            }
            if (entry.redrive()) {
                // A redrive entry: its messages go back to queued first (again, if that was done).
                list = deadLetters.requeue(redis.async(), list).get(wait.toMillis(), TimeUnit.MILLISECONDS);
                if (list.isEmpty()) {
                    Journal.delete(redis.async(), entry.stream(), entry.streamId())
                            .get(wait.toMillis(), TimeUnit.MILLISECONDS);
                    return;
                }
            }
            while (!pipeline.tryReserve(list.size())) {
                Thread.sleep(5); // start-up (intake is not open yet) or takeover thread
            }
            pipeline.publish(new JournalEntry(entry.stream(), entry.streamId(), list.size()), list, true);
            messages[0] += list.size();
        }, wait);
        if (entries > 0) {
            log.info("replayed {} journal entries ({} messages) of node {} left unfinished by its last run",
                    entries, messages[0], journal.nodeId());
        }
        return messages[0];
    }

    /** The address the HTTP server listens on (the real port when 0 was asked). */
    public InetSocketAddress address() {
        return http.address();
    }

    public String baseUrl() {
        return "http://" + address().getHostString() + ":" + address().getPort();
    }

    /** The sandbox APNs peer, or null when every app has real credentials. */
    public SandboxApns sandbox() {
        return sandbox;
    }

    public Redis redis() {
        return redis;
    }

    public Pipeline pipeline() {
        return pipeline;
    }

    /** Every HTTP route as {@code "METHOD pattern"} -> who may call it (the OpenAPI contract test reads them). */
    public java.util.Map<String, String> routes() {
        return api.routes();
    }

    /** The trigger rules (tests refresh them to see a change at once). */
    public Triggers triggers() {
        return triggers;
    }

    /** The trigger timers (tests fire them on their clock). */
    public TriggerTimers triggerTimers() {
        return triggerTimers;
    }

    /** The templates (tests refresh them to see a change at once). */
    public Templates templates() {
        return templates;
    }

    /** The campaign launcher (tests drive its tick). */
    public CampaignLauncher campaignLauncher() {
        return launcher;
    }

    /** The delivery policies (tests refresh them to see a change at once). */
    public Policies policies() {
        return policies;
    }

    public DeferredScheduler scheduler() {
        return scheduler;
    }

    /** This node's lease and the journals of other nodes it has taken over. */
    public NodeLeases leases() {
        return leases;
    }

    /** Messages replayed from the journal at start. */
    public int replayed() {
        return replayed;
    }

    /**
     * Graceful stop: new API calls get 503, the listener closes, the pipeline drains for up to
     * {@code shutdown.drain-timeout}, then everything stops. Unfinished work stays in the journal.
     */
    @Override
    public void close() {
        stopAll(config.drainTimeout());
    }

    /** Abrupt stop, as close to a crash as a test can get in-process: no draining, no more writes. */
    public void halt() {
        if (leases != null) {
            leases.halt(); // a crash renews nothing and releases nothing
        }
        if (pipeline != null) {
            pipeline.halt();
        }
        stopAll(Duration.ZERO);
    }

    private void stopAll(Duration drain) {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        readiness.drain();
        if (http != null) {
            http.stopAccepting();
        }
        if (scheduler != null) {
            scheduler.close();
        }
        if (triggerTimers != null) {
            triggerTimers.close();
        }
        if (launcher != null) {
            launcher.close();
        }
        if (pipeline != null && !drain.isZero()) {
            boolean drained = pipeline.drain(drain);
            log.info(drained ? "pipeline drained" : "pipeline not drained within {}; unfinished messages stay in the "
                    + "journal for the next start", drain);
        }
        if (pipeline != null) {
            pipeline.halt();
        }
        for (int i = resources.size() - 1; i >= 0; i--) {
            try {
                resources.get(i).close();
            } catch (Exception e) {
                log.warn("error while stopping {}: {}", resources.get(i).getClass().getSimpleName(), e.toString());
            }
        }
    }
}
