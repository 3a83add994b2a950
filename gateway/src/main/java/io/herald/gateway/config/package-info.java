/**
 * Configuration: {@link io.herald.gateway.config.HeraldConfig} (the node's settings, immutable,
 * validated at start-up from HOCON, then the environment, then the command line, each overriding
 * the one before), {@link io.herald.gateway.config.AppConfig} (one app's policy, an immutable value
 * whose builder validates it), {@code ConfigReader} (HOCON to both, every error one line naming the
 * key) and {@link io.herald.gateway.config.StartupException} (the one-line, actionable start-up
 * failure).
 */
package io.herald.gateway.config;
