package io.herald.gateway.pipeline;

import io.herald.gateway.connector.Target;
import io.herald.gateway.registry.Device;
import io.herald.gateway.registry.DeviceRegistry;
import io.herald.gateway.tracking.MessageStore;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.async.RedisAsyncCommands;
import com.lmax.disruptor.EventHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;

/**
 * Stage 1: who gets the message. For each handler batch, one pipelined round trip reads the
 * devices of every distinct user in it (and, for replayed messages, their current state, so a
 * message already settled before a crash is not sent again). A direct send has its token as the
 * target; a user without an active device ends {@code dropped:no_device}. Runs on its own thread.
 */
final class ResolveHandler implements EventHandler<DeliveryEvent> {
    private static final Logger log = LoggerFactory.getLogger(ResolveHandler.class);

    private final StatefulRedisConnection<String, String> connection;
    private final DeviceRegistry registry;
    private final MessageStore store;
    private final Duration wait;
    private final BooleanSupplier stopping;
    private final List<DeliveryEvent> batch = new ArrayList<>();

    ResolveHandler(StatefulRedisConnection<String, String> connection, DeviceRegistry registry, MessageStore store,
                   Duration wait, BooleanSupplier stopping) {
        this.connection = connection;
        this.connection.setAutoFlushCommands(false);
        this.registry = registry;
        this.store = store;
        this.wait = wait;
        this.stopping = stopping;
    }

    @Override
    public void onEvent(DeliveryEvent event, long sequence, boolean endOfBatch) {
        batch.add(event);
        if (endOfBatch) {
            try {
                resolve();
            } finally {
                batch.clear();
            }
        }
    }

    private void resolve() {
        Map<String, Map<String, String>> devices = new HashMap<>();
        Map<DeliveryEvent, String> states = new HashMap<>();
        Stage.awaitRetrying(log, "resolve", wait, stopping, () -> {
            devices.clear();
            states.clear();
            RedisAsyncCommands<String, String> cmd = connection.async();
            Map<String, CompletableFuture<Map<String, String>>> reads = new HashMap<>();
            Map<DeliveryEvent, CompletableFuture<String>> stateReads = new HashMap<>();
            for (DeliveryEvent e : batch) {
                String user = e.item.message().user();
                if (user != null) {
                    reads.computeIfAbsent(e.item.app() + '\u0000' + user,
                            k -> registry.read(cmd, e.item.app(), user));
                }
                if (e.replayed) {
                    stateReads.put(e, store.state(cmd, e.item.batchId(), e.item.index()));
                }
            }
            connection.flushCommands();
            List<CompletableFuture<?>> all = new ArrayList<>(reads.values());
            all.addAll(stateReads.values());
            return CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
                reads.forEach((k, f) -> devices.put(k, f.join()));
                stateReads.forEach((e, f) -> states.put(e, f.join()));
                return Boolean.TRUE;
            });
        });
        for (DeliveryEvent e : batch) {
            if (e.replayed) {
                String state = states.get(e);
                // A readmitted (reserved) message is legitimately 'deferred'; a batch message that is
                // deferred was already handed to the scheduler before the crash.
                if (MessageStore.terminal(state) || ("deferred".equals(state) && !e.item.reserved())) {
                    e.skip = true;
                    continue;
                }
            }
            String token = e.item.message().apnsToken();
            if (token != null) {
                e.targets = List.of(new Target("apns", null, token, false));
                continue;
            }
            Map<String, String> raw = devices.get(e.item.app() + '\u0000' + e.item.message().user());
            List<Target> targets = new ArrayList<>(2);
            if (raw != null) {
                for (Map.Entry<String, String> d : raw.entrySet()) {
                    Device device = registry.decode(d.getKey(), d.getValue());
                    if (device != null && device.active() && "apns".equals(device.platform())) {
                        targets.add(new Target(device.platform(), device.id(), device.token(), device.sandbox()));
                    }
                }
            }
            if (targets.isEmpty()) {
                e.drop = "no_device";
            } else {
                e.targets = targets;
            }
        }
    }
}
