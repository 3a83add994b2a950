package io.herald.protocol;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.StringWriter;
import java.util.Iterator;
import java.util.Map;

/**
 * Builds the APNs JSON payload for a {@link Message}:
 * {@code {"aps":{"alert":{"title","body"},"sound","badge","category"}, ...data fields}}.
 *
 * <p>Stateless and thread-safe. Absent fields are omitted; collapse id, TTL and priority are APNs
 * headers and never appear in the payload. Output is compact UTF-8 JSON in which non-ASCII text
 * (emoji, RTL scripts) is written as raw UTF-8 rather than escaped, which keeps payloads small
 * against the {@value #MAX_PAYLOAD_BYTES}-byte APNs limit. This class does not enforce that limit;
 * {@link BatchCodec#decode(byte[])} does.
 */
public final class ApnsPayloads {

    /** The largest payload APNs accepts for a regular (non-VoIP) notification, in bytes. */
    public static final int MAX_PAYLOAD_BYTES = 4096;

    /** Writes supplementary characters (emoji) as 4 raw UTF-8 bytes, not as 12-byte escape pairs. */
    private static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
            .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8)
            .build());

    private ApnsPayloads() {}

    /**
     * Encodes the payload as UTF-8 JSON bytes.
     *
     * @throws IllegalArgumentException if {@code data} contains {@code "aps"} or any string holds a
     *     lone surrogate or U+0000; messages from {@link BatchCodec#decode(byte[])} never do
     */
    public static byte[] encode(Message m) {
        check(m);
        ByteArrayOutputStream out = new ByteArrayOutputStream(256);
        try (JsonGenerator gen = MAPPER.getFactory().createGenerator(out, JsonEncoding.UTF8)) {
            write(m, gen);
        } catch (IOException e) {
            throw new IllegalArgumentException("message: not encodable as JSON (" + e.getMessage() + ")", e);
        }
        return out.toByteArray();
    }

    /**
     * Encodes the payload as a JSON string (what Pushy takes), written straight into a string
     * rather than through UTF-8 bytes; equal to decoding {@link #encode(Message)} as UTF-8.
     *
     * @throws IllegalArgumentException as {@link #encode(Message)}
     */
    public static String encodeToString(Message m) {
        check(m);
        StringWriter out = new StringWriter(512);
        try (JsonGenerator gen = MAPPER.getFactory().createGenerator(out)) {
            write(m, gen);
        } catch (IOException e) {
            throw new IllegalArgumentException("message: not encodable as JSON (" + e.getMessage() + ")", e);
        }
        return out.toString();
    }

    private static void check(Message m) {
        // The generator would otherwise fuse a lone surrogate with the next char and corrupt the text.
        checkText(m.title(), "title");
        checkText(m.body(), "body");
        checkText(m.sound(), "sound");
        checkText(m.category(), "category");
        if (m.data() != null) {
            checkTree(m.data(), "data");
        }
    }

    private static void write(Message m, JsonGenerator gen) throws IOException {
        gen.writeStartObject();
        gen.writeObjectFieldStart("aps");
        if (m.title() != null || m.body() != null) {
            gen.writeObjectFieldStart("alert");
            if (m.title() != null) {
                gen.writeStringField("title", m.title());
            }
            if (m.body() != null) {
                gen.writeStringField("body", m.body());
            }
            gen.writeEndObject();
        }
        if (m.sound() != null) {
            gen.writeStringField("sound", m.sound());
        }
        if (m.badge() != null) {
            gen.writeNumberField("badge", m.badge());
        }
        if (m.category() != null) {
            gen.writeStringField("category", m.category());
        }
        gen.writeEndObject();
        if (m.data() != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if ("aps".equals(e.getKey())) {
                    throw new IllegalArgumentException("data.aps: present (expected: absent; reserved by APNs)");
                }
                gen.writeFieldName(e.getKey());
                gen.writeTree(e.getValue());
            }
        }
        gen.writeEndObject();
    }

    private static void checkText(String s, String field) {
        if (s != null && ItemDecoder.badCharIndex(s) >= 0) {
            throw new IllegalArgumentException(String.format(
                    "%s: contains a lone surrogate or U+0000 at index %s (expected: valid Unicode text)",
                    field, ItemDecoder.badCharIndex(s)));
        }
    }

    /** Scans without allocating; only a bad tree is walked again to name the field. */
    private static void checkTree(JsonNode node, String path) {
        if (!clean(node)) {
            describe(node, path);
        }
    }

    private static boolean clean(JsonNode node) {
        if (node.isTextual()) {
            return ItemDecoder.badCharIndex(node.textValue()) < 0;
        }
        if (node.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (ItemDecoder.badCharIndex(e.getKey()) >= 0 || !clean(e.getValue())) {
                    return false;
                }
            }
        } else if (node.isArray()) {
            for (int i = 0; i < node.size(); i++) {
                if (!clean(node.get(i))) {
                    return false;
                }
            }
        }
        return true;
    }

    private static void describe(JsonNode node, String path) {
        if (node.isTextual()) {
            checkText(node.textValue(), path);
        } else if (node.isContainerNode()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                checkText(e.getKey(), path);
                describe(e.getValue(), path + "." + e.getKey());
            }
            for (int i = 0; node.isArray() && i < node.size(); i++) {
                describe(node.get(i), path + "[" + i + "]");
            }
        }
    }
}
