package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.audience.Tiers;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.UserData;
import io.herald.gateway.registry.UserProfile;
import io.herald.gateway.registry.UserRegistry;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

import static io.herald.gateway.http.ApiKeys.Role.*;

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

    private final HeraldConfig config;
    private final UserRegistry registry;
    private final Audiences audiences;
    private final Tiers tiers;

    UsersApi(HeraldConfig config, UserRegistry registry, Audiences audiences, Tiers tiers) {
        this.config = config;
        this.registry = registry;
        this.audiences = audiences;
        this.tiers = tiers;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/users", MANAGE, x -> x.offload(() -> importUsers(x)));
        r.get("/v1/apps/{app}/users/{user}", READ, this::getUser);
        r.put("/v1/apps/{app}/users/{user}", MANAGE, this::putUser);
        r.add(io.netty.handler.codec.http.HttpMethod.PATCH, "/v1/apps/{app}/users/{user}", Routes.Access.API_KEY, MANAGE,
                this::putUser);
        r.post("/v1/apps/{app}/tags/{tag}", MANAGE, x -> x.offload(() -> bulkTag(x)));
        r.post("/v1/apps/{app}/users/{user}/merge", MANAGE, this::merge);
        r.delete("/v1/apps/{app}/users/{user}", MANAGE, this::deleteUser);
        r.put("/v1/apps/{app}/users/{user}/devices/{device}", MANAGE, this::putDevice);
        r.delete("/v1/apps/{app}/users/{user}/devices/{device}", MANAGE, this::deleteDevice);
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
        respondWithUser(x, app, user);
    }

    /** Answers 200 with the whole user (profile, devices, targeting data), or 404. */
    private void respondWithUser(Exchange x, String app, String user) {
        int window = config.apps().get(app).events().windowDays();
        CompletableFuture<List<UserData.EventSummary>> events =
                registry.data().eventSummaries(app, user, audiences.today(), window);
        CompletableFuture<UserData.View> data = registry.data().read(app, user);
        CompletableFuture<java.util.Map<String, String>> tiersOf = tiers.ofUser(app, user);
        registry.get(app, user).thenCombine(data, (u, d) -> new Object[] {u, d}).thenCombine(events, (ud, ev) -> {
            UserRegistry.User u = (UserRegistry.User) ud[0];
            UserData.View d = (UserData.View) ud[1];
            // Known: a profile, a device, a tag, an attribute or an event (an index alone is not a user).
            boolean none = u == null || (u.profile() == UserProfile.EMPTY && u.devices().isEmpty() && u.aliases().isEmpty());
            if (none && ev.isEmpty() && (d == null || (d.tags().isEmpty() && d.attributes().isEmpty()))) {
                return null;
            }
            ObjectNode out = UserRequests.userJson(x.mapper(), app, user,
                    u == null ? new UserRegistry.User(UserProfile.EMPTY, java.util.List.of()) : u);
            UserRequests.dataJson(out, d);
            ObjectNode summary = out.putObject("events");
            for (UserData.EventSummary s : ev) {
                ObjectNode n = summary.putObject(s.name());
                n.put("count", s.count());
                n.put("last", java.time.Instant.ofEpochMilli(s.last()).toString());
                if (config.apps().get(app).events().sum().containsKey(s.name())) {
                    n.put("sum", s.sum());
                }
                ObjectNode days = n.putObject("days");
                s.perDay().forEach((day, c) -> days.put(java.time.LocalDate.ofEpochDay(day).toString(), c));
            }
            out.put("windowDays", window);
            return out;
        }).thenCombine(tiersOf, (out, t) -> {
            if (out != null) {
                ObjectNode tn = out.putObject("tiers");
                t.forEach(tn::put);
            }
            return out;
        }).thenCombine(registry.recentMessages(app, user), (out, recent) -> {
            if (out != null) {
                com.fasterxml.jackson.databind.node.ArrayNode list = out.putArray("recentMessages");
                recent.forEach((id, at) -> list.addObject().put("id", id).put("at", java.time.Instant.ofEpochMilli(at).toString()));
            }
            return out;
        }).thenCompose(out -> {
            if (out == null) {
                return CompletableFuture.completedFuture(null);
            }
            java.time.ZoneId zone = out.hasNonNull("timeZone") ? java.time.ZoneId.of(out.get("timeZone").asText())
                    : java.time.ZoneOffset.UTC;
            return registry.data().engagement(app, user, zone, audiences.clock().millis(),
                    io.herald.gateway.tracking.MessageStore.ENGAGEMENT_HALF_LIFE_MS).thenApply(eng -> {
                        ObjectNode en = out.putObject("engagement");
                        en.put("timeZone", zone.getId());
                        if (eng != null) {
                            com.fasterxml.jackson.databind.node.ArrayNode hours = en.putArray("hours");
                            for (double h : eng.hours()) {
                                hours.add(Math.round(h * 1000) / 1000.0);
                            }
                            if (eng.habitualHour() >= 0) {
                                en.put("habitualHour", eng.habitualHour());
                            }
                        }
                        return out;
                    });
        }).whenComplete((out, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (out == null) {
                x.notFound("user");
            } else {
                x.json(HttpResponseStatus.OK, out);
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
        ObjectNode change;
        java.util.Map<String, String> aliases;
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
            change = UserRequests.dataChange(body, "", x.mapper());
            aliases = UserRequests.aliases(body, "");
            if (body.has("alias")) {
                throw new UserRequests.Invalid(ErrorCode.UNKNOWN_FIELD, "alias",
                        "alias: addresses a user in imports, tag operations and events; here use aliases");
            }
        } catch (UserRequests.Invalid e) {
            invalid(x, e);
            return;
        }
        registry.update(app, user, patch, change, aliases).whenComplete((outcome, e) -> {
            Throwable cause = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
            if (cause instanceof UserRegistry.AliasTakenException taken) {
                x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.ALIAS_TAKEN, "aliases." + taken.namespace(),
                        "aliases." + taken.namespace() + ": already an alias of another user (remove it there first)"));
            } else if (e != null) {
                x.unavailable(e);
            } else if (!UserData.OK.equals(outcome)) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, dataError(outcome, ""));
            } else {
                respondWithUser(x, app, user);
            }
        });
    }

    /** The error of a data change the store refused (a limit over the user's whole data). */
    private static ApiError dataError(String outcome, String p) {
        return "too_many_tags".equals(outcome)
                ? ApiError.of(ErrorCode.INVALID_FIELD, p + "tags", p + "tags: a user may have at most "
                        + UserData.MAX_TAGS + " tags (the change would exceed it; nothing of it applied)")
                : ApiError.of(ErrorCode.INVALID_FIELD, p + "attributes", p + "attributes: a user may have at most "
                        + UserData.MAX_ATTRIBUTES + " attributes (the change would exceed it; its tags and attributes "
                        + "were not applied)");
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
        List<Integer> okIndex = new ArrayList<>(users.size());
        List<java.util.Map<String, String>> okAliases = new ArrayList<>(users.size());
        List<String> refs = new ArrayList<>();
        ObjectNode out = x.mapper().createObjectNode();
        ArrayNode results = out.putArray("users");
        int rejected = 0;
        for (int i = 0; i < users.size(); i++) {
            JsonNode u = users.get(i);
            String p = "users[" + i + "].";
            ObjectNode res = results.addObject().put("index", i);
            try {
                String user;
                if (u.isObject() && !u.has("user") && u.has("alias")) {
                    String ref = UserRequests.aliasRef(u.get("alias"), p + "alias");
                    refs.add(ref);
                    user = ALIAS_MARK + ref;
                } else {
                    if (!u.isObject() || !u.path("user").isTextual() || u.has("alias")) {
                        throw new UserRequests.Invalid(ErrorCode.MISSING_FIELD, p + "user", p
                                + "user: required string (or alias: namespace:id of an existing user, not both)");
                    }
                    user = u.get("user").asText();
                    try {
                        UserRequests.checkUser(user);
                    } catch (UserRequests.Invalid e) {
                        throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "user", p + e.getMessage());
                    }
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
                ok.add(new UserRegistry.Import(user, patch, devices, UserRequests.dataChange(u, p, x.mapper())));
                okAliases.add(UserRequests.aliases(u, p));
                okIndex.add(i);
                if (!user.startsWith(ALIAS_MARK)) {
                    res.put("user", user);
                }
            } catch (UserRequests.Invalid e) {
                rejected++;
                res.set("error", x.mapper().valueToTree(e.error));
            }
        }
        if (ok.isEmpty()) {
            out.put("imported", 0);
            out.put("rejected", rejected);
            x.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
            return;
        }
        int[] refused = {rejected};
        List<UserRegistry.Import> go = new ArrayList<>(ok.size());
        List<Integer> goIndex = new ArrayList<>(ok.size());
        List<java.util.Map<String, String>> goAliases = new ArrayList<>(ok.size());
        // Resolution and alias claims are awaited here, on the intake thread: the import itself
        // must start from it (its connection is opened on first use, never on a Redis I/O thread).
        CompletableFuture<List<String>> done;
        try {
            done = importResolved(x, app, ok, okIndex, okAliases, refs, results, refused, go, goIndex, goAliases);
        } catch (java.util.concurrent.CompletionException e) {
            x.unavailable(e);
            return;
        }
        done.whenComplete((outcomes, e) -> {
            if (e != null) {
                x.unavailable(e);
                return;
            }
            int dataRefused = 0;
            for (int k = 0; k < outcomes.size(); k++) {
                if (!UserData.OK.equals(outcomes.get(k))) {
                    int i = goIndex.get(k);
                    ((ObjectNode) results.get(i)).set("error",
                            x.mapper().valueToTree(dataError(outcomes.get(k), "users[" + i + "].")));
                    dataRefused++;
                }
            }
            // A user refused only for the data limits still had profile and devices imported.
            out.put("imported", outcomes.size());
            out.put("rejected", refused[0] + dataRefused);
            x.json(outcomes.isEmpty() ? HttpResponseStatus.UNPROCESSABLE_ENTITY : HttpResponseStatus.OK, out);
        });
    }

    /**
     * The import's alias work, awaited on the intake thread: items addressed by alias go to the
     * user it names (an unknown alias fails its item); then each item's aliases are claimed (a
     * taken one fails that item before anything of it is written). Returns the import of the
     * items that remain; {@code goIndex} ends as their indexes in the request.
     */
    private CompletableFuture<List<String>> importResolved(Exchange x, String app, List<UserRegistry.Import> ok,
            List<Integer> okIndex, List<java.util.Map<String, String>> okAliases, List<String> refs, ArrayNode results,
            int[] refused, List<UserRegistry.Import> go, List<Integer> goIndex,
            List<java.util.Map<String, String>> goAliases) {
        java.util.Map<String, String> resolved = registry.resolve(app, refs).join();
        for (int k = 0; k < ok.size(); k++) {
            UserRegistry.Import imp = ok.get(k);
            int i = okIndex.get(k);
            String user = imp.user();
            if (user.startsWith(ALIAS_MARK)) {
                user = resolved.get(user.substring(ALIAS_MARK.length()));
                if (user == null) {
                    String f = "users[" + i + "].alias";
                    ((ObjectNode) results.get(i)).set("error", x.mapper().valueToTree(ApiError.of(ErrorCode.UNKNOWN_ALIAS,
                            f, f + ": no user of this app has alias " + imp.user().substring(ALIAS_MARK.length()))));
                    refused[0]++;
                    continue;
                }
                ((ObjectNode) results.get(i)).put("user", user);
            }
            go.add(new UserRegistry.Import(user, imp.profile(), imp.devices(), imp.data()));
            goIndex.add(i);
            goAliases.add(okAliases.get(k));
        }
        List<CompletableFuture<String>> claims = new ArrayList<>();
        for (int k = 0; k < go.size(); k++) {
            claims.add(registry.setAliases(app, go.get(k).user(), goAliases.get(k)).handle((v, e) -> {
                Throwable c = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
                if (c instanceof UserRegistry.AliasTakenException t) {
                    return t.namespace();
                }
                if (e != null) {
                    throw new java.util.concurrent.CompletionException(e);
                }
                return null;
            }));
        }
        List<String> taken = Redis.all(claims).join();
        List<UserRegistry.Import> write = new ArrayList<>();
        List<Integer> writeIndex = new ArrayList<>();
        for (int k = 0; k < go.size(); k++) {
            int i = goIndex.get(k);
            if (taken.get(k) != null) {
                String f = "users[" + i + "].aliases." + taken.get(k);
                ((ObjectNode) results.get(i)).set("error", x.mapper().valueToTree(ApiError.of(ErrorCode.ALIAS_TAKEN,
                        f, f + ": already an alias of another user")));
                refused[0]++;
            } else {
                write.add(go.get(k));
                writeIndex.add(i);
            }
        }
        goIndex.clear();
        goIndex.addAll(writeIndex);
        return write.isEmpty() ? CompletableFuture.completedFuture(List.<String>of()) : registry.importUsers(app, write);
    }

    /**
     * {@code POST .../users/{user}/merge {"from": "<user>"}}: folds {@code from} into the path's
     * user ({@link UserRegistry#merge}); answers the merged user with {@code merged: true}, or
     * {@code false} when {@code from} was already merged into it.
     */
    private void merge(Exchange x) {
        String user = checkedUser(x);
        if (user == null || !x.jsonContent()) {
            return;
        }
        JsonNode body = x.jsonObject();
        if (body == null) {
            return;
        }
        JsonNode from = body.get("from");
        if (from == null || !from.isTextual() || body.size() != 1) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(from == null ? ErrorCode.MISSING_FIELD
                    : ErrorCode.INVALID_FIELD, "from", "from: required, the id of the user to fold into this one (and nothing else)"));
            return;
        }
        try {
            UserRequests.checkUser(from.asText());
        } catch (UserRequests.Invalid e) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "from", "from: "
                    + e.getMessage()));
            return;
        }
        if (from.asText().equals(user)) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "from",
                    "from: a user cannot be merged into itself"));
            return;
        }
        String app = x.app();
        registry.merge(app, user, from.asText(), audiences.clock().millis(),
                config.apps().get(app).events().windowDays()).whenComplete((merged, e) -> {
            Throwable c = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
            if (c instanceof UserRegistry.MergeException m) {
                if (m.reason().startsWith("not_found:")) {
                    x.notFound(m.reason().substring("not_found:".length()));
                } else if (m.reason().equals("conflict")) {
                    x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.ALIAS_TAKEN, "from", "from: " + m.getMessage()));
                } else {
                    x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD,
                            m.reason().equals("too_many_tags") ? "tags" : "attributes", m.getMessage()));
                }
            } else if (e != null) {
                x.unavailable(e);
            } else {
                x.header("Herald-Merged", merged);
                respondWithUser(x, app, user);
            }
        });
    }

    /** Marks an alias reference still to resolve (user ids cannot hold NUL). */
    private static final String ALIAS_MARK = "\u0000alias:";

    /** Most users in one bulk tag request (add and remove together). */
    static final int MAX_TAG_USERS = 100_000;

    /**
     * {@code POST /v1/apps/{app}/tags/{tag}} {@code {"add": [users], "remove": [users]}}: one tag on
     * or off for many users. Users seen for the first time get an index; removing from an unknown
     * user does nothing. A user in both lists ends without the tag (remove applies last). Answers
     * the counts and the per-item errors ({@code add[i]}, {@code remove[i]}). On an intake thread.
     */
    private void bulkTag(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        String tag;
        try {
            tag = UserRequests.tag(x.mapper().getNodeFactory().textNode(x.param("tag")), "tag");
        } catch (UserRequests.Invalid e) {
            invalid(x, e);
            return;
        }
        if (!x.jsonContent()) {
            return;
        }
        JsonNode body = x.jsonObject();
        if (body == null) {
            return;
        }
        for (java.util.Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!f.equals("add") && !f.equals("remove")) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.UNKNOWN_FIELD, f,
                        f + ": unknown field (expected: add, remove)"));
                return;
            }
        }
        int total = 0;
        for (String list : List.of("add", "remove")) {
            JsonNode l = body.get(list);
            if (l != null && !l.isArray()) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, list,
                        list + ": expected an array of user ids"));
                return;
            }
            total += l == null ? 0 : l.size();
        }
        if (total == 0) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.MISSING_FIELD, "add",
                    "add/remove: expected at least one user id"));
            return;
        }
        if (total > MAX_TAG_USERS) {
            x.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, ApiError.of(ErrorCode.TOO_MANY_ITEMS, "add",
                    "add/remove: " + total + " user ids (expected: <= " + MAX_TAG_USERS + " together)"));
            return;
        }
        ObjectNode out = x.mapper().createObjectNode();
        ArrayNode errors = x.mapper().createArrayNode();
        List<String> who = new ArrayList<>(total);
        List<String> where = new ArrayList<>(total);
        List<ObjectNode> bodies = new ArrayList<>(total);
        List<String> refs = new ArrayList<>();
        for (String list : List.of("add", "remove")) {
            JsonNode l = body.get(list);
            if (l == null) {
                continue;
            }
            ArrayNode tagArray = x.mapper().createArrayNode().add(tag);
            ObjectNode change = x.mapper().createObjectNode();
            change.putObject("t").set(list.equals("add") ? "add" : "rm", tagArray);
            if (list.equals("remove")) {
                change.put("probe", true);
            }
            for (int i = 0; i < l.size(); i++) {
                String f = list + "[" + i + "]";
                JsonNode u = l.get(i);
                try {
                    if (u.isObject() && u.size() == 1 && u.has("alias")) {
                        String ref = UserRequests.aliasRef(u.get("alias"), f + ".alias");
                        refs.add(ref);
                        who.add(ALIAS_MARK + ref);
                    } else if (!u.isTextual()) {
                        throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, f, f
                                + ": expected a user id string or {\"alias\": \"namespace:id\"}");
                    } else {
                        UserRequests.checkUser(u.asText());
                        who.add(u.asText());
                    }
                } catch (UserRequests.Invalid e) {
                    errors.add(x.mapper().valueToTree(ApiError.of(ErrorCode.INVALID_FIELD, e.error.field() == null
                            || e.error.field().equals("user") ? f : e.error.field(),
                            e.getMessage().startsWith(f) ? e.getMessage() : f + ": " + e.getMessage())));
                    continue;
                }
                where.add(f);
                bodies.add(change);
            }
        }
        if (who.isEmpty()) {
            out.put("added", 0).put("removed", 0).put("unknown", 0).put("rejected", errors.size());
            out.set("errors", errors);
            x.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
            return;
        }
        List<UserData.Change> changes = new ArrayList<>(who.size());
        List<String> changeWhere = new ArrayList<>(who.size());
        registry.resolve(app, refs).thenCompose(users -> {
            for (int i = 0; i < who.size(); i++) {
                String u = who.get(i);
                if (u.startsWith(ALIAS_MARK)) {
                    u = users.get(u.substring(ALIAS_MARK.length()));
                    if (u == null) {
                        errors.add(x.mapper().valueToTree(ApiError.of(ErrorCode.UNKNOWN_ALIAS, where.get(i) + ".alias",
                                where.get(i) + ".alias: no user of this app has alias "
                                        + who.get(i).substring(ALIAS_MARK.length()))));
                        continue;
                    }
                }
                changes.add(new UserData.Change(u, bodies.get(i)));
                changeWhere.add(where.get(i));
            }
            return registry.data().apply(app, changes);
        }).whenComplete((outcomes, e) -> {
            List<String> whereOf = changeWhere;
            if (e != null) {
                x.unavailable(e);
                return;
            }
            int added = 0;
            int removed = 0;
            int unknown = 0;
            for (int i = 0; i < outcomes.size(); i++) {
                String o = outcomes.get(i);
                boolean add = whereOf.get(i).startsWith("add");
                if (UserData.OK.equals(o)) {
                    if (add) {
                        added++;
                    } else {
                        removed++;
                    }
                } else if (UserData.UNKNOWN.equals(o)) {
                    unknown++;
                } else {
                    errors.add(x.mapper().valueToTree(ApiError.of(ErrorCode.INVALID_FIELD, whereOf.get(i), whereOf.get(i)
                            + ": the user already has " + UserData.MAX_TAGS + " tags")));
                }
            }
            out.put("added", added).put("removed", removed).put("unknown", unknown).put("rejected", errors.size());
            out.set("errors", errors);
            x.json(HttpResponseStatus.OK, out);
        });
    }
}
