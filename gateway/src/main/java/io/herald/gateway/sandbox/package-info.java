/**
 * Sandbox providers: local, real-protocol peers the gateway delivers to when an app has no
 * credentials for a provider or sandbox mode is on, and that tests and the load test script.
 * {@link io.herald.gateway.sandbox.SandboxApns} (Pushy's MockApnsServer, HTTP/2 + TLS),
 * {@link io.herald.gateway.sandbox.SandboxFcm} (FCM v1 send endpoint over HTTP/2 + TLS and an
 * OAuth2 token endpoint), {@link io.herald.gateway.sandbox.SandboxSmsc} (a jsmpp SMSC sending
 * delivery receipts); each also runs standalone ({@code SandboxMain}, {@code SandboxFcmMain},
 * {@code SandboxSmscMain}). Every peer binds 127.0.0.1 only.
 */
package io.herald.gateway.sandbox;
