package io.herald.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.content.Template;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Rendering a stored template for one user, as the resolve stage does per templated message:
 * {@link #pushThreeVariables} a push title and body with three variables (the user's first name,
 * a call-time item, a count with an inverted-section default), through the maps-only collector;
 * {@link #pushAndSmsWithSectionAndData} adds a tag section, a data field and the SMS text.
 * The user and call variables are prepared once per user (as resolve builds them from the read
 * profile and data); the score includes building the render context. Pure CPU, one thread.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class TemplateBenchmark {
    private Template three;
    private Template full;
    private final List<Map<String, Object>> users = new java.util.ArrayList<>();
    private final List<Map<String, Object>> vars = new java.util.ArrayList<>();
    private int next;

    @Setup
    public void setUp() throws Exception {
        ObjectMapper json = new ObjectMapper();
        three = Template.parse(json.readTree("{\"locales\":{\"en\":{\"push\":{"
                + "\"title\":\"Hi {{user.firstName}}\","
                + "\"body\":\"{{views}}{{^views}}Many{{/views}} people viewed {{item}} today\"}}},"
                + "\"defaults\":{\"views\":null,\"item\":\"your item\"}}"), "three", 0);
        full = Template.parse(json.readTree("{\"locales\":{\"en\":{\"push\":{"
                + "\"title\":\"Hi {{user.firstName}}\","
                + "\"body\":\"{{#user.tags.vip}}VIP: {{/user.tags.vip}}{{views}}{{^views}}Many{{/views}} people viewed {{item}}\","
                + "\"data\":{\"link\":\"app://items/{{vars.sku}}\"}},\"sms\":{\"body\":\"{{item}} is back, {{user.firstName}}\"}}},"
                + "\"defaults\":{\"views\":null,\"item\":\"your item\",\"sku\":\"0\"}}"), "full", 0);
        for (int i = 0; i < 1024; i++) {
            Map<String, Object> u = new LinkedHashMap<>();
            u.put("id", "user-" + i);
            u.put("firstName", "Name" + i);
            u.put("tags", i % 3 == 0 ? Map.of("vip", true) : Map.of());
            users.add(u);
            Map<String, Object> v = new LinkedHashMap<>();
            v.put("item", "item " + i);
            if (i % 2 == 0) {
                v.put("views", (long) i);
            }
            v.put("sku", "sku-" + i);
            vars.add(v);
        }
    }

    @Benchmark
    public Template.Rendered pushThreeVariables() {
        int i = next++ & 1023;
        return three.render("en", users.get(i), null, null, vars.get(i));
    }

    @Benchmark
    public Template.Rendered pushAndSmsWithSectionAndData() {
        int i = next++ & 1023;
        return full.render("en", users.get(i), null, null, vars.get(i));
    }
}
