package io.herald.protocol;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Iterator;
import java.util.Map;

/**
 * Builds FCM HTTP v1 request bodies ({@code POST /v1/projects/{p}/messages:send}).
 *
 * <p>A notification message carries {@code notification} (title, body, image) and
 * {@code android.notification} (channel id, click action, sound); a data message
 * ({@code android.type = "data"}) carries title and body as data fields instead, so the app
 * renders it. FCM data values must be strings: non-string values of {@code data} are sent as
 * their JSON text. Priority maps to {@code android.priority} HIGH/NORMAL, ttl to
 * {@code android.ttl} ({@code "<n>s"}). Stateless, thread-safe.
 */
public final class FcmPayloads {
    /** FCM's limit for the message payload (notification and data), in bytes. */
    public static final int MAX_PAYLOAD_BYTES = 4096;

    private static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
            .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8).build());

    private FcmPayloads() {
    }

    /** The complete request body for one registration token. */
    public static byte[] encode(Message m, String token) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512);
        try (JsonGenerator g = MAPPER.getFactory().createGenerator(out, JsonEncoding.UTF8)) {
            g.writeStartObject();
            g.writeObjectFieldStart("message");
            g.writeStringField("token", token);
            writePayload(g, m);
            Message.Android a = m.android();
            g.writeObjectFieldStart("android");
            g.writeStringField("priority", m.priority() == Priority.NORMAL ? "NORMAL" : "HIGH");
            g.writeStringField("ttl", m.ttlSeconds() + "s");
            if (a != null && a.collapseKey() != null) {
                g.writeStringField("collapse_key", a.collapseKey());
            } else if (m.collapseId() != null) {
                g.writeStringField("collapse_key", m.collapseId());
            }
            if (a == null || !a.dataOnly()) {
                g.writeObjectFieldStart("notification");
                if (a != null && a.channelId() != null) {
                    g.writeStringField("channel_id", a.channelId());
                }
                if (a != null && a.clickAction() != null) {
                    g.writeStringField("click_action", a.clickAction());
                }
                if (m.sound() != null) {
                    g.writeStringField("sound", m.sound());
                }
                g.writeEndObject();
            }
            g.writeEndObject();
            g.writeEndObject();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** Size in bytes of the payload FCM counts against its 4096-byte limit (notification + data). */
    public static int payloadSize(Message m) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512);
        try (JsonGenerator g = MAPPER.getFactory().createGenerator(out, JsonEncoding.UTF8)) {
            g.writeStartObject();
            writePayload(g, m);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.size();
    }

    private static void writePayload(JsonGenerator g, Message m) throws IOException {
        Message.Android a = m.android();
        boolean dataOnly = a != null && a.dataOnly();
        if (!dataOnly) {
            g.writeObjectFieldStart("notification");
            if (m.title() != null) {
                g.writeStringField("title", m.title());
            }
            if (m.body() != null) {
                g.writeStringField("body", m.body());
            }
            if (a != null && a.image() != null) {
                g.writeStringField("image", a.image());
            }
            g.writeEndObject();
        }
        if (m.data() != null || dataOnly) {
            g.writeObjectFieldStart("data");
            if (dataOnly) {
                if (m.title() != null) {
                    g.writeStringField("title", m.title());
                }
                if (m.body() != null) {
                    g.writeStringField("body", m.body());
                }
            }
            if (m.data() != null) {
                for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    if (dataOnly && (e.getKey().equals("title") || e.getKey().equals("body"))) {
                        continue;
                    }
                    JsonNode v = e.getValue();
                    g.writeStringField(e.getKey(), v.isTextual() ? v.textValue() : v.toString());
                }
            }
            g.writeEndObject();
        }
    }
}
