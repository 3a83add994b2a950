/**
 * Durable intake and replay: {@link io.herald.gateway.journal.Journal} (Redis Stream per node),
 * {@link io.herald.gateway.journal.JournalItem} (a message with its origin),
 * {@link io.herald.gateway.journal.JournalEntry} (settlement count of one stream entry),
 * {@link io.herald.gateway.journal.IdempotencyKeys} (Idempotency-Key claims, completed with the
 * journal append) and {@link io.herald.gateway.journal.DeadLetters} (messages given up on, listed
 * and re-driven through the journal).
 */
package io.herald.gateway.journal;
