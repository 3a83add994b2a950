/**
 * Sandbox providers: local, real-protocol peers the gateway delivers to when an app has no
 * credentials or sandbox mode is on. {@link io.herald.gateway.sandbox.SandboxApns} (Pushy's
 * MockApnsServer on 127.0.0.1, scriptable per token) and
 * {@link io.herald.gateway.sandbox.SandboxMain} (the same, standalone).
 */
package io.herald.gateway.sandbox;
