/**
 * Tracking: where every message is. {@link io.herald.gateway.tracking.MessageStore} keeps each
 * message's state and history and each batch's counts in Redis, and answers the status API;
 * {@link io.herald.gateway.tracking.SmsReceipts} turns SMS delivery receipts (per part, parked
 * when they come before the acceptance is recorded) into message states.
 */
package io.herald.gateway.tracking;
