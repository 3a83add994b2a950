package io.herald.gateway.http;

import io.netty.handler.codec.http.HttpResponseStatus;

import java.nio.charset.StandardCharsets;
import java.util.Map;

import static io.herald.gateway.http.Routes.Access.OPS;

/**
 * The API contract for people: {@code GET /docs} is Swagger UI (the org.webjars build, served from
 * the jar) reading {@code GET /openapi.yaml}. Only the files Swagger UI needs are served, from a
 * fixed list, with a Content-Security-Policy that allows scripts and styles from this origin only
 * (Swagger UI sets styles inline, so inline styles are allowed; no inline script: its start-up is a
 * file of ours). No key: the contract is public; trying a call needs one.
 *
 * <p>Files are read from the jar once, on first use. Thread-safe; stateless after that.
 */
final class DocsApi {
    static final String CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            + "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    private static final String INDEX = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"UTF-8\">"
            + "<title>Herald API</title><link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">"
            + "<link rel=\"icon\" type=\"image/png\" href=\"/docs/favicon-32x32.png\"></head><body>"
            + "<div id=\"swagger-ui\"></div><script src=\"/docs/swagger-ui-bundle.js\"></script>"
            + "<script src=\"/docs/herald-docs.js\"></script></body></html>\n";
    private static final String START = "window.onload = function () {\n"
            + "  window.ui = SwaggerUIBundle({url: '/openapi.yaml', dom_id: '#swagger-ui', deepLinking: true});\n};\n";
    /** The files served from the webjar, with their types. */
    private static final Map<String, String> FILES = Map.of(
            "swagger-ui.css", "text/css; charset=utf-8",
            "swagger-ui-bundle.js", "text/javascript; charset=utf-8",
            "favicon-32x32.png", "image/png",
            "favicon-16x16.png", "image/png");

    /** The files, read from the jar when first asked for (class initialisation: once, thread-safe). */
    private static final class Loaded {
        static final Map<String, byte[]> BYTES = load();
    }

    void routes(Routes r) {
        r.get("/docs", OPS, x -> send(x, "text/html; charset=utf-8", INDEX.getBytes(StandardCharsets.UTF_8)));
        r.get("/docs/{file}", OPS, this::file);
    }

    private void file(Exchange x) {
        String name = x.param("file");
        if (name.equals("herald-docs.js")) {
            send(x, "text/javascript; charset=utf-8", START.getBytes(StandardCharsets.UTF_8));
            return;
        }
        byte[] body = Loaded.BYTES.get(name);
        if (body == null) {
            x.notFound("file '" + name + "'");
            return;
        }
        send(x, FILES.get(name), body);
    }

    private static void send(Exchange x, String type, byte[] body) {
        x.header("Content-Security-Policy", CSP).header("X-Content-Type-Options", "nosniff")
                .header("Cache-Control", "public, max-age=3600");
        x.bytes(HttpResponseStatus.OK, type, body);
    }

    private static Map<String, byte[]> load() {
        String base = "/META-INF/resources/webjars/swagger-ui/" + ConsoleApi.webjarVersion("org.webjars", "swagger-ui") + "/";
        Map<String, String> paths = new java.util.HashMap<>();
        FILES.keySet().forEach(name -> paths.put(name, base + name));
        return ConsoleApi.resources(paths);
    }
}
