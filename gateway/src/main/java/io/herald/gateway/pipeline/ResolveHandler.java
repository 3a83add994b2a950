package io.herald.gateway.pipeline;

import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import com.lmax.disruptor.EventHandler;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.connector.Target;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.registry.Device;
import io.herald.gateway.registry.UserProfile;
import io.herald.gateway.registry.UserData;
import io.herald.gateway.content.Template;
import io.herald.gateway.content.Templates;
import io.herald.gateway.registry.UserRegistry;
import io.herald.gateway.tracking.MessageStore;
import io.herald.protocol.Channel;
import io.herald.protocol.Message;

import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Stage 1: where the message may go. For each handler batch, one pipelined round trip reads every
 * distinct user in it (devices and profile in one hash) and, for replayed messages, their current
 * state, so a message already settled before a crash is not sent again.
 *
 * <p>The plan: the message's channel ({@code auto} = the user's channel order, else the app's),
 * then its fallback channels (or the app's default fallback), each kept only if the user has not
 * opted out of it ({@code push} consent covers apns and fcm) and has somewhere to receive it
 * (active devices of the platform, a phone number for sms) and, for push, the message has a title
 * or body (an SMS-only message needs only its SMS text). Skipped channels are noted in the
 * message's history. Nothing left: {@code dropped:opted_out} when consent ruled out every channel,
 * else {@code dropped:no_channel}. Direct token sends go to that token only. A message of a Herald
 * campaign that was cancelled since it was fanned out (it waited in the campaign's backlog) ends
 * {@code dropped:cancelled}: the same round trip reads each distinct campaign's
 * state. Runs on its own thread.
 */
final class ResolveHandler implements EventHandler<DeliveryEvent> {

    private final Redis.Connection connection;
    private final UserRegistry registry;
    private final MessageStore store;
    private final Map<String, AppConfig> apps;
    private final Stage stage;
    private final List<DeliveryEvent> batch = new ArrayList<>();
    /** The keys of the cancelled campaigns among the current batch's (filled by the batch's read). */
    private final java.util.Set<String> cancelled = new java.util.HashSet<>();

    private final Templates templates;

    ResolveHandler(Redis.Connection connection, UserRegistry registry, MessageStore store,
                   Map<String, AppConfig> apps, Stage stage, Templates templates) {
        this.templates = templates;
        this.connection = connection;
        this.connection.setAutoFlushCommands(false);
        this.registry = registry;
        this.store = store;
        this.apps = apps;
        this.stage = stage;
    }

    @Override
    public void onEvent(DeliveryEvent event, long sequence, boolean endOfBatch) {
        batch.add(event);
        if (endOfBatch) {
            try {
                resolve();
            } finally {
                batch.clear();
            }
        }
    }

    private void resolve() {
        Map<String, Map<String, String>> users = new HashMap<>();
        Map<DeliveryEvent, String> states = new HashMap<>();
        Map<DeliveryEvent, double[]> hours = new HashMap<>();
        Map<String, UserData.View> views = new HashMap<>();
        stage.awaitRetrying("resolve", () -> {
            users.clear();
            states.clear();
            hours.clear();
            views.clear();
            Map<String, CompletableFuture<UserData.View>> viewReads = new HashMap<>();
            RedisClusterAsyncCommands<String, String> cmd = connection.async();
            Map<String, CompletableFuture<Map<String, String>>> reads = new HashMap<>();
            Map<DeliveryEvent, CompletableFuture<String>> stateReads = new HashMap<>();
            Map<DeliveryEvent, CompletableFuture<double[]>> hourReads = new HashMap<>();
            Map<String, CompletableFuture<String>> campaignReads = new HashMap<>();
            for (DeliveryEvent e : batch) {
                String campaign = campaignKey(e);
                if (campaign != null) {
                    campaignReads.computeIfAbsent(campaign, k -> cmd.hget(k, "json").toCompletableFuture());
                }
                String user = e.item.message().user();
                if (user != null) {
                    reads.computeIfAbsent(e.item.app() + '\u0000' + user, k -> registry.read(cmd, e.item.app(), user));
                    Message.TemplateRef ref = e.item.message().template();
                    Template t = ref == null ? null : templates.get(e.item.app(), ref.id());
                    if (t != null && t.readsUserData()) {
                        viewReads.computeIfAbsent(e.item.app() + '\u0000' + user,
                                k -> registry.data().read(e.item.app(), user));
                    }
                    if (e.item.phase() == JournalItem.Phase.NEW
                            && e.item.message().policy() != null && e.item.message().policy().bestHour()) {
                        hourReads.put(e, registry.engagementHours(cmd, e.item.app(), user));
                    }
                }
                if (e.replayed) {
                    stateReads.put(e, store.state(cmd, e.item.batchId(), e.item.index()));
                }
            }
            connection.flushCommands();
            List<CompletableFuture<?>> all = new ArrayList<>(reads.values());
            all.addAll(stateReads.values());
            all.addAll(hourReads.values());
            all.addAll(viewReads.values());
            all.addAll(campaignReads.values());
            return CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
                cancelled.clear();
                campaignReads.forEach((k, f) -> {
                    if (isCancelled(f.join())) {
                        cancelled.add(k);
                    }
                });
                viewReads.forEach((k, f) -> views.put(k, f.join()));
                reads.forEach((k, f) -> users.put(k, f.join()));
                stateReads.forEach((e, f) -> states.put(e, f.join()));
                hourReads.forEach((e, f) -> hours.put(e, f.join()));
                return Boolean.TRUE;
            });
        });
        long now = System.currentTimeMillis();
        boolean noted = false;
        for (DeliveryEvent e : batch) {
            if (e.replayed) {
                String state = states.get(e);
                // A readmitted (reserved) message is legitimately 'deferred'; a batch message that is
                // deferred was already handed to the scheduler before the crash.
                if (MessageStore.terminal(state) || (MessageStore.deferred(state) && e.item.phase() == JournalItem.Phase.NEW)) {
                    e.skip = true;
                    continue;
                }
            }
            AppConfig app = apps.get(e.item.app());
            if (app == null) {
                e.drop = "unknown_app"; // replayed from the journal after the app left the config
                continue;
            }
            if (!cancelled.isEmpty() && cancelled.contains(campaignKey(e))) {
                // fanned out before the cancel (it waited in the campaign's backlog): not sent
                e.drop = "cancelled";
                e.dropDetail = "campaign " + e.item.message().campaign() + " was cancelled";
                continue;
            }
            Message m = e.item.message();
            Map<String, String> rawUser = m.user() == null ? null : users.get(e.item.app() + '\u0000' + m.user());
            UserRegistry.User found = rawUser == null || rawUser.isEmpty()
                    ? new UserRegistry.User(UserProfile.EMPTY, List.of())
                    : registry.decodeUser(e.item.app(), m.user(), rawUser);
            if (m.template() != null) {
                m = render(e, m, found.profile(), views.get(e.item.app() + '\u0000' + m.user()));
                if (m == null) {
                    continue; // failed:render
                }
                e.item = new JournalItem(e.item.app(), e.item.batchId(), e.item.index(), e.item.acceptedAt(), m,
                        e.item.phase());
            }
            if (m.apnsToken() != null) {
                e.plan = List.of(new DeliveryEvent.Step("apns", List.of(new Target("apns", null, m.apnsToken(), false))));
                continue;
            }
            if (m.fcmToken() != null) {
                e.plan = List.of(new DeliveryEvent.Step("fcm", List.of(new Target("fcm", null, m.fcmToken(), false))));
                continue;
            }
            UserRegistry.User user = found;
            e.profile = user.profile();
            e.engagement = hours.get(e);
            plan(e, app, m, user, now);
            if (m.user() != null && registry.noteMessage(connection.async(), e.item.app(), m.user(), e.item.messageId(), now)) {
                noted = true; // the user lookup's recent messages
            }
            if (m.campaign() != null && m.user() != null && !"test".equals(m.variant()) && e.drop == null
                    && e.failure == null) {
                noted = true; // the user's latest campaign message: what an opt-out is laid at
                registry.noteCampaign(connection.async(), e.item.app(), m.user(), e.item.messageId(), now);
            }
        }
        if (noted) {
            connection.flushCommands();
        }
    }

    /**
     * The key of the Herald campaign a message belongs to ({@code <id>} or a recurring run's {@code
     * <id>.r<n>}), or null for a message without a campaign or a test send. A batch item's own
     * campaign label names no stored campaign: its read finds nothing.
     */
    private static String campaignKey(DeliveryEvent e) {
        Message m = e.item.message();
        if (m.campaign() == null || "test".equals(m.variant())) {
            return null;
        }
        String label = m.campaign();
        java.util.regex.Matcher run = RUN.matcher(label);
        return Keys.campaign(e.item.app(), run.matches() ? run.group(1) : label);
    }

    private static final java.util.regex.Pattern RUN = java.util.regex.Pattern.compile("(.+)\\.r\\d+");
    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    /** True when a stored campaign (its JSON; null: none) is cancelled. */
    private static boolean isCancelled(String json) {
        if (json == null || !json.contains("cancelled")) {
            return false;
        }
        try {
            return "cancelled".equals(JSON.readTree(json).path("state").asText());
        } catch (java.io.IOException e) {
            return false;
        }
    }

    /**
     * The message with its template rendered for its user (texts, data merged under the item's own),
     * or null with {@code e.failure = "render"} when the template is gone or the result breaks a
     * provider limit (a payload over 4096 bytes less the receipt reserve, an SMS over
     * {@value Message#MAX_SMS_CHARS} characters): never truncated.
     */
    @SuppressWarnings("unchecked")
    private Message render(DeliveryEvent e, Message m, UserProfile profile, UserData.View view) {
        Template t = templates.get(e.item.app(), m.template().id());
        if (t == null) {
            e.failure = "render";
            e.failureDetail = "template '" + m.template().id() + "' no longer exists";
            return null;
        }
        Map<String, Object> campaign = new HashMap<>();
        if (m.campaign() != null) {
            campaign.put("id", m.campaign());
        }
        if (m.variant() != null) {
            campaign.put("variant", m.variant());
        }
        Template.Rendered r;
        try {
            Map<String, Object> vars = (Map<String, Object>) Template.plain(m.template().vars());
            // A trigger's send carries its event as vars.event: the template's event.* (issue 17).
            Object event = vars == null ? null : vars.get("event");
            r = t.render(profile.locale(), Template.userContext(m.user(), profile, view),
                    event instanceof Map<?, ?> ev ? (Map<String, Object>) ev : null, campaign, vars);
        } catch (RuntimeException ex) {
            e.failure = "render";
            e.failureDetail = "template '" + t.id() + "': " + ex.getMessage();
            return null;
        }
        com.fasterxml.jackson.databind.node.ObjectNode data = r.data();
        if (m.data() != null) {
            if (data == null) {
                data = m.data();
            } else {
                data = data.deepCopy();
                data.setAll(m.data());
            }
        }
        String title = blankToNull(r.title());
        String body = blankToNull(r.body());
        String sms = blankToNull(r.sms());
        Message out = m.rendered(title, body, data, sms);
        String why = null;
        try {
            if (title != null || body != null) {
                int apns = io.herald.protocol.ApnsPayloads.encode(out).length;
                int fcm = io.herald.protocol.FcmPayloads.payloadSize(out);
                int limit = io.herald.protocol.ApnsPayloads.MAX_PAYLOAD_BYTES - io.herald.protocol.ReceiptTokens.PAYLOAD_RESERVE;
                if (Math.max(apns, fcm) > limit) {
                    why = "push payload " + Math.max(apns, fcm) + " bytes (limit " + limit
                            + ": 4096 less the receipt data)";
                }
            } else if (sms == null) {
                why = "no text for locale '" + r.locale() + "' (every part rendered empty)";
            }
        } catch (IllegalArgumentException ex) {
            why = ex.getMessage();
        }
        if (why == null && sms != null && sms.length() > Message.MAX_SMS_CHARS) {
            why = "SMS text " + sms.length() + " characters (limit " + Message.MAX_SMS_CHARS + ")";
        }
        if (why != null) {
            e.failure = "render";
            e.failureDetail = "template '" + t.id() + "', locale '" + r.locale() + "': " + why;
            return null;
        }
        return out;
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }

    private void plan(DeliveryEvent e, AppConfig app, Message m, UserRegistry.User user, long now) {
        LinkedHashSet<String> channels = new LinkedHashSet<>();
        if (m.channel() == Channel.AUTO) {
            channels.addAll(user.profile().channels().isEmpty() ? app.channels().order() : user.profile().channels());
        } else {
            channels.add(m.channel().wire());
        }
        if (m.fallback() != null) {
            m.fallback().forEach(c -> channels.add(c.wire()));
        } else if (m.channel() != Channel.AUTO) {
            channels.addAll(app.channels().fallback());
        }
        List<DeliveryEvent.Step> plan = new ArrayList<>(channels.size());
        List<String> notes = new ArrayList<>(0);
        int optedOut = 0;
        boolean pushText = m.title() != null && !m.title().isBlank() || m.body() != null && !m.body().isBlank();
        for (String channel : channels) {
            if (!pushText && !channel.equals("sms")) {
                // An SMS-only message (intake let it in without title or body) meets the app's push fallback.
                notes.add(store.historyLine(now, "skipped", channel, null, "no_push_text"));
                continue;
            }
            String consent = channel.equals("sms") ? "sms" : "push";
            if (user.profile().optedOut(consent)) {
                optedOut++;
                notes.add(store.historyLine(now, "skipped", channel, null, "opted_out"));
                continue;
            }
            List<Target> targets = new ArrayList<>(2);
            if (channel.equals("sms")) {
                if (user.profile().phone() != null) {
                    targets.add(new Target("sms", null, user.profile().phone(), false));
                }
            } else {
                for (Device d : user.devices()) {
                    if (d.active() && (channel.equals("push") || channel.equals(d.platform()))) {
                        targets.add(new Target(d.platform(), d.id(), d.token(), d.sandbox()));
                    }
                }
            }
            if (targets.isEmpty()) {
                notes.add(store.historyLine(now, "skipped", channel, null,
                        channel.equals("sms") ? "no_phone" : "no_device"));
                continue;
            }
            plan.add(new DeliveryEvent.Step(channel, targets, List.copyOf(notes)));
            notes.clear();
        }
        e.notes = List.copyOf(notes);
        if (plan.isEmpty()) {
            e.drop = optedOut > 0 && optedOut == channels.size() ? "opted_out" : "no_channel";
        } else {
            e.plan = plan;
        }
    }
}
