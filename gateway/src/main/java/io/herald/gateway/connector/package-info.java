/**
 * Provider connectors: the {@link io.herald.gateway.connector.Connector} contract, the
 * {@link io.herald.gateway.connector.ReceiptListener} for later provider reports (SMS receipts), the
 * {@link io.herald.gateway.connector.Delivery} it takes and the
 * {@link io.herald.gateway.connector.DeliveryResult} value it reports. Implementations live in
 * sub-packages ({@code apns}, {@code fcm}, {@code sms}).
 */
package io.herald.gateway.connector;
