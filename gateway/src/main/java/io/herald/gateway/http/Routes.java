package io.herald.gateway.http;

import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.QueryStringDecoder;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The route table of the API: method + path pattern -> handler, and who may call it. Each resource
 * adds its own routes ({@code void routes(Routes r)}); {@link HttpApiHandler} matches every request
 * against the table and applies the route's {@link Access} (and, for API keys, the role the route
 * names: 403 {@code forbidden} naming it) before the handler runs, so no handler checks keys,
 * roles or draining itself.
 *
 * <p>A pattern is a path of literal segments and {@code {name}} segments; a {@code {name}} matches
 * one non-empty segment, percent-decoded (as a path: {@code +} stays {@code +}, {@code %2F} is a
 * {@code /} inside the value, not a separator). A path whose segment does not decode matches
 * nothing. Patterns are tried in the order added; the first whose method and path match wins.
 *
 * <p>Filled at start-up by one thread, then only read: safe to share once published (the handler
 * that holds it is built before the server starts).
 */
final class Routes {
    /** Who may call a route, and whether it is served while the node drains. */
    enum Access {
        /** A Bearer API key is required (401 without); refused with 503 while draining. */
        API_KEY,
        /** No key (devices post here); refused with 503 while draining. */
        PUBLIC,
        /** No key, served while draining too: probes, metrics, tracked links. */
        OPS
    }

    /** The work of one route; runs on the connection's event loop and must not block it. */
    @FunctionalInterface
    interface Handler {
        void handle(Exchange x);
    }

    /**
     * A route; {@code role} is the role an {@link Access#API_KEY} route needs (null for the others,
     * and for the one route any key may call: {@link #getForAnyKey}).
     */
    record Route(HttpMethod method, String pattern, Access access, ApiKeys.Role role, Handler handler) {
    }

    /**
     * The outcome of a lookup: a route and its decoded path parameters, or (route null) the
     * methods the path allows (empty: no such path).
     */
    record Match(Route route, Map<String, String> params, Set<HttpMethod> allowed) {
    }

    private final List<Route> routes = new ArrayList<>();
    private final List<String[]> patterns = new ArrayList<>();

    /**
     * Every route as {@code "METHOD pattern"} -> who may call it: the role of a keyed route
     * ({@code "any"} for {@link #getForAnyKey}), else {@code "public"} or {@code "ops"}; in
     * registration order (the contract test reads it).
     */
    Map<String, String> list() {
        Map<String, String> out = new LinkedHashMap<>();
        for (Route r : routes) {
            out.put(r.method().name() + " " + r.pattern(), r.access() != Access.API_KEY
                    ? r.access().name().toLowerCase(java.util.Locale.ROOT) : r.role() == null ? "any" : r.role().wire());
        }
        return out;
    }

    /** A route without a key ({@link Access#PUBLIC} or {@link Access#OPS}). */
    Routes get(String pattern, Access access, Handler h) {
        return add(HttpMethod.GET, pattern, access, null, h);
    }

    Routes post(String pattern, Access access, Handler h) {
        return add(HttpMethod.POST, pattern, access, null, h);
    }

    /** A route for API keys with {@code role}. */
    Routes get(String pattern, ApiKeys.Role role, Handler h) {
        return add(HttpMethod.GET, pattern, Access.API_KEY, role, h);
    }

    Routes post(String pattern, ApiKeys.Role role, Handler h) {
        return add(HttpMethod.POST, pattern, Access.API_KEY, role, h);
    }

    Routes put(String pattern, ApiKeys.Role role, Handler h) {
        return add(HttpMethod.PUT, pattern, Access.API_KEY, role, h);
    }

    Routes delete(String pattern, ApiKeys.Role role, Handler h) {
        return add(HttpMethod.DELETE, pattern, Access.API_KEY, role, h);
    }

    /** A route any valid API key may call, whatever its roles (the key's own description). */
    Routes getForAnyKey(String pattern, Handler h) {
        return put(HttpMethod.GET, pattern, Access.API_KEY, null, h);
    }

    Routes add(HttpMethod method, String pattern, Access access, ApiKeys.Role role, Handler h) {
        if ((access == Access.API_KEY) != (role != null)) {
            throw new IllegalArgumentException(method + " " + pattern + ": an API_KEY route names its role, no other does");
        }
        return put(method, pattern, access, role, h);
    }

    private Routes put(HttpMethod method, String pattern, Access access, ApiKeys.Role role, Handler h) {
        if (!pattern.startsWith("/")) {
            throw new IllegalArgumentException("pattern: '" + pattern + "' (expected: starts with /)");
        }
        String[] segments = pattern.substring(1).split("/", -1);
        for (int i = 0; i < routes.size(); i++) {
            if (routes.get(i).method().equals(method) && java.util.Arrays.equals(patterns.get(i), segments)) {
                throw new IllegalArgumentException(method + " " + pattern + ": already routed");
            }
        }
        routes.add(new Route(method, pattern, access, role, h));
        patterns.add(segments);
        return this;
    }

    /** Matches a raw (still percent-encoded) path, without the query string. */
    Match match(HttpMethod method, String rawPath) {
        String[] segments = rawPath.startsWith("/") ? rawPath.substring(1).split("/", -1) : new String[] {rawPath};
        Set<HttpMethod> allowed = new LinkedHashSet<>();
        for (int i = 0; i < routes.size(); i++) {
            Map<String, String> params = params(patterns.get(i), segments);
            if (params == null) {
                continue;
            }
            Route r = routes.get(i);
            if (r.method().equals(method)) {
                return new Match(r, params, Set.of());
            }
            allowed.add(r.method());
        }
        return new Match(null, Map.of(), allowed);
    }

    /** The decoded parameters when {@code segments} fit {@code pattern}, else null. */
    private static Map<String, String> params(String[] pattern, String[] segments) {
        if (pattern.length != segments.length) {
            return null;
        }
        Map<String, String> params = null;
        for (int i = 0; i < pattern.length; i++) {
            String p = pattern[i];
            if (p.startsWith("{") && p.endsWith("}")) {
                String value = decode(segments[i]);
                if (value == null || value.isEmpty()) {
                    return null;
                }
                if (params == null) {
                    params = new LinkedHashMap<>();
                }
                params.put(p.substring(1, p.length() - 1), value);
            } else if (!p.equals(segments[i])) {
                return null;
            }
        }
        return params == null ? Map.of() : params;
    }

    /** Percent-decodes one path segment ({@code +} is literal); null when it is malformed. */
    static String decode(String segment) {
        if (segment.indexOf('%') < 0) {
            return segment;
        }
        try {
            return QueryStringDecoder.decodeComponent(segment.replace("+", "%2B"));
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
