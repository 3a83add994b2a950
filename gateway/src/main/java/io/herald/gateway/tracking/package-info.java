/**
 * Tracking: where every message is. {@link io.herald.gateway.tracking.MessageIds} (batch and
 * message ids), {@link io.herald.gateway.tracking.MessageStore} (each message's state and history,
 * each batch's counts, receipts, the app's funnels and event log through the per-batch outbox and
 * the per-app flush; it files dead letters with the failing transition),
 * {@link io.herald.gateway.tracking.EventLog} (event-log lines, packed per flush),
 * {@link io.herald.gateway.tracking.SmsReceipts} (SMS delivery receipts per part, parked when they
 * come before the acceptance is recorded), {@link io.herald.gateway.tracking.Funnels} (counters per stage),
 * {@link io.herald.gateway.tracking.LinkTracker} (tracked SMS links) and
 * {@link io.herald.gateway.tracking.WebhookDispatcher} (posts the event log). Knows nothing of the
 * journal or the pipeline: they call in.
 */
package io.herald.gateway.tracking;
