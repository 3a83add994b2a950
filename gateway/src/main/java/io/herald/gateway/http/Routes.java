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
 * against the table and applies the route's {@link Access} before the handler runs, so no handler
 * checks keys or draining itself.
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

    record Route(HttpMethod method, String pattern, Access access, Handler handler) {
    }

    /**
     * The outcome of a lookup: a route and its decoded path parameters, or (route null) the
     * methods the path allows (empty: no such path).
     */
    record Match(Route route, Map<String, String> params, Set<HttpMethod> allowed) {
    }

    private final List<Route> routes = new ArrayList<>();
    private final List<String[]> patterns = new ArrayList<>();

    Routes get(String pattern, Access access, Handler h) {
        return add(HttpMethod.GET, pattern, access, h);
    }

    Routes post(String pattern, Access access, Handler h) {
        return add(HttpMethod.POST, pattern, access, h);
    }

    Routes put(String pattern, Access access, Handler h) {
        return add(HttpMethod.PUT, pattern, access, h);
    }

    Routes delete(String pattern, Access access, Handler h) {
        return add(HttpMethod.DELETE, pattern, access, h);
    }

    Routes add(HttpMethod method, String pattern, Access access, Handler h) {
        if (!pattern.startsWith("/")) {
            throw new IllegalArgumentException("pattern: '" + pattern + "' (expected: starts with /)");
        }
        String[] segments = pattern.substring(1).split("/", -1);
        for (int i = 0; i < routes.size(); i++) {
            if (routes.get(i).method().equals(method) && java.util.Arrays.equals(patterns.get(i), segments)) {
                throw new IllegalArgumentException(method + " " + pattern + ": already routed");
            }
        }
        routes.add(new Route(method, pattern, access, h));
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
