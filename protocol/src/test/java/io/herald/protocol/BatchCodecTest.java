package io.herald.protocol;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BatchCodecTest {

    private static final String TOKEN = "ABCDEF0123456789abcdef0123456789";
    private final BatchCodec codec = BatchCodec.create(10);

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** A batch of {@code items} (JSON fragments) for app "demo". Uses ' for " to keep tests readable. */
    private static byte[] batch(String... items) {
        return utf8("{\"app\":\"demo\",\"messages\":[" + String.join(",", items).replace('\'', '"') + "]}");
    }

    private DecodedBatch.Item single(String item) throws BatchRejectedException {
        DecodedBatch b = codec.decode(batch(item, "{'user':'ok','body':'good'}"));
        assertThat(b.items()).hasSize(2);
        assertThat(b.items().get(1).ok()).as("the good item stays ok").isTrue();
        return b.items().get(0);
    }

    private void assertItemError(String item, ErrorCode code, String field) throws BatchRejectedException {
        DecodedBatch.Item it = single(item);
        assertThat(it.ok()).as("item %s", item).isFalse();
        assertThat(it.message()).isNull();
        assertThat(it.error().code()).as("code for %s: %s", item, it.error().message()).isEqualTo(code.wire());
        assertThat(it.error().field()).as("field for %s", item).isEqualTo(field);
        assertThat(it.error().message()).contains(field);
    }

    private Message accepted(String item) throws BatchRejectedException {
        DecodedBatch.Item it = single(item);
        assertThat(it.error()).as("error for %s", item).isNull();
        return it.message();
    }

    private void assertRejected(byte[] body, ErrorCode code, String field) {
        assertThatThrownBy(() -> codec.decode(body))
                .isInstanceOfSatisfying(BatchRejectedException.class, e -> {
                    assertThat(e.code()).isEqualTo(code);
                    assertThat(e.httpStatus()).isEqualTo(code.httpStatus());
                    assertThat(e.error().code()).isEqualTo(code.wire());
                    assertThat(e.error().field()).isEqualTo(field);
                    assertThat(e.getStackTrace()).isEmpty();
                });
    }

    @Test
    void decodesValidBatchWithAllFieldsAndDefaults() throws Exception {
        DecodedBatch b = codec.decode(batch(
                "{'id':'c-1','apnsToken':'" + TOKEN + "','title':'Hi','body':'There','data':{'k':[1,2.50,{'x':null}]},"
                        + "'priority':'normal','ttlSeconds':60,'collapseId':'c','sound':'ping.aiff','badge':3,'category':'cat'}",
                "{'user':'alice','body':'only body'}"));

        assertThat(b.app()).isEqualTo("demo");
        assertThat(b.acceptedCount()).isEqualTo(2);
        assertThat(b.rejectedCount()).isZero();
        Message full = b.items().get(0).message();
        assertThat(b.items().get(0).index()).isZero();
        assertThat(full.id()).isEqualTo("c-1");
        assertThat(full.apnsToken()).isEqualTo(TOKEN.toLowerCase());
        assertThat(full.user()).isNull();
        assertThat(full.priority()).isEqualTo(Priority.NORMAL);
        assertThat(full.ttlSeconds()).isEqualTo(60);
        assertThat(full.collapseId()).isEqualTo("c");
        assertThat(full.sound()).isEqualTo("ping.aiff");
        assertThat(full.badge()).isEqualTo(3);
        assertThat(full.category()).isEqualTo("cat");
        assertThat(full.data().get("k").size()).isEqualTo(3);

        Message minimal = b.items().get(1).message();
        assertThat(b.items().get(1).index()).isEqualTo(1);
        assertThat(minimal.user()).isEqualTo("alice");
        assertThat(minimal.title()).isNull();
        assertThat(minimal.priority()).isEqualTo(Priority.HIGH);
        assertThat(minimal.ttlSeconds()).isEqualTo(86_400);
        assertThat(minimal.badge()).isNull();
        assertThat(minimal.data()).isNull();
    }

    @Test
    void journalEncodingRoundTripsToAnEqualMessage() throws Exception {
        DecodedBatch b = codec.decode(batch(
                "{'id':'c-1','apnsToken':'" + TOKEN + "','title':'Hi 😀','body':'שלום','data':{'k':[1,2.50,{'x':null}],'n':1e400},"
                        + "'priority':'normal','ttlSeconds':0,'collapseId':'c','sound':'s','badge':0,'category':'cat'}",
                "{'user':'alice','body':'b'}"));
        for (DecodedBatch.Item item : b.items()) {
            Message m = item.message();
            byte[] json = codec.encodeMessage(m);
            assertThat(codec.decodeMessage(json)).isEqualTo(m);
            assertThat(new String(json, StandardCharsets.UTF_8)).doesNotContain("null,\"").doesNotContain("Infinity");
        }
        assertThat(new String(codec.encodeMessage(b.items().get(1).message()), StandardCharsets.UTF_8))
                .isEqualTo("{\"user\":\"alice\",\"body\":\"b\",\"priority\":\"high\",\"ttlSeconds\":86400,\"channel\":\"auto\"}");
    }

    @Test
    void writeJsonOmitsNullsAndSupportsRecords() {
        assertThat(new String(codec.writeJson(ApiError.of(ErrorCode.INTERNAL, null, "boom")), StandardCharsets.UTF_8))
                .isEqualTo("{\"code\":\"internal\",\"message\":\"boom\"}");
        Map<String, Object> map = new LinkedHashMap<>();
        map.put("a", 1);
        map.put("b", null);
        assertThat(new String(codec.writeJson(map), StandardCharsets.UTF_8)).isEqualTo("{\"a\":1}");
        assertThat(codec.mapper()).isSameAs(codec.mapper());
        assertThat(codec.maxItems()).isEqualTo(10);
    }

    @Test
    void rejectsNonPositiveMaxItems() {
        assertThatThrownBy(() -> BatchCodec.create(0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("maxItems: 0 (expected: >= 1)");
    }

    // --- whole-batch errors ---

    @Test
    void rejectsMalformedJson() {
        assertRejected(utf8("{\"app\":"), ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("not json"), ErrorCode.MALFORMED_JSON, null);
        assertRejected(new byte[0], ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("   "), ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("[1,2]"), ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("\"str\""), ErrorCode.MALFORMED_JSON, null);
        // Found by the fuzz test: an exponent Jackson's BigDecimal parser refuses threw out of decode.
        assertRejected(utf8("9e999999999999999999999999999999"), ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("{'app':'demo','messages':[{'user':'u','body':'b','data':{'n':9e999999999999999999999999999999}}]}"
                .replace('\'', '"')), ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("{'app':'demo','messages':[{'user':'u','body':'b'}]} trailing".replace('\'', '"')),
                ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("{'app':'demo','messages':[{'user':'u','body':'b'}]}{}".replace('\'', '"')),
                ErrorCode.MALFORMED_JSON, null);
        assertRejected(utf8("{'app':'demo','messages':[{'user':'u','body':NaN}]}".replace('\'', '"')),
                ErrorCode.MALFORMED_JSON, null);
    }

    @Test
    void rejectsDeepNestingAsMalformedWithoutStackOverflow() {
        byte[] deep = utf8("[".repeat(10_000));
        assertThatThrownBy(() -> codec.decode(deep))
                .isInstanceOfSatisfying(BatchRejectedException.class, e -> {
                    assertThat(e.code()).isEqualTo(ErrorCode.MALFORMED_JSON);
                    assertThat(e.getMessage()).contains("nesting").contains("32");
                });
        String nestedInData = "{'user':'u','body':'b','data':{'a':" + "[".repeat(100) + "]".repeat(100) + "}}";
        assertRejected(batch(nestedInData), ErrorCode.MALFORMED_JSON, null);
    }

    @Test
    void rejectsHugeNumberAsMalformedNamingTheLimit() {
        byte[] body = batch("{'user':'u','body':'b','badge':" + "9".repeat(1000) + "}");
        assertThatThrownBy(() -> codec.decode(body))
                .isInstanceOfSatisfying(BatchRejectedException.class, e -> {
                    assertThat(e.code()).isEqualTo(ErrorCode.MALFORMED_JSON);
                    assertThat(e.getMessage()).contains("number").contains("32");
                });
    }

    @Test
    void rejectsStringOverTheDocumentLimitAsMalformed() {
        byte[] body = batch("{'user':'u','body':'" + "x".repeat(1_000_001) + "'}");
        assertThatThrownBy(() -> codec.decode(body))
                .isInstanceOfSatisfying(BatchRejectedException.class, e -> {
                    assertThat(e.code()).isEqualTo(ErrorCode.MALFORMED_JSON);
                    assertThat(e.getMessage()).contains("string").contains("1000000");
                });
    }

    @Test
    void rejectsOverlongFieldNameAsMalformed() {
        byte[] body = batch("{'user':'u','body':'b','data':{'" + "k".repeat(300) + "':1}}");
        assertThatThrownBy(() -> codec.decode(body))
                .isInstanceOfSatisfying(BatchRejectedException.class, e -> {
                    assertThat(e.code()).isEqualTo(ErrorCode.MALFORMED_JSON);
                    assertThat(e.getMessage()).contains("name").contains("256");
                });
    }

    @Test
    void rejectsDuplicateKeysAsMalformed() {
        assertRejected(utf8("{\"app\":\"a\",\"app\":\"b\",\"messages\":[{\"user\":\"u\",\"body\":\"b\"}]}"),
                ErrorCode.MALFORMED_JSON, null);
        assertRejected(batch("{'user':'u','body':'b','body':'c'}"), ErrorCode.MALFORMED_JSON, null);
    }

    @Test
    void rejectsMissingBlankOrNonStringApp() {
        assertRejected(utf8("{\"messages\":[{\"user\":\"u\",\"body\":\"b\"}]}"), ErrorCode.MISSING_FIELD, "app");
        assertRejected(utf8("{\"app\":\" \",\"messages\":[{\"user\":\"u\",\"body\":\"b\"}]}"), ErrorCode.MISSING_FIELD, "app");
        assertRejected(utf8("{\"app\":7,\"messages\":[{\"user\":\"u\",\"body\":\"b\"}]}"), ErrorCode.INVALID_FIELD, "app");
    }

    @Test
    void rejectsMissingOrNonArrayMessages() {
        assertRejected(utf8("{\"app\":\"demo\"}"), ErrorCode.MISSING_FIELD, "messages");
        assertRejected(utf8("{\"app\":\"demo\",\"messages\":{}}"), ErrorCode.INVALID_FIELD, "messages");
    }

    @Test
    void rejectsEmptyBatch() {
        assertRejected(utf8("{\"app\":\"demo\",\"messages\":[]}"), ErrorCode.EMPTY_BATCH, "messages");
    }

    @Test
    void rejectsTooManyItemsNamingTheLimit() {
        String item = "{'user':'u','body':'b'}";
        String[] items = new String[11];
        java.util.Arrays.fill(items, item);
        assertThatThrownBy(() -> codec.decode(batch(items)))
                .isInstanceOfSatisfying(BatchRejectedException.class, e -> {
                    assertThat(e.code()).isEqualTo(ErrorCode.TOO_MANY_ITEMS);
                    assertThat(e.httpStatus()).isEqualTo(413);
                    assertThat(e.error().field()).isEqualTo("messages");
                    assertThat(e.getMessage()).isEqualTo("messages: 11 items (expected: <= 10)");
                });
        String[] ten = new String[10];
        java.util.Arrays.fill(ten, item);
        assertThatCode(() -> codec.decode(batch(ten))).doesNotThrowAnyException();
    }

    @Test
    void rejectsUnknownTopLevelField() {
        assertRejected(utf8("{\"app\":\"demo\",\"extra\":1,\"messages\":[{\"user\":\"u\",\"body\":\"b\"}]}"),
                ErrorCode.UNKNOWN_FIELD, "extra");
    }

    // --- per-item errors ---

    @Test
    void rejectsNonObjectItemButKeepsTheRest() throws Exception {
        DecodedBatch b = codec.decode(batch("{'user':'u','body':'b'}", "42", "{'user':'v','body':'c'}"));
        assertThat(b.acceptedCount()).isEqualTo(2);
        assertThat(b.rejectedCount()).isEqualTo(1);
        assertThat(b.items().get(1).error()).isEqualTo(
                ApiError.of(ErrorCode.INVALID_FIELD, "messages[1]", "messages[1]: number (expected: an object)"));
        assertThat(b.items().get(2).index()).isEqualTo(2);
    }

    @Test
    void rejectsUnknownItemField() throws Exception {
        assertItemError("{'user':'u','body':'b','foo':1}", ErrorCode.UNKNOWN_FIELD, "messages[0].foo");
    }

    @Test
    void fieldNamesCarryTheItemIndex() throws Exception {
        DecodedBatch b = codec.decode(batch("{'user':'u','body':'b'}", "{'user':'u','body':'b'}",
                "{'user':'u','body':'b'}", "{'user':'u','title':5}"));
        assertThat(b.items().get(3).error().field()).isEqualTo("messages[3].title");
    }

    @Test
    void requiresExactlyOneOfUserAndApnsToken() throws Exception {
        assertItemError("{'body':'b'}", ErrorCode.MISSING_FIELD, "messages[0].user");
        assertItemError("{'user':'u','apnsToken':'" + TOKEN + "','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].user");
    }

    @Test
    void validatesUser() throws Exception {
        assertItemError("{'user':'','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].user");
        assertItemError("{'user':'" + "u".repeat(257) + "','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].user");
        assertItemError("{'user':'a\\u0007b','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].user");
        assertItemError("{'user':5,'body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].user");
        assertThat(accepted("{'user':'" + "u".repeat(256) + "','body':'b'}").user()).hasSize(256);
    }

    @Test
    void validatesAndLowercasesApnsToken() throws Exception {
        assertItemError("{'apnsToken':'xyz0123456789abcd','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].apnsToken");
        assertItemError("{'apnsToken':'0123456789abcde','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].apnsToken");
        assertItemError("{'apnsToken':'0123456789abcdef0','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].apnsToken");
        assertItemError("{'apnsToken':'" + "ab".repeat(101) + "','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].apnsToken");
        assertThat(accepted("{'apnsToken':'0123456789ABCDEF','body':'b'}").apnsToken()).isEqualTo("0123456789abcdef");
        assertThat(accepted("{'apnsToken':'" + "AB".repeat(100) + "','body':'b'}").apnsToken()).isEqualTo("ab".repeat(100));
    }

    @Test
    void requiresNonBlankTitleOrBody() throws Exception {
        assertItemError("{'user':'u'}", ErrorCode.MISSING_FIELD, "messages[0].body");
        assertItemError("{'user':'u','title':' ','body':''}", ErrorCode.MISSING_FIELD, "messages[0].body");
        assertItemError("{'user':'u','title':'t','body':[]}", ErrorCode.INVALID_FIELD, "messages[0].body");
        assertThat(accepted("{'user':'u','title':'only title'}").title()).isEqualTo("only title");
    }

    @Test
    void validatesData() throws Exception {
        assertItemError("{'user':'u','body':'b','data':[1]}", ErrorCode.INVALID_FIELD, "messages[0].data");
        assertItemError("{'user':'u','body':'b','data':'x'}", ErrorCode.INVALID_FIELD, "messages[0].data");
        assertItemError("{'user':'u','body':'b','data':{'aps':{}}}", ErrorCode.INVALID_FIELD, "messages[0].data.aps");
        assertItemError("{'user':'u','body':'b','data':{'a':['\\ud800']}}", ErrorCode.INVALID_FIELD, "messages[0].data.a[0]");
    }

    @Test
    void validatesPriority() throws Exception {
        assertItemError("{'user':'u','body':'b','priority':'urgent'}", ErrorCode.INVALID_FIELD, "messages[0].priority");
        assertItemError("{'user':'u','body':'b','priority':'HIGH'}", ErrorCode.INVALID_FIELD, "messages[0].priority");
        assertItemError("{'user':'u','body':'b','priority':11}", ErrorCode.INVALID_FIELD, "messages[0].priority");
        assertItemError("{'user':'u','body':'b','priority':0}", ErrorCode.INVALID_FIELD, "messages[0].priority");
        assertItemError("{'user':'u','body':'b','priority':2.5}", ErrorCode.INVALID_FIELD, "messages[0].priority");
        // "high"/"normal": the delivery urgency (the field's first meaning), unless urgency names it.
        assertThat(accepted("{'user':'u','body':'b','priority':'high'}").priority()).isEqualTo(Priority.HIGH);
        assertThat(accepted("{'user':'u','body':'b','priority':'normal'}").priority()).isEqualTo(Priority.NORMAL);
        assertItemError("{'user':'u','body':'b','priority':'normal','urgency':'high'}", ErrorCode.INVALID_FIELD,
                "messages[0].priority");
        // 1..10: the policy priority; urgency is then its own field.
        Message m = accepted("{'user':'u','body':'b','priority':8,'urgency':'normal'}");
        assertThat(m.policy().rank()).isEqualTo(8);
        assertThat(m.priority()).isEqualTo(Priority.NORMAL);
        assertItemError("{'user':'u','body':'b','urgency':'now'}", ErrorCode.INVALID_FIELD, "messages[0].urgency");
    }

    @Test
    void readsThePolicyFieldsAndNamesTheBadOne() throws Exception {
        Message m = accepted("{'user':'u','body':'b','class':'marketing','category':'promo','sendAt':'2026-12-24T09:00:00+08:00',"
                + "'onCap':'defer','onQuiet':'drop'}");
        assertThat(m.policy().messageClass()).isEqualTo(Message.MessageClass.MARKETING);
        assertThat(m.policy().sendAt()).isEqualTo(java.time.Instant.parse("2026-12-24T01:00:00Z").toEpochMilli());
        assertThat(m.policy().onCap()).isEqualTo("defer");
        assertThat(m.policy().onQuiet()).isEqualTo("drop");
        assertThat(m.policy().rank()).isEqualTo(5);
        assertThat(accepted("{'user':'u','body':'b','sendAt':'best_hour'}").policy().bestHour()).isTrue();
        assertThat(accepted("{'user':'u','body':'b','localTime':'09:30'}").policy().localTime()).isEqualTo("09:30");
        assertThat(accepted("{'user':'u','body':'b'}").policy()).as("no policy field: no policy").isNull();
        assertItemError("{'user':'u','body':'b','class':'spam'}", ErrorCode.INVALID_FIELD, "messages[0].class");
        assertItemError("{'user':'u','body':'b','sendAt':'tomorrow'}", ErrorCode.INVALID_FIELD, "messages[0].sendAt");
        assertItemError("{'user':'u','body':'b','sendAt':'2026-12-24T09:00:00'}", ErrorCode.INVALID_FIELD, "messages[0].sendAt");
        assertItemError("{'user':'u','body':'b','localTime':'9:00'}", ErrorCode.INVALID_FIELD, "messages[0].localTime");
        assertItemError("{'user':'u','body':'b','localTime':'09:00','sendAt':'best_hour'}", ErrorCode.INVALID_FIELD,
                "messages[0].localTime");
        assertItemError("{'apnsToken':'" + "ab".repeat(32) + "','body':'b','sendAt':'best_hour'}", ErrorCode.INVALID_FIELD,
                "messages[0].sendAt");
        assertItemError("{'user':'u','body':'b','onCap':'wait'}", ErrorCode.INVALID_FIELD, "messages[0].onCap");
        assertItemError("{'user':'u','body':'b','onQuiet':'later'}", ErrorCode.INVALID_FIELD, "messages[0].onQuiet");
        // The journal keeps the policy: encoded and decoded, the message is equal.
        assertThat(codec.decodeMessage(codec.encodeMessage(m))).isEqualTo(m);
    }

    @Test
    void enforcesTtlRange() throws Exception {
        assertItemError("{'user':'u','body':'b','ttlSeconds':-1}", ErrorCode.TTL_OUT_OF_RANGE, "messages[0].ttlSeconds");
        assertItemError("{'user':'u','body':'b','ttlSeconds':2419201}", ErrorCode.TTL_OUT_OF_RANGE, "messages[0].ttlSeconds");
        assertItemError("{'user':'u','body':'b','ttlSeconds':99999999999}", ErrorCode.TTL_OUT_OF_RANGE, "messages[0].ttlSeconds");
        assertItemError("{'user':'u','body':'b','ttlSeconds':'60'}", ErrorCode.INVALID_FIELD, "messages[0].ttlSeconds");
        assertItemError("{'user':'u','body':'b','ttlSeconds':1.5}", ErrorCode.INVALID_FIELD, "messages[0].ttlSeconds");
        assertThat(accepted("{'user':'u','body':'b','ttlSeconds':0}").ttlSeconds()).isZero();
        assertThat(accepted("{'user':'u','body':'b','ttlSeconds':2419200}").ttlSeconds()).isEqualTo(2_419_200);
        DecodedBatch.Item it = single("{'user':'u','body':'b','ttlSeconds':2419201}");
        assertThat(it.error().message()).isEqualTo("messages[0].ttlSeconds: 2419201 (expected: 0..2419200)");
    }

    @Test
    void rejectsCollapseIdOver64BytesAndAccepts64() throws Exception {
        assertItemError("{'user':'u','body':'b','collapseId':'" + "c".repeat(65) + "'}",
                ErrorCode.COLLAPSE_ID_TOO_LONG, "messages[0].collapseId");
        // 22 x 3-byte chars = 66 bytes but only 22 chars: the limit is in UTF-8 bytes.
        assertItemError("{'user':'u','body':'b','collapseId':'" + "€".repeat(22) + "'}",
                ErrorCode.COLLAPSE_ID_TOO_LONG, "messages[0].collapseId");
        assertThat(accepted("{'user':'u','body':'b','collapseId':'" + "c".repeat(64) + "'}").collapseId()).hasSize(64);
        assertItemError("{'user':'u','body':'b','collapseId':1}", ErrorCode.INVALID_FIELD, "messages[0].collapseId");
    }

    @Test
    void validatesSoundCategoryBadgeAndId() throws Exception {
        assertItemError("{'user':'u','body':'b','sound':'" + "s".repeat(257) + "'}", ErrorCode.INVALID_FIELD, "messages[0].sound");
        assertItemError("{'user':'u','body':'b','sound':{}}", ErrorCode.INVALID_FIELD, "messages[0].sound");
        assertItemError("{'user':'u','body':'b','category':'" + "c".repeat(257) + "'}", ErrorCode.INVALID_FIELD, "messages[0].category");
        assertItemError("{'user':'u','body':'b','badge':-1}", ErrorCode.INVALID_FIELD, "messages[0].badge");
        assertItemError("{'user':'u','body':'b','badge':100000}", ErrorCode.INVALID_FIELD, "messages[0].badge");
        assertItemError("{'user':'u','body':'b','badge':'1'}", ErrorCode.INVALID_FIELD, "messages[0].badge");
        assertItemError("{'user':'u','body':'b','badge':1.0}", ErrorCode.INVALID_FIELD, "messages[0].badge");
        assertItemError("{'user':'u','body':'b','id':''}", ErrorCode.INVALID_FIELD, "messages[0].id");
        assertItemError("{'user':'u','body':'b','id':'" + "i".repeat(129) + "'}", ErrorCode.INVALID_FIELD, "messages[0].id");
        assertItemError("{'user':'u','body':'b','id':1}", ErrorCode.INVALID_FIELD, "messages[0].id");
        assertThat(accepted("{'user':'u','body':'b','badge':99999,'id':'" + "i".repeat(128) + "'}").badge()).isEqualTo(99_999);
    }

    @Test
    void treatsExplicitNullAsAbsent() throws Exception {
        Message m = accepted("{'user':'u','apnsToken':null,'body':'b','title':null,'badge':null,'priority':null}");
        assertThat(m.badge()).isNull();
        assertThat(m.priority()).isEqualTo(Priority.HIGH);
    }

    @Test
    void rejectsLoneSurrogateAndNul() throws Exception {
        assertItemError("{'user':'u','body':'a\\ud800b'}", ErrorCode.INVALID_FIELD, "messages[0].body");
        assertItemError("{'user':'u','title':'\\udc00','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].title");
        assertItemError("{'user':'u','body':'b\\ud83d'}", ErrorCode.INVALID_FIELD, "messages[0].body");
        assertItemError("{'user':'u','body':'a\\u0000b'}", ErrorCode.INVALID_FIELD, "messages[0].body");
        assertItemError("{'user':'u','body':'b','id':'\\ud800'}", ErrorCode.INVALID_FIELD, "messages[0].id");
    }

    @Test
    void acceptsEscapedSurrogatePairsEmojiAndRtl() throws Exception {
        Message m = accepted("{'user':'u','title':'\\ud83d\\ude00 😀','body':'مرحبا שלום'}");
        assertThat(m.title()).isEqualTo("😀 😀");
        assertThat(m.body()).isEqualTo("مرحبا שלום");
    }

    @Test
    void rejectsPayloadOver4096Bytes() throws Exception {
        DecodedBatch.Item it = single("{'user':'u','body':'" + "x".repeat(5000) + "'}");
        assertThat(it.error().code()).isEqualTo("payload_too_large");
        assertThat(it.error().field()).isEqualTo("messages[0]");
        assertThat(it.error().message()).matches("messages\\[0\\]: (APNs|FCM) payload \\d+ bytes \\(expected: <= 3936, the 4096-byte limit less 160 for receipt data\\)");
        // Multi-byte text counts in UTF-8 bytes: 1500 x 4-byte emoji = 6000 bytes.
        assertItemError("{'user':'u','body':'" + "😀".repeat(1500) + "'}", ErrorCode.PAYLOAD_TOO_LARGE, "messages[0]");
        // data counts too.
        assertItemError("{'user':'u','body':'b','data':{'d':'" + "x".repeat(4090) + "'}}", ErrorCode.PAYLOAD_TOO_LARGE, "messages[0]");
    }

    @Test
    void acceptsPayloadOfExactly4096BytesLessTheReceiptReserve() throws Exception {
        String prefix = "{\"aps\":{\"alert\":{\"body\":\"";
        String suffix = "\"}}}";
        int fill = ApnsPayloads.MAX_PAYLOAD_BYTES - ReceiptTokens.PAYLOAD_RESERVE - prefix.length() - suffix.length();
        Message m = accepted("{'user':'u','channel':'apns','body':'" + "x".repeat(fill) + "'}");
        assertThat(ApnsPayloads.encode(m)).hasSize(4096 - ReceiptTokens.PAYLOAD_RESERVE);
        assertItemError("{'user':'u','channel':'apns','body':'" + "x".repeat(fill + 1) + "'}", ErrorCode.PAYLOAD_TOO_LARGE,
                "messages[0]");
    }

    @Test
    void messageConstructorEnforcesInvariants() {
        assertThatThrownBy(() -> new Message(null, "u", null, null, null, "b", null, null, 2_419_201, null, null, null, null, null, null, null, null, null, null, null))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("ttlSeconds: 2419201 (expected: 0..2419200)");
        assertThatThrownBy(() -> new Message(null, null, null, null, null, "b", null, null, 0, null, null, null, null, null, null, null, null, null, null, null))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(new Message(null, "u", null, null, null, "b", null, null, 0, null, null, null, null, null, null, null, null, null, null, null).priority())
                .isEqualTo(Priority.HIGH);
    }

    @Test
    void itemRequiresExactlyOneOfMessageAndError() {
        assertThatThrownBy(() -> new DecodedBatch.Item(0, null, null)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new DecodedBatch.Item(0,
                new Message(null, "u", null, null, null, "b", null, null, 0, null, null, null, null, null, null, null, null, null, null, null),
                ApiError.of(ErrorCode.INTERNAL, null, "x")))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void acceptsFcmTokensChannelsFallbackSmsBodyAndAndroidOptions() throws Exception {
        Message m = accepted("{'user':'u','title':'t','channel':'push','fallback':['sms'],'smsBody':'Your code is 1234',"
                + "'android':{'type':'data','collapseKey':'k','channelId':'orders','image':'https://x.example/i.png',"
                + "'clickAction':'OPEN'}}");
        assertThat(m.channel()).isEqualTo(Channel.PUSH);
        assertThat(m.fallback()).containsExactly(Channel.SMS);
        assertThat(m.smsBody()).isEqualTo("Your code is 1234");
        assertThat(m.android().dataOnly()).isTrue();
        assertThat(codec.decodeMessage(codec.encodeMessage(m))).isEqualTo(m);
        Message direct = accepted("{'fcmToken':'abcdefghijklmnop:APA91b_x-y','body':'b'}");
        assertThat(direct.fcmToken()).isEqualTo("abcdefghijklmnop:APA91b_x-y");
    }

    @Test
    void rejectsBadChannelFieldsPerItem() throws Exception {
        assertItemError("{'user':'u','body':'b','channel':'pigeon'}", ErrorCode.INVALID_FIELD, "messages[0].channel");
        assertItemError("{'apnsToken':'" + TOKEN + "','body':'b','channel':'sms'}", ErrorCode.INVALID_FIELD,
                "messages[0].channel");
        assertItemError("{'user':'u','body':'b','fallback':['sms','sms']}", ErrorCode.INVALID_FIELD,
                "messages[0].fallback[1]");
        assertItemError("{'user':'u','body':'b','fallback':['auto']}", ErrorCode.INVALID_FIELD, "messages[0].fallback[0]");
        assertItemError("{'fcmToken':'abcdefghijklmnopq','body':'b','fallback':['sms']}", ErrorCode.INVALID_FIELD,
                "messages[0].fallback");
        assertItemError("{'user':'u','body':'b','smsBody':'" + "x".repeat(1601) + "'}", ErrorCode.INVALID_FIELD,
                "messages[0].smsBody");
        assertItemError("{'user':'u','body':'b','android':{'type':'silent'}}", ErrorCode.INVALID_FIELD,
                "messages[0].android.type");
        assertItemError("{'user':'u','body':'b','android':{'image':'http://insecure'}}", ErrorCode.INVALID_FIELD,
                "messages[0].android.image");
        assertItemError("{'user':'u','body':'b','android':{'sneaky':1}}", ErrorCode.UNKNOWN_FIELD,
                "messages[0].android.sneaky");
        assertItemError("{'user':'u','apnsToken':'" + TOKEN + "','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].user");
        assertItemError("{'fcmToken':'short','body':'b'}", ErrorCode.INVALID_FIELD, "messages[0].fcmToken");
    }

    @Test
    void checksTheFcmPayloadOnlyWhenFcmMayCarryTheMessage() throws Exception {
        // 4000 bytes of data fits APNs (4096) but a data message repeats title/body in FCM data.
        String big = "x".repeat(3990);
        assertItemError("{'fcmToken':'abcdefghijklmnopq','title':'" + "t".repeat(200) + "','body':'b','data':{'d':'" + big
                + "'}}", ErrorCode.PAYLOAD_TOO_LARGE, "messages[0]");
        // An SMS-only message is not held to push payload limits.
        assertThat(accepted("{'user':'u','channel':'sms','body':'b','data':{'d':'" + "y".repeat(5000) + "'}}").channel())
                .isEqualTo(Channel.SMS);
    }

    @Test
    void refusesCampaignAndVariantLabelsThatContainTheKeySeparator() throws Exception {
        // "a:v:b" would count in the funnel of variant "b" of campaign "a" (herald:f:{app}:c:a:v:b).
        assertItemError("{'user':'u','body':'b','campaign':'a:v:b'}", ErrorCode.INVALID_FIELD, "messages[0].campaign");
        assertItemError("{'user':'u','body':'b','campaign':'a','variant':'b:m:0'}", ErrorCode.INVALID_FIELD,
                "messages[0].variant");
        assertItemError("{'user':'u','body':'b','campaign':'spring sale'}", ErrorCode.INVALID_FIELD,
                "messages[0].campaign");
        assertItemError("{'user':'u','body':'b','campaign':''}", ErrorCode.INVALID_FIELD, "messages[0].campaign");
        assertItemError("{'user':'u','body':'b','campaign':'" + "c".repeat(65) + "'}", ErrorCode.INVALID_FIELD,
                "messages[0].campaign");
        assertThat(single("{'user':'u','body':'b','campaign':'a:v:b'}").error().message())
                .contains("A-Z a-z 0-9 . _ -").doesNotContain(": -)");
        Message m = accepted("{'user':'u','body':'b','campaign':'" + "c".repeat(64) + "','variant':'Spring_2025.v-1'}");
        assertThat(m.campaign()).hasSize(64);
        assertThat(m.variant()).isEqualTo("Spring_2025.v-1");
        assertThat(Message.isLabel("a:v:b")).isFalse();
        assertThat(Message.isLabel(null)).isFalse();
    }

    @Test
    void anSmsOnlyMessageNeedsOnlyItsSmsText() throws Exception {
        Message m = accepted("{'user':'u','channel':'sms','smsBody':'Your code is 1234'}");
        assertThat(m.channel()).isEqualTo(Channel.SMS);
        assertThat(m.title()).isNull();
        assertThat(m.body()).isNull();
        assertThat(m.smsBody()).isEqualTo("Your code is 1234");
        assertThat(codec.decodeMessage(codec.encodeMessage(m))).isEqualTo(m);
        assertThat(accepted("{'user':'u','channel':'sms','fallback':['sms'],'smsBody':'x'}").smsBody()).isEqualTo("x");
        // Without smsBody, the SMS text is made of title and body: one of the three is needed.
        assertItemError("{'user':'u','channel':'sms'}", ErrorCode.MISSING_FIELD, "messages[0].smsBody");
        assertItemError("{'user':'u','channel':'sms','body':' '}", ErrorCode.MISSING_FIELD, "messages[0].smsBody");
        // A channel that may be push needs a push text, whatever the SMS text.
        assertItemError("{'user':'u','smsBody':'x'}", ErrorCode.MISSING_FIELD, "messages[0].body");
        assertItemError("{'user':'u','channel':'push','smsBody':'x'}", ErrorCode.MISSING_FIELD, "messages[0].body");
        // So does a push fallback of an SMS message; the error names it.
        DecodedBatch.Item fallback = single("{'user':'u','channel':'sms','fallback':['push'],'smsBody':'x'}");
        assertThat(fallback.error().code()).isEqualTo(ErrorCode.MISSING_FIELD.wire());
        assertThat(fallback.error().field()).isEqualTo("messages[0].body");
        assertThat(fallback.error().message()).contains("fallback");
        assertItemError("{'user':'u','channel':'sms','fallback':['fcm'],'smsBody':'x'}", ErrorCode.MISSING_FIELD,
                "messages[0].body");
    }
}
