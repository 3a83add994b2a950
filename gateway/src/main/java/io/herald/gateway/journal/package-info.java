/**
 * Durable intake and replay: {@link io.herald.gateway.journal.Journal} (Redis Stream per node),
 * {@link io.herald.gateway.journal.JournalItem} (a message with its origin) and
 * {@link io.herald.gateway.journal.JournalEntry} (settlement count of one stream entry).
 */
package io.herald.gateway.journal;
