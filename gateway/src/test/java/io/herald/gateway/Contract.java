package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaLocation;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

/**
 * The API contract as a check on every IT response (issue 18): {@link TestGateway#send} hands each
 * answer here, which finds its operation in docs/openapi.yaml (the path template matching the
 * request path, literal segments before templated ones), fails when the status is not documented
 * for it, and validates a JSON body against the documented {@code application/json} schema
 * (JSON Schema 2020-12, OpenAPI 3.1's dialect, {@code $ref}s resolved inside the document).
 * Requests to a path or method no operation serves (the 404 and 405 tests) are left alone.
 * {@code -Dherald.contract=off} turns the check off. The document and the compiled schemas are
 * loaded once per JVM; thread-safe.
 */
final class Contract {
    private static final boolean ON = !"off".equals(System.getProperty("herald.contract"));
    /** The IRI the whole document is registered under, so a JSON pointer into it names a schema. */
    private static final String BASE = "https://herald.invalid/openapi.json";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, Schema> SCHEMAS = new ConcurrentHashMap<>();

    private Contract() {
    }

    /** The document and a registry that knows it, loaded on first use. */
    private static final class Spec {
        static final JsonNode DOC;
        static final SchemaRegistry REGISTRY;

        static {
            try (InputStream in = Contract.class.getResourceAsStream("/openapi.yaml")) {
                DOC = new ObjectMapper(new YAMLFactory()).readTree(in);
                String asJson = JSON.writeValueAsString(DOC);
                REGISTRY = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12,
                        b -> b.schemas(Map.of(BASE, asJson)));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** Checks one answer when the contract is on; throws AssertionError on a breach. */
    static void check(String method, String path, int status, String contentType, String body) {
        if (ON) {
            verify(method, path, status, contentType, body);
        }
    }

    /**
     * Checks one answer against the contract: {@code path} may carry a query string;
     * {@code contentType} may be null. Throws AssertionError naming the breach.
     */
    static void verify(String method, String path, int status, String contentType, String body) {
        String bare = path.contains("?") ? path.substring(0, path.indexOf('?')) : path;
        String template = template(bare);
        JsonNode operation = template == null ? null
                : Spec.DOC.path("paths").path(template).get(method.toLowerCase(Locale.ROOT));
        if (operation == null) {
            return; // a path or method the gateway does not serve either (404, 405): OpenApiIT keeps both in step
        }
        JsonNode responses = operation.path("responses");
        String code = String.valueOf(status);
        String key = responses.has(code) ? code : responses.has(code.charAt(0) + "XX") ? code.charAt(0) + "XX"
                : responses.has("default") ? "default" : null;
        if (key == null) {
            throw new AssertionError(method + " " + template + ": status " + status
                    + " is not documented for this operation; body: " + body);
        }
        // A shared response (components/responses) is validated where it is written.
        JsonNode ref = responses.get(key).get("$ref");
        String at = ref != null ? ref.asText().substring(1)
                : "/paths/" + escape(template) + "/" + method.toLowerCase(Locale.ROOT) + "/responses/" + escape(key);
        boolean json = contentType != null && contentType.contains("json") && body != null && !body.isEmpty();
        if (!json || !Spec.DOC.at(at).path("content").path("application/json").has("schema")) {
            return;
        }
        String pointer = at + "/content/application~1json/schema";
        Schema schema = SCHEMAS.computeIfAbsent(pointer, p -> {
            Schema s = Spec.REGISTRY.getSchema(SchemaLocation.of(BASE + "#" + p));
            s.initializeValidators();
            return s;
        });
        JsonNode instance;
        try {
            instance = JSON.readTree(body);
        } catch (IOException e) {
            throw new AssertionError(method + " " + template + " " + status + ": not JSON: " + body, e);
        }
        List<com.networknt.schema.Error> errors = schema.validate(instance);
        if (!errors.isEmpty()) {
            throw new AssertionError(method + " " + template + " " + status + " breaks its schema ("
                    + pointer + "): " + errors.stream().map(Object::toString).collect(Collectors.joining("; "))
                    + "; body: " + body);
        }
    }

    private static String escape(String segment) {
        return segment.replace("~", "~0").replace("/", "~1");
    }

    /** The documented path template matching {@code path}; literal segments win over templated ones. */
    static String template(String path) {
        String[] parts = path.split("/", -1);
        String best = null;
        String bestShape = null;
        for (Iterator<String> it = Spec.DOC.path("paths").fieldNames(); it.hasNext(); ) {
            String candidate = it.next();
            String[] segments = candidate.split("/", -1);
            if (segments.length != parts.length) {
                continue;
            }
            StringBuilder shape = new StringBuilder();
            boolean matches = true;
            for (int i = 0; i < parts.length && matches; i++) {
                boolean templated = segments[i].startsWith("{") && segments[i].endsWith("}");
                matches = templated ? !parts[i].isEmpty() : segments[i].equals(parts[i]);
                shape.append(templated ? '1' : '0');
            }
            // The lowest shape (literal = 0 earliest) is the most specific match.
            if (matches && (bestShape == null || shape.toString().compareTo(bestShape) < 0)) {
                best = candidate;
                bestShape = shape.toString();
            }
        }
        return best;
    }
}
