package io.herald.gateway.config;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * The policy of one app (tenant): its API keys, rate limit, channel order, APNs / FCM / SMPP
 * credentials and feedback webhook. Node settings (listen address, Redis, ring capacity, client
 * tuning) live in {@link HeraldConfig}; this type holds only what may differ per app, so that an
 * app's policy can be replaced on its own while the node runs.
 *
 * <p>Immutable and thread-safe; built by {@link Builder#build()}, which validates every part
 * (including that the credential files it names are readable) and throws {@link
 * InvalidAppConfigException} naming the setting, in the config file's terms ({@code sms.window},
 * {@code webhook.url}). {@link #toString()} leaves out every secret: API key hashes are counted,
 * passwords and the webhook secret are redacted, a webhook URL loses its user info and query.
 */
public final class AppConfig {
    /** Channels an app may list in {@code channels.order} and {@code channels.fallback}. */
    public static final List<String> CHANNELS = List.of("push", "apns", "fcm", "sms");

    private final String name;
    private final List<String> apiKeyHashes;
    private final RateLimit rateLimit;
    private final Channels channels;
    private final Apns apns;
    private final Fcm fcm;
    private final Sms sms;
    private final Webhook webhook;
    private final Events events;
    private final Tiers tiers;

    private AppConfig(Builder b, List<String> apiKeyHashes) {
        this.name = b.name;
        this.apiKeyHashes = List.copyOf(apiKeyHashes);
        this.rateLimit = b.rateLimit;
        this.channels = new Channels(List.copyOf(b.channels.order()), List.copyOf(b.channels.fallback()));
        this.apns = b.apns;
        this.fcm = b.fcm;
        this.sms = b.sms;
        this.webhook = b.webhook;
        this.events = b.events;
        this.tiers = b.tiers;
    }

    /** A builder for the app {@code name}; every part must be set before {@link Builder#build()}. */
    public static Builder builder(String name) {
        return new Builder(name);
    }

    /** A builder holding this app's settings, to change some of them. */
    public Builder toBuilder() {
        Builder b = new Builder(name);
        b.apiKeys = apiKeyHashes.stream().map(h -> "sha256:" + h).toList();
        b.rateLimit = rateLimit;
        b.channels = channels;
        b.apns = apns;
        b.fcm = fcm;
        b.sms = sms;
        b.webhook = webhook;
        b.events = events;
        b.tiers = tiers;
        return b;
    }

    public String name() {
        return name;
    }

    /** SHA-256 hashes (lower-case hex) of the app's API keys. */
    public List<String> apiKeyHashes() {
        return apiKeyHashes;
    }

    public RateLimit rateLimit() {
        return rateLimit;
    }

    public Channels channels() {
        return channels;
    }

    public Apns apns() {
        return apns;
    }

    public Fcm fcm() {
        return fcm;
    }

    public Sms sms() {
        return sms;
    }

    public Webhook webhook() {
        return webhook;
    }

    public Events events() {
        return events;
    }

    public Tiers tiers() {
        return tiers;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AppConfig a && name.equals(a.name) && apiKeyHashes.equals(a.apiKeyHashes)
                && rateLimit.equals(a.rateLimit) && channels.equals(a.channels) && apns.equals(a.apns)
                && fcm.equals(a.fcm) && sms.equals(a.sms) && webhook.equals(a.webhook) && events.equals(a.events) && tiers.equals(a.tiers);
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, apiKeyHashes, rateLimit, channels, apns, fcm, sms, webhook, events, tiers);
    }

    @Override
    public String toString() {
        return "AppConfig[name=" + name + ", apiKeys=" + apiKeyHashes.size() + " hashes, rateLimit=" + rateLimit
                + ", channels=" + channels + ", apns=" + apns + ", fcm=" + fcm + ", sms=" + sms
                + ", webhook=" + webhook + ", events=" + events + ", tiers=" + tiers + "]";
    }

    /** Per-user GCRA limit: {@code rate} messages per {@code period}, {@code burst} at once. */
    public record RateLimit(int rate, Duration period, int burst) {
        /** Emission interval in milliseconds (may be fractional). */
        public double emissionIntervalMillis() {
            return (double) period.toMillis() / rate;
        }
    }

    /** Channel order for {@code channel: auto} and the default fallback of messages naming a channel. */
    public record Channels(List<String> order, List<String> fallback) { }

    /**
     * Behavioural events ({@code events.*}): how many UTC days of per-day counts are kept, and per
     * event name the numeric property whose sum is kept ({@code purchase -> amount}).
     */
    public record Events(int windowDays, Map<String, String> sum) {
        public static final Events DEFAULT = new Events(90, Map.of());

        public Events {
            sum = Map.copyOf(sum);
        }
    }

    /**
     * Derived tiers ({@code tiers.*}): how often they are recomputed; lifecycle thresholds in days
     * (new: {@code signup-attribute} within {@code new-days}; active: any event within
     * {@code active-days}; silent: any within {@code silent-days}; churned: the rest); the event
     * whose recency, count and sum give the RFM scores.
     */
    public record Tiers(Duration every, String signupAttribute, int newDays, int activeDays, int silentDays,
                        String purchaseEvent) {
        public static final Tiers DEFAULT = new Tiers(Duration.ofHours(1), "signup_at", 7, 30, 90, "purchase");
    }

    /** APNs credentials of the app; both credential kinds empty means "sandbox only". */
    public record Apns(String topic, Path signingKeyFile, String teamId, String keyId, Path certificateFile,
                       String certificatePassword, String productionHost, String developmentHost, int port,
                       Path trustedCertificateFile) {
        public boolean hasCredentials() {
            return signingKeyFile != null || certificateFile != null;
        }

        @Override
        public String toString() {
            return "Apns[topic=" + topic + ", signingKeyFile=" + signingKeyFile + ", teamId=" + teamId
                    + ", keyId=" + keyId + ", certificateFile=" + certificateFile + ", certificatePassword=<redacted>]";
        }
    }

    /** FCM project of the app; no service account means the sandbox. */
    public record Fcm(String projectId, Path serviceAccountFile, String baseUrl, Path trustedCertificateFile) {
        public boolean hasCredentials() {
            return serviceAccountFile != null;
        }
    }

    /** SMPP account of the app; no host means the sandbox SMSC. */
    public record Sms(String host, int port, String systemId, String password, int binds, int ratePerBind, int window,
                      String sourceAddress, boolean trackLinks) {
        public boolean hasAccount() {
            return host != null && !host.isBlank();
        }

        @Override
        public String toString() {
            return "Sms[host=" + host + ", port=" + port + ", systemId=" + systemId + ", password=<redacted>, binds="
                    + binds + ", ratePerBind=" + ratePerBind + ", window=" + window + "]";
        }
    }

    /** Feedback webhook of the app; an empty url means none. */
    public record Webhook(String url, String secret, int batchSize, int maxAttempts, Duration backoffBase,
                          Duration backoffMax) {
        public boolean enabled() {
            return url != null && !url.isBlank();
        }

        @Override
        public String toString() {
            return "Webhook[url=" + redactUrl(url) + ", secret=<redacted>, batchSize=" + batchSize + "]";
        }
    }

    /**
     * An app setting that is not valid. {@link #setting()} names it as in the config file, relative
     * to the app ({@code sms.window}); the message starts with it and says what is expected.
     */
    public static final class InvalidAppConfigException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;
        private final String setting;

        InvalidAppConfigException(String setting, String problem) {
            super(setting + ": " + problem);
            this.setting = setting;
        }

        public String setting() {
            return setting;
        }
    }

    /** Collects an app's settings; {@link #build()} validates them. Not thread-safe. */
    public static final class Builder {
        private String name;
        private List<String> apiKeys = List.of();
        private RateLimit rateLimit;
        private Channels channels;
        private Apns apns;
        private Fcm fcm;
        private Sms sms;
        private Webhook webhook;
        private Events events = Events.DEFAULT;
        private Tiers tiers = Tiers.DEFAULT;

        private Builder(String name) {
            this.name = name;
        }

        public Builder name(String name) {
            this.name = name;
            return this;
        }

        /** API keys as {@code "sha256:<64 hex chars>"} (the bare hex is accepted too); never a key in clear. */
        public Builder apiKeys(List<String> apiKeys) {
            this.apiKeys = List.copyOf(apiKeys);
            return this;
        }

        public Builder tiers(Tiers tiers) {
            this.tiers = tiers;
            return this;
        }

        public Builder events(Events events) {
            this.events = events;
            return this;
        }

        public Builder rateLimit(RateLimit rateLimit) {
            this.rateLimit = rateLimit;
            return this;
        }

        public Builder channels(Channels channels) {
            this.channels = channels;
            return this;
        }

        public Builder apns(Apns apns) {
            this.apns = apns;
            return this;
        }

        public Builder fcm(Fcm fcm) {
            this.fcm = fcm;
            return this;
        }

        public Builder sms(Sms sms) {
            this.sms = sms;
            return this;
        }

        public Builder webhook(Webhook webhook) {
            this.webhook = webhook;
            return this;
        }

        /** Validates every setting and builds the app; throws {@link InvalidAppConfigException} on the first bad one. */
        public AppConfig build() {
            if (name == null || !name.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")) {
                throw new InvalidAppConfigException("name", "'" + name + "' (expected: letters, digits, '.', '_', "
                        + "'-', at most 64 characters)");
            }
            List<String> hashes = new ArrayList<>();
            for (String k : apiKeys) {
                String hex = k.startsWith("sha256:") ? k.substring(7) : k;
                if (!hex.matches("[0-9a-fA-F]{64}")) {
                    throw new InvalidAppConfigException("api-keys", "an entry is not 'sha256:<64 hex chars>' "
                            + "(store the SHA-256 of the key, never the key itself)");
                }
                hashes.add(hex.toLowerCase(Locale.ROOT));
            }
            checkRateLimit();
            checkChannels();
            checkApns();
            checkFcm();
            checkEvents();
            checkTiers();
            checkSms();
            checkWebhook();
            return new AppConfig(this, hashes);
        }

        private void checkRateLimit() {
            required(rateLimit, "rate-limit");
            atLeast(rateLimit.rate(), 1, "rate-limit.rate");
            atLeast(rateLimit.burst(), 1, "rate-limit.burst");
            positive(rateLimit.period(), "rate-limit.period");
        }

        private void checkChannels() {
            required(channels, "channels");
            channelList(channels.order(), "channels.order");
            if (channels.order().isEmpty()) {
                throw new InvalidAppConfigException("channels.order", "[] (expected: e.g. [push, sms])");
            }
            channelList(channels.fallback(), "channels.fallback");
        }

        private static void channelList(List<String> list, String setting) {
            required(list, setting);
            List<String> seen = new ArrayList<>();
            for (String ch : list) {
                if (!CHANNELS.contains(ch) || seen.contains(ch)) {
                    throw new InvalidAppConfigException(setting, "'" + ch + "' (expected: push, apns, fcm or sms, each once)");
                }
                seen.add(ch);
            }
        }

        private void checkApns() {
            required(apns, "apns");
            if (apns.signingKeyFile() != null && apns.certificateFile() != null) {
                throw new InvalidAppConfigException("apns", "both signing-key-file and certificate-file are set "
                        + "(expected: one of them)");
            }
            if (apns.signingKeyFile() != null) {
                readable(apns.signingKeyFile(), "apns.signing-key-file", "the .p8 key downloaded from Apple");
                if (blank(apns.teamId()) || blank(apns.keyId())) {
                    throw new InvalidAppConfigException("apns", "token auth needs team-id and key-id beside "
                            + "signing-key-file");
                }
            }
            if (apns.certificateFile() != null) {
                readable(apns.certificateFile(), "apns.certificate-file", "a .p12 with the APNs certificate and key");
            }
            if (blank(apns.topic())) {
                throw new InvalidAppConfigException("apns.topic", "'' (expected: the app's bundle id)");
            }
            if (blank(apns.productionHost())) {
                throw new InvalidAppConfigException("apns.production-host", "'' (expected: api.push.apple.com)");
            }
            if (blank(apns.developmentHost())) {
                throw new InvalidAppConfigException("apns.development-host", "'' (expected: api.sandbox.push.apple.com)");
            }
            between(apns.port(), 1, 65535, "apns.port");
            if (apns.trustedCertificateFile() != null) {
                readable(apns.trustedCertificateFile(), "apns.trusted-certificate-file", "a PEM certificate chain");
            }
        }

        private void checkTiers() {
            required(tiers, "tiers");
            if (tiers.every().compareTo(Duration.ofMinutes(1)) < 0) {
                throw new InvalidAppConfigException("tiers.every", tiers.every() + " (expected: at least 1m)");
            }
            // Days past events.window-days see only the window (older events are not kept).
            between(tiers.newDays(), 1, 400, "tiers.lifecycle.new-days");
            between(tiers.activeDays(), 1, 400, "tiers.lifecycle.active-days");
            between(tiers.silentDays(), tiers.activeDays(), 400, "tiers.lifecycle.silent-days");
            if (!tiers.signupAttribute().matches("[A-Za-z_][A-Za-z0-9_]{0,63}")) {
                throw new InvalidAppConfigException("tiers.signup-attribute", "'" + tiers.signupAttribute()
                        + "' (expected: an attribute name)");
            }
            if (!tiers.purchaseEvent().matches("[A-Za-z_][A-Za-z0-9_]{0,63}")) {
                throw new InvalidAppConfigException("tiers.purchase-event", "'" + tiers.purchaseEvent()
                        + "' (expected: an event name)");
            }
        }

        private void checkEvents() {
            required(events, "events");
            between(events.windowDays(), 1, 400, "events.window-days");
            for (Map.Entry<String, String> e : events.sum().entrySet()) {
                if (!e.getKey().matches("[A-Za-z_][A-Za-z0-9_]{0,63}") || !e.getValue().matches("[A-Za-z_][A-Za-z0-9_]{0,63}")) {
                    throw new InvalidAppConfigException("events.sum." + e.getKey(), "'" + e.getValue()
                            + "' (expected: event name = property name, both identifiers, e.g. purchase = amount)");
                }
            }
        }

        private void checkFcm() {
            required(fcm, "fcm");
            if (fcm.serviceAccountFile() != null) {
                readable(fcm.serviceAccountFile(), "fcm.service-account-file",
                        "the service-account JSON from the Firebase console");
                if (blank(fcm.projectId())) {
                    throw new InvalidAppConfigException("fcm.project-id", "'' (expected: the Firebase project id)");
                }
            }
            if (!blank(fcm.projectId()) && !fcm.projectId().matches("[A-Za-z0-9._:-]+")) {
                throw new InvalidAppConfigException("fcm.project-id", "'" + fcm.projectId()
                        + "' (expected: a Firebase project id: letters, digits, '.', '_', ':', '-')");
            }
            required(fcm.baseUrl(), "fcm.base-url");
            URI base = uri(fcm.baseUrl(), "fcm.base-url", "https://host[:port]");
            if (!"https".equalsIgnoreCase(base.getScheme()) || base.getHost() == null) {
                throw new InvalidAppConfigException("fcm.base-url", "'" + fcm.baseUrl() + "' (expected: https://host[:port])");
            }
            if (fcm.trustedCertificateFile() != null) {
                readable(fcm.trustedCertificateFile(), "fcm.trusted-certificate-file", "a PEM certificate chain");
            }
        }

        private void checkSms() {
            required(sms, "sms");
            between(sms.port(), 1, 65535, "sms.port");
            if (sms.hasAccount() && blank(sms.systemId())) {
                throw new InvalidAppConfigException("sms.system-id", "'' (expected: the SMPP account's system id)");
            }
            between(sms.binds(), 1, 64, "sms.binds");
            between(sms.ratePerBind(), 1, 100_000, "sms.rate-per-bind");
            between(sms.window(), 1, 1_000, "sms.window");
            if (blank(sms.sourceAddress())) {
                throw new InvalidAppConfigException("sms.source-address", "'' (expected: a sender id, short code or "
                        + "+E.164 number)");
            }
            required(sms.systemId(), "sms.system-id");
            required(sms.password(), "sms.password");
        }

        private void checkWebhook() {
            required(webhook, "webhook");
            atLeast(webhook.batchSize(), 1, "webhook.batch-size");
            atLeast(webhook.maxAttempts(), 1, "webhook.max-attempts");
            positive(webhook.backoffBase(), "webhook.backoff-base");
            positive(webhook.backoffMax(), "webhook.backoff-max");
            if (webhook.backoffMax().compareTo(webhook.backoffBase()) < 0) {
                throw new InvalidAppConfigException("webhook.backoff-max", webhook.backoffMax().toMillis()
                        + "ms (expected: >= webhook.backoff-base, " + webhook.backoffBase().toMillis() + "ms)");
            }
            if (!webhook.enabled()) {
                return;
            }
            URI url = uri(webhook.url(), "webhook.url", "an absolute http(s) URL");
            String scheme = url.getScheme() == null ? "" : url.getScheme().toLowerCase(Locale.ROOT);
            if (!(scheme.equals("http") || scheme.equals("https")) || url.getHost() == null) {
                throw new InvalidAppConfigException("webhook.url", "'" + redactUrl(webhook.url())
                        + "' (expected: an absolute http(s) URL)");
            }
            if (webhook.secret() == null || webhook.secret().length() < 16) {
                throw new InvalidAppConfigException("webhook.secret", "too short (expected: at least 16 characters)");
            }
        }

        private static URI uri(String s, String setting, String expected) {
            try {
                return new URI(s);
            } catch (URISyntaxException e) {
                throw new InvalidAppConfigException(setting, "'" + redactUrl(s) + "' is not a URL (expected: "
                        + expected + ")");
            }
        }

        private static void readable(Path file, String setting, String expected) {
            if (!Files.isReadable(file)) {
                throw new InvalidAppConfigException(setting, file + " is not readable (expected: " + expected + ")");
            }
        }

        private static void required(Object part, String setting) {
            if (part == null) {
                throw new InvalidAppConfigException(setting, "missing");
            }
        }

        private static void atLeast(int v, int min, String setting) {
            if (v < min) {
                throw new InvalidAppConfigException(setting, v + " (expected: >= " + min + ")");
            }
        }

        private static void between(int v, int min, int max, String setting) {
            if (v < min || v > max) {
                throw new InvalidAppConfigException(setting, v + " (expected: " + min + ".." + max + ")");
            }
        }

        private static void positive(Duration d, String setting) {
            required(d, setting);
            if (d.toMillis() < 1) {
                throw new InvalidAppConfigException(setting, d.toMillis() + "ms (expected: >= 1ms)");
            }
        }

        private static boolean blank(String s) {
            return s == null || s.isBlank();
        }
    }

    /** The URL with its user info and query replaced by {@code <redacted>} (either may carry a secret). */
    static String redactUrl(String s) {
        if (s == null) {
            return null;
        }
        String out = s;
        int q = out.indexOf('?');
        if (q >= 0) {
            out = out.substring(0, q) + "?<redacted>";
        }
        int scheme = out.indexOf("://");
        int start = scheme < 0 ? 0 : scheme + 3;
        int slash = out.indexOf('/', start);
        int at = out.lastIndexOf('@', (slash < 0 ? out.length() : slash) - 1);
        if (at >= start) {
            out = out.substring(0, start) + "<redacted>@" + out.substring(at + 1);
        }
        return out;
    }
}
