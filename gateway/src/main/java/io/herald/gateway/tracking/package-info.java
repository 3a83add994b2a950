/**
 * Tracking: where every message is. {@link io.herald.gateway.tracking.MessageStore} keeps each
 * message's state and history and each batch's counts in Redis, and answers the status API.
 */
package io.herald.gateway.tracking;
