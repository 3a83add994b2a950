package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.registry.UserRegistry;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static io.herald.gateway.http.Routes.Access.API_KEY;

/**
 * An app's users and their devices ({@link UserRegistry}): a user's profile
 * ({@code GET/PUT/DELETE /v1/apps/{app}/users/{user}}), one device
 * ({@code PUT/DELETE .../users/{user}/devices/{device}}), and bulk import
 * ({@code POST /v1/apps/{app}/users}, up to {@link #MAX_IMPORT} users, each accepted or refused on
 * its own). {@code {app}} must be the key's app (else 404). Bodies are validated by
 * {@link UserRequests}.
 *
 * <p>Threads: import runs on an intake thread (its body can be large), the rest on the event loop;
 * all answer from Redis callbacks. Stateless; thread-safe.
 */
final class UsersApi {
    /** Most users in one import request. */
    static final int MAX_IMPORT = 10_000;

    private final UserRegistry registry;

    UsersApi(UserRegistry registry) {
        this.registry = registry;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/users", API_KEY, x -> x.offload(() -> importUsers(x)));
        r.get("/v1/apps/{app}/users/{user}", API_KEY, this::getUser);
        r.put("/v1/apps/{app}/users/{user}", API_KEY, this::putUser);
        r.delete("/v1/apps/{app}/users/{user}", API_KEY, this::deleteUser);
        r.put("/v1/apps/{app}/users/{user}/devices/{device}", API_KEY, this::putDevice);
        r.delete("/v1/apps/{app}/users/{user}/devices/{device}", API_KEY, this::deleteDevice);
    }

    private static void invalid(Exchange x, UserRequests.Invalid e) {
        x.error(HttpResponseStatus.valueOf(ErrorCode.valueOf(e.error.code().toUpperCase(Locale.ROOT))
                .httpStatus()), e.error);
    }

    /** The path's user of an app the key owns, or null once the 404 or the user id's error is answered. */
    private static String checkedUser(Exchange x) {
        if (!x.ownApp()) {
            return null;
        }
        String user = x.param("user");
        try {
            UserRequests.checkUser(user);
        } catch (UserRequests.Invalid e) {
            invalid(x, e);
            return null;
        }
        return user;
    }

    private void getUser(Exchange x) {
        String user = checkedUser(x);
        if (user == null) {
            return;
        }
        String app = x.app();
        registry.get(app, user).whenComplete((u, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (u == null) {
                x.notFound("user");
            } else {
                x.json(HttpResponseStatus.OK, UserRequests.userJson(x.mapper(), app, user, u));
            }
        });
    }

    private void putUser(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        String user = x.param("user");
        if (!x.jsonContent()) {
            return;
        }
        ObjectNode patch;
        try {
            UserRequests.checkUser(user);
            JsonNode body = x.jsonObject();
            if (body == null) {
                return;
            }
            if (body.has("devices") || body.has("user")) {
                throw new UserRequests.Invalid(ErrorCode.UNKNOWN_FIELD, body.has("devices") ? "devices" : "user",
                        "devices/user: not part of a profile update (use PUT .../devices/{id}, or POST /v1/apps/{app}/users)");
            }
            patch = UserRequests.profilePatch(body, "", x.mapper(), System.currentTimeMillis());
        } catch (UserRequests.Invalid e) {
            invalid(x, e);
            return;
        }
        registry.updateProfile(app, user, patch).thenCompose(p -> registry.get(app, user)).whenComplete((u, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, UserRequests.userJson(x.mapper(), app, user, u));
            }
        });
    }

    private void deleteUser(Exchange x) {
        String user = checkedUser(x);
        if (user == null) {
            return;
        }
        String app = x.app();
        registry.deleteUser(app, user).whenComplete((deleted, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (!deleted) {
                x.notFound("user");
            } else {
                x.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    private void putDevice(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        String user = x.param("user");
        String deviceId = x.param("device");
        if (!x.jsonContent()) {
            return;
        }
        UserRequests.DeviceBody d;
        try {
            UserRequests.checkUser(user);
            UserRequests.checkDeviceId(deviceId, "deviceId");
            JsonNode body = x.jsonObject();
            if (body == null) {
                return;
            }
            d = UserRequests.device(body, "");
        } catch (UserRequests.Invalid e) {
            invalid(x, e);
            return;
        }
        registry.put(app, user, deviceId, d.platform(), d.token(), d.sandbox()).whenComplete((device, e) -> {
            if (e instanceof UserRegistry.TooManyDevicesException
                    || (e != null && e.getCause() instanceof UserRegistry.TooManyDevicesException)) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD,
                        "deviceId", "user already has " + UserRegistry.MAX_DEVICES_PER_USER
                                + " devices (expected: fewer; delete one first)"));
            } else if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, UserRequests.deviceJson(x.mapper(), device));
            }
        });
    }

    private void deleteDevice(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        String user = x.param("user");
        String deviceId = x.param("device");
        try {
            UserRequests.checkUser(user);
        } catch (UserRequests.Invalid e) {
            invalid(x, e);
            return;
        }
        registry.delete(app, user, deviceId).whenComplete((deleted, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (!deleted) {
                x.notFound("device");
            } else {
                x.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    /** On an intake thread. */
    private void importUsers(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        if (!x.jsonContent()) {
            return;
        }
        JsonNode body = x.jsonObject();
        if (body == null) {
            return;
        }
        JsonNode users = body.get("users");
        if (users == null || !users.isArray() || body.size() != 1) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "users",
                    "body: expected {\"users\": [...]} and nothing else"));
            return;
        }
        if (users.size() > MAX_IMPORT) {
            x.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, ApiError.of(ErrorCode.TOO_MANY_ITEMS, "users",
                    "users: " + users.size() + " items (expected: <= " + MAX_IMPORT + ")"));
            return;
        }
        long now = System.currentTimeMillis();
        List<UserRegistry.Import> ok = new ArrayList<>(users.size());
        ObjectNode out = x.mapper().createObjectNode();
        ArrayNode results = out.putArray("users");
        int rejected = 0;
        for (int i = 0; i < users.size(); i++) {
            JsonNode u = users.get(i);
            String p = "users[" + i + "].";
            ObjectNode res = results.addObject().put("index", i);
            try {
                if (!u.isObject() || !u.path("user").isTextual()) {
                    throw new UserRequests.Invalid(ErrorCode.MISSING_FIELD, p + "user", p + "user: required string");
                }
                String user = u.get("user").asText();
                try {
                    UserRequests.checkUser(user);
                } catch (UserRequests.Invalid e) {
                    throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "user", p + e.getMessage());
                }
                ObjectNode patch = UserRequests.profilePatch(u, p, x.mapper(), now);
                List<UserRegistry.ImportDevice> devices = new ArrayList<>();
                JsonNode ds = u.get("devices");
                if (ds != null) {
                    if (!ds.isArray() || ds.size() > UserRegistry.MAX_DEVICES_PER_USER) {
                        throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "devices", p
                                + "devices: expected an array of at most " + UserRegistry.MAX_DEVICES_PER_USER + " devices");
                    }
                    for (int j = 0; j < ds.size(); j++) {
                        String dp = p + "devices[" + j + "].";
                        JsonNode d = ds.get(j);
                        String id = d.path("id").asText(null);
                        UserRequests.checkDeviceId(id, dp + "id");
                        ObjectNode rest = d.deepCopy();
                        rest.remove("id");
                        UserRequests.DeviceBody body2 = UserRequests.device(rest, dp);
                        devices.add(new UserRegistry.ImportDevice(id, body2.platform(), body2.token(), body2.sandbox()));
                    }
                }
                ok.add(new UserRegistry.Import(user, patch, devices));
                res.put("user", user);
            } catch (UserRequests.Invalid e) {
                rejected++;
                res.set("error", x.mapper().valueToTree(e.error));
            }
        }
        out.put("imported", ok.size());
        out.put("rejected", rejected);
        if (ok.isEmpty()) {
            x.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
            return;
        }
        registry.importUsers(app, ok).whenComplete((v, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, out);
            }
        });
    }
}
