package io.herald.gateway.content;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TemplateTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static Template parse(String json) throws Exception {
        return Template.parse(JSON.readTree(json), "t1", 0);
    }

    private static Map<String, Object> user(String locale) {
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("id", "u1");
        u.put("locale", locale);
        u.put("firstName", "Ada");
        u.put("tags", Map.of("vip", true));
        return u;
    }

    @Test
    void rendersUserAttributesTagsVarsAndDefaults() throws Exception {
        Template t = parse("{\"locales\":{\"en\":{\"push\":{\"title\":\"Hi {{user.firstName}}\","
                + "\"body\":\"{{#user.tags.vip}}VIP {{/user.tags.vip}}{{views}}{{^views}}many{{/views}} views of {{vars.item}}\","
                + "\"data\":{\"deep\":\"/items/{{item}}\",\"n\":3}},\"sms\":{\"body\":\"{{greeting}} {{user.firstName}}\"}}},"
                + "\"defaults\":{\"views\":null,\"item\":\"the shoe\",\"greeting\":\"Hello\"}}");
        Template.Rendered r = t.render("en-GB", user("en-GB"), null, null, Map.of("item", "the hat"));
        assertThat(r.locale()).isEqualTo("en");
        assertThat(r.title()).isEqualTo("Hi Ada");
        assertThat(r.body()).isEqualTo("VIP many views of the hat");
        assertThat(r.data().get("deep").asText()).isEqualTo("/items/the hat");
        assertThat(r.data().get("n").asInt()).isEqualTo(3);
        assertThat(r.sms()).isEqualTo("Hello Ada");
        assertThat(t.render(null, user(null), null, null, Map.of("views", 12L)).body())
                .isEqualTo("VIP 12 views of the shoe");
        assertThat(t.readsUserData()).isTrue();
    }

    @Test
    void reachesNoJavaObject() throws Exception {
        Template t = parse("{\"locales\":{\"en\":{\"push\":{\"body\":\"[{{this.class.name}}][{{user.class}}]"
                + "[{{user.id.class.name}}][{{#user}}{{class.name}}{{getClass}}{{/user}}][{{vars.class.simpleName}}]\"}}}}");
        assertThat(t.render("en", user("en"), null, null, Map.of()).body()).isEqualTo("[][][][][]");
    }

    @Test
    void localeFallsBackToLanguageThenDefault() throws Exception {
        Template t = parse("{\"defaultLocale\":\"en\",\"locales\":{\"en\":{\"push\":{\"body\":\"Hello\"}},"
                + "\"de\":{\"push\":{\"body\":\"Hallo\"}},\"de-CH\":{\"push\":{\"body\":\"Grüezi\"}}}}");
        assertThat(t.render("de-CH", null, null, null, null).body()).isEqualTo("Grüezi");
        assertThat(t.render("de_AT", null, null, null, null).body()).isEqualTo("Hallo");
        assertThat(t.render("fr-FR", null, null, null, null).body()).isEqualTo("Hello");
        assertThat(t.render(null, null, null, null, null).locale()).isEqualTo("en");
    }

    @Test
    void refusesUnknownRootsAndBadSyntaxWithThePosition() {
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"push\":{\"title\":\"ok\",\"body\":\"Hi\\n  {{usr.name}}\"}}}}"))
                .isInstanceOf(Template.Invalid.class)
                .hasMessageContaining("locales.en.push.body").hasMessageContaining("unknown variable 'usr.name' at line 2, column 3")
                .extracting(e -> ((Template.Invalid) e).field).isEqualTo("locales.en.push.body");
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"push\":{\"body\":\"{{#user.tags.vip}}x{{/user.tags.vap}}\"}}}}"))
                .hasMessageContaining("{{/user.tags.vap}} at line 1, column 20 closes {{#user.tags.vip}} opened at line 1, column 1");
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"push\":{\"body\":\"a {{#vars.x}} b\"}}}}"))
                .hasMessageContaining("section {{#vars.x}} opened at line 1, column 3 is not closed");
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"sms\":{\"body\":\"a {{user.id\"}}}}"))
                .hasMessageContaining("tag opened at line 1, column 3 is not closed");
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"sms\":{\"body\":\"{{> footer}}\"}}}}"))
                .hasMessageContaining("partial");
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"sms\":{\"body\":\"x\"}},\"de\":{\"sms\":{\"body\":\"y\"}}}}"))
                .extracting(e -> ((Template.Invalid) e).field).isEqualTo("defaultLocale");
        assertThatThrownBy(() -> parse("{\"locales\":{\"en\":{\"push\":{\"title\":\"{{views}}\"}}}}"))
                .hasMessageContaining("unknown variable 'views' at line 1, column 1");
    }
}
