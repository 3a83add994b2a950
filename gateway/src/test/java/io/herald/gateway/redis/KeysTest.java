package io.herald.gateway.redis;

import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class KeysTest {

    /** Every public builder of {@link Keys}, found by reflection so a new one is checked without editing this test. */
    private static List<Method> builders() {
        return Arrays.stream(Keys.class.getDeclaredMethods())
                .filter(m -> Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers())
                        && m.getReturnType() == String.class)
                .toList();
    }

    private static Object sample(Class<?> type, int position) {
        if (type == String.class) {
            return "p" + position;
        }
        if (type == int.class) {
            return 7;
        }
        if (type == long.class) {
            return 1_700_000_000_000L;
        }
        throw new AssertionError("no sample value for a parameter of type " + type);
    }

    /** The hash tag as Redis Cluster reads it: the part between the first '{' and the first '}' after it. */
    private static void assertOneHashTag(String what, String key) {
        assertThat(key).as(what).startsWith("herald:");
        assertThat(key.chars().filter(c -> c == '{').count()).as(what + " has one '{': " + key).isEqualTo(1);
        assertThat(key.chars().filter(c -> c == '}').count()).as(what + " has one '}': " + key).isEqualTo(1);
        int open = key.indexOf('{');
        int close = key.indexOf('}');
        assertThat(close).as(what + " has a non-empty tag: " + key).isGreaterThan(open + 1);
    }

    @Test
    void everyBuilderPutsExactlyOneHashTagInItsKey() throws Exception {
        List<Method> builders = builders();
        assertThat(builders).as("Keys builders found").hasSizeGreaterThanOrEqualTo(25);
        List<String> keys = new ArrayList<>();
        for (Method m : builders) {
            Class<?>[] types = m.getParameterTypes();
            Object[] args = new Object[types.length];
            for (int i = 0; i < types.length; i++) {
                args[i] = sample(types[i], i);
            }
            String key = (String) m.invoke(null, args);
            assertOneHashTag(m.getName() + Arrays.toString(args), key);
            keys.add(key);
        }
        assertThat(keys).as("no two builders make the same key from the same arguments").doesNotHaveDuplicates();
    }

    @Test
    void theAppWideFunnelIsTaggedByApp() {
        assertOneHashTag("funnel(app)", Keys.funnel("demo", null, null));
        assertOneHashTag("funnelBucket(app)", Keys.funnelBucket("demo", null, null, "h", 0));
        assertThat(Keys.funnel("demo", null, null)).isEqualTo("herald:f:{demo}:all");
    }

    @Test
    void tagsFollowTheRuleOfTheClassComment() {
        assertThat(tag(Keys.messages("b", 1))).isEqualTo(tag(Keys.batch("b"))).isEqualTo(tag(Keys.outbox("b")))
                .isEqualTo(tag(Keys.smsParts("b", 2)));
        assertThat(tag(Keys.flushMarkers("a"))).isEqualTo(tag(Keys.events("a")));
        assertThat(tag(Keys.devices("a", "u"))).isEqualTo(tag(Keys.admission("a", "u")))
                .isEqualTo(tag(Keys.engagement("a", "u")));
        // A shard's journal (of every node), deferred set, idempotency keys, dead letters and
        // promotion keys share its slot tag; other shards have other tags.
        assertThat(tag(Keys.journal("n", 3))).isEqualTo(tag(Keys.journal("m", 3))).isEqualTo(tag(Keys.deferred(3)))
                .isEqualTo(tag(Keys.deferredData(3))).isEqualTo(tag(Keys.idempotency("a", "h", 3)))
                .isEqualTo(tag(Keys.deadLetters("a", 3))).isEqualTo(tag(Keys.deadLetterData("a", 3)))
                .isEqualTo(tag(Keys.promotion(3, "r"))).isEqualTo("s.3")
                .isNotEqualTo(tag(Keys.journal("n", 4)));
        assertThat(tag(Keys.rateLimitRequest("a", "u", "r"))).isEqualTo(tag(Keys.admission("a", "u")));
        assertThat(tag(Keys.admissionLog("a", "u"))).isEqualTo(tag(Keys.admission("a", "u")));
        assertThat(tag(Keys.replays("n"))).isEqualTo(tag(Keys.unreadableEntries("n"))).isEqualTo("n.n");
        assertThat(tag(Keys.events("a"))).isEqualTo(tag(Keys.funnel("a", "c", "v")))
                .isEqualTo(tag(Keys.funnelChannel("a", "sms"))).isEqualTo(tag(Keys.webhookDeadLetters("a")))
                .isEqualTo(tag(Keys.webhookRedrive("a"))).isEqualTo(tag(Keys.smscPart("a", "id")));
    }

    private static String tag(String key) {
        return key.substring(key.indexOf('{') + 1, key.indexOf('}'));
    }
}
