package io.herald.gateway.connector;

/** Receives the final result of a {@link Delivery}. Must not block: it runs on connector threads. */
@FunctionalInterface
public interface DeliveryListener {
    void onResult(Delivery delivery, DeliveryResult result);
}
