package io.herald.gateway.connector;

/**
 * A provider connection (APNs now; FCM and SMS next). Contract: {@link #send} never blocks and
 * never throws for a provider's answer: every delivery ends in exactly one
 * {@link DeliveryListener#onResult} call, after the connector's own retries with backoff.
 * Deliveries beyond the connector's in-flight bound wait in its queue, which the pipeline's
 * capacity bounds. Thread-safe; owned and closed by {@code Herald}.
 */
public interface Connector extends AutoCloseable {

    /** The platform this connector serves, as in {@link Target#platform()}. */
    String platform();

    void send(Delivery delivery);

    /** True when every client is built and able to send. */
    boolean ready();

    /** Deliveries accepted by {@link #send} whose result is not yet reported. */
    int pending();

    @Override
    void close();
}
