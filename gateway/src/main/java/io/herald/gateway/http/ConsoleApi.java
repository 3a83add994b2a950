package io.herald.gateway.http;

import io.netty.handler.codec.http.HttpResponseStatus;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

import static io.herald.gateway.http.Routes.Access.OPS;

/**
 * The operator console: {@code GET /console} and its files, static HTML/CSS/JS from the jar (ours
 * under {@code /console/}, uPlot from its webjar), with no build step. The page holds no data and
 * no secret: it signs in with an API key kept in the tab's sessionStorage and calls the {@code /v1}
 * API with it in the Authorization header (never a cookie, so no CSRF; never in a URL), and shows
 * only what the key's roles allow (the API refuses the rest anyway).
 *
 * <p>Only files from a fixed list are served (a path parameter cannot reach anything else), under
 * a Content-Security-Policy that allows scripts, styles and requests to this origin only, with no
 * inline script or style and no eval. Files are read from the jar once, on first use. Thread-safe.
 */
final class ConsoleApi {
    static final String CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    /** File name -> [resource path ("uplot:" for the webjar's dist folder), content type]. */
    private static final Map<String, String[]> FILES = Map.of(
            "index.html", new String[] {"/console/index.html", "text/html; charset=utf-8"},
            "console.js", new String[] {"/console/console.js", "text/javascript; charset=utf-8"},
            "console.css", new String[] {"/console/console.css", "text/css; charset=utf-8"},
            "uPlot.iife.min.js", new String[] {"uplot:dist/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
            "uPlot.min.css", new String[] {"uplot:dist/uPlot.min.css", "text/css; charset=utf-8"},
            "uPlot-LICENSE.txt", new String[] {"uplot:LICENSE", "text/plain; charset=utf-8"});

    /** The files, read from the jar when first asked for (class initialisation: once, thread-safe). */
    private static final class Loaded {
        static final Map<String, byte[]> BYTES = load();
    }

    void routes(Routes r) {
        r.get("/console", OPS, x -> file(x, "index.html"));
        r.get("/console/{file}", OPS, x -> file(x, x.param("file")));
    }

    private void file(Exchange x, String name) {
        byte[] body = Loaded.BYTES.get(name);
        if (body == null) {
            x.notFound("file '" + name + "'");
            return;
        }
        x.header("Content-Security-Policy", CSP).header("X-Content-Type-Options", "nosniff")
                .header("X-Frame-Options", "DENY").header("Referrer-Policy", "no-referrer")
                .header("Cache-Control", name.equals("index.html") ? "no-store" : "no-cache");
        x.bytes(HttpResponseStatus.OK, FILES.get(name)[1], body);
    }

    private static Map<String, byte[]> load() {
        String uplot = "/META-INF/resources/webjars/uplot/" + webjarVersion("org.webjars.npm", "uplot") + "/";
        Map<String, String> paths = new HashMap<>();
        FILES.forEach((name, spec) -> paths.put(name, spec[0].startsWith("uplot:") ? uplot + spec[0].substring(6) : spec[0]));
        return resources(paths);
    }

    /** The class-path resources of {@code paths} (file name -> resource path) that exist, read whole. */
    static Map<String, byte[]> resources(Map<String, String> paths) {
        Map<String, byte[]> out = new HashMap<>();
        paths.forEach((name, path) -> {
            try (InputStream in = ConsoleApi.class.getResourceAsStream(path)) {
                if (in != null) {
                    out.put(name, in.readAllBytes());
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        return Map.copyOf(out);
    }

    /** The version of a webjar on the class path (from its Maven pom.properties), or "missing". */
    static String webjarVersion(String group, String artifact) {
        try (InputStream in = ConsoleApi.class.getResourceAsStream(
                "/META-INF/maven/" + group + "/" + artifact + "/pom.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "missing");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
