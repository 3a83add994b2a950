/**
 * The HTTP API, in Netty's shape: {@link io.herald.gateway.http.HttpServer} (bootstrap),
 * {@code HttpServerInitializer} (the per-connection pipeline and its limits),
 * {@link io.herald.gateway.http.HttpApiHandler} (the router). Start at the router: it matches each
 * request against the one route table ({@code Routes}) and applies 404, 405, the API key and
 * draining once; one class per resource ({@code BatchesApi}, {@code UsersApi}, {@code FunnelsApi},
 * {@code ReceiptsApi}, {@code DeadLettersApi}, {@code WebhooksApi}, {@code OpsApi}) adds its
 * routes and does its work through an {@code Exchange} (one request, its helpers, its one answer).
 * {@link io.herald.gateway.http.Readiness} is what {@code /readyz} reports.
 */
package io.herald.gateway.http;
