package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.function.Predicate;
import java.util.zip.CRC32C;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Audiences over a generated population, against the real Redis: every rule's count and members
 * are compared with the membership the test computes itself from the population it generated.
 * Each test names its own tags and attributes (a random prefix), so the tests share the gateway's
 * app without seeing each other's users in their counts.
 */
@Timeout(180)
class AudiencesIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    private static final ObjectMapper JSON = new ObjectMapper();

    /** One generated user, as the test knows it. */
    record Person(String id, Set<String> tags, Map<String, Object> attrs, boolean optedOutPush, boolean apns,
                  double[] location) {
    }

    private static String p() {
        return "p" + UUID.randomUUID().toString().substring(0, 6);
    }

    private static String base(TestGateway gw) {
        return "/v1/apps/" + gw.app;
    }

    private static List<Person> population(String p, int n, long seed) {
        Random r = new Random(seed);
        List<Person> out = new ArrayList<>();
        String[] cities = {"深圳", "广州", "北京", null};
        for (int i = 0; i < n; i++) {
            Set<String> tags = new TreeSet<>();
            if (r.nextInt(100) < 60) {
                tags.add(p + "_wechat_login");
            }
            if (r.nextInt(100) < 50) {
                tags.add(p + "_app_installed");
            }
            if (r.nextInt(100) < 40) {
                tags.add(p + "_follows_oa");
            }
            if (r.nextInt(100) < 30) {
                tags.add(p + "_recharged");
            }
            tags.add(p);
            Map<String, Object> attrs = new LinkedHashMap<>();
            String city = cities[r.nextInt(cities.length)];
            if (city != null) {
                attrs.put(p + "_city", city);
            }
            if (r.nextInt(10) < 8) {
                // many users exactly on the boundary 500
                attrs.put(p + "_ltv", r.nextInt(4) == 0 ? 500 : r.nextInt(1001));
            }
            attrs.put(p + "_vip", r.nextBoolean());
            attrs.put(p + "_signup", Instant.parse("2026-01-01T00:00:00Z").plusSeconds(r.nextInt(365) * 86_400L).toString());
            double[] loc = null;
            if (r.nextInt(3) > 0) {
                // half within ~5 km of Shenzhen's centre, half in Beijing
                loc = r.nextBoolean() ? new double[] {22.54 + r.nextDouble() * 0.04, 114.05 + r.nextDouble() * 0.04}
                        : new double[] {39.90 + r.nextDouble() * 0.04, 116.40 + r.nextDouble() * 0.04};
            }
            out.add(new Person(p + "-u" + i, tags, attrs, r.nextInt(5) == 0, r.nextInt(3) > 0, loc));
        }
        return out;
    }

    /** Imports people through the bulk API (tags, attributes, location, consent, devices). */
    private static void importAll(TestGateway gw, List<Person> people) {
        ArrayNode users = JSON.createArrayNode();
        for (Person u : people) {
            ObjectNode o = users.addObject().put("user", u.id());
            u.tags().forEach(o.putArray("tags")::add);
            ObjectNode a = o.putObject("attributes");
            u.attrs().forEach((k, v) -> a.set(k, JSON.valueToTree(v)));
            if (u.location() != null) {
                a.putObject("location").put("lat", u.location()[0]).put("lon", u.location()[1]);
            }
            if (u.optedOutPush()) {
                o.putObject("consent").put("push", "opted_out");
            }
            if (u.apns()) {
                o.putArray("devices").addObject().put("id", "phone").put("platform", "apns").put("token", TestGateway.token());
            }
        }
        TestGateway.Response r = gw.post(base(gw) + "/users", JSON.createObjectNode().set("users", users).toString());
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        assertThat(r.json().get("rejected").asInt()).as(r.raw().body()).isZero();
    }

    private static JsonNode estimate(TestGateway gw, String rule) {
        TestGateway.Response r = gw.post(base(gw) + "/audiences/estimate", JSON.createObjectNode().put("rule", rule).toString());
        assertThat(r.status()).as(rule + " -> " + r.raw().body()).isEqualTo(200);
        return r.json();
    }

    /** All members of a saved audience, page by page. */
    private static List<String> members(TestGateway gw, String rule, int pageSize) {
        TestGateway.Response created = gw.post(base(gw) + "/audiences",
                JSON.createObjectNode().put("name", "t").put("rule", rule).toString());
        assertThat(created.status()).as(created.raw().body()).isEqualTo(201);
        String id = created.json().get("id").asText();
        List<String> out = new ArrayList<>();
        String cursor = null;
        for (int pages = 0; pages < 10_000; pages++) {
            TestGateway.Response page = gw.get(base(gw) + "/audiences/" + id + "/members?limit=" + pageSize
                    + (cursor == null ? "" : "&cursor=" + cursor));
            assertThat(page.status()).as(page.raw().body()).isEqualTo(200);
            page.json().get("users").forEach(u -> out.add(u.asText()));
            assertThat(page.json().get("users").size()).isLessThanOrEqualTo(pageSize);
            if (page.json().get("next").isNull()) {
                break;
            }
            cursor = page.json().get("next").asText();
        }
        assertThat(gw.send("DELETE", base(gw) + "/audiences/" + id, null, gw.key).status()).isEqualTo(204);
        return out;
    }

    private static void check(TestGateway gw, String rule, List<Person> people, Predicate<Person> expected) {
        Set<String> want = new HashSet<>();
        people.stream().filter(expected).forEach(u -> want.add(u.id()));
        JsonNode e = estimate(gw, rule);
        assertThat(e.get("count").asLong()).as(rule).isEqualTo(want.size());
        assertThat(e.get("sample").size()).isEqualTo(Math.min(10, want.size()));
        e.get("sample").forEach(s -> assertThat(want).as(rule + " sample").contains(s.asText()));
        List<String> members = members(gw, rule, 97);
        assertThat(members).as(rule + " members").doesNotHaveDuplicates();
        assertThat(new HashSet<>(members)).as(rule + " members").isEqualTo(want);
    }

    private static int bucket(String app, String user) {
        CRC32C crc = new CRC32C();
        crc.update((app + '\u0000' + user).getBytes(StandardCharsets.UTF_8));
        return (int) (crc.getValue() % 100);
    }

    private static boolean near(Person u, double lat, double lon, double km) {
        if (u.location() == null) {
            return false;
        }
        double dLat = Math.toRadians(u.location()[0] - lat);
        double dLon = Math.toRadians(u.location()[1] - lon);
        double a = Math.pow(Math.sin(dLat / 2), 2) + Math.cos(Math.toRadians(lat)) * Math.cos(Math.toRadians(u.location()[0]))
                * Math.pow(Math.sin(dLon / 2), 2);
        return 6372.797560856 * 2 * Math.asin(Math.sqrt(a)) <= km;
    }

    private static double ltv(Person u, String p) {
        Object v = u.attrs().get(p + "_ltv");
        return v == null ? Double.NaN : ((Number) v).doubleValue();
    }

    @Test
    void seedCrowdsAndEveryOperatorMatchTheMembershipComputedFromThePopulation(TestGateway gw) {
        String p = p();
        List<Person> first = population(p, 700, 4);
        importAll(gw, first.subList(0, 350));
        // The rest in the next index shard: indexes are dense per app, so skip past a shard's worth.
        gw.herald.redis().shared().sync().incrby(Keys.userIndexCounter(gw.app), 1L << Keys.USER_SHARD_BITS);
        importAll(gw, first.subList(350, 700));
        List<Person> people = first;

        String w = p + "_wechat_login";
        String a = p + "_app_installed";
        String f = p + "_follows_oa";
        String rc = p + "_recharged";
        // Seed 004's four crowds.
        check(gw, "tag:" + w + " AND tag:" + a + " AND tag:" + f + " AND NOT tag:" + rc, people,
                u -> u.tags().containsAll(List.of(w, a, f)) && !u.tags().contains(rc));
        check(gw, "tag:" + w + " AND NOT tag:" + a + " AND tag:" + p, people,
                u -> u.tags().contains(w) && !u.tags().contains(a));
        check(gw, "tag:" + f + " AND NOT tag:" + w + " AND tag:" + p, people,
                u -> u.tags().contains(f) && !u.tags().contains(w));
        check(gw, "(tag:" + a + " OR tag:" + w + ") AND tag:" + rc, people,
                u -> (u.tags().contains(a) || u.tags().contains(w)) && u.tags().contains(rc));
        // Attributes: strings, numbers on their boundaries, booleans, times.
        String city = "attr." + p + "_city";
        String ltv = "attr." + p + "_ltv";
        check(gw, "(" + city + " IN (\"深圳\",\"广州\") OR " + ltv + " >= 500) AND NOT attr." + p + "_vip = true", people,
                u -> (Set.of("深圳", "广州").contains(String.valueOf(u.attrs().get(p + "_city"))) || ltv(u, p) >= 500)
                        && !Boolean.TRUE.equals(u.attrs().get(p + "_vip")));
        check(gw, ltv + " > 500", people, u -> ltv(u, p) > 500);
        check(gw, ltv + " >= 500", people, u -> ltv(u, p) >= 500);
        check(gw, ltv + " < 500", people, u -> ltv(u, p) < 500);
        check(gw, ltv + " <= 500", people, u -> ltv(u, p) <= 500);
        check(gw, ltv + " = 500", people, u -> ltv(u, p) == 500);
        check(gw, ltv + " != 500", people, u -> !Double.isNaN(ltv(u, p)) && ltv(u, p) != 500);
        check(gw, ltv + " EXISTS", people, u -> !Double.isNaN(ltv(u, p)));
        check(gw, "NOT " + ltv + " EXISTS AND tag:" + p, people, u -> Double.isNaN(ltv(u, p)));
        check(gw, city + " = \"北京\"", people, u -> "北京".equals(u.attrs().get(p + "_city")));
        check(gw, city + " != \"北京\"", people, u -> u.attrs().containsKey(p + "_city") && !"北京".equals(u.attrs().get(p + "_city")));
        check(gw, "attr." + p + "_vip = false", people, u -> Boolean.FALSE.equals(u.attrs().get(p + "_vip")));
        check(gw, "attr." + p + "_signup >= \"2026-07-01T00:00:00Z\"", people,
                u -> Instant.parse((String) u.attrs().get(p + "_signup")).compareTo(Instant.parse("2026-07-01T00:00:00Z")) >= 0);
        check(gw, "attr." + p + "_signup < \"2026-07-01T08:00:00+08:00\"", people,
                u -> Instant.parse((String) u.attrs().get(p + "_signup")).isBefore(Instant.parse("2026-07-01T00:00:00Z")));
        // Flags, buckets, places.
        check(gw, "consent.push AND reachable.apns AND tag:" + p, people, u -> !u.optedOutPush() && u.apns());
        check(gw, "NOT consent.push AND tag:" + p, people, Person::optedOutPush);
        check(gw, "reachable.push AND NOT reachable.fcm AND NOT reachable.sms AND tag:" + p, people, Person::apns);
        check(gw, "bucket(0..9) AND tag:" + p, people, u -> bucket(gw.app, u.id()) <= 9);
        check(gw, "bucket(37..37) AND tag:" + p, people, u -> bucket(gw.app, u.id()) == 37);
        check(gw, "near(location, 22.54, 114.05, 10) AND tag:" + p, people, u -> near(u, 22.54, 114.05, 10));
        check(gw, "near(location, 39.9, 116.4, 1.5) AND tag:" + p, people, u -> near(u, 39.9, 116.4, 1.5));
        // Empty.
        check(gw, "tag:" + p + "_nobody", people, u -> false);
        check(gw, "tag:" + p + " AND NOT tag:" + p, people, u -> false);
    }

    @Test
    void changesShowInTheNextEstimateAndDeletedUsersAreGone(TestGateway gw) {
        String p = p();
        List<Person> people = population(p, 200, 9);
        importAll(gw, people);
        String rule = "tag:" + p + " AND NOT tag:" + p + "_recharged";
        long before = estimate(gw, rule).get("count").asLong();
        Person u = people.stream().filter(x -> x.tags().contains(p + "_recharged")).findFirst().orElseThrow();
        // PATCH removes a tag: one more member.
        TestGateway.Response patch = gw.send("PATCH", base(gw) + "/users/" + u.id(),
                "{\"tags\":{\"remove\":[\"" + p + "_recharged\"]}}", gw.key);
        assertThat(patch.status()).as(patch.raw().body()).isEqualTo(200);
        assertThat(patch.json().get("tags").toString()).doesNotContain(p + "_recharged").contains("\"" + p + "\"");
        assertThat(estimate(gw, rule).get("count").asLong()).isEqualTo(before + 1);
        // The bulk tag operation: add the tag to 20 members, remove it from the user again.
        List<String> targets = people.stream().filter(x -> !x.tags().contains(p + "_recharged") && !x.id().equals(u.id()))
                .limit(20).map(Person::id).toList();
        TestGateway.Response bulk = gw.post(base(gw) + "/tags/" + p + "_recharged",
                JSON.createObjectNode().<ObjectNode>set("add", JSON.valueToTree(targets)).toString());
        assertThat(bulk.status()).as(bulk.raw().body()).isEqualTo(200);
        assertThat(bulk.json().get("added").asInt()).isEqualTo(20);
        assertThat(estimate(gw, rule).get("count").asLong()).isEqualTo(before + 1 - 20);
        // Delete the user: gone from every audience.
        assertThat(gw.send("DELETE", base(gw) + "/users/" + u.id(), null, gw.key).status()).isEqualTo(204);
        assertThat(estimate(gw, rule).get("count").asLong()).isEqualTo(before - 20);
        assertThat(estimate(gw, "tag:" + p).get("count").asLong()).isEqualTo(199);
        assertThat(members(gw, "tag:" + p, 1000)).doesNotContain(u.id()).hasSize(199);
        assertThat(gw.get(base(gw) + "/users/" + u.id()).status()).isEqualTo(404);
        // Re-created, the user is new (a new index) and has no tags from before.
        TestGateway.Response again = gw.send("PUT", base(gw) + "/users/" + u.id(), "{\"tags\":[\"" + p + "_back\"]}", gw.key);
        assertThat(again.status()).as(again.raw().body()).isEqualTo(200);
        assertThat(again.json().get("tags").toString()).isEqualTo("[\"" + p + "_back\"]");
        assertThat(estimate(gw, "tag:" + p).get("count").asLong()).isEqualTo(199);
        assertThat(estimate(gw, "tag:" + p + "_back").get("count").asLong()).isEqualTo(1);
    }

    @Test
    void changesToOneUserWithinOneRequestEndAsTheLastOneSays(TestGateway gw) {
        // One import names each user three times: the changes land in one script call, which must
        // see its own earlier changes (new user, then known) in the data and in every bitmap.
        String p = p();
        ArrayNode users = JSON.createArrayNode();
        for (int i = 0; i < 50; i++) {
            String id = p + "-" + i;
            users.addObject().put("user", id).set("tags", JSON.createArrayNode().add(p + "_a").add(p + "_b"));
            users.addObject().put("user", id).<ObjectNode>set("tags", JSON.createArrayNode().add(p + "_b").add(p + "_c"))
                    .putObject("attributes").put(p + "_city", "x");
            users.addObject().put("user", id).<ObjectNode>set("tags", JSON.createArrayNode().add(p + "_c"))
                    .putObject("attributes").put(p + "_city", "y");
        }
        TestGateway.Response r = gw.post(base(gw) + "/users", JSON.createObjectNode().set("users", users).toString());
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        assertThat(r.json().get("rejected").asInt()).as(r.raw().body()).isZero();
        assertThat(estimate(gw, "tag:" + p + "_c AND attr." + p + "_city = \"y\"").get("count").asLong()).isEqualTo(50);
        assertThat(estimate(gw, "tag:" + p + "_a OR tag:" + p + "_b OR attr." + p + "_city = \"x\"").get("count").asLong())
                .isZero();
        JsonNode one = gw.get(base(gw) + "/users/" + p + "-7").json();
        assertThat(one.get("tags").toString()).isEqualTo("[\"" + p + "_c\"]");
        assertThat(one.get("attributes").get(p + "_city").asText()).isEqualTo("y");
        // Added and removed again within one bulk tag request: the last operation wins.
        TestGateway.Response add = gw.post(base(gw) + "/tags/" + p + "_d",
                "{\"add\":[\"" + p + "-1\",\"" + p + "-2\"],\"remove\":[\"" + p + "-2\"]}");
        assertThat(add.status()).as(add.raw().body()).isEqualTo(200);
        assertThat(members(gw, "tag:" + p + "_d", 100)).containsExactly(p + "-1");
    }

    @Test
    void twoNodesMeetingTheSameNewUsersAtOnceGiveEachUserOneIndex(TestGateway gw) throws Exception {
        // Both nodes assign from their own reserves; the script reads and sets a user's index in one
        // step, so each user ends with one index: counted once, by both nodes' tags.
        String p = p();
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 3_000; i++) {
            ids.add(p + "-" + i);
        }
        try (TestGateway other = TestGateway.nodeBeside(gw, "")) {
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(4);
            try {
                List<java.util.concurrent.Future<TestGateway.Response>> calls = new ArrayList<>();
                for (int round = 0; round < 2; round++) {
                    for (TestGateway node : List.of(gw, other)) {
                        String tag = p + (node == gw ? "_a" : "_b");
                        List<String> order = new ArrayList<>(ids);
                        java.util.Collections.shuffle(order, new Random(round * 2 + (node == gw ? 0 : 1)));
                        calls.add(pool.submit(() -> node.post(base(node) + "/tags/" + tag,
                                JSON.createObjectNode().<ObjectNode>set("add", JSON.valueToTree(order)).toString())));
                    }
                }
                for (java.util.concurrent.Future<TestGateway.Response> c : calls) {
                    TestGateway.Response r = c.get(60, java.util.concurrent.TimeUnit.SECONDS);
                    assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
                }
            } finally {
                pool.shutdownNow();
            }
        }
        assertThat(estimate(gw, "tag:" + p + "_a AND tag:" + p + "_b").get("count").asLong()).isEqualTo(3_000);
        assertThat(estimate(gw, "tag:" + p + "_a OR tag:" + p + "_b").get("count").asLong()).isEqualTo(3_000);
        List<String> members = members(gw, "tag:" + p + "_a OR tag:" + p + "_b", 10_000);
        assertThat(members).hasSize(3_000).doesNotHaveDuplicates().containsExactlyInAnyOrderElementsOf(ids);
    }

    @Test
    void aUserWithNoDataIsOnlyInNegatedAudiences(TestGateway gw) {
        String p = p();
        String user = p + "-bare";
        TestGateway.Response r = gw.send("PUT", base(gw) + "/users/" + user, "{\"locale\":\"en-GB\"}", gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        assertThat(r.json().get("tags")).isEmpty();
        assertThat(r.json().get("attributes")).isEmpty();
        assertThat(r.json().get("flags").toString()).contains("consent.push", "consent.sms").doesNotContain("reachable");
        assertThat(members(gw, "NOT tag:" + p + " AND NOT reachable.push AND NOT attr." + p + " EXISTS", 10_000))
                .contains(user);
        assertThat(members(gw, "tag:" + p + " OR attr." + p + " EXISTS OR reachable.push", 10_000)).doesNotContain(user);
    }

    @Test
    void tagsAndAttributesAreTypedLimitedAndAnsweredPerItem(TestGateway gw) {
        String p = p();
        String user = p + "-u";
        TestGateway.Response ok = gw.send("PUT", base(gw) + "/users/" + user, "{\"tags\":[\"vip\",\"会员\",\"a:b.c-d_e\"],"
                + "\"attributes\":{\"city\":\"深圳\",\"ltv\":1250.5,\"orders\":3,\"vip\":true,"
                + "\"signup_at\":\"2026-03-01T08:00:00+08:00\",\"location\":{\"lat\":22.5,\"lon\":114.1}}}", gw.key);
        assertThat(ok.status()).as(ok.raw().body()).isEqualTo(200);
        assertThat(ok.json().get("tags").toString()).isEqualTo("[\"a:b.c-d_e\",\"vip\",\"会员\"]");
        JsonNode attrs = ok.json().get("attributes");
        assertThat(attrs.get("city").asText()).isEqualTo("深圳");
        assertThat(attrs.get("ltv").asDouble()).isEqualTo(1250.5);
        assertThat(attrs.get("orders").isIntegralNumber()).isTrue();
        assertThat(attrs.get("vip").asBoolean()).isTrue();
        assertThat(attrs.get("signup_at").asText()).isEqualTo("2026-03-01T00:00:00Z");
        assertThat(attrs.get("location").get("lat").asDouble()).isEqualTo(22.5);
        // null removes, add/remove combine, replace replaces.
        TestGateway.Response patch = gw.send("PATCH", base(gw) + "/users/" + user,
                "{\"tags\":{\"add\":[\"new\"],\"remove\":[\"vip\"]},\"attributes\":{\"city\":null,\"ltv\":7}}", gw.key);
        assertThat(patch.status()).as(patch.raw().body()).isEqualTo(200);
        assertThat(patch.json().get("tags").toString()).isEqualTo("[\"a:b.c-d_e\",\"new\",\"会员\"]");
        assertThat(patch.json().get("attributes").has("city")).isFalse();
        assertThat(patch.json().get("attributes").get("ltv").asInt()).isEqualTo(7);
        assertThat(gw.send("PUT", base(gw) + "/users/" + user, "{\"tags\":{\"replace\":[\"only\"]}}", gw.key)
                .json().get("tags").toString()).isEqualTo("[\"only\"]");

        // Bad input: the field named.
        Map<String, String> bad = new LinkedHashMap<>();
        bad.put("{\"tags\":[\"has space\"]}", "tags[0]");
        bad.put("{\"tags\":[\"" + "x".repeat(65) + "\"]}", "tags[0]");
        bad.put("{\"tags\":[\"" + "会".repeat(22) + "\"]}", "tags[0]"); // 66 bytes
        bad.put("{\"tags\":{\"add\":[\"a\"],\"replace\":[\"b\"]}}", "tags");
        bad.put("{\"tags\":{\"plus\":[\"a\"]}}", "tags.plus");
        bad.put("{\"tags\":\"vip\"}", "tags");
        bad.put("{\"attributes\":{\"1city\":\"x\"}}", "attributes.1city");
        bad.put("{\"attributes\":{\"bio\":\"" + "x".repeat(1025) + "\"}}", "attributes.bio");
        bad.put("{\"attributes\":{\"list\":[1,2]}}", "attributes.list");
        bad.put("{\"attributes\":{\"location\":{\"lat\":91,\"lon\":0}}}", "attributes.location");
        bad.put("{\"attributes\":{\"t\":\"2026-02-30T00:00:00Z\"}}", "attributes.t");
        bad.put("{\"attribute\":{}}", "attribute");
        for (Map.Entry<String, String> e : bad.entrySet()) {
            TestGateway.Response r = gw.send("PATCH", base(gw) + "/users/" + user, e.getKey(), gw.key);
            assertThat(r.status()).as(e.getKey() + " -> " + r.raw().body()).isEqualTo(422);
            assertThat(r.json().get("error").get("field").asText()).as(e.getKey()).isEqualTo(e.getValue());
        }
        // Over the per-user limits: nothing of the change applies.
        List<String> many = new ArrayList<>();
        for (int i = 0; i < 150; i++) {
            many.add("t" + i);
        }
        assertThat(gw.send("PATCH", base(gw) + "/users/" + user, "{\"tags\":{\"add\":" + JSON.valueToTree(many) + "}}", gw.key)
                .status()).isEqualTo(200);
        List<String> more = many.stream().map(t -> t + "x").limit(60).toList();
        TestGateway.Response over = gw.send("PATCH", base(gw) + "/users/" + user,
                "{\"tags\":{\"add\":" + JSON.valueToTree(more) + "}}", gw.key);
        assertThat(over.status()).as(over.raw().body()).isEqualTo(422);
        assertThat(over.json().get("error").get("field").asText()).isEqualTo("tags");
        assertThat(over.json().get("error").get("message").asText()).contains("200");
        assertThat(gw.get(base(gw) + "/users/" + user).json().get("tags").size()).isEqualTo(151);

        // Bulk import: per item.
        ObjectNode body = JSON.createObjectNode();
        ArrayNode users = body.putArray("users");
        users.addObject().put("user", p + "-i0").putArray("tags").add("ok");
        users.addObject().put("user", p + "-i1").putArray("tags").add("bad tag");
        ObjectNode attrs101 = users.addObject().put("user", p + "-i2").putObject("attributes");
        for (int i = 0; i < 101; i++) {
            attrs101.put("a" + i, i);
        }
        TestGateway.Response imp = gw.post(base(gw) + "/users", body.toString());
        assertThat(imp.status()).as(imp.raw().body()).isEqualTo(200);
        assertThat(imp.json().get("imported").asInt()).isEqualTo(1);
        assertThat(imp.json().get("users").get(1).get("error").get("field").asText()).isEqualTo("users[1].tags[0]");
        assertThat(imp.json().get("users").get(2).get("error").get("field").asText()).isEqualTo("users[2].attributes");

        // Bulk tag: per item; unknown users on remove are counted, not created.
        TestGateway.Response bulk = gw.post(base(gw) + "/tags/" + p + "_b",
                "{\"add\":[\"" + p + "-b1\",\"\",7],\"remove\":[\"" + p + "-never\"]}");
        assertThat(bulk.status()).as(bulk.raw().body()).isEqualTo(200);
        assertThat(bulk.json().get("added").asInt()).isEqualTo(1);
        assertThat(bulk.json().get("unknown").asInt()).isEqualTo(1);
        assertThat(bulk.json().get("rejected").asInt()).isEqualTo(2);
        assertThat(bulk.json().get("errors").get(0).get("field").asText()).isEqualTo("add[1]");
        assertThat(bulk.json().get("errors").get(1).get("field").asText()).isEqualTo("add[2]");
        assertThat(gw.get(base(gw) + "/users/" + p + "-never").status()).isEqualTo(404);
        assertThat(gw.post(base(gw) + "/tags/bad%20tag", "{\"add\":[\"x\"]}").json().get("error").get("field").asText())
                .isEqualTo("tag");
    }

    @Test
    void savedAudiencesAndBadRules(TestGateway gw) {
        String p = p();
        TestGateway.Response created = gw.post(base(gw) + "/audiences", "{\"name\":\"VIPs\",\"rule\":\"tag:" + p + "\"}");
        assertThat(created.status()).isEqualTo(201);
        String id = created.json().get("id").asText();
        assertThat(created.header("Location")).endsWith("/audiences/" + id);
        assertThat(gw.get(base(gw) + "/audiences/" + id).json().get("rule").asText()).isEqualTo("tag:" + p);
        assertThat(gw.get(base(gw) + "/audiences").json().get("audiences").toString()).contains(id);
        assertThat(gw.get(base(gw) + "/audiences/" + id + "/estimate").json().get("count").asLong()).isZero();
        gw.post(base(gw) + "/tags/" + p, "{\"add\":[\"" + p + "-1\",\"" + p + "-2\"]}");
        JsonNode e = gw.get(base(gw) + "/audiences/" + id + "/estimate").json();
        assertThat(e.get("count").asLong()).isEqualTo(2);
        // Users known only from a tag operation have the default consent (no record = consent).
        assertThat(estimate(gw, "consent.push AND consent.sms AND NOT reachable.push AND tag:" + p).get("count").asLong())
                .isEqualTo(2);
        assertThat(e.get("computedInMs").asLong()).isGreaterThanOrEqualTo(0);
        TestGateway.Response put = gw.send("PUT", base(gw) + "/audiences/" + id,
                "{\"name\":\"none\",\"rule\":\"tag:" + p + " AND NOT tag:" + p + "\"}", gw.key);
        assertThat(put.status()).isEqualTo(200);
        assertThat(gw.get(base(gw) + "/audiences/" + id + "/estimate").json().get("count").asLong()).isZero();

        TestGateway.Response bad = gw.post(base(gw) + "/audiences", "{\"name\":\"x\",\"rule\":\"tag:a AND (tag:b OR\"}");
        assertThat(bad.status()).isEqualTo(422);
        assertThat(bad.errorCode()).isEqualTo("invalid_rule");
        assertThat(bad.json().get("error").get("field").asText()).isEqualTo("rule");
        assertThat(bad.json().get("error").get("message").asText()).startsWith("rule: column 20: expected a term");
        TestGateway.Response badEstimate = gw.post(base(gw) + "/audiences/estimate", "{\"rule\":\"attr.x >\"}");
        assertThat(badEstimate.status()).isEqualTo(422);
        assertThat(badEstimate.json().get("error").get("message").asText()).contains("column 9");
        assertThat(gw.post(base(gw) + "/audiences", "{\"rule\":\"tag:a\"}").json().get("error").get("field").asText())
                .isEqualTo("name");
        assertThat(gw.post(base(gw) + "/audiences/estimate", "{\"rule\":\"tag:a\",\"x\":1}").errorCode()).isEqualTo("unknown_field");
        assertThat(gw.get(base(gw) + "/audiences/" + id + "/members?cursor=%21%21").status()).isEqualTo(400);
        assertThat(gw.get(base(gw) + "/audiences/" + id + "/members?limit=0").status()).isEqualTo(400);
        assertThat(gw.get(base(gw) + "/audiences/nope/estimate").status()).isEqualTo(404);
        // Another app's key sees none of it.
        assertThat(gw.send("GET", base(gw) + "/audiences/" + id, null, gw.otherKey).status()).isEqualTo(404);
        assertThat(gw.send("DELETE", base(gw) + "/audiences/" + id, null, gw.key).status()).isEqualTo(204);
        assertThat(gw.get(base(gw) + "/audiences/" + id).status()).isEqualTo(404);
        assertThat(URLEncoder.encode(p, StandardCharsets.UTF_8)).isEqualTo(p);
    }
}
