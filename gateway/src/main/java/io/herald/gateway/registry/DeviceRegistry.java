package io.herald.gateway.registry;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.api.async.RedisAsyncCommands;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Users' devices per app, in Redis: one hash per (app, user), one JSON value per device id.
 * Writes come from the API ({@link #put}, {@link #delete}) and from the record stage
 * (invalidation, by script, only while the token is unchanged). The resolve stage reads many
 * users at once on its own pipelined connection ({@link #read}). Thread-safe; stateless apart
 * from the shared Redis.
 */
public final class DeviceRegistry {
    /** A user may have at most this many devices; more is a 422 at registration. */
    public static final int MAX_DEVICES_PER_USER = 100;

    private final Redis redis;
    private final ObjectMapper mapper;
    private final Redis.Script invalidate = new Redis.Script("/scripts/invalidate.lua");

    public DeviceRegistry(Redis redis, ObjectMapper mapper) {
        this.redis = redis;
        this.mapper = mapper;
    }

    /** Registers or replaces a device; it becomes active. Completes with the stored device. */
    public CompletableFuture<Device> put(String app, String user, String deviceId, String platform, String token,
                                         boolean sandbox) {
        long now = System.currentTimeMillis();
        Device d = new Device(deviceId, platform, token, sandbox, "active", now, null, null);
        RedisAsyncCommands<String, String> cmd = redis.async();
        String key = Keys.devices(app, user);
        return cmd.hlen(key).toCompletableFuture().thenCompose(n -> {
            if (n >= MAX_DEVICES_PER_USER) {
                return cmd.hexists(key, deviceId).toCompletableFuture().thenCompose(exists -> {
                    if (!exists) {
                        return CompletableFuture.failedFuture(new TooManyDevicesException());
                    }
                    return cmd.hset(key, deviceId, encode(d)).toCompletableFuture().thenApply(x -> d);
                });
            }
            return cmd.hset(key, deviceId, encode(d)).toCompletableFuture().thenApply(x -> d);
        });
    }

    /** Removes a device; completes with false when there was none. */
    public CompletableFuture<Boolean> delete(String app, String user, String deviceId) {
        return redis.async().hdel(Keys.devices(app, user), deviceId).toCompletableFuture().thenApply(n -> n > 0);
    }

    /** All devices of a user, sorted by id (empty when the user is unknown). */
    public CompletableFuture<List<Device>> list(String app, String user) {
        return redis.async().hgetall(Keys.devices(app, user)).toCompletableFuture().thenApply(this::decodeAll);
    }

    /** Queues a read of a user's devices on a caller's (pipelined) connection. */
    public CompletableFuture<Map<String, String>> read(RedisAsyncCommands<String, String> cmd, String app,
                                                       String user) {
        return cmd.hgetall(Keys.devices(app, user)).toCompletableFuture();
    }

    /** Queues an invalidation on a caller's connection; it only applies while the token is unchanged. */
    public CompletableFuture<Long> invalidate(RedisAsyncCommands<String, String> cmd, String app, String user,
                                              String deviceId, String token, String reason, long at) {
        return invalidate.run(cmd, io.lettuce.core.ScriptOutputType.INTEGER, new String[] {Keys.devices(app, user)},
                deviceId, token, reason, Long.toString(at));
    }

    public List<Device> decodeAll(Map<String, String> raw) {
        List<Device> out = new ArrayList<>(raw.size());
        for (Map.Entry<String, String> e : raw.entrySet()) {
            Device d = decode(e.getKey(), e.getValue());
            if (d != null) {
                out.add(d);
            }
        }
        out.sort(Comparator.comparing(Device::id));
        return out;
    }

    public Device decode(String id, String json) {
        try {
            JsonNode n = mapper.readTree(json);
            return new Device(id, n.path("platform").asText("apns"), n.path("token").asText(),
                    n.path("sandbox").asBoolean(false), n.path("state").asText("active"),
                    n.path("updatedAt").asLong(0), n.hasNonNull("reason") ? n.get("reason").asText() : null,
                    n.hasNonNull("invalidatedAt") ? n.get("invalidatedAt").asLong() : null);
        } catch (IOException e) {
            return null;
        }
    }

    private String encode(Device d) {
        ObjectNode n = mapper.createObjectNode();
        n.put("platform", d.platform());
        n.put("token", d.token());
        n.put("sandbox", d.sandbox());
        n.put("state", d.state());
        n.put("updatedAt", d.updatedAt());
        return n.toString();
    }

    /** The user already has {@link #MAX_DEVICES_PER_USER} devices. Stackless. */
    public static final class TooManyDevicesException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        TooManyDevicesException() {
            super("a user may have at most " + MAX_DEVICES_PER_USER + " devices", null, false, false);
        }
    }
}
