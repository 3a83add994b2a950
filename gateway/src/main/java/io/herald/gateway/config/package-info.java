/**
 * Configuration: {@link io.herald.gateway.config.HeraldConfig} (immutable, validated at start-up
 * from HOCON + environment + command line) and {@link io.herald.gateway.config.StartupException}
 * (the one-line, actionable start-up failure).
 */
package io.herald.gateway.config;
