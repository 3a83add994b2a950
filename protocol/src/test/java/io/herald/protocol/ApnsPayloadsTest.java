package io.herald.protocol;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ApnsPayloadsTest {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static Message message(String title, String body, ObjectNode data, String sound, Integer badge, String category) {
        return new Message("id-1", "u", null, null, title, body, data, Priority.NORMAL, 60, "collapse", sound, badge, category,
                null, null, null, null, null, null, null);
    }

    @Test
    void writesApsFieldsThenDataAtTopLevel() throws Exception {
        ObjectNode data = MAPPER.createObjectNode().put("orderId", 42).put("kind", "shipped");
        String json = ApnsPayloads.encodeToString(message("T", "B", data, "ping.aiff", 7, "cat"));
        assertThat(json).isEqualTo("{\"aps\":{\"alert\":{\"title\":\"T\",\"body\":\"B\"},\"sound\":\"ping.aiff\","
                + "\"badge\":7,\"category\":\"cat\"},\"orderId\":42,\"kind\":\"shipped\"}");
    }

    @Test
    void omitsAbsentFieldsAndHeaderOnlyFields() {
        String json = ApnsPayloads.encodeToString(message(null, "B", null, null, null, null));
        assertThat(json).isEqualTo("{\"aps\":{\"alert\":{\"body\":\"B\"}}}");
        assertThat(json).doesNotContain("collapse").doesNotContain("60").doesNotContain("normal").doesNotContain("id-1");
    }

    @Test
    void carriesEmojiAndRtlTextIntactAsUtf8() throws Exception {
        String title = "Hi 😀👩‍👩‍👧";
        String body = "مرحبا بالعالم — שלום עולם";
        ObjectNode data = MAPPER.createObjectNode().put("note", "🚀 עברית");
        byte[] bytes = ApnsPayloads.encode(message(title, body, data, null, null, null));

        String raw = new String(bytes, StandardCharsets.UTF_8);
        assertThat(raw).contains(title).contains(body).doesNotContain("\\u");
        JsonNode parsed = MAPPER.readTree(bytes);
        assertThat(parsed.at("/aps/alert/title").textValue()).isEqualTo(title);
        assertThat(parsed.at("/aps/alert/body").textValue()).isEqualTo(body);
        assertThat(parsed.get("note").textValue()).isEqualTo("🚀 עברית");
    }

    @Test
    void escapesJsonSpecialCharacters() throws Exception {
        String body = "quote \" backslash \\ newline \n tab \t";
        byte[] bytes = ApnsPayloads.encode(message(null, body, null, null, null, null));
        assertThat(MAPPER.readTree(bytes).at("/aps/alert/body").textValue()).isEqualTo(body);
    }

    @Test
    void encodeToStringMatchesEncode() {
        Message m = message("t", "b", null, "s", 1, "c");
        assertThat(ApnsPayloads.encodeToString(m).getBytes(StandardCharsets.UTF_8)).isEqualTo(ApnsPayloads.encode(m));
        // Two writers (chars and UTF-8 bytes): the same text for emoji, CJK, RTL, escapes and nesting.
        ObjectNode data = MAPPER.createObjectNode();
        data.put("q", "\"quoted\" \\ back\tslash\u0001 \u2028");
        data.putObject("deep").putArray("a").add("\ud83c\udf89 \u4f60\u597d").add(1.5).add(true).addNull();
        Message rich = message("\u0645\u0631\u062d\u0628\u0627 \ud83d\ude80", "caf\u00e9 </script>", data, null, null, null);
        assertThat(ApnsPayloads.encodeToString(rich).getBytes(StandardCharsets.UTF_8))
                .isEqualTo(ApnsPayloads.encode(rich));
        ObjectNode aps = MAPPER.createObjectNode();
        aps.putObject("aps");
        assertThatThrownBy(() -> ApnsPayloads.encodeToString(message(null, "b", aps, null, null, null)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("data.aps");
    }

    @Test
    void rejectsDataContainingAps() {
        ObjectNode data = MAPPER.createObjectNode();
        data.putObject("aps");
        assertThatThrownBy(() -> ApnsPayloads.encode(message(null, "b", data, null, null, null)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("data.aps");
    }

    @Test
    void rejectsLoneSurrogateInsteadOfCorruptingText() {
        assertThatThrownBy(() -> ApnsPayloads.encode(message(null, "a\ud800b", null, null, null, null)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("body");
        ObjectNode data = MAPPER.createObjectNode();
        data.putArray("k").add("x\udc00");
        assertThatThrownBy(() -> ApnsPayloads.encode(message(null, "b", data, null, null, null)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("data.k[0]");
        ObjectNode deep = MAPPER.createObjectNode();
        deep.put("ok", "fine").putObject("o").put("k\u0000", 1);
        assertThatThrownBy(() -> ApnsPayloads.encodeToString(message(null, "b", deep, null, null, null)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("data.o");
    }
}
