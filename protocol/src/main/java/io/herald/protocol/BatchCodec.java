package io.herald.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * The strict JSON codec for the Herald API: decodes and validates batches, encodes messages for
 * the journal and serialises response objects.
 *
 * <p>Immutable and thread-safe; build one per process and share it. The underlying {@link
 * ObjectMapper} (see {@link #mapper()}) is strict: duplicate keys, trailing tokens, unknown
 * properties and non-standard JSON are rejected, and {@link StreamReadConstraints} bound nesting
 * depth (32), string length (1 000 000 chars), number length (32), name length (256) and document
 * length (64 MiB), so hostile input fails fast without deep recursion.
 *
 * <p>Trade-off: {@link #decode(byte[])} parses the whole body into a tree first. That costs more
 * memory than streaming, but lets one bad item be reported on its own without failing the batch.
 */
public final class BatchCodec {

    static final int MAX_NESTING_DEPTH = 32;
    static final int MAX_STRING_LENGTH = 1_000_000;
    static final int MAX_NUMBER_LENGTH = 32;
    static final int MAX_NAME_LENGTH = 256;
    static final long MAX_DOCUMENT_LENGTH = 64L * 1024 * 1024;

    private final int maxItems;
    private final ObjectMapper mapper;

    private BatchCodec(int maxItems) {
        this.maxItems = maxItems;
        this.mapper = strictMapper();
    }

    /**
     * Creates a codec that accepts batches of at most {@code maxItems} messages.
     *
     * @throws IllegalArgumentException if {@code maxItems < 1}
     */
    public static BatchCodec create(int maxItems) {
        if (maxItems < 1) {
            throw new IllegalArgumentException(String.format("maxItems: %s (expected: >= 1)", maxItems));
        }
        return new BatchCodec(maxItems);
    }

    static ObjectMapper strictMapper() {
        JsonFactory factory = JsonFactory.builder()
                .streamReadConstraints(StreamReadConstraints.builder()
                        .maxNestingDepth(MAX_NESTING_DEPTH)
                        .maxStringLength(MAX_STRING_LENGTH)
                        .maxNumberLength(MAX_NUMBER_LENGTH)
                        .maxNameLength(MAX_NAME_LENGTH)
                        .maxDocumentLength(MAX_DOCUMENT_LENGTH)
                        .build())
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .build();
        ObjectMapper m = new ObjectMapper(factory);
        m.enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
        m.enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
        m.enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);
        m.enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);
        // Keep decimals exact (and finite: 1e400 must not become Infinity, which is not JSON).
        m.enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);
        m.setDefaultPropertyInclusion(
                JsonInclude.Value.construct(JsonInclude.Include.NON_NULL, JsonInclude.Include.NON_NULL));
        return m;
    }

    /** Returns the largest number of messages a batch may hold. */
    public int maxItems() {
        return maxItems;
    }

    /**
     * Decodes and validates a batch request body.
     *
     * <p>Problems with the request as a whole throw; problems with a single element become an
     * {@link DecodedBatch.Item} carrying an {@link ApiError}, and the other elements are unaffected.
     *
     * @throws BatchRejectedException if the body is not a well-formed batch object
     */
    public DecodedBatch decode(byte[] body) throws BatchRejectedException {
        JsonNode root = readRoot(body);
        if (!root.isObject()) {
            throw new BatchRejectedException(ErrorCode.MALFORMED_JSON, null,
                    String.format("body: %s (expected: a JSON object)", describe(root)));
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!"app".equals(name) && !"messages".equals(name)) {
                String f = ItemDecoder.printable(name, MAX_NAME_LENGTH);
                throw new BatchRejectedException(ErrorCode.UNKNOWN_FIELD, f,
                        String.format("%s: unknown field (expected: one of app, messages)", f));
            }
        }
        String app = readApp(root.get("app"));
        JsonNode messages = root.get("messages");
        if (messages == null || messages.isNull()) {
            throw new BatchRejectedException(ErrorCode.MISSING_FIELD, "messages",
                    "messages: missing (expected: an array of 1.." + maxItems + " messages)");
        }
        if (!messages.isArray()) {
            throw new BatchRejectedException(ErrorCode.INVALID_FIELD, "messages",
                    String.format("messages: %s (expected: an array)", describe(messages)));
        }
        ArrayNode array = (ArrayNode) messages;
        if (array.isEmpty()) {
            throw new BatchRejectedException(ErrorCode.EMPTY_BATCH, "messages",
                    "messages: 0 items (expected: 1.." + maxItems + ")");
        }
        if (array.size() > maxItems) {
            throw new BatchRejectedException(ErrorCode.TOO_MANY_ITEMS, "messages",
                    String.format("messages: %s items (expected: <= %s)", array.size(), maxItems));
        }
        List<DecodedBatch.Item> items = new ArrayList<>(array.size());
        for (int i = 0; i < array.size(); i++) {
            items.add(ItemDecoder.decode(i, array.get(i)));
        }
        return new DecodedBatch(app, items);
    }

    private JsonNode readRoot(byte[] body) throws BatchRejectedException {
        if (body == null || body.length == 0) {
            throw new BatchRejectedException(ErrorCode.MALFORMED_JSON, null, "body: empty (expected: a JSON object)");
        }
        try {
            JsonNode root = mapper.readTree(body);
            if (root == null || root.isMissingNode()) {
                throw new BatchRejectedException(ErrorCode.MALFORMED_JSON, null, "body: empty (expected: a JSON object)");
            }
            return root;
        } catch (StreamConstraintsException e) {
            throw new BatchRejectedException(ErrorCode.MALFORMED_JSON, null, constraintMessage(e));
        } catch (IOException e) {
            for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
                if (t instanceof StreamConstraintsException) {
                    throw new BatchRejectedException(
                            ErrorCode.MALFORMED_JSON, null, constraintMessage((StreamConstraintsException) t));
                }
            }
            String detail = e instanceof JsonProcessingException
                    ? ((JsonProcessingException) e).getOriginalMessage()
                    : e.getMessage();
            throw new BatchRejectedException(ErrorCode.MALFORMED_JSON, null,
                    "body: malformed JSON (" + firstLine(detail) + ")");
        } catch (NumberFormatException e) {
            // Jackson's BigDecimal parser refuses exponents it cannot represent (e.g. 9e99999...9).
            throw new BatchRejectedException(ErrorCode.MALFORMED_JSON, null,
                    "body: a number out of range (expected: a decimal with an exponent below 10^9)");
        }
    }

    /** Maps Jackson's constraint violation to a message naming the limit that was exceeded. */
    static String constraintMessage(StreamConstraintsException e) {
        String m = String.valueOf(e.getOriginalMessage());
        String lower = m.toLowerCase(java.util.Locale.ROOT);
        if (lower.contains("nesting depth")) {
            return "body: nesting too deep (expected: depth <= " + MAX_NESTING_DEPTH + ")";
        }
        if (lower.contains("number value length")) {
            return "body: number too long (expected: <= " + MAX_NUMBER_LENGTH + " characters)";
        }
        if (lower.contains("string value length")) {
            return "body: string too long (expected: <= " + MAX_STRING_LENGTH + " characters)";
        }
        if (lower.contains("name length")) {
            return "body: field name too long (expected: <= " + MAX_NAME_LENGTH + " characters)";
        }
        if (lower.contains("document length")) {
            return "body: document too long (expected: <= " + MAX_DOCUMENT_LENGTH + " bytes)";
        }
        return "body: exceeds a parser limit (" + firstLine(m) + ")";
    }

    /** The first line of a parser message; it may quote the input, so it is made printable. */
    private static String firstLine(String s) {
        if (s == null) {
            return "unknown error";
        }
        int nl = s.indexOf('\n');
        return ItemDecoder.printable(nl < 0 ? s : s.substring(0, nl), 300);
    }

    private static String readApp(JsonNode app) throws BatchRejectedException {
        if (app == null || app.isNull()) {
            throw new BatchRejectedException(ErrorCode.MISSING_FIELD, "app", "app: missing (expected: a non-blank string)");
        }
        if (!app.isTextual()) {
            throw new BatchRejectedException(ErrorCode.INVALID_FIELD, "app",
                    String.format("app: %s (expected: a non-blank string)", describe(app)));
        }
        String s = app.textValue();
        if (s.isBlank()) {
            throw new BatchRejectedException(ErrorCode.MISSING_FIELD, "app", "app: blank (expected: a non-blank string)");
        }
        if (s.length() > ItemDecoder.MAX_NAME_CHARS || ItemDecoder.hasControlOrBadSurrogate(s)) {
            throw new BatchRejectedException(ErrorCode.INVALID_FIELD, "app", String.format(
                    "app: %s chars or contains control characters (expected: 1..%s chars, no control characters)",
                    s.length(), ItemDecoder.MAX_NAME_CHARS));
        }
        return s;
    }

    static String describe(JsonNode node) {
        return node.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
    }

    /**
     * Encodes a message as compact JSON for the journal. {@link #decodeMessage(byte[])} restores an
     * equal message.
     */
    public byte[] encodeMessage(Message m) {
        return writeJson(m);
    }

    /**
     * Decodes a message written by {@link #encodeMessage(Message)}. This trusts the journal: it
     * enforces the record's invariants but not the full API validation.
     *
     * @throws IOException if {@code json} is not a valid encoded message
     */
    public Message decodeMessage(byte[] json) throws IOException {
        return mapper.readValue(json, Message.class);
    }

    /**
     * Serialises any response object (record, POJO, {@code Map}, {@code JsonNode}) as compact UTF-8
     * JSON via the shared mapper, omitting null properties and null map values.
     *
     * @throws IllegalArgumentException if the value cannot be serialised
     */
    public byte[] writeJson(Object value) {
        try {
            return mapper.writeValueAsBytes(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("value: not serialisable (" + e.getOriginalMessage() + ")", e);
        }
    }

    /**
     * Returns the shared strict mapper, for callers that need trees. It is shared: use it, but never
     * reconfigure it.
     */
    public ObjectMapper mapper() {
        return mapper;
    }
}
