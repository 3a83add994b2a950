package io.herald.gateway.audience;

import java.nio.charset.StandardCharsets;
import java.time.DateTimeException;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The audience rule language, parsed by hand into an immutable tree of {@link Node}s (only these
 * operators exist; nothing in a rule can reach Java). The grammar, with keywords in any case:
 *
 * <pre>
 * rule    = or
 * or      = and { "OR" and }
 * and     = not { "AND" not }
 * not     = "NOT" not | "(" or ")" | term
 * term    = "tag:" (tag | string)
 *         | "attr." name ( "EXISTS" | "IN" "(" value { "," value } ")" | op value )
 *         | "consent." ("push" | "sms")
 *         | "reachable." ("push" | "apns" | "fcm" | "sms")
 *         | "bucket(" int ".." int ")"                      -- 0 &lt;= a &lt;= b &lt;= 99
 *         | "near(" name "," lat "," lon "," km ")"
 *         | "event." name "." ( "within(" days ")" | ("count(" | "sum(") days ")" op number )
 *         | "alias." namespace "EXISTS"
 *         | ("lifecycle" | "rfm") ( ("=" | "!=") string | "IN" "(" string { "," string } ")" )
 * days    = int "d"                                   -- 1..400 UTC days, today included
 * op      = "=" | "!=" | "&lt;" | "&lt;=" | "&gt;" | "&gt;="
 * value   = string | number | "true" | "false"   -- a string in ISO-8601 instant form is a time
 * </pre>
 *
 * A syntax error is a {@link RuleException} with the 1-based column and what was expected there.
 * Limits: {@value #MAX_LENGTH} characters, nesting {@value #MAX_DEPTH} deep, {@value #MAX_TERMS}
 * terms. Stateless; the tree is immutable and thread-safe.
 */
public final class Rule {
    /** Longest rule, in characters. */
    public static final int MAX_LENGTH = 4096;
    /** Deepest nesting of parentheses and NOTs. */
    public static final int MAX_DEPTH = 32;
    /** Most terms in one rule. */
    public static final int MAX_TERMS = 64;

    private static final Pattern TAG_CHARS = Pattern.compile(
            "[A-Za-z0-9_:.\\-\\p{IsHan}\\p{IsHiragana}\\p{IsKatakana}\\p{IsHangul}]+");
    private static final Pattern INSTANT = Pattern.compile(
            "\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})");

    /** A node of a parsed rule. */
    public sealed interface Node permits And, Or, Not, Tag, AttrExists, AttrCompare, AttrIn, Flag, Bucket, Near, Event, Tier {
    }

    /** All of {@code parts}. */
    public record And(List<Node> parts) implements Node { }

    /** Any of {@code parts}. */
    public record Or(List<Node> parts) implements Node { }

    /** Every known user not in {@code part}. */
    public record Not(Node part) implements Node { }

    /** Users carrying {@code tag}. */
    public record Tag(String tag) implements Node { }

    /** Users with attribute {@code name}, of any type. */
    public record AttrExists(String name) implements Node { }

    /** Users whose attribute {@code name} compares with {@code value} ({@code NE}: has it, and it differs). */
    public record AttrCompare(String name, Op op, Value value) implements Node { }

    /** Users whose attribute {@code name} equals one of {@code values}. */
    public record AttrIn(String name, List<Value> values) implements Node { }

    /**
     * A derived flag: {@code consent.push}, {@code consent.sms}, {@code reachable.push|apns|fcm|sms},
     * {@code alias.<namespace>} (the user has an alias there).
     */
    public record Flag(String flag) implements Node { }

    /** Sample buckets {@code from..to} (0..99) by hash of app and user. */
    public record Bucket(int from, int to) implements Node { }

    /** Users whose location attribute {@code name} is within {@code km} of (lat, lon). */
    public record Near(String name, double lat, double lon, double km) implements Node { }

    /**
     * An event term over the last {@code days} UTC days (today included): {@code within} (at least
     * one), or the {@code count} or {@code sum} compared with {@code value} ({@code op} null for within).
     */
    public record Event(String name, Fn fn, int days, Op op, double value) implements Node {
        public enum Fn { WITHIN, COUNT, SUM }

        /** Whether a user without any such event in the window (count and sum 0) matches. */
        public boolean matchesZero() {
            return fn != Fn.WITHIN && test(0);
        }

        /** Whether a count or sum matches. */
        public boolean test(double v) {
            return switch (op) {
                case EQ -> v == value;
                case NE -> v != value;
                case LT -> v < value;
                case LE -> v <= value;
                case GT -> v > value;
                case GE -> v >= value;
            };
        }

        /** True when the term is exactly "at least one in the window" (no per-user check needed). */
        public boolean isWithin() {
            return fn == Fn.WITHIN || (fn == Fn.COUNT && ((op == Op.GE && value > 0 && value <= 1)
                    || (op == Op.GT && value >= 0 && value < 1) || (op == Op.NE && value == 0)));
        }
    }

    /** Users in any of {@code values} of derived tier {@code kind} ({@code lifecycle} or {@code rfm}). */
    public record Tier(String kind, List<String> values) implements Node { }

    /** Comparison operators. */
    public enum Op { EQ, NE, LT, LE, GT, GE }

    /** A literal: a string, a number, a boolean, or a time (epoch ms) written as an ISO-8601 instant. */
    public record Value(Kind kind, String text, double number) {
        public enum Kind { STRING, NUMBER, BOOLEAN, TIME }
    }

    /** A rule that does not parse: the column (1-based) and what was expected. */
    public static final class RuleException extends Exception {
        private static final long serialVersionUID = 1L;
        private final int column;

        RuleException(int column, String message) {
            super("column " + column + ": " + message, null, false, false);
            this.column = column;
        }

        public int column() {
            return column;
        }
    }

    private final String src;
    private int pos;
    private int depth;
    private int terms;

    private Rule(String src) {
        this.src = src;
    }

    /** Parses a rule. */
    public static Node parse(String rule) throws RuleException {
        if (rule == null || rule.isBlank()) {
            throw new RuleException(1, "expected a rule, found nothing");
        }
        if (rule.length() > MAX_LENGTH) {
            throw new RuleException(MAX_LENGTH + 1, "a rule is at most " + MAX_LENGTH + " characters");
        }
        Rule p = new Rule(rule);
        Node n = p.or();
        p.skip();
        if (p.pos < rule.length()) {
            throw p.error("AND, OR or the end of the rule");
        }
        return n;
    }

    private RuleException error(String expected) {
        return new RuleException(pos + 1, "expected " + expected + ", found " + found());
    }

    private String found() {
        if (pos >= src.length()) {
            return "the end of the rule";
        }
        int end = Math.min(src.length(), pos + 12);
        return "'" + src.substring(pos, end) + (end < src.length() ? "..." : "") + "'";
    }

    private void skip() {
        while (pos < src.length() && Character.isWhitespace(src.charAt(pos))) {
            pos++;
        }
    }

    /** Consumes a keyword (any case) when it stands here as a whole word. */
    private boolean keyword(String kw) {
        skip();
        int end = pos + kw.length();
        if (end <= src.length() && src.regionMatches(true, pos, kw, 0, kw.length())
                && (end == src.length() || !isWordChar(src.charAt(end)))) {
            pos = end;
            return true;
        }
        return false;
    }

    private static boolean isWordChar(char c) {
        return Character.isLetterOrDigit(c) || c == '_';
    }

    private boolean symbol(String s) {
        skip();
        if (src.startsWith(s, pos)) {
            pos += s.length();
            return true;
        }
        return false;
    }

    private void expect(String s, String what) throws RuleException {
        if (!symbol(s)) {
            throw error(what);
        }
    }

    private Node or() throws RuleException {
        List<Node> parts = new ArrayList<>();
        parts.add(and());
        while (keyword("OR")) {
            parts.add(and());
        }
        return parts.size() == 1 ? parts.get(0) : new Or(List.copyOf(parts));
    }

    private Node and() throws RuleException {
        List<Node> parts = new ArrayList<>();
        parts.add(not());
        while (keyword("AND")) {
            parts.add(not());
        }
        return parts.size() == 1 ? parts.get(0) : new And(List.copyOf(parts));
    }

    private Node not() throws RuleException {
        skip();
        if (++depth > MAX_DEPTH) {
            throw new RuleException(pos + 1, "nesting deeper than " + MAX_DEPTH);
        }
        try {
            if (keyword("NOT")) {
                return new Not(not());
            }
            if (symbol("(")) {
                Node n = or();
                expect(")", "')' or AND or OR");
                return n;
            }
            return term();
        } finally {
            depth--;
        }
    }

    private String identifier(String what) throws RuleException {
        skip();
        int start = pos;
        if (pos < src.length() && (Character.isLetter(src.charAt(pos)) || src.charAt(pos) == '_')) {
            while (pos < src.length() && isWordChar(src.charAt(pos)) && src.charAt(pos) < 128) {
                pos++;
            }
        }
        if (pos == start) {
            throw error(what);
        }
        return src.substring(start, pos);
    }

    private Node term() throws RuleException {
        skip();
        int start = pos;
        if (++terms > MAX_TERMS) {
            throw new RuleException(pos + 1, "more than " + MAX_TERMS + " terms");
        }
        String word;
        try {
            word = identifier("a term (tag:, attr., event., lifecycle, rfm, consent., reachable., alias., bucket(, near() or '(' or NOT").toLowerCase(Locale.ROOT);
        } catch (RuleException e) {
            throw e;
        }
        switch (word) {
            case "tag" -> {
                if (pos >= src.length() || src.charAt(pos) != ':') {
                    throw error("':' after tag");
                }
                pos++;
                String tag;
                int at = pos;
                if (pos < src.length() && src.charAt(pos) == '"') {
                    tag = string();
                } else {
                    while (pos < src.length() && TAG_CHARS.matcher(String.valueOf(src.charAt(pos))).matches()) {
                        pos++;
                    }
                    tag = src.substring(at, pos);
                }
                if (tag.isEmpty() || !TAG_CHARS.matcher(tag).matches()
                        || tag.getBytes(StandardCharsets.UTF_8).length > 64) {
                    pos = at;
                    throw error("a tag (1..64 bytes of A-Z a-z 0-9 _ : . - or CJK letters)");
                }
                return new Tag(tag);
            }
            case "attr" -> {
                expectTight('.', "'.' and an attribute name after attr");
                String name = identifier("an attribute name");
                if (keyword("EXISTS")) {
                    return new AttrExists(name);
                }
                if (keyword("IN")) {
                    expect("(", "'(' after IN");
                    List<Value> values = new ArrayList<>();
                    do {
                        values.add(value());
                        if (values.size() > 100) {
                            throw new RuleException(pos + 1, "IN takes at most 100 values");
                        }
                    } while (symbol(","));
                    expect(")", "',' or ')'");
                    return new AttrIn(name, List.copyOf(values));
                }
                int opAt = pos;
                Op op = op();
                if (op == null) {
                    throw error("EXISTS, IN or an operator (= != < <= > >=) after attr." + name);
                }
                skip();
                int valueAt = pos;
                Value v = value();
                if (v.kind() == Value.Kind.STRING || v.kind() == Value.Kind.BOOLEAN) {
                    if (op != Op.EQ && op != Op.NE) {
                        pos = opAt;
                        skip();
                        throw new RuleException(pos + 1, "expected = or != before a " + v.kind().name().toLowerCase(Locale.ROOT)
                                + " (< <= > >= compare numbers and ISO-8601 times), found " + found());
                    }
                }
                if (valueAt < 0) {
                    throw error("a value");
                }
                return new AttrCompare(name, op, v);
            }
            case "consent" -> {
                expectTight('.', "'.' after consent");
                String ch = identifier("push or sms").toLowerCase(Locale.ROOT);
                if (!ch.equals("push") && !ch.equals("sms")) {
                    pos -= ch.length();
                    throw error("push or sms");
                }
                return new Flag("consent." + ch);
            }
            case "reachable" -> {
                expectTight('.', "'.' after reachable");
                String ch = identifier("push, apns, fcm or sms").toLowerCase(Locale.ROOT);
                if (!List.of("push", "apns", "fcm", "sms").contains(ch)) {
                    pos -= ch.length();
                    throw error("push, apns, fcm or sms");
                }
                return new Flag("reachable." + ch);
            }
            case "bucket" -> {
                expect("(", "'(' after bucket");
                int fromAt = pos;
                int from = integer();
                expect("..", "'..' between the bucket bounds, as in bucket(0..9)");
                int to = integer();
                expect(")", "')'");
                if (from < 0 || to > 99 || from > to) {
                    pos = fromAt;
                    skip();
                    throw new RuleException(pos + 1, "expected buckets a..b with 0 <= a <= b <= 99, found " + from + ".." + to);
                }
                return new Bucket(from, to);
            }
            case "near" -> {
                expect("(", "'(' after near");
                String name = identifier("a location attribute name");
                expect(",", "',' and a latitude");
                skip();
                int latAt = pos;
                double lat = number();
                expect(",", "',' and a longitude");
                skip();
                int lonAt = pos;
                double lon = number();
                expect(",", "',' and a distance in km");
                skip();
                int kmAt = pos;
                double km = number();
                expect(")", "')'");
                if (!(lat >= -85.05112878 && lat <= 85.05112878)) {
                    throw new RuleException(latAt + 1, "expected a latitude within -85.05..85.05, found " + lat);
                }
                if (!(lon >= -180 && lon <= 180)) {
                    throw new RuleException(lonAt + 1, "expected a longitude within -180..180, found " + lon);
                }
                if (!(km > 0 && km <= 20_000)) {
                    throw new RuleException(kmAt + 1, "expected a distance in km within (0, 20000], found " + km);
                }
                return new Near(name, lat, lon, km);
            }
            case "lifecycle", "rfm" -> {
                List<String> allowed = word.equals("lifecycle") ? Tiers.LIFECYCLE : Tiers.RFM;
                List<String> values = new ArrayList<>();
                boolean not = false;
                if (keyword("IN")) {
                    expect("(", "'(' after IN");
                    do {
                        values.add(tierValue(allowed, word));
                    } while (symbol(","));
                    expect(")", "',' or ')'");
                } else {
                    skip();
                    int opAt = pos;
                    Op op = op();
                    if (op != Op.EQ && op != Op.NE) {
                        pos = opAt;
                        throw error("=, != or IN after " + word);
                    }
                    not = op == Op.NE;
                    values.add(tierValue(allowed, word));
                }
                if (not) {
                    List<String> others = new ArrayList<>(allowed);
                    others.removeAll(values);
                    values = others;
                }
                return new Tier(word, List.copyOf(values));
            }
            case "alias" -> {
                expectTight('.', "'.' and a namespace after alias");
                int nsAt = pos;
                String ns = identifier("an alias namespace");
                if (!ns.matches("[a-z][a-z0-9_]{0,31}")) {
                    pos = nsAt;
                    throw error("an alias namespace (1..32 of a-z 0-9 _, starting with a letter)");
                }
                if (!keyword("EXISTS")) {
                    throw error("EXISTS after alias." + ns);
                }
                return new Flag("alias." + ns);
            }
            case "event" -> {
                expectTight('.', "'.' and an event name after event");
                String name = identifier("an event name");
                expectTight('.', "'.' and count(, sum( or within( after event." + name);
                int fnAt = pos;
                String fn = identifier("count, sum or within").toLowerCase(Locale.ROOT);
                Event.Fn f = switch (fn) {
                    case "count" -> Event.Fn.COUNT;
                    case "sum" -> Event.Fn.SUM;
                    case "within" -> Event.Fn.WITHIN;
                    default -> null;
                };
                if (f == null) {
                    pos = fnAt;
                    throw error("count, sum or within");
                }
                expect("(", "'(' and a number of days, as in " + fn + "(30d)");
                skip();
                int daysAt = pos;
                int days = 0;
                while (pos < src.length() && Character.isDigit(src.charAt(pos)) && pos - daysAt < 4) {
                    days = days * 10 + (src.charAt(pos++) - '0');
                }
                if (pos == daysAt || pos >= src.length() || src.charAt(pos) != 'd' || days < 1 || days > 400) {
                    pos = daysAt;
                    throw error("a number of days 1..400 followed by d, as in 30d");
                }
                pos++;
                expect(")", "')'");
                if (f == Event.Fn.WITHIN) {
                    return new Event(name, f, days, null, 0);
                }
                Op op = op();
                if (op == null) {
                    throw error("an operator (= != < <= > >=) after " + fn + "(" + days + "d)");
                }
                return new Event(name, f, days, op, number());
            }
            default -> {
                pos = start;
                throw error("a term (tag:, attr., event., lifecycle, rfm, consent., reachable., alias., bucket(, near() or '(' or NOT");
            }
        }
    }

    private String tierValue(List<String> allowed, String kind) throws RuleException {
        skip();
        int at = pos;
        if (pos >= src.length() || src.charAt(pos) != '"') {
            throw error("a quoted " + kind + " value: " + String.join(", ", allowed));
        }
        String v = string();
        if (!allowed.contains(v)) {
            pos = at;
            throw error("one of " + String.join(", ", allowed));
        }
        return v;
    }

    private void expectTight(char c, String what) throws RuleException {
        if (pos >= src.length() || src.charAt(pos) != c) {
            throw error(what);
        }
        pos++;
    }

    private Op op() {
        skip();
        for (String s : new String[] {"!=", "<=", ">=", "=", "<", ">"}) {
            if (src.startsWith(s, pos)) {
                pos += s.length();
                return switch (s) {
                    case "!=" -> Op.NE;
                    case "<=" -> Op.LE;
                    case ">=" -> Op.GE;
                    case "=" -> Op.EQ;
                    case "<" -> Op.LT;
                    default -> Op.GT;
                };
            }
        }
        return null;
    }

    private Value value() throws RuleException {
        skip();
        if (pos < src.length() && src.charAt(pos) == '"') {
            int at = pos;
            String s = string();
            if (INSTANT.matcher(s).matches()) {
                try {
                    return new Value(Value.Kind.TIME, s, OffsetDateTime.parse(s).toInstant().toEpochMilli());
                } catch (DateTimeException e) {
                    pos = at;
                    throw error("a valid ISO-8601 instant");
                }
            }
            return new Value(Value.Kind.STRING, s, 0);
        }
        if (keyword("true")) {
            return new Value(Value.Kind.BOOLEAN, "true", 1);
        }
        if (keyword("false")) {
            return new Value(Value.Kind.BOOLEAN, "false", 0);
        }
        if (pos < src.length() && (Character.isDigit(src.charAt(pos)) || src.charAt(pos) == '-')) {
            int at = pos;
            double d = number();
            return new Value(Value.Kind.NUMBER, src.substring(at, pos), d);
        }
        throw error("a value (a \"string\", a number, true or false)");
    }

    private String string() throws RuleException {
        int at = pos;
        pos++; // the opening quote
        StringBuilder b = new StringBuilder();
        while (pos < src.length()) {
            char c = src.charAt(pos++);
            if (c == '"') {
                return b.toString();
            }
            if (c == '\\' && pos < src.length()) {
                c = src.charAt(pos++);
                if (c != '"' && c != '\\') {
                    pos -= 2;
                    throw error("\\\" or \\\\ (the only escapes in a string)");
                }
            }
            b.append(c);
        }
        pos = at;
        throw error("a closing '\"' for the string that starts here");
    }

    private double number() throws RuleException {
        skip();
        int at = pos;
        if (pos < src.length() && src.charAt(pos) == '-') {
            pos++;
        }
        while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
            pos++;
        }
        // a '.' followed by a digit is a decimal point ('..' is bucket's range)
        if (pos + 1 < src.length() && src.charAt(pos) == '.' && Character.isDigit(src.charAt(pos + 1))) {
            pos++;
            while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
                pos++;
            }
        }
        String s = src.substring(at, pos);
        if (s.isEmpty() || s.equals("-")) {
            pos = at;
            throw error("a number");
        }
        double d = Double.parseDouble(s);
        if (Math.abs(d) > 1e15) {
            pos = at;
            throw error("a number within +-1e15");
        }
        return d;
    }

    private int integer() throws RuleException {
        skip();
        int at = pos;
        while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
            pos++;
        }
        if (pos == at || pos - at > 3) {
            pos = at;
            throw error("a whole number 0..99");
        }
        return Integer.parseInt(src.substring(at, pos));
    }
}
