package io.herald.protocol;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

/**
 * Property-based fuzzing of {@link BatchCodec#decode(byte[])} (and the per-item validation of
 * {@code ItemDecoder}): arbitrary bytes, and generated batches mutated at the JSON and the byte
 * level. Whatever the input, decode either returns a batch or throws {@link BatchRejectedException}
 * with a 4xx status; nothing else (no NPE, no StackOverflowError, no Jackson exception) escapes.
 * Every accepted item must give APNs and FCM payloads that are valid UTF-8 JSON carrying the
 * message's text and data unchanged, and every error must be clean text naming its field.
 *
 * <p>Budget: 1,000 + 2,500 + 500 = 4,000 tries, a few seconds. A failure prints jqwik's seed; the
 * next run replays it first (the database lives in {@code target/}).
 */
class BatchCodecFuzzTest {

    private static final int MAX_ITEMS = 10;
    private final BatchCodec codec = BatchCodec.create(MAX_ITEMS);

    // ---- properties -----------------------------------------------------------------------

    @Property(tries = 1000, shrinking = ShrinkingMode.BOUNDED)
    void arbitraryBytesGiveA4xxOrABatch(@ForAll("arbitraryBytes") byte[] body) {
        Statistics.label("outcome").collect(check(body));
    }

    @Property(tries = 2500, shrinking = ShrinkingMode.BOUNDED)
    void mutatedBatchesGiveA4xxOrABatchWithValidPayloads(@ForAll("mutatedBatches") byte[] body) {
        String outcome = check(body);
        Statistics.label("outcome").collect(outcome)
                .coverage(c -> {
                    // The generator must reach item validation and the payload checks, not stop at the parser.
                    c.check("accepted").percentage(p -> p >= 5);
                    c.check("rejected:malformed_json").percentage(p -> p >= 5);
                });
    }

    @Property(tries = 500, shrinking = ShrinkingMode.BOUNDED)
    void validBatchesAreAcceptedWholeAndTheirPayloadsRoundTrip(@ForAll("validBatches") byte[] body) {
        DecodedBatch batch = decodeOrFail(body);
        for (DecodedBatch.Item item : batch.items()) {
            assertThat(item.error()).as("error for a valid item in %s", utf8(body)).isNull();
        }
        checkBatch(batch);
    }

    // ---- regressions found by the fuzzer --------------------------------------------------

    @Example
    void anAbbreviatedValueNeverSplitsASurrogatePairInTheErrorMessage() throws Exception {
        // 31 ASCII chars then an emoji: cutting at 32 chars used to leave a lone high surrogate.
        String value = "p".repeat(31) + "😀😀";
        for (String field : List.of("priority", "channel", "campaign")) {
            byte[] body = utf8("{\"app\":\"a\",\"messages\":[{\"user\":\"u\",\"body\":\"b\",\"" + field + "\":\""
                    + value + "\"}]}");
            ApiError error = codec.decode(body).items().get(0).error();
            assertThat(error).as(field).isNotNull();
            assertThat(ItemDecoder.badCharIndex(error.message())).as(error.message()).isNegative();
        }
    }

    @Example
    void anUnknownFieldNameWithALoneSurrogateOrControlCharacterIsNamedInCleanText() throws Exception {
        byte[] item = utf8("{\"app\":\"a\",\"messages\":[{\"user\":\"u\",\"body\":\"b\",\"x\\ud800\\u0000\\u0007\":1}]}");
        ApiError error = codec.decode(item).items().get(0).error();
        assertThat(error.code()).isEqualTo("unknown_field");
        assertThat(error.field()).startsWith("messages[0].x");
        assertCleanText(error.field());
        assertCleanText(error.message());
        try {
            codec.decode(utf8("{\"app\":\"a\",\"\\udc00\":1,\"messages\":[]}"));
            fail("expected a rejection");
        } catch (BatchRejectedException e) {
            assertThat(e.code()).isEqualTo(ErrorCode.UNKNOWN_FIELD);
            assertCleanText(e.error().field());
            assertCleanText(e.getMessage());
        }
    }

    // ---- the checks -------------------------------------------------------------------------

    /** Decodes {@code body}; returns the outcome's label, failing on anything but a batch or a 4xx rejection. */
    private String check(byte[] body) {
        DecodedBatch batch;
        try {
            batch = codec.decode(body);
        } catch (BatchRejectedException e) {
            assertThat(e.httpStatus()).as(e.getMessage()).isBetween(400, 499);
            assertThat(e.getStackTrace()).isEmpty();
            checkError(e.error(), null);
            return "rejected:" + e.code().wire();
        } catch (Throwable t) {
            throw new AssertionError("decode threw " + t + " (expected: a batch or BatchRejectedException) for "
                    + abbreviate(body), t);
        }
        checkBatch(batch);
        return batch.acceptedCount() > 0 ? "accepted" : "all items rejected";
    }

    private DecodedBatch decodeOrFail(byte[] body) {
        try {
            return codec.decode(body);
        } catch (BatchRejectedException e) {
            throw new AssertionError("a valid batch was rejected: " + e.getMessage() + " for " + utf8(body));
        }
    }

    private void checkBatch(DecodedBatch batch) {
        assertThat(batch.items()).hasSizeBetween(1, MAX_ITEMS);
        assertCleanText(batch.app());
        for (int i = 0; i < batch.items().size(); i++) {
            DecodedBatch.Item item = batch.items().get(i);
            assertThat(item.index()).isEqualTo(i);
            if (item.ok()) {
                checkMessage(item.message());
            } else {
                checkError(item.error(), "messages[" + i + "]");
            }
        }
        // The response body the gateway builds from the errors stays valid JSON.
        byte[] errors = codec.writeJson(batch.items().stream().filter(it -> !it.ok()).map(DecodedBatch.Item::error)
                .toList());
        assertValidUtf8Json(errors);
    }

    private void checkError(ApiError error, String fieldPrefix) {
        ErrorCode code = Arrays.stream(ErrorCode.values()).filter(c -> c.wire().equals(error.code())).findFirst()
                .orElseThrow(() -> new AssertionError("undocumented code " + error.code()));
        assertThat(code.httpStatus()).as(error.toString()).isBetween(400, 499);
        assertThat(error.message()).isNotBlank();
        assertCleanText(error.message());
        if (fieldPrefix != null) {
            assertThat(error.field()).as(error.toString()).startsWith(fieldPrefix);
        }
        if (error.field() != null) {
            assertCleanText(error.field());
            assertThat(error.message()).as("the message names the field").contains(error.field());
        }
        assertValidUtf8Json(codec.writeJson(error));
    }

    /** An accepted message: APNs, FCM and journal encodings are valid and carry exactly its content. */
    private void checkMessage(Message m) {
        byte[] apns = ApnsPayloads.encode(m);
        JsonNode a = assertValidUtf8Json(apns);
        JsonNode alert = a.path("aps").path("alert");
        assertThat(alert.path("title").textValue()).isEqualTo(m.title());
        assertThat(alert.path("body").textValue()).isEqualTo(m.body());
        assertThat(a.path("aps").path("sound").textValue()).isEqualTo(m.sound());
        assertThat(a.path("aps").path("category").textValue()).isEqualTo(m.category());
        if (m.badge() != null) {
            assertThat(a.path("aps").path("badge").intValue()).isEqualTo(m.badge());
        }
        assertThat(a.size()).isEqualTo(1 + (m.data() == null ? 0 : m.data().size()));
        if (m.data() != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                assertSameJson(a.get(e.getKey()), e.getValue());
            }
        }
        int limit = ApnsPayloads.MAX_PAYLOAD_BYTES - ReceiptTokens.PAYLOAD_RESERVE;
        if (ItemDecoder.mayUse(m, "apns")) {
            assertThat(apns.length).as("APNs payload size").isLessThanOrEqualTo(limit);
        }

        byte[] fcm = FcmPayloads.encode(m, "fcm-token-0123456789");
        JsonNode f = assertValidUtf8Json(fcm).path("message");
        boolean dataOnly = m.android() != null && m.android().dataOnly();
        JsonNode text = dataOnly ? f.path("data") : f.path("notification");
        assertThat(text.path("title").textValue()).isEqualTo(m.title());
        assertThat(text.path("body").textValue()).isEqualTo(m.body());
        if (m.data() != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (dataOnly && (e.getKey().equals("title") || e.getKey().equals("body"))) {
                    continue;
                }
                JsonNode sent = f.path("data").get(e.getKey());
                assertThat(sent.isTextual()).as("FCM data values are strings").isTrue();
                if (e.getValue().isTextual()) {
                    assertThat(sent.textValue()).isEqualTo(e.getValue().textValue());
                } else {
                    assertSameJson(readTree(utf8(sent.textValue())), e.getValue());
                }
            }
        }
        if (ItemDecoder.mayUse(m, "fcm")) {
            assertThat(FcmPayloads.payloadSize(m)).as("FCM payload size").isLessThanOrEqualTo(limit);
        }

        byte[] journal = codec.encodeMessage(m);
        assertSameJson(assertValidUtf8Json(journal), codec.mapper().valueToTree(m));
        try {
            assertSameJson(codec.mapper().valueToTree(codec.decodeMessage(journal)), codec.mapper().valueToTree(m));
        } catch (java.io.IOException e) {
            throw new AssertionError("journal encoding does not decode: " + utf8(journal), e);
        }
    }

    /** Strict UTF-8 (no encoded surrogates), strict JSON, and no lone surrogate or NUL in any string or name. */
    private JsonNode assertValidUtf8Json(byte[] json) {
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(json));
        } catch (CharacterCodingException e) {
            throw new AssertionError("not valid UTF-8: " + abbreviate(json), e);
        }
        JsonNode tree = readTree(json);
        assertCleanStrings(tree);
        return tree;
    }

    private JsonNode readTree(byte[] json) {
        try {
            return codec.mapper().readTree(json);
        } catch (java.io.IOException e) {
            throw new AssertionError("not valid JSON: " + abbreviate(json), e);
        }
    }

    private static void assertCleanStrings(JsonNode node) {
        if (node.isTextual()) {
            assertCleanText(node.textValue());
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            assertCleanText(e.getKey());
            assertCleanStrings(e.getValue());
        }
        for (int i = 0; node.isArray() && i < node.size(); i++) {
            assertCleanStrings(node.get(i));
        }
    }

    private static void assertCleanText(String s) {
        assertThat(ItemDecoder.badCharIndex(s)).as("lone surrogate or NUL in %s", s).isNegative();
    }

    /** JSON equality in which numbers compare by value (the parser keeps 1.50 as 1.5 and -0.0 as 0). */
    private static void assertSameJson(JsonNode actual, JsonNode expected) {
        assertThat(sameJson(actual, expected)).as("%s equals %s", actual, expected).isTrue();
    }

    private static boolean sameJson(JsonNode a, JsonNode b) {
        if (a == null || b == null) {
            return a == b;
        }
        if (a.isNumber() && b.isNumber()) {
            return a.decimalValue().compareTo(b.decimalValue()) == 0;
        }
        if (a.getNodeType() != b.getNodeType() || a.size() != b.size()) {
            return false;
        }
        if (a.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = a.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!sameJson(e.getValue(), b.get(e.getKey()))) {
                    return false;
                }
            }
            return true;
        }
        if (a.isArray()) {
            for (int i = 0; i < a.size(); i++) {
                if (!sameJson(a.get(i), b.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return a.equals(b);
    }

    // ---- generators -------------------------------------------------------------------------

    private static final String[] FIELDS = {
        "id", "title", "body", "data", "priority", "ttlSeconds", "collapseId", "sound", "badge", "category",
        "channel", "fallback", "smsBody", "android", "campaign", "variant", "trackLinks"};

    /** Marks where {@link #badUtf8} sequences go after encoding (a private-use char nobody else generates). */
    private static final char BAD_UTF8_MARK = '\uE000';
    private static final byte[] MARK_BYTES = String.valueOf(BAD_UTF8_MARK).getBytes(StandardCharsets.UTF_8);

    /** Invalid or dubious UTF-8: stray continuation, overlong NUL and '/', CESU-8 surrogate, > U+10FFFF, truncated. */
    private static final byte[][] BAD_UTF8 = {
        {(byte) 0x80}, {(byte) 0xFF}, {(byte) 0xC3, 0x28}, {(byte) 0xC0, (byte) 0x80}, {(byte) 0xC0, (byte) 0xAF},
        {(byte) 0xE0, (byte) 0x80, (byte) 0xA2}, {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
        {(byte) 0xED, (byte) 0xBF, (byte) 0xBF}, {(byte) 0xF4, (byte) 0x90, (byte) 0x80, (byte) 0x80},
        {(byte) 0xE2, (byte) 0x82}, {(byte) 0xF0, (byte) 0x9F, (byte) 0x98}, {(byte) 0xFE, (byte) 0xFF},
        {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF},
    };

    private static final String[] SPECIAL_TEXT = {
        "😀", "👨‍👩‍👧‍👦", "🇬🇧", "שלום", "مرحبا", "\u202Eevil\u202C", "\u200F", "\u200B", "\uFEFF", "e\u0301",
        "\u0000", "\uD800", "\uDC00", "\uDBFF", "\uD83D", "\uDE00", "\u0007", "\n", "\r\n", "\t", "\"", "\\", "/",
        "\u2028", "\u2029", "\uFFFF", "\uFFFE", "𝕳𝖊𝖑𝖑𝖔", "ﷺ", "\u00A0", "%s", "${x}", "<script>", String.valueOf(BAD_UTF8_MARK),
    };

    private static final String[] NASTY_NUMBERS = {
        "0", "-0", "-0.0", "1.50", "1e2", "1E-7", "1e400", "-1e400", "1e999999999", "2147483647", "2147483648",
        "-2147483649", "9223372036854775808", "99999999999999999999999999999999", "999999999999999999999999999999999",
        "0.0000000000000000000000000000001", "1" + "0".repeat(40), "00", "01", "1.", ".5", "+1", "NaN", "Infinity",
        "0x10", "1e", "-",
    };

    /** Arbitraries are built once per test instance: building them per sample was most of the run time. */
    private final Map<String, Arbitrary<String>> built = new java.util.HashMap<>();

    private Arbitrary<String> memo(String key, java.util.function.Supplier<Arbitrary<String>> build) {
        Arbitrary<String> a = built.get(key);
        if (a == null) {
            a = build.get();
            built.put(key, a);
        }
        return a;
    }

    @Provide
    Arbitrary<byte[]> arbitraryBytes() {
        return Arbitraries.frequencyOf(
                Tuple.of(3, Arbitraries.bytes().array(byte[].class).ofMaxSize(512)),
                // Printable JSON-ish soup gets further into the parser than random bytes.
                Tuple.of(2, Arbitraries.strings().withChars("{}[]\":,0123456789.eE+-tfnrulase \\u").ofMaxLength(256)
                        .map(BatchCodecFuzzTest::utf8)),
                Tuple.of(1, Arbitraries.strings().all().ofMaxLength(128).map(BatchCodecFuzzTest::utf8)));
    }

    @Provide
    Arbitrary<byte[]> mutatedBatches() {
        Arbitrary<List<Mutation>> mutations = Arbitraries.frequencyOf(
                Tuple.of(3, Arbitraries.just(List.<Mutation>of())),
                Tuple.of(2, mutation().list().ofMinSize(1).ofMaxSize(3)));
        return Combinators.combine(batchText(), Arbitraries.integers().between(0, BAD_UTF8.length - 1), mutations)
                .as((text, bad, ms) -> {
                    byte[] bytes = replaceMarks(utf8(text), BAD_UTF8[bad]);
                    for (Mutation m : ms) {
                        bytes = m.apply(bytes);
                    }
                    return bytes;
                });
    }

    @Provide
    Arbitrary<byte[]> validBatches() {
        return validItem().list().ofMinSize(1).ofMaxSize(MAX_ITEMS)
                .map(items -> utf8("{\"app\":\"demo\",\"messages\":[" + String.join(",", items) + "]}"));
    }

    /** A batch as JSON text: mostly well-formed, with wrong types, unknown fields and nasty text mixed in. */
    private Arbitrary<String> batchText() {
        Arbitrary<String> app = Arbitraries.frequencyOf(
                Tuple.of(8, Arbitraries.just(quote("demo"))),
                Tuple.of(2, jsonString(text())),
                Tuple.of(1, anyValue()));
        Arbitrary<String> items = item().list().ofMinSize(0).ofMaxSize(MAX_ITEMS + 2)
                .map(list -> "[" + String.join(",", list) + "]");
        Arbitrary<String> messages = Arbitraries.frequencyOf(Tuple.of(12, items), Tuple.of(1, anyValue()));
        Arbitrary<String> extra = Arbitraries.frequencyOf(
                Tuple.of(12, Arbitraries.just("")),
                Tuple.of(1, Combinators.combine(fieldName(), anyValue()).as((n, v) -> "," + n + ":" + v)),
                Tuple.of(1, Arbitraries.just(",\"app\":\"demo\"")));
        Arbitrary<String> root = Combinators.combine(app, messages, extra)
                .as((a, m, x) -> "{\"app\":" + a + ",\"messages\":" + m + x + "}");
        return Arbitraries.frequencyOf(Tuple.of(20, root), Tuple.of(1, anyValue()));
    }

    private Arbitrary<String> item() {
        return memo("item", () -> {
            Arbitrary<String> target = Arbitraries.frequencyOf(
                    Tuple.of(6, jsonString(text()).map(v -> "\"user\":" + v)),
                    Tuple.of(3, apnsToken().map(v -> "\"apnsToken\":" + v)),
                    Tuple.of(3, fcmToken().map(v -> "\"fcmToken\":" + v)),
                    Tuple.of(1, Arbitraries.just("\"user\":\"u\",\"apnsToken\":\"00112233445566778899\"")),
                    Tuple.of(1, anyValue().map(v -> "\"user\":" + v)));
            List<Arbitrary<String>> optional = new ArrayList<>();
            for (String n : FIELDS) {
                optional.add(fieldValue(n).map(v -> quote(n) + ":" + v).injectNull(0.55));
            }
            Arbitrary<List<String>> fields = Combinators.combine(optional)
                    .as(l -> l.stream().filter(java.util.Objects::nonNull).toList());
            Arbitrary<String> extra = Arbitraries.frequencyOf(
                    Tuple.of(16, Arbitraries.just("")),
                    Tuple.of(1, Combinators.combine(fieldName(), anyValue()).as((n, v) -> "," + n + ":" + v)),
                    Tuple.of(1, Arbitraries.of(",\"title\":\"dup\"", ",\"state\":\"delivered\"", ",\"app\":\"other\"",
                            ",\"reserved\":true", ",\"deferUntil\":1")));
            Arbitrary<String> object = Combinators.combine(target, fields, extra).as((t, fs, x) -> {
                List<String> all = new ArrayList<>();
                all.add(t);
                all.addAll(fs);
                if (all.stream().noneMatch(s -> s.startsWith("\"title\"") || s.startsWith("\"body\""))) {
                    all.add("\"body\":\"b\"");
                }
                return "{" + String.join(",", all) + x + "}";
            });
            return Arbitraries.frequencyOf(Tuple.of(20, object), Tuple.of(1, anyValue()));
        });
    }

    /** Mostly a valid value for the field, sometimes the wrong type or null. */
    private Arbitrary<String> fieldValue(String name) {
        return memo("field:" + name, () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(24, validValue(name)),
                    Tuple.of(1, anyValue()),
                    Tuple.of(1, Arbitraries.just("null")));
        });
    }

    private Arbitrary<String> validValue(String name) {
        return switch (name) {
            case "id", "sound", "category", "smsBody" -> jsonString(text());
            case "title", "body" -> jsonString(Arbitraries.frequencyOf(Tuple.of(12, text()), Tuple.of(1, longText())));
            case "data" -> dataObject(3);
            case "priority" -> Arbitraries.frequencyOf(Tuple.of(6, Arbitraries.of("\"high\"", "\"normal\"")),
                    Tuple.of(1, jsonString(text())));
            case "ttlSeconds", "badge" -> Arbitraries.frequencyOf(
                    Tuple.of(6, Arbitraries.integers().between(-5, 3_000_000).map(String::valueOf)),
                    Tuple.of(1, Arbitraries.of(NASTY_NUMBERS)));
            case "collapseId" -> jsonString(Arbitraries.frequencyOf(Tuple.of(4, text()),
                    Tuple.of(1, Arbitraries.strings().alpha().ofMinLength(60).ofMaxLength(70))));
            case "channel" -> Arbitraries.frequencyOf(Tuple.of(8, channel()), Tuple.of(1, jsonString(text())));
            case "fallback" -> Arbitraries.frequencyOf(
                    Tuple.of(6, channel().list().ofMaxSize(5).map(l -> "[" + String.join(",", l) + "]")),
                    Tuple.of(1, anyValue()));
            case "android" -> android();
            case "campaign", "variant" -> Arbitraries.frequencyOf(
                    Tuple.of(6, Arbitraries.strings().withChars("abcXYZ019._:-").ofMinLength(1).ofMaxLength(64)
                            .map(BatchCodecFuzzTest::quote)),
                    Tuple.of(1, jsonString(text())));
            case "trackLinks" -> Arbitraries.of("true", "false", "\"true\"", "1");
            default -> throw new IllegalArgumentException(name);
        };
    }

    private Arbitrary<String> channel() {
        return memo("channel", () -> {
            return Arbitraries.of("\"auto\"", "\"push\"", "\"apns\"", "\"fcm\"", "\"sms\"", "\"APNS\"", "\"\"");
        });
    }

    private Arbitrary<String> android() {
        return memo("android", () -> {
            Arbitrary<String> type = Arbitraries.of("", "\"type\":\"data\",", "\"type\":\"notification\",", "\"type\":\"x\",");
            Arbitrary<String> image = Arbitraries.of("", "\"image\":\"https://x.example/a.png\",", "\"image\":\"http://x\",");
            Arbitrary<String> rest = Combinators.combine(jsonString(text()), jsonString(text()), jsonString(text()))
                    .as((a, b, c) -> "\"collapseKey\":" + a + ",\"channelId\":" + b + ",\"clickAction\":" + c);
            return Combinators.combine(type, image, rest).as((t, i, r) -> "{" + t + i + r + "}");
        });
    }

    private Arbitrary<String> apnsToken() {
        return memo("apnsToken", () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(6, Arbitraries.strings().withChars("0123456789abcdefABCDEF").ofMinLength(16).ofMaxLength(80)
                            .map(BatchCodecFuzzTest::quote)),
                    Tuple.of(1, jsonString(text())));
        });
    }

    private Arbitrary<String> fcmToken() {
        return memo("fcmToken", () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(6, Arbitraries.strings().withChars("abcXYZ0189_-:.").ofMinLength(16).ofMaxLength(80)
                            .map(BatchCodecFuzzTest::quote)),
                    Tuple.of(1, jsonString(text())));
        });
    }

    /** A data object, nested up to {@code depth}; sometimes far deeper than the parser allows. */
    private Arbitrary<String> dataObject(int depth) {
        return memo("data" + depth, () -> {
            Arbitrary<String> leaf = Arbitraries.frequencyOf(
                    Tuple.of(4, jsonString(text())),
                    Tuple.of(2, Arbitraries.of(NASTY_NUMBERS)),
                    Tuple.of(1, Arbitraries.of("true", "false", "null", "[]", "{}")));
            Arbitrary<String> value = depth <= 0 ? leaf : Arbitraries.frequencyOf(
                    Tuple.of(6, leaf),
                    Tuple.of(1, Arbitraries.lazy(() -> dataObject(depth - 1))),
                    Tuple.of(1, Arbitraries.lazy(() -> dataObject(depth - 1)).list().ofMaxSize(3)
                            .map(l -> "[" + String.join(",", l) + "]")));
            Arbitrary<String> entries = Combinators.combine(dataKey(), value).as((k, v) -> k + ":" + v)
                    .list().ofMaxSize(4).map(l -> "{" + String.join(",", l) + "}");
            Arbitrary<String> deep = Arbitraries.integers().between(20, 80)
                    .map(n -> "{\"d\":" + "[".repeat(n) + "]".repeat(n) + "}");
            return depth < 3 ? entries : Arbitraries.frequencyOf(Tuple.of(12, entries), Tuple.of(1, deep));
        });
    }

    private Arbitrary<String> dataKey() {
        return memo("dataKey", () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(6, Arbitraries.strings().alpha().ofMinLength(1).ofMaxLength(8).map(BatchCodecFuzzTest::quote)),
                    Tuple.of(1, Arbitraries.of("\"aps\"", "\"title\"", "\"body\"", "\"\"", "\"herald\"")),
                    Tuple.of(2, fieldName()));
        });
    }

    /** A property name: ordinary, nasty text, or longer than the parser's 256-char limit. */
    private Arbitrary<String> fieldName() {
        return memo("fieldName", () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(4, jsonString(text())),
                    Tuple.of(1, Arbitraries.integers().between(250, 300).map(n -> quote("k".repeat(n)))));
        });
    }

    /** Any JSON value, including nasty numbers, deep nesting and big strings (sometimes not quite JSON). */
    private Arbitrary<String> anyValue() {
        return memo("anyValue", () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(3, jsonString(text())),
                    Tuple.of(2, Arbitraries.of(NASTY_NUMBERS)),
                    Tuple.of(2, Arbitraries.of("true", "false", "null", "[]", "{}", "[1,\"a\",null]", "{\"a\":1}")),
                    Tuple.of(1, Arbitraries.integers().between(1, 200).map(n -> "[".repeat(n) + "]".repeat(n))),
                    Tuple.of(1, Arbitraries.integers().between(1, 60).map(n -> "{\"a\":".repeat(n) + "1" + "}".repeat(n))),
                    Tuple.of(1, jsonString(longText())));
        });
    }

    /** Short text: plain, any char at all (controls, lone surrogates), and hand-picked trouble. */
    private Arbitrary<String> text() {
        return memo("text", () -> {
            return Arbitraries.frequencyOf(
                    Tuple.of(6, Arbitraries.strings().alpha().numeric().withChars(" .-_").ofMaxLength(24)),
                    Tuple.of(2, Arbitraries.strings().all().ofMaxLength(12)),
                    Tuple.of(4, Arbitraries.of(SPECIAL_TEXT).list().ofMinSize(1).ofMaxSize(5).map(l -> String.join("", l))),
                    Tuple.of(2, Combinators.combine(Arbitraries.strings().alpha().ofMaxLength(40), Arbitraries.of(SPECIAL_TEXT))
                            .as((a, b) -> a + b + a)));
        });
    }

    /** Text around the payload limit and beyond, in 1-, 2-, 3- and 4-byte characters. */
    private Arbitrary<String> longText() {
        return memo("longText", () -> {
            return Combinators.combine(Arbitraries.of("x", "é", "ש", "😀"), Arbitraries.integers().between(900, 12_000))
                    .as((c, n) -> c.repeat(n / c.length() / Math.max(1, c.getBytes(StandardCharsets.UTF_8).length)));
        });
    }

    /** Wraps text as a JSON string literal; surrogate pairs are sometimes escaped, lone ones always. */
    private Arbitrary<String> jsonString(Arbitrary<String> text) {
        return Combinators.combine(text, Arbitraries.of(false, true)).as(BatchCodecFuzzTest::jsonString);
    }

    private static String jsonString(String s, boolean escapeAll) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean pair = Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || (Character.isSurrogate(c) && !pair) || (escapeAll && c > 0x7E && c != BAD_UTF8_MARK)) {
                appendEscape(b, c);
            } else if (pair && escapeAll) {
                appendEscape(b, c);
                appendEscape(b, s.charAt(++i));
            } else if (pair) {
                b.append(c).append(s.charAt(++i));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    private static void appendEscape(StringBuilder b, char c) {
        String hex = Integer.toHexString(c);
        b.append("\\u").append("0000", hex.length(), 4).append(hex);
    }

    private static String quote(String s) {
        return jsonString(s, false);
    }

    /** Byte-level damage to an encoded batch. */
    record Mutation(int kind, int position, int length, byte value) {
        byte[] apply(byte[] in) {
            if (in.length == 0) {
                return in;
            }
            int at = Math.floorMod(position, in.length);
            int len = Math.min(length, in.length - at);
            switch (kind) {
                case 0: // truncate
                    return Arrays.copyOf(in, at);
                case 1: { // flip a byte
                    byte[] out = in.clone();
                    out[at] ^= value == 0 ? 1 : value;
                    return out;
                }
                case 2: { // delete a range
                    byte[] out = new byte[in.length - len];
                    System.arraycopy(in, 0, out, 0, at);
                    System.arraycopy(in, at + len, out, at, in.length - at - len);
                    return out;
                }
                case 3: { // duplicate a range (duplicate keys, doubled brackets)
                    byte[] out = new byte[in.length + len];
                    System.arraycopy(in, 0, out, 0, at + len);
                    System.arraycopy(in, at, out, at + len, in.length - at);
                    return out;
                }
                default: { // insert one byte (a bracket, a quote, a NUL, a high byte)
                    byte[] out = new byte[in.length + 1];
                    System.arraycopy(in, 0, out, 0, at);
                    out[at] = value;
                    System.arraycopy(in, at, out, at + 1, in.length - at);
                    return out;
                }
            }
        }
    }

    private Arbitrary<Mutation> mutation() {
        return Combinators.combine(Arbitraries.integers().between(0, 4), Arbitraries.integers(),
                        Arbitraries.integers().between(1, 64),
                        Arbitraries.frequencyOf(Tuple.of(2, Arbitraries.of((byte) '[', (byte) '{', (byte) '"',
                                (byte) ',', (byte) ':', (byte) '\\', (byte) 0, (byte) 0xC3, (byte) 0xFF)),
                                Tuple.of(1, Arbitraries.bytes())))
                .as(Mutation::new);
    }

    /** A valid item: every field optional but well-formed, text of any valid Unicode, data with any JSON. */
    private Arbitrary<String> validItem() {
        Arbitrary<String> cleanText = Arbitraries.frequencyOf(
                        Tuple.of(4, Arbitraries.strings().all().ofMaxLength(40)),
                        Tuple.of(2, Arbitraries.of("😀", "👨‍👩‍👧‍👦", "שלום", "مرحبا", "\u202Eevil\u202C", "e\u0301",
                                "\u2028", "\"\\/", "\t\n\u0007", "\uFEFF", "\uFFFF").list().ofMaxSize(6)
                                .map(l -> String.join("", l))))
                .map(s -> ItemDecoder.badCharIndex(s) < 0 ? s : s.replace('\u0000', '?').replaceAll("\\p{Cs}", "?"));
        Arbitrary<String> body = cleanText.map(s -> "b" + s);
        Arbitrary<String> leaf = Arbitraries.frequencyOf(
                Tuple.of(3, jsonString(cleanText)),
                Tuple.of(2, Arbitraries.of("0", "-0", "-0.0", "1.50", "1e2", "1E-7", "1e400", "2147483648",
                        "9223372036854775808", "99999999999999999999999999999999", "true", "false", "null", "[]", "{}")));
        Arbitrary<String> dataKey = Arbitraries.frequencyOf(
                Tuple.of(3, Arbitraries.strings().alpha().ofMinLength(1).ofMaxLength(8)),
                Tuple.of(1, cleanText.filter(s -> !s.equals("aps"))));
        Arbitrary<String> dataValue = Arbitraries.oneOf(leaf,
                leaf.list().ofMaxSize(3).map(l -> "[" + String.join(",", l) + "]"),
                Combinators.combine(dataKey, leaf).as((k, v) -> "{" + quote(k) + ":" + v + "}"));
        Arbitrary<String> data = Arbitraries.maps(dataKey, dataValue).ofMaxSize(4).map(map -> {
            List<String> entries = new ArrayList<>();
            map.forEach((k, v) -> entries.add(quote(k) + ":" + v));
            return "{" + String.join(",", entries) + "}";
        });
        Arbitrary<String> options = Combinators.combine(
                Arbitraries.of("", ",\"priority\":\"normal\"", ",\"ttlSeconds\":0", ",\"badge\":99999",
                        ",\"collapseId\":\"" + "c".repeat(64) + "\"", ",\"collapseId\":\"😀😀\""),
                Arbitraries.of("", ",\"channel\":\"apns\"", ",\"channel\":\"fcm\"", ",\"channel\":\"sms\"",
                        ",\"channel\":\"push\",\"fallback\":[\"sms\"]", ",\"smsBody\":\"hi\""),
                Arbitraries.of("", ",\"android\":{\"type\":\"data\"}", ",\"android\":{\"channelId\":\"c\","
                        + "\"image\":\"https://x.example/i.png\",\"clickAction\":\"OPEN\",\"collapseKey\":\"k\"}"),
                Arbitraries.of("", ",\"campaign\":\"spring\"", ",\"campaign\":\"c.1\",\"variant\":\"A\"",
                        ",\"trackLinks\":true"))
                .as((a, b, c, d) -> a + b + c + d);
        return Combinators.combine(Arbitraries.strings().alpha().numeric().ofMinLength(1).ofMaxLength(20),
                        cleanText, body, data.injectNull(0.3), jsonString(cleanText).injectNull(0.5), options)
                .as((user, title, b, d, sound, opts) -> "{\"user\":" + quote(user) + ",\"title\":" + quote(title)
                        + ",\"body\":" + quote(b) + (d == null ? "" : ",\"data\":" + d)
                        + (sound == null ? "" : ",\"sound\":" + sound) + opts + "}");
    }

    // ---- helpers -------------------------------------------------------------------------

    private static byte[] replaceMarks(byte[] in, byte[] bad) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(in.length);
        for (int i = 0; i < in.length; i++) {
            if (i + MARK_BYTES.length <= in.length
                    && Arrays.equals(in, i, i + MARK_BYTES.length, MARK_BYTES, 0, MARK_BYTES.length)) {
                out.writeBytes(bad);
                i += MARK_BYTES.length - 1;
            } else {
                out.write(in[i]);
            }
        }
        return out.toByteArray();
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String utf8(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    private static String abbreviate(byte[] b) {
        String s = utf8(b);
        return s.length() <= 400 ? s : s.substring(0, 400) + "… (" + b.length + " bytes)";
    }
}
