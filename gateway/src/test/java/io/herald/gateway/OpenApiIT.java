package io.herald.gateway;

import io.swagger.v3.oas.models.OpenAPI;
import io.swagger.v3.oas.models.PathItem;
import io.swagger.v3.parser.OpenAPIV3Parser;
import io.swagger.v3.parser.core.models.SwaggerParseResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The API contract (issue 18, first part): docs/openapi.yaml parses as OpenAPI 3.1 without a
 * message, the gateway serves it at {@code GET /openapi.yaml} without a key, and its operations
 * are exactly the router's routes: a new route without its place in the contract fails the
 * build, as does a documented path the router does not have. Each keyed operation names the
 * role the router requires. Swagger UI at {@code /docs} reads it, under a strict CSP. Every IT
 * answer is checked against it ({@link Contract}); the check itself is shown to fail here.
 */
@Timeout(120)
class OpenApiIT {
    @Test
    void theContractNamesEveryRouteAndNothingElse() throws Exception {
        String onDisk = Files.readString(Path.of("..", "docs", "openapi.yaml"));
        SwaggerParseResult parsed = new OpenAPIV3Parser().readContents(onDisk, null, null);
        assertThat(parsed.getMessages()).as("parser messages").isEmpty();
        OpenAPI api = parsed.getOpenAPI();
        assertThat(api.getOpenapi()).startsWith("3.1");

        Set<String> documented = new TreeSet<>();
        Map<String, String> roles = new java.util.HashMap<>();
        for (Map.Entry<String, PathItem> p : api.getPaths().entrySet()) {
            for (Map.Entry<PathItem.HttpMethod, io.swagger.v3.oas.models.Operation> op
                    : p.getValue().readOperationsMap().entrySet()) {
                String key = op.getKey().name() + " " + p.getKey();
                documented.add(key);
                Map<String, Object> ext = op.getValue().getExtensions();
                roles.put(key, ext == null ? null : String.valueOf(ext.getOrDefault("x-herald-role",
                        ext.get("x-herald-access"))));
            }
        }
        try (TestGateway gw = new TestGateway("")) {
            Map<String, String> access = gw.herald.routes();
            Set<String> routed = new TreeSet<>(access.keySet());
            Set<String> undocumented = new TreeSet<>(routed);
            undocumented.removeAll(documented);
            Set<String> unrouted = new TreeSet<>(documented);
            unrouted.removeAll(routed);
            assertThat(undocumented).as("routes missing from docs/openapi.yaml").isEmpty();
            assertThat(unrouted).as("operations in docs/openapi.yaml that no route serves").isEmpty();
            for (String route : routed) {
                assertThat(roles.get(route)).as("x-herald-role (or x-herald-access) of " + route).isEqualTo(access.get(route));
            }
            assertThat(roles.get("POST /v1/batches")).isEqualTo("send");
            assertThat(roles.get("POST /v1/apps/{app}/campaigns/{id}/approve")).isEqualTo("approve");
            assertThat(roles.get("PUT /v1/apps/{app}/policy")).isEqualTo("admin");
            assertThat(roles.get("GET /healthz")).isEqualTo("ops");

            TestGateway.Response served = gw.send("GET", "/openapi.yaml", null, null);
            assertThat(served.status()).isEqualTo(200);
            assertThat(served.raw().body()).isEqualTo(onDisk);
            assertThat(served.raw().headers().firstValue("content-type").orElse("")).startsWith("application/yaml");

            TestGateway.Response page = gw.send("GET", "/docs", null, null);
            assertThat(page.status()).isEqualTo(200);
            assertThat(page.raw().body()).contains("/docs/swagger-ui-bundle.js").doesNotContain("<script>");
            assertThat(page.raw().headers().firstValue("content-security-policy").orElse(""))
                    .contains("script-src 'self'").doesNotContain("unsafe-eval");
            TestGateway.Response start = gw.send("GET", "/docs/herald-docs.js", null, null);
            assertThat(start.raw().body()).contains("url: '/openapi.yaml'");
            TestGateway.Response bundle = gw.send("GET", "/docs/swagger-ui-bundle.js", null, null);
            assertThat(bundle.status()).isEqualTo(200);
            assertThat(bundle.raw().body().length()).as("the webjar's bundle").isGreaterThan(100_000);
            assertThat(gw.send("GET", "/docs/index.html", null, null).status()).as("not on the list").isEqualTo(404);
        }
    }

    @Test
    void theContractCheckFailsOnABreach() {
        String status = "{\"batchId\":\"0b0e3c1e-8f4a-4c4e-9a53-2b7c0f6f1e11\",\"states\":{\"queued\":1},\"done\":false}";
        Contract.verify("GET", "/v1/batches/x?wait=1", 200, "application/json", status);
        assertThatThrownBy(() -> Contract.verify("GET", "/v1/batches/x", 200, "application/json",
                "{\"batchId\":\"b\",\"states\":{}}"))
                .isInstanceOf(AssertionError.class).hasMessageContaining("GET /v1/batches/{id} 200")
                .hasMessageContaining("done");
        assertThatThrownBy(() -> Contract.verify("GET", "/v1/batches/x", 200, "application/json",
                "{\"batchId\":\"b\",\"states\":{\"queued\":\"one\"},\"done\":true}"))
                .isInstanceOf(AssertionError.class).hasMessageContaining("/states/queued");
        assertThatThrownBy(() -> Contract.verify("GET", "/v1/batches/x", 418, "application/json", "{}"))
                .isInstanceOf(AssertionError.class).hasMessageContaining("status 418 is not documented");
        assertThatThrownBy(() -> Contract.verify("GET", "/v1/batches/x", 404, "application/json",
                "{\"error\":{\"code\":\"not_found\"}}"))
                .as("a shared response's schema: message is required")
                .isInstanceOf(AssertionError.class).hasMessageContaining("message");
        Contract.verify("DELETE", "/v1/batches/x", 405, "application/json", "{}");
        Contract.verify("GET", "/v1/nowhere", 404, "application/json", "{}");
        assertThat(Contract.template("/v1/apps/a/audiences/estimate")).as("literal segments win")
                .isEqualTo("/v1/apps/{app}/audiences/estimate");
    }
}
