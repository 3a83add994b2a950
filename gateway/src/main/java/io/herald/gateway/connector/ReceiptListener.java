package io.herald.gateway.connector;

import java.util.UUID;

/**
 * Receives a provider's later report on a message it had accepted: an SMS delivery receipt
 * (deliver_sm with DELIVRD, UNDELIV, EXPIRED, REJECTD ...), one per part of a concatenated text.
 * Called on connector threads; must not block. {@code part} (1-based) of {@code parts} is the
 * part the receipt is for; {@code status} is {@code delivered} or {@code failed}; {@code reason}
 * is the receipt's state in snake_case ({@code undelivered}, {@code expired}, {@code rejected},
 * ...) when failed.
 */
@FunctionalInterface
public interface ReceiptListener {
    void onReceipt(String app, UUID messageId, int part, int parts, String status, String reason, long at);
}
