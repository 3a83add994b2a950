/**
 * Redis access: {@link io.herald.gateway.redis.Redis} (client, per-stage connections, scripts),
 * {@link io.herald.gateway.redis.EmbeddedRedis} (the redis-server process the gateway and the
 * tests start when no URL is given) and {@link io.herald.gateway.redis.Keys} (every key name, each with one hash tag).
 */
package io.herald.gateway.redis;
