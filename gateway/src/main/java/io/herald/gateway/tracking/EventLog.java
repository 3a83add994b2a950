package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lettuce.core.StreamMessage;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The layout of an app's event log (a Redis Stream, {@code Keys.events}): one stream entry per
 * flush, field {@code p}, holding the events of many messages as compact lines (RS-joined; fields
 * US-separated: batch id (empty: as the line before), index, event, reason, time in base 36, user,
 * channel, campaign, variant, action). About 40 bytes per event instead of about 200 for JSON; entries
 * an older version wrote (field {@code e}, one JSON event) are still read. {@link #expand} turns an
 * entry back into the JSON events the API and the webhooks show; an event's cursor is its entry id
 * and its position ({@code <entry id>.<n>}). Stateless.
 */
public final class EventLog {
    static final char US = '\u001f';
    static final char RS = '\u001e';

    private EventLog() {
    }

    /** One event line; {@code batchId} null when it is the same as the line before's. */
    static void appendLine(StringBuilder b, String batchId, String[] fact) {
        // fact: idx, event, reason, at, user, ch, cp, vr, action, stages
        if (b.length() > 0) {
            b.append(RS);
        }
        b.append(batchId == null ? "" : batchId).append(US).append(fact[0]).append(US).append(fact[1]).append(US)
                .append(fact[2]).append(US).append(Long.toString(Long.parseLong(fact[3]), 36)).append(US)
                .append(fact[4]).append(US).append(fact[5]).append(US).append(fact[6]).append(US).append(fact[7])
                .append(US).append(fact[8]);
    }

    /** The events of one stream entry, each with its {@code cursor}; malformed lines are skipped. */
    public static List<ObjectNode> expand(ObjectMapper mapper, String app, StreamMessage<String, String> m) {
        List<ObjectNode> out = new ArrayList<>();
        if (m.getBody() == null) {
            return out;
        }
        String json = m.getBody().get("e");
        if (json != null) {
            try {
                ObjectNode ev = (ObjectNode) mapper.readTree(json);
                ev.put("cursor", m.getId());
                out.add(ev);
            } catch (IOException | ClassCastException e) {
                // not an event: skipped
            }
            return out;
        }
        String packed = m.getBody().get("p");
        if (packed == null) {
            return out;
        }
        String batch = null;
        int n = 0;
        for (String line : split(packed, RS)) {
            n++;
            String[] f = split(line, US).toArray(String[]::new);
            if (f.length != 10) {
                continue;
            }
            if (!f[0].isEmpty()) {
                batch = f[0];
            }
            if (batch == null) {
                continue;
            }
            try {
                ObjectNode e = mapper.createObjectNode();
                e.put("id", MessageIds.messageId(UUID.fromString(batch), Integer.parseInt(f[1])).toString());
                e.put("app", app);
                if (!f[5].isEmpty() && !f[5].equals("-")) {
                    e.put("user", f[5]);
                }
                if (!f[6].isEmpty()) {
                    e.put("channel", f[6]);
                }
                e.put("event", f[2]);
                if (!f[3].isEmpty()) {
                    e.put("reason", f[3]);
                }
                e.put("at", Long.parseLong(f[4], 36));
                e.put("batch", batch);
                if (!f[7].isEmpty()) {
                    e.put("campaign", f[7]);
                }
                if (!f[8].isEmpty()) {
                    e.put("variant", f[8]);
                }
                if (!f[9].isEmpty()) {
                    e.put("action", f[9]);
                }
                e.put("cursor", m.getId() + "." + n);
                out.add(e);
            } catch (IllegalArgumentException e) {
                // malformed line: skipped
            }
        }
        return out;
    }

    /** Splits on one character, keeping empty parts. */
    static List<String> split(String s, char c) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) == c) {
                out.add(s.substring(start, i));
                start = i + 1;
            }
        }
        out.add(s.substring(start));
        return out;
    }
}
