package io.herald.gateway.audience;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RuleTest {

    private static Rule.Node parse(String s) throws Rule.RuleException {
        return Rule.parse(s);
    }

    @Test
    void precedenceIsNotThenAndThenOr() throws Exception {
        Rule.Node n = parse("tag:a OR tag:b AND NOT tag:c");
        assertThat(n).isEqualTo(new Rule.Or(List.of(new Rule.Tag("a"),
                new Rule.And(List.of(new Rule.Tag("b"), new Rule.Not(new Rule.Tag("c")))))));
        assertThat(parse("(tag:a OR tag:b) and not tag:c")).isEqualTo(new Rule.And(List.of(
                new Rule.Or(List.of(new Rule.Tag("a"), new Rule.Tag("b"))), new Rule.Not(new Rule.Tag("c")))));
    }

    @Test
    void seedCrowdsAndEveryTermParse() throws Exception {
        assertThat(parse("tag:wechat_login AND tag:app_installed AND tag:follows_oa AND NOT tag:recharged"))
                .isInstanceOf(Rule.And.class);
        Rule.Node n = parse("(attr.city IN (\"深圳\",\"广州\") OR attr.ltv >= 500) AND consent.push AND reachable.apns");
        assertThat(n.toString()).contains("深圳", "GE", "consent.push", "reachable.apns");
        assertThat(parse("tag:\"vip:gold\"")).isEqualTo(new Rule.Tag("vip:gold"));
        assertThat(parse("tag:会员")).isEqualTo(new Rule.Tag("会员"));
        assertThat(parse("bucket(0..9)")).isEqualTo(new Rule.Bucket(0, 9));
        assertThat(parse("near(location, 22.54, 114.05, 3.5)")).isEqualTo(new Rule.Near("location", 22.54, 114.05, 3.5));
        assertThat(parse("attr.vip = true")).isEqualTo(new Rule.AttrCompare("vip", Rule.Op.EQ,
                new Rule.Value(Rule.Value.Kind.BOOLEAN, "true", 1)));
        Rule.AttrCompare t = (Rule.AttrCompare) parse("attr.signup_at < \"2026-01-01T00:00:00Z\"");
        assertThat(t.value().kind()).isEqualTo(Rule.Value.Kind.TIME);
        assertThat((long) t.value().number()).isEqualTo(1767225600000L);
        assertThat(parse("attr.score != -1.5")).isEqualTo(new Rule.AttrCompare("score", Rule.Op.NE,
                new Rule.Value(Rule.Value.Kind.NUMBER, "-1.5", -1.5)));
        assertThat(parse("attr.email EXISTS")).isEqualTo(new Rule.AttrExists("email"));
        assertThat(parse("attr.name = \"a \\\"quoted\\\" \\\\ name\"")).isEqualTo(new Rule.AttrCompare("name", Rule.Op.EQ,
                new Rule.Value(Rule.Value.Kind.STRING, "a \"quoted\" \\ name", 0)));
    }

    @Test
    void eventTiersAndAliasTermsParse() throws Exception {
        assertThat(parse("event.purchase.count(30d) >= 2")).isEqualTo(new Rule.Event("purchase", Rule.Event.Fn.COUNT, 30,
                Rule.Op.GE, 2));
        assertThat(parse("event.app_open.within(7d)")).isEqualTo(new Rule.Event("app_open", Rule.Event.Fn.WITHIN, 7, null, 0));
        assertThat(((Rule.Event) parse("event.purchase.count(30d) >= 1")).isWithin()).isTrue();
        assertThat(((Rule.Event) parse("event.purchase.count(30d) >= 2")).isWithin()).isFalse();
        assertThat(((Rule.Event) parse("event.purchase.count(30d) < 2")).matchesZero()).isTrue();
        assertThat(parse("lifecycle = \"silent\"")).isEqualTo(new Rule.Tier("lifecycle", List.of("silent")));
        assertThat(parse("lifecycle != \"churned\"")).isEqualTo(new Rule.Tier("lifecycle", List.of("new", "active", "silent")));
        assertThat(parse("rfm IN (\"at_risk\", \"cannot_lose\")")).isEqualTo(new Rule.Tier("rfm", List.of("at_risk", "cannot_lose")));
        assertThat(parse("alias.wechat EXISTS")).isEqualTo(new Rule.Flag("alias.wechat"));
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @CsvSource(delimiter = '|', value = {
        "''                                  | 1  | expected a rule",
        "tag:a AND                           | 10 | expected a term",
        "tag:a AND OR tag:b                  | 11 | expected a term",
        "tag:a tag:b                         | 7  | expected AND, OR or the end",
        "(tag:a OR tag:b                     | 16 | expected ')'",
        "tag:                                | 5  | expected a tag",
        "tag:a/b                             | 6  | expected AND, OR or the end",
        "attr.city ~ \"x\"                   | 11 | expected EXISTS, IN or an operator",
        "attr.city > \"x\"                   | 11 | expected = or != before a string",
        "attr.city = \"x                     | 13 | closing '\"'",
        "attr.city IN (\"a\" \"b\")          | 19 | expected ',' or ')'",
        "attr.n >= abc                       | 11 | expected a value",
        "attr.                               | 6  | expected an attribute name",
        "consent.email                       | 9  | expected push or sms",
        "reachable.pager                     | 11 | expected push, apns, fcm or sms",
        "bucket(5..200)                      | 8  | 0 <= a <= b <= 99",
        "bucket(9..3)                        | 8  | 0 <= a <= b <= 99",
        "bucket(1,2)                         | 9  | expected '..'",
        "near(location, 95, 0, 1)            | 16 | latitude",
        "near(location, 1, 0, 0)             | 22 | distance",
        "segment:x                           | 1  | expected a term",
        "attr.t < \"2026-13-01T00:00:00Z\"   | 10 | ISO-8601",
        "event.x.count(30) >= 2              | 15 | days 1..400 followed by d",
        "event.x.count(0d) >= 2              | 15 | days 1..400",
        "event.x.total(30d) >= 2             | 9  | count, sum or within",
        "event.x.count(30d)                  | 19 | an operator",
        "lifecycle = \"dormant\"             | 13 | one of new, active, silent, churned",
        "rfm > \"loyal\"                     | 5  | =, != or IN",
        "alias.WeChat EXISTS                 | 7  | alias namespace",
        "alias.wechat                        | 13 | EXISTS",
    })
    void syntaxErrorsNameTheColumnAndWhatWasExpected(String rule, int column, String message) {
        assertThatThrownBy(() -> parse(rule)).isInstanceOfSatisfying(Rule.RuleException.class, e -> {
            assertThat(e.column()).as(e.getMessage()).isEqualTo(column);
            assertThat(e.getMessage()).startsWith("column " + column + ": ").contains(message);
        });
    }

    @Test
    void limitsOnLengthDepthAndTerms() {
        assertThatThrownBy(() -> parse("tag:a OR ".repeat(600) + "tag:b")).hasMessageContaining("at most 4096");
        assertThatThrownBy(() -> parse("(".repeat(40) + "tag:a" + ")".repeat(40))).hasMessageContaining("nesting deeper than 32");
        assertThatThrownBy(() -> parse("NOT ".repeat(40) + "tag:a")).hasMessageContaining("nesting deeper than 32");
        assertThatThrownBy(() -> parse("tag:a OR ".repeat(64) + "tag:b")).hasMessageContaining("more than 64 terms");
    }
}
